"""Shared pytest setup: tests are marked by the folder they live in."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

TESTS_DIR = Path(__file__).resolve().parent
FOLDER_MARKS = {
    TESTS_DIR / "unit": pytest.mark.unit,
    TESTS_DIR / "integration": pytest.mark.integration,
}


# tryfirst: the marks must be on before `-m unit` / `-m integration` deselects anything.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path.resolve()
        for folder, mark in FOLDER_MARKS.items():
            if path.is_relative_to(folder):
                item.add_marker(mark)


@pytest.fixture(autouse=True)
def isolated_logging() -> Iterator[None]:
    """Undo a worker's logging set-up after each test.

    A worker under test points the root handler at this test's captured stderr, which pytest
    closes afterwards; later tests would log into a closed stream.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
