"""Worker heartbeats: who is alive, on which host, and which model versions it runs.

Records and their JSON are in ``record``, the stores in ``redis_store`` and ``file_store``, the
choice between them and the reader in ``stores``, the writing thread in ``writer``.
"""

from worker.heartbeat.record import Heartbeat, LineModels, ModelVersion, workers_by_version
from worker.heartbeat.stores import live_workers

__all__ = ["Heartbeat", "LineModels", "ModelVersion", "live_workers", "workers_by_version"]
