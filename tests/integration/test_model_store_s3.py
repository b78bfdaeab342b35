"""The model registry over S3 + CachingModelStore against a real MinIO (docs/contracts.md §4)."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from minio import Minio
from worker_harness import read_json

from rdcore import ModelConfig, reverse_distillation
from rdcore.artifacts.artifact import LoadedModel, save_artifact
from rdcore.calibration import calibrate
from worker.errors import ModelLoadError, UnknownProductLine
from worker.modelstore.lifecycle import ModelLifecycle
from worker.modelstore.publish import publish_artifact
from worker.modelstore.registry import ModelRegistry
from worker.modelstore.s3 import S3ModelFiles
from worker.modelstore.store import CachingModelStore, ModelLoadEvent
from worker.observability.health import Health
from worker.observability.prometheus import Metrics
from worker.ports import ModelSwap

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small p1 artifacts v1..v4, made once for the module."""
    root = tmp_path_factory.mktemp("artifacts")
    for version in ("v1", "v2", "v3", "v4"):
        model = reverse_distillation(ModelConfig(backbone="resnet18", image_size=64), "random")
        save_artifact(
            model,
            root / version,
            product_line="p1",
            model_version=version,
            calibration=calibrate([0.1, 0.2, 0.3]),
            training={},
        )
    return {version: root / version for version in ("v1", "v2", "v3", "v4")}


def test_publish_load_hot_swap_and_a_corrupt_upload_keeps_the_old_model(
    tmp_path: Path, minio_client: Minio, s3_bucket: str, artifacts: dict[str, Path]
) -> None:
    repository = ModelRegistry(S3ModelFiles(minio_client, s3_bucket))
    repository.setup()
    assert repository.pointer("p1") is None

    published = publish_artifact(repository, artifacts["v1"], "p1")

    keys = sorted(o.object_name for o in minio_client.list_objects(s3_bucket, recursive=True))
    assert keys[0] == "p1/current.json"
    assert re.fullmatch(r"p1/history/\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}\.json", keys[1])
    assert keys[2:] == ["p1/v1/manifest.json", "p1/v1/model.safetensors"]
    assert read_json(minio_client, s3_bucket, "p1/current.json") == {
        "version": "v1",
        "sha256": published.sha256,
        "digest": published.digest,
    }

    events: list[ModelLoadEvent] = []
    store = CachingModelStore(repository, tmp_path / "cache", on_load=events.append)
    with pytest.raises(UnknownProductLine):
        store.get("p2")
    assert store.get("p1").version == "v1"

    publish_artifact(repository, artifacts["v2"], "p1")
    assert store.refresh() == [ModelSwap("p1", "v1", "v2")]
    serving = store.get("p1")
    assert serving.version == "v2"

    # v3's weights arrive damaged: the store refuses it and v2 keeps serving.
    publish_artifact(repository, artifacts["v3"], "p1")
    garbage = b"not safetensors at all"
    minio_client.put_object(s3_bucket, "p1/v3/model.safetensors", io.BytesIO(garbage), len(garbage))
    assert store.refresh() == []
    assert store.get("p1") is serving

    # v4 is intact, but the pointer names other weights: refused too.
    publish_artifact(repository, artifacts["v4"], "p1", promote=False)
    wrong = json.dumps({"version": "v4", "sha256": "0" * 64}).encode()
    minio_client.put_object(s3_bucket, "p1/current.json", io.BytesIO(wrong), len(wrong))
    assert store.refresh() == []
    assert store.get("p1") is serving

    assert [(e.version, e.ok) for e in events] == [
        ("v1", True),
        ("v2", True),
        ("v3", False),
        ("v4", False),
    ]
    assert "sha256" in (events[2].error or "")
    assert "0" * 64 in (events[3].error or "")


def test_a_missing_bucket_fails_setup(minio_client: Minio, s3_bucket: str) -> None:
    repository = ModelRegistry(S3ModelFiles(minio_client, f"{s3_bucket}-missing"))
    with pytest.raises(ModelLoadError, match="does not exist"):
        repository.setup()


def test_frames_wait_through_a_corrupt_upload_and_get_the_fixed_version(
    tmp_path: Path, minio_client: Minio, s3_bucket: str, artifacts: dict[str, Path]
) -> None:
    repository = ModelRegistry(S3ModelFiles(minio_client, s3_bucket))
    store = CachingModelStore(repository, tmp_path / "cache", warmup=False)
    health = Health()
    health.set_assigned(True)
    lifecycle = ModelLifecycle(store, Metrics(), health, retry_first_s=0.05)
    publish_artifact(repository, artifacts["v1"], "p1")
    garbage = b"not safetensors at all"
    minio_client.put_object(s3_bucket, "p1/v1/model.safetensors", io.BytesIO(garbage), len(garbage))

    def ask(product_line: str, until: Callable[[], bool]) -> LoadedModel | None:
        """Ask as the loop does on each turn; a problem other than 'unknown' never raises."""
        deadline = time.monotonic() + 20
        while True:
            loaded = lifecycle.model(product_line)
            if until() or loaded is not None:
                return loaded
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.01)

    try:
        assert ask("p1", lambda: "p1" in health.readiness()[1]["model_store"]) is None
        assert not health.readiness()[0]
        with pytest.raises(UnknownProductLine):
            ask("p2", lambda: False)  # no pointer: the one definite answer

        publish_artifact(repository, artifacts["v2"], "p1")
        loaded = ask("p1", lambda: False)
    finally:
        lifecycle.close()

    assert loaded is not None and loaded.version == "v2"
    assert health.readiness()[0]


def test_a_missing_bucket_is_a_load_failure_never_an_unknown_product_line(
    tmp_path: Path, minio_client: Minio, s3_bucket: str
) -> None:
    repository = ModelRegistry(S3ModelFiles(minio_client, f"{s3_bucket}-missing"))
    store = CachingModelStore(repository, tmp_path / "cache")
    with pytest.raises(ModelLoadError, match="NoSuchBucket"):
        store.get("p1")
