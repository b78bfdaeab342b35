"""``rdqc workers``: the live workers, from their heartbeats (docs/contracts.md §2)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated

import typer

from worker.cli.common import load_settings, reports_user_errors

if TYPE_CHECKING:
    from worker.heartbeat.record import Heartbeat

app = typer.Typer()

HEADER = ("WORKER", "HOST", "LAST SEEN", "SCORED", "DEAD-LETTERED", "MODELS")


@app.command("workers")
@reports_user_errors
def workers_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="the heartbeat records as a JSON array")
    ] = False,
    scores: Annotated[
        str | None,
        typer.Option(
            help="where the workers write scores, and so heartbeats (default: RDQC_SCORES)"
        ),
    ] = None,
) -> None:
    """List the live workers: host, last heartbeat, frames, model version per product line."""
    from worker.heartbeat.stores import live_workers

    settings = load_settings()
    if scores:
        settings = settings.model_copy(update={"scores": scores})
    workers = live_workers(settings)
    if as_json:
        typer.echo(json.dumps([json.loads(h.to_json()) for h in workers], indent=2))
    elif not workers:
        typer.echo("no live workers", err=True)
    else:
        typer.echo(table(workers, now_ms=int(time.time() * 1000)))


def table(workers: list[Heartbeat], now_ms: int) -> str:
    """One row per worker and product line: ``line version (short digest)``, shadow after."""
    rows = [HEADER]
    for heartbeat in workers:
        ago_s = max(0, now_ms - heartbeat.last_seen_ms) / 1000
        models = [_models_cell(line, heartbeat) for line in sorted(heartbeat.models)] or ["-"]
        first, *more = models
        rows.append(
            (
                heartbeat.worker_id,
                heartbeat.host,
                f"{ago_s:.0f} s ago",
                str(heartbeat.frames_scored),
                str(heartbeat.frames_dead_lettered),
                first,
            )
        )
        rows += [("", "", "", "", "", cell) for cell in more]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    )


def _models_cell(line: str, heartbeat: Heartbeat) -> str:
    models = heartbeat.models[line]
    cell = f"{line} {models.live.version} ({models.live.short_digest})"
    if models.shadow is not None:
        cell += f", shadow {models.shadow.version} ({models.shadow.short_digest})"
    return cell
