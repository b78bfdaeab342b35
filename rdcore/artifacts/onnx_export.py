"""ONNX export of the whole scoring path, checked against PyTorch before it is handed over.

The graph takes a normalized image batch (B, 3, S, S), the output of ``Preprocess``, and returns
``score`` (B,) and ``anomaly_map`` (B, S, S): teacher, bottleneck, decoder, scale maps and the
Gaussian blur are all inside it, so a runtime needs only preprocessing to serve it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rdcore.artifacts.artifact import load_artifact
from rdcore.errors import ExportError
from rdcore.files import write_atomically
from rdcore.nn.model import ReverseDistillation

INPUT_NAME = "image"
OUTPUT_NAMES: tuple[str, str] = ("score", "anomaly_map")
_PARITY_BATCH = 2
_PARITY_SEED = 0


@dataclass(frozen=True)
class ExportReport:
    output: Path
    max_abs_diff_score: float
    max_abs_diff_map: float


class _ScoringGraph(nn.Module):
    """The model's forward with a plain tuple output, which the exporter names one by one."""

    def __init__(self, model: ReverseDistillation) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        prediction = self.model(images)
        return prediction.score, prediction.anomaly_map


def _import_onnx() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            f"ONNX export needs onnx and onnxruntime: pip install 'rdqc[onnx]' ({exc})"
        ) from exc
    return onnx, onnxruntime


def export_onnx(
    artifact_dir: Path, output: Path, *, opset: int = 17, atol: float = 1e-4
) -> ExportReport:
    """Export the artifact in ``artifact_dir`` to ``output`` and check it in onnxruntime.

    Parity is measured on a seeded random batch of 2; ExportError if either output differs from
    PyTorch by more than ``atol``, and then ``output`` is left as it was.
    """
    onnx, onnxruntime = _import_onnx()
    loaded = load_artifact(artifact_dir)
    graph = _ScoringGraph(loaded.model).eval()
    size = loaded.manifest.model.image_size
    generator = torch.Generator().manual_seed(_PARITY_SEED)
    images = torch.randn(_PARITY_BATCH, 3, size, size, generator=generator)
    diffs = (math.nan, math.nan)

    def export_checked(candidate: Path) -> None:
        nonlocal diffs
        _export(graph, images, candidate, opset)
        diffs = _parity(
            onnx=onnx,
            onnxruntime=onnxruntime,
            graph=graph,
            images=images,
            path=candidate,
            target=output,
            opset=opset,
            atol=atol,
        )

    # The candidate is renamed over ``output`` only once checked, so ``output`` never holds an
    # unchecked graph and a failed export leaves an earlier good file in place.
    write_atomically(output, export_checked)
    return ExportReport(output, *diffs)


def _export(graph: _ScoringGraph, images: Tensor, path: Path, opset: int) -> None:
    batch_axis = {0: "batch"}
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the torch.export one, but only it
        # writes opset 17: the torch.export one starts at opset 18, and its conversion down to 17
        # fails on this graph, leaving the file at 18.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            graph,
            (images,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={name: batch_axis for name in (INPUT_NAME, *OUTPUT_NAMES)},
            opset_version=opset,
            dynamo=False,
        )


def _parity(
    *,
    onnx: Any,
    onnxruntime: Any,
    graph: _ScoringGraph,
    images: Tensor,
    path: Path,
    target: Path,
    opset: int,
    atol: float,
) -> tuple[float, float]:
    """Max abs differences (score, map) between the graph at ``path`` and PyTorch."""
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    written = {entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")}
    if written != {opset}:
        raise ExportError(
            f"{target}: asked for opset {opset}, the exporter wrote {sorted(written)}"
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    score, anomaly_map = session.run(list(OUTPUT_NAMES), {INPUT_NAME: images.numpy()})
    with torch.no_grad():
        expected_score, expected_map = graph(images)
    if score.shape != tuple(expected_score.shape) or anomaly_map.shape != tuple(expected_map.shape):
        raise ExportError(
            f"{target}: ONNX output shapes {score.shape}, {anomaly_map.shape} differ from "
            f"PyTorch's {tuple(expected_score.shape)}, {tuple(expected_map.shape)}"
        )
    diff_score = float(np.abs(score - expected_score.numpy()).max())
    diff_map = float(np.abs(anomaly_map - expected_map.numpy()).max())
    if not (diff_score <= atol and diff_map <= atol):
        raise ExportError(
            f"{target}: the ONNX graph does not reproduce the PyTorch model within atol={atol}: "
            f"max abs difference {diff_score:.3g} on score, {diff_map:.3g} on anomaly_map"
        )
    return diff_score, diff_map
