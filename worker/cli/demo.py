"""``rdqc demo``: the embedded default end to end, on one machine with nothing but the repo.

Synthetic good parts -> a briefly trained resnet18 model -> published to a local model
directory -> the real worker on the local backends over a stream of frames (good, defective and
one corrupt file) -> a table of frames, scores and flags, and where the heatmaps are.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rdcore.config import ModelConfig
from rdcore.data.images import encode_png
from rdcore.data.synthetic import defective_image, good_image, write_image_folder
from rdcore.training.settings import TrainSettings
from rdcore.training.train import train
from worker.modelstore.directory import DirectoryModelFiles
from worker.modelstore.publish import publish_artifact
from worker.modelstore.registry import ModelRegistry
from worker.service import run_worker
from worker.settings import Settings

CAMERA = "cam-01"


@dataclass(frozen=True)
class DemoOptions:
    workdir: Path = Path("demo-output")
    product_line: str = "bottle-caps"
    train_images: int = 40
    frames: int = 24
    defect_share: float = 0.35
    epochs: int = 30
    image_size: int = 128
    teacher_weights: str = "random"
    seed: int = 0
    timeout_s: float = 300.0


@dataclass(frozen=True)
class DemoRow:
    frame_id: str
    truth: str
    score: float | None
    raw_score: float | None
    flagged: bool | None
    heatmap: str


def write_frames(folder: Path, options: DemoOptions) -> dict[str, str]:
    """Frames in the directory source's layout; returns frame_id -> truth (good/defect/corrupt)."""
    rng = np.random.default_rng(options.seed + 1)
    camera_dir = folder / options.product_line / CAMERA
    camera_dir.mkdir(parents=True)
    truth: dict[str, str] = {}
    defective = set(rng.choice(options.frames, int(options.frames * options.defect_share), False))
    for index in range(options.frames):
        name = f"frame-{index:04d}"
        if index in defective:
            image, _ = defective_image(rng, options.image_size * 2)
            truth[name] = "defect"
        else:
            image = good_image(rng, options.image_size * 2)
            truth[name] = "good"
        (camera_dir / f"{name}.png").write_bytes(encode_png(image))
    # A camera glitch: the transfer of a good frame was cut off halfway.
    glitch = encode_png(good_image(rng, options.image_size * 2))
    (camera_dir / "frame-corrupt.png").write_bytes(glitch[: len(glitch) // 2])
    truth["frame-corrupt"] = "corrupt"
    return {f"{options.product_line}-{CAMERA}-{name}": kind for name, kind in truth.items()}


def demo_settings(workdir: Path) -> Settings:
    return Settings(
        source=f"dir://{workdir / 'frames'}",
        dead_letters=f"dir://{workdir / 'rejected'}",
        models={"url": f"dir://{workdir / 'models'}", "cache_dir": workdir / "cache", "poll_s": 5},
        scores=f"file://{workdir / 'scores.jsonl'}",
        heatmaps=f"dir://{workdir / 'heatmaps'}",
        metrics_port=0,
        health_port=0,
        log_level="WARNING",
        log_format="console",
        worker_id="demo",
        batching={"max_size": 8, "max_wait_ms": 50, "max_queue": 64},
    )


def count_outputs(workdir: Path) -> int:
    scores = workdir / "scores.jsonl"
    scored = len(scores.read_text().splitlines()) if scores.exists() else 0
    rejected_dir = workdir / "rejected"
    rejected = len(list(rejected_dir.rglob("*.json"))) if rejected_dir.exists() else 0
    return scored + rejected


def run_stream(workdir: Path, expected: int, timeout_s: float) -> None:
    """Run the worker until every frame is scored or dead-lettered, then stop it gracefully."""
    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(demo_settings(workdir), stop), daemon=True)
    worker.start()
    deadline = time.monotonic() + timeout_s
    while count_outputs(workdir) < expected and worker.is_alive():
        if time.monotonic() > deadline:
            stop.set()
            raise TimeoutError(f"the worker did not finish {expected} frames in {timeout_s:.0f} s")
        time.sleep(0.2)
    stop.set()
    worker.join(timeout=60)


def collect(workdir: Path, truth: dict[str, str]) -> list[DemoRow]:
    results = {}
    for line in (workdir / "scores.jsonl").read_text().splitlines():
        record = json.loads(line)
        results[record["frame_id"]] = record
    rows = []
    for frame_id, kind in sorted(truth.items()):
        record = results.get(frame_id)
        if record is None:
            rows.append(DemoRow(frame_id, kind, None, None, None, "rejected/ (dead letter)"))
            continue
        heatmap = record["heatmap_uri"].removeprefix("file://")
        rows.append(
            DemoRow(
                frame_id,
                kind,
                record["score"],
                record["raw_score"],
                record["is_anomaly"],
                heatmap and str(Path(heatmap).relative_to(workdir.resolve())),
            )
        )
    return rows


def format_table(rows: list[DemoRow]) -> str:
    lines = [f"{'frame':<34} {'truth':<8} {'score':>6} {'raw':>8}  {'flag':<5} heatmap"]
    for row in rows:
        score = f"{row.score:6.3f}" if row.score is not None else "     -"
        raw = f"{row.raw_score:8.4f}" if row.raw_score is not None else "       -"
        flag = "-" if row.flagged is None else ("YES" if row.flagged else "no")
        lines.append(f"{row.frame_id:<34} {row.truth:<8} {score} {raw}  {flag:<5} {row.heatmap}")
    defects = [r for r in rows if r.truth == "defect"]
    goods = [r for r in rows if r.truth == "good"]
    caught = sum(bool(r.flagged) for r in defects)
    false_alarms = sum(bool(r.flagged) for r in goods)
    lines.append("")
    lines.append(
        f"defective frames flagged: {caught}/{len(defects)}; "
        f"good frames flagged: {false_alarms}/{len(goods)}; "
        f"dead-lettered: {sum(r.score is None for r in rows)}"
    )
    return "\n".join(lines)


def run_demo(options: DemoOptions) -> list[DemoRow]:
    workdir = options.workdir.resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    print(f"[1/4] synthetic good parts for {options.product_line!r} in {workdir / 'train'}")
    train_dir = workdir / "train"
    write_image_folder(train_dir, options.train_images, options.seed, options.image_size)
    print(
        f"[2/4] training resnet18 for {options.epochs} epochs "
        f"(teacher weights: {options.teacher_weights})"
    )
    artifact = workdir / "artifact"
    manifest = train(
        train_dir,
        artifact,
        config=ModelConfig(backbone="resnet18", image_size=options.image_size),
        settings=TrainSettings(
            epochs=options.epochs,
            batch_size=8,
            seed=options.seed,
            holdout_fraction=0.2,
            # One checkpoint at the end: a resnet18 checkpoint with Adam state is ~180 MB.
            checkpoint_every=options.epochs,
        ),
        teacher_weights=options.teacher_weights,
        product_line=options.product_line,
        model_version="demo-v1",
    )
    registry = ModelRegistry(DirectoryModelFiles(workdir / "models"))
    registry.setup()
    publish_artifact(registry, artifact, options.product_line)
    threshold = manifest.calibration.threshold if manifest.calibration else float("nan")
    print(f"[3/4] published model {manifest.model_version} (threshold {threshold:.4f})")
    truth = write_frames(workdir / "frames", options)
    print(f"[4/4] worker on local backends over {len(truth)} frames")
    run_stream(workdir, len(truth), options.timeout_s)
    rows = collect(workdir, truth)
    print(format_table(rows))
    print(f"\nscores: {workdir / 'scores.jsonl'}  heatmaps: {workdir / 'heatmaps'}")
    print(f"dead letters: {workdir / 'rejected'}")
    return rows
