"""The model commands: train, eval, score, calibrate, import-rd4ad, export.

rdcore's training, evaluation and artifact modules load torch, torchvision and OpenCV, so each
command imports what it uses in its body; ``rdqc --help`` needs none of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from rdcore.config import MAP_MODES, MapMode, ModelConfig
from worker.cli.common import (
    Backbone,
    BatchSize,
    Device,
    Quantile,
    TeacherWeights,
    reports_user_errors,
)

app = typer.Typer()


def _map_mode(value: str) -> MapMode:
    for mode in MAP_MODES:
        if mode == value:
            return mode
    raise typer.BadParameter(
        f"{value!r} is not one of {', '.join(MAP_MODES)}", param_hint="--map-mode"
    )


def _utc_version() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2))


@app.command("train")
@reports_user_errors
def train_command(
    folder: Annotated[Path, typer.Argument(help="Folder of good images (jpg, png, bmp).")],
    *,
    output: Annotated[Path, typer.Option(help="Artifact folder to write.")],
    product_line: Annotated[str, typer.Option(help="Product line the model inspects.")],
    model_version: Annotated[
        str | None,
        typer.Option(help="Version name; defaults to the UTC time, e.g. 20250101T120000Z."),
    ] = None,
    backbone: Backbone = "wide_resnet50_2",
    image_size: Annotated[int, typer.Option(help="Input size, a multiple of 32.")] = 256,
    epochs: Annotated[int, typer.Option(min=1)] = 200,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    lr: float = 0.005,
    seed: int = 0,
    device: Device = "auto",
    amp: Annotated[bool, typer.Option("--amp", help="Mixed precision (CUDA only).")] = False,
    teacher_weights: TeacherWeights = "imagenet",
    resume: Annotated[
        Path | None, typer.Option(help="Checkpoint folder (OUTPUT/checkpoint) to resume from.")
    ] = None,
    holdout: Annotated[
        float, typer.Option(help="Fraction of good images held out for calibration.")
    ] = 0.1,
    threshold_quantile: Quantile = 0.99,
    map_mode: Annotated[str, typer.Option(help="Combine the scale maps: sum or mul.")] = "sum",
) -> None:
    """Train a model on good images, calibrate it on a held-out part, write an artifact."""
    from rdcore.training.settings import TrainSettings
    from rdcore.training.train import train

    try:
        config = ModelConfig(backbone=backbone, image_size=image_size, map_mode=_map_mode(map_mode))
        settings = TrainSettings(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            device=device,
            amp=amp,
            holdout_fraction=holdout,
            threshold_quantile=threshold_quantile,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    manifest = train(
        folder,
        output,
        config=config,
        settings=settings,
        teacher_weights=teacher_weights,
        product_line=product_line,
        model_version=model_version or _utc_version(),
        resume=resume,
    )
    _print_json(
        {
            "artifact": str(output),
            "product_line": manifest.product_line,
            "model_version": manifest.model_version,
            "epochs": manifest.training["epochs_completed"],
            "final_loss": manifest.training["final_loss"],
            "threshold": None if manifest.calibration is None else manifest.calibration.threshold,
        }
    )


@app.command("eval")
@reports_user_errors
def eval_command(
    artifact: Annotated[Path, typer.Argument(help="Artifact folder.")],
    mvtec_root: Annotated[Path, typer.Argument(help="Category folder in the MVTec AD layout.")],
    report: Annotated[Path, typer.Option(help="Report folder to write.")],
    batch_size: BatchSize = 16,
    device: Device = "auto",
) -> None:
    """Evaluate on an MVTec AD style test set; print the metrics as JSON, write a report."""
    from rdcore.evaluation.evaluate import evaluate

    metrics = evaluate(artifact, mvtec_root, report, batch_size=batch_size, device=device)
    _print_json(metrics)


def _expand(inputs: list[Path]) -> list[Path]:
    from rdcore.data.folders import folder_images

    return [path for item in inputs for path in (folder_images(item) if item.is_dir() else [item])]


def _unique_names(paths: list[Path]) -> Iterator[str]:
    seen: set[str] = set()
    for path in paths:
        name, count = f"{path.stem}.png", 1
        while name in seen:
            count += 1
            name = f"{path.stem}_{count}.png"
        seen.add(name)
        yield name


@app.command("score")
@reports_user_errors
def score_command(
    artifact: Annotated[Path, typer.Argument(help="Artifact folder (must be calibrated).")],
    images: Annotated[list[Path], typer.Argument(help="Image files and/or folders of images.")],
    overlays: Annotated[
        Path | None, typer.Option(help="Write a heatmap overlay per image into this folder.")
    ] = None,
    batch_size: BatchSize = 16,
    device: Device = "auto",
) -> None:
    """Score images; print one JSON line per image (raw and normalized score, verdict)."""
    from rdcore.artifacts.artifact import load_artifact
    from rdcore.calibration import normalize
    from rdcore.data.images import encode_png
    from rdcore.data.overlay import heatmap_overlay, heatmap_range
    from rdcore.device import resolve_device
    from rdcore.evaluation.file_scoring import score_batches

    loaded = load_artifact(artifact, resolve_device(device))
    calibration = loaded.calibration
    paths = _expand(images)
    names = _unique_names(paths)
    if overlays is not None:
        overlays.mkdir(parents=True, exist_ok=True)
    batches = score_batches(
        loaded.model, loaded.preprocess, paths, batch_size=batch_size, device=device
    )
    for batch in batches:
        for path, image, raw, anomaly_map in zip(
            batch.paths, batch.images, batch.scores, batch.maps, strict=True
        ):
            record = {
                "path": str(path),
                "raw_score": float(raw),
                "score": normalize(float(raw), calibration),
                "is_anomaly": bool(raw >= calibration.threshold),
                "threshold": calibration.threshold,
            }
            typer.echo(json.dumps(record))
            if overlays is not None:
                overlay = heatmap_overlay(image, anomaly_map, *heatmap_range(calibration))
                (overlays / next(names)).write_bytes(encode_png(overlay))


@app.command("calibrate")
@reports_user_errors
def calibrate_command(
    artifact: Annotated[Path, typer.Argument(help="Artifact folder; it is left as it is.")],
    good_folder: Annotated[Path, typer.Argument(help="Good images the model did not train on.")],
    new_version: Annotated[
        str | None,
        typer.Option(
            help="Version name of the recalibrated artifact; default: the old one plus "
            "-cal and the UTC time, e.g. v3-cal20261202T101500Z."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Folder to write it to; default: beside ARTIFACT, named NEW_VERSION."),
    ] = None,
    quantile: Quantile = 0.99,
    batch_size: BatchSize = 16,
    device: Device = "auto",
) -> None:
    """Recalibrate an artifact's threshold from good images as a new version; print it.

    Published versions never change, so the result is a new artifact to publish.
    """
    from rdcore.evaluation.recalibrate import recalibrate_as_new_version

    directory, manifest = recalibrate_as_new_version(
        artifact,
        good_folder,
        output,
        new_version=new_version,
        quantile=quantile,
        batch_size=batch_size,
        device=device,
    )
    _print_json(
        {
            "artifact": str(directory),
            "product_line": manifest.product_line,
            "model_version": manifest.model_version,
            "recalibrated_from": manifest.training["recalibrated_from"],
            "calibration": None if manifest.calibration is None else manifest.calibration.to_dict(),
        }
    )


@app.command("import-rd4ad")
@reports_user_errors
def import_rd4ad_command(
    checkpoint: Annotated[Path, typer.Argument(help="Official RD4AD checkpoint (.pth).")],
    *,
    output: Annotated[Path, typer.Option(help="Artifact folder to write.")],
    product_line: Annotated[str, typer.Option(help="Product line the model inspects.")],
    model_version: Annotated[str, typer.Option(help="Version name.")],
    backbone: Backbone = "wide_resnet50_2",
    image_size: Annotated[int, typer.Option(help="Input size the checkpoint expects.")] = 256,
    teacher_weights: TeacherWeights = "imagenet",
    calibrate_from: Annotated[
        Path | None, typer.Option(help="Calibrate on the good images in this folder.")
    ] = None,
    quantile: Quantile = 0.99,
    device: Device = "auto",
) -> None:
    """Convert an official RD4AD checkpoint into an artifact (optionally calibrated)."""
    from rdcore.artifacts.import_rd4ad import import_rd4ad
    from rdcore.evaluation.recalibrate import calibrate_artifact

    try:
        config = ModelConfig(backbone=backbone, image_size=image_size)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    manifest = import_rd4ad(
        checkpoint,
        output,
        config=config,
        teacher_weights=teacher_weights,
        product_line=product_line,
        model_version=model_version,
    )
    if calibrate_from is not None:
        manifest = calibrate_artifact(output, calibrate_from, quantile=quantile, device=device)
    _print_json(
        {
            "artifact": str(output),
            "product_line": manifest.product_line,
            "model_version": manifest.model_version,
            "calibrated": manifest.calibration is not None,
        }
    )


@app.command("export")
@reports_user_errors
def export_command(
    artifact: Annotated[Path, typer.Argument(help="Artifact folder.")],
    output: Annotated[Path, typer.Option(help="ONNX file to write.")],
    opset: Annotated[int, typer.Option(help="ONNX opset version.")] = 17,
) -> None:
    """Export an artifact to ONNX and check it against PyTorch in onnxruntime."""
    from rdcore.artifacts.onnx_export import export_onnx

    report = export_onnx(artifact, output, opset=opset)
    _print_json(
        {
            "output": str(report.output),
            "max_abs_diff_score": report.max_abs_diff_score,
            "max_abs_diff_map": report.max_abs_diff_map,
        }
    )
