"""Live scores of a line as server-sent events, tailing the stream (``XREAD BLOCK`` from the
last entry sent; the embedded file from its last line), never re-reading it whole.

``sse-starlette`` rather than a bare StreamingResponse: it sends keep-alive pings (so proxies
and load balancers keep an idle stream open), stops the generator when the browser goes away,
and ends open streams when uvicorn shuts down instead of holding the shutdown up.

Events: ``scores`` (a JSON array of results, oldest first; the event id is the cursor, so a
reconnecting browser resumes after the last one it got) and ``unavailable`` (the scores store
did not answer; the stream keeps trying). EventSource reconnects by itself after ``retry`` ms.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.dashboard.errors import BackendUnavailable
from worker.dashboard.queries import Queries, check_name, score_json

WAIT_S = 2.0
RETRY_MS = 2000
PING_S = 15
# A stream entry id or a line count: anything else from the browser is ignored.
_CURSOR = re.compile(r"\d{1,20}(-\d{1,20})?")


async def _events(
    queries: Queries, line: str, cursor: str | None
) -> AsyncIterator[ServerSentEvent]:
    reader = queries.sources.scores
    while True:
        try:
            tail = await anyio.to_thread.run_sync(reader.tail, line, cursor, WAIT_S)
        except BackendUnavailable as exc:
            yield ServerSentEvent(json.dumps({"error": exc.detail}), event="unavailable")
            await anyio.sleep(WAIT_S)
            continue
        cursor = tail.cursor
        if tail.scores:
            data = json.dumps([score_json(score) for score in tail.scores])
            yield ServerSentEvent(data, event="scores", id=cursor, retry=RETRY_MS)


def line_events(request: Request) -> Response:
    line = check_name("product line", request.path_params["line"])
    offered = request.headers.get("last-event-id", "")
    cursor = offered if _CURSOR.fullmatch(offered) else None
    return EventSourceResponse(_events(request.app.state.queries, line, cursor), ping=PING_S)


ROUTES = [Route("/api/lines/{line}/events", line_events)]
