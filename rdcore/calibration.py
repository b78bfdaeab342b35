"""Calibration from good images only: a decision threshold and a normalization of raw scores.

Raw RD4AD scores (the maximum of a smoothed sum of cosine distances) have no fixed range and
differ per product line, so each model is calibrated on the scores of known-good images: the
threshold is a high quantile of them and their spread sets the scale of the normalized score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, overload

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from rdcore.errors import ArtifactError, CalibrationError

QUANTILE_KEYS: tuple[str, ...] = ("0.5", "0.9", "0.95", "0.99", "0.999")
DEFAULT_QUANTILE = 0.99
# Below this the normal scores are effectively constant and cannot set a scale.
_MIN_STD = 1e-12

FloatArray = npt.NDArray[np.floating[Any]]


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """Statistics of the raw scores of good images, and the threshold derived from them."""

    threshold: float
    quantile: float = DEFAULT_QUANTILE
    mean: float
    std: float
    max: float
    min: float
    count: int
    quantiles: dict[str, float]
    f1_threshold: float | None = None

    @property
    def scale(self) -> float:
        """Raw-score distance that moves the normalized score from 0.5 to sigmoid(1) ~ 0.73."""
        if self.std > _MIN_STD:
            return self.std
        return max(abs(self.threshold), 1e-6) * 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        expected = set(cls.__dataclass_fields__)
        missing, unknown = expected - set(data), set(data) - expected
        if missing or unknown:
            raise ArtifactError(
                f"calibration: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}"
            )
        quantiles = data["quantiles"]
        if not isinstance(quantiles, dict) or set(quantiles) != set(QUANTILE_KEYS):
            raise ArtifactError(
                f"calibration: 'quantiles' must map exactly {list(QUANTILE_KEYS)}, "
                f"got {quantiles!r}"
            )
        f1_threshold = data["f1_threshold"]
        return cls(
            threshold=_number(data, "threshold"),
            quantile=_number(data, "quantile"),
            mean=_number(data, "mean"),
            std=_number(data, "std"),
            max=_number(data, "max"),
            min=_number(data, "min"),
            count=int(_number(data, "count")),
            quantiles={key: _number(quantiles, key) for key in QUANTILE_KEYS},
            f1_threshold=None if f1_threshold is None else _number(data, "f1_threshold"),
        )


def _number(data: dict[str, Any], key: str) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ArtifactError(f"calibration: {key!r} must be a number, got {value!r}")
    # Python's json reads NaN and Infinity; a NaN threshold would flag nothing and make every
    # normalized score NaN, so such a calibration is refused where it is read.
    if not math.isfinite(value):
        raise ArtifactError(f"calibration: {key!r} must be a finite number, got {value!r}")
    return float(value)


def calibrate(
    normal_scores: Sequence[float] | FloatArray, quantile: float = DEFAULT_QUANTILE
) -> Calibration:
    """Calibrate on raw scores of good images; the threshold is their ``quantile`` quantile."""
    if not 0.0 < quantile < 1.0:
        raise CalibrationError(f"quantile must be in (0, 1), got {quantile}")
    scores = np.asarray(normal_scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size < 2:
        raise CalibrationError(
            f"calibration needs a flat list of at least 2 scores, got shape {scores.shape}"
        )
    if not np.isfinite(scores).all():
        bad = int((~np.isfinite(scores)).sum())
        raise CalibrationError(f"{bad} of {scores.size} calibration scores are NaN or infinite")
    levels = np.quantile(scores, [float(key) for key in QUANTILE_KEYS])
    return Calibration(
        threshold=float(np.quantile(scores, quantile)),
        quantile=quantile,
        mean=float(scores.mean()),
        std=float(scores.std()),
        max=float(scores.max()),
        min=float(scores.min()),
        count=int(scores.size),
        quantiles={key: float(level) for key, level in zip(QUANTILE_KEYS, levels, strict=True)},
    )


@overload
def normalize(raw: float, calibration: Calibration) -> float: ...


@overload
def normalize(raw: FloatArray, calibration: Calibration) -> FloatArray: ...


@overload
def normalize(raw: Tensor, calibration: Calibration) -> Tensor: ...


def normalize(
    raw: float | FloatArray | Tensor, calibration: Calibration
) -> float | FloatArray | Tensor:
    """Map raw scores to (0, 1): ``sigmoid((raw - threshold) / scale)``, 0.5 at the threshold.

    ``scale`` is the standard deviation of the good images' scores. A sigmoid is used rather than
    min-max scaling because raw scores are unbounded: a min-max range taken from calibration data
    clips every score beyond it to 1 (so a defect and a gross defect look alike), and its ends
    depend on the two most extreme calibration images. The sigmoid keeps order everywhere, is
    exactly 0.5 at the decision threshold whatever the product line, and its slope is measured
    on normal data, so 0.73 always means "one normal spread above the threshold". Results reach
    0 or 1 exactly only where floating point cannot represent the difference (float64: scores
    more than about 36 scales above the threshold).

    Floats, numpy arrays and torch tensors are accepted; the same type comes back.
    """
    threshold, scale = calibration.threshold, calibration.scale
    if isinstance(raw, Tensor):
        return torch.sigmoid((raw - threshold) / scale)
    if isinstance(raw, np.ndarray):
        z = (raw - threshold) / scale
        # exp(-|z|) never overflows, unlike exp(-z) for large negative z.
        e = np.exp(-np.abs(z))
        result: FloatArray = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return result
    z_value = (float(raw) - threshold) / scale
    e_value = math.exp(-abs(z_value))
    return 1.0 / (1.0 + e_value) if z_value >= 0 else e_value / (1.0 + e_value)


def f1_optimal_threshold(
    scores: Sequence[float] | FloatArray, labels: Sequence[int] | npt.NDArray[Any]
) -> float:
    """The raw score threshold (anomalous if ``score >= threshold``) with the best F1.

    Needs labelled anomalies (label 1) as well as good images (label 0).
    """
    try:
        from sklearn.metrics import precision_recall_curve
    except ImportError as exc:
        raise ImportError(
            "f1_optimal_threshold needs scikit-learn: pip install 'rdqc[eval]'"
        ) from exc
    score_array = np.asarray(scores, dtype=np.float64)
    label_array = np.asarray(labels)
    if score_array.ndim != 1 or score_array.shape != label_array.shape:
        raise CalibrationError(
            f"scores and labels must be flat and of one length, got shapes "
            f"{score_array.shape} and {label_array.shape}"
        )
    if not np.isfinite(score_array).all():
        raise CalibrationError("scores for the F1-optimal threshold contain NaN or infinity")
    if not np.isin(label_array, (0, 1)).all() or np.unique(label_array).size != 2:
        raise CalibrationError(
            f"labels must be 0 (good) and 1 (anomalous), both present; got {np.unique(label_array)}"
        )
    precision, recall, thresholds = precision_recall_curve(label_array.astype(int), score_array)
    # The last precision/recall pair (1, 0) has no threshold.
    precision, recall = precision[:-1], recall[:-1]
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return float(thresholds[int(np.argmax(f1))])
