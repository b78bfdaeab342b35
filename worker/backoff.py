"""How long to wait before trying again while a service stays down: one rule for the worker's
flush retries, its start-up and its model loads."""

from __future__ import annotations

import random

# 2**_MAX_DOUBLINGS times the first wait is past any sensible cap; it keeps the power finite.
_MAX_DOUBLINGS = 30


def backoff_s(failures: int, first_s: float, cap_s: float) -> float:
    """The wait after ``failures`` consecutive failures: doubling from ``first_s`` up to
    ``cap_s``, with jitter so that workers failing together do not retry together.

    "Equal jitter": a random point in the upper half of the doubled wait, so a retry never
    comes much sooner than the doubling says (as tenacity's ``wait_random_exponential`` may).
    """
    ceiling = min(cap_s, first_s * 2 ** min(max(failures - 1, 0), _MAX_DOUBLINGS))
    return random.uniform(ceiling / 2, ceiling)
