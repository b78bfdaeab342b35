"""transient_retry: the sinks' one retry policy."""

from __future__ import annotations

import pytest

from worker.sinks.retry import transient_retry

pytestmark = pytest.mark.unit


class Flaky:
    """Raises the scripted errors in turn, then returns how often it was called."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.calls


def test_transient_errors_are_retried_with_growing_waits() -> None:
    flaky = Flaky(ConnectionError("a"), ConnectionError("b"))
    retrying = transient_retry(5, (ConnectionError,))
    waits: list[float] = []
    retrying.sleep = waits.append

    assert retrying(flaky) == 3
    assert waits == [0.2, 0.4]


def test_waits_stop_growing_at_two_seconds() -> None:
    flaky = Flaky(*(TimeoutError(str(n)) for n in range(6)))
    retrying = transient_retry(7, (TimeoutError,))
    waits: list[float] = []
    retrying.sleep = waits.append

    assert retrying(flaky) == 7
    assert waits == pytest.approx([0.2, 0.4, 0.8, 1.6, 2.0, 2.0])


def test_the_last_transient_error_is_raised_as_itself() -> None:
    last = ConnectionError("third")
    flaky = Flaky(ConnectionError("first"), ConnectionError("second"), last)
    retrying = transient_retry(3, (ConnectionError,))
    retrying.sleep = lambda _: None

    with pytest.raises(ConnectionError) as info:
        retrying(flaky)
    assert info.value is last
    assert flaky.calls == 3


def test_other_errors_are_not_retried() -> None:
    flaky = Flaky(ValueError("bad request"))
    retrying = transient_retry(5, lambda exc: isinstance(exc, ConnectionError))

    with pytest.raises(ValueError, match="bad request"):
        retrying(flaky)
    assert flaky.calls == 1


def test_a_predicate_chooses_what_is_transient() -> None:
    flaky = Flaky(OSError("busy"), OSError("gone"))
    retrying = transient_retry(5, lambda exc: str(exc) == "busy")
    retrying.sleep = lambda _: None

    with pytest.raises(OSError, match="gone"):
        retrying(flaky)
    assert flaky.calls == 2
