"""The heartbeat's one error; a WorkerError, so the command line reports it as one line."""

from __future__ import annotations

from worker.errors import WorkerError


class HeartbeatError(WorkerError):
    """A heartbeat store could not be read or written, or holds a record that is no heartbeat."""
