"""Kafka, where the source or the dead letters use it: the brokers answer, the topics exist
and take the records the worker reads and writes (the ``rdqc topics ensure --check`` diff),
and the consumer group is named."""

from __future__ import annotations

from worker.backend_urls import parse_backend_url
from worker.doctor.report import Row, Status
from worker.kafka_topics import (
    MAX_MESSAGE_BYTES,
    Finding,
    TopicAdmin,
    TopicAdminError,
    TopicSpec,
    TopicState,
    Verdict,
    plan,
    topic_specs,
)
from worker.settings import Settings

# Too small a limit loses records; any other difference (partitions, retention, replication)
# is worth knowing but does not stop a worker.
_FAILING_PROPERTIES = frozenset({MAX_MESSAGE_BYTES})
_REACH_FIX = (
    "check RDQC_KAFKA__BOOTSTRAP_SERVERS, that the brokers run and are reachable from here, and "
    "RDQC_KAFKA__SECURITY_PROTOCOL / SASL settings"
)


def kafka_rows(settings: Settings, timeout_s: float) -> list[Row]:
    inbound, dlq = topic_specs(settings)
    reads_kafka = _is_kafka(settings.source)
    wanted = [inbound] if reads_kafka else []
    wanted += [dlq] if _is_kafka(settings.dead_letters) else []
    if not wanted:
        return [Row("kafka", Status.SKIP, "not in use (neither RDQC_SOURCE nor dead letters)")]
    servers = settings.kafka.bootstrap_servers
    try:
        with TopicAdmin(settings.kafka, timeout_s) as admin:
            reached = Row("kafka", Status.OK, f"{servers} answered")
            states = admin.describe([spec.name for spec in wanted])
    except TopicAdminError as exc:
        skipped = [
            Row(_topic_check(spec), Status.SKIP, "the kafka check failed") for spec in wanted
        ]
        return [Row("kafka", Status.FAIL, str(exc), _REACH_FIX), *skipped]
    rows = [reached]
    rows += [topic_row(spec, state) for spec, state in zip(wanted, states, strict=True)]
    if reads_kafka:
        rows.append(group_row(settings.kafka.group_id))
    return rows


def topic_row(spec: TopicSpec, state: TopicState | None) -> Row:
    """One row per topic: FAIL when missing or its record limit is too small, WARN for the
    rest of the differences ``rdqc topics ensure --check`` reports."""
    check = _topic_check(spec)
    if state is None:
        return Row(check, Status.FAIL, "does not exist", "rdqc topics ensure (creates it)")
    differences = [f for f in plan(spec, state).unapplied() if f.verdict is Verdict.MISMATCH]
    if not differences:
        detail = (
            f"{state.partitions} partitions, replication {state.replication_factor}, "
            f"{MAX_MESSAGE_BYTES} {state.max_message_bytes}"
        )
        return Row(check, Status.OK, detail)
    failing = any(f.prop in _FAILING_PROPERTIES for f in differences)
    fixes = list(dict.fromkeys(f.fix for f in differences))
    return Row(
        check,
        Status.FAIL if failing else Status.WARN,
        "; ".join(_difference(f) for f in differences),
        "; ".join(fixes),
    )


def group_row(group_id: str) -> Row:
    if group_id.strip():
        return Row("kafka consumer group", Status.OK, group_id)
    return Row(
        "kafka consumer group",
        Status.FAIL,
        "empty: workers would not share the partitions",
        "set RDQC_KAFKA__GROUP_ID (default rdqc-workers)",
    )


def _is_kafka(url: str) -> bool:
    return parse_backend_url(url)[0] == "kafka"


def _topic_check(spec: TopicSpec) -> str:
    return f"kafka topic {spec.name}"


def _difference(finding: Finding) -> str:
    relation = "at least " if finding.minimum else ""
    return f"{finding.prop} is {finding.actual}, wanted {relation}{finding.wanted}"
