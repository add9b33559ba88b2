"""``python -m udl``: the same as the ``udl`` command."""

from udl.app.cli import main

raise SystemExit(main())
