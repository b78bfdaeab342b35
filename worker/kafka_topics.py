"""The Kafka topics rdqc needs, frames in and dead letters: what they should be, how the
cluster's differ, and the changes ``rdqc topics ensure`` makes.

``topic_specs`` derives both topics from the settings; ``plan`` compares one spec with what
the cluster has (pure, unit tested); ``TopicAdmin`` reads the cluster and applies a plan.
A plan changes only what is safe in place: it creates a missing topic, sets ``retention.ms``,
raises a too small ``max.message.bytes`` (never lowers it) and, when asked, adds partitions.
Fewer partitions are reported until asked for (new partitions take over some keys, so a
camera's frames around the change may be read out of order); replication is only reported.

Configs are changed with IncrementalAlterConfigs (Kafka >= 2.3), which sets the named keys
and leaves every other dynamic config of the topic as it was; the older AlterConfigs would
reset them all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Self

import kafka.errors
from kafka import KafkaAdminClient
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType

from worker.backend_urls import parse_backend_url
from worker.errors import WorkerError
from worker.kafka_client import KafkaSecurity, client_kwargs

if TYPE_CHECKING:
    from worker.settings import Settings
    from worker.settings_sections import KafkaSettings

# Room in an inbound record batch beside the payload: the batch header (61 bytes), the
# record's own framing (a few varints), the key (a camera id) and the contract headers (five
# values of at most 1 KiB each, docs/contracts.md §1), with the rest left for headers a
# publisher adds (tracing ids and the like).
INBOUND_RECORD_MARGIN_BYTES = 64 * 1024
RETENTION_MS = "retention.ms"
MAX_MESSAGE_BYTES = "max.message.bytes"
PARTITIONS = "partitions"
REPLICATION_FACTOR = "replication.factor"
_HOUR_MS = 3600 * 1000
_ENSURE = "rdqc topics ensure"
_ADD_PARTITIONS = (
    f"{_ENSURE} --add-partitions (new partitions take over some keys: a camera's frames "
    "around the change may be read out of order)"
)


class TopicAdminError(WorkerError):
    """Kafka could not be reached, or refused to describe or change a topic."""


class TopicCreatedMeanwhile(TopicAdminError):
    """Another client created the topic between our look and our create."""


class Verdict(StrEnum):
    OK = "ok"
    CREATED = "created"
    CHANGED = "changed"
    MISMATCH = "mismatch"


@dataclass(frozen=True)
class TopicSpec:
    """What a topic should be. ``partitions`` and ``max_message_bytes`` are minimums."""

    name: str
    partitions: int
    replication_factor: int
    retention_ms: int
    max_message_bytes: int

    def configs(self) -> dict[str, str]:
        return {
            RETENTION_MS: str(self.retention_ms),
            MAX_MESSAGE_BYTES: str(self.max_message_bytes),
        }


@dataclass(frozen=True)
class TopicState:
    """An existing topic as the cluster describes it (configs: the values in effect)."""

    name: str
    partitions: int
    replication_factor: int
    retention_ms: int
    max_message_bytes: int


@dataclass(frozen=True)
class Finding:
    """One property of one topic. ``actual`` is None for a topic that did not exist; ``fix`` is
    what changes (or would change) it; ``minimum``: any value from ``wanted`` up is fine."""

    topic: str
    prop: str
    actual: int | None
    wanted: int
    verdict: Verdict
    minimum: bool = False
    fix: str = ""


@dataclass(frozen=True)
class TopicPlan:
    """The findings as they stand once the changes are made, and those changes."""

    spec: TopicSpec
    findings: tuple[Finding, ...]
    create: bool = False
    configs: Mapping[str, str] = field(default_factory=dict)
    partitions: int | None = None

    @property
    def changes(self) -> bool:
        return self.create or bool(self.configs) or self.partitions is not None

    def unapplied(self) -> tuple[Finding, ...]:
        """The findings when nothing is changed: what would be created or changed differs."""
        return tuple(
            f
            if f.verdict in (Verdict.OK, Verdict.MISMATCH)
            else replace(f, verdict=Verdict.MISMATCH)
            for f in self.findings
        )


def topic_names(settings: Settings) -> tuple[str, str]:
    """(inbound, dead letters): a topic in a ``kafka://TOPIC`` URL wins over the kafka section."""
    return (
        _url_topic(settings.source) or settings.kafka.topic,
        _url_topic(settings.dead_letters) or settings.kafka.dlq_topic,
    )


def topic_specs(settings: Settings) -> tuple[TopicSpec, TopicSpec]:
    """(inbound, dead letters). The inbound topic takes a record of ``max_payload_bytes`` with
    its key and headers; the dead-letter topic takes ``kafka.dlq_max_record_bytes``, beyond
    which the worker keeps a payload in object storage (sinks/kafka_dead_letters.py)."""
    topics = settings.topics
    inbound, dlq = topic_names(settings)
    return (
        TopicSpec(
            inbound,
            topics.partitions,
            topics.replication_factor,
            topics.inbound_retention_hours * _HOUR_MS,
            settings.max_payload_bytes + INBOUND_RECORD_MARGIN_BYTES,
        ),
        TopicSpec(
            dlq,
            topics.partitions,
            topics.replication_factor,
            topics.dlq_retention_hours * _HOUR_MS,
            settings.kafka.dlq_max_record_bytes,
        ),
    )


def plan(spec: TopicSpec, state: TopicState | None, *, add_partitions: bool = False) -> TopicPlan:
    """How ``state`` differs from ``spec`` and what ensuring it would change."""
    if state is None:
        as_wanted = TopicState(
            spec.name,
            spec.partitions,
            spec.replication_factor,
            spec.retention_ms,
            spec.max_message_bytes,
        )
        created = tuple(
            replace(f, actual=None, verdict=Verdict.CREATED, fix=_ENSURE)
            for f in plan(spec, as_wanted).findings
        )
        return TopicPlan(spec, created, create=True)
    partitions = _partitions(spec, state, add_partitions)
    findings = (
        partitions,
        _replication(spec, state),
        _config(spec.name, RETENTION_MS, state.retention_ms, spec.retention_ms, minimum=False),
        _config(
            spec.name, MAX_MESSAGE_BYTES, state.max_message_bytes, spec.max_message_bytes, True
        ),
    )
    configs = {
        f.prop: str(f.wanted)
        for f in findings
        if f.prop in (RETENTION_MS, MAX_MESSAGE_BYTES) and f.verdict is Verdict.CHANGED
    }
    new_count = spec.partitions if partitions.verdict is Verdict.CHANGED else None
    return TopicPlan(spec, findings, configs=configs, partitions=new_count)


def _partitions(spec: TopicSpec, state: TopicState, add_partitions: bool) -> Finding:
    found = Finding(spec.name, PARTITIONS, state.partitions, spec.partitions, Verdict.OK, True)
    if state.partitions >= spec.partitions:
        return found
    if add_partitions:
        return replace(found, verdict=Verdict.CHANGED, fix=f"{_ENSURE} --add-partitions")
    return replace(found, verdict=Verdict.MISMATCH, fix=_ADD_PARTITIONS)


def _replication(spec: TopicSpec, state: TopicState) -> Finding:
    found = Finding(
        spec.name, REPLICATION_FACTOR, state.replication_factor, spec.replication_factor, Verdict.OK
    )
    if state.replication_factor == spec.replication_factor:
        return found
    return replace(
        found,
        verdict=Verdict.MISMATCH,
        fix=(
            "rdqc never changes replication: reassign the replicas (kafka-reassign-partitions.sh) "
            f"or set RDQC_TOPICS__REPLICATION_FACTOR={state.replication_factor}"
        ),
    )


def _config(topic: str, prop: str, actual: int, wanted: int, minimum: bool) -> Finding:
    found = Finding(topic, prop, actual, wanted, Verdict.OK, minimum)
    if actual == wanted or (minimum and actual > wanted):
        return found
    return replace(found, verdict=Verdict.CHANGED, fix=_ENSURE)


def _url_topic(url: str) -> str:
    scheme, location = parse_backend_url(url)
    return location.strip("/") if scheme == "kafka" else ""


class TopicAdmin:
    """Reads topics and applies plans through one admin client; every call is bounded by
    ``timeout_s``. Kafka's errors become TopicAdminError, naming the topic."""

    def __init__(self, kafka_settings: KafkaSettings, timeout_s: float) -> None:
        self._servers = kafka_settings.bootstrap_servers
        self._timeout_ms = int(timeout_s * 1000)
        security = KafkaSecurity.from_settings(kafka_settings)
        client_id = f"{kafka_settings.client_id}-admin"
        try:
            self._admin = KafkaAdminClient(
                **client_kwargs(self._servers, security, client_id=client_id),
                bootstrap_timeout_ms=self._timeout_ms,
                request_timeout_ms=self._timeout_ms,
            )
        except kafka.errors.KafkaError as exc:
            raise TopicAdminError(
                f"Kafka at {self._servers} not reachable within {timeout_s:g} s: {exc}"
            ) from exc

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._admin.close()

    def describe(self, names: Sequence[str]) -> list[TopicState | None]:
        """Each topic as it is, None where it does not exist."""
        described = self._call("describe", names, self._admin.describe_topics, list(names))
        topics = {topic["name"]: topic for topic in described}
        return [self._state(name, topics.get(name)) for name in names]

    def apply(self, topic_plan: TopicPlan) -> None:
        """Make the plan's changes: create the topic, or set its configs and partitions."""
        spec = topic_plan.spec
        if topic_plan.create:
            self._create(spec)
        if topic_plan.configs:
            self._set_configs(spec.name, topic_plan.configs)
        if topic_plan.partitions is not None:
            self._call(
                "add partitions to",
                [spec.name],
                self._admin.create_partitions,
                {spec.name: topic_plan.partitions},
                timeout_ms=self._timeout_ms,
            )

    def _create(self, spec: TopicSpec) -> None:
        new = {
            spec.name: {
                "num_partitions": spec.partitions,
                "replication_factor": spec.replication_factor,
                "configs": spec.configs(),
            }
        }
        try:
            self._admin.create_topics(new, timeout_ms=self._timeout_ms, wait_for_metadata=True)
        except kafka.errors.TopicAlreadyExistsError as exc:
            raise TopicCreatedMeanwhile(
                f"topic {spec.name!r} was created by someone else meanwhile"
            ) from exc
        except kafka.errors.KafkaError as exc:
            raise TopicAdminError(
                f"Kafka at {self._servers} could not create topic {spec.name!r}: {exc}"
            ) from exc

    def _set_configs(self, name: str, configs: Mapping[str, str]) -> None:
        # SET of the named keys only: IncrementalAlterConfigs leaves the others alone.
        changes = {key: (AlterConfigOp.SET, value) for key, value in configs.items()}
        resource = ConfigResource(ConfigResourceType.TOPIC, name, changes)
        results = self._call(
            "change the configs of", [name], self._admin.alter_configs, [resource], incremental=True
        )
        outcome = results.get("topic", {}).get(name)
        if outcome != "OK":
            raise TopicAdminError(
                f"Kafka at {self._servers} refused to change the configs of topic {name!r}: "
                f"{outcome}"
            )

    def _state(self, name: str, topic: dict[str, Any] | None) -> TopicState | None:
        error = kafka.errors.for_code(topic["error_code"]) if topic else None
        if topic is None or error is kafka.errors.UnknownTopicOrPartitionError:
            return None
        if error is not kafka.errors.NoError:
            raise TopicAdminError(f"Kafka at {self._servers}: topic {name!r}: {error}")
        partitions = topic["partitions"]
        configs = self._configs(name)
        return TopicState(
            name,
            partitions=len(partitions),
            replication_factor=max((len(p["replica_nodes"]) for p in partitions), default=0),
            retention_ms=configs[RETENTION_MS],
            max_message_bytes=configs[MAX_MESSAGE_BYTES],
        )

    def _configs(self, name: str) -> dict[str, int]:
        """The values in effect, the broker's defaults included (``config_filter="all"``)."""
        keys = [RETENTION_MS, MAX_MESSAGE_BYTES]
        resource = ConfigResource(ConfigResourceType.TOPIC, name, keys)
        described = self._call(
            "describe the configs of",
            [name],
            self._admin.describe_configs,
            [resource],
            config_filter="all",
        )
        entries = described.get("topic", {}).get(name, {})
        try:
            return {key: int(entries[key]["value"]) for key in keys}
        except (KeyError, TypeError, ValueError) as exc:
            raise TopicAdminError(
                f"Kafka at {self._servers} did not describe {keys} of topic {name!r}: {exc!r}"
            ) from exc

    def _call(
        self, what: str, names: Sequence[str], call: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        try:
            return call(*args, **kwargs)
        except kafka.errors.KafkaError as exc:
            listed = ", ".join(repr(name) for name in names)
            raise TopicAdminError(
                f"Kafka at {self._servers} could not {what} topic {listed}: {exc}"
            ) from exc


def ensure(
    admin: TopicAdmin, specs: Sequence[TopicSpec], *, apply: bool, add_partitions: bool = False
) -> list[Finding]:
    """Every property of every topic, after making the planned changes when ``apply``; without
    it nothing changes and what would is a mismatch."""
    states = admin.describe([spec.name for spec in specs])
    plans = [
        plan(s, state, add_partitions=add_partitions)
        for s, state in zip(specs, states, strict=True)
    ]
    if not apply:
        return [finding for topic_plan in plans for finding in topic_plan.unapplied()]
    findings: list[Finding] = []
    for topic_plan in plans:
        applied = _apply(admin, topic_plan, add_partitions) if topic_plan.changes else topic_plan
        findings += applied.findings
    return findings


def _apply(admin: TopicAdmin, topic_plan: TopicPlan, add_partitions: bool) -> TopicPlan:
    """Apply the plan; when another client created the topic first, plan again from it."""
    try:
        admin.apply(topic_plan)
    except TopicCreatedMeanwhile:
        spec = topic_plan.spec
        topic_plan = plan(spec, admin.describe([spec.name])[0], add_partitions=add_partitions)
        admin.apply(topic_plan)
    return topic_plan
