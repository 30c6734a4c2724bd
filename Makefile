.PHONY: demo test lint install

# Run the whole system locally: server, in-process jobs, simulated fleet (SQLite, no Redis).
demo: install
	.venv/bin/gpuledger demo --port $${PORT:-8765} --data-dir $${DATA_DIR:-.gpuledger}

# Run the test suite (PostgreSQL / Redis legs when they answer locally).
test:
	bash scripts/test.sh

lint: install
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .
	.venv/bin/mypy app agent tests bench

install:
	bash scripts/bootstrap.sh
