"""``rdqc demo``: the embedded default end to end, on one machine with nothing but the repo.

Synthetic good parts -> a briefly trained resnet18 model -> published to a local model
directory -> the real worker on the local backends over a stream of frames (good, defective and
one corrupt file). Halfway through the stream the model is recalibrated on fresh good parts and
published as a new version, which the running worker swaps in; the table shows which version
scored each frame, its score and flag, and where the heatmaps are.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rdcore.config import ModelConfig
from rdcore.data.images import encode_png
from rdcore.data.synthetic import defective_image, good_image, write_image_folder
from rdcore.evaluation.recalibrate import recalibrate_as_new_version
from rdcore.training.settings import TrainSettings
from rdcore.training.train import train
from worker.cli.demo_report import DemoRow, collect, format_table
from worker.modelstore.directory import DirectoryModelFiles
from worker.modelstore.publish import publish_artifact
from worker.modelstore.registry import ModelRegistry
from worker.service import run_worker
from worker.settings import Settings

CAMERA = "cam-01"
FIRST_VERSION = "demo-v1"
RECALIBRATED_VERSION = "demo-v1-recal"
# The worker reads the model pointer this often; the swap takes one poll and a warm-up.
POLL_S = 1.0


@dataclass(frozen=True)
class DemoOptions:
    workdir: Path = Path("demo-output")
    product_line: str = "bottle-caps"
    train_images: int = 40
    calibration_images: int = 24
    frames: int = 24
    defect_share: float = 0.35
    epochs: int = 30
    image_size: int = 128
    teacher_weights: str = "random"
    seed: int = 0
    timeout_s: float = 300.0


@dataclass(frozen=True)
class Frame:
    name: str
    png: bytes
    truth: str  # good, defect or corrupt


def make_frames(options: DemoOptions) -> list[Frame]:
    """The stream, in order: good and defective parts, and one camera glitch at the end."""
    rng = np.random.default_rng(options.seed + 1)
    size = options.image_size * 2
    defective = set(rng.choice(options.frames, int(options.frames * options.defect_share), False))
    frames = []
    for index in range(options.frames):
        if index in defective:
            image, _ = defective_image(rng, size)
            frames.append(Frame(f"frame-{index:04d}", encode_png(image), "defect"))
        else:
            frames.append(Frame(f"frame-{index:04d}", encode_png(good_image(rng, size)), "good"))
    # A camera glitch: the transfer of a good frame was cut off halfway.
    glitch = encode_png(good_image(rng, size))
    frames.append(Frame("frame-corrupt", glitch[: len(glitch) // 2], "corrupt"))
    return frames


def demo_settings(workdir: Path) -> Settings:
    return Settings(
        source=f"dir://{workdir / 'frames'}",
        dead_letters=f"dir://{workdir / 'rejected'}",
        models={
            "url": f"dir://{workdir / 'models'}",
            "cache_dir": workdir / "cache",
            "poll_s": POLL_S,
        },
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


class Stream:
    """The camera folder of the directory source, and a wait for the worker to keep up."""

    def __init__(self, workdir: Path, product_line: str, timeout_s: float) -> None:
        self._workdir = workdir
        self._camera_dir = workdir / "frames" / product_line / CAMERA
        self._camera_dir.mkdir(parents=True)
        self._product_line = product_line
        self._prefix = f"{product_line}-{CAMERA}-"
        self._deadline = time.monotonic() + timeout_s
        self.truth: dict[str, str] = {}

    def send(self, frames: list[Frame]) -> None:
        for frame in frames:
            (self._camera_dir / f"{frame.name}.png").write_bytes(frame.png)
            self.truth[self._prefix + frame.name] = frame.truth

    def wait_until_done(self, worker: threading.Thread) -> None:
        """Every frame sent is scored or dead-lettered."""
        self._wait(lambda: count_outputs(self._workdir) >= len(self.truth), worker, "the frames")

    def wait_for_download(self, version: str, worker: threading.Thread) -> None:
        """The worker fetched ``version`` into its model cache, having seen the new pointer."""
        cached = self._workdir / "cache" / self._product_line / version
        self._wait(cached.is_dir, worker, f"model {version}")

    def _wait(self, done: Callable[[], bool], worker: threading.Thread, what: str) -> None:
        while not done():
            if not worker.is_alive():
                raise RuntimeError(f"the worker stopped while the demo waited for {what}")
            if time.monotonic() > self._deadline:
                raise TimeoutError(f"the worker did not get to {what} in time")
            time.sleep(0.2)


@contextmanager
def running_worker(workdir: Path) -> Iterator[threading.Thread]:
    """The real worker on the local backends, in a thread; stopped gracefully on exit."""
    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(demo_settings(workdir), stop), daemon=True)
    worker.start()
    try:
        yield worker
    finally:
        stop.set()
        worker.join(timeout=60)


def run_demo(options: DemoOptions) -> list[DemoRow]:
    workdir = options.workdir.resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    line = options.product_line
    print(f"[1/5] synthetic good parts for {line!r} in {workdir / 'train'}")
    train_dir = workdir / "train"
    write_image_folder(train_dir, options.train_images, options.seed, options.image_size)
    print(
        f"[2/5] training resnet18 for {options.epochs} epochs "
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
        product_line=line,
        model_version=FIRST_VERSION,
    )
    registry = ModelRegistry(DirectoryModelFiles(workdir / "models"))
    registry.setup()
    publish_artifact(registry, artifact, line)
    threshold = manifest.calibration.threshold if manifest.calibration else float("nan")
    print(f"[3/5] published model {FIRST_VERSION} (threshold {threshold:.4f})")
    frames = make_frames(options)
    half = len(frames) // 2
    stream = Stream(workdir, line, options.timeout_s)
    print(f"[4/5] worker on local backends over {len(frames)} frames")
    with running_worker(workdir) as worker:
        stream.send(frames[:half])
        stream.wait_until_done(worker)
        recalibrate_mid_stream(registry, options, artifact, workdir)
        stream.wait_for_download(RECALIBRATED_VERSION, worker)
        # A quarter of a poll interval apart: the swap follows the download within a poll.
        for frame in frames[half:]:
            stream.send([frame])
            time.sleep(POLL_S / 4)
        stream.wait_until_done(worker)
    rows = collect(workdir, stream.truth)
    print(format_table(rows))
    print(f"\nscores: {workdir / 'scores.jsonl'}  heatmaps: {workdir / 'heatmaps'}")
    print(
        f"dead letters: {workdir / 'rejected'}  models: rdqc models list --models dir://"
        f"{workdir / 'models'}"
    )
    print(
        f"see the line in a browser: rdqc dashboard --scores file://{workdir / 'scores.jsonl'} "
        f"--heatmaps dir://{workdir / 'heatmaps'} --models dir://{workdir / 'models'}"
        "  (then open http://127.0.0.1:8000/)"
    )
    return rows


def recalibrate_mid_stream(
    registry: ModelRegistry, options: DemoOptions, artifact: Path, workdir: Path
) -> None:
    """A new threshold from fresh good parts, published as its own version while the worker
    runs: it reaches the line at the worker's next model poll, with no restart."""
    good = workdir / "calibration"
    write_image_folder(good, options.calibration_images, options.seed + 7, options.image_size)
    recalibrated = recalibrate_as_new_version(
        artifact, good, workdir / "artifact-recal", new_version=RECALIBRATED_VERSION
    )
    publish_artifact(registry, recalibrated.directory, options.product_line)
    calibration = recalibrated.manifest.calibration
    threshold = calibration.threshold if calibration else float("nan")
    print(
        f"[5/5] recalibrated on {options.calibration_images} fresh good parts and published "
        f"{RECALIBRATED_VERSION} (threshold {threshold:.4f}) while the worker runs"
    )
