"""PendingWrites: send on add, confirm on flush, resend the failed writes, raise naming them;
a bounded wait leaves writes still running pending instead of hanging the flush."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from kafka.future import Future as KafkaFuture

from worker.errors import SinkError
from worker.sinks.pending import KafkaDelivery, PendingWrites, ThreadDelivery, Unconfirmed

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Outcome:
    """A send whose outcome is known at once, as a Kafka send's is after the producer's flush."""

    failure: BaseException | None = None

    def wait(self, timeout_s: float) -> bool:
        return True

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


def message(unconfirmed: Unconfirmed) -> str:
    return f"{unconfirmed.failed} failed ({unconfirmed.names}): {unconfirmed.error}"


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
        pending.wait(10)
        pending.confirm(message)

    assert finished == ["slow"]


def test_a_write_still_running_after_the_wait_stays_pending_and_fails_the_flush() -> None:
    release = threading.Event()
    uploads: list[str] = []

    def upload(item: str) -> None:
        uploads.append(item)
        if item == "hung":
            release.wait(timeout=10)

    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = PendingWrites(lambda item: ThreadDelivery(pool.submit(upload, item)), str)
        pending.add("quick")
        pending.add("hung")
        started = time.monotonic()
        pending.wait(0.2)
        assert time.monotonic() - started < 2  # bounded, not until the upload ends

        with pytest.raises(SinkError) as info:
            pending.confirm(lambda u: u.describe("uploads"))
        assert str(info.value) == "1 uploads still running (hung)"
        assert len(pending) == 1  # the quick one is forgotten, the hung one kept

        release.set()
        pending.wait(10)
        pending.confirm(message)

    assert uploads == ["quick", "hung"]  # still running is not failed: never sent twice


def test_take_confirmed_and_take_failed_hand_writes_back_without_resending() -> None:
    too_large = ValueError("too large")
    sender = Sender({"big": [too_large], "lost": [OSError("lost")]})
    pending = PendingWrites(sender, str)
    for item in ("ok", "big", "lost"):
        pending.add(item)

    assert pending.take_failed(lambda error: isinstance(error, ValueError)) == ["big"]
    assert pending.take_confirmed() == ["ok"]
    with pytest.raises(SinkError, match=r"^1 failed \(lost\): lost$"):
        pending.confirm(message)
    assert sender.sent == ["ok", "big", "lost", "lost"]


def test_unconfirmed_describes_failed_and_running_writes() -> None:
    both = Unconfirmed(failed=2, running=1, names="a, b, c", error=OSError("down"))
    assert (
        both.describe("uploads") == "2 uploads failed, 1 still running (a, b, c); first error: down"
    )
    assert Unconfirmed(0, 3, "x", None).describe("records") == "3 records still running (x)"


def test_thread_delivery_reports_the_upload_error() -> None:
    def upload() -> None:
        raise TimeoutError("slow storage")

    with ThreadPoolExecutor(max_workers=1) as pool:
        delivery = ThreadDelivery(pool.submit(upload))
        assert delivery.wait(10)
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
    assert (acked.wait(1), refused.wait(1), unanswered.wait(0)) == (True, True, False)


def test_resend_failed_keeps_the_writes_that_succeeded() -> None:
    sender = Sender({"b": [OSError("down")]})
    pending = PendingWrites(sender, str)
    pending.add("a")
    pending.add("b")

    assert str(pending.resend_failed()) == "down"

    assert sender.sent == ["a", "b", "b"]
    assert pending.take_confirmed() == ["a", "b"]  # nothing forgotten before it is taken
