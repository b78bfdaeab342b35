"""The dashboard's errors: a backend that cannot be reached, and a thing that is not there."""

from __future__ import annotations

from typing import Literal

from worker.errors import WorkerError

Component = Literal["scores", "heatmaps", "models"]


class DashboardError(WorkerError):
    """Base class of the dashboard's own errors."""


class BackendUnavailable(DashboardError):
    """A backend (Redis, object storage, the model store) did not answer; the API says 503 and
    the page shows a banner until it answers again."""

    def __init__(self, component: Component, message: str) -> None:
        super().__init__(f"{component}: {message}")
        self.component: Component = component
        self.detail = message


class NotFound(DashboardError, LookupError):
    """No such frame, heatmap or product line."""
