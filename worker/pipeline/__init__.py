"""The worker's loop and its stages: poll, decode, batch, infer, write, flush, commit."""

from worker.pipeline.config import PipelineConfig
from worker.pipeline.loop import Pipeline

__all__ = ["Pipeline", "PipelineConfig"]
