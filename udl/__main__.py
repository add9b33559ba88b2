"""``python -m udl``: the same as the ``udl`` command."""

from udl.cli import main

raise SystemExit(main())
