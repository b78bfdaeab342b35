"""Local paths in use (``dir://``, ``file://``, ``video://`` and the model download cache): what
the worker writes must be writable, or creatable where it does not exist yet; what it reads
must be readable."""

from __future__ import annotations

import os
from pathlib import Path

from worker.backend_urls import parse_backend_url
from worker.doctor.report import Row, Status
from worker.settings import Settings

_LOCAL_SCHEMES = ("dir", "file", "video")


def path_rows(settings: Settings) -> list[Row]:
    rows = []
    scheme, location = parse_backend_url(settings.source)
    if scheme in _LOCAL_SCHEMES:
        # A video URL's query (product line, camera) is no part of the file's path.
        rows.append(readable_row("source", "RDQC_SOURCE", Path(location.partition("?")[0])))
    written = (
        ("dead letters", "RDQC_DEAD_LETTERS", settings.dead_letters),
        ("scores", "RDQC_SCORES", settings.scores),
        ("heatmaps", "RDQC_HEATMAPS", settings.heatmaps),
        ("dead-letter payloads", "RDQC_DEAD_LETTER_PAYLOADS", settings.dead_letter_payloads),
        ("models", "RDQC_MODELS", settings.models.url),
    )
    for label, setting, url in written:
        scheme, location = parse_backend_url(url)
        if scheme in _LOCAL_SCHEMES:
            # A scores file is created in its folder, so the folder must take new files.
            folder = Path(location).parent if scheme == "file" else Path(location)
            rows.append(writable_row(label, setting, folder))
    rows.append(writable_row("model cache", "RDQC_MODELS__CACHE_DIR", settings.models.cache_dir))
    return rows


def writable_row(label: str, setting: str, folder: Path) -> Row:
    check = f"path {label}"
    folder = folder.absolute()
    fix = f"make it writable for the worker's user (a writable volume), or set {setting}"
    if folder.is_dir():
        if os.access(folder, os.W_OK | os.X_OK):
            return Row(check, Status.OK, f"{folder} writable")
        return Row(check, Status.FAIL, f"{folder} is not writable", fix)
    if folder.exists():
        return Row(check, Status.FAIL, f"{folder} is not a folder", f"set {setting}")
    ancestor = next(parent for parent in folder.parents if parent.exists())
    if ancestor.is_dir() and os.access(ancestor, os.W_OK | os.X_OK):
        return Row(check, Status.OK, f"{folder} will be created (in {ancestor})")
    return Row(check, Status.FAIL, f"{folder} does not exist and {ancestor} is not writable", fix)


def readable_row(label: str, setting: str, path: Path) -> Row:
    check = f"path {label}"
    path = path.absolute()
    if path.exists() and os.access(path, os.R_OK):
        return Row(check, Status.OK, f"{path} readable")
    problem = "is not readable" if path.exists() else "does not exist"
    return Row(check, Status.FAIL, f"{path} {problem}", f"set {setting} to a readable path")
