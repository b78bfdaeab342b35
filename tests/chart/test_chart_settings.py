"""Every setting the chart's ConfigMap sets is one the worker reads, with a value it accepts."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
import yaml
from chart_render import CHART, REPO_ROOT, config_data, render, variant_id, variants
from pydantic import BaseModel

from worker.settings import Settings

pytestmark = pytest.mark.unit

PREFIX = "RDQC_"
# `rdqc topics ensure`'s section; until it is part of Settings these are the only names allowed.
TOPICS_ENV = {
    "RDQC_TOPICS__PARTITIONS",
    "RDQC_TOPICS__REPLICATION_FACTOR",
    "RDQC_TOPICS__INBOUND_RETENTION_HOURS",
    "RDQC_TOPICS__DLQ_RETENTION_HOURS",
}
# What the Secret holds, for loading a complete environment.
CREDENTIALS = {
    "RDQC_REDIS__URL": "redis://:password@redis:6379/0",
    "RDQC_S3__ACCESS_KEY": "access",
    "RDQC_S3__SECRET_KEY": "secret",
    "RDQC_KAFKA__SASL_USERNAME": "rdqc",
    "RDQC_KAFKA__SASL_PASSWORD": "password",
}
TOPICS_IN_SETTINGS = "topics" in Settings.model_fields


def _field_exists(env_name: str) -> bool:
    """Whether RDQC_SECTION__FIELD (or RDQC_FIELD) names a field of Settings."""
    section, _, field = env_name.removeprefix(PREFIX).lower().partition("__")
    top = Settings.model_fields.get(section)
    if top is None:
        return False
    if not field:
        return True
    model = top.annotation
    return isinstance(model, type) and issubclass(model, BaseModel) and field in model.model_fields


def _settings_env(helm: Path, variant: Path | None) -> dict[str, str]:
    env = config_data(render(helm, variant))
    if not TOPICS_IN_SETTINGS:
        assert set(env) >= TOPICS_ENV
        env = {name: value for name, value in env.items() if name not in TOPICS_ENV}
    return env


@pytest.mark.parametrize("variant", variants(), ids=variant_id)
def test_config_map_names_are_settings(helm: Path, variant: Path | None) -> None:
    env = _settings_env(helm, variant)
    unknown = sorted(name for name in env if not _field_exists(name))
    assert not unknown


@pytest.mark.parametrize("variant", variants(), ids=variant_id)
def test_worker_loads_the_config_map(
    helm: Path, variant: Path | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = _settings_env(helm, variant)
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RDQC_ENV_FILE", str(tmp_path / "absent.env"))
    for name, value in {**env, **CREDENTIALS}.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.kafka.topic == env["RDQC_KAFKA__TOPIC"]
    assert settings.kafka.security_protocol == env["RDQC_KAFKA__SECURITY_PROTOCOL"]
    assert settings.batching.max_inflight_mb == int(env["RDQC_BATCHING__MAX_INFLIGHT_MB"])
    assert settings.max_payload_bytes == int(env["RDQC_MAX_PAYLOAD_BYTES"])
    assert str(settings.models.cache_dir).startswith("/var/cache/rdqc")


def test_extra_env_reaches_the_config_map(helm: Path) -> None:
    env = config_data(render(helm, settings={"extraEnv.RDQC_DECODE_THREADS": "4"}))
    assert env["RDQC_DECODE_THREADS"] == "4"


def test_an_unknown_setting_is_caught() -> None:
    assert _field_exists("RDQC_KAFKA__TOPIC")
    assert _field_exists("RDQC_MODELS")
    assert not _field_exists("RDQC_KAFKA__TOPC")
    assert not _field_exists("RDQC_HEATMAP_FOR")


def test_app_version_is_the_project_version() -> None:
    chart = yaml.safe_load((REPO_ROOT / CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project["version"]
    assert chart["kubeVersion"]
