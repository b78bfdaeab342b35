"""The dashboard's own settings, ``RDQC_DASHBOARD__*`` in the environment.

Its connections (scores, heatmaps, models) are the worker's settings; these are only what the
dashboard adds. They are read from the environment alone, not the env file: the worker's
settings refuse unknown ``RDQC_`` keys in that file, so a dashboard key there would stop
workers sharing it. The Helm chart sets the token from the Secret as an environment variable.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Seconds = Annotated[float, Field(gt=0)]


class DashboardSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RDQC_DASHBOARD__", case_sensitive=False, extra="ignore"
    )

    token: SecretStr | None = Field(
        default=None,
        description="Access token; required when binding beyond loopback",
    )
    window_s: Seconds = Field(default=300, description="Flag rate and frames/s over this window")
    stale_after_s: Seconds = Field(
        default=60, description="A camera with no frame for this long is marked stale"
    )
    sample_limit: Annotated[int, Field(ge=100)] = Field(
        default=5000, description="Most stream entries one overview reads per line"
    )
    chart_points: Annotated[int, Field(ge=10, le=5000)] = 600
    gallery_size: Annotated[int, Field(ge=1, le=200)] = 50
