"""Billing errors.

AppError
├── BillingFileRejected (422)   the file is rejected whole; detail lists rows and columns
├── PayloadInvalid (422)
│   └── PriceEntryError          a price book entry out of range (also a ValueError)
└── NotFound
    └── ImportNotFound (404)
"""

from __future__ import annotations

from app.errors import AppError, NotFound
from app.kit.validation import PayloadInvalid


class BillingFileRejected(AppError):
    status_code = 422
    error = "billing_file_rejected"


class ImportNotFound(NotFound):
    error = "billing_import_not_found"


class PriceEntryError(PayloadInvalid, ValueError):
    """A price book entry with a value out of range; ``field`` names it."""

    error = "price_entry_invalid"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, detail=[{"field": field, "message": message}])
        self.field = field
