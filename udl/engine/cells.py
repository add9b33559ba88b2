"""Parameter cells: typed cells, their canonical form, and the instance seeds derived from it.

A *cell* is one point of a claim's parameter grid. A claim declares its parameters as
``Cell``, a frozen dataclass whose fields are scalars or strings (``float``, ``int``,
``bool``, ``str``)::

    @dataclass(frozen=True)
    class Cell:
        m: int
        lam: float
        sign: str = "independent"

and its profiles list ``Cell`` instances; ``simulate`` then receives the instance
(``cell.lam``). Profiles may still list plain dicts: they are converted to ``Cell``
(:func:`as_cell`). A claim without ``Cell`` (legacy) keeps dict cells throughout.

The **canonical form** of a cell (:func:`canonical_cell`) is the JSON of its *named*
parameters: for a dict, its keys; for a ``Cell``, its fields, except those whose value is
their declared default — exactly as a dict cell that does not name an optional key. So a
field with a default plays the role of ``cell.get(key, default)``, and a ``Cell`` has the
canonical form (hence the seeds, table columns and results) of the dict that names the same
parameters. The named parameters (:func:`cell_dict`) become the cell's table columns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Mapping

import numpy as np

from udl.engine.stats import to_builtin

__all__ = [
    "ENGINE_COLUMNS",
    "CELL_TYPES",
    "canonical_cell",
    "cell_dict",
    "instance_seeds",
    "is_cell",
    "as_cell",
    "check_cell_class",
    "check_cell",
]

#: Columns the engine adds to every simulate() table, in this order, before the cell keys.
ENGINE_COLUMNS = ("claim", "control", "cell", "seed")
#: Parameter names a cell may not use: the engine columns and the instance index.
RESERVED = (*ENGINE_COLUMNS, "instance")
#: Types a Cell field may declare, by name, and the values each accepts. A float field does
#: not accept an int: 1 and 1.0 have different canonical forms, hence different seeds.
CELL_TYPES = {
    "float": (float, np.floating),
    "int": (int, np.integer),
    "bool": (bool, np.bool_),
    "str": (str,),
}
#: Bits of the sha256 digest used per spawn-key word (SeedSequence takes arbitrary ints;
#: 64 bits make collisions between claim ids or cells negligible).
_KEY_BYTES = 8


# --------------------------------------------------------------------------- canonical form
def is_cell(value) -> bool:
    """True for a dataclass instance (a typed cell), False for a mapping or a class."""
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _at_default(field: dataclasses.Field, value) -> bool:
    if field.default is dataclasses.MISSING:
        return False
    value = to_builtin(value)
    return type(value) is type(field.default) and value == field.default


def cell_dict(cell) -> dict:
    """The named parameters of a cell, in declaration order.

    Parameters
    ----------
    cell : Cell instance or mapping

    Returns
    -------
    dict
        A mapping's items; a ``Cell``'s fields except those at their declared default.
    """
    if is_cell(cell):
        return {f.name: getattr(cell, f.name) for f in dataclasses.fields(cell)
                if not _at_default(f, getattr(cell, f.name))}
    return dict(cell)


def canonical_cell(cell) -> str:
    """Canonical JSON of a cell's named parameters: sorted keys, no spaces, numpy scalars as builtins."""
    return json.dumps(to_builtin(cell_dict(cell)), sort_keys=True, separators=(",", ":"), allow_nan=True)


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:_KEY_BYTES], "big")


def instance_seeds(root_seed: int, claim_id: str, cell, n: int) -> list[int]:
    """Seeds of the first ``n`` instances of a claim's cell.

    ``SeedSequence(entropy=root_seed, spawn_key=(h(claim_id), h(canonical_cell(cell))))
    .spawn(n)``, each child turned into a 63-bit integer; h is the first 64 bits of sha256.
    The seeds depend on nothing else (not on other claims, their order, the profile, the
    executor), and the first k seeds of n > k are those of k.

    Parameters
    ----------
    root_seed : int
        The run's seed (>= 0).
    claim_id : str
    cell : Cell instance or mapping
        The parameter cell.
    n : int
        Number of instances.

    Returns
    -------
    list of int
        ``n`` seeds in [0, 2**63).
    """
    if int(root_seed) < 0:
        raise ValueError(f"root seed must be >= 0, got {root_seed}")
    key = (_stable_int(claim_id), _stable_int(canonical_cell(cell)))
    children = np.random.SeedSequence(entropy=int(root_seed), spawn_key=key).spawn(int(n))
    return [int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for child in children]


# --------------------------------------------------------------------------- typed cells
def _type_name(field: dataclasses.Field) -> str:
    """A field's declared type as a name ("float"), whether annotated as a class or a string."""
    return field.type if isinstance(field.type, str) else getattr(field.type, "__name__", repr(field.type))


def _accepts(type_name: str, value) -> bool:
    if type_name in ("int", "float") and isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, CELL_TYPES[type_name])


def check_cell_class(cell_class, where: str) -> list[str]:
    """What is wrong with a claim's ``Cell`` declaration (empty when it is well formed).

    Parameters
    ----------
    cell_class : type
        Must be a frozen dataclass whose fields are typed float, int, bool or str and are
        not named like an engine column or ``instance``.
    where : str
        Names the claim in the messages.
    """
    if not (isinstance(cell_class, type) and dataclasses.is_dataclass(cell_class)):
        return [f"{where}: Cell {cell_class!r} is not a dataclass"]
    problems = []
    if not cell_class.__dataclass_params__.frozen:
        problems.append(f"{where}: Cell must be a frozen dataclass (@dataclass(frozen=True))")
    for field in dataclasses.fields(cell_class):
        type_name = _type_name(field)
        if field.name in RESERVED:
            problems.append(f"{where}: Cell field {field.name!r} is reserved (engine columns: {RESERVED})")
        if type_name not in CELL_TYPES:
            problems.append(f"{where}: Cell field {field.name!r} has type {type_name!r} "
                            f"(allowed: {', '.join(CELL_TYPES)})")
        elif field.default is not dataclasses.MISSING and not _accepts(type_name, field.default):
            problems.append(f"{where}: Cell field {field.name!r} default {field.default!r} is not a {type_name}")
    return problems


def _check_values(pairs, types: Mapping[str, str], where: str) -> list[str]:
    problems = []
    for name, value in pairs:
        if name not in types:
            problems.append(f"{where}: unknown cell field {name!r} (= {value!r}; fields: {', '.join(types)})")
        elif not _accepts(types[name], value):
            problems.append(f"{where}: cell field {name!r} = {value!r} is a {type(value).__name__}, "
                            f"expected {types[name]}")
    return problems


def check_cell(cell, cell_class, where: str) -> list[str]:
    """What is wrong with one profile cell (empty when it is fine).

    Parameters
    ----------
    cell : Cell instance or mapping
    cell_class : type or None
        The claim's ``Cell``; None (a legacy claim): any mapping of scalars/strings.
    where : str
        Names the claim and profile in the messages.
    """
    if cell_class is None:
        if not isinstance(cell, Mapping):
            return [f"{where}: cell {cell!r} is not a dict (the claim declares no Cell)"]
        problems = []
        for key, value in cell.items():
            if not isinstance(key, str) or key in RESERVED:
                problems.append(f"{where}: cell key {key!r} is not a string or is reserved")
            if not isinstance(value, (str, bool, int, float, np.integer, np.floating, np.bool_)):
                problems.append(f"{where}: cell value {key}={value!r} is not a scalar or string")
        return problems
    fields = dataclasses.fields(cell_class)
    types = {f.name: _type_name(f) for f in fields}
    if isinstance(cell, Mapping):
        problems = _check_values(cell.items(), types, where)
        missing = [f.name for f in fields if f.name not in cell
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            problems.append(f"{where}: cell {dict(cell)!r} is missing field(s) {', '.join(missing)}")
        return problems
    if type(cell) is not cell_class:
        return [f"{where}: cell {cell!r} is a {type(cell).__qualname__}, not the claim's Cell"]
    return _check_values(((f.name, getattr(cell, f.name)) for f in fields), types, where)


def as_cell(cell, cell_class):
    """A profile cell as the claim's ``Cell`` (a mapping is converted), or a dict copy when the
    claim declares no ``Cell``."""
    if cell_class is None:
        return dict(cell)
    if isinstance(cell, Mapping):
        return cell_class(**cell)
    return cell
