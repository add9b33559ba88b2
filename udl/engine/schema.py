"""Table schemas: the columns and column types a claim's ``simulate`` returns.

A claim may declare ``schema = {column: type}`` with types ``"float"``, ``"int"``, ``"bool"``
and ``"str"``. It lists every column ``simulate`` returns **except** ``instance`` (required by
the engine, checked by it) and the cell's parameters (the engine writes them from the cell);
the engine columns (``claim``, ``control``, ``cell``, ``seed``) are added afterwards and
are never in a simulate table. The negative control's tables must fit the same schema.

Types are those of the pandas column: ``"float"`` a floating dtype, ``"int"`` an integer
dtype, ``"bool"`` the boolean dtype, ``"str"`` an object (or string) column whose values are
strings or missing. An int column is not a float column (nor the reverse): the type is what
the CSV table and the decide functions see.

Each table is checked when it is produced (:func:`check_table`); a mismatch makes the cell
an ERROR whose message names the claim, the column, the expected and the found type.
A claim without a schema is not checked (legacy).
"""

from __future__ import annotations

from typing import Iterable, Mapping

import pandas as pd
from pandas.api import types as ptypes

from udl.engine.cells import RESERVED

__all__ = ["SCHEMA_TYPES", "check_schema", "column_type", "check_table"]

#: Column types a schema may declare.
SCHEMA_TYPES = ("float", "int", "bool", "str")


def check_schema(schema, where: str) -> list[str]:
    """What is wrong with a schema declaration (empty when it is well formed).

    Parameters
    ----------
    schema : mapping
        ``{column: type}``, types from :data:`SCHEMA_TYPES`.
    where : str
        Names the claim in the messages.
    """
    if not isinstance(schema, Mapping) or not schema:
        return [f"{where}: schema must be a non-empty dict {{column: type}}, got {schema!r}"]
    problems = []
    for column, kind in schema.items():
        if not isinstance(column, str) or column in RESERVED:
            problems.append(f"{where}: schema column {column!r} is not a string or is reserved ({RESERVED})")
        if kind not in SCHEMA_TYPES:
            problems.append(f"{where}: schema column {column!r} has type {kind!r} "
                            f"(allowed: {', '.join(SCHEMA_TYPES)})")
    return problems


def column_type(column: pd.Series) -> str:
    """The schema type a column holds (``"float"``, ...), or a description of what it holds.

    Object columns are ``"str"`` when every value present is a string (missing values, NaN
    or None, are allowed: long tables leave the columns of other rows empty), else
    ``"object (<types>)"``.
    """
    if ptypes.is_bool_dtype(column):
        return "bool"
    if ptypes.is_integer_dtype(column):
        return "int"
    if ptypes.is_float_dtype(column):
        return "float"
    if ptypes.is_string_dtype(column) or ptypes.is_object_dtype(column):
        found = sorted({type(v).__name__ for v in column.dropna()})
        return "str" if set(found) <= {"str"} else f"object ({', '.join(found)})"
    return str(column.dtype)


def check_table(table: pd.DataFrame, schema: Mapping[str, str], claim_id: str,
                exempt: Iterable[str] = ()) -> None:
    """Check a simulate() table against a claim's schema.

    Parameters
    ----------
    table : pandas.DataFrame
        As returned by ``simulate``.
    schema : mapping
        ``{column: type}``.
    claim_id : str
        Names the claim in the message.
    exempt : iterable of str
        Columns the schema does not cover besides ``instance``: the cell parameters.

    Raises
    ------
    ValueError
        A declared column is missing, a column is not declared, or a column has another
        type; the message names the claim, the column, the expected and the found type.
    """
    exempt = {"instance", *exempt}
    problems = []
    for column, kind in schema.items():
        if column not in table.columns:
            problems.append(f"column {column!r} is missing (expected {kind})")
        else:
            found = column_type(table[column])
            if found != kind:
                problems.append(f"column {column!r}: expected {kind}, found {found}")
    undeclared = [c for c in table.columns if c not in schema and c not in exempt]
    problems += [f"column {c!r} ({column_type(table[c])}) is not in the schema" for c in undeclared]
    if problems:
        raise ValueError(f"{claim_id}: simulate() table does not fit the schema: {'; '.join(problems)}")
