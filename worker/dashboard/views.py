"""The HTML pages: overview, a line, a frame, models and workers. Each renders the same dict its
API route returns (``queries``), through autoescaping Jinja2 templates; ``static/dashboard.js``
keeps them live. A backend that does not answer gives the page its banner, not an error page.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from worker.dashboard.errors import BackendUnavailable
from worker.dashboard.queries import Queries, check_name, score_json

# Autoescaping on for every template: ids from Redis are shown as text, never as markup.
TEMPLATES = Jinja2Templates(
    env=Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)
)


def _queries(request: Request) -> Queries:
    queries: Queries = request.app.state.queries
    return queries


def _render(request: Request, template: str, load: Callable[[], Any], **context: Any) -> Response:
    try:
        data, unavailable = load(), None
    except BackendUnavailable as exc:
        data, unavailable = None, str(exc)
    response: Response = TEMPLATES.TemplateResponse(
        request,
        template,
        {"data": data, "unavailable": unavailable, **context},
        status_code=200 if unavailable is None else 503,
    )
    return response


def overview_page(request: Request) -> Response:
    return _render(request, "overview.html", _queries(request).overview, page="overview")


def line_page(request: Request) -> Response:
    line = check_name("product line", request.path_params["line"])
    return _render(
        request, "line.html", lambda: _queries(request).line(line), page="line", line=line
    )


def frame_page(request: Request) -> Response:
    params = request.path_params
    line, camera, frame_id = params["line"], params["camera"], params["frame_id"]

    def load() -> dict[str, Any]:
        return score_json(_queries(request).frame(line, camera, frame_id))

    return _render(request, "frame.html", load, page="frame", line=line)


def models_page(request: Request) -> Response:
    queries = _queries(request)

    def load() -> dict[str, Any]:
        return {"models": queries.models(), "workers": queries.workers()}

    return _render(request, "models.html", load, page="models")


ROUTES = [
    Route("/", overview_page),
    Route("/lines/{line}", line_page),
    Route("/frames/{line}/{camera}/{frame_id:path}", frame_page),
    Route("/models", models_page),
]
