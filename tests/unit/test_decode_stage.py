"""The decode stage never lets one frame's failure reach the loop thread."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from torch import Tensor

from rdcore.config import ModelConfig
from rdcore.data.images import RGBImage
from rdcore.data.preprocess import Preprocess
from worker.frame_decoder import FrameDecoder
from worker.frames import SourceRecord
from worker.observability.prometheus import Metrics
from worker.pipeline.decoding import DecodeStage
from worker.pipeline.offsets import OffsetLedger
from worker.pipeline.pausing import Intake
from worker.pipeline.work import InFlightFrame, RejectOutput

pytestmark = pytest.mark.unit


class _FailingPreprocess(Preprocess):
    def __call__(self, image: RGBImage) -> Tensor:
        raise RuntimeError("resize kernel crashed")


def _record(offset: int, payload: bytes) -> SourceRecord:
    headers = (("product_line", b"caps"), ("camera_id", b"cam-1"))
    return SourceRecord("frames.inbound", 0, offset, b"cam-1", payload, headers)


def test_a_frame_whose_preprocessing_raises_is_left_for_the_scorer_to_isolate() -> None:
    png = bytes(cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1].tobytes())
    preprocess = _FailingPreprocess.from_config(ModelConfig(backbone="resnet18", image_size=64))
    ledger = OffsetLedger(Metrics())
    with ThreadPoolExecutor(1) as cpu:
        stage = DecodeStage(
            FrameDecoder(1 << 20, 16, 4096),
            cpu,
            {"caps": preprocess},
            ledger,
            Intake(8, 1 << 30, 8),
        )
        tickets = [ledger.track(_record(n, p)) for n, p in enumerate([png, b"\x89PNG cut"])]
        stage.submit([t for t in tickets if t is not None])
        collected: list[InFlightFrame | RejectOutput] = []
        deadline = time.monotonic() + 10
        while len(collected) < 2 and time.monotonic() < deadline:
            collected += stage.collect()

    frame, rejected = collected
    assert isinstance(frame, InFlightFrame)
    assert frame.prepared.tensor is None  # scored (and preprocessed) by the inference stage
    assert isinstance(rejected, RejectOutput)
    assert rejected.rejection.reason == "undecodable"
