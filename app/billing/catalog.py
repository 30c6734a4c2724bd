"""The shipped price book (``data/pricebook.csv``): instance type → GPUs and hourly list price."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path

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


def _dec(text: str | None) -> Decimal | None:
    return Decimal(text) if text not in (None, "") else None


def parse_entry(row: dict[str, str]) -> PriceEntry:
    """A price book CSV row as an entry; raises ValueError on a bad value."""
    try:
        return PriceEntry(
            provider=row["provider"].strip().lower(),
            instance_type=row["instance_type"].strip(),
            region=(row.get("region") or "").strip(),
            gpu_model=row.get("gpu_model") or None,
            gpu_count=int(row.get("gpu_count") or 1),
            hourly_price=_dec(row.get("hourly_price")),
            currency=(row.get("currency") or "USD").upper(),
            hardware_cost=_dec(row.get("hardware_cost")),
            amortization_months=int(row["amortization_months"])
            if row.get("amortization_months")
            else None,
            energy_price_kwh=_dec(row.get("energy_price_kwh")),
            pue=_dec(row.get("pue")),
            source=row.get("source") or "user",
            price_date=date.fromisoformat(row["price_date"]) if row.get("price_date") else None,
        )
    except (KeyError, ArithmeticError) as e:
        raise ValueError(f"bad price book row {row!r}: {e}") from e


def read_pricebook(path: Path) -> list[PriceEntry]:
    """Every entry of a price book CSV (the shipped one or a user's)."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        return [parse_entry(row) for row in csv.DictReader(f)]


@cache
def shipped_pricebook() -> tuple[PriceEntry, ...]:
    return tuple(read_pricebook(PRICEBOOK_CSV))


@cache
def _by_type() -> dict[str, PriceEntry]:
    return {e.instance_type.lower(): e for e in shipped_pricebook()}


def gpu_spec(instance_type: str | None) -> PriceEntry | None:
    """The shipped entry for an instance type (any region), for its GPU model and count."""
    return _by_type().get(instance_type.lower()) if instance_type else None
