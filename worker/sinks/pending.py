"""Writes sent on ``add`` and confirmed on ``flush``, for sinks whose sends complete later.

A flush must not report a write durable while it is not. So ``confirm`` looks at every write
sent since the last confirmed flush; if any failed, it sends those again and raises
``SinkError`` naming them, and the next flush confirms the resent ones. Writes that succeeded
are forgotten then too, so a resend never duplicates them.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, cast

from worker.errors import SinkError

if TYPE_CHECKING:
    import kafka.future

Item = TypeVar("Item")

# How many failed writes a SinkError names; the count says how many there are in all.
_NAMED_IN_ERROR = 5


class Delivery(Protocol):
    """One send's outcome, asked for once the sink has waited for its sends."""

    def confirmed(self) -> bool: ...

    def error(self) -> BaseException | None: ...


@dataclass(frozen=True)
class KafkaDelivery:
    """A kafka-python send; ``KafkaProducer.flush`` has waited for it."""

    future: kafka.future.Future

    def confirmed(self) -> bool:
        return bool(self.future.succeeded())

    def error(self) -> BaseException | None:
        # kafka-python is untyped; its futures hold the exception in an attribute.
        return cast("BaseException | None", self.future.exception)


@dataclass(frozen=True)
class ThreadDelivery:
    """A write running on a thread pool; asking for its outcome waits for it to finish."""

    future: concurrent.futures.Future[None]

    def confirmed(self) -> bool:
        return self.future.exception() is None

    def error(self) -> BaseException | None:
        return self.future.exception()


@dataclass
class _Write(Generic[Item]):
    item: Item
    delivery: Delivery


FailureMessage = Callable[[int, str, BaseException | None], str]
"""(how many writes failed, the first ones' names, the first error) -> the SinkError's message."""


class PendingWrites(Generic[Item]):
    def __init__(self, send: Callable[[Item], Delivery], name: Callable[[Item], str]) -> None:
        self._send = send
        self._name = name
        self._writes: list[_Write[Item]] = []

    def __len__(self) -> int:
        return len(self._writes)

    def add(self, item: Item) -> None:
        self._writes.append(_Write(item, self._send(item)))

    def confirm(self, failure_message: FailureMessage) -> None:
        """Forget the writes that succeeded; resend the failed ones and raise SinkError."""
        failed = [write for write in self._writes if not write.delivery.confirmed()]
        if not failed:
            self._writes = []
            return
        error = failed[0].delivery.error()
        for write in failed:
            write.delivery = self._send(write.item)
        self._writes = failed
        names = ", ".join(self._name(write.item) for write in failed[:_NAMED_IN_ERROR])
        raise SinkError(failure_message(len(failed), names, error)) from error
