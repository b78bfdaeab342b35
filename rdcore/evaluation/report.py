"""An evaluation report folder: ROC curves, score histogram, sample heatmaps, metrics, index.html.

Plots use matplotlib's object API (``Figure``) with the Agg canvas, never pyplot, so writing a
report changes no global matplotlib state and needs no display.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt

from rdcore.data.images import encode_png, read_image
from rdcore.data.overlay import heatmap_overlay
from rdcore.evaluation.metrics import eval_extras

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SAMPLES_DIR = "samples"
_MASK_OUTLINE = (0, 255, 0)


@dataclass(frozen=True)
class EvaluationData:
    """Per test image: path, label (1 anomalous), raw score, anomaly map and mask at map size."""

    paths: list[Path]
    labels: npt.NDArray[np.int_]
    scores: npt.NDArray[np.float32]
    maps: npt.NDArray[np.float32]
    masks: npt.NDArray[np.bool_]
    threshold: float | None
    f1_threshold: float


def _figure() -> Figure:
    with eval_extras():
        from matplotlib.figure import Figure
    return Figure(figsize=(5.0, 4.0), dpi=100, layout="tight")


def _roc_plot(path: Path, labels: npt.ArrayLike, scores: npt.ArrayLike, title: str) -> None:
    with eval_extras():
        from sklearn.metrics import roc_auc_score, roc_curve
    fpr, tpr, _ = roc_curve(labels, scores)
    figure = _figure()
    axes = figure.subplots()
    axes.plot(fpr, tpr, label=f"AUROC {roc_auc_score(labels, scores):.4f}")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    axes.legend(loc="lower right")
    figure.savefig(path)


def _histogram(path: Path, data: EvaluationData) -> None:
    figure = _figure()
    axes = figure.subplots()
    bins = np.histogram_bin_edges(data.scores, bins=40).tolist()
    normal, anomalous = data.scores[data.labels == 0], data.scores[data.labels == 1]
    axes.hist(normal, bins=bins, alpha=0.6, label=f"normal ({normal.size})")
    axes.hist(anomalous, bins=bins, alpha=0.6, label=f"anomalous ({anomalous.size})")
    if data.threshold is not None:
        axes.axvline(data.threshold, color="black", label=f"threshold {data.threshold:.4g}")
    axes.axvline(
        data.f1_threshold, color="black", linestyle="--", label=f"F1-best {data.f1_threshold:.4g}"
    )
    axes.set(xlabel="raw image score", ylabel="images", title="Image scores")
    axes.legend()
    figure.savefig(path)


def _sample(data: EvaluationData, index: int, value_range: tuple[float, float]) -> bytes:
    """The heatmap over the image (at map size), the ground-truth region outlined in green."""
    size = data.maps.shape[-1]
    image = cv2.resize(read_image(data.paths[index]), (size, size), interpolation=cv2.INTER_AREA)
    overlay = np.ascontiguousarray(
        heatmap_overlay(image.astype(np.uint8), data.maps[index], *value_range)
    )
    if data.masks[index].any():
        contours, _ = cv2.findContours(
            data.masks[index].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(overlay, contours, -1, _MASK_OUTLINE, 1)
    return encode_png(overlay)


def _write_samples(
    directory: Path, data: EvaluationData, count: int, value_range: tuple[float, float]
) -> list[tuple[str, int]]:
    """The ``count`` most and least anomalous images; (file name, index) of each."""
    order = np.argsort(data.scores, kind="stable")
    most = [int(i) for i in order[::-1][:count]]
    least = [int(i) for i in order[:count] if int(i) not in most]
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, indices in (("most", most), ("least", least)):
        for rank, index in enumerate(indices, start=1):
            path = data.paths[index]
            name = f"{kind}_{rank:02d}_{path.parent.name}_{path.stem}.png"
            (directory / name).write_bytes(_sample(data, index, value_range))
            written.append((name, index))
    return written


def _index_html(
    metrics: dict[str, float], data: EvaluationData, samples: list[tuple[str, int]], title: str
) -> str:
    rows = "\n".join(
        f"<tr><td>{html.escape(name)}</td><td>{value:.4f}</td></tr>"
        if isinstance(value, float)
        else f"<tr><td>{html.escape(name)}</td><td>{value}</td></tr>"
        for name, value in metrics.items()
    )
    figures = "\n".join(
        f'<figure><img src="{name}" alt="{name}"></figure>'
        for name in ("roc_image.png", "roc_pixel.png", "score_histogram.png")
    )
    cards = "\n".join(
        f'<figure><img src="{SAMPLES_DIR}/{html.escape(name)}" width="256">'
        f"<figcaption>{html.escape(str(data.paths[index]))}<br>"
        f"{'anomalous' if data.labels[index] else 'normal'}, score {data.scores[index]:.4g}"
        "</figcaption></figure>"
        for name, index in samples
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} td {{ border: 1px solid #ccc; padding: 0.3em 0.8em; }}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; max-width: 520px; }}
figcaption {{ font-size: 0.8em; word-break: break-all; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<table>
{rows}
</table>
<h2>Curves</h2>
{figures}
<h2>Most and least anomalous test images</h2>
<p>Heatmaps share one colour scale; ground-truth defects are outlined in green.</p>
{cards}
</body></html>
"""


def write_report(
    directory: Path,
    data: EvaluationData,
    metrics: dict[str, float],
    *,
    title: str,
    value_range: tuple[float, float],
    samples: int = 4,
) -> Path:
    """Write the report into ``directory`` (created if needed); the path of its index.html."""
    directory.mkdir(parents=True, exist_ok=True)
    _roc_plot(directory / "roc_image.png", data.labels, data.scores, "Image-level ROC")
    _roc_plot(directory / "roc_pixel.png", data.masks.ravel(), data.maps.ravel(), "Pixel-level ROC")
    _histogram(directory / "score_histogram.png", data)
    written = _write_samples(directory / SAMPLES_DIR, data, samples, value_range)
    text = json.dumps(metrics, indent=2, allow_nan=False) + "\n"
    (directory / "metrics.json").write_text(text, encoding="utf-8")
    index = directory / "index.html"
    index.write_text(_index_html(metrics, data, written, title), encoding="utf-8")
    return index
