"""Billing API schemas."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict


class ImportRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    file_name: str
    format: str | None
    source_system: str | None
    dataset: str
    status: str
    file_bytes: int
    bytes_read: int
    rows_read: int
    rows_accepted: int
    rows_matched: int
    rows_replaced: int
    totals: dict[str, dict[str, str]]
    errors: list[dict[str, Any]]
    error_count: int
    message: str | None
    created_at: datetime
    finished_at: datetime | None
    progress: dict[str, Any] | None = None
    duplicate_of: int | None = None


class PriceEntryIO(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    provider: str
    instance_type: str
    region: str = ""
    gpu_model: str | None = None
    gpu_count: int = 1
    hourly_price: Decimal | None = None
    currency: str = "USD"
    hardware_cost: Decimal | None = None
    amortization_months: int | None = None
    energy_price_kwh: Decimal | None = None
    pue: Decimal | None = None
    source: str = "user"
    price_date: date | None = None
