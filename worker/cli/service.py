"""The service commands: run the worker, publish a model to the store it reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from worker.cli.common import SERVICE_FAILURE_EXIT_CODE, load_settings, reports_user_errors
from worker.cli.models import ModelsUrl, open_registry
from worker.errors import ModelLoadError, SinkError

app = typer.Typer()


@app.command("worker")
def worker_command() -> None:
    """Run the streaming worker with the settings from RDQC_* variables (see README)."""
    from worker.service import run_worker

    settings = load_settings()
    try:
        run_worker(settings)
    except (SinkError, ModelLoadError, ConnectionError) as exc:
        # Exit 1, not the usage error's 2: a backend failed while the service ran, which a
        # supervisor treats as a crash to restart, not as a command line to fix.
        typer.echo(f"rdqc worker: {exc}", err=True)
        raise typer.Exit(SERVICE_FAILURE_EXIT_CODE) from None


@app.command("publish")
@reports_user_errors
def publish_command(
    model_dir: Annotated[
        Path, typer.Argument(help="an artifact directory (manifest.json + weights)")
    ],
    product_line: Annotated[str, typer.Option(help="the product line it serves")],
    promote: Annotated[
        bool,
        typer.Option(
            help="point current.json at it; --no-promote only uploads it (to shadow it first)"
        ),
    ] = True,
    models: ModelsUrl = None,
) -> None:
    """Upload an artifact as a new version and, unless --no-promote, make it current.

    Files go first, current.json last; a published version is never overwritten.
    """
    from worker.modelstore.publish import publish_artifact

    registry = open_registry(models, for_publishing=True)
    published = publish_artifact(registry, model_dir, product_line, promote=promote)
    typer.echo(
        json.dumps(
            {
                "product_line": product_line,
                "version": published.version,
                "sha256": published.sha256,
                "digest": published.digest,
                "uploaded": published.uploaded,
                "current": promote,
            }
        )
    )
