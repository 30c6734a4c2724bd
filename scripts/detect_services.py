"""Print ``export`` lines for the test legs whose services answer locally.

Used by ``scripts/test.sh`` so that a developer with PostgreSQL and Redis running gets the full
suite without setting anything; variables already set are left alone.
"""

from __future__ import annotations

import os
import shlex

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def postgres_ok(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
            # The tests create and drop their own databases.
            row = conn.execute(
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            return bool(row and row[0])
    except psycopg.Error:
        return False


def redis_ok(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def main() -> None:
    checks = (
        ("GPULEDGER_TEST_POSTGRES_URL", DEFAULT_POSTGRES, postgres_ok),
        ("GPULEDGER_TEST_REDIS_URL", DEFAULT_REDIS, redis_ok),
    )
    for env, default, ok in checks:
        if not os.environ.get(env) and ok(default):
            print(f"export {env}={shlex.quote(default)}")  # noqa: T201


if __name__ == "__main__":
    main()
