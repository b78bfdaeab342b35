"""The ASGI application: API, events, pages and static files, behind the security headers and,
when a token is set, the token check. Only GET routes: nothing here writes anywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from worker.dashboard import api, events, views
from worker.dashboard.auth import TokenAuth
from worker.dashboard.errors import BackendUnavailable, NotFound
from worker.dashboard.queries import Queries
from worker.dashboard.security_headers import SecurityHeaders

STATIC = Path(__file__).parent / "static"


def _not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": str(exc)}, 404)
    return PlainTextResponse(f"not found: {exc}", 404)


def _unavailable(_request: Request, exc: Exception) -> Response:
    body = {"error": str(exc)}
    if isinstance(exc, BackendUnavailable):
        body = {"error": exc.detail, "component": exc.component}
    return JSONResponse(body, 503, headers={"Retry-After": "2"})


def create_app(queries: Queries, *, token: str | None = None) -> Starlette:
    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        queries.sources.close()

    middleware = [Middleware(SecurityHeaders)]
    if token:
        middleware.append(Middleware(TokenAuth, token=token))
    app = Starlette(
        routes=[
            *api.ROUTES,
            *events.ROUTES,
            *views.ROUTES,
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=middleware,
        exception_handlers={NotFound: _not_found, BackendUnavailable: _unavailable},
        lifespan=lifespan,
    )
    app.state.queries = queries
    return app
