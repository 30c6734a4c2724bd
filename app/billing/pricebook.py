"""The price book: the shipped list prices overlaid with the user's own entries (file or API)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.billing.catalog import PriceEntry, check_entry, read_pricebook, shipped_pricebook
from app.costs import dirty as cost_dirty
from app.models import PriceBookEntry

_FIELDS = [f.name for f in dataclasses.fields(PriceEntry)]


def _key(e: PriceEntry) -> tuple[str, str, str]:
    return (e.provider, e.instance_type.lower(), e.region)


def user_entries(session: Session) -> list[PriceEntry]:
    rows = session.scalars(select(PriceBookEntry).order_by(PriceBookEntry.id))
    return [PriceEntry(**{f: getattr(r, f) for f in _FIELDS}) for r in rows]


def list_entries(session: Session) -> list[PriceEntry]:
    """Every price: user entries replace shipped ones with the same provider, type and region.

    Sorted by provider and type; within a type the shipped file's order stays (its reference
    region first, which ``PriceBook`` falls back to), then the user's other regions.
    """
    merged = {_key(e): e for e in shipped_pricebook()}
    merged.update({_key(e): e for e in user_entries(session)})
    return sorted(merged.values(), key=lambda e: _key(e)[:2])


def upsert_entries(session: Session, entries: list[PriceEntry]) -> int:
    """Add or replace user entries; returns how many were written (none if one is out of range)."""
    for entry in entries:
        check_entry(entry)
    existing = {
        (r.provider, r.instance_type.lower(), r.region): r
        for r in session.scalars(select(PriceBookEntry))
    }
    now = datetime.now(UTC)
    for entry in entries:
        row = existing.get(_key(entry))
        if row is None:
            row = PriceBookEntry(updated_at=now)
            session.add(row)
        for name in _FIELDS:
            setattr(row, name, getattr(entry, name))
        row.updated_at = now
    session.flush()
    # Every hour priced (or left unpriced) by the price book is re-priced with the new entries.
    cost_dirty.mark_ledger(session, sources=["estimated", "onprem", "unpriced"],
                           instance_types=[e.instance_type for e in entries])  # fmt: skip
    return len(entries)


def import_pricebook(session: Session, path: Path) -> int:
    """Load a price book CSV (the shipped file's columns) into the user entries."""
    return upsert_entries(session, read_pricebook(path))


class PriceBook:
    """Lookups for the cost engine: exact region first, then any region of the instance type."""

    def __init__(self, entries: list[PriceEntry]) -> None:
        self.exact = {_key(e): e for e in entries}
        self.any_region: dict[tuple[str, str], PriceEntry] = {}
        for e in entries:
            self.any_region.setdefault((e.provider, e.instance_type.lower()), e)

    def find(
        self, provider: str | None, instance_type: str | None, region: str | None
    ) -> PriceEntry | None:
        if not instance_type:
            return None
        p, t = (provider or "").lower(), instance_type.lower()
        return self.exact.get((p, t, region or "")) or self.any_region.get((p, t))


def load_pricebook(session: Session) -> PriceBook:
    return PriceBook(list_entries(session))
