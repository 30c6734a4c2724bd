"""The monthly GPU spend report: read from the cost ledger, rendered as page, CSV, XLSX, JSON."""
