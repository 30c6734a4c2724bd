"""Backend settings, read once from the environment (prefix ``GPULEDGER_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".gpuledger")
SQLITE_FILE_NAME = "gpuledger.db"


class Settings(BaseSettings):
    """Everything the backend reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="GPULEDGER_", extra="forbid", env_file=None)

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; unset means a SQLite file in the data directory.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for Celery; unset means tasks run in-process (embedded mode).",
    )
    environment: str = "dev"
    idle_utilization_percent: float = 5.0
    chart_window_minutes: int = 60
    max_batch_samples: int = 50_000
    # Storage (issue 4): thresholds the rollups classify time by, and how long each tier lives.
    low_utilization_percent: float = 30.0
    max_sample_gap_seconds: float = 60.0  # a longer gap between samples is a gap, not coverage
    raw_retention_days: int = Field(default=14, ge=1)
    minute_rollup_retention_days: int = Field(default=90, ge=1)
    hour_rollup_retention_days: int | None = Field(default=None, ge=1)  # None keeps them
    partition_days_ahead: int = Field(default=3, ge=1)
    rollup_batch_rows: int = Field(default=20_000, ge=1)

    @field_validator("database_url")
    @classmethod
    def _psycopg3(cls, value: str | None) -> str | None:
        # "postgresql://" alone would make SQLAlchemy look for psycopg2; GPU Ledger ships psycopg 3.
        if value and value.startswith(("postgresql://", "postgres://")):
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @property
    def effective_database_url(self) -> str:
        """The configured database, or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / SQLITE_FILE_NAME).resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


settings = Settings()


def configure(**overrides: object) -> Settings:
    """Change the process settings in place (CLI flags, tests); validated like the environment."""
    checked = Settings(**{**settings.model_dump(), **overrides})
    for name in overrides:
        setattr(settings, name, getattr(checked, name))
    return settings
