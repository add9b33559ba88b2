"""What the runner checks and records around a claim's decision, beyond the verdict itself.

- :func:`check_cells`: no two instances of a cell are copies (:mod:`udl.engine.independence`);
  otherwise the claim (or its control) ends in ERROR before anything is decided.
- :func:`check_evidence`: a claim of kind ``"deterministic"`` decides with a deterministic check
  (``Verdict.evidence == "deterministic"``), every other kind with a statistical rule.
- :func:`reported_only_reason`: at a profile outside the claim's ``decides_at`` the claim is
  *reported, not decided* (INCONCLUSIVE, expected, outside the Holm family) and this says why.
- :func:`cell_hypotheses`: the theorem's hypotheses on each cell (``Claim.hypotheses``), as
  recorded in results.json.
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from udl.engine.anatomy import Claim
from udl.engine.cells import canonical_cell, cell_dict
from udl.engine.independence import check_independent
from udl.engine.stats import Hypothesis, Verdict, to_builtin

__all__ = ["REPORTED_ONLY", "check_cells", "check_evidence", "reported_only_reason", "cell_hypotheses"]

#: The reason recorded for a claim run at a profile outside its ``decides_at``.
REPORTED_ONLY = "profile {profile} stops before the regime this claim needs: reported, not decided"


def check_cells(claim: Claim, cells: Iterable[tuple[int, object, pd.DataFrame]]) -> None:
    """Check every cell's table for duplicate instances.

    Parameters
    ----------
    claim : Claim
        Its ``discrete_columns`` are exempt from the continuity requirement.
    cells : iterable of (cell index, cell, table)
        One cell's annotated table each (claim rows or control rows, not both).

    Raises
    ------
    udl.engine.stats.DegenerateSampleError
        Two instances of some cell agree exactly in every measurement.
    """
    for index, cell, table in cells:
        check_independent(table, cell, claim.discrete_columns, label=f"cell {index} {canonical_cell(cell)}")


def check_evidence(claim: Claim, verdict: Verdict) -> None:
    """Raise ``TypeError`` when the verdict's evidence does not match the claim's kind."""
    expected = "deterministic" if claim.kind == "deterministic" else "statistical"
    if verdict.evidence != expected:
        how = ("stats.deterministic_check (an exact consequence has no p-value)" if expected == "deterministic"
               else "a statistical rule of udl.engine.stats (or declare kind = 'deterministic')")
        raise TypeError(f"a claim of kind {claim.kind!r} must decide with {how}; decide() returned a "
                        f"{verdict.evidence} verdict")


def reported_only_reason(claim: Claim, profile: str) -> str | None:
    """Why the claim is only reported at ``profile`` (None when it decides there)."""
    return None if profile in claim.decides_at else REPORTED_ONLY.format(profile=profile)


def cell_hypotheses(claim: Claim, cells: Iterable[tuple[int, object, pd.DataFrame]]) -> list[dict]:
    """The claim's hypotheses on each cell, as recorded in results.json.

    Parameters
    ----------
    claim : Claim
    cells : iterable of (cell index, cell, table)
        The claim's cells (not the control's), each with its annotated table.

    Returns
    -------
    list of dict
        ``{"cell": index, "parameters": {...}, "hypotheses": [Hypothesis.to_dict(), ...],
        "inside": bool}`` per cell, in cell order; ``inside`` is True when every hypothesis
        holds. Empty when the claim declares none.

    Raises
    ------
    TypeError
        ``hypotheses()`` returned something other than a list of Hypothesis.
    """
    records = []
    for index, cell, table in cells:
        found = claim.hypotheses(cell, table.copy())
        if not isinstance(found, (list, tuple)) or not all(isinstance(h, Hypothesis) for h in found):
            raise TypeError(f"hypotheses() of cell {index} returned {found!r}, not a list of stats.Hypothesis")
        if found:
            records.append({"cell": index, "parameters": to_builtin(cell_dict(cell)),
                            "hypotheses": [h.to_dict() for h in found], "inside": all(h.holds for h in found)})
    return records
