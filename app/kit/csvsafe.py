"""Cells for CSV and XLSX exports that a spreadsheet will not run as formulas.

OWASP "CSV Injection": a text cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage
return is prefixed with a single quote, so Excel and LibreOffice show it as text. Numbers are
left alone: a negative amount is a number, not a formula.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: T) -> T | str:
    """``value`` with a leading quote when it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
