"""The model store: each product line the operator lists has a current version whose manifest
can be read and is the one ``current.json`` names."""

from __future__ import annotations

from collections.abc import Sequence

from rdcore.errors import RdcoreError
from worker.doctor.report import Row, Status
from worker.errors import WorkerError
from worker.modelstore.registry import ModelRegistry
from worker.settings import Settings


def model_rows(settings: Settings, product_lines: Sequence[str]) -> list[Row]:
    if not product_lines:
        return [Row("models", Status.SKIP, "no --product-line listed")]
    from worker.wiring import model_repository

    registry = model_repository(settings)
    return [line_row(registry, line, settings.models.url) for line in product_lines]


def line_row(registry: ModelRegistry, product_line: str, store: str) -> Row:
    check = f"model {product_line}"
    publish = f"rdqc publish MODEL_DIR --product-line {product_line}"
    try:
        pointer = registry.pointer(product_line)
        if pointer is None:
            return Row(check, Status.FAIL, f"no current version in {store}", publish)
        manifest = registry.manifest(product_line, pointer.version)
    except (WorkerError, RdcoreError) as exc:
        return Row(check, Status.FAIL, str(exc), f"check the model store {store}, or {publish}")
    if pointer.digest is not None and manifest.digest() != pointer.digest:
        return Row(
            check,
            Status.FAIL,
            f"current.json names {pointer.version} with digest {pointer.digest}, but its "
            f"manifest's digest is {manifest.digest()}",
            f"rdqc models promote {product_line} VERSION (rewrites current.json)",
        )
    calibration = manifest.calibration
    threshold = f"{calibration.threshold:.4g}" if calibration else "none"
    return Row(
        check,
        Status.OK,
        f"current {pointer.version} (digest {manifest.digest()[:12]}, threshold {threshold})",
    )
