"""The independence check of a cell's table: no two instances may be copies of each other.

Every decision rule assumes independent instances. A simulation that ignores its seeds (or
reuses one draw for several instances) produces instances that agree *exactly* in every
measurement, which no random draw of continuous quantities does; a decision from them would
rest on one instance counted n times (and a spread-estimating rule would see zero spread). The
runner therefore checks each cell's table before deciding (:func:`check_independent`): when two
instances agree exactly in every measurement column, the claim ends in ERROR.

What is compared. An instance's *block* is its rows (in table order) restricted to the
*measurement columns*: every column except the engine columns (claim, control, cell, seed,
instance) and the cell's parameters, which are constant by construction. Columns that are
constant across instances for a good reason (a T or λ grid, a value computed from the cell)
do not hide a duplicate: a block is compared as a whole, so the instances still differ in their
measured values. Exact ties between independent instances are expected in *discrete*
measurements (counts, flags, a rate over few trials): the check runs only when the table has a
*continuous* measurement — a float column the claim does not list in ``discrete_columns`` —
and a claim whose measurements are all discrete declares them there.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from udl.engine.cells import RESERVED, is_cell
from udl.engine.stats import DegenerateSampleError

__all__ = ["measurement_columns", "continuous_columns", "duplicate_instances", "check_independent",
           "NAMED_DUPLICATES"]

#: How many duplicate groups an error message names (the rest are counted).
NAMED_DUPLICATES = 3


def _parameter_names(cell) -> set[str]:
    """Every parameter name of a cell: a Cell's fields, a dict's keys."""
    if cell is None:
        return set()
    return {f.name for f in dataclasses.fields(cell)} if is_cell(cell) else set(cell)


def measurement_columns(table: pd.DataFrame, cell=None) -> list[str]:
    """The columns of ``table`` that hold measurements: all but the engine columns, ``instance``
    and the parameters of ``cell``."""
    exempt = set(RESERVED) | _parameter_names(cell)
    return [c for c in table.columns if c not in exempt]


def continuous_columns(table: pd.DataFrame, cell=None, discrete=frozenset()) -> list[str]:
    """Float measurement columns not declared discrete: values independent instances never share."""
    return [c for c in measurement_columns(table, cell)
            if c not in discrete and pd.api.types.is_float_dtype(table[c])]


def duplicate_instances(table: pd.DataFrame, cell=None, discrete=frozenset()) -> list[list[int]]:
    """Groups of instances of one cell's table whose blocks are identical.

    Parameters
    ----------
    table : pandas.DataFrame
        One cell's table (claim or control rows, not both), with an ``instance`` column.
    cell : Cell or dict, optional
        The cell, whose parameter columns are not measurements.
    discrete : collection of str
        Measurement columns whose values instances may share (``Claim.discrete_columns``).

    Returns
    -------
    list of list of int
        Each group (sorted instance numbers, two or more) of identical instances; empty when
        every instance differs, when there are fewer than two instances, or when the table has
        no continuous measurement column.
    """
    columns = measurement_columns(table, cell)
    if table["instance"].nunique() < 2 or not continuous_columns(table, cell, discrete):
        return []
    rows = pd.util.hash_pandas_object(table[columns], index=False)  # one uint64 per row
    signatures: dict[tuple, list[int]] = {}
    for instance, hashes in rows.groupby(table["instance"].to_numpy(), sort=True):
        signatures.setdefault(tuple(hashes.tolist()), []).append(int(instance))
    groups = []
    for members in signatures.values():  # confirm hash matches on the values themselves
        if len(members) < 2:
            continue
        first = _block(table, columns, members[0])
        same = [m for m in members if _block(table, columns, m).equals(first)]
        if len(same) >= 2:
            groups.append(same)
    return sorted(groups)


def _block(table: pd.DataFrame, columns: list[str], instance: int) -> pd.DataFrame:
    return table.loc[table["instance"] == instance, columns].reset_index(drop=True)


def check_independent(table: pd.DataFrame, cell=None, discrete=frozenset(), *, label: str = "cell") -> None:
    """Raise when two instances of one cell's table are copies (see :func:`duplicate_instances`).

    Parameters
    ----------
    table, cell, discrete
        As for :func:`duplicate_instances`.
    label : str
        Names the cell in the message (e.g. ``"cell 0 {'m': 20}"``).

    Raises
    ------
    udl.engine.stats.DegenerateSampleError
        Naming the cell, the identical instances and the compared columns.
    """
    groups = duplicate_instances(table, cell, discrete)
    if not groups:
        return
    named = "; ".join("instances " + ", ".join(map(str, g)) for g in groups[:NAMED_DUPLICATES])
    more = f" and {len(groups) - NAMED_DUPLICATES} more group(s)" if len(groups) > NAMED_DUPLICATES else ""
    columns = ", ".join(measurement_columns(table, cell))
    raise DegenerateSampleError(
        f"{label}: instances are not independent: {named}{more} agree exactly in every measurement "
        f"({columns}) — does simulate use seeds[i]? Columns whose values independent instances may share "
        "(counts, flags, grids, values computed from the cell) belong in the claim's discrete_columns")
