"""Fixtures for the Helm chart's tests.

helm       Path of the pinned helm binary, from the file `make tools`
           (deploy/tools/install-chart-tools.sh) writes; skips the test when it is missing,
           fails it when CI=true.
crd_dir    the folder of CRD files for the custom kinds the chart renders, from the same file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

TOOLS_ENV_NAME = "chart-tools.env"


def _tools_unavailable(reason: str) -> NoReturn:
    message = f"chart tools not available: {reason}. Run `make tools` first."
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _tools_env_file() -> Path:
    cache_dir = os.environ.get("RDQC_CACHE_DIR") or Path.home() / ".cache" / "rdqc"
    return Path(cache_dir) / TOOLS_ENV_NAME


@pytest.fixture(scope="session")
def chart_tools() -> dict[str, Path]:
    env_file = _tools_env_file()
    if not env_file.is_file():
        _tools_unavailable(f"{env_file} is missing")
    tools = {}
    for line in env_file.read_text().splitlines():
        name, separator, value = line.partition("=")
        if separator:
            tools[name.strip()] = Path(value.strip())
    return tools


def _tool(chart_tools: dict[str, Path], name: str) -> Path:
    path = chart_tools.get(name)
    if path is None:
        _tools_unavailable(f"{_tools_env_file()} does not name {name}")
    if not path.exists():
        _tools_unavailable(f"{name}={path} does not exist")
    return path


@pytest.fixture(scope="session")
def helm(chart_tools: dict[str, Path]) -> Path:
    return _tool(chart_tools, "RDQC_HELM")


@pytest.fixture(scope="session")
def crd_dir(chart_tools: dict[str, Path]) -> Path:
    return _tool(chart_tools, "RDQC_CHART_CRDS")
