"""Loading a state dict that must fit a module exactly, refused with an error naming the misfit.

Weights from files (artifacts, official RD4AD checkpoints, teacher backbones) are loaded only
through here: a key that is missing, unexpected or of another shape is never silently skipped.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from torch import nn

from rdcore.errors import RdcoreError

# Enough keys to recognise the misfit (a layer renamed, another backbone) without a wall of text.
_KEYS_SHOWN = 10


def load_exactly(
    module: nn.Module,
    state: Mapping[str, Any],
    *,
    source: str,
    target: str,
    error: type[RdcoreError],
    ignore: tuple[str, ...] = (),
) -> None:
    """Load ``state`` into ``module``; ``error`` says "``source`` does not fit ``target``: why".

    Keys starting with a prefix in ``ignore`` are left out on both sides: parts of ``module`` that
    are never used, whose weights ``state`` may or may not carry.
    """
    used = {key: value for key, value in state.items() if not key.startswith(ignore)}
    expected = {key for key in module.state_dict() if not key.startswith(ignore)}
    missing, unexpected = expected - set(used), set(used) - expected
    if missing or unexpected:
        raise error(
            f"{source} does not fit {target}: "
            f"missing {_listed(missing)}, unexpected {_listed(unexpected)}"
        )
    try:
        # The keys were compared above; strict=False only lets the ignored parts keep their values.
        module.load_state_dict(used, strict=not ignore)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise error(f"{source} does not fit {target}: {exc}") from exc


def _listed(keys: Collection[str]) -> str:
    shown = sorted(keys)[:_KEYS_SHOWN]
    more = len(keys) - len(shown)
    return f"{shown}" + (f" and {more} more" if more else "")
