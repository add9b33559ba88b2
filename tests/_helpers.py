"""Helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

from udl.engine import results

#: toy claims for the executor and cache tests (slow cells, cells that fail, …)
EXEC_PACKAGE = str(Path(__file__).resolve().parent / "toy_claims_exec")


def claims_section(result) -> str:
    """The deterministic ``claims`` section of a run's results.json, as text."""
    return json.dumps(results.run_document(result)["claims"], sort_keys=True, allow_nan=True)


def tables_csv(result) -> dict[str, str]:
    """Each claim's table as CSV text."""
    return {cid: r.table.to_csv(index=False, lineterminator="\n") for cid, r in result.claims.items()}
