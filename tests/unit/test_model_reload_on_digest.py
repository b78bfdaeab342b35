"""Workers follow the pointer's digest: a new digest is loaded, a download must have it, and
a v1 pointer (no digest) is still served, compared by version and weights sha256."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from pipeline_harness import loaded_model

from rdcore import ReverseDistillation
from rdcore.artifacts.artifact import LoadedModel
from rdcore.data.synthetic import write_image_folder
from rdcore.evaluation.recalibrate import recalibrate_as_new_version
from worker.modelstore.directory import DirectoryModelFiles
from worker.modelstore.lifecycle import ModelLifecycle
from worker.modelstore.memory import MemoryModelStore
from worker.modelstore.publish import publish_artifact
from worker.modelstore.registry import ModelRegistry
from worker.modelstore.store import CachingModelStore, ModelLoadEvent
from worker.observability.health import Health
from worker.observability.prometheus import Metrics
from worker.ports import ModelSwap

pytestmark = pytest.mark.unit


def registry_at(root: Path) -> ModelRegistry:
    registry = ModelRegistry(DirectoryModelFiles(root))
    registry.setup()
    return registry


def test_a_recalibration_published_as_a_new_version_is_swapped_in_at_the_next_refresh(
    tmp_path: Path, p1_artifacts: dict[str, Path]
) -> None:
    registry = registry_at(tmp_path / "models")
    publish_artifact(registry, p1_artifacts["v1"], "p1")
    store = CachingModelStore(registry, tmp_path / "cache", warmup=False)
    old = store.get("p1")
    good = tmp_path / "good"
    write_image_folder(good, 4, seed=1, size=64)
    recalibrated, manifest = recalibrate_as_new_version(
        p1_artifacts["v1"], good, tmp_path / "v1-cal", new_version="v1-cal", device="cpu"
    )
    publish_artifact(registry, recalibrated, "p1")

    assert store.refresh() == [ModelSwap("p1", "v1", "v1-cal")]

    serving = store.get("p1")
    assert serving.manifest.digest() == manifest.digest()
    assert serving.calibration.threshold != old.calibration.threshold
    assert serving.manifest.weights_sha256 == old.manifest.weights_sha256


def test_a_version_without_the_pointers_digest_is_refused_and_the_old_one_keeps_serving(
    tmp_path: Path, p1_artifacts: dict[str, Path]
) -> None:
    models = tmp_path / "models"
    registry = registry_at(models)
    publish_artifact(registry, p1_artifacts["v1"], "p1")
    v2 = publish_artifact(registry, p1_artifacts["v2"], "p1", promote=False)
    events: list[ModelLoadEvent] = []
    store = CachingModelStore(registry, tmp_path / "cache", warmup=False, on_load=events.append)
    serving = store.get("p1")
    stale = {"version": "v2", "sha256": v2.sha256, "digest": "1" * 64}
    (models / "p1" / "current.json").write_text(json.dumps(stale))

    assert store.refresh() == []

    assert store.get("p1") is serving
    assert [(e.version, e.ok) for e in events] == [("v1", True), ("v2", False)]
    assert "1" * 64 in (events[-1].error or "")
    assert v2.digest in (events[-1].error or "")


def test_a_cached_copy_of_another_artifact_under_the_same_name_is_downloaded_afresh(
    tmp_path: Path, p1_artifacts: dict[str, Path]
) -> None:
    cache = tmp_path / "cache"
    first = registry_at(tmp_path / "first")
    publish_artifact(first, p1_artifacts["v1"], "p1")
    CachingModelStore(first, cache, warmup=False).get("p1")
    # The store was rebuilt, and its v1 is another artifact.
    rebuilt = registry_at(tmp_path / "rebuilt")
    published = publish_artifact(rebuilt, p1_artifacts["v1-other"], "p1")

    model = CachingModelStore(rebuilt, cache, warmup=False).get("p1")

    assert model.manifest.digest() == published.digest


def test_a_v1_pointer_is_served_and_upgrading_it_to_v2_reloads_nothing(
    tmp_path: Path, p1_artifacts: dict[str, Path]
) -> None:
    models = tmp_path / "models"
    registry = registry_at(models)
    published = publish_artifact(registry, p1_artifacts["v1"], "p1", promote=False)
    v1_pointer = {"version": "v1", "sha256": published.sha256}
    (models / "p1" / "current.json").write_text(json.dumps(v1_pointer))
    store = CachingModelStore(registry, tmp_path / "cache", warmup=False)

    assert store.get("p1").version == "v1"
    assert store.refresh() == []
    registry.promote("p1", "v1")  # now with its digest
    assert store.refresh() == []


def test_the_lifecycle_hands_out_a_swapped_model_even_under_the_same_version_name(
    module: ReverseDistillation,
) -> None:
    store = MemoryModelStore({"caps": loaded_model(module, "caps", "v1", 0.3)})
    health = Health()
    health.set_assigned(True)
    lifecycle = ModelLifecycle(store, Metrics(), health)
    rewritten = loaded_model(module, "caps", "v1", 0.6)
    try:
        assert wait_for_model(lifecycle).calibration.threshold != rewritten.calibration.threshold
        store.publish("caps", rewritten)
        lifecycle.refresh()
        deadline = time.monotonic() + 10
        while lifecycle.model("caps") is not rewritten:
            assert time.monotonic() < deadline, "the rewritten model was never handed out"
            lifecycle.settle()
            time.sleep(0.005)
    finally:
        lifecycle.close()


def wait_for_model(lifecycle: ModelLifecycle) -> LoadedModel:
    deadline = time.monotonic() + 10
    while (model := lifecycle.model("caps")) is None:
        assert time.monotonic() < deadline, "no model"
        time.sleep(0.005)
    return model
