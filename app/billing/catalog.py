"""The shipped price book (``data/pricebook.csv``): instance type → GPUs and hourly list price."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from app.billing.errors import PriceEntryError
from app.kit.money import ISO_4217_CODES, MONEY_PRECISION, MONEY_SCALE

PRICEBOOK_CSV = Path(__file__).with_name("data") / "pricebook.csv"
PRICEBOOK_COLUMNS = (
    "provider", "instance_type", "region", "gpu_model", "gpu_count", "hourly_price", "currency",
    "hardware_cost", "amortization_months", "energy_price_kwh", "pue", "source", "price_date",
)  # fmt: skip


@dataclass(frozen=True)
class PriceEntry:
    """One price book row; cloud rows have ``hourly_price``, on-prem rows the cost inputs."""

    provider: str
    instance_type: str
    region: str
    gpu_model: str | None
    gpu_count: int
    hourly_price: Decimal | None
    currency: str
    hardware_cost: Decimal | None
    amortization_months: int | None
    energy_price_kwh: Decimal | None
    pue: Decimal | None
    source: str
    price_date: date | None


# Bounds of each field, checked in one place (``check_entry``) for files, the API and the CLI;
# lengths are the ``price_book_entries`` column sizes, money fits NUMERIC(38,18).
TEXT_LIMITS = {"provider": 40, "instance_type": 100, "region": 100, "gpu_model": 100,
               "source": 500}  # fmt: skip
MAX_GPU_COUNT = 1024
MAX_AMORTIZATION_MONTHS = 1200
MAX_MONEY = Decimal(10) ** (MONEY_PRECISION - MONEY_SCALE)
MAX_PUE = Decimal(10)


def _invalid(name: str, problem: str, value: object) -> PriceEntryError:
    return PriceEntryError(f"{name}: {problem} (got {value!r})", field=name)


def check_entry(e: PriceEntry) -> PriceEntry:
    """``e`` unchanged, or PriceEntryError naming the first field out of range."""
    for name, limit in TEXT_LIMITS.items():
        value = getattr(e, name)
        if value is not None and len(value) > limit:
            raise _invalid(name, f"longer than {limit} characters", value[:20] + "…")
    for name in ("provider", "instance_type"):
        if not getattr(e, name):
            raise _invalid(name, "must not be empty", getattr(e, name))
    if not 1 <= e.gpu_count <= MAX_GPU_COUNT:
        raise _invalid("gpu_count", f"must be 1 to {MAX_GPU_COUNT}", e.gpu_count)
    months = e.amortization_months
    if months is not None and not 1 <= months <= MAX_AMORTIZATION_MONTHS:
        raise _invalid("amortization_months", f"must be 1 to {MAX_AMORTIZATION_MONTHS}", months)
    for name in ("hourly_price", "hardware_cost", "energy_price_kwh"):
        money = getattr(e, name)
        if money is not None and not (money.is_finite() and 0 <= money < MAX_MONEY):
            raise _invalid(name, "must be a number from 0 to below 1e20", money)
    if e.pue is not None and not (e.pue.is_finite() and 1 <= e.pue < MAX_PUE):
        raise _invalid("pue", f"must be from 1 to below {MAX_PUE}", e.pue)
    if e.currency not in ISO_4217_CODES:
        raise _invalid("currency", "not an ISO 4217 currency code such as USD", e.currency)
    return e


def _number(row: dict[str, str], name: str, kind: type[int] | type[Decimal]) -> Any:
    text = (row.get(name) or "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except (ArithmeticError, ValueError):
        raise _invalid(name, "not a number", text) from None


def parse_entry(row: dict[str, str]) -> PriceEntry:
    """A price book CSV row as a checked entry; raises PriceEntryError on a bad value."""
    try:
        price_date = date.fromisoformat(row["price_date"]) if row.get("price_date") else None
    except ValueError:
        raise _invalid("price_date", "not a date (YYYY-MM-DD)", row["price_date"]) from None
    count = _number(row, "gpu_count", int)
    return check_entry(
        PriceEntry(
            provider=(row.get("provider") or "").strip().lower(),
            instance_type=(row.get("instance_type") or "").strip(),
            region=(row.get("region") or "").strip(),
            gpu_model=row.get("gpu_model") or None,
            gpu_count=1 if count is None else count,
            hourly_price=_number(row, "hourly_price", Decimal),
            currency=(row.get("currency") or "USD").strip(),
            hardware_cost=_number(row, "hardware_cost", Decimal),
            amortization_months=_number(row, "amortization_months", int),
            energy_price_kwh=_number(row, "energy_price_kwh", Decimal),
            pue=_number(row, "pue", Decimal),
            source=row.get("source") or "user",
            price_date=price_date,
        )
    )


def read_pricebook(path: Path) -> list[PriceEntry]:
    """Every entry of a price book CSV (the shipped one or a user's); errors name the line."""
    entries = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        for row in reader:
            try:
                entries.append(parse_entry(row))
            except PriceEntryError as e:
                raise PriceEntryError(f"{path.name} line {reader.line_num}: {e.message}",
                                      field=e.field) from e  # fmt: skip
    return entries


@cache
def shipped_pricebook() -> tuple[PriceEntry, ...]:
    return tuple(read_pricebook(PRICEBOOK_CSV))


@cache
def _by_type() -> dict[str, PriceEntry]:
    return {e.instance_type.lower(): e for e in shipped_pricebook()}


def gpu_spec(instance_type: str | None) -> PriceEntry | None:
    """The shipped entry for an instance type (any region), for its GPU model and count."""
    return _by_type().get(instance_type.lower()) if instance_type else None
