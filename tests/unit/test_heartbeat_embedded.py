"""The worker on the embedded backends keeps a heartbeat file that `rdqc workers` lists, with the
digest of the model it scores with, and removes it when it stops."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_harness import noise_png
from typer.testing import CliRunner

from rdcore import ModelConfig, reverse_distillation
from rdcore.artifacts.artifact import save_artifact
from rdcore.artifacts.manifest import Manifest
from rdcore.calibration import calibrate
from worker.cli import app
from worker.modelstore.directory import DirectoryModelFiles
from worker.modelstore.publish import publish_artifact
from worker.modelstore.registry import ModelRegistry
from worker.service import run_worker
from worker.settings import Settings

pytestmark = pytest.mark.unit

FRAMES = 6


@pytest.fixture
def manifest(tmp_path: Path) -> Manifest:
    model = reverse_distillation(ModelConfig(backbone="resnet18", image_size=64), "random")
    saved = save_artifact(
        model,
        tmp_path / "artifact",
        product_line="caps",
        model_version="v1",
        calibration=calibrate([0.1, 0.2, 0.3]),
        training={},
    )
    registry = ModelRegistry(DirectoryModelFiles(tmp_path / "models"))
    registry.setup()
    publish_artifact(registry, tmp_path / "artifact", "caps")
    return saved


@pytest.fixture
def settings(tmp_path: Path, manifest: Manifest) -> Settings:
    camera = tmp_path / "frames" / "caps" / "cam-1"
    camera.mkdir(parents=True)
    for index in range(FRAMES):
        (camera / f"{index:04d}.png").write_bytes(noise_png(index))
    return Settings(
        source=f"dir://{tmp_path / 'frames'}",
        models={"url": f"dir://{tmp_path / 'models'}", "cache_dir": tmp_path / "cache"},
        scores=f"file://{tmp_path / 'out' / 'scores.jsonl'}",
        heatmaps=f"dir://{tmp_path / 'heatmaps'}",
        metrics_port=0,
        health_port=0,
        worker_id="embedded-1",
        log_level="WARNING",
        device="cpu",
        heartbeat={"interval_s": 0.1, "ttl_s": 1.0},
    )


@pytest.fixture
def running(settings: Settings) -> Iterator[threading.Event]:
    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(settings, stop), daemon=True)
    worker.start()
    yield stop
    stop.set()
    worker.join(timeout=60)
    assert not worker.is_alive()


def workers_json(settings: Settings) -> list[dict[str, object]]:
    result = CliRunner().invoke(app, ["workers", "--json", "--scores", settings.scores])
    assert result.exit_code == 0, result.output
    listed: list[dict[str, object]] = json.loads(result.stdout)
    return listed


def wait_for_heartbeat(settings: Settings, frames: int) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = workers_json(settings)
        if listed and listed[0]["frames_scored"] == frames:
            return listed[0]
        time.sleep(0.1)
    raise AssertionError(f"no heartbeat counting {frames} frames within 60 s")


def test_a_running_worker_is_listed_with_its_model_digest_and_gone_after_it_stops(
    settings: Settings, manifest: Manifest, running: threading.Event, tmp_path: Path
) -> None:
    record = wait_for_heartbeat(settings, FRAMES)

    assert record["worker_id"] == "embedded-1"
    assert record["frames_dead_lettered"] == 0
    assert record["models"] == {
        "caps": {"live": {"version": "v1", "digest": manifest.digest()}, "shadow": None}
    }
    assert (tmp_path / "out" / "workers" / "embedded-1.json").is_file()
    table = CliRunner().invoke(app, ["workers", "--scores", settings.scores])
    assert table.exit_code == 0, table.output
    header, row = table.stdout.splitlines()
    assert header.split()[:3] == ["WORKER", "HOST", "LAST"]
    assert row.startswith("embedded-1 ")
    assert row.endswith(f"caps v1 ({manifest.digest()[:12]})")

    running.set()
    deadline = time.monotonic() + 60
    while (tmp_path / "out" / "workers" / "embedded-1.json").exists():
        assert time.monotonic() < deadline, "the heartbeat file outlived the worker"
        time.sleep(0.05)
    assert workers_json(settings) == []
