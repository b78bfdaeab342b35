"""The composition root: Settings -> backends, model store and Pipeline.

URLs (docs/contracts.md, README): ``kafka://[TOPIC]`` (brokers from the kafka section),
``dir://PATH``, ``video://FILE?product_line=NAME``, ``file://PATH``, ``redis://`` (the redis
section's URL) or a full Redis URL, ``s3://[BUCKET]`` (endpoint and keys from the s3 section).
The factories per port and scheme are in worker/backend_factories.py; backend modules are
imported only when chosen, so the embedded default never loads a Kafka or S3 client.
"""

from __future__ import annotations

from dataclasses import dataclass

from rdcore.device import resolve_device
from worker.backend_factories import (
    DEAD_LETTER_SINKS,
    HEATMAP_SINKS,
    MODEL_REPOSITORIES,
    SCORE_SINKS,
    SHADOW_SINKS,
    SOURCES,
)
from worker.backend_urls import parse_backend_url
from worker.frame_decoder import FrameDecoder
from worker.modelstore.registry import ModelRegistry
from worker.modelstore.store import CachingModelStore, ModelLoadEvent
from worker.observability.health import Health
from worker.observability.prometheus import Metrics
from worker.pipeline import Pipeline, PipelineConfig
from worker.pipeline.shadow import ShadowConfig
from worker.ports import (
    DeadLetterSink,
    FrameSource,
    HeatmapSink,
    ModelRepository,
    ScoreSink,
    ShadowSink,
)
from worker.scoring import BatchScorer
from worker.settings import Settings
from worker.settings_sections import MIB


@dataclass(frozen=True)
class Backends:
    source: FrameSource
    dead_letters: DeadLetterSink
    scores: ScoreSink
    heatmaps: HeatmapSink
    models: ModelRepository


def frame_source(settings: Settings) -> FrameSource:
    scheme, location = parse_backend_url(settings.source)
    return SOURCES[scheme](settings, location)


def dead_letter_sink(settings: Settings) -> DeadLetterSink:
    scheme, location = parse_backend_url(settings.dead_letters)
    return DEAD_LETTER_SINKS[scheme](settings, location)


def score_sink(settings: Settings) -> ScoreSink:
    scheme, location = parse_backend_url(settings.scores)
    return SCORE_SINKS[scheme](settings, location)


def shadow_sink(settings: Settings) -> ShadowSink:
    scheme, location = parse_backend_url(settings.scores)
    return SHADOW_SINKS[scheme](settings, location)


def heatmap_sink(settings: Settings) -> HeatmapSink:
    scheme, location = parse_backend_url(settings.heatmaps)
    return HEATMAP_SINKS[scheme](settings, location)


def model_repository(settings: Settings, *, for_publishing: bool = False) -> ModelRegistry:
    """``for_publishing`` lets an S3 store create its bucket; a worker expects it to exist."""
    scheme, location = parse_backend_url(settings.models.url)
    return ModelRegistry(MODEL_REPOSITORIES[scheme](settings, location, for_publishing))


def backends(settings: Settings) -> Backends:
    return Backends(
        source=frame_source(settings),
        dead_letters=dead_letter_sink(settings),
        scores=score_sink(settings),
        heatmaps=heatmap_sink(settings),
        models=model_repository(settings),
    )


def build_pipeline(settings: Settings, metrics: Metrics, health: Health) -> Pipeline:
    wired = backends(settings)
    device = resolve_device(settings.device)

    def record_load(event: ModelLoadEvent) -> None:
        metrics.model_load(event.product_line, event.ok)

    models = CachingModelStore(
        wired.models,
        settings.models.cache_dir,
        device,
        max_resident=settings.models.max_resident,
        warmup=settings.models.warmup,
        on_load=record_load,
    )
    config = PipelineConfig(
        max_batch_size=settings.batching.max_size,
        max_wait_s=settings.batching.max_wait_ms / 1000.0,
        max_queue=settings.batching.max_queue,
        max_inflight_bytes=settings.batching.max_inflight_mb * MIB,
        max_poll_records=settings.kafka.max_poll_records,
        decode_threads=settings.decode_threads,
        model_poll_s=settings.models.poll_s,
        shutdown_grace_s=settings.shutdown_grace_s,
    )
    return Pipeline(
        source=wired.source,
        dead_letters=wired.dead_letters,
        scores=wired.scores,
        heatmaps=wired.heatmaps,
        models=models,
        decoder=FrameDecoder(
            settings.max_payload_bytes,
            settings.min_dimension,
            settings.max_dimension,
            max_pixels=settings.max_pixels,
        ),
        scorer=BatchScorer(
            device, settings.precision, settings.channels_last, settings.heatmaps_for
        ),
        config=config,
        worker_id=settings.worker_id,
        metrics=metrics,
        health=health,
        shadow=shadow_config(settings),
    )


def shadow_config(settings: Settings) -> ShadowConfig | None:
    """None when shadow testing is off: then no candidate is looked for."""
    if not settings.shadow.enabled:
        return None
    return ShadowConfig(shadow_sink(settings), settings.worker_id, settings.shadow.max_share)
