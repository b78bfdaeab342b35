"""The shadow budget (worker/pipeline/shadow.py), turn by turn on a frozen clock: one shadow batch
at a time, a share of the inference thread, live work first, broken candidates backed off."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from worker.frames import DecodedFrame, FrameMeta, SourceRecord
from worker.modelstore.shadow_candidates import Candidate
from worker.observability.prometheus import Metrics
from worker.pipeline.shadow import ScoredFrame, ShadowConfig, ShadowScoring
from worker.scoring import Prepared, Scored
from worker.sinks.shadow_memory import MemoryShadowSink

pytestmark = pytest.mark.unit


class FrozenClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class StubScorer:
    """Scores every frame 0.9 (flagged), taking ``seconds`` of the frozen clock; may be held."""

    def __init__(self, clock: FrozenClock, seconds: float) -> None:
        self.clock, self.seconds = clock, seconds
        self.calls = 0
        self.fail = False
        self.release = threading.Event()
        self.release.set()

    def score_each(self, frames: Sequence[Prepared], loaded: Any) -> list[Scored | Exception]:
        self.release.wait()
        self.calls += 1
        self.clock.now += self.seconds
        if self.fail:
            return [RuntimeError("injected") for _ in frames]
        return [Scored(p.frame, 0.9, 0.9, True, 0.5, loaded.version, (0.0, 1.0)) for p in frames]


def scored_frames(line: str, count: int) -> list[ScoredFrame]:
    frames = []
    for i in range(count):
        record = SourceRecord("frames", 0, i, None, b"", ())
        image = np.zeros((16, 16, 3), dtype=np.uint8)
        frame = DecodedFrame(record, FrameMeta(f"{line}-{i}", line, "cam", 0), image)
        frames.append((Prepared(frame), Scored(frame, 0.2, 0.2, False, 0.5, "v1", (0.0, 1.0))))
    return frames


class Setup:
    def __init__(self, max_share: float = 1.0, seconds: float = 1.0) -> None:
        self.clock = FrozenClock()
        self.scorer = StubScorer(self.clock, seconds)
        self.sink = MemoryShadowSink()
        self.metrics = Metrics()
        self.live_waiting = False
        self.thread = ThreadPoolExecutor(1)
        self.shadow = ShadowScoring(
            ShadowConfig(self.sink, "w-1", max_share),
            self.thread,
            self.scorer,  # type: ignore[arg-type]
            self.metrics,
            self.clock,
            lambda: self.live_waiting,
        )
        # Only the candidate's version is read here; scoring is the stub's.
        self.candidate = Candidate(SimpleNamespace(version="v2"), "d" * 64)  # type: ignore[arg-type]

    def offer(self, line: str = "caps", count: int = 2) -> None:
        self.shadow.offer(scored_frames(line, count), self.candidate)

    def finish(self) -> None:
        """Let the running shadow batch end, and take it in."""
        self.scorer.release.set()
        self.thread.submit(lambda: None).result(timeout=10)  # one thread: after the batch
        self.shadow.collect()

    def count(self, name: str, line: str = "caps") -> float:
        return self.metrics.registry.get_sample_value(name, {"product_line": line}) or 0.0

    def close(self) -> None:
        self.scorer.release.set()
        self.thread.shutdown(wait=True)
        self.shadow.close()


@pytest.fixture
def setup() -> Iterator[Callable[..., Setup]]:
    made: list[Setup] = []

    def make(**options: Any) -> Setup:
        made.append(Setup(**options))
        return made[-1]

    yield make
    for each in made:
        each.close()


def wait_until(condition: Callable[[], bool]) -> None:
    """For the shadow writer's thread."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_one_shadow_batch_at_a_time_the_others_are_dropped(setup: Callable[..., Setup]) -> None:
    s = setup()
    s.scorer.release.clear()
    s.offer(count=2)
    s.offer(count=3)  # the first still runs
    assert s.count("rdqc_shadow_dropped_total") == 3
    s.finish()
    wait_until(lambda: len(s.sink.entries) == 2)
    entry = s.sink.entries[0]
    assert (entry.candidate_version, entry.candidate_digest, entry.worker_id) == (
        "v2",
        "d" * 64,
        "w-1",
    )
    assert (entry.score, entry.is_anomaly, entry.current_score, entry.current_is_anomaly) == (
        0.9,
        True,
        0.2,
        False,
    )
    assert s.count("rdqc_shadow_scored_total") == 2


def test_shadow_batches_take_at_most_their_share_of_the_inference_thread(
    setup: Callable[..., Setup],
) -> None:
    s = setup(max_share=0.25, seconds=1.0)  # a 1 s batch, then 3 s for live work only
    s.offer()
    s.finish()
    s.clock.now += 2.9
    s.offer()
    assert s.scorer.calls == 1 and s.count("rdqc_shadow_dropped_total") == 2
    s.clock.now += 0.2
    s.offer()
    s.finish()
    assert s.scorer.calls == 2


def test_a_shadow_batch_steps_aside_when_live_work_waits(setup: Callable[..., Setup]) -> None:
    s = setup()
    s.live_waiting = True
    s.offer(count=4)
    s.finish()
    assert s.scorer.calls == 0
    assert s.count("rdqc_shadow_dropped_total") == 4 and s.sink.entries == []


def test_a_candidate_failing_whole_batches_is_backed_off_alone(
    setup: Callable[..., Setup],
) -> None:
    s = setup(seconds=0.0)
    s.scorer.fail = True
    s.offer("caps", 2)
    s.finish()
    assert s.count("rdqc_shadow_errors_total") == 2
    s.offer("caps", 2)  # backing off: at least 0.5 s
    assert s.scorer.calls == 1 and s.count("rdqc_shadow_dropped_total") == 2
    s.scorer.fail = False
    s.offer("bolts", 1)  # another line is not held back
    s.finish()
    assert s.scorer.calls == 2
    s.clock.now += 1.0
    s.offer("caps", 2)
    s.finish()
    assert s.scorer.calls == 3
    wait_until(lambda: len(s.sink.entries) == 3)
