"""Where the dashboard reads from, built from the worker's settings (RDQC_SCORES, RDQC_HEATMAPS,
RDQC_MODELS and their sections): the one place that picks the backends.

Nothing is contacted here, so the dashboard starts while Redis or storage are down and shows
them unreachable until they answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from worker.backend_urls import parse_backend_url
from worker.dashboard.models_view import ModelsReader
from worker.dashboard.ports import HeatmapReader, ScoreReader
from worker.settings import Settings


@dataclass(frozen=True)
class Sources:
    scores: ScoreReader
    heatmaps: HeatmapReader
    models: ModelsReader

    def close(self) -> None:
        self.scores.close()


def _redis_scores(settings: Settings, location: str) -> ScoreReader:
    from worker.dashboard.redis_scores import RedisScoreReader

    redis = settings.redis
    # As the worker's sink: ``redis://`` takes the redis section's URL, a full URL is used as is.
    url = settings.scores if location else redis.url.get_secret_value()
    return RedisScoreReader(
        url,
        redis.prefix,
        socket_timeout_s=redis.socket_timeout_s,
        connect_timeout_s=redis.connect_timeout_s,
    )


def _jsonl_scores(_settings: Settings, location: str) -> ScoreReader:
    from worker.dashboard.jsonl_scores import JsonlScoreReader

    return JsonlScoreReader(location)


def _s3_heatmaps(settings: Settings, bucket: str) -> HeatmapReader:
    from worker.dashboard.heatmaps import S3HeatmapReader
    from worker.s3_client import s3_client

    return S3HeatmapReader(s3_client(settings.s3), bucket.strip("/") or settings.s3.heatmap_bucket)


def _directory_heatmaps(_settings: Settings, location: str) -> HeatmapReader:
    from worker.dashboard.heatmaps import DirectoryHeatmapReader

    return DirectoryHeatmapReader(location)


SCORE_READERS: Mapping[str, Callable[[Settings, str], ScoreReader]] = {
    "redis": _redis_scores,
    "file": _jsonl_scores,
}
HEATMAP_READERS: Mapping[str, Callable[[Settings, str], HeatmapReader]] = {
    "s3": _s3_heatmaps,
    "dir": _directory_heatmaps,
}


def open_sources(settings: Settings) -> Sources:
    from worker.backend_factories import MODEL_REPOSITORIES
    from worker.heartbeat.stores import heartbeat_store
    from worker.modelstore.registry import ModelRegistry

    scores_scheme, scores_location = parse_backend_url(settings.scores)
    heatmaps_scheme, heatmaps_location = parse_backend_url(settings.heatmaps)
    models_scheme, models_location = parse_backend_url(settings.models.url)
    files = MODEL_REPOSITORIES[models_scheme](settings, models_location, False)
    return Sources(
        scores=SCORE_READERS[scores_scheme](settings, scores_location),
        heatmaps=HEATMAP_READERS[heatmaps_scheme](settings, heatmaps_location),
        models=ModelsReader(ModelRegistry(files), heartbeat_store(settings)),
    )
