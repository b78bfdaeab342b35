"""Writes sent on ``add`` and confirmed on ``flush``, for sinks whose sends complete later.

A flush must not report a write durable while it is not. So ``confirm`` looks at every write
sent since the last confirmed flush: if any failed, it sends those again; if any failed or is
still running, it raises ``SinkError`` naming them, and the next flush confirms them. Writes
that succeeded are forgotten then too, so a resend never duplicates them.

``wait`` bounds how long a flush waits: a write still running after it stays pending (it is
neither resent nor forgotten), so a hung store fails the flush in time instead of hanging it.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, cast

from worker.errors import SinkError

if TYPE_CHECKING:
    import kafka.future

Item = TypeVar("Item")

# How many unconfirmed writes a SinkError names; the counts say how many there are in all.
_NAMED_IN_ERROR = 5


class Delivery(Protocol):
    """One send's outcome."""

    def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the outcome; True once it is known."""

    def confirmed(self) -> bool:
        """Known, and the write succeeded."""

    def error(self) -> BaseException | None:
        """Why the write failed; None while it runs or once it succeeded."""


@dataclass(frozen=True)
class KafkaDelivery:
    """A kafka-python send; ``KafkaProducer.flush`` is what waits for it."""

    future: kafka.future.Future

    def wait(self, timeout_s: float) -> bool:
        return bool(self.future.is_done)

    def confirmed(self) -> bool:
        return bool(self.future.succeeded())

    def error(self) -> BaseException | None:
        # kafka-python is untyped; its futures hold the exception in an attribute.
        return cast("BaseException | None", self.future.exception)


@dataclass(frozen=True)
class ThreadDelivery:
    """A write running on a thread pool."""

    future: concurrent.futures.Future[None]

    def wait(self, timeout_s: float) -> bool:
        concurrent.futures.wait([self.future], timeout=timeout_s)
        return self.future.done()

    def confirmed(self) -> bool:
        return self.future.done() and self.future.exception() is None

    def error(self) -> BaseException | None:
        return self.future.exception() if self.future.done() else None


@dataclass(frozen=True)
class Unconfirmed:
    """What kept a flush from confirming its writes."""

    failed: int
    running: int
    names: str  # the first ones', failed before running
    error: BaseException | None  # the first failure's

    def describe(self, noun: str) -> str:
        """``"2 uploads failed, 1 still running (a, b, c); first error: ..."``"""
        parts = [f"{self.failed} {noun} failed"] if self.failed else []
        if self.running:
            parts.append(f"{self.running} {'still' if parts else noun + ' still'} running")
        error = f"; first error: {self.error}" if self.error is not None else ""
        return f"{', '.join(parts)} ({self.names}){error}"


FailureMessage = Callable[[Unconfirmed], str]
"""What kept the writes from being confirmed -> the SinkError's message."""


@dataclass
class _Write(Generic[Item]):
    item: Item
    delivery: Delivery


class PendingWrites(Generic[Item]):
    def __init__(self, send: Callable[[Item], Delivery], name: Callable[[Item], str]) -> None:
        self._send = send
        self._name = name
        self._writes: list[_Write[Item]] = []

    def __len__(self) -> int:
        return len(self._writes)

    def add(self, item: Item) -> None:
        self._writes.append(_Write(item, self._send(item)))

    def wait(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` in all for the writes still running."""
        deadline = time.monotonic() + timeout_s
        for write in self._writes:
            write.delivery.wait(max(0.0, deadline - time.monotonic()))

    def take_failed(self, which: Callable[[BaseException], bool]) -> list[Item]:
        """Remove and return the failed writes whose error ``which`` picks; they are not resent."""
        taken, kept = _split(self._writes, lambda d: _failed_with(d, which))
        self._writes = kept
        return [write.item for write in taken]

    def take_confirmed(self) -> list[Item]:
        """Remove and return the writes that succeeded."""
        taken, self._writes = _split(self._writes, lambda d: d.confirmed())
        return [write.item for write in taken]

    def resend_failed(self) -> BaseException | None:
        """Send the failed writes again and keep every write; returns the first failure."""
        failed, _ = _split(self._writes, lambda d: _failed_with(d, lambda _: True))
        error = failed[0].delivery.error() if failed else None
        for write in failed:
            write.delivery = self._send(write.item)
        return error

    def confirm(self, failure_message: FailureMessage) -> None:
        """Forget the writes that succeeded; resend the failed ones; raise unless all succeeded."""
        running, finished = _split(self._writes, lambda d: not d.wait(0))
        _, failed = _split(finished, lambda d: d.confirmed())
        self._writes = failed + running
        if not self._writes:
            return
        error = failed[0].delivery.error() if failed else None
        for write in failed:
            write.delivery = self._send(write.item)
        names = ", ".join(self._name(write.item) for write in self._writes[:_NAMED_IN_ERROR])
        unconfirmed = Unconfirmed(len(failed), len(running), names, error)
        raise SinkError(failure_message(unconfirmed)) from error


def _split(
    writes: list[_Write[Item]], test: Callable[[Delivery], bool]
) -> tuple[list[_Write[Item]], list[_Write[Item]]]:
    """(the writes whose delivery passes ``test``, the others), each in order.

    ``test`` runs once per write: a write finishing meanwhile still lands in exactly one list.
    """
    passed: list[_Write[Item]] = []
    others: list[_Write[Item]] = []
    for write in writes:
        (passed if test(write.delivery) else others).append(write)
    return passed, others


def _failed_with(delivery: Delivery, which: Callable[[BaseException], bool]) -> bool:
    error = delivery.error() if delivery.wait(0) else None
    return error is not None and which(error)
