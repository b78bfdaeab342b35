"""The composition root: Settings -> backends, model store and Pipeline.

URLs (docs/contracts.md, README): ``kafka://[TOPIC]`` (brokers from the kafka section),
``dir://PATH``, ``video://FILE?product_line=NAME``, ``file://PATH``, ``redis://`` (the redis
section's URL) or a full Redis URL, ``s3://[BUCKET]`` (endpoint and keys from the s3 section).
Each port has one factory per scheme ``backend_urls.BACKEND_SCHEMES`` allows it, called with the
URL's location. Backend modules are imported only when chosen, so the embedded default never
loads a Kafka or S3 client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rdcore.device import resolve_device
from worker.backend_urls import parse_backend_url
from worker.frame_decoder import FrameDecoder
from worker.kafka_client import KafkaSecurity
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

if TYPE_CHECKING:
    from worker.modelstore.files import ModelFiles
    from worker.sinks.payload_stores import PayloadStore


@dataclass(frozen=True)
class Backends:
    source: FrameSource
    dead_letters: DeadLetterSink
    scores: ScoreSink
    heatmaps: HeatmapSink
    models: ModelRepository


def _kafka_source(settings: Settings, topic: str) -> FrameSource:
    from worker.sources.kafka import KafkaFrameSource

    kafka = settings.kafka
    return KafkaFrameSource(
        kafka.bootstrap_servers,
        topic or kafka.topic,
        kafka.group_id,
        kafka.client_id,
        max_poll_records=kafka.max_poll_records,
        max_poll_interval_ms=kafka.max_poll_interval_ms,
        session_timeout_ms=kafka.session_timeout_ms,
        security=KafkaSecurity.from_settings(kafka),
        fetch_max_bytes=kafka.fetch_max_mb * MIB,
        max_partition_fetch_bytes=kafka.max_partition_fetch_mb * MIB,
    )


def _video_source(_settings: Settings, location: str) -> FrameSource:
    from worker.sources.video import video_source_from_url

    return video_source_from_url(location)


def _directory_source(_settings: Settings, location: str) -> FrameSource:
    from worker.sources.directory import DirectoryFrameSource

    return DirectoryFrameSource(location)


def _kafka_dead_letters(settings: Settings, topic: str) -> DeadLetterSink:
    from worker.sinks.dead_letter_payloads import PayloadOffloader
    from worker.sinks.kafka_dead_letters import KafkaDeadLetterSink

    kafka = settings.kafka
    return KafkaDeadLetterSink(
        kafka.bootstrap_servers,
        topic or kafka.dlq_topic,
        worker_id=settings.worker_id,
        payloads=PayloadOffloader(
            dead_letter_payload_store(settings), wait_s=settings.s3.flush_timeout_s
        ),
        security=KafkaSecurity.from_settings(kafka),
        max_record_bytes=kafka.dlq_max_record_bytes,
        delivery_timeout_s=kafka.dlq_delivery_timeout_s,
        send_timeout_s=kafka.dlq_send_timeout_s,
    )


def _directory_dead_letters(settings: Settings, location: str) -> DeadLetterSink:
    from worker.sinks.directory_dead_letters import DirectoryDeadLetterSink

    return DirectoryDeadLetterSink(location, worker_id=settings.worker_id)


def _redis_scores(settings: Settings, location: str) -> ScoreSink:
    from worker.sinks.redis_scores import RedisScoreSink

    redis = settings.redis
    url = settings.scores if location else redis.url.get_secret_value()
    return RedisScoreSink(
        url,
        redis.prefix,
        ttl_s=redis.ttl_s,
        stream_maxlen=redis.stream_maxlen,
        flagged_maxlen=redis.flagged_maxlen,
        socket_timeout_s=redis.socket_timeout_s,
        connect_timeout_s=redis.connect_timeout_s,
    )


def _jsonl_scores(_settings: Settings, location: str) -> ScoreSink:
    from worker.sinks.jsonl_scores import JsonlScoreSink

    return JsonlScoreSink(location)


def _redis_shadow(settings: Settings, location: str) -> ShadowSink:
    from worker.sinks.shadow_redis import RedisShadowSink

    redis = settings.redis
    url = settings.scores if location else redis.url.get_secret_value()
    return RedisShadowSink(
        url,
        redis.prefix,
        stream_maxlen=redis.stream_maxlen,
        socket_timeout_s=redis.socket_timeout_s,
        connect_timeout_s=redis.connect_timeout_s,
    )


def _jsonl_shadow(_settings: Settings, location: str) -> ShadowSink:
    from worker.sinks.shadow_jsonl import JsonlShadowSink, shadow_file_beside

    return JsonlShadowSink(shadow_file_beside(location))


def _s3_heatmaps(settings: Settings, bucket: str) -> HeatmapSink:
    from worker.s3_client import s3_client
    from worker.sinks.s3_heatmaps import S3HeatmapSink

    return S3HeatmapSink(
        s3_client(settings.s3),
        bucket or settings.s3.heatmap_bucket,
        flush_timeout_s=settings.s3.flush_timeout_s,
    )


def _directory_heatmaps(_settings: Settings, location: str) -> HeatmapSink:
    from worker.sinks.directory_heatmaps import DirectoryHeatmapSink

    return DirectoryHeatmapSink(location)


def _s3_payload_store(settings: Settings, location: str) -> PayloadStore:
    from worker.s3_client import s3_client
    from worker.sinks.payload_stores import S3PayloadStore

    bucket, _, prefix = location.partition("/")
    return S3PayloadStore(s3_client(settings.s3), bucket or settings.s3.heatmap_bucket, prefix)


def _directory_payload_store(_settings: Settings, location: str) -> PayloadStore:
    from worker.sinks.payload_stores import DirectoryPayloadStore

    return DirectoryPayloadStore(location)


def _s3_models(settings: Settings, bucket: str, for_publishing: bool) -> ModelFiles:
    from worker.modelstore.s3 import S3ModelFiles
    from worker.s3_client import s3_client

    return S3ModelFiles(
        s3_client(settings.s3),
        bucket or settings.s3.model_bucket,
        create_bucket=for_publishing,
    )


def _directory_models(_settings: Settings, location: str, _for_publishing: bool) -> ModelFiles:
    from worker.modelstore.directory import DirectoryModelFiles

    return DirectoryModelFiles(location)


# One table per port, keyed by URL scheme; factories get the settings and the URL's location.
SOURCES: Mapping[str, Callable[[Settings, str], FrameSource]] = {
    "kafka": _kafka_source,
    "dir": _directory_source,
    "video": _video_source,
}
DEAD_LETTER_SINKS: Mapping[str, Callable[[Settings, str], DeadLetterSink]] = {
    "kafka": _kafka_dead_letters,
    "dir": _directory_dead_letters,
}
SCORE_SINKS: Mapping[str, Callable[[Settings, str], ScoreSink]] = {
    "redis": _redis_scores,
    "file": _jsonl_scores,
}
# Shadow-test entries go where the scores go: keyed by the scores URL's scheme.
SHADOW_SINKS: Mapping[str, Callable[[Settings, str], ShadowSink]] = {
    "redis": _redis_shadow,
    "file": _jsonl_shadow,
}
HEATMAP_SINKS: Mapping[str, Callable[[Settings, str], HeatmapSink]] = {
    "s3": _s3_heatmaps,
    "dir": _directory_heatmaps,
}
DEAD_LETTER_PAYLOAD_STORES: Mapping[str, Callable[[Settings, str], PayloadStore]] = {
    "s3": _s3_payload_store,
    "dir": _directory_payload_store,
}
# The model store's backends also learn whether they are for publishing (``rdqc publish``); the
# registry over them (modelstore/registry.py) is the same for every scheme.
MODEL_REPOSITORIES: Mapping[str, Callable[[Settings, str, bool], ModelFiles]] = {
    "s3": _s3_models,
    "dir": _directory_models,
}


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


def dead_letter_payload_store(settings: Settings) -> PayloadStore:
    scheme, location = parse_backend_url(settings.dead_letter_payloads)
    return DEAD_LETTER_PAYLOAD_STORES[scheme](settings, location)


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
