"""Shadow testing on the embedded default, end to end: the real worker (``dir://`` models,
``file://`` scores) finds a candidate named in ``{line}/shadow.json``, scores frames with it too,
writes ``shadow.jsonl`` beside the scores, stops when the file goes, and ``rdqc models compare``
reads the result.

The candidate is published without being promoted and shadowed with the registry, as
``rdqc publish --no-promote`` and ``rdqc models shadow`` do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner
from worker_harness import make_artifact, running_worker, synthetic_frames, wait_for

from rdcore.artifacts.artifact import read_manifest
from worker.cli import app
from worker.modelstore.directory import DirectoryModelFiles
from worker.modelstore.publish import publish_artifact
from worker.modelstore.registry import ModelRegistry
from worker.settings import Settings

pytestmark = pytest.mark.integration

LINE = "caps"
CAMERA = "cam-01"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RDQC_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("RDQC_SCORES", f"file://{tmp_path / 'scores.jsonl'}")
    return tmp_path


def settings(workdir: Path) -> Settings:
    return Settings(
        source=f"dir://{workdir / 'frames'}",
        models={
            "url": f"dir://{workdir / 'models'}",
            "cache_dir": workdir / "cache",
            "poll_s": 0.5,
        },
        scores=f"file://{workdir / 'scores.jsonl'}",
        heatmaps=f"dir://{workdir / 'heatmaps'}",
        metrics_port=0,
        health_port=0,
        log_level="WARNING",
        worker_id="embedded-1",
        batching={"max_size": 4, "max_wait_ms": 20, "max_queue": 16},
    )


def lines_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class Camera:
    """Drops frames into the directory source one at a time, as a camera would."""

    def __init__(self, workdir: Path) -> None:
        self.folder = workdir / "frames" / LINE / CAMERA
        self.folder.mkdir(parents=True, exist_ok=True)
        self.scores = workdir / "scores.jsonl"
        self.shadow = workdir / "shadow.jsonl"
        self.frames = iter(synthetic_frames(40, seed=3))

    def send(self, until: Callable[[str], bool]) -> str:
        """One frame, renamed into place whole; returns its frame id once ``until(id)`` holds."""
        frame = next(self.frames)
        hidden = self.folder / f".{frame.name}.png"
        hidden.write_bytes(frame.payload)
        hidden.rename(self.folder / f"{frame.name}.png")
        frame_id = f"{LINE}-{CAMERA}-{frame.name}"
        wait_for(lambda: until(frame_id), 30, f"frame {frame_id}")
        return frame_id

    def scored(self, frame_id: str) -> bool:
        return any(r["frame_id"] == frame_id for r in lines_of(self.scores))

    def shadowed(self, frame_id: str) -> bool:
        return any(r["frame_id"] == frame_id for r in lines_of(self.shadow))


def test_the_embedded_worker_shadow_tests_a_candidate_named_in_shadow_json(
    workdir: Path,
) -> None:
    registry = ModelRegistry(DirectoryModelFiles(workdir / "models"))
    registry.setup()
    publish_artifact(registry, make_artifact(workdir / "v1", LINE, "v1", seed=0), LINE)
    candidate = make_artifact(workdir / "v2", LINE, "v2", seed=1)
    manifest = read_manifest(candidate)
    publish_artifact(registry, candidate, LINE, promote=False)
    registry.start_shadow(LINE, "v2")
    camera = Camera(workdir)

    with running_worker(settings(workdir)):
        # The line comes into use with its first frame; its candidate is found and loaded then.
        camera.send(camera.scored)
        while not lines_of(camera.shadow):
            camera.send(camera.scored)
        shadowed = [camera.send(camera.shadowed) for _ in range(6)]
        registry.stop_shadow(LINE)
        time.sleep(1.5)  # past a pointer poll (0.5 s)
        after = [camera.send(camera.scored) for _ in range(2)]

    scores = {r["frame_id"]: r for r in lines_of(camera.scores)}
    entries = lines_of(camera.shadow)
    entry_ids = [e["frame_id"] for e in entries]
    assert set(shadowed) <= set(entry_ids) and len(entry_ids) == len(set(entry_ids))
    assert not set(after) & set(entry_ids)
    assert {r["model_version"] for r in scores.values()} == {"v1"}
    for e in entries:
        live = scores[str(e["frame_id"])]
        assert (e["candidate_version"], e["candidate_digest"]) == ("v2", manifest.digest())
        assert (e["current_score"], e["current_is_anomaly"]) == (live["score"], live["is_anomaly"])
        assert e["model_version"] == "v1" and e["worker_id"] == "embedded-1"

    result = CliRunner().invoke(app, ["models", "compare", LINE, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["frames"] == len(entries) and report["candidate_version"] == "v2"
    assert report["candidate_digest"] == manifest.digest() and report["current_versions"] == ["v1"]
