"""Shadow testing in the whole loop (harness: pipeline_harness.py): a line's candidate scores its
frames too, and whatever the candidate does, the live path's outputs are those of a run without.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from pipeline_harness import FAST, Harness, frame_id, loaded_model, noise_png
from torch import Tensor, nn

from rdcore import ModelConfig, Preprocess, ReverseDistillation, reverse_distillation
from rdcore.artifacts.artifact import LoadedModel
from rdcore.artifacts.manifest import FORMAT_VERSION, Manifest
from rdcore.calibration import calibrate
from rdcore.data.images import decode_image
from rdcore.nn.model import AnomalyPrediction
from worker.frames import SourceRecord
from worker.modelstore.memory import MemoryModelStore
from worker.pipeline.shadow import ShadowConfig
from worker.sinks.shadow_memory import MemoryShadowSink

pytestmark = pytest.mark.unit

LINE = "caps"


class Slow(nn.Module):
    """A candidate whose every forward pass takes ``seconds`` longer."""

    def __init__(self, inner: nn.Module, seconds: float) -> None:
        super().__init__()
        self.inner = inner
        self.seconds = seconds

    def forward(self, batch: Tensor) -> AnomalyPrediction:
        time.sleep(self.seconds)
        result: AnomalyPrediction = self.inner(batch)
        return result


class Broken(nn.Module):
    """A candidate that loads fine and raises on every frame."""

    def forward(self, batch: Tensor) -> AnomalyPrediction:
        raise RuntimeError("injected: candidate forward failed")


def shadowed(store: MemoryModelStore, **options: object) -> tuple[Harness, MemoryShadowSink]:
    """A harness with shadow testing on; no share pause, so a calm stream is shadowed whole."""
    sink = MemoryShadowSink()
    config = ShadowConfig(sink, "test-worker", max_share=options.pop("max_share", 1.0))
    return Harness(store, shadow=config, **options), sink


def counter(harness: Harness, name: str) -> float:
    value = harness.metrics.registry.get_sample_value(name, {"product_line": LINE})
    return value or 0.0


def shadowing_with(harness: Harness, version: str | None) -> bool:
    """The version the loop now shadow-scores the line with (None: no shadow test)."""
    gauge = harness.metrics.shadow_version_info
    live = {s.labels["version"] for s in gauge.collect()[0].samples if s.value == 1}
    return live == ({version} if version else set())


def warm_up(harness: Harness, version: str | None) -> SourceRecord:
    """A first frame puts the line in use, so its candidate is looked for and loaded."""
    record = harness.add(0, LINE, noise_png(99))
    harness.wait_for(lambda: shadowing_with(harness, version))
    return record


def feed_calmly(harness: Harness, sink: MemoryShadowSink, seeds: range) -> list[SourceRecord]:
    """One frame at a time, each once its shadow entry is written: a stream that never queues."""
    records = []
    for seed in seeds:
        records.append(harness.add(seed % 2, LINE, noise_png(seed)))
        wanted = frame_id(records[-1])
        harness.wait_for(lambda: wanted in {e.meta.frame_id for e in sink.entries})  # noqa: B023
    return records


def model_of(module: nn.Module, version: str, threshold: float, config: ModelConfig) -> LoadedModel:
    """A model of the line with its own preprocessing (``config``) and threshold."""
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        product_line=LINE,
        model_version=version,
        created_at="2026-01-01T00:00:00+00:00",
        package_version="0.1.0",
        model=config,
        calibration=calibrate([threshold - 0.01, threshold, threshold + 0.01], quantile=0.5),
        training={},
        metrics=None,
        weights_sha256="1" * 64,
    )
    return LoadedModel(module, manifest, Preprocess.from_config(config), Path("unused"))


def test_every_frame_gets_one_entry_with_both_models_results_scored_its_own_way(
    module: ReverseDistillation, threshold: float
) -> None:
    torch.manual_seed(1)
    config = ModelConfig(backbone="resnet18", image_size=96)  # not the live preprocessing
    other = reverse_distillation(config, "random").eval()
    images = [decode_image(noise_png(seed), "test") for seed in range(8)]
    with torch.inference_mode():
        expected = other(Preprocess.from_config(config).batch(images)).score
    candidate = model_of(other, "v2", float(expected.median()), config)
    store = MemoryModelStore({LINE: loaded_model(module, LINE, "v1", threshold)})
    store.start_shadow(LINE, candidate)
    harness, sink = shadowed(store)

    with harness.running():
        first = warm_up(harness, "v2")  # maybe sent to the live model before the candidate loaded
        records = feed_calmly(harness, sink, range(8))
        harness.wait_for(harness.all_committed)
        # What the worker's heartbeat reports (read from another thread).
        in_shadow = harness.pipeline.shadow_models_in_use()
        assert {line: m.digest() for line, m in in_shadow.items()} == {
            LINE: candidate.manifest.digest()
        }

    live = {r.meta.frame_id: r for r in harness.scores.results}
    ours = [e for e in sink.entries if e.meta.frame_id != frame_id(first)]
    entries = {e.meta.frame_id: e for e in ours}
    assert sorted(entries) == sorted(map(frame_id, records)) and len(ours) == 8  # one each
    for seed, record in enumerate(records):
        entry, result = entries[frame_id(record)], live[frame_id(record)]
        assert entry.meta == result.meta
        assert (entry.model_version, entry.current_score, entry.current_raw_score) == (
            "v1",
            result.score,
            result.raw_score,
        )
        assert entry.current_is_anomaly == result.is_anomaly
        assert (entry.candidate_version, entry.candidate_digest) == (
            "v2",
            candidate.manifest.digest(),
        )
        # The candidate's own preprocessing and calibration, not the live model's.
        assert entry.raw_score == pytest.approx(float(expected[seed]), rel=1e-4)
        assert entry.threshold == candidate.calibration.threshold
        assert entry.is_anomaly == (entry.raw_score >= entry.threshold)
        assert entry.worker_id == "test-worker"
    assert any(e.is_anomaly for e in ours) and not all(e.is_anomaly for e in ours)
    assert {r.model_version for r in harness.scores.results} == {"v1"}  # never the candidate's
    assert counter(harness, "rdqc_shadow_dropped_total") == 0


def live_outputs(harness: Harness) -> dict[str, object]:
    """Everything the live path made durable, without the times (each run appends its frames
    anew, so their record timestamps differ)."""
    return {
        "scores": sorted(
            (
                replace(r, meta=replace(r.meta, captured_at_ms=0), scored_at_ms=0)
                for r in harness.scores.results
            ),
            key=lambda r: r.meta.frame_id,
        ),
        "heatmaps": harness.heatmaps.objects,
        "dead_letters": sorted(
            (frame_id(r.record), r.reason, r.error_class) for r in harness.dead_letters.rejections
        ),
        "committed": harness.source.committed(),
    }


def test_the_live_outputs_are_those_of_a_run_without_a_shadow_test(
    module: ReverseDistillation, threshold: float
) -> None:
    def run(with_shadow: bool) -> tuple[Harness, MemoryShadowSink]:
        store = MemoryModelStore({LINE: loaded_model(module, LINE, "v1", threshold)})
        # A candidate that flags everything: its verdicts must reach no score, heatmap or commit.
        store.start_shadow(LINE, loaded_model(module, LINE, "v2", threshold * 0.5))
        # Frames scored one by one: a batch's make-up moves scores in the 7th digit.
        alone = replace(FAST, max_batch_size=1)
        if with_shadow:
            harness, sink = shadowed(store, config=alone)
        else:
            harness, sink = Harness(store, config=alone), MemoryShadowSink()
        with harness.running():
            warm_up(harness, "v2" if with_shadow else None)
            for i in range(10):
                harness.add(i % 2, LINE, noise_png(i))
                harness.wait_for(harness.all_committed)
            harness.add(0, LINE, b"\x89PNG garbage")
            harness.add(1, None, noise_png(3))
            harness.wait_for(harness.all_committed)
            harness.wait_for(lambda: len(sink.entries) >= (10 if with_shadow else 0))
        return harness, sink

    without, _ = run(with_shadow=False)
    shadowed_run, sink = run(with_shadow=True)

    assert live_outputs(shadowed_run) == live_outputs(without)
    assert len(without.scores.results) == 11 and len(without.dead_letters.rejections) == 2
    assert all(e.is_anomaly for e in sink.entries)
    assert not all(e.current_is_anomaly for e in sink.entries)


def test_a_slow_candidate_is_dropped_while_live_results_wait_at_most_one_shadow_batch(
    module: ReverseDistillation, threshold: float
) -> None:
    shadow_batch_s = 2.0
    store = MemoryModelStore({LINE: loaded_model(module, LINE, "v1", threshold)})
    slow = loaded_model(module, LINE, "v2", threshold)
    store.start_shadow(LINE, replace(slow, model=Slow(module, shadow_batch_s)))
    harness, sink = shadowed(store, max_share=0.5)

    with harness.running():
        warm_up(harness, "v2")
        started = time.monotonic()
        for i in range(24):
            harness.add(i % 2, LINE, noise_png(i))
        harness.wait_for(harness.all_committed, timeout_s=30)
        elapsed = time.monotonic() - started

    scored = counter(harness, "rdqc_shadow_scored_total")
    dropped = counter(harness, "rdqc_shadow_dropped_total")
    assert dropped > 0
    # Each frame is shadow-scored or counted as dropped (the first one may never be offered).
    assert 24 <= scored + dropped <= 25 and len(sink.entries) == scored
    # Shadow-scoring each of the 6 batches in turn would take 12 s.
    assert elapsed < 9, elapsed
    waits = harness.metrics.registry
    total = waits.get_sample_value("rdqc_queue_wait_seconds_count")
    within = waits.get_sample_value("rdqc_queue_wait_seconds_bucket", {"le": "5.0"})
    assert within == total  # no frame waited much longer than one shadow batch


@pytest.mark.parametrize("fault", ["load", "score"])
def test_a_failing_candidate_costs_the_live_path_nothing(
    module: ReverseDistillation, threshold: float, fault: str
) -> None:
    store = MemoryModelStore({LINE: loaded_model(module, LINE, "v1", threshold)})
    candidate = loaded_model(module, LINE, "v2", threshold)
    if fault == "score":
        candidate = replace(candidate, model=Broken())
    store.start_shadow(LINE, candidate)
    if fault == "load":
        store.break_shadow(LINE, "weights do not match their sha256")
    harness, sink = shadowed(store)

    with harness.running():
        first = harness.add(0, LINE, noise_png(0))
        if fault == "load":
            harness.wait_for(lambda: store.shadow_load_attempts[LINE] >= 2)  # retried
        else:
            harness.wait_for(lambda: shadowing_with(harness, "v2"))
        records = [first] + [harness.add(i % 2, LINE, noise_png(i)) for i in range(1, 9)]
        harness.wait_for(harness.all_committed)
        assert harness.health.readiness()[0]
        if fault == "score":
            harness.wait_for(lambda: counter(harness, "rdqc_shadow_errors_total") > 0)
        # A good candidate named later is picked up without a restart.
        store.start_shadow(LINE, loaded_model(module, LINE, "v3", threshold))
        harness.wait_for(lambda: shadowing_with(harness, "v3"))
        feed_calmly(harness, sink, range(20, 22))

    scored = [r.meta.frame_id for r in harness.scores.results]
    assert set(map(frame_id, records)) <= set(scored) and len(scored) == len(set(scored)) == 11
    assert {r.model_version for r in harness.scores.results} == {"v1"}
    assert harness.dead_letters.rejections == []
    assert {e.candidate_version for e in sink.entries} == {"v3"}
    if fault == "load":
        assert counter(harness, "rdqc_shadow_load_failures_total") >= 2
        assert counter(harness, "rdqc_shadow_errors_total") == 0


def test_a_candidate_appears_changes_and_disappears_without_a_restart(
    module: ReverseDistillation, threshold: float
) -> None:
    store = MemoryModelStore({LINE: loaded_model(module, LINE, "v1", threshold)})
    harness, sink = shadowed(store)

    def versions_for(records: list[SourceRecord]) -> set[str]:
        ids = set(map(frame_id, records))
        return {e.candidate_version for e in sink.entries if e.meta.frame_id in ids}

    with harness.running():
        none_yet = [warm_up(harness, None)]
        harness.wait_for(harness.all_committed)
        store.start_shadow(LINE, loaded_model(module, LINE, "v2", threshold))
        harness.wait_for(lambda: shadowing_with(harness, "v2"))
        under_v2 = feed_calmly(harness, sink, range(0, 3))
        store.start_shadow(LINE, loaded_model(module, LINE, "v3", threshold * 1.1))
        harness.wait_for(lambda: shadowing_with(harness, "v3"))
        under_v3 = feed_calmly(harness, sink, range(3, 6))
        store.stop_shadow(LINE)
        harness.wait_for(lambda: shadowing_with(harness, None))
        stopped = [harness.add(0, LINE, noise_png(6))]
        harness.wait_for(harness.all_committed)
        store.start_shadow(LINE, loaded_model(module, LINE, "v3", threshold * 1.1))
        harness.wait_for(lambda: shadowing_with(harness, "v3"))
        store.promote(LINE, "v3")  # the live model becomes the candidate; the test ends
        harness.wait_for(lambda: store.versions() == {LINE: "v3"} and shadowing_with(harness, None))
        promoted = [harness.add(1, LINE, noise_png(7))]
        harness.wait_for(harness.all_committed)

    assert versions_for(none_yet + stopped + promoted) == set()
    assert versions_for(under_v2) == {"v2"}
    assert versions_for(under_v3) == {"v3"}
    live = {r.meta.frame_id: r.model_version for r in harness.scores.results}
    assert live[frame_id(promoted[0])] == "v3"
    assert {live[frame_id(r)] for r in under_v2 + under_v3 + stopped} == {"v1"}


def test_a_failing_or_hung_shadow_sink_holds_up_nothing(
    module: ReverseDistillation, threshold: float
) -> None:
    store = MemoryModelStore({LINE: loaded_model(module, LINE, "v1", threshold)})
    store.start_shadow(LINE, loaded_model(module, LINE, "v2", threshold))
    harness, sink = shadowed(store)
    sink.fail_writes(1000)
    lost = "rdqc_shadow_write_failures_total"

    try:
        with harness.running():
            warm_up(harness, "v2")
            for seed in range(4):
                harness.add(seed % 2, LINE, noise_png(seed))
                harness.wait_for(harness.all_committed)
            harness.wait_for(lambda: counter(harness, lost) >= 1)
            sink.fail_writes(0)
            sink.hold_writes()  # a write that never returns: later ones pile up, then drop
            failed_so_far = counter(harness, lost)
            for seed in range(4, 12):
                harness.add(seed % 2, LINE, noise_png(seed))
                harness.wait_for(harness.all_committed)
            harness.wait_for(lambda: counter(harness, lost) > failed_so_far)
            assert harness.health.readiness()[0]
    finally:
        sink.release_writes()

    assert len(harness.scores.results) == 13 and harness.dead_letters.rejections == []
    assert harness.source.pause_count == 0
