"""``python -m agent``: the node agent without the backend installed."""

from agent.cli import main

raise SystemExit(main())
