"""``rdqc models compare``: how the shadow candidate judged a product line's frames.

Reads the shadow entries where the worker wrote them, beside the scores: the Redis stream
``{prefix}:shadow:{product_line}`` or ``shadow.jsonl`` beside a ``file://`` scores file
(docs/contracts.md §2). Redis and the settings are imported in the command's body.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from worker.cli.common import load_settings, reports_user_errors

if TYPE_CHECKING:
    from worker.settings import Settings
    from worker.sinks.shadow_entry import StoredEntries

app = typer.Typer()


@app.command("compare")
@reports_user_errors
def compare_command(
    product_line: Annotated[str, typer.Argument(help="the product line under a shadow test")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    limit: Annotated[
        int, typer.Option(min=0, help="how many of the most disagreeing frames to list")
    ] = 10,
    candidate: Annotated[
        str | None, typer.Option(help="candidate version (default: the newest entry's)")
    ] = None,
    scores: Annotated[
        str | None, typer.Option(help="scores URL the shadow entries sit beside (RDQC_SCORES)")
    ] = None,
) -> None:
    """Current model vs shadow candidate on the frames both scored: flag rates, agreement,
    confusion, score correlation and shift, and the frames they disagree on most."""
    from worker.cli.shadow_summary import format_table, summarize

    settings = load_settings()
    stored = _read(settings, scores or settings.scores, product_line)
    summary = summarize(stored.entries, product_line, candidate=candidate, limit=limit)
    if as_json:
        typer.echo(json.dumps({**summary.to_json(), "unreadable_records": stored.skipped}))
        return
    typer.echo(format_table(summary))
    if stored.skipped:
        typer.echo(f"({stored.skipped} unreadable records skipped)")


def _read(settings: Settings, scores_url: str, product_line: str) -> StoredEntries:
    from worker.backend_urls import mask_url, parse_backend_url
    from worker.cli.shadow_summary import ShadowReportError

    scheme, location = parse_backend_url(scores_url)
    if scheme == "file":
        from worker.sinks.shadow_jsonl import read_shadow_file, shadow_file_beside

        path = shadow_file_beside(location)
        if not path.is_file():
            raise ShadowReportError(f"no shadow entries: {path} does not exist")
        return read_shadow_file(path, product_line)
    if scheme == "redis":
        import redis

        from worker.sinks.shadow_redis import read_shadow_stream

        redis_settings = settings.redis
        url = scores_url if location else redis_settings.url.get_secret_value()
        client = redis.Redis.from_url(
            url,
            socket_timeout=redis_settings.socket_timeout_s,
            socket_connect_timeout=redis_settings.connect_timeout_s,
        )
        try:
            return read_shadow_stream(client, redis_settings.prefix, product_line)
        finally:
            client.close()
    raise ShadowReportError(
        f"scores URL {mask_url(scores_url)!r}: shadow entries are read from redis:// or file://"
    )
