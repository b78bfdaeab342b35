"""wiring: one backend factory for each URL scheme settings accept, backends loaded when chosen."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from worker import backend_factories
from worker.backend_urls import BACKEND_SCHEMES

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_the_factories_cover_exactly_the_allowed_schemes() -> None:
    factories = {
        "source": backend_factories.SOURCES,
        "dead_letters": backend_factories.DEAD_LETTER_SINKS,
        "scores": backend_factories.SCORE_SINKS,
        "heatmaps": backend_factories.HEATMAP_SINKS,
        "models": backend_factories.MODEL_REPOSITORIES,
        "dead_letter_payloads": backend_factories.DEAD_LETTER_PAYLOAD_STORES,
    }
    assert {port: sorted(table) for port, table in factories.items()} == {
        port: sorted(schemes) for port, schemes in BACKEND_SCHEMES.items()
    }


def test_local_backends_load_no_kafka_s3_or_redis_client(tmp_path: Path) -> None:
    # A fresh interpreter, as other tests in this one have imported those clients already.
    script = textwrap.dedent(
        """
        import sys
        from worker.settings import Settings
        from worker.wiring import backends

        backends(Settings())
        print(sorted({"kafka", "minio", "redis"} & set(sys.modules)))
        """
    )
    env = {
        name: value for name, value in os.environ.items() if not name.upper().startswith("RDQC_")
    }
    env |= {"PYTHONPATH": str(REPO), "RDQC_ENV_FILE": str(tmp_path / "absent.env")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == "[]"
