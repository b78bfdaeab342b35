"""The doctor's rows, the table they print as, and the exit code they make."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum

HEADER = ("CHECK", "STATUS", "DETAIL")
FAILED_EXIT_CODE = 1


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Row:
    """One check's outcome; ``fix`` says what to do about a FAIL or WARN."""

    check: str
    status: Status
    detail: str
    fix: str = ""


def exit_code(rows: Sequence[Row]) -> int:
    """1 when any check failed; warnings and skipped checks do not fail the preflight."""
    return FAILED_EXIT_CODE if any(row.status is Status.FAIL for row in rows) else 0


def table(rows: Sequence[Row]) -> str:
    """Aligned columns; a fix goes on its own line under its row's detail."""
    check_width = max(len(HEADER[0]), *(len(row.check) for row in rows))
    status_width = max(len(status) for status in (HEADER[1], *Status))
    lines = [_line(check_width, status_width, *HEADER)]
    for row in rows:
        lines.append(_line(check_width, status_width, row.check, row.status, row.detail))
        if row.fix and row.status in (Status.FAIL, Status.WARN):
            lines.append(_line(check_width, status_width, "", "", f"fix: {row.fix}"))
    return "\n".join(lines)


def summary(rows: Sequence[Row]) -> str:
    counts = Counter(row.status for row in rows)
    counted = ", ".join(f"{counts[status]} {status}" for status in Status if counts[status])
    verdict = "failed" if exit_code(rows) else "passed"
    return f"doctor {verdict}: {counted}"


def to_json(rows: Sequence[Row]) -> str:
    checks = [{**asdict(row), "status": str(row.status)} for row in rows]
    return json.dumps({"ok": exit_code(rows) == 0, "checks": checks}, indent=2)


def _line(check_width: int, status_width: int, check: str, status: str, detail: str) -> str:
    return f"{check.ljust(check_width)}  {status.ljust(status_width)}  {detail}".rstrip()
