"""The model registry over a real MinIO bucket: immutable versions, promote and rollback with
history, the shadow pointer, and a v1 pointer served as before (docs/contracts.md §4)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from minio import Minio
from worker_harness import read_json, s3_registry

from rdcore import ModelConfig, reverse_distillation
from rdcore.artifacts.artifact import save_artifact
from rdcore.artifacts.manifest import Manifest
from rdcore.calibration import calibrate
from worker.modelstore.publish import publish_artifact
from worker.modelstore.registry import RegistryError, VersionExists
from worker.modelstore.store import CachingModelStore
from worker.ports import ModelPointer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """p1 v1, v2, v3, and "v1-other": another artifact that also calls itself v1."""
    root = tmp_path_factory.mktemp("artifacts")
    model = reverse_distillation(ModelConfig(backbone="resnet18", image_size=64), "random")
    for name, version, scores in [
        ("v1", "v1", [0.1, 0.2, 0.3]),
        ("v2", "v2", [0.1, 0.2, 0.3]),
        ("v3", "v3", [0.1, 0.2, 0.3]),
        ("v1-other", "v1", [0.4, 0.5, 0.6]),
    ]:
        save_artifact(
            model,
            root / name,
            product_line="p1",
            model_version=version,
            calibration=calibrate(scores),
            training={},
        )
    return {name: root / name for name in ("v1", "v2", "v3", "v1-other")}


def test_a_published_version_is_never_overwritten(
    minio_client: Minio, s3_bucket: str, artifacts: dict[str, Path]
) -> None:
    registry = s3_registry(minio_client, s3_bucket)
    first = publish_artifact(registry, artifacts["v1"], "p1")
    etags = {
        name: minio_client.stat_object(s3_bucket, f"p1/v1/{name}").etag
        for name in ("manifest.json", "model.safetensors")
    }

    again = publish_artifact(registry, artifacts["v1"], "p1")
    with pytest.raises(VersionExists) as refused:
        publish_artifact(registry, artifacts["v1-other"], "p1")

    assert first.uploaded and not again.uploaded and again.promoted is None
    other = Manifest.read(artifacts["v1-other"]).digest()
    assert first.digest in str(refused.value) and other in str(refused.value)
    for name, etag in etags.items():
        assert minio_client.stat_object(s3_bucket, f"p1/v1/{name}").etag == etag
    assert read_json(minio_client, s3_bucket, "p1/current.json")["digest"] == first.digest
    assert [e.action for e in registry.history("p1")] == ["publish"]


def test_promote_rollback_and_history(
    minio_client: Minio, s3_bucket: str, artifacts: dict[str, Path]
) -> None:
    registry = s3_registry(minio_client, s3_bucket)
    for name in ("v1", "v2"):
        publish_artifact(registry, artifacts[name], "p1")
    v3 = publish_artifact(registry, artifacts["v3"], "p1", promote=False)
    assert registry.pointer("p1").version == "v2"  # type: ignore[union-attr]

    registry.promote("p1", "v3")
    assert read_json(minio_client, s3_bucket, "p1/current.json") == {
        "version": "v3",
        "sha256": v3.sha256,
        "digest": v3.digest,
    }
    rolled_back = [registry.rollback("p1").version for _ in range(2)]
    with pytest.raises(RegistryError, match="no earlier current version"):
        registry.rollback("p1")

    assert rolled_back == ["v2", "v1"]
    assert registry.product_lines() == ["p1"]
    assert registry.version_names("p1") == ["v1", "v2", "v3"]
    history = registry.history("p1")
    assert [(e.action, e.version) for e in history] == [
        ("publish", "v1"),
        ("publish", "v2"),
        ("promote", "v3"),
        ("rollback", "v2"),
        ("rollback", "v1"),
    ]
    assert {e.by for e in history} == {"tests@integration"}
    keys = [o.object_name for o in minio_client.list_objects(s3_bucket, "p1/history/")]
    assert len(keys) == 5


def test_shadow_json_lives_from_shadow_until_stop_or_promotion(
    minio_client: Minio, s3_bucket: str, artifacts: dict[str, Path]
) -> None:
    registry = s3_registry(minio_client, s3_bucket)
    publish_artifact(registry, artifacts["v1"], "p1")
    v2 = publish_artifact(registry, artifacts["v2"], "p1", promote=False)

    registry.start_shadow("p1", "v2")
    stored = read_json(minio_client, s3_bucket, "p1/shadow.json")
    assert stored == {
        "version": "v2",
        "sha256": v2.sha256,
        "digest": v2.digest,
        "since": stored["since"],
    }
    assert registry.shadow("p1") == ModelPointer("v2", v2.sha256, v2.digest)
    registry.stop_shadow("p1")
    assert registry.shadow("p1") is None
    registry.start_shadow("p1", "v2")
    registry.promote("p1", "v2")

    assert registry.shadow("p1") is None
    assert [e.action for e in registry.history("p1")] == [
        "publish",
        "shadow",
        "unshadow",
        "shadow",
        "unshadow",
        "promote",
    ]


def test_a_v1_pointer_is_read_and_served(
    tmp_path: Path, minio_client: Minio, s3_bucket: str, artifacts: dict[str, Path]
) -> None:
    registry = s3_registry(minio_client, s3_bucket)
    published = publish_artifact(registry, artifacts["v1"], "p1", promote=False)
    v1_pointer = json.dumps({"version": "v1", "sha256": published.sha256}).encode()
    minio_client.put_object(s3_bucket, "p1/current.json", io.BytesIO(v1_pointer), len(v1_pointer))

    assert registry.pointer("p1") == ModelPointer("v1", published.sha256, None)
    store = CachingModelStore(registry, tmp_path / "cache", warmup=False)
    assert store.get("p1").manifest.digest() == published.digest
    assert store.refresh() == []
