"""Operator commands: ``rdqc topics ensure`` (the Kafka topics) and ``rdqc doctor`` (a preflight).

Both read the RDQC_* settings like the worker. Kafka, Redis, MinIO and torch are imported in the
command bodies, so ``rdqc --help`` loads none of them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from worker.cli.common import load_settings, reports_user_errors

if TYPE_CHECKING:
    from worker.kafka_topics import Finding

app = typer.Typer()
topics_app = typer.Typer(
    help="The Kafka topics rdqc reads and writes (frames in, dead letters).",
    no_args_is_help=True,
)
app.add_typer(topics_app, name="topics")

DIFFERS_EXIT_CODE = 1
_MIB = 1024 * 1024
_HOUR_MS = 3600 * 1000

Timeout = Annotated[
    float, typer.Option("--timeout", min=0.1, help="Seconds each service call may take.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@topics_app.command("ensure")
@reports_user_errors
def topics_ensure_command(
    check: Annotated[
        bool,
        typer.Option("--check", help="Change nothing; exit 1 when anything differs."),
    ] = False,
    add_partitions: Annotated[
        bool,
        typer.Option(
            "--add-partitions",
            help="Raise a topic's partition count to RDQC_TOPICS__PARTITIONS.",
        ),
    ] = False,
    as_json: AsJson = False,
    timeout_s: Timeout = 5.0,
) -> None:
    """Create or fix the inbound and dead-letter topics to match the settings.

    A missing topic is created; retention.ms is set and a too small max.message.bytes raised
    in place. Fewer partitions are raised only with --add-partitions; replication is reported,
    never changed. Exit 0 when the topics match (now), 1 when something still differs, 2 when
    Kafka cannot be reached or refuses a change.
    """
    from worker.kafka_topics import TopicAdmin, ensure, topic_specs

    settings = load_settings()
    specs = topic_specs(settings)
    with TopicAdmin(settings.kafka, timeout_s) as admin:
        findings = ensure(admin, specs, apply=not check, add_partitions=add_partitions)
    if as_json:
        typer.echo(json.dumps([_finding_json(f) for f in findings], indent=2))
    else:
        typer.echo(topics_table(findings))
        typer.echo(topics_summary(findings, checked=check))
    if any(f.verdict == "mismatch" for f in findings):
        raise typer.Exit(DIFFERS_EXIT_CODE)


@app.command("doctor")
def doctor_command(
    product_lines: Annotated[
        list[str] | None,
        typer.Option(
            "--product-line",
            help="A line that must have a current model; repeat for more.",
        ),
    ] = None,
    as_json: AsJson = False,
    timeout_s: Timeout = 3.0,
) -> None:
    """Check settings, Kafka, topics, Redis, S3, paths, models and the GPU before a worker starts.

    Prints one row per check (OK, WARN, FAIL or SKIP) with the fix for each problem; exits 1 when
    any check fails, 0 otherwise. Backends not in use are skipped.
    """
    from worker.doctor.report import exit_code, summary, table, to_json
    from worker.doctor.run import run_checks

    rows = run_checks(product_lines or [], timeout_s)
    if as_json:
        typer.echo(to_json(rows))
    else:
        typer.echo(table(rows))
        typer.echo(summary(rows))
    raise typer.Exit(exit_code(rows))


def topics_table(findings: Sequence[Finding]) -> str:
    """One line per topic and property: the verdict, the value, and the fix of a mismatch."""
    topic_width = max(len(f.topic) for f in findings)
    prop_width = max(len(f.prop) for f in findings)
    lines = []
    for finding in findings:
        cells = (finding.topic.ljust(topic_width), finding.prop.ljust(prop_width))
        verdict = str(finding.verdict).ljust(len("mismatch"))
        lines.append(f"{cells[0]}  {cells[1]}  {verdict}  {_outcome(finding)}")
    return "\n".join(lines)


def topics_summary(findings: Sequence[Finding], *, checked: bool) -> str:
    counts = Counter(str(f.verdict) for f in findings)
    topics = " and ".join(dict.fromkeys(f.topic for f in findings))
    if counts["mismatch"]:
        action = "fix what `rdqc topics ensure` can" if checked else "see the fixes above"
        return f"{counts['mismatch']} properties differ from the settings: {action}"
    if counts["created"] or counts["changed"]:
        created = len({f.topic for f in findings if f.verdict == "created"})
        changed = counts["changed"]
        return f"topics created: {created}, properties changed: {changed}; {topics} now match"
    return f"nothing to change: {topics} match the settings"


def _outcome(finding: Finding) -> str:
    wanted = _value(finding.prop, finding.wanted)
    actual = "absent" if finding.actual is None else _value(finding.prop, finding.actual)
    if finding.verdict == "ok":
        return actual
    if finding.verdict == "created":
        return wanted
    if finding.verdict == "changed":
        return f"{actual} -> {wanted}"
    at_least = ">= " if finding.minimum else ""
    return f"{actual}, wanted {at_least}{wanted}; fix: {finding.fix}"


def _value(prop: str, value: int) -> str:
    if prop == "max.message.bytes":
        return f"{value} ({value / _MIB:.1f} MiB)"
    if prop == "retention.ms":
        return f"{value} ({value / _HOUR_MS:g} h)"
    return str(value)


def _finding_json(finding: Finding) -> dict[str, object]:
    return {
        "topic": finding.topic,
        "property": finding.prop,
        "verdict": str(finding.verdict),
        "actual": finding.actual,
        "wanted": finding.wanted,
        "minimum": finding.minimum,
        "fix": finding.fix,
    }
