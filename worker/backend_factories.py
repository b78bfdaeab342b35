"""Backends by URL scheme: per port, one factory per scheme ``backend_urls.BACKEND_SCHEMES``
allows it, called with the settings and the URL's location (docs/contracts.md, README).

Each factory imports its backend's module in its body, so the embedded default never loads a
Kafka, Redis or S3 client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from worker.backend_urls import parse_backend_url
from worker.kafka_client import KafkaSecurity
from worker.settings import Settings
from worker.settings_sections import MIB

if TYPE_CHECKING:
    from worker.modelstore.files import ModelFiles
    from worker.ports import DeadLetterSink, FrameSource, HeatmapSink, ScoreSink, ShadowSink
    from worker.sinks.payload_stores import PayloadStore


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


def dead_letter_payload_store(settings: Settings) -> PayloadStore:
    """Where dead letters too large for their topic keep their payload."""
    scheme, location = parse_backend_url(settings.dead_letter_payloads)
    return DEAD_LETTER_PAYLOAD_STORES[scheme](settings, location)
