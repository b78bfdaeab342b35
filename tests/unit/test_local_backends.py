"""The embedded local backends: directory source, JSON-lines scores, directory heatmaps and dead
letters, the directory model repository and the caching model store."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from rdcore import ModelConfig, reverse_distillation
from rdcore.artifacts.artifact import save_artifact
from rdcore.artifacts.manifest import Manifest
from rdcore.calibration import calibrate
from rdcore.errors import ArtifactError
from worker.errors import ModelLoadError, SinkError, UnknownProductLine
from worker.frames import FrameMeta, FrameResult, Rejection, SourceRecord, TopicPartition
from worker.modelstore.directory import DirectoryModelFiles
from worker.modelstore.publish import publish_artifact
from worker.modelstore.registry import ModelRegistry
from worker.modelstore.store import CachingModelStore, ModelLoadEvent
from worker.ports import ModelPointer, ModelSwap
from worker.sinks.directory_dead_letters import DirectoryDeadLetterSink
from worker.sinks.directory_heatmaps import DirectoryHeatmapSink
from worker.sinks.jsonl_scores import JsonlScoreSink
from worker.sinks.object_keys import heatmap_key, safe_segment
from worker.sources.directory import OFFSETS_FILE, DirectoryFrameSource

pytestmark = pytest.mark.unit

POLL_S = 0.05


# --- directory source ------------------------------------------------------------------------


class Rebalances:
    def __init__(self) -> None:
        self.assigned: list[set[TopicPartition]] = []
        self.revoked: list[set[TopicPartition]] = []

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        self.assigned.append(partitions)

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        self.revoked.append(partitions)


def started_source(root: Path) -> tuple[DirectoryFrameSource, Rebalances]:
    source = DirectoryFrameSource(root, poll_interval_s=POLL_S)
    rebalances = Rebalances()
    source.setup(rebalances.on_assigned, rebalances.on_revoked)
    return source, rebalances


def poll_until(source: DirectoryFrameSource, count: int) -> list[SourceRecord]:
    records: list[SourceRecord] = []
    deadline = time.monotonic() + 5.0
    while len(records) < count and time.monotonic() < deadline:
        records += source.poll(timeout_s=0.2, max_records=count - len(records))
    return records


def write_frame(root: Path, product_line: str, camera: str, name: str, data: bytes) -> Path:
    path = root / product_line / camera / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_directory_source_derives_headers_from_the_path(tmp_path: Path) -> None:
    path = write_frame(tmp_path, "bottle-caps", "cam-07", "000123.png", b"png-bytes")
    os.utime(path, ns=(1_795_000_000_123_000_000, 1_795_000_000_123_000_000))
    source, rebalances = started_source(tmp_path)

    [record] = poll_until(source, 1)

    assert rebalances.assigned == [{TopicPartition("dir", 0)}]
    assert (record.topic, record.partition, record.offset) == ("dir", 0, 0)
    assert record.value == b"png-bytes"
    assert record.key == b"cam-07"
    assert record.timestamp_ms == 1_795_000_000_123
    assert dict(record.headers) == {
        "product_line": b"bottle-caps",
        "camera_id": b"cam-07",
        "frame_id": b"bottle-caps-cam-07-000123",
        "captured_at": b"1795000000123",
        "content_type": b"image/png",
    }


def test_directory_source_picks_up_new_files_with_one_partition_per_product_line(
    tmp_path: Path,
) -> None:
    write_frame(tmp_path, "p1", "cam1", "001.png", b"a")
    source, rebalances = started_source(tmp_path)
    assert [r.header("frame_id") for r in poll_until(source, 1)] == ["p1-cam1-001"]

    write_frame(tmp_path, "p1", "cam1", "002.jpg", b"b")
    write_frame(tmp_path, "p2", "cam9", "001.jpeg", b"c")
    records = poll_until(source, 2)

    assert sorted((r.partition, r.offset, r.header("frame_id")) for r in records) == [
        (0, 1, "p1-cam1-002"),
        (1, 0, "p2-cam9-001"),
    ]
    assert rebalances.assigned == [{TopicPartition("dir", 0)}, {TopicPartition("dir", 1)}]
    assert source.assignment() == {TopicPartition("dir", 0), TopicPartition("dir", 1)}
    assert source.poll(timeout_s=3 * POLL_S, max_records=10) == []


def test_directory_source_waits_until_a_file_stops_growing(tmp_path: Path) -> None:
    source, _ = started_source(tmp_path)
    path = write_frame(tmp_path, "p1", "cam1", "001.png", b"first half")
    assert source.poll(timeout_s=0, max_records=10) == []  # seen once: not settled yet
    time.sleep(POLL_S * 1.5)
    with path.open("ab") as stream:
        stream.write(b" and the second half")
    assert source.poll(timeout_s=0, max_records=10) == []  # changed since: still not settled

    [record] = poll_until(source, 1)

    assert record.value == b"first half and the second half"


def test_directory_source_resumes_after_the_committed_offsets(tmp_path: Path) -> None:
    for name in ("001.png", "002.png", "003.png"):
        write_frame(tmp_path, "p1", "cam1", name, name.encode())
    source, _ = started_source(tmp_path)
    records = poll_until(source, 3)
    assert [r.offset for r in records] == [0, 1, 2]

    source.commit({TopicPartition("dir", 0): 2})  # 001 and 002 are done, 003 is not
    source.close()
    saved = json.loads((tmp_path / OFFSETS_FILE).read_text())
    assert saved["processed"] == {"p1": ["cam1/001.png", "cam1/002.png"]}

    restarted, _ = started_source(tmp_path)
    [again] = poll_until(restarted, 1)
    assert again.header("frame_id") == "p1-cam1-003"
    assert restarted.poll(timeout_s=3 * POLL_S, max_records=10) == []


def test_directory_source_skips_and_reports_files_outside_the_layout_once(tmp_path: Path) -> None:
    write_frame(tmp_path, "p1", "cam1", "notes.txt", b"x")
    (tmp_path / "stray.png").write_bytes(b"x")
    (tmp_path / "p1" / "stray.png").write_bytes(b"x")
    (tmp_path / "p1" / "cam1" / "nested").mkdir()
    (tmp_path / ".hidden").mkdir()
    source, _ = started_source(tmp_path)

    with capture_logs() as logs:
        assert source.poll(timeout_s=4 * POLL_S, max_records=10) == []

    skipped = sorted(
        Path(entry["path"]).relative_to(tmp_path).as_posix()
        for entry in logs
        if entry["event"] == "directory_entry_skipped"
    )
    assert skipped == ["p1/cam1/nested", "p1/cam1/notes.txt", "p1/stray.png", "stray.png"]


def test_directory_source_pause_holds_records_back(tmp_path: Path) -> None:
    write_frame(tmp_path, "p1", "cam1", "001.png", b"a")
    source, _ = started_source(tmp_path)
    source.pause()
    assert source.poll(timeout_s=4 * POLL_S, max_records=10) == []
    assert source.lag() == {TopicPartition("dir", 0): 1}

    source.resume()

    assert len(poll_until(source, 1)) == 1
    assert source.lag() == {TopicPartition("dir", 0): 0}


def test_directory_source_refuses_a_missing_root(tmp_path: Path) -> None:
    source = DirectoryFrameSource(tmp_path / "nope", poll_interval_s=POLL_S)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        source.setup(lambda _: None, lambda _: None)


# --- JSON-lines scores -----------------------------------------------------------------------


def result(
    frame_id: str,
    captured_at: int = 1_795_000_000_000,
    *,
    line: str = "p1",
    camera: str = "cam1",
    model_version: str = "v1",
) -> FrameResult:
    return FrameResult(
        meta=FrameMeta(frame_id, line, camera, captured_at),
        score=0.73,
        raw_score=0.412,
        threshold=0.381,
        is_anomaly=True,
        model_version=model_version,
        scored_at_ms=captured_at + 42,
        heatmap_uri="",
        worker_id="w-1",
    )


def test_jsonl_sink_writes_typed_records_once_per_frame(tmp_path: Path) -> None:
    path = tmp_path / "out" / "scores.jsonl"
    sink = JsonlScoreSink(path)
    sink.setup()
    sink.add(result("f1"))
    sink.add(result("f1"))  # redelivered within one batch
    sink.add(result("f2"))
    sink.flush()
    sink.add(result("f2"))  # redelivered in a later batch
    sink.flush()
    sink.close()

    restarted = JsonlScoreSink(path)
    restarted.setup()
    restarted.add(result("f1"))  # redelivered after a restart
    restarted.add(result("f3"))
    restarted.flush()
    restarted.close()

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["frame_id"] for line in lines] == ["f1", "f2", "f3"]
    assert lines[0] == {
        "frame_id": "f1",
        "product_line": "p1",
        "camera_id": "cam1",
        "score": 0.73,
        "raw_score": 0.412,
        "threshold": 0.381,
        "is_anomaly": True,
        "model_version": "v1",
        "captured_at": 1_795_000_000_000,
        "scored_at": 1_795_000_000_042,
        "heatmap_uri": "",
        "worker_id": "w-1",
    }


def test_jsonl_sink_keeps_the_first_record_of_each_line_camera_and_frame(tmp_path: Path) -> None:
    path = tmp_path / "scores.jsonl"
    sink = JsonlScoreSink(path)
    sink.setup()
    sink.add(result("000123", camera="cam1"))
    sink.add(result("000123", camera="cam2"))  # another camera numbers its frames alike
    sink.add(result("000123", camera="cam1", model_version="v2"))  # redelivered, rescored
    sink.flush()
    sink.close()

    restarted = JsonlScoreSink(path)
    restarted.setup()
    restarted.add(result("000123", camera="cam2", model_version="v2"))  # redelivered
    restarted.add(result("000123", camera="cam1", line="p2"))  # another product line
    restarted.flush()
    restarted.close()

    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [
        (r["product_line"], r["camera_id"], r["frame_id"], r["model_version"]) for r in records
    ] == [
        ("p1", "cam1", "000123", "v1"),
        ("p1", "cam2", "000123", "v1"),
        ("p2", "cam1", "000123", "v1"),
    ]


def test_jsonl_sink_refuses_a_file_whose_records_lack_the_frame_scope(tmp_path: Path) -> None:
    path = tmp_path / "scores.jsonl"
    path.write_text('{"frame_id": "f1", "product_line": "p1"}\n')
    with pytest.raises(SinkError, match="line 1 is not a score record"):
        JsonlScoreSink(path).setup()


def test_jsonl_sink_drops_a_torn_last_line_at_setup(tmp_path: Path) -> None:
    path = tmp_path / "scores.jsonl"
    path.write_text(
        '{"frame_id": "f1", "product_line": "p1", "camera_id": "cam1"}\n{"frame_id": "f2", "sco'
    )
    sink = JsonlScoreSink(path)
    sink.setup()
    sink.add(result("f1"))
    sink.add(result("f2"))
    sink.flush()
    sink.close()

    assert [json.loads(line)["frame_id"] for line in path.read_text().splitlines()] == ["f1", "f2"]


# --- heatmaps and dead letters ---------------------------------------------------------------


def test_heatmap_keys_follow_the_contract_and_stay_inside_their_prefix() -> None:
    meta = FrameMeta("cam-07-000123", "bottle-caps", "cam-07", 1_795_000_000_000)
    assert heatmap_key(meta) == "bottle-caps/2026-11-18/cam-07/cam-07-000123.png"

    hostile = FrameMeta("../../etc/passwd", "..", "a/b", 0)
    segments = heatmap_key(hostile).split("/")
    assert len(segments) == 4
    assert segments[1] == "1970-01-01"
    for segment in segments:
        assert segment not in {"", ".", ".."}
        assert not segment.startswith(".")
    assert segments[3].startswith("_.._.._etc_passwd-")
    # Ids that sanitize alike still get different keys.
    assert safe_segment("a/b") != safe_segment("a_b") == "a_b"
    assert len(safe_segment("x" * 1000)) <= 120
    assert safe_segment("") not in {"", "."}


def test_directory_heatmap_sink_writes_inside_its_root(tmp_path: Path) -> None:
    root = tmp_path / "heatmaps"
    sink = DirectoryHeatmapSink(root)
    sink.setup()
    meta = FrameMeta("../../../escape", "p1", "../cam", 1_795_000_000_000)

    uri = sink.add(meta, b"\x89PNG fake")
    sink.flush()

    assert uri == sink.uri_for(meta)
    assert uri.startswith("file://")
    path = Path(uri.removeprefix("file://"))
    assert path.read_bytes() == b"\x89PNG fake"
    assert path.resolve().is_relative_to(root.resolve())
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [path]  # no temp files left


def test_directory_dead_letter_sink_keeps_payload_and_why(tmp_path: Path) -> None:
    record = SourceRecord(
        "frames.inbound", 2, 41, b"cam-1", b"\xff\xd8 not a jpeg", (("frame_id", b"f/1"),), 7
    )
    sink = DirectoryDeadLetterSink(tmp_path, worker_id="w-1")
    sink.setup()
    sink.add(Rejection(record, "undecodable", "ImageReadError", "not a decodable image"))
    sink.flush()

    [payload] = (tmp_path / "undecodable").glob("*.bin")
    sidecar = json.loads(payload.with_suffix(".json").read_text())
    assert payload.read_bytes() == b"\xff\xd8 not a jpeg"
    assert sidecar["reason"] == "undecodable"
    assert sidecar["error_class"] == "ImageReadError"
    assert sidecar["message"] == "not a decodable image"
    assert sidecar["worker_id"] == "w-1"
    assert sidecar["source"] == {
        "topic": "frames.inbound",
        "partition": 2,
        "offset": 41,
        "timestamp_ms": 7,
    }
    assert sidecar["key"] == {"text": "cam-1"}
    assert sidecar["headers"] == [{"name": "frame_id", "text": "f/1"}]


# --- directory model repository and caching store --------------------------------------------


def make_artifact(directory: Path, product_line: str, version: str) -> Manifest:
    model = reverse_distillation(ModelConfig(backbone="resnet18", image_size=64), "random")
    return save_artifact(
        model,
        directory,
        product_line=product_line,
        model_version=version,
        calibration=calibrate([0.1, 0.2, 0.3]),
        training={},
    )


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Artifacts by ``{product_line}/{version}``, made once for the module."""
    root = tmp_path_factory.mktemp("artifacts")
    made = {}
    for name in ("p1/v1", "p1/v2", "p2/v1"):
        product_line, version = name.split("/")
        make_artifact(root / name, product_line, version)
        made[name] = root / name
    return made


@pytest.fixture
def repository(tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(DirectoryModelFiles(tmp_path / "models"))
    registry.setup()
    return registry


def place_by_hand(models: Path, artifact: Path, line: str, version: str, sha256: str) -> None:
    """Put an artifact and a v1 pointer (no digest) into the store past the registry's checks,
    as a corrupt upload or an older rdqc could have left them."""
    shutil.copytree(artifact, models / line / version, dirs_exist_ok=True)
    pointer = {"version": version, "sha256": sha256}
    (models / line / "current.json").write_text(json.dumps(pointer))


def test_publish_then_store_loads_and_caches(
    tmp_path: Path, artifacts: dict[str, Path], repository: ModelRegistry
) -> None:
    published = publish_artifact(repository, artifacts["p1/v1"], "p1")
    pointer = repository.pointer("p1")
    assert pointer == ModelPointer("v1", published.sha256, published.digest)
    events: list[ModelLoadEvent] = []
    store = CachingModelStore(repository, tmp_path / "cache", on_load=events.append)

    model = store.get("p1")

    assert model.version == "v1"
    assert model.manifest.digest() == published.digest
    assert model.directory == tmp_path / "cache" / "p1" / "v1"
    assert store.get("p1") is model
    assert store.versions() == {"p1": "v1"}
    assert [(e.product_line, e.version, e.ok) for e in events] == [("p1", "v1", True)]


def test_publish_refuses_an_artifact_of_another_product_line(
    artifacts: dict[str, Path], repository: ModelRegistry
) -> None:
    with pytest.raises(Exception, match="product line 'p1', not 'p2'"):
        publish_artifact(repository, artifacts["p1/v1"], "p2")
    assert repository.pointer("p2") is None


def test_publish_refuses_an_uncalibrated_artifact(
    tmp_path: Path, repository: ModelRegistry
) -> None:
    model = reverse_distillation(ModelConfig(backbone="resnet18", image_size=64), "random")
    artifact = tmp_path / "uncalibrated"
    save_artifact(
        model, artifact, product_line="p1", model_version="v1", calibration=None, training={}
    )
    with pytest.raises(ArtifactError, match=r"no calibration.*rdqc calibrate"):
        publish_artifact(repository, artifact, "p1")
    assert repository.pointer("p1") is None


def test_store_raises_unknown_product_line(tmp_path: Path, repository: ModelRegistry) -> None:
    store = CachingModelStore(repository, tmp_path / "cache")
    with pytest.raises(UnknownProductLine, match="no model is published"):
        store.get("nothing-here")
    with pytest.raises(UnknownProductLine, match="not a safe name"):
        store.get("../etc")


def test_store_evicts_the_least_recently_used_model(
    tmp_path: Path, artifacts: dict[str, Path], repository: ModelRegistry
) -> None:
    publish_artifact(repository, artifacts["p1/v1"], "p1")
    publish_artifact(repository, artifacts["p2/v1"], "p2")
    store = CachingModelStore(repository, tmp_path / "cache", max_resident=1, warmup=False)

    first = store.get("p1")
    store.get("p2")

    assert store.versions() == {"p2": "v1"}
    assert store.get("p1") is not first  # reloaded from the local cache


def test_refresh_swaps_in_a_new_version(
    tmp_path: Path, artifacts: dict[str, Path], repository: ModelRegistry
) -> None:
    publish_artifact(repository, artifacts["p1/v1"], "p1")
    store = CachingModelStore(repository, tmp_path / "cache")
    store.get("p1")
    assert store.refresh() == []

    publish_artifact(repository, artifacts["p1/v2"], "p1")

    assert store.refresh() == [ModelSwap("p1", "v1", "v2")]
    assert store.get("p1").version == "v2"
    assert store.versions() == {"p1": "v2"}


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    tmp_path: Path, artifacts: dict[str, Path], repository: ModelRegistry
) -> None:
    publish_artifact(repository, artifacts["p1/v1"], "p1")
    events: list[ModelLoadEvent] = []
    store = CachingModelStore(repository, tmp_path / "cache", on_load=events.append)
    serving = store.get("p1")
    # v2's files land, but the pointer names other weights (a corrupt or mixed-up upload).
    place_by_hand(tmp_path / "models", artifacts["p1/v2"], "p1", "v2", "0" * 64)

    with capture_logs() as logs:
        assert store.refresh() == []

    assert store.get("p1") is serving
    assert [(e.version, e.ok) for e in events] == [("v1", True), ("v2", False)]
    assert "sha256" in (events[-1].error or "")
    assert any(entry["event"] == "model_swap_failed_old_keeps_serving" for entry in logs)


def test_a_broken_model_is_refused_at_every_get_until_a_good_version_is_published(
    tmp_path: Path, artifacts: dict[str, Path], repository: ModelRegistry
) -> None:
    place_by_hand(tmp_path / "models", artifacts["p1/v1"], "p1", "v1", "0" * 64)
    events: list[ModelLoadEvent] = []
    store = CachingModelStore(repository, tmp_path / "cache", on_load=events.append)

    for _ in range(2):
        with pytest.raises(ModelLoadError, match="sha256"):
            store.get("p1")
    # Every get tries again: the model lifecycle, not the store, paces the retries.
    assert [(e.version, e.ok) for e in events] == [("v1", False), ("v1", False)]

    publish_artifact(repository, artifacts["p1/v1"], "p1")
    assert store.get("p1").version == "v1"


def test_an_unreadable_pointer_is_a_failed_load_without_a_version(
    tmp_path: Path, repository: ModelRegistry
) -> None:
    pointer = tmp_path / "models" / "p1" / "current.json"
    pointer.parent.mkdir(parents=True)
    pointer.write_text("{half written")
    events: list[ModelLoadEvent] = []
    store = CachingModelStore(repository, tmp_path / "cache", on_load=events.append)

    with pytest.raises(ModelLoadError, match="unreadable"):
        store.get("p1")

    assert [(e.product_line, e.version, e.ok) for e in events] == [("p1", None, False)]


@pytest.mark.parametrize("fault", ["uncalibrated", "nan_threshold"])
def test_a_model_that_cannot_normalize_its_scores_never_becomes_resident(
    tmp_path: Path, repository: ModelRegistry, fault: str
) -> None:
    artifact = tmp_path / "artifact"
    model = reverse_distillation(ModelConfig(backbone="resnet18", image_size=64), "random")
    calibration = None if fault == "uncalibrated" else calibrate([0.1, 0.2, 0.3])
    manifest = save_artifact(
        model, artifact, product_line="p1", model_version="v1", calibration=calibration, training={}
    )
    if fault == "nan_threshold":
        data = json.loads((artifact / "manifest.json").read_text())
        data["calibration"]["threshold"] = float("nan")
        (artifact / "manifest.json").write_text(json.dumps(data))
    place_by_hand(tmp_path / "models", artifact, "p1", "v1", manifest.weights_sha256)
    store = CachingModelStore(repository, tmp_path / "cache", warmup=False)

    expected = "rdqc calibrate" if fault == "uncalibrated" else "'threshold' must be a finite"
    with pytest.raises(ModelLoadError, match=expected):
        store.get("p1")
    assert store.versions() == {}
