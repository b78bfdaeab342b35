"""PendingWrites: send on add, confirm on flush, resend the failed writes, raise naming them."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from kafka.future import Future as KafkaFuture

from worker.errors import SinkError
from worker.sinks.pending import KafkaDelivery, PendingWrites, ThreadDelivery

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Outcome:
    failure: BaseException | None = None

    def confirmed(self) -> bool:
        return self.failure is None

    def error(self) -> BaseException | None:
        return self.failure


class Sender:
    """Sends succeed unless the item's next scripted outcome is an error."""

    def __init__(self, failures: dict[str, list[BaseException]] | None = None) -> None:
        self.failures = failures or {}
        self.sent: list[str] = []

    def __call__(self, item: str) -> Outcome:
        self.sent.append(item)
        scripted = self.failures.get(item)
        return Outcome(scripted.pop(0) if scripted else None)


def message(count: int, names: str, error: BaseException | None) -> str:
    return f"{count} failed ({names}): {error}"


def test_confirmed_writes_are_forgotten() -> None:
    sender = Sender()
    pending = PendingWrites(sender, str)
    pending.add("a")
    pending.add("b")
    assert len(pending) == 2

    pending.confirm(message)

    assert len(pending) == 0
    assert sender.sent == ["a", "b"]


def test_failed_writes_are_resent_and_named_in_the_error() -> None:
    broken = ConnectionError("storage down")
    sender = Sender({"b": [broken]})
    pending = PendingWrites(sender, lambda item: f"item-{item}")
    for item in "abc":
        pending.add(item)

    with pytest.raises(SinkError, match=r"^1 failed \(item-b\): storage down$") as info:
        pending.confirm(message)

    assert info.value.__cause__ is broken
    assert sender.sent == ["a", "b", "c", "b"]  # only the failed one sent again
    assert len(pending) == 1
    pending.confirm(message)  # the resend succeeded
    assert len(pending) == 0


def test_the_error_names_the_first_five_and_counts_all() -> None:
    items = [str(n) for n in range(7)]
    sender = Sender({item: [OSError(f"no {item}")] for item in items})
    pending = PendingWrites(sender, str)
    for item in items:
        pending.add(item)

    with pytest.raises(SinkError, match=r"^7 failed \(0, 1, 2, 3, 4\): no 0$"):
        pending.confirm(message)


def test_a_write_failing_again_fails_the_next_flush_again() -> None:
    sender = Sender({"a": [OSError("first"), OSError("second")]})
    pending = PendingWrites(sender, str)
    pending.add("a")

    with pytest.raises(SinkError, match="first"):
        pending.confirm(message)
    with pytest.raises(SinkError, match="second"):
        pending.confirm(message)
    pending.confirm(message)
    assert sender.sent == ["a", "a", "a"]


def test_thread_deliveries_are_waited_for() -> None:
    release = threading.Event()
    finished: list[str] = []

    def upload(item: str) -> None:
        release.wait(timeout=10)
        finished.append(item)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = PendingWrites(lambda item: ThreadDelivery(pool.submit(upload, item)), str)
        pending.add("slow")
        threading.Timer(0.05, release.set).start()
        pending.confirm(message)

    assert finished == ["slow"]


def test_thread_delivery_reports_the_upload_error() -> None:
    def upload() -> None:
        raise TimeoutError("slow storage")

    with ThreadPoolExecutor(max_workers=1) as pool:
        delivery = ThreadDelivery(pool.submit(upload))
        assert not delivery.confirmed()
        assert isinstance(delivery.error(), TimeoutError)


def test_kafka_delivery_reads_the_future() -> None:
    acked = KafkaDelivery(KafkaFuture().success("metadata"))
    refused = KafkaDelivery(KafkaFuture().failure(RuntimeError("refused")))
    unanswered = KafkaDelivery(KafkaFuture())

    assert acked.confirmed()
    assert acked.error() is None
    assert not refused.confirmed()
    assert str(refused.error()) == "refused"
    assert not unanswered.confirmed()  # not acknowledged is not confirmed
