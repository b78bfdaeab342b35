"""The worker's loop and its stages: poll, decode, batch, infer, write, flush, commit."""

from worker.pipeline.loop import Pipeline, PipelineConfig

__all__ = ["Pipeline", "PipelineConfig"]
