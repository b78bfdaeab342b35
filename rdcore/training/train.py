"""Training a reverse-distillation model on a folder of good images, then calibrating and saving it.

Only the bottleneck and decoder learn (Adam, the official RD4AD settings by default); the teacher
is frozen. A held-out part of the good images calibrates the decision threshold. Training can be
resumed from the checkpoint written every ``checkpoint_every`` epochs; a resumed run continues
exactly where the saved one stood (weights, optimizer, every random number generator).
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from rdcore.artifacts.artifact import save_artifact
from rdcore.artifacts.manifest import Manifest, check_safe_name
from rdcore.calibration import calibrate
from rdcore.config import ModelConfig
from rdcore.data.folders import ImagePathsDataset, folder_images, split_holdout
from rdcore.data.preprocess import Preprocess
from rdcore.device import autocast_dtype, resolve_device
from rdcore.errors import RdcoreError
from rdcore.evaluation.file_scoring import score_images
from rdcore.files import sha256_file
from rdcore.nn.loss import reverse_distillation_loss
from rdcore.nn.model import reverse_distillation
from rdcore.training.checkpoint import (
    CHECKPOINT_DIR,
    Session,
    restore_checkpoint,
    run_identity,
    save_checkpoint,
)
from rdcore.training.settings import TrainSettings


# train()'s settings type, so a caller imports both from one place.
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _teacher_source(teacher_weights: str | Path) -> dict[str, Any]:
    if str(teacher_weights) in ("imagenet", "random"):
        return {"teacher_weights": str(teacher_weights)}
    path = Path(teacher_weights)
    return {"teacher_weights": str(path), "teacher_weights_sha256": sha256_file(path)}


def _train_epoch(session: Session, loader: DataLoader[Tensor]) -> float:
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
    autocast = autocast_dtype(device, "auto" if settings.amp else "fp32")

    seed_everything(settings.seed)
    model = reverse_distillation(config, teacher_weights).to(device)
    preprocess = Preprocess.from_config(config)
    session = Session(
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
    identity = run_identity(config, model, train_paths, settings)
    if resume is not None:
        restore_checkpoint(resume, session, identity)
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
                save_checkpoint(output_dir / CHECKPOINT_DIR, session, identity)

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
