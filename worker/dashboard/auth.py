"""The access token: required on every request when one is set (always, beyond loopback).

A script sends ``Authorization: Bearer TOKEN``. A person opens any page once with
``?token=TOKEN``: the answer sets an HttpOnly, SameSite=Strict cookie and redirects to the same
address without the token, so it leaves the address bar and the history. Tokens are compared in
constant time.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "rdqc_dashboard_token"
QUERY = "token"


class TokenAuth:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        offered = dict(query).get(QUERY)
        if offered is not None and self._matches(offered):
            await self._login(scope, query)(scope, receive, send)
        elif self._matches(_bearer(headers)) or self._matches(_cookie(headers)):
            await self._app(scope, receive, send)
        else:
            await _refusal(scope["path"])(scope, receive, send)

    def _matches(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self._token)

    def _login(self, scope: Scope, query: list[tuple[str, str]]) -> Response:
        rest = urlencode([(k, v) for k, v in query if k != QUERY])
        response = RedirectResponse(scope["path"] + (f"?{rest}" if rest else ""), 303)
        response.set_cookie(
            COOKIE,
            self._token.decode(),
            httponly=True,
            samesite="strict",
            secure=scope.get("scheme") == "https",
        )
        return response


def _bearer(headers: Headers) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value else None


def _cookie(headers: Headers) -> str | None:
    cookies = SimpleCookie()
    cookies.load(headers.get("cookie", ""))
    morsel = cookies.get(COOKIE)
    return morsel.value if morsel else None


def _refusal(path: str) -> Response:
    message = "an access token is required: open the page once with ?token=TOKEN"
    if path.startswith("/api/"):
        return JSONResponse(
            {"error": message}, 401, headers={"WWW-Authenticate": 'Bearer realm="rdqc"'}
        )
    return PlainTextResponse(message, 401)
