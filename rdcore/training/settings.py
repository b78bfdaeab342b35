"""How to train: optimizer, batches, seed, device, holdout and checkpointing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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
