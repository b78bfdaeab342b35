"""The JSON API behind every view (docs/dashboard.md lists each route and its fields).

Handlers are plain functions: Starlette runs them on its thread pool, where the blocking Redis,
S3 and file reads belong. Errors become JSON in ``app``: 404 for what is not there, 503 naming
the backend that did not answer.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.dashboard.queries import Queries, score_json

MAX_LIMIT = 5000
# Heatmaps are immutable once their score is written (contracts §3): caching them in the
# browser is safe, and private keeps shared proxies from holding line images.
_IMAGE_CACHE = "private, max-age=3600"


def _queries(request: Request) -> Queries:
    queries: Queries = request.app.state.queries
    return queries


def _limit(request: Request, default: int) -> int:
    try:
        value = int(request.query_params.get("limit", default))
    except ValueError:
        value = default
    return max(1, min(value, MAX_LIMIT))


def health(request: Request) -> Response:
    answer = _queries(request).health()
    return JSONResponse(answer, 200 if answer["ok"] else 503)


def overview(request: Request) -> Response:
    return JSONResponse(_queries(request).overview())


def line(request: Request) -> Response:
    return JSONResponse(_queries(request).line(request.path_params["line"]))


def flagged(request: Request) -> Response:
    queries = _queries(request)
    limit = _limit(request, queries.settings.gallery_size)
    return JSONResponse(queries.flagged(request.path_params["line"], limit))


def scores(request: Request) -> Response:
    queries = _queries(request)
    limit = _limit(request, queries.settings.chart_points)
    return JSONResponse(queries.scores(request.path_params["line"], limit))


def frame(request: Request) -> Response:
    params = request.path_params
    score = _queries(request).frame(params["line"], params["camera"], params["frame_id"])
    return JSONResponse(score_json(score))


def heatmap(request: Request) -> Response:
    params = request.path_params
    thumb = request.query_params.get("size") == "thumb"
    image = _queries(request).heatmap(
        params["line"], params["camera"], params["frame_id"], thumb=thumb
    )
    media_type = "image/jpeg" if thumb else "image/png"
    return Response(image, media_type=media_type, headers={"Cache-Control": _IMAGE_CACHE})


def models(request: Request) -> Response:
    return JSONResponse(_queries(request).models())


def workers(request: Request) -> Response:
    return JSONResponse(_queries(request).workers())


def product_lines(request: Request) -> Response:
    return JSONResponse(_queries(request).product_lines())


ROUTES = [
    Route("/api/health", health),
    Route("/api/overview", overview),
    Route("/api/lines", product_lines),
    Route("/api/lines/{line}", line),
    Route("/api/lines/{line}/flagged", flagged),
    Route("/api/lines/{line}/scores", scores),
    Route("/api/frames/{line}/{camera}/{frame_id:path}", frame),
    Route("/api/heatmaps/{line}/{camera}/{frame_id:path}", heatmap),
    Route("/api/models", models),
    Route("/api/workers", workers),
]
