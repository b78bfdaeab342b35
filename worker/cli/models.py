"""``rdqc models``: list, show, promote, roll back, shadow and compare the versions in the model
store.

Every command works on the store of RDQC_MODELS, or of ``--models URL`` (``dir://PATH`` or
``s3://BUCKET``), through worker/modelstore/registry.py. Workers take up a change of
``current.json`` within RDQC_MODELS__POLL_S. The registry loads torch (a manifest's calibration
does), so each command imports it in its body.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from worker.cli import compare
from worker.cli.common import load_settings, reports_user_errors
from worker.errors import WorkerError

if TYPE_CHECKING:
    from worker.modelstore.history import HistoryEntry
    from worker.modelstore.registry import ModelRegistry

app = typer.Typer(
    help="List, inspect, promote, roll back, shadow and compare model versions.",
    no_args_is_help=True,
)
# `rdqc models compare` reads the shadow entries beside the scores, not the store.
app.add_typer(compare.app)

ModelsUrl = Annotated[
    str | None, typer.Option("--models", help="model store URL (default: RDQC_MODELS)")
]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON, for scripts")]
Line = Annotated[str, typer.Argument(help="the product line")]
Version = Annotated[str, typer.Argument(help="a published version of the line")]
SHORT_DIGEST = 12


def open_registry(models: str | None, *, for_publishing: bool = False) -> ModelRegistry:
    """The registry over the configured model store, or over ``models`` when given."""
    from worker.wiring import model_repository

    settings = load_settings()
    if models:
        settings = settings.model_copy(
            update={"models": settings.models.model_copy(update={"url": models})}
        )
    registry = model_repository(settings, for_publishing=for_publishing)
    registry.setup()
    return registry


@app.command("list")
@reports_user_errors
def list_command(
    product_line: Annotated[
        str | None, typer.Option(help="only this product line (default: every line)")
    ] = None,
    as_json: AsJson = False,
    models: ModelsUrl = None,
) -> None:
    """The published versions: created, backbone, size, threshold, metrics, digest, status."""
    from worker.modelstore.catalog import list_versions

    registry = open_registry(models)
    lines = [product_line] if product_line else registry.product_lines()
    summaries = [summary for line in lines for summary in list_versions(registry, line)]
    serving = _workers_serving()
    if as_json:
        _print_json(
            [
                s.to_dict() | _worker_counts(serving, s.product_line, s.digest, as_json=True)
                for s in summaries
            ]
        )
        return
    rows = [
        [
            s.product_line,
            s.version,
            s.created_at or "-",
            s.backbone or "-",
            "-" if s.image_size is None else str(s.image_size),
            "-" if s.threshold is None else f"{s.threshold:.6g}",
            " ".join(f"{name}={value:.3f}" for name, value in s.metrics.items()) or "-",
            "-" if s.digest is None else s.digest[:SHORT_DIGEST],
            _status(s.current, s.shadow, s.problem),
            _worker_counts(serving, s.product_line, s.digest, as_json=False)["workers"],
        ]
        for s in summaries
    ]
    headers = ["LINE", "VERSION", "CREATED", "BACKBONE", "SIZE", "THRESHOLD", "METRICS"]
    _print_table([*headers, "DIGEST", "STATUS", "WORKERS"], rows)
    for s in summaries:
        if s.problem is not None:
            typer.echo(f"{s.product_line}/{s.version} is broken: {s.problem}", err=True)


@app.command("show")
@reports_user_errors
def show_command(
    product_line: Line, version: Version, as_json: AsJson = False, models: ModelsUrl = None
) -> None:
    """One version's manifest in short, and whether it is current or shadowed."""
    from worker.modelstore.catalog import describe_version

    described = describe_version(open_registry(models), product_line, version)
    if as_json:
        _print_json(described)
        return
    for key, value in described.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else value
        typer.echo(f"{key}: {shown}")


@app.command("promote")
@reports_user_errors
def promote_command(product_line: Line, version: Version, models: ModelsUrl = None) -> None:
    """Point current.json at VERSION (ending any shadow); recorded in the history."""
    entry = open_registry(models).promote(product_line, version)
    _print_change(product_line, entry, f"{version} is already the current version")


@app.command("rollback")
@reports_user_errors
def rollback_command(product_line: Line, models: ModelsUrl = None) -> None:
    """Point current.json back to the version before its last change not yet rolled back."""
    _print_change(product_line, open_registry(models).rollback(product_line), "")


@app.command("shadow")
@reports_user_errors
def shadow_command(
    product_line: Line,
    version: Annotated[
        str | None, typer.Argument(help="the candidate to score beside the current version")
    ] = None,
    stop: Annotated[bool, typer.Option("--stop", help="stop shadowing")] = False,
    models: ModelsUrl = None,
) -> None:
    """Shadow VERSION (workers score it beside the current one), or --stop."""
    if (version is None) == (not stop):
        raise typer.BadParameter("give a VERSION to shadow, or --stop (not both)")
    registry = open_registry(models)
    if version is None:
        _print_change(product_line, registry.stop_shadow(product_line), "")
        return
    entry = registry.start_shadow(product_line, version)
    _print_change(product_line, entry, f"{version} is already shadowed")


@app.command("history")
@reports_user_errors
def history_command(product_line: Line, as_json: AsJson = False, models: ModelsUrl = None) -> None:
    """Every change of the line's current and shadow pointers, oldest first."""
    entries = open_registry(models).history(product_line)
    if as_json:
        _print_json([entry.to_dict() for entry in entries])
        return
    rows = [
        [
            e.at,
            e.action,
            e.version,
            e.digest[:SHORT_DIGEST],
            "-" if e.previous is None else e.previous.version,
            e.by,
        ]
        for e in entries
    ]
    _print_table(["AT", "ACTION", "VERSION", "DIGEST", "PREVIOUS", "BY"], rows)


Serving = dict[str, dict[tuple[str, str], int]]


def _workers_serving() -> Serving | None:
    """Live workers per (product line, digest), as their live and their shadow model, from the
    heartbeats beside the scores (RDQC_SCORES); None, with a warning, when they can't be read."""
    from worker.heartbeat import live_workers, workers_by_version

    try:
        heartbeats = live_workers(load_settings())
    except WorkerError as exc:
        typer.echo(f"warning: live workers unknown: {exc}", err=True)
        return None
    return {
        role: {key: len(workers) for key, workers in workers_by_version(heartbeats, role).items()}
        for role in ("live", "shadow")
    }


def _worker_counts(
    serving: Serving | None, product_line: str, digest: str | None, *, as_json: bool
) -> dict[str, Any]:
    """How many live workers serve the version, and shadow-test it; unknown without heartbeats."""
    counts: dict[str, int | None] = {"live_workers": None, "shadow_workers": None}
    if serving is not None and digest is not None:
        key = (product_line, digest)
        counts = {role + "_workers": serving[role].get(key, 0) for role in ("live", "shadow")}
    if as_json:
        return counts
    live, shadow = counts["live_workers"], counts["shadow_workers"]
    if live is None:
        return {"workers": "?"}
    return {"workers": f"{live}" + (f" (+{shadow} shadow)" if shadow else "")}


def _status(current: bool, shadow: bool, problem: str | None) -> str:
    flags = [("current", current), ("shadow", shadow), ("broken", problem is not None)]
    return ",".join(name for name, on in flags if on) or "-"


def _print_change(product_line: str, entry: HistoryEntry | None, unchanged: str) -> None:
    """The history entry a change wrote, as JSON; or, when nothing changed, why."""
    if entry is None:
        _print_json({"product_line": product_line, "changed": False, "reason": unchanged})
    else:
        _print_json({"product_line": product_line, "changed": True, **entry.to_dict()})


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    # Plain columns, as wide as their widest cell: the same in a terminal, a pipe or a log.
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    for row in [headers, *rows]:
        typer.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
