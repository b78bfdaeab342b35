"""The sinks' retry policy: a few quick attempts inside a sink, for transient errors only, then
the checkpoint's backoff between whole flushes (``backoff_s``) while storage stays down."""

from __future__ import annotations

import random
from collections.abc import Callable

from tenacity import (
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

# Waits of 0.2, 0.4, 0.8, 1.6 s, then 2 s: a flush is retried within seconds, not minutes, and
# the pipeline's backoff takes over when storage stays down.
_FIRST_WAIT_S = 0.2
_MAX_WAIT_S = 2.0


def transient_retry(
    attempts: int,
    transient: Callable[[BaseException], bool] | tuple[type[BaseException], ...],
) -> Retrying:
    """Up to ``attempts`` calls of what it runs: ``transient_retry(...)(fn, *args)``.

    ``transient`` (a predicate or exception types) says which errors are worth another attempt;
    any other error, and the last transient one, is raised as itself.
    """
    retry = (
        retry_if_exception_type(transient)
        if isinstance(transient, tuple)
        else retry_if_exception(transient)
    )
    return Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=_FIRST_WAIT_S, max=_MAX_WAIT_S),
        retry=retry,
        reraise=True,
    )


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
