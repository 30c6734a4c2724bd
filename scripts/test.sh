#!/usr/bin/env bash
# Run GPU Ledger's test suite: creates .venv and installs the project on first use.
# PostgreSQL and Redis legs run when those servers answer locally (or their
# GPULEDGER_TEST_*_URL variables are set); otherwise they are skipped and the summary says so.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
eval "$(.venv/bin/python scripts/detect_services.py)"
exec .venv/bin/pytest -n "${PYTEST_WORKERS:-auto}" "$@"
