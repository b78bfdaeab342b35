"""docs/deploy.md shows the very commands these tests run to lint and render the chart."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from chart_render import (
    REPO_ROOT,
    example_files,
    lint_command,
    run_helm,
    template_command,
    variants,
)

pytestmark = pytest.mark.unit

DEPLOY_DOC = REPO_ROOT / "docs" / "deploy.md"
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
CHECKED_COMMANDS = (("helm", "lint"), ("helm", "template"))


def doc_chart_commands() -> list[list[str]]:
    """The `helm lint` and `helm template` command lines of the doc's bash blocks."""
    commands = []
    for block in BASH_BLOCK.findall(DEPLOY_DOC.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if tuple(words[:2]) in CHECKED_COMMANDS:
                commands.append(words)
    return commands


def test_doc_shows_the_tests_commands_for_every_variant() -> None:
    expected = [lint_command(v) for v in variants()] + [template_command(v) for v in variants()]
    assert sorted(doc_chart_commands()) == sorted(expected)


def test_every_example_is_in_the_doc() -> None:
    shown = {word for command in doc_chart_commands() for word in command}
    assert {str(path) for path in example_files()} <= shown


@pytest.mark.parametrize("command", doc_chart_commands(), ids=" ".join)
def test_doc_command_succeeds(helm: Path, command: list[str]) -> None:
    result = run_helm(helm, command)
    assert result.returncode == 0, result.stderr
