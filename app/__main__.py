"""``python -m app``: the same as the ``gpuledger`` command."""

from app.cli import main

raise SystemExit(main())
