"""Shadow testing's settings and wiring: entries go where the scores go, and off means off."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from worker import backend_factories, wiring
from worker.backend_urls import BACKEND_SCHEMES
from worker.settings import Settings
from worker.sinks.shadow_jsonl import JsonlShadowSink
from worker.sinks.shadow_redis import RedisShadowSink

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def no_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RDQC_ENV_FILE", str(tmp_path / "absent.env"))


def test_every_scores_scheme_has_a_shadow_sink() -> None:
    assert sorted(backend_factories.SHADOW_SINKS) == sorted(BACKEND_SCHEMES["scores"])


def test_the_shadow_sink_sits_beside_the_scores(tmp_path: Path) -> None:
    embedded = wiring.shadow_config(Settings(scores=f"file://{tmp_path}/out/scores.jsonl"))
    assert embedded is not None and isinstance(embedded.sink, JsonlShadowSink)
    embedded.sink.setup()
    embedded.sink.close()
    assert (tmp_path / "out" / "shadow.jsonl").is_file()
    settings = Settings(scores="redis://", worker_id="w-7", shadow={"max_share": 0.2})
    redis = wiring.shadow_config(settings)
    assert redis is not None and isinstance(redis.sink, RedisShadowSink)
    assert (redis.worker_id, redis.max_share) == ("w-7", 0.2)


def test_shadow_testing_can_be_turned_off_and_its_share_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RDQC_SHADOW__ENABLED", "false")
    assert wiring.shadow_config(Settings()) is None
    for share in (0, 1.5):
        with pytest.raises(ValidationError, match="max_share"):
            Settings(shadow={"max_share": share})
