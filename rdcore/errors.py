"""Exceptions raised by rdcore, each naming what was wrong and where."""


class RdcoreError(Exception):
    """Base class of every error rdcore raises on purpose."""


class TeacherWeightsError(RdcoreError):
    """Teacher weights are unavailable or do not fit the backbone."""


class ImageReadError(RdcoreError):
    """An image file or payload cannot be decoded."""


class DatasetError(RdcoreError):
    """A training or evaluation folder is empty or malformed."""


class ArtifactError(RdcoreError):
    """A model artifact is missing, tampered with, or of an unsupported format."""


class CalibrationError(RdcoreError):
    """Scores given for calibration are too few, non-finite, or mislabelled."""


class ExportError(RdcoreError):
    """The exported graph is invalid or does not reproduce the PyTorch model."""
