"""Whether the settings load: a validation error is a FAIL row naming each variable."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import SettingsError

from worker.doctor.report import Row, Status
from worker.settings import DEFAULT_ENV_FILE, Settings

CHECK = "settings"
_FIX = "set the variables named above in the environment or the env file ($RDQC_ENV_FILE)"


def load_settings() -> tuple[Settings | None, Row]:
    """The settings and an OK row, or None and the FAIL row that says what is wrong."""
    env_file = os.environ.get("RDQC_ENV_FILE") or DEFAULT_ENV_FILE
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(_problem(error["loc"], error["msg"]) for error in exc.errors())
        return None, Row(CHECK, Status.FAIL, f"invalid: {problems}", _FIX)
    except SettingsError as exc:
        # Raised for a value that cannot be parsed at all, e.g. a malformed JSON section.
        return None, Row(CHECK, Status.FAIL, f"unreadable: {exc}", _FIX)
    read_from = env_file if Path(env_file).is_file() else "the environment only"
    return settings, Row(CHECK, Status.OK, f"valid (RDQC_* from {read_from})")


def env_name(loc: Sequence[str | int]) -> str:
    """``("kafka", "group_id")`` -> ``RDQC_KAFKA__GROUP_ID``, the variable that sets it."""
    return "RDQC_" + "__".join(str(part).upper() for part in loc)


def _problem(loc: Sequence[str | int], message: str) -> str:
    # A check across fields (a model validator) has the section, or nothing, as its location.
    return f"{env_name(loc)}: {message}" if loc else message
