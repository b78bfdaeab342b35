"""The whole loop under model-store faults and bad scoring results (harness: test_pipeline.py).

What must hold: a model problem other than "no model is published" never dead-letters a frame
(its frames wait and are scored once the model loads), one product line's wait never holds up
another's frames, and no fault of one frame stops the worker or loses the others.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import replace

import cv2
import pytest
from pipeline_harness import FAST, Harness, frame_id, loaded_model, noise_png, scored_ids
from structlog.testing import capture_logs

from rdcore import ReverseDistillation
from rdcore.artifacts.artifact import LoadedModel
from worker.modelstore.memory import MemoryModelStore
from worker.scoring import BatchScorer, Prepared, Scored


def unavailable(harness: Harness, product_line: str) -> float | None:
    labels = {"product_line": product_line}
    return harness.metrics.registry.get_sample_value("rdqc_model_unavailable", labels)


def waiting_for(harness: Harness, product_line: str) -> bool:
    ready, body = harness.health.readiness()
    return not ready and product_line in body["model_store"]


def test_a_slow_model_load_does_not_hold_up_other_product_lines(
    module: ReverseDistillation, threshold: float
) -> None:
    store = MemoryModelStore(
        {
            "caps": loaded_model(module, "caps", "c1", threshold),
            "slow": loaded_model(module, "slow", "s1", threshold),
        }
    )
    store.hold_loads("slow")  # its download takes until released
    harness = Harness(store, config=replace(FAST, max_queue=64))
    slow = [harness.add(0, "slow", noise_png(i)) for i in range(3)]
    caps = [harness.add(i % 2, "caps", noise_png(i)) for i in range(4)]
    try:
        with harness.running():
            harness.wait_for(lambda: scored_ids(harness) == sorted(map(frame_id, caps)))
            assert store.load_attempts["slow"] == 0  # still downloading when caps was scored
            store.release_loads("slow")
            harness.wait_for(harness.all_committed)
    finally:
        store.release_loads("slow")

    assert scored_ids(harness) == sorted(map(frame_id, slow + caps))
    assert harness.dead_letters.rejections == []


def test_a_store_outage_is_waited_out_and_its_frames_scored_once_it_answers(
    module: ReverseDistillation, threshold: float
) -> None:
    store = MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)})
    store.fail_loads("caps", 2)
    harness = Harness(store)
    records = [harness.add(i % 2, "caps", noise_png(i)) for i in range(4)]

    with capture_logs() as logs, harness.running():
        harness.wait_for(lambda: waiting_for(harness, "caps"))
        assert "unreachable" in harness.health.readiness()[1]["model_store"]
        assert unavailable(harness, "caps") == 1
        harness.wait_for(harness.all_committed)
        # Checked while running: a stopped worker has no partitions, so it is never ready.
        assert harness.health.readiness()[0]
        assert unavailable(harness, "caps") == 0

    assert scored_ids(harness) == sorted(map(frame_id, records))
    assert harness.dead_letters.rejections == []
    assert store.load_attempts["caps"] == 3  # two failures, retried with backoff
    errors = [entry for entry in logs if entry["log_level"] == "error"]
    assert [entry["product_line"] for entry in errors] == ["caps"]  # once per failure streak


@pytest.mark.parametrize("fault", ["corrupt", "uncalibrated"])
def test_a_broken_model_holds_its_frames_until_a_good_version_is_published(
    module: ReverseDistillation, threshold: float, fault: str
) -> None:
    broken = loaded_model(module, "caps", "v1", threshold)
    if fault == "uncalibrated":
        broken = replace(broken, manifest=replace(broken.manifest, calibration=None))
    store = MemoryModelStore({"caps": broken})
    if fault == "corrupt":
        store.break_line("caps", "weights do not match their sha256")
    harness = Harness(store)
    records = [harness.add(i % 2, "caps", noise_png(i)) for i in range(3)]

    with harness.running():
        harness.wait_for(lambda: store.load_attempts["caps"] >= 2)
        assert harness.scores.results == [] and harness.dead_letters.rejections == []
        assert waiting_for(harness, "caps")
        store.publish("caps", loaded_model(module, "caps", "v2", threshold))
        harness.wait_for(harness.all_committed)
        assert harness.health.readiness()[0]

    assert scored_ids(harness) == sorted(map(frame_id, records))
    assert {result.model_version for result in harness.scores.results} == {"v2"}
    assert harness.dead_letters.rejections == []


def test_frames_waiting_for_a_model_whose_pointer_is_deleted_are_dead_lettered(
    module: ReverseDistillation, threshold: float
) -> None:
    store = MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)})
    store.break_line("caps")
    harness = Harness(store)
    records = [harness.add(0, "caps", noise_png(i)) for i in range(2)]

    with harness.running():
        harness.wait_for(lambda: store.load_attempts["caps"] >= 1)
        store.unpublish("caps")  # now a definite "no model is published"
        harness.wait_for(harness.all_committed)

    rejections = harness.dead_letters.rejections
    assert sorted(frame_id(r.record) for r in rejections) == sorted(map(frame_id, records))
    assert {r.reason for r in rejections} == {"unknown_product_line"}
    assert harness.scores.results == []


def test_past_the_grace_period_frames_waiting_for_a_model_stay_uncommitted(
    module: ReverseDistillation, threshold: float
) -> None:
    store = MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)})
    store.hold_loads("caps")
    harness = Harness(store, config=replace(FAST, shutdown_grace_s=0.3))
    harness.add(0, "caps", noise_png(0))

    def polled() -> bool:
        lag = harness.source.lag()
        return len(lag) == 2 and not any(lag.values())

    try:
        with harness.running() as stop:
            harness.wait_for(polled)
            stop.set()
    finally:
        store.release_loads("caps")

    assert harness.source.commits == []  # redelivered to the next owner
    assert harness.scores.results == [] and harness.dead_letters.rejections == []
    assert harness.source.closed


class FaultyScorer(BatchScorer):
    """Scoring raises for a batch holding a poisoned frame, as a bad tensor would; frames in
    ``non_finite`` come out with the scores of an overflowed half-precision forward pass."""

    def __init__(self, poisoned: Collection[str] = (), non_finite: Collection[str] = ()) -> None:
        super().__init__("cpu")
        self.poisoned, self.non_finite = poisoned, non_finite

    def score(self, frames: Sequence[Prepared], loaded: LoadedModel) -> list[Scored]:
        ids = {item.frame.meta.frame_id for item in frames}
        if not ids.isdisjoint(self.poisoned):
            raise RuntimeError(f"poisoned tensor among {sorted(ids.intersection(self.poisoned))}")
        return [
            replace(s, raw_score=math.inf, score=math.nan)
            if s.frame.meta.frame_id in self.non_finite
            else s
            for s in super().score(frames, loaded)
        ]


def test_a_frame_that_fails_scoring_is_dead_lettered_and_the_rest_of_its_batch_scored(
    module: ReverseDistillation, threshold: float
) -> None:
    store = MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)})
    poisoned = "frames.inbound:0:2"
    harness = Harness(store, scorer=FaultyScorer(poisoned={poisoned}))
    records = [harness.add(0, "caps", noise_png(i)) for i in range(6)]

    with harness.running():
        harness.wait_for(harness.all_committed)  # the worker kept running

    assert scored_ids(harness) == sorted(frame_id(r) for r in records if frame_id(r) != poisoned)
    [rejection] = harness.dead_letters.rejections
    assert frame_id(rejection.record) == poisoned
    assert (rejection.reason, rejection.error_class) == ("scoring_failed", "RuntimeError")
    assert "poisoned tensor" in rejection.message


def test_a_non_finite_score_is_dead_lettered_not_written(
    module: ReverseDistillation, threshold: float
) -> None:
    store = MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)})
    overflowed = "frames.inbound:1:1"
    harness = Harness(store, scorer=FaultyScorer(non_finite={overflowed}))
    records = [harness.add(i % 2, "caps", noise_png(i)) for i in range(4)]

    with harness.running():
        harness.wait_for(harness.all_committed)

    assert scored_ids(harness) == sorted(frame_id(r) for r in records if frame_id(r) != overflowed)
    [rejection] = harness.dead_letters.rejections
    assert (frame_id(rejection.record), rejection.reason) == (overflowed, "non_finite_score")
    assert all(math.isfinite(r.score) for r in harness.scores.results)


def test_a_heatmap_that_cannot_be_rendered_leaves_its_score_written_without_one(
    module: ReverseDistillation, threshold: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_renderer(scored: Scored) -> bytes:
        raise cv2.error("OpenCV(4.x) resize: (-215:Assertion failed) !dsize.empty()")

    monkeypatch.setattr("worker.pipeline.inference.render_heatmap", broken_renderer)
    store = MemoryModelStore({"caps": loaded_model(module, "caps", "v1", threshold)})
    harness = Harness(store, heatmaps_for="all")
    records = [harness.add(i % 2, "caps", noise_png(i)) for i in range(4)]

    with harness.running():
        harness.wait_for(harness.all_committed)

    assert scored_ids(harness) == sorted(map(frame_id, records))
    assert {r.heatmap_uri for r in harness.scores.results} == {""}
    assert harness.heatmaps.objects == {}
    failures = harness.metrics.registry.get_sample_value(
        "rdqc_heatmap_failures_total", {"product_line": "caps"}
    )
    assert failures == len(records)
