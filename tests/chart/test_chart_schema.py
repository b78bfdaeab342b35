"""values.schema.json refuses a wrong value at install, with a message naming it, and agrees
with the settings the worker accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest
from chart_render import CHART, REPO_ROOT, render_error

from worker.backend_urls import BACKEND_SCHEMES
from worker.settings import Settings
from worker.settings_sections import KafkaSettings

pytestmark = pytest.mark.unit

SCHEMA: dict[str, Any] = json.loads((REPO_ROOT / CHART / "values.schema.json").read_text())


def _property(path: str) -> dict[str, Any]:
    node = SCHEMA
    for name in path.split("."):
        node = node["properties"][name]
    return node


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("inference.precision=fp8", "precision"),
        ("replicaCount=-1", "replicaCount"),
        ("backends.heatmapsFor=sometimes", "heatmapsFor"),
        ("backends.scores=postgres://db", "scores"),
        ("logFormat=xml", "logFormat"),
        ("kafka.sasl.mechanism=GSSAPI", "mechanism"),
        ("topics.partitions=0", "partitions"),
        ("gpu.count=0", "count"),
        ("shadow.maxShare=1.5", "maxShare"),
        ("securityContext.readOnlyRootFilesystem=false", "readOnlyRootFilesystem"),
        ("podSecurityContext.runAsNonRoot=false", "runAsNonRoot"),
        ("replicaCont=2", "replicaCont"),
        ("kafka.topc=frames", "topc"),
        ("extraEnv.RDQC_KAFKA__SASL_PASSWORD=secret", "RDQC_KAFKA__SASL_PASSWORD"),
    ],
)
def test_schema_refuses_a_wrong_value_naming_it(helm: Path, setting: str, named: str) -> None:
    name, _, value = setting.partition("=")
    error = render_error(helm, settings={name: value})
    assert "schema" in error
    assert named in error


def test_backend_url_patterns_accept_exactly_the_workers_schemes() -> None:
    ports = {
        "source": "source",
        "models": "models",
        "scores": "scores",
        "heatmaps": "heatmaps",
        "deadLetterPayloads": "dead_letter_payloads",
    }
    for value_name, port in ports.items():
        pattern = re.compile(_property(f"backends.{value_name}")["pattern"])
        for scheme in BACKEND_SCHEMES[port]:
            assert pattern.search(f"{scheme}://x"), (value_name, scheme)
        assert not pattern.search("ftp://x"), value_name


@pytest.mark.parametrize(
    ("value_path", "choices"),
    [
        ("inference.precision", get_args(Settings.model_fields["precision"].annotation)),
        ("backends.heatmapsFor", get_args(Settings.model_fields["heatmaps_for"].annotation)),
        ("logFormat", get_args(Settings.model_fields["log_format"].annotation)),
        (
            "kafka.sasl.mechanism",
            get_args(get_args(KafkaSettings.model_fields["sasl_mechanism"].annotation)[0]),
        ),
    ],
)
def test_enums_are_the_settings_choices(value_path: str, choices: tuple[str, ...]) -> None:
    assert set(_property(value_path)["enum"]) == set(choices)


def test_monitoring_blocks_are_in_the_schema() -> None:
    """prometheusRule and grafanaDashboard values (their templates live beside this chart's)."""
    for block in ("prometheusRule", "grafanaDashboard"):
        assert _property(f"{block}.enabled") == {"type": "boolean"}
