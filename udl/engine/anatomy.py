"""Claim anatomy: what a claim declares (:class:`Claim`), where it computes (:class:`Context`),
and the check of a declaration (:func:`check_claim`).

A *claim* is a falsifiable consequence of a theorem. A claim module in ``claims/`` defines one
or more :class:`Claim` subclasses; each says what it simulates (``simulate``: a tidy table, one
row per instance × measurement), how it decides (``decide``: a pure function of that table to
a :class:`~udl.engine.stats.Verdict`) and what its negative control is (``simulate`` under
``Context(control=True)``; the control must FAIL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, ClassVar, Mapping

import numpy as np
import pandas as pd
import torch

from udl.engine import schema as _schema
from udl.engine.cells import as_cell, check_cell, check_cell_class
from udl.engine.defaults import PROFILES
from udl.engine.stats import Verdict

__all__ = [
    "PROFILES",
    "CLAIM_KINDS",
    "DEVICES",
    "ID_PATTERN",
    "Context",
    "check_device",
    "Claim",
    "ClaimDefinitionError",
    "CertificateError",
    "check_claim",
]

#: What a claim asserts: an identity, a probability, an ordering of estimators, a rate, or an
#: exact (algebraic) consequence checked against a rounding budget (``"deterministic"``: decided
#: by :func:`~udl.engine.stats.deterministic_check` only, never by a statistical test).
#: (Not the estimator kinds of :data:`udl.core.KINDS`.)
CLAIM_KINDS = ("identity", "probabilistic", "ordering", "rate", "deterministic")
#: Torch device types a run may use (``cuda`` optionally with an index, ``cuda:1``).
DEVICES = ("cpu", "cuda")
#: Claim ids become file names (tables/<id>.csv.gz) and CLI tokens: keep them plain.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Context:
    """Where and how a claim computes.

    Parameters
    ----------
    device : str
        Torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
    dtype : torch.dtype
        Floating dtype of the simulation.
    encoder : object, optional
        Encoder under test; ``None`` means the reference ISTA (claims resolve it).
    control : bool
        True: run the claim's negative control instead.
    progress : callable, optional
        Claims may call it with the number of work units done.
    mutant : str, optional
        Name of a mutant of :mod:`udl.engine.mutants`: the cell task runs ``simulate`` with
        that bug installed (in the worker); such a cell is never cached.
    """

    device: str = "cpu"
    dtype: torch.dtype = torch.float64
    encoder: object | None = None
    control: bool = False
    progress: Callable[[int], None] | None = None
    mutant: str | None = None

    def encoder_under_test(self):
        """``encoder`` if one was given, else the reference :class:`udl.ISTA`."""
        from udl.core.encoders import ISTA

        return ISTA() if self.encoder is None else self.encoder


def check_device(device: str) -> str:
    """Check that a torch device name is valid and present on this machine.

    Parameters
    ----------
    device : str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns
    -------
    str
        ``device`` unchanged.

    Raises
    ------
    ValueError
        The name is malformed, CUDA is not available, or the index is out of range; the
        message names the device and what is allowed.
    """
    kind, _, index = str(device).partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"invalid device {device!r} (allowed: cpu, cuda, cuda:N)")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{device!r} requested but CUDA is not available (allowed here: cpu)")
        if index and int(index) >= count:
            raise ValueError(f"{device!r} but only {count} CUDA device(s) "
                             f"(allowed: cuda:0..cuda:{count - 1})")
    return device


class Claim:
    """Base class of a claim; subclass it in a module of ``claims/``.

    Class attributes (all required unless a default is shown): ``id`` (e.g. ``"A.3b"``),
    ``theorem`` (``"A.3"``), ``title``, ``statement`` (one paragraph, in the paper's
    notation), ``kind`` (one of :data:`CLAIM_KINDS`), ``alpha = 0.01`` (false-fail rate),
    ``beta = 0.05`` (miss rate at the declared effect), ``effect`` (smallest effect the
    design must detect and why n suffices), ``regime`` (sizes, λ, α, T, ω, n and why; where it
    leaves the theorem), ``control`` (the negative control, which must FAIL),
    ``requires = frozenset()`` (encoder capabilities), ``profiles`` (``{"quick": {"cells":
    [Cell(...), ...], "n_instances": int}, "ci": {...}, "paper": {...}}``).

    ``Cell = None``: a frozen dataclass of the cell parameters (fields typed float, int, bool
    or str; see :mod:`udl.engine.cells`). Profiles may list dicts, converted to ``Cell``.
    Without ``Cell`` (legacy) cells are dicts of scalars/strings, passed to ``simulate`` as dicts.

    ``schema = None``: ``{column: "float" | "int" | "bool" | "str"}`` for every column
    ``simulate`` returns except ``instance`` and the cell parameters; each table is checked
    against it when it is produced (see :mod:`udl.engine.schema`). Without it, unchecked.

    ``audit_sentences = {}``: ``{outcome or (outcome, encoder name): sentence}``, how the claim
    explains an encoder's outcome that differs from the reference ISTA in the encoder matrix
    (see :mod:`udl.engine.sentences`).

    ``control_mutant = None``: the name of a mutant (:mod:`udl.engine.mutants`). When set, the
    negative control is the claim's own ``simulate`` under that mutant (``ctx.control`` False,
    ``ctx.mutant`` the name) instead of ``simulate`` under ``Context(control=True)``.

    ``detects_errors = False``: True when the claim declares that an error of its simulation
    (a divergence, a solver that raises) is the failure it detects; ``udl mutate`` then counts
    an ERROR under a mutant as a kill (:mod:`udl.app.mutate`).

    ``decides_at = PROFILES``: the profiles whose sizes reach the regime the claim needs. At any
    other profile the claim is simulated and decided as usual but *reported, not decided*: its
    outcome is INCONCLUSIVE with the reason "profile X stops before the regime this claim
    needs", it is expected (``ok``; ``udl verify`` does not fail on it), and it stays out of the
    Holm family. An ERROR is never masked.

    ``discrete_columns = frozenset()``: measurement columns whose values independent instances
    may share exactly (counts, flags, rates of a few trials, values on a grid). The runner's
    independence check (:mod:`udl.engine.independence`) treats every other float column as
    continuous: two instances of a cell that agree exactly on all their measurements end the
    claim in ERROR ("instances are not independent").

    :meth:`hypotheses` (optional): the theorem's hypotheses evaluated on each cell, recorded per
    cell and shown by the report (which cells the theorem covers).

    Subclasses implement :meth:`simulate` and :meth:`decide`.
    """

    id: ClassVar[str]
    theorem: ClassVar[str]
    title: ClassVar[str]
    statement: ClassVar[str]
    kind: ClassVar[str]
    alpha: ClassVar[float] = 0.01
    beta: ClassVar[float] = 0.05
    effect: ClassVar[str]
    regime: ClassVar[str]
    control: ClassVar[str]
    requires: ClassVar[frozenset[str]] = frozenset()
    profiles: ClassVar[dict[str, dict]]
    Cell: ClassVar[type | None] = None
    schema: ClassVar[Mapping[str, str] | None] = None
    audit_sentences: ClassVar[Mapping] = {}
    decides_at: ClassVar[tuple[str, ...]] = PROFILES
    discrete_columns: ClassVar[frozenset[str]] = frozenset()
    control_mutant: ClassVar[str | None] = None
    detects_errors: ClassVar[bool] = False

    def simulate(self, cell, seeds: list[int], ctx: Context) -> pd.DataFrame:
        """Simulate ``len(seeds)`` independent instances of one parameter cell.

        Parameters
        ----------
        cell : Cell (or dict, for a claim that declares no Cell)
            Parameters of the cell.
        seeds : list of int
            One seed per instance; instance i must depend on ``seeds[i]`` only, so that
            ``simulate(cell, [seeds[i]], ctx)`` replays it.
        ctx : Context
            Device, dtype, encoder; ``ctx.control`` selects the negative control.

        Returns
        -------
        pandas.DataFrame
            Tidy table with a column ``instance`` (0..len(seeds)-1, each present) and the
            measurements; may be long format (extra index columns such as ``T``).
        """
        raise NotImplementedError

    def decide(self, table: pd.DataFrame) -> Verdict:
        """Decide from the concatenated table of all cells (engine columns present).

        Must be a pure function of ``table`` (typically one call into :mod:`udl.engine.stats`).
        A claim of kind ``"deterministic"`` decides with :func:`~udl.engine.stats.deterministic_check`
        (a verdict with ``evidence="deterministic"``); every other kind with a statistical rule.
        """
        raise NotImplementedError

    def hypotheses(self, cell, table: pd.DataFrame) -> list:
        """The theorem's hypotheses on one cell (default: none declared).

        Called by the runner once per cell of the claim (not of its control), after the cell
        is simulated; must be a pure function of its arguments.

        Parameters
        ----------
        cell : Cell (or dict, for a claim that declares no Cell)
            Parameters of the cell (for hypotheses on the sizes, e.g. λ against s·log m/√m).
        table : pandas.DataFrame
            That cell's annotated table (claim rows only), for hypotheses on drawn quantities
            (e.g. the worst μ(2s − 1) over the instances from a ``coherence`` column).

        Returns
        -------
        list of udl.engine.stats.Hypothesis
            Typically built with :func:`udl.engine.stats.hypothesis`.
        """
        return []

    def cells(self, profile: str) -> list:
        """Parameter cells of ``profile``: ``Cell`` instances (dict copies without ``Cell``)."""
        return [as_cell(cell, self.Cell) for cell in self.profiles[profile]["cells"]]

    def n_instances(self, profile: str) -> int:
        """Independent instances per cell at ``profile``."""
        return int(self.profiles[profile]["n_instances"])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self, 'id', '?')}>"


class ClaimDefinitionError(ValueError):
    """A claim module or class does not follow the claim anatomy."""


class CertificateError(RuntimeError):
    """A reference quantity whose certificate fails (e.g. a lasso solution whose KKT residual
    exceeds its tolerance): nothing measured against it can be trusted.

    Raise it from ``simulate`` (or ``decide``) with a message naming the quantity, the
    certificate and its value; the claim ends in ERROR with that message.
    """


_TEXT_FIELDS = ("theorem", "title", "statement", "effect", "regime", "control")


def _check_profiles(name: str, profiles: dict, cell_class) -> list[str]:
    problems = []
    for profile in PROFILES:
        spec = profiles.get(profile)
        where = f"{name} profile {profile!r}"
        if not isinstance(spec, dict):
            problems.append(f"{where}: missing")
            continue
        cells, n = spec.get("cells"), spec.get("n_instances")
        if not isinstance(cells, list) or not cells:
            problems.append(f"{where}: cells must be a non-empty list")
        else:
            problems += [p for cell in cells for p in check_cell(cell, cell_class, where)]
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            problems.append(f"{where}: n_instances must be an int >= 1")
    return problems


def _check_mutant(name: str, mutant) -> list[str]:
    """Problems of a ``control_mutant`` declaration: None, or a name of the mutant catalogue."""
    if mutant is None:
        return []
    from udl.engine.mutants import MUTANTS

    if not isinstance(mutant, str) or mutant not in MUTANTS:
        return [f"{name}: control_mutant {mutant!r} is not a mutant (known: {', '.join(sorted(MUTANTS))})"]
    return []


def check_claim(claim: Claim | type) -> list[str]:
    """List what is wrong with a claim's declaration (empty when it is well formed).

    Checks the text fields, kind, α, β, requires, simulate/decide, the ``control_mutant`` (a
    name of :data:`udl.engine.mutants.MUTANTS`), ``decides_at``, ``discrete_columns``, the ``Cell``
    declaration and every profile cell against it, and the ``schema``.

    Parameters
    ----------
    claim : Claim or Claim subclass

    Returns
    -------
    list of str
        Human-readable problems, each naming the claim (and the profile, field and value).
    """
    cls = claim if isinstance(claim, type) else type(claim)
    name = getattr(cls, "id", cls.__name__)
    problems = []
    if not isinstance(getattr(cls, "id", None), str) or not ID_PATTERN.match(cls.id):
        problems.append(f"{cls.__name__}: id {getattr(cls, 'id', None)!r} must match {ID_PATTERN.pattern}")
    for attr in _TEXT_FIELDS:
        if not isinstance(getattr(cls, attr, None), str) or not getattr(cls, attr).strip():
            problems.append(f"{name}: {attr} must be a non-empty string")
    if getattr(cls, "kind", None) not in CLAIM_KINDS:
        problems.append(f"{name}: kind {getattr(cls, 'kind', None)!r} is not one of {CLAIM_KINDS}")
    if not 0 < getattr(cls, "alpha", 0) < 0.5:
        problems.append(f"{name}: alpha must be in (0, 0.5)")
    if not 0 < getattr(cls, "beta", 0) < 1:
        problems.append(f"{name}: beta must be in (0, 1)")
    if not isinstance(getattr(cls, "requires", None), frozenset):
        problems.append(f"{name}: requires must be a frozenset")
    decides_at = getattr(cls, "decides_at", PROFILES)
    if not isinstance(decides_at, tuple) or not decides_at or not set(decides_at) <= set(PROFILES):
        problems.append(f"{name}: decides_at {decides_at!r} must be a non-empty tuple of profiles "
                        f"(allowed: {', '.join(PROFILES)})")
    discrete = getattr(cls, "discrete_columns", frozenset())
    if not isinstance(discrete, frozenset) or not all(isinstance(c, str) for c in discrete):
        problems.append(f"{name}: discrete_columns must be a frozenset of column names, got {discrete!r}")
    problems += _check_mutant(name, getattr(cls, "control_mutant", None))
    if not isinstance(getattr(cls, "detects_errors", False), bool):
        problems.append(f"{name}: detects_errors must be a bool")
    for method in ("simulate", "decide"):
        if getattr(cls, method, None) is getattr(Claim, method):
            problems.append(f"{name}: {method}() is not implemented")
    cell_class = getattr(cls, "Cell", None)
    if cell_class is not None:
        cell_problems = check_cell_class(cell_class, name)
        if cell_problems:
            return [*problems, *cell_problems]
    if getattr(cls, "schema", None) is not None:
        problems += _schema.check_schema(cls.schema, name)
    profiles = getattr(cls, "profiles", None)
    if not isinstance(profiles, dict):
        return [*problems, f"{name}: profiles must be a dict"]
    return [*problems, *_check_profiles(name, profiles, cell_class)]
