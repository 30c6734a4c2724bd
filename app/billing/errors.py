"""Billing errors.

AppError
├── BillingFileRejected (422)   the file is rejected whole; detail lists rows and columns
└── NotFound
    └── ImportNotFound (404)
"""

from __future__ import annotations

from app.errors import AppError, NotFound


class BillingFileRejected(AppError):
    status_code = 422
    error = "billing_file_rejected"


class ImportNotFound(NotFound):
    error = "billing_import_not_found"
