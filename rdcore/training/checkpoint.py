"""The resumable training checkpoint: everything a run needs to continue exactly where it stood.

One safetensors file holds the bottleneck, decoder and optimizer tensors and every random
number generator's state; the rest (epoch, losses, optimizer settings, which run it belongs to)
is JSON in its header, so nothing is ever unpickled and one rename replaces both.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from rdcore.config import ModelConfig
from rdcore.errors import ArtifactError
from rdcore.files import write_atomically
from rdcore.nn.model import ReverseDistillation
from rdcore.training.settings import TrainSettings

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "state.safetensors"
_META_KEY = "rdqc.checkpoint"
# Settings a resumed run must share with the saved one, or it would not be the same run.
_RESUME_MUST_MATCH = ("batch_size", "lr", "betas", "seed", "amp", "holdout_fraction")


@dataclass
class Progress:
    """What the checkpoint carries besides tensors: where training stands and what it learned."""

    epoch: int = 0
    losses: list[float] = field(default_factory=list)


@dataclass
class Session:
    """Everything that changes while training, i.e. everything a checkpoint must hold."""

    model: ReverseDistillation
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loader_generator: torch.Generator
    device: torch.device
    autocast: torch.dtype | None
    progress: Progress = field(default_factory=Progress)


def run_identity(
    config: ModelConfig,
    model: ReverseDistillation,
    train_paths: list[Path],
    settings: TrainSettings,
) -> dict[str, Any]:
    """What a checkpoint must match to be resumed by this run: model, teacher, images, settings."""
    return {
        "model": config.to_dict(),
        "teacher_sha256": _teacher_sha256(model),
        "train_images": [p.name for p in train_paths],
        "settings": {k: settings.to_dict()[k] for k in _RESUME_MUST_MATCH},
    }


def _teacher_sha256(model: ReverseDistillation) -> str:
    """Fingerprint of the teacher, so a resumed run cannot silently get a different one."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.teacher.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(directory: Path, session: Session, identity: dict[str, Any]) -> None:
    """Write ``directory/state.safetensors`` atomically: a crash leaves the previous one whole."""
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
    cpu_tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    write_atomically(
        directory / CHECKPOINT_FILE,
        lambda temp: save_file(cpu_tensors, str(temp), metadata={_META_KEY: json.dumps(meta)}),
        # Training state is read back only by whoever resumes the run: private, as safetensors
        # writes it.
        mode=0o600,
    )


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


def restore_checkpoint(directory: Path, session: Session, identity: dict[str, Any]) -> None:
    """Put ``session`` back where the checkpoint in ``directory`` stood, random streams included."""
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
    session.progress = Progress(int(meta["epoch"]), [float(x) for x in meta["losses"]])
