"""The model registry over the directory backend: immutable versions, pointers with digests,
history, promote and rollback, the shadow pointer, and pointers from before contract v2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rdcore import ReverseDistillation
from rdcore.artifacts.artifact import save_artifact
from rdcore.artifacts.manifest import Manifest
from rdcore.calibration import calibrate
from rdcore.errors import ArtifactError
from worker.errors import ModelPublishError
from worker.modelstore.catalog import list_versions
from worker.modelstore.directory import DirectoryModelFiles
from worker.modelstore.publish import publish_artifact
from worker.modelstore.registry import ModelRegistry, RegistryError
from worker.ports import ModelPointer

pytestmark = pytest.mark.unit

HISTORY_NAME = re.compile(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}\.json")


@pytest.fixture
def models(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def registry(models: Path) -> ModelRegistry:
    registry = ModelRegistry(DirectoryModelFiles(models), by="tester@bench")
    registry.setup()
    return registry


def digest(artifact: Path) -> str:
    return Manifest.read(artifact).digest()


def actions(registry: ModelRegistry) -> list[tuple[str, str, str | None]]:
    return [
        (e.action, e.version, None if e.previous is None else e.previous.version)
        for e in registry.history("p1")
    ]


def test_publish_uploads_then_points_current_json_at_the_version_by_digest(
    registry: ModelRegistry, models: Path, p1_artifacts: dict[str, Path]
) -> None:
    published = publish_artifact(registry, p1_artifacts["v1"], "p1")

    assert published.uploaded
    assert json.loads((models / "p1" / "current.json").read_text()) == {
        "version": "v1",
        "sha256": published.sha256,
        "digest": digest(p1_artifacts["v1"]),
    }
    assert registry.pointer("p1") == ModelPointer("v1", published.sha256, published.digest)
    assert sorted(p.name for p in (models / "p1" / "v1").iterdir()) == [
        "manifest.json",
        "model.safetensors",
    ]
    [entry_file] = (models / "p1" / "history").iterdir()
    assert HISTORY_NAME.fullmatch(entry_file.name)
    entry = json.loads(entry_file.read_text())
    assert entry == {
        "at": entry["at"],
        "action": "publish",
        "version": "v1",
        "digest": published.digest,
        "previous": None,
        "by": "tester@bench",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", entry["at"])


def test_publishing_the_same_version_again_is_a_no_op(
    registry: ModelRegistry, models: Path, p1_artifacts: dict[str, Path]
) -> None:
    publish_artifact(registry, p1_artifacts["v1"], "p1")
    weights = models / "p1" / "v1" / "model.safetensors"
    written = weights.stat().st_mtime_ns

    again = publish_artifact(registry, p1_artifacts["v1"], "p1")

    assert not again.uploaded
    assert again.promoted is None  # current.json already names it: no change, no entry
    assert weights.stat().st_mtime_ns == written
    assert actions(registry) == [("publish", "v1", None)]


def test_another_artifact_under_a_published_version_is_refused_and_changes_nothing(
    registry: ModelRegistry, models: Path, p1_artifacts: dict[str, Path]
) -> None:
    publish_artifact(registry, p1_artifacts["v1"], "p1")
    manifest = (models / "p1" / "v1" / "manifest.json").read_bytes()

    with pytest.raises(ModelPublishError) as refused:
        publish_artifact(registry, p1_artifacts["v1-other"], "p1")

    message = str(refused.value)
    assert "p1/v1" in message
    assert digest(p1_artifacts["v1"]) in message
    assert digest(p1_artifacts["v1-other"]) in message
    assert "publish it under a new version" in message
    assert "\n" not in message
    assert (models / "p1" / "v1" / "manifest.json").read_bytes() == manifest
    assert registry.pointer("p1") == ModelPointer(
        "v1", Manifest.read(p1_artifacts["v1"]).weights_sha256, digest(p1_artifacts["v1"])
    )


def test_no_promote_uploads_only_and_promote_then_moves_the_pointer(
    registry: ModelRegistry, p1_artifacts: dict[str, Path]
) -> None:
    publish_artifact(registry, p1_artifacts["v1"], "p1")
    published = publish_artifact(registry, p1_artifacts["v2"], "p1", promote=False)

    assert published.uploaded and published.promoted is None
    assert registry.pointer("p1").version == "v1"  # type: ignore[union-attr]
    assert registry.version_names("p1") == ["v1", "v2"]

    entry = registry.promote("p1", "v2")

    assert entry is not None and entry.action == "promote"
    assert registry.pointer("p1") == ModelPointer(
        "v2", published.sha256, digest(p1_artifacts["v2"])
    )
    assert actions(registry) == [("publish", "v1", None), ("promote", "v2", "v1")]
    assert registry.promote("p1", "v2") is None  # already current: nothing recorded


def test_rollback_undoes_one_change_at_a_time_until_the_first(
    registry: ModelRegistry, p1_artifacts: dict[str, Path]
) -> None:
    for name in ("v1", "v2"):
        publish_artifact(registry, p1_artifacts[name], "p1")
    publish_artifact(registry, p1_artifacts["v3"], "p1", promote=False)
    registry.promote("p1", "v3")

    versions = [registry.rollback("p1").version for _ in range(2)]

    assert versions == ["v2", "v1"]
    assert registry.pointer("p1").version == "v1"  # type: ignore[union-attr]
    with pytest.raises(RegistryError, match="no earlier current version"):
        registry.rollback("p1")
    assert actions(registry) == [
        ("publish", "v1", None),
        ("publish", "v2", "v1"),
        ("promote", "v3", "v2"),
        ("rollback", "v2", "v3"),
        ("rollback", "v1", "v2"),
    ]


def test_rollback_without_history_and_promote_of_an_unknown_version_say_what_to_do(
    registry: ModelRegistry,
) -> None:
    with pytest.raises(RegistryError, match=r"rdqc models promote p1 VERSION"):
        registry.rollback("p1")
    with pytest.raises(RegistryError, match=r"p1/v9 is not published.*rdqc models list"):
        registry.promote("p1", "v9")


def test_shadow_writes_shadow_json_and_stop_removes_it(
    registry: ModelRegistry, models: Path, p1_artifacts: dict[str, Path]
) -> None:
    publish_artifact(registry, p1_artifacts["v1"], "p1")
    candidate = publish_artifact(registry, p1_artifacts["v2"], "p1", promote=False)
    assert registry.shadow("p1") is None

    registry.start_shadow("p1", "v2")

    stored = json.loads((models / "p1" / "shadow.json").read_text())
    assert stored == {
        "version": "v2",
        "sha256": candidate.sha256,
        "digest": candidate.digest,
        "since": stored["since"],
    }
    assert registry.shadow("p1") == ModelPointer("v2", candidate.sha256, candidate.digest)
    assert registry.start_shadow("p1", "v2") is None  # already shadowed
    with pytest.raises(RegistryError, match="is the current version"):
        registry.start_shadow("p1", "v1")

    registry.stop_shadow("p1")

    assert not (models / "p1" / "shadow.json").exists()
    assert registry.shadow("p1") is None
    with pytest.raises(RegistryError, match="no shadowed version"):
        registry.stop_shadow("p1")
    assert actions(registry) == [
        ("publish", "v1", None),
        ("shadow", "v2", None),
        ("unshadow", "v2", "v2"),
    ]


def test_promoting_ends_the_shadow_first(
    registry: ModelRegistry, models: Path, p1_artifacts: dict[str, Path]
) -> None:
    publish_artifact(registry, p1_artifacts["v1"], "p1")
    publish_artifact(registry, p1_artifacts["v2"], "p1", promote=False)
    registry.start_shadow("p1", "v2")

    registry.promote("p1", "v2")

    assert not (models / "p1" / "shadow.json").exists()
    assert actions(registry)[-2:] == [("unshadow", "v2", "v2"), ("promote", "v2", "v1")]


def test_a_v1_pointer_is_read_without_a_digest_and_promoting_writes_one(
    registry: ModelRegistry, models: Path, p1_artifacts: dict[str, Path]
) -> None:
    published = publish_artifact(registry, p1_artifacts["v1"], "p1", promote=False)
    v1_pointer = {"version": "v1", "sha256": published.sha256}
    (models / "p1" / "current.json").write_text(json.dumps(v1_pointer))

    assert registry.pointer("p1") == ModelPointer("v1", published.sha256, None)

    entry = registry.promote("p1", "v1")

    assert entry is not None
    assert entry.previous is not None and entry.previous.digest == published.digest
    assert registry.pointer("p1") == ModelPointer("v1", published.sha256, published.digest)


@pytest.mark.parametrize("version", ["history", "current.json", "shadow.json"])
def test_versions_may_not_take_the_names_beside_them(
    registry: ModelRegistry, tmp_path: Path, module: ReverseDistillation, version: str
) -> None:
    artifact = tmp_path / "artifact"
    save_artifact(
        module,
        artifact,
        product_line="p1",
        model_version=version,
        calibration=calibrate([0.1, 0.2, 0.3]),
        training={},
    )
    with pytest.raises(ArtifactError, match="reserved"):
        publish_artifact(registry, artifact, "p1")


def test_listing_leaves_out_cut_off_uploads_and_names_broken_versions(
    registry: ModelRegistry, models: Path, p1_artifacts: dict[str, Path]
) -> None:
    publish_artifact(registry, p1_artifacts["v1"], "p1")
    # An upload cut off after its weights: not a published version.
    (models / "p1" / "v9").mkdir()
    (models / "p1" / "v9" / "model.safetensors").write_bytes(b"partial")
    # A manifest some other tool wrote badly.
    (models / "p1" / "v8").mkdir()
    (models / "p1" / "v8" / "manifest.json").write_text("{broken")

    listed = list_versions(registry, "p1")

    assert registry.product_lines() == ["p1"]
    assert [(s.version, s.current, s.digest is not None) for s in listed] == [
        ("v1", True, True),
        ("v8", False, False),
    ]
    assert listed[0].problem is None
    assert "v8/manifest.json" in (listed[1].problem or "")
    assert list_versions(registry, "nothing") == []


def test_a_broken_current_version_from_before_v2_can_be_replaced(
    registry: ModelRegistry, models: Path, p1_artifacts: dict[str, Path]
) -> None:
    broken = json.loads((p1_artifacts["v1"] / "manifest.json").read_text())
    broken["calibration"]["threshold"] = float("nan")
    (models / "p1" / "v1").mkdir(parents=True)
    (models / "p1" / "v1" / "manifest.json").write_text(json.dumps(broken))
    v1_pointer = {"version": "v1", "sha256": broken["weights"]["sha256"]}
    (models / "p1" / "current.json").write_text(json.dumps(v1_pointer))

    published = publish_artifact(registry, p1_artifacts["v2"], "p1")

    assert published.promoted is not None and published.promoted.previous is None
    assert registry.pointer("p1").version == "v2"  # type: ignore[union-attr]
