"""`rdqc --help` stays fast: the command line imports no model or service dependency up front.

Each check runs in a fresh interpreter, since this test process has long since loaded torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "cv2", "kafka", "minio", "redis", "pydantic_settings")
COMMANDS = (
    "train",
    "eval",
    "score",
    "calibrate",
    "import-rd4ad",
    "export",
    "worker",
    "publish",
    "models",
    "send",
    "demo",
    "workers",
    "topics",
    "doctor",
)
# Printed last on stderr: the heavy modules loaded by then, as a JSON list.
REPORT_HEAVY = f"print(json.dumps(sorted(set({HEAVY!r}) & set(sys.modules))), file=sys.stderr)"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    # Wide, plain output: one help row per command, no colour codes around the names.
    forcing_colour = {"FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS"}
    env = {k: v for k, v in os.environ.items() if k not in forcing_colour}
    env.update(COLUMNS="200", TERMINAL_WIDTH="200", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,  # `-c` puts the working directory first on sys.path: this checkout
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def heavy_modules(result: subprocess.CompletedProcess[str]) -> list[str]:
    loaded: list[str] = json.loads(result.stderr.strip().splitlines()[-1])
    return loaded


def test_importing_the_cli_loads_no_heavy_dependency() -> None:
    result = run_python(f"import json, sys\nimport worker.cli\n{REPORT_HEAVY}")
    assert result.returncode == 0, result.stderr
    assert heavy_modules(result) == []


def test_help_lists_every_command_without_loading_a_heavy_dependency() -> None:
    code = (
        "import json, sys\n"
        "from worker.cli import main\n"
        "sys.argv = ['rdqc', '--help']\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        f"    {REPORT_HEAVY}\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    # Building the help evaluates every option type, so this also covers the commands' signatures.
    assert heavy_modules(result) == []
    first_words = {line.strip("│ ").split(" ", 1)[0] for line in result.stdout.splitlines()}
    assert set(COMMANDS) <= first_words, result.stdout
