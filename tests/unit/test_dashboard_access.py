"""Who may open the dashboard: loopback by default, a token required beyond it, and the token
accepted as a bearer header or as a cookie set by a one-time ``?token=`` login."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from typer.testing import CliRunner

from worker.cli import app as cli_app
from worker.cli.dashboard import is_loopback
from worker.dashboard.auth import COOKIE, TokenAuth

pytestmark = pytest.mark.unit

TOKEN = "s3cret-token"


def page(_request: Request) -> Response:
    return PlainTextResponse("the line")


@pytest.fixture
def client() -> TestClient:
    app = Starlette(routes=[Route("/", page), Route("/api/overview", page)])
    return TestClient(TokenAuth(app, TOKEN), follow_redirects=False)


def test_requests_without_the_token_are_refused(client: TestClient) -> None:
    assert client.get("/").status_code == 401
    refused = client.get("/api/overview", headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401 and "token" in refused.json()["error"]
    assert client.get("/?token=wrong").status_code == 401


def test_a_bearer_header_opens_the_api(client: TestClient) -> None:
    answer = client.get("/api/overview", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.text == "the line"


def test_a_token_login_sets_a_cookie_and_drops_the_token_from_the_address(
    client: TestClient,
) -> None:
    login = client.get(f"/?token={TOKEN}&line=caps")
    assert login.status_code == 303 and login.headers["location"] == "/?line=caps"
    cookie = login.headers["set-cookie"]
    assert f"{COOKIE}={TOKEN}" in cookie and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    client.cookies.set(COOKIE, TOKEN)
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_binding_beyond_loopback_without_a_token_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RDQC_DASHBOARD__TOKEN", raising=False)
    monkeypatch.setenv("RDQC_ENV_FILE", "/nonexistent/stack.env")
    result = CliRunner().invoke(cli_app, ["dashboard", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "RDQC_DASHBOARD__TOKEN" in result.output
