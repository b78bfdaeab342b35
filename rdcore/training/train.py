"""Training a reverse-distillation model on a folder of good images, then calibrating and saving it.

Only the bottleneck and decoder learn (Adam, the official RD4AD settings by default); the teacher
is frozen. A held-out part of the good images calibrates the decision threshold. Training can be
resumed from the checkpoint written every ``checkpoint_every`` epochs; a resumed run continues
exactly where the saved one stood (weights, optimizer, every random number generator).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from rdcore.artifacts.artifact import Manifest, check_safe_name, save_artifact, sha256_file
from rdcore.calibration import calibrate
from rdcore.config import ModelConfig
from rdcore.data.folders import ImagePathsDataset, folder_images, split_holdout
from rdcore.data.preprocess import Preprocess
from rdcore.errors import ArtifactError, RdcoreError
from rdcore.evaluation.file_scoring import resolve_device, score_images
from rdcore.nn.loss import reverse_distillation_loss
from rdcore.nn.model import ReverseDistillation, reverse_distillation

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "state.safetensors"
# The JSON part of a checkpoint lives in the safetensors header, so one rename replaces both.
_META_KEY = "rdqc.checkpoint"
# Settings a resumed run must share with the saved one, or it would not be the same run.
_RESUME_MUST_MATCH = ("batch_size", "lr", "betas", "seed", "amp", "holdout_fraction")


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """How to train; the defaults are the official RD4AD ones (Adam, lr 0.005, betas 0.5/0.999)."""

    epochs: int = 200
    batch_size: int = 16
    lr: float = 0.005
    betas: tuple[float, float] = (0.5, 0.999)
    seed: int = 0
    device: str = "auto"
    # bf16 autocast where the GPU supports it, else fp16 with loss scaling; ignored on CPU.
    amp: bool = False
    num_workers: int = 0
    holdout_fraction: float = 0.1
    threshold_quantile: float = 0.99
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.num_workers < 0:
            raise ValueError(f"need lr > 0 and num_workers >= 0, got {self.lr}, {self.num_workers}")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"holdout fraction must be in [0, 1), got {self.holdout_fraction}")
        if not 0.0 < self.threshold_quantile < 1.0:
            raise ValueError(f"threshold quantile must be in (0, 1), got {self.threshold_quantile}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["betas"] = list(self.betas)
        return data


@dataclass
class _Progress:
    """What the checkpoint carries besides tensors: where training stands and what it learned."""

    epoch: int = 0
    losses: list[float] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _teacher_sha256(model: ReverseDistillation) -> str:
    """Fingerprint of the teacher, so a resumed run cannot silently get a different one."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.teacher.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _autocast_dtype(settings: TrainSettings, device: torch.device) -> torch.dtype | None:
    if not settings.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@dataclass
class _Session:
    """Everything that changes while training, i.e. everything a checkpoint must hold."""

    model: ReverseDistillation
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loader_generator: torch.Generator
    device: torch.device
    autocast: torch.dtype | None
    progress: _Progress = field(default_factory=_Progress)


def _save_checkpoint(directory: Path, session: _Session, identity: dict[str, Any]) -> None:
    """Tensors to safetensors, the rest as JSON in its header: nothing is ever unpickled."""
    model = session.model
    tensors: dict[str, Tensor] = {}
    for prefix, module in (("bottleneck", model.bottleneck), ("decoder", model.decoder)):
        tensors |= {f"{prefix}.{k}": v for k, v in module.state_dict().items()}
    optimizer_state = session.optimizer.state_dict()
    for index, values in optimizer_state["state"].items():
        tensors |= {f"optimizer.{index}.{k}": v for k, v in values.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.loader"] = session.loader_generator.get_state()
    if torch.cuda.is_available():
        tensors |= {f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    version, python_state, gauss = random.getstate()
    meta = identity | {
        "epoch": session.progress.epoch,
        "losses": session.progress.losses,
        "optimizer_param_groups": optimizer_state["param_groups"],
        "grad_scaler": session.scaler.state_dict(),
        "rng_numpy": numpy_state,
        "rng_python": [version, list(python_state), gauss],
    }
    directory.mkdir(parents=True, exist_ok=True)
    cpu_tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    path = directory / CHECKPOINT_FILE
    temp = path.with_name(f".{path.name}.tmp")
    save_file(cpu_tensors, str(temp), metadata={_META_KEY: json.dumps(meta)})
    temp.replace(path)


def _read_checkpoint(
    directory: Path, identity: dict[str, Any]
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The checkpoint's tensors and metadata, once it is known to belong to this very run."""
    path = directory / CHECKPOINT_FILE
    if not path.is_file():
        raise ArtifactError(
            f"{path} not found: pass the '{CHECKPOINT_DIR}' folder of a training output"
        )
    try:
        with safe_open(str(path), framework="pt") as checkpoint:
            meta = json.loads((checkpoint.metadata() or {})[_META_KEY])
        tensors = load_file(str(path))
    except (KeyError, json.JSONDecodeError, SafetensorError, OSError) as exc:
        raise ArtifactError(f"{path}: not a readable training checkpoint: {exc}") from exc
    for key, value in identity.items():
        if meta.get(key) != value:
            raise ArtifactError(
                f"{path}: cannot resume, {key} differs "
                f"(checkpoint {meta.get(key)!r}, this run {value!r})"
            )
    return tensors, meta


def _restore_checkpoint(directory: Path, session: _Session, identity: dict[str, Any]) -> None:
    tensors, meta = _read_checkpoint(directory, identity)

    def part(prefix: str) -> dict[str, Tensor]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    optimizer_state: dict[int, dict[str, Tensor]] = {}
    for key, value in part("optimizer.").items():
        index, name = key.split(".", 1)
        optimizer_state.setdefault(int(index), {})[name] = value
    groups = [g | {"betas": tuple(g["betas"])} for g in meta["optimizer_param_groups"]]
    try:
        session.model.bottleneck.load_state_dict(part("bottleneck."))
        session.model.decoder.load_state_dict(part("decoder."))
        session.optimizer.load_state_dict({"state": optimizer_state, "param_groups": groups})
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{directory}: checkpoint does not fit this model: {exc}") from exc
    session.scaler.load_state_dict(meta["grad_scaler"])
    torch.set_rng_state(tensors["rng.torch"])
    session.loader_generator.set_state(tensors["rng.loader"])
    cuda_states = part("rng.cuda.")
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([cuda_states[str(i)] for i in range(len(cuda_states))])
    numpy_state = meta["rng_numpy"]
    numpy_state["state"]["key"] = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_state)
    version, python_state, gauss = meta["rng_python"]
    random.setstate((version, tuple(python_state), gauss))
    session.progress = _Progress(int(meta["epoch"]), [float(x) for x in meta["losses"]])


def _teacher_source(teacher_weights: str | Path) -> dict[str, Any]:
    if str(teacher_weights) in ("imagenet", "random"):
        return {"teacher_weights": str(teacher_weights)}
    path = Path(teacher_weights)
    return {"teacher_weights": str(path), "teacher_weights_sha256": sha256_file(path)}


def _train_epoch(session: _Session, loader: DataLoader[Tensor]) -> float:
    """One pass over ``loader``; the mean loss of its batches."""
    session.model.train()
    autocast = session.autocast
    total, batches = 0.0, 0
    for images in loader:
        with torch.autocast(session.device.type, dtype=autocast, enabled=autocast is not None):
            teacher, student = session.model.features(images.to(session.device))
        # The cosine similarities are taken in float32 even under autocast.
        loss = reverse_distillation_loss([t.float() for t in teacher], [s.float() for s in student])
        session.optimizer.zero_grad(set_to_none=True)
        session.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
        session.scaler.step(session.optimizer)
        session.scaler.update()
        total += float(loss.detach())
        batches += 1
    return total / batches


def train(
    folder: Path,
    output_dir: Path,
    *,
    config: ModelConfig,
    settings: TrainSettings,
    teacher_weights: str | Path,
    product_line: str,
    model_version: str,
    resume: Path | None = None,
    progress: bool = True,
) -> Manifest:
    """Train on the good images in ``folder``, calibrate, and write an artifact to ``output_dir``.

    The checkpoint goes to ``output_dir/checkpoint``; ``resume`` names such a folder. Training
    resumed with a larger ``settings.epochs`` continues to the new total.
    """
    check_safe_name("product_line", product_line)
    check_safe_name("model_version", model_version)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    images = folder_images(folder)
    train_paths, holdout_paths = split_holdout(images, settings.holdout_fraction, settings.seed)
    device = resolve_device(settings.device)
    autocast = _autocast_dtype(settings, device)

    seed_everything(settings.seed)
    model = reverse_distillation(config, teacher_weights).to(device)
    preprocess = Preprocess.from_config(config)
    session = _Session(
        model=model,
        optimizer=torch.optim.Adam(
            model.trainable_parameters(), lr=settings.lr, betas=settings.betas
        ),
        scaler=torch.amp.GradScaler("cuda", enabled=autocast == torch.float16),
        loader_generator=torch.Generator().manual_seed(settings.seed),
        device=device,
        autocast=autocast,
    )
    loader = DataLoader(
        ImagePathsDataset(train_paths, preprocess),
        batch_size=settings.batch_size,
        shuffle=True,
        num_workers=settings.num_workers,
        generator=session.loader_generator,
        pin_memory=device.type == "cuda",
        # BatchNorm cannot train on a last batch of one image once features shrink to 1x1.
        drop_last=len(train_paths) % settings.batch_size == 1
        and len(train_paths) > settings.batch_size,
    )
    identity = {
        "model": config.to_dict(),
        "teacher_sha256": _teacher_sha256(model),
        "train_images": [p.name for p in train_paths],
        "settings": {k: settings.to_dict()[k] for k in _RESUME_MUST_MATCH},
    }
    if resume is not None:
        _restore_checkpoint(resume, session, identity)
    resumed_from = session.progress.epoch if resume is not None else None

    done = session.progress
    with tqdm(
        total=settings.epochs, initial=min(done.epoch, settings.epochs), disable=not progress
    ) as bar:
        for epoch in range(done.epoch + 1, settings.epochs + 1):
            loss = _train_epoch(session, loader)
            if not math.isfinite(loss):
                raise RdcoreError(
                    f"training diverged at epoch {epoch} (loss {loss}); lower the learning rate"
                    + (" or train without --amp" if autocast is not None else "")
                )
            done.epoch, done.losses = epoch, [*done.losses, loss]
            bar.set_postfix(loss=f"{loss:.4f}")
            bar.update(1)
            if epoch % settings.checkpoint_every == 0 or epoch == settings.epochs:
                _save_checkpoint(output_dir / CHECKPOINT_DIR, session, identity)

    calibration = None
    if holdout_paths:
        scores, _ = score_images(
            model, preprocess, holdout_paths, batch_size=settings.batch_size, device=device
        )
        calibration = calibrate(scores, settings.threshold_quantile)
    training = {
        "settings": settings.to_dict(),
        **_teacher_source(teacher_weights),
        "train_folder": str(folder),
        "train_images": len(train_paths),
        "holdout_images": len(holdout_paths),
        "epochs_completed": done.epoch,
        "resumed_from_epoch": resumed_from,
        "final_loss": done.losses[-1] if done.losses else None,
        "losses": done.losses,
        "device": str(device),
        "amp_dtype": None if autocast is None else str(autocast).removeprefix("torch."),
        "torch_version": torch.__version__,
        "started_at": started_at,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return save_artifact(
        model,
        output_dir,
        product_line=product_line,
        model_version=model_version,
        calibration=calibration,
        training=training,
    )
