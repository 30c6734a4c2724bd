"""``gpuledger``: server, database, credentials, demo and agent commands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.config import DEFAULT_DATA_DIR, configure


class _Sub:
    """Subcommands that all accept the common options (``--data-dir``) after their name."""

    def __init__(self, group: Any, common: argparse.ArgumentParser) -> None:
        self.group = group
        self.common = common

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self.group.add_parser(
            name, parents=[self.common], **kwargs
        )
        return parser


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"where the embedded SQLite database lives (default {DEFAULT_DATA_DIR}; "
        "GPULEDGER_DATABASE_URL selects PostgreSQL instead)",
    )
    p = argparse.ArgumentParser(
        prog="gpuledger",
        description="GPU Ledger: what every GPU-hour cost, what it did, and who should hear about the waste.",
        parents=[common],
    )
    sub = _Sub(p.add_subparsers(dest="command", metavar="COMMAND", required=True), common)

    demo = sub.add_parser("demo", help="run server + simulated fleet locally (SQLite, no Redis)")
    demo.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")

    serve = sub.add_parser("serve", help="run the API and web server")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")

    db = sub.add_parser("db", help="database schema (Alembic)")
    db_sub = _Sub(db.add_subparsers(dest="db_command", required=True, metavar="ACTION"), common)
    up = db_sub.add_parser("upgrade", help="migrate to the latest schema (or --revision)")
    up.add_argument("--revision", default="head")
    down = db_sub.add_parser("downgrade", help="migrate down to --revision (default: base)")
    down.add_argument("--revision", default="base")
    db_sub.add_parser("check", help="fail if models and migrations disagree")

    token = sub.add_parser("token", help="node tokens for agents")
    token_sub = _Sub(
        token.add_subparsers(dest="token_command", required=True, metavar="ACTION"), common
    )
    tc = token_sub.add_parser("create", help="issue a token for a node; printed once")
    tc.add_argument("--node", required=True, help="node name (the agent's --node-name)")

    key = sub.add_parser("apikey", help="API keys for people and tools")
    key_sub = _Sub(
        key.add_subparsers(dest="apikey_command", required=True, metavar="ACTION"), common
    )
    kc = key_sub.add_parser("create", help="issue an API key; printed once")
    kc.add_argument("--name", required=True, help="who or what the key is for")
    kc.add_argument("--role", default="viewer", choices=["viewer", "finance", "sre", "admin"])

    from app.billing.cli import add_parsers as add_billing_parsers

    add_billing_parsers(sub)

    from app.reports.cli import add_parsers as add_report_parsers

    add_report_parsers(sub)

    sub.group.add_parser(
        "agent", help="run the node agent (gpuledger agent --help)", add_help=False
    )
    return p


def _command_index(argv: list[str]) -> int | None:
    i = 0
    while i < len(argv):
        if argv[i] == "--data-dir":
            i += 2
        elif argv[i].startswith("-"):
            i += 1
        else:
            return i
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The agent has its own parser and must not need the backend's settings.
    at = _command_index(argv)
    if at is not None and argv[at] == "agent":
        from agent.cli import main as agent_main

        return agent_main(argv[at + 1 :])
    args = _parser().parse_args(argv)
    if getattr(args, "data_dir", None) is not None:
        configure(data_dir=args.data_dir)
    return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from app.demo import run_demo

        run_demo(
            data_dir=getattr(args, "data_dir", DEFAULT_DATA_DIR), host=args.host, port=args.port
        )
        return 0
    if args.command == "db":
        from app import migrate

        if args.db_command == "upgrade":
            migrate.upgrade(revision=args.revision)
        elif args.db_command == "downgrade":
            migrate.downgrade(revision=args.revision)
        else:
            migrate.check()
            print("models and migrations agree")
        return 0
    from app import migrate

    try:
        migrate.ensure_current()
    except migrate.SchemaOutOfDate as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.command == "serve":
        import uvicorn

        if getattr(args, "data_dir", None) is not None:
            # Worker processes import the app afresh and read their settings from the
            # environment, so the data directory must travel there too.
            os.environ["GPULEDGER_DATA_DIR"] = str(args.data_dir)
        uvicorn.run("app.asgi:app", host=args.host, port=args.port, workers=args.workers)
        return 0
    if args.command in ("billing", "pricebook"):
        from app.billing import cli as billing_cli

        run = billing_cli.run_billing if args.command == "billing" else billing_cli.run_pricebook
        return run(args)
    if args.command == "report":
        from app.reports import cli as reports_cli

        return reports_cli.run_report(args)
    from app.auth import service as auth_service
    from app.db import session_scope

    with session_scope() as session:
        if args.command == "token":
            issued = auth_service.create_node_token(session, node_name=args.node)
            print(issued.secret)
            print(f"token for node {args.node!r}; it is shown only now", file=sys.stderr)
        else:
            issued = auth_service.create_api_key(
                session, name=args.name, role=auth_service.Role(args.role)
            )
            print(issued.secret)
            print(f"{args.role} key for {args.name!r}; it is shown only now", file=sys.stderr)
    return 0
