"""Backend settings, read once from the environment (prefix ``GPULEDGER_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".gpuledger")
SQLITE_FILE_NAME = "gpuledger.db"
# Idle power of GPU models at rest (P8, no context), watts: the energy_waste floor.
IDLE_POWER_WATTS = {
    "H200": 75.0, "H100": 70.0, "A100": 55.0, "A10G": 25.0, "A10": 25.0, "L40S": 35.0,
    "L40": 35.0, "L4": 16.0, "T4": 10.0, "V100": 40.0, "A40": 30.0, "B200": 140.0,
}  # fmt: skip


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
    # Backend /metrics: Prometheus sends the token as "Authorization: Bearer <token>"; with no
    # token the endpoint refuses every scrape unless metrics_open says it may stay open.
    metrics_token: SecretStr | None = None
    metrics_open: bool = False
    # Findings (docs/findings.md): rules per kind; every threshold can be changed per team and
    # kind in findings_overrides, e.g. {"ml": {"idle_allocated": {"minutes": 60}}}, and a team
    # can mute a kind with {"ml": {"energy_waste": {"mute": true}}}.
    findings_idle_utilization_percent: float = Field(default=5.0, ge=0, le=100)
    findings_idle_resolve_utilization_percent: float = Field(default=15.0, ge=0, le=100)
    findings_idle_allocated_minutes: int = Field(default=30, ge=1)
    findings_idle_unallocated_minutes: int = Field(default=60, ge=1)
    findings_starvation_utilization_percent: float = Field(default=60.0, ge=0, le=100)
    findings_starvation_sawtooth_percent: float = Field(default=20.0, ge=0)  # std between minutes
    findings_starvation_io_ratio: float = Field(default=0.20, ge=0, le=1)  # iowait or PSI some
    findings_starvation_io_resolve_ratio: float = Field(default=0.10, ge=0, le=1)
    findings_starvation_disk_ceiling_ratio: float = Field(default=0.9, gt=0, le=1)
    findings_starvation_disk_min_bytes_per_second: float = Field(default=50e6, ge=0)
    findings_starvation_minutes: int = Field(default=10, ge=1)
    findings_energy_utilization_percent: float = Field(default=1.0, ge=0, le=100)  # "≈ 0"
    findings_energy_margin_watts: float = Field(default=25.0, ge=0)
    findings_energy_margin_ratio: float = Field(default=0.5, ge=0)  # of the idle floor
    findings_energy_minutes: int = Field(default=15, ge=1)
    # Idle power floor per GPU model (case-insensitive substring of the model name; the longest
    # match wins); a model not listed uses its own lowest hourly mean power of the day before.
    findings_idle_power_watts: dict[str, float] = Field(
        default_factory=lambda: dict(IDLE_POWER_WATTS)
    )
    findings_stale_intervals: int = Field(default=15, ge=1)  # 3 intervals x 5 (DESIGN.md)
    findings_stale_interval_seconds: float = Field(default=10.0, gt=0)  # when not measurable
    findings_resolve_minutes: int = Field(default=3, ge=1)  # hysteresis: resolve after N minutes
    findings_gap_minutes: int = Field(default=2, ge=1)  # a run before opening survives N-1
    findings_reopen_quiet_minutes: int = Field(default=30, ge=0)  # closer recurrences continue
    findings_overrides: dict[str, dict[str, dict[str, float | bool]]] = Field(default_factory=dict)
    findings_initial_lookback_hours: int = Field(default=24, ge=1)  # the very first evaluation
    findings_window_minutes: int = Field(default=720, ge=60)  # longest stretch per step

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
