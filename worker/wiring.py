"""Settings -> backends: the one place that knows which backend sits behind each port.

URLs (docs/contracts.md, README): ``kafka://[TOPIC]`` (brokers from the kafka section),
``dir://PATH``, ``video://FILE?product_line=NAME``, ``file://PATH``, ``redis://`` (the redis
section's URL) or a full Redis URL, ``s3://[BUCKET]`` (endpoint and keys from the s3 section).
Backend modules are imported only when chosen, so the embedded default never loads a Kafka or
S3 client.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from minio import Minio

from worker.kafka_client import KafkaSecurity
from worker.ports import DeadLetterSink, FrameSource, HeatmapSink, ModelRepository, ScoreSink
from worker.settings import Settings, parse_backend_url


@dataclass(frozen=True)
class Backends:
    source: FrameSource
    dead_letters: DeadLetterSink
    scores: ScoreSink
    heatmaps: HeatmapSink
    models: ModelRepository


def kafka_security(settings: Settings) -> KafkaSecurity:
    kafka = settings.kafka
    return KafkaSecurity(
        protocol=kafka.security_protocol,
        sasl_mechanism=kafka.sasl_mechanism,
        sasl_username=kafka.sasl_username,
        sasl_password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
        ssl_cafile=kafka.ssl_cafile,
        ssl_certfile=kafka.ssl_certfile,
        ssl_keyfile=kafka.ssl_keyfile,
    )


def s3_client(settings: Settings) -> Minio:
    endpoint = urlparse(settings.s3.endpoint)
    if not endpoint.hostname:
        raise ValueError(f"s3.endpoint {settings.s3.endpoint!r} has no host")
    access = settings.s3.access_key
    secret = settings.s3.secret_key
    return Minio(
        endpoint.netloc,
        access_key=access.get_secret_value() if access else None,
        secret_key=secret.get_secret_value() if secret else None,
        secure=endpoint.scheme == "https",
        region=settings.s3.region,
    )


def frame_source(settings: Settings) -> FrameSource:
    scheme, location = parse_backend_url(settings.source)
    if scheme == "kafka":
        from worker.sources.kafka import KafkaFrameSource

        kafka = settings.kafka
        return KafkaFrameSource(
            kafka.bootstrap_servers,
            location or kafka.topic,
            kafka.group_id,
            kafka.client_id,
            max_poll_records=kafka.max_poll_records,
            max_poll_interval_ms=kafka.max_poll_interval_ms,
            session_timeout_ms=kafka.session_timeout_ms,
            security=kafka_security(settings),
        )
    if scheme == "video":
        from worker.sources.video import video_source_from_url

        return video_source_from_url(location)
    from worker.sources.directory import DirectoryFrameSource

    return DirectoryFrameSource(location)


def dead_letter_sink(settings: Settings) -> DeadLetterSink:
    scheme, location = parse_backend_url(settings.dead_letters)
    if scheme == "kafka":
        from worker.sinks.kafka_dead_letters import KafkaDeadLetterSink

        return KafkaDeadLetterSink(
            settings.kafka.bootstrap_servers,
            location or settings.kafka.dlq_topic,
            worker_id=settings.worker_id,
            security=kafka_security(settings),
        )
    from worker.sinks.directory_dead_letters import DirectoryDeadLetterSink

    return DirectoryDeadLetterSink(location, worker_id=settings.worker_id)


def score_sink(settings: Settings) -> ScoreSink:
    scheme, location = parse_backend_url(settings.scores)
    if scheme == "redis":
        from worker.sinks.redis_scores import RedisScoreSink

        redis = settings.redis
        url = settings.scores if location else redis.url.get_secret_value()
        return RedisScoreSink(
            url,
            redis.prefix,
            ttl_s=redis.ttl_s,
            stream_maxlen=redis.stream_maxlen,
            flagged_maxlen=redis.flagged_maxlen,
        )
    from worker.sinks.jsonl_scores import JsonlScoreSink

    return JsonlScoreSink(location)


def heatmap_sink(settings: Settings) -> HeatmapSink:
    scheme, location = parse_backend_url(settings.heatmaps)
    if scheme == "s3":
        from worker.sinks.s3_heatmaps import S3HeatmapSink

        return S3HeatmapSink(s3_client(settings), location or settings.s3.heatmap_bucket)
    from worker.sinks.directory_heatmaps import DirectoryHeatmapSink

    return DirectoryHeatmapSink(location)


def model_repository(settings: Settings, *, for_publishing: bool = False) -> ModelRepository:
    scheme, location = parse_backend_url(settings.models.url)
    if scheme == "s3":
        from worker.modelstore.s3 import S3ModelRepository

        return S3ModelRepository(
            s3_client(settings),
            location or settings.s3.model_bucket,
            create_bucket=for_publishing,
        )
    from worker.modelstore.directory import DirectoryModelRepository

    return DirectoryModelRepository(location)


def backends(settings: Settings) -> Backends:
    return Backends(
        source=frame_source(settings),
        dead_letters=dead_letter_sink(settings),
        scores=score_sink(settings),
        heatmaps=heatmap_sink(settings),
        models=model_repository(settings),
    )
