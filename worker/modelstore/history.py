"""The history of a product line's pointers: one JSON object per change (docs/contracts.md §4).

Entries live at ``{line}/history/{yyyymmddThhmmss.ffffffZ}-{6 hex}.json``, so listing the keys
in name order lists the changes in time order; the random suffix keeps two changes in the same
microsecond apart. An entry is never rewritten.
"""

from __future__ import annotations

import getpass
import json
import secrets
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from rdcore.errors import ArtifactError
from worker.modelstore.layout import (
    VersionRef,
    check_digest,
    check_version_name,
    history_prefix,
    to_json,
)

Action = Literal["publish", "promote", "rollback", "shadow", "unshadow"]
ACTIONS: tuple[Action, ...] = get_args(Action)
# Actions that move current.json; the others move shadow.json.
CURRENT_ACTIONS: frozenset[Action] = frozenset({"publish", "promote", "rollback"})


@dataclass(frozen=True)
class HistoryEntry:
    """One pointer change. ``version``/``digest``: the version the action is about (for
    ``unshadow``, the one no longer shadowed); ``previous``: what the pointer named before."""

    at: str  # ISO 8601, UTC, microseconds
    action: Action
    version: str
    digest: str
    previous: VersionRef | None
    by: str  # user@host

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # the contract's field names and order, ``previous`` nested


def new_entry(
    action: Action, target: VersionRef, previous: VersionRef | None, by: str
) -> tuple[str, HistoryEntry]:
    """An entry for a change made now, and its name under the line's ``history/``."""
    now = datetime.now(UTC)
    entry = HistoryEntry(
        at=iso_utc(now),
        action=action,
        version=target.version,
        digest=target.digest,
        previous=previous,
        by=by,
    )
    return f"{now:%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(3)}.json", entry


def iso_utc(moment: datetime) -> str:
    """``2026-12-02T10:15:00.123456Z``: the time format of the store's JSON files."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def history_key(product_line: str, name: str) -> str:
    return f"{history_prefix(product_line)}{name}"


def encode_entry(entry: HistoryEntry) -> bytes:
    return to_json(entry.to_dict())


def decode_entry(data: bytes, where: str) -> HistoryEntry:
    try:
        parsed = json.loads(data)
        action = parsed["action"]
        if action not in ACTIONS:
            raise ArtifactError(f"unknown action {action!r}, expected one of {ACTIONS}")
        previous = parsed["previous"]
        return HistoryEntry(
            at=str(parsed["at"]),
            action=action,
            version=check_version_name(parsed["version"]),
            digest=check_digest("digest", parsed["digest"]),
            previous=None
            if previous is None
            else VersionRef(
                check_version_name(previous["version"]),
                check_digest("previous digest", previous["digest"]),
            ),
            by=str(parsed["by"]),
        )
    except (ValueError, KeyError, TypeError, ArtifactError) as exc:
        raise ArtifactError(f"{where} is not a history entry: {exc}") from exc


def rollback_target(newest_first: Iterable[HistoryEntry]) -> VersionRef | None:
    """What ``current.json`` named before the latest change not rolled back yet; None if none.

    Each rollback undoes one publish or promote, so rolling back twice goes back two steps
    rather than toggling between two versions.
    """
    undone = 0
    for entry in newest_first:
        if entry.action == "rollback":
            undone += 1
        elif entry.action in CURRENT_ACTIONS:
            if undone == 0:
                return entry.previous
            undone -= 1
    return None


def current_user() -> str:
    """``user@host`` of whoever runs the command, for the entries it writes."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no password entry, as in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
