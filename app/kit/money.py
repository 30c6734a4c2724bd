"""Money columns: exact decimals on every dialect (SQLite has no decimal type, so it stores text)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

MONEY_PRECISION = 38
MONEY_SCALE = 18  # bills carry up to 10 decimals; rates and spread-out daily charges need more


class Money(TypeDecorator[Decimal]):
    """NUMERIC(38, 18) on PostgreSQL; exact decimal text on SQLite (its NUMERIC would be a float)."""

    impl = Numeric(MONEY_PRECISION, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(48))
        return dialect.type_descriptor(Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            if isinstance(value, float):
                raise TypeError("money must be a Decimal or a string, never a float")
            value = Decimal(value)
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(value)


def money_text(value: Decimal) -> str:
    """A Decimal as plain text (no exponent), as stored on SQLite and sent through COPY."""
    return format(value, "f")


# ISO 4217 minor units that are not 2 (everything else has cents).
_MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3, "CLF": 4, "UYW": 4,
}  # fmt: skip


def minor_unit(currency: str) -> int:
    """Digits after the decimal point in ``currency``'s minor unit (USD 2, JPY 0, KWD 3)."""
    return _MINOR_UNITS.get(currency.upper(), 2)


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_unit(currency))


def round_money(value: Decimal, currency: str) -> Decimal:
    """``value`` rounded half-even to the currency's minor unit."""
    return value.quantize(quantum(currency), rounding=ROUND_HALF_EVEN)


def round_parts(
    parts: Sequence[Decimal], currency: str, total: Decimal | None = None
) -> list[Decimal]:
    """Round each part to the minor unit so that they add up exactly to the rounded total
    (largest remainder: the parts that lost most to rounding down get the spare units).

    ``total`` defaults to the exact sum of the parts.
    """
    q = quantum(currency)
    target = round_money(sum(parts, Decimal(0)) if total is None else total, currency)
    floors = [(p / q).to_integral_value(rounding=ROUND_FLOOR) for p in parts]
    spare = int(target / q - sum(floors, Decimal(0)))
    # Largest fractional remainder first; ties go to the larger part, then to the earlier one.
    order = sorted(range(len(parts)), key=lambda i: (-(parts[i] / q - floors[i]), -parts[i], i))
    units = list(floors)
    if spare >= 0:
        for i in order[:spare]:
            units[i] += 1
    else:  # only when an explicit total is below the parts' sum
        for i in reversed(order[:-spare] if -spare <= len(order) else order):
            units[i] -= 1
    return [(u * q).quantize(q) for u in units]


def round_columns(
    rows: Mapping[str, Mapping[str, Decimal]], columns: Sequence[str], currency: str
) -> dict[str, dict[str, Decimal]]:
    """Each money column of a table rounded with ``round_parts``: the rows of every column add
    up to that column's rounded total. Rows keep their order; other columns are left out."""
    names = list(rows)
    out: dict[str, dict[str, Decimal]] = {n: {} for n in names}
    for column in columns:
        for name, value in zip(names, round_parts([rows[n][column] for n in names], currency),
                               strict=True):  # fmt: skip
            out[name][column] = value
    return out


def money_str(value: Decimal, currency: str) -> str:
    """A rounded amount as plain text with exactly the minor unit's digits ("12.30")."""
    return format(round_money(value, currency), "f")


# Active ISO 4217 codes (list one, SIX, 2025), plus ANG, CUC, SLL and ZWL, withdrawn recently
# enough to appear on older bills; XTS (testing) and XXX (no currency) are left out.
_ISO_4217_TEXT = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP
    ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK
    JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK
    MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN
    PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB
    TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG
    XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG ZWL
"""
ISO_4217_CODES = frozenset(_ISO_4217_TEXT.split())
