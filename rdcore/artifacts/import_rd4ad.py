"""Import a checkpoint of the official RD4AD code (hq-deng/RD4AD) as an rdqc artifact.

The official ``main.py`` saves ``{'bn': BN_layer state, 'decoder': de_resnet state}``; the
teacher is not saved (it is the ImageNet backbone). Decoder keys are the same as ours; the
bottleneck's flat names map onto our ``fuse_low``/``fuse_mid``/``embed`` modules. The official
``BN_layer`` also defines ``conv4``/``bn4``, which its forward never uses: they are dropped.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rdcore.artifacts.artifact import save_artifact
from rdcore.artifacts.manifest import Manifest
from rdcore.calibration import Calibration
from rdcore.config import ModelConfig
from rdcore.errors import ArtifactError
from rdcore.nn.model import reverse_distillation
from rdcore.nn.weights import load_exactly

# Official BN_layer prefix -> our OneClassBottleneck prefix (fuse_low/fuse_mid are Sequential:
# conv at 0, BN at 1, ReLU at 2, and fuse_low's second conv/BN at 3/4).
BOTTLENECK_PREFIXES: dict[str, str] = {
    "conv1.": "fuse_low.0.",
    "bn1.": "fuse_low.1.",
    "conv2.": "fuse_low.3.",
    "bn2.": "fuse_low.4.",
    "conv3.": "fuse_mid.0.",
    "bn3.": "fuse_mid.1.",
    "bn_layer.": "embed.",
}
UNUSED_PREFIXES: tuple[str, ...] = ("conv4.", "bn4.")
# Some published checkpoints carry 'memory' buffers in 'bn' that no forward uses; the official
# test script pops every key containing it before loading, so the import does the same.
UNUSED_MARKER = "memory"
CHECKPOINT_PARTS: tuple[str, ...] = ("bn", "decoder")


def _read_checkpoint(checkpoint: Path) -> dict[str, dict[str, Tensor]]:
    try:
        data = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ArtifactError(f"RD4AD checkpoint {checkpoint} not found") from exc
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        raise ArtifactError(
            f"cannot read RD4AD checkpoint {checkpoint} as a weights-only torch file: {exc}"
        ) from exc
    if not isinstance(data, dict) or set(data) != set(CHECKPOINT_PARTS):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ArtifactError(
            f"{checkpoint} is not an RD4AD checkpoint: expected keys {list(CHECKPOINT_PARTS)}, "
            f"found {found}"
        )
    for part in CHECKPOINT_PARTS:
        state = data[part]
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise ArtifactError(f"{checkpoint}: {part!r} is not a state dict of tensors")
    return data


def _rename_bottleneck(state: dict[str, Tensor], checkpoint: Path) -> dict[str, Tensor]:
    renamed: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if key.startswith(UNUSED_PREFIXES) or UNUSED_MARKER in key:
            continue
        prefix = next((p for p in BOTTLENECK_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            unknown.append(key)
        else:
            renamed[BOTTLENECK_PREFIXES[prefix] + key[len(prefix) :]] = value
    if unknown:
        raise ArtifactError(f"{checkpoint}: unknown keys in 'bn': {sorted(unknown)}")
    return renamed


def import_rd4ad(
    checkpoint: Path,
    output_dir: Path,
    *,
    config: ModelConfig,
    teacher_weights: str | Path,
    product_line: str,
    model_version: str,
    calibration: Calibration | None = None,
) -> Manifest:
    """Convert an official RD4AD checkpoint into an artifact in ``output_dir``.

    ``config.backbone`` must be the backbone the checkpoint was trained with, and
    ``teacher_weights`` ('imagenet' or a path) the teacher it was trained against.
    """
    data = _read_checkpoint(checkpoint)
    model = reverse_distillation(config, teacher_weights)
    state: dict[str, Any] = {f"teacher.{k}": v for k, v in model.teacher.state_dict().items()}
    for key, value in _rename_bottleneck(data["bn"], checkpoint).items():
        state[f"bottleneck.{key}"] = value
    for key, value in data["decoder"].items():
        state[f"decoder.{key}"] = value
    load_exactly(
        model,
        state,
        source=str(checkpoint),
        target=f"a {config.backbone} RD4AD model",
        error=ArtifactError,
    )
    training = {
        "source": "rd4ad",
        "checkpoint": checkpoint.name,
        "teacher_weights": str(teacher_weights),
    }
    return save_artifact(
        model.eval(),
        output_dir,
        product_line=product_line,
        model_version=model_version,
        calibration=calibration,
        training=training,
    )
