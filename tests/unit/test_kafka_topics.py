"""The topics rdqc needs: specs derived from the settings, the diff against what a cluster has,
what `ensure` changes, and `rdqc topics ensure`'s output and exit codes."""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
from kafka.record.default_records import DefaultRecordBatchBuilder
from typer.testing import CliRunner

from worker.cli import app
from worker.cli.ops import topics_summary, topics_table
from worker.kafka_topics import (
    INBOUND_RECORD_MARGIN_BYTES,
    TopicCreatedMeanwhile,
    TopicPlan,
    TopicSpec,
    TopicState,
    Verdict,
    ensure,
    plan,
    topic_specs,
)
from worker.settings import Settings

pytestmark = pytest.mark.unit

MIB = 1024 * 1024
SPEC = TopicSpec(
    "frames.dlq",
    partitions=12,
    replication_factor=1,
    retention_ms=336 * 3600 * 1000,
    max_message_bytes=1_000_000,
)
MATCHING = TopicState("frames.dlq", 12, 1, SPEC.retention_ms, SPEC.max_message_bytes)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("RDQC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def verdicts(topic_plan: TopicPlan) -> dict[str, Verdict]:
    return {f.prop: f.verdict for f in topic_plan.findings}


def test_default_specs_follow_the_payload_limits() -> None:
    inbound, dlq = topic_specs(Settings())

    assert inbound == TopicSpec(
        "frames.inbound", 12, 1, 24 * 3600 * 1000, 20 * MIB + INBOUND_RECORD_MARGIN_BYTES
    )
    assert dlq == TopicSpec("frames.dlq", 12, 1, 336 * 3600 * 1000, 1_000_000)


def test_specs_follow_changed_settings_and_topics_named_in_urls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RDQC_MAX_PAYLOAD_BYTES", str(5 * MIB))
    monkeypatch.setenv("RDQC_KAFKA__DLQ_MAX_RECORD_BYTES", "2000000")
    monkeypatch.setenv("RDQC_SOURCE", "kafka://line7.frames")
    monkeypatch.setenv("RDQC_KAFKA__DLQ_TOPIC", "line7.dlq")
    monkeypatch.setenv("RDQC_TOPICS__PARTITIONS", "3")
    monkeypatch.setenv("RDQC_TOPICS__REPLICATION_FACTOR", "3")
    monkeypatch.setenv("RDQC_TOPICS__INBOUND_RETENTION_HOURS", "2")
    monkeypatch.setenv("RDQC_TOPICS__DLQ_RETENTION_HOURS", "48")

    inbound, dlq = topic_specs(Settings())

    assert inbound == TopicSpec(
        "line7.frames", 3, 3, 2 * 3600 * 1000, 5 * MIB + INBOUND_RECORD_MARGIN_BYTES
    )
    assert dlq == TopicSpec("line7.dlq", 3, 3, 48 * 3600 * 1000, 2_000_000)


def test_the_inbound_topic_takes_the_largest_frame_the_contract_allows() -> None:
    inbound, _ = topic_specs(Settings())
    # The largest payload, a long key and every contract header at its 1 KiB limit.
    headers = [
        (name, b"x" * 1024)
        for name in ("product_line", "camera_id", "frame_id", "captured_at", "content_type")
    ]
    batch = DefaultRecordBatchBuilder.estimate_size_in_bytes(
        b"k" * 256, b"\0" * Settings().max_payload_bytes, headers
    )

    assert batch <= inbound.max_message_bytes


def test_a_missing_topic_is_created_with_every_property() -> None:
    created = plan(SPEC, None)

    assert created.create and created.changes
    assert verdicts(created) == dict.fromkeys(
        ("partitions", "replication.factor", "retention.ms", "max.message.bytes"), Verdict.CREATED
    )
    assert SPEC.configs() == {"retention.ms": "1209600000", "max.message.bytes": "1000000"}


def test_a_matching_topic_changes_nothing() -> None:
    same = plan(SPEC, MATCHING)

    assert not same.changes
    assert set(verdicts(same).values()) == {Verdict.OK}
    assert same.unapplied() == same.findings


def test_a_too_small_record_limit_is_raised_and_a_larger_one_kept() -> None:
    small = plan(SPEC, replace(MATCHING, max_message_bytes=65_536))
    large = plan(SPEC, replace(MATCHING, max_message_bytes=8 * MIB))

    assert small.configs == {"max.message.bytes": "1000000"}
    assert verdicts(small)["max.message.bytes"] is Verdict.CHANGED
    assert not large.changes
    assert verdicts(large)["max.message.bytes"] is Verdict.OK


@pytest.mark.parametrize("hours", [24, 24 * 30])
def test_retention_is_set_to_the_setting_either_way(hours: int) -> None:
    changed = plan(SPEC, replace(MATCHING, retention_ms=hours * 3600 * 1000))

    assert changed.configs == {"retention.ms": str(SPEC.retention_ms)}
    assert verdicts(changed)["retention.ms"] is Verdict.CHANGED


def test_fewer_partitions_are_added_only_when_asked() -> None:
    fewer = replace(MATCHING, partitions=4)

    reported = plan(SPEC, fewer)
    added = plan(SPEC, fewer, add_partitions=True)
    more = plan(SPEC, replace(MATCHING, partitions=24), add_partitions=True)

    assert not reported.changes
    (finding,) = [f for f in reported.findings if f.prop == "partitions"]
    assert finding.verdict is Verdict.MISMATCH
    assert "--add-partitions" in finding.fix
    assert added.partitions == 12
    assert verdicts(added)["partitions"] is Verdict.CHANGED
    assert not more.changes  # partitions are never taken away


def test_replication_is_reported_never_changed() -> None:
    differs = plan(SPEC, replace(MATCHING, replication_factor=3), add_partitions=True)

    assert not differs.changes
    (finding,) = [f for f in differs.findings if f.prop == "replication.factor"]
    assert finding.verdict is Verdict.MISMATCH
    assert "RDQC_TOPICS__REPLICATION_FACTOR=3" in finding.fix


def test_unapplied_turns_every_planned_change_into_a_mismatch() -> None:
    small = plan(SPEC, replace(MATCHING, max_message_bytes=65_536, partitions=4))

    by_prop = {f.prop: f for f in small.unapplied()}

    assert by_prop["max.message.bytes"].verdict is Verdict.MISMATCH
    assert by_prop["max.message.bytes"].fix == "rdqc topics ensure"
    assert by_prop["partitions"].verdict is Verdict.MISMATCH
    assert by_prop["retention.ms"].verdict is Verdict.OK


class FakeAdmin:
    """Topics in a dict; ``created_meanwhile``: names another client creates before us."""

    def __init__(
        self, topics: dict[str, TopicState], created_meanwhile: frozenset[str] = frozenset()
    ) -> None:
        self.topics = dict(topics)
        self.created_meanwhile = set(created_meanwhile)
        self.applied: list[TopicPlan] = []

    def describe(self, names: list[str]) -> list[TopicState | None]:
        return [self.topics.get(name) for name in names]

    def apply(self, topic_plan: TopicPlan) -> None:
        name = topic_plan.spec.name
        if topic_plan.create and name in self.created_meanwhile:
            self.created_meanwhile.discard(name)
            self.topics[name] = replace(MATCHING, name=name, max_message_bytes=65_536)
            raise TopicCreatedMeanwhile(name)
        self.applied.append(topic_plan)
        spec = topic_plan.spec
        state = self.topics.get(name) or TopicState(name, spec.partitions, 1, 0, 0)
        configs = topic_plan.configs if not topic_plan.create else spec.configs()
        self.topics[name] = replace(
            state,
            partitions=topic_plan.partitions or state.partitions,
            retention_ms=int(configs.get("retention.ms", state.retention_ms)),
            max_message_bytes=int(configs.get("max.message.bytes", state.max_message_bytes)),
        )


def test_ensure_applies_the_plans_and_a_second_run_is_a_no_op() -> None:
    inbound = replace(SPEC, name="frames.inbound", max_message_bytes=20 * MIB)
    admin = FakeAdmin({"frames.dlq": replace(MATCHING, max_message_bytes=65_536)})

    first = ensure(admin, [inbound, SPEC], apply=True)  # type: ignore[arg-type]
    second = ensure(admin, [inbound, SPEC], apply=True)  # type: ignore[arg-type]

    assert {(f.topic, f.verdict) for f in first} == {
        ("frames.inbound", Verdict.CREATED),
        ("frames.dlq", Verdict.OK),
        ("frames.dlq", Verdict.CHANGED),
    }
    assert {f.verdict for f in second} == {Verdict.OK}
    assert [p.spec.name for p in admin.applied] == ["frames.inbound", "frames.dlq"]


def test_check_changes_nothing_and_reports_mismatches() -> None:
    admin = FakeAdmin({})

    findings = ensure(admin, [SPEC], apply=False)  # type: ignore[arg-type]

    assert admin.applied == [] and admin.topics == {}
    assert {f.verdict for f in findings} == {Verdict.MISMATCH}


def test_a_topic_created_meanwhile_is_planned_again_from_what_it_is() -> None:
    admin = FakeAdmin({}, created_meanwhile=frozenset({"frames.dlq"}))

    findings = ensure(admin, [SPEC], apply=True)  # type: ignore[arg-type]

    by_prop = {f.prop: f.verdict for f in findings}
    assert by_prop["max.message.bytes"] is Verdict.CHANGED
    assert by_prop["partitions"] is Verdict.OK
    assert admin.topics["frames.dlq"].max_message_bytes == SPEC.max_message_bytes


def test_the_table_has_a_line_per_topic_and_property() -> None:
    findings = [
        *plan(SPEC, replace(MATCHING, max_message_bytes=65_536, partitions=4)).findings,
        *plan(replace(SPEC, name="frames.inbound"), None).findings[:1],
    ]

    lines = topics_table(findings).splitlines()

    assert lines == [
        "frames.dlq      partitions          mismatch  4, wanted >= 12; fix: rdqc topics ensure "
        "--add-partitions (new partitions take over some keys: a camera's frames around the "
        "change may be read out of order)",
        "frames.dlq      replication.factor  ok        1",
        "frames.dlq      retention.ms        ok        1209600000 (336 h)",
        "frames.dlq      max.message.bytes   changed   65536 (0.1 MiB) -> 1000000 (1.0 MiB)",
        "frames.inbound  partitions          created   12",
    ]


def test_the_summary_says_when_nothing_changed() -> None:
    same = plan(SPEC, MATCHING).findings
    created = plan(SPEC, None).findings
    missing = plan(SPEC, None).unapplied()

    assert topics_summary(same, checked=False) == "nothing to change: frames.dlq match the settings"
    assert topics_summary(created, checked=False) == (
        "topics created: 1, properties changed: 0; frames.dlq now match"
    )
    assert topics_summary(missing, checked=True).startswith("4 properties differ")


def test_unreachable_kafka_is_one_line_and_exit_code_2() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = CliRunner().invoke(
        app,
        ["topics", "ensure", "--timeout", "1"],
        env={"RDQC_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"},
    )

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"error: Kafka at 127.0.0.1:{port} not reachable within 1 s: "
        f"KafkaTimeoutError: Unable to bootstrap from 127.0.0.1:{port}\n"
    )
