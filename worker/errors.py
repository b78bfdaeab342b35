"""Exceptions of the streaming service, each naming what failed and where.

Every one derives from ``WorkerError``, so the command line reports them as one line, and none
imports a backend: ``import worker.errors`` is cheap.
"""

from __future__ import annotations


class WorkerError(Exception):
    """Base class of every error the worker raises on purpose."""


class SinkBackpressure(WorkerError):
    """A sink cannot accept more right now; the pipeline pauses intake and retries later."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SinkError(WorkerError):
    """A sink failed to make its buffered items durable (after its own retries)."""


class UnknownProductLine(WorkerError, LookupError):
    """No model is published for a product line."""


class ModelLoadError(WorkerError, RuntimeError):
    """A model exists but cannot be fetched, verified or loaded."""


class ModelPublishError(WorkerError, RuntimeError):
    """The artifact could not be uploaded to, or its pointer written in, the repository."""


class CommitFailed(WorkerError):
    """The source refused an offset commit (e.g. after a rebalance); the frames are redelivered."""
