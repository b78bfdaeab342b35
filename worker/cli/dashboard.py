"""``rdqc dashboard``: the read-only ops dashboard over the worker's scores, heatmaps and models.

Connections come from the worker's settings (RDQC_SCORES, RDQC_HEATMAPS, RDQC_MODELS, the env
file), each replaceable by an option; the dashboard's own settings are RDQC_DASHBOARD__*
(worker/dashboard/settings.py). Starlette, uvicorn and the backends are imported in the body,
so ``rdqc --help`` stays fast.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from worker.cli.common import USER_ERROR_EXIT_CODE, load_settings, reports_user_errors

app = typer.Typer()

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@app.command("dashboard")
@reports_user_errors
def dashboard_command(
    host: Annotated[
        str, typer.Option(help="address to bind; beyond loopback RDQC_DASHBOARD__TOKEN is required")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on")] = 8000,
    scores: Annotated[
        str | None, typer.Option(help="scores URL: redis:// or file://PATH (default: RDQC_SCORES)")
    ] = None,
    heatmaps: Annotated[
        str | None, typer.Option(help="heatmaps URL: s3://BUCKET or dir://PATH (RDQC_HEATMAPS)")
    ] = None,
    models: Annotated[
        str | None, typer.Option(help="model store URL: s3://BUCKET or dir://PATH (RDQC_MODELS)")
    ] = None,
) -> None:
    """Serve the ops dashboard: live scores per camera, flagged frames with their heatmaps,
    models and workers, and the JSON API behind them (docs/dashboard.md)."""
    import uvicorn
    from pydantic import ValidationError

    from worker.dashboard.app import create_app
    from worker.dashboard.queries import Queries
    from worker.dashboard.settings import DashboardSettings
    from worker.dashboard.sources import open_sources

    settings = load_settings()
    try:
        overrides = {"scores": scores, "heatmaps": heatmaps, "models": models}
        settings = type(settings).model_validate(
            settings.model_dump() | {k: v for k, v in overrides.items() if v}
        )
        dashboard = DashboardSettings()
    except ValidationError as exc:
        typer.echo(f"rdqc dashboard: invalid settings:\n{exc}", err=True)
        raise typer.Exit(USER_ERROR_EXIT_CODE) from None
    token = dashboard.token.get_secret_value() if dashboard.token else None
    if not is_loopback(host) and not token:
        typer.echo(
            f"rdqc dashboard: binding {host} reaches beyond this machine; set "
            "RDQC_DASHBOARD__TOKEN (the access token) or bind 127.0.0.1",
            err=True,
        )
        raise typer.Exit(USER_ERROR_EXIT_CODE)
    application = create_app(Queries(open_sources(settings), dashboard), token=token)
    typer.echo(f"rdqc dashboard on http://{host}:{port}/", err=True)
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)
