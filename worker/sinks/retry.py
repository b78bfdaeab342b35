"""The sinks' retry policy: a few quick attempts inside a sink, for transient errors only.

While storage stays down, the checkpoint's backoff between whole flushes (worker/backoff.py)
takes over."""

from __future__ import annotations

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
