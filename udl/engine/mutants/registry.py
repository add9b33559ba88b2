"""The mutant registry: what a mutant is (:class:`Mutant`), the catalogue (:data:`MUTANTS`), and how
one is installed for a while (:func:`mutated`) by re-binding attributes (:func:`patch`).

A *mutant* is a deliberate, plausible implementation bug in :mod:`udl.core`, installed at run time
by re-binding module or class attributes (monkeypatching) and removed again. A claim with teeth
FAILS under the mutants that break what it asserts; ``udl mutate`` tabulates which claim kills
which mutant (:mod:`udl.app.mutate`), and a claim may use one as its negative control
(``Claim.control_mutant``).

Patching a function is only seen where the code looks it up at call time: a ``from m import f``
copy in another module, or a lazy facade's cached name (:mod:`udl.core`, :mod:`udl`), keeps the
original. :func:`patch` therefore re-binds *every* binding of the original object in the loaded
``udl``/``claims`` modules (and the same name anywhere in ``sys.modules``), and its undo restores
them, including bindings made while the mutant was installed (a lazy facade that cached the
mutant).

Mutants change process-wide state. :func:`mutated` takes a process-wide guard: a mutated block
runs alone in its process, while unmutated blocks (``mutated(None)``, which every cell task
enters) may run side by side in threads, so a multi-threaded Dask worker never mixes a mutant
into an unmutated cell.

This module imports the standard library only; the catalogue modules (``encoder``, ``backward``,
...) import :mod:`udl.core` and this registry.
"""

from __future__ import annotations

import re
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

__all__ = ["AREAS", "NAME_PATTERN", "Mutant", "MUTANTS", "register", "get", "mutated", "patch",
           "patch_attribute", "combine"]

#: Where a mutant's bug lives (one catalogue module per area).
AREAS = ("encoder", "lean-backward", "estimators", "lasso-certificate", "training", "interpretation",
         "instances", "path-consistency")
#: Mutant names become CLI tokens and table columns: lower-case words joined by hyphens.
NAME_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
#: Module-name prefixes whose namespaces :func:`patch` scans for every binding of the original
#: object (under any name); elsewhere only the patched attribute's own name is checked.
_SCANNED = ("udl", "claims")

Undo = Callable[[], None]


@dataclass(frozen=True)
class Mutant:
    """A deliberate bug in :mod:`udl.core`.

    Attributes
    ----------
    name : str
        Short id (lower-case, hyphenated; :data:`NAME_PATTERN`).
    area : str
        One of :data:`AREAS`.
    bug : str
        One sentence: what the bug is, as a developer would make it.
    code : str
        Dotted path of the function or method it changes (several, comma-separated, when the
        bug is in code repeated along several paths).
    why : str
        What a correct claim should see under it.
    apply : callable
        ``apply() -> undo``: installs the bug and returns a callable that removes it.
    """

    name: str
    area: str
    bug: str
    code: str
    why: str
    apply: Callable[[], Undo]

    def __repr__(self) -> str:
        return f"<Mutant {self.name} ({self.area})>"


#: The catalogue, by name (filled by the area modules of :mod:`udl.engine.mutants`).
MUTANTS: dict[str, Mutant] = {}


def register(name: str, *, area: str, bug: str, code: str, why: str):
    """Decorator: register ``apply`` (a function ``() -> undo``) as the mutant ``name``.

    Raises
    ------
    ValueError
        A malformed or repeated name, an unknown area, or an empty description.
    """
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(f"mutant name {name!r} must match {NAME_PATTERN.pattern}")
    if name in MUTANTS:
        raise ValueError(f"mutant {name!r} registered twice")
    if area not in AREAS:
        raise ValueError(f"mutant {name!r}: area {area!r} is not one of {AREAS}")
    for field, text in (("bug", bug), ("code", code), ("why", why)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"mutant {name!r}: {field} must be a non-empty string")

    def decorate(apply: Callable[[], Undo]) -> Callable[[], Undo]:
        MUTANTS[name] = Mutant(name, area, bug, code, why, apply)
        return apply

    return decorate


def get(name: str) -> Mutant:
    """The mutant called ``name``.

    Raises
    ------
    ValueError
        Unknown name; the message names it and lists the known mutants.
    """
    try:
        return MUTANTS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown mutant {name!r} (known: {', '.join(sorted(MUTANTS))})") from None


# --------------------------------------------------------------------------- the guard
class _Guard:
    """A readers-writer guard: shared for unmutated blocks, exclusive for mutated ones.

    Re-entrant for the thread holding it exclusively (a nested ``mutated`` inside a mutated
    block runs under both mutants)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._owner: int | None = None
        self._depth = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                nested = True
            else:
                nested = False
                while self._owner is not None:
                    self._cond.wait()
                self._readers += 1
        try:
            yield
        finally:
            if not nested:
                with self._cond:
                    self._readers -= 1
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._owner != me:
                while self._owner is not None or self._readers:
                    self._cond.wait()
                self._owner = me
            self._depth += 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if not self._depth:
                    self._owner = None
                    self._cond.notify_all()


_GUARD = _Guard()


@contextmanager
def mutated(name: str | None) -> Iterator[Mutant | None]:
    """Run a block with the mutant ``name`` installed, and always remove it afterwards.

    Parameters
    ----------
    name : str or None
        A name of :data:`MUTANTS`; ``None`` runs the block unmutated (and guarantees that no
        mutant is installed by another thread meanwhile).

    Yields
    ------
    Mutant or None

    Raises
    ------
    ValueError
        Unknown name (before anything is installed).
    """
    if name is None:
        with _GUARD.shared():
            yield None
        return
    mutant = get(name)
    with _GUARD.exclusive():
        undo = mutant.apply()
        try:
            yield mutant
        finally:
            undo()


# --------------------------------------------------------------------------- patching
def _modules():
    return [m for m in list(sys.modules.values()) if m is not None and hasattr(m, "__dict__")]


def _scanned(module) -> bool:
    name = getattr(module, "__name__", "") or ""
    return any(name == p or name.startswith(p + ".") for p in _SCANNED)


def _materialise(name: str, original) -> None:
    """Let lazy facades (``udl.core``, ``udl``, ``udl.engine``: a module ``__getattr__`` that caches
    the name in its globals) cache ``name`` now, so that the scan finds and patches it."""
    for module in _modules():
        if _scanned(module) and "__getattr__" in vars(module) and name in getattr(module, "__all__", ()) \
                and name not in vars(module):
            try:
                getattr(module, name)
            except Exception:  # a facade that cannot resolve it now: it does not bind the original
                pass


def _bindings(original, name: str) -> list[tuple[object, str]]:
    found = []
    for module in _modules():
        namespace = vars(module)
        if _scanned(module):
            found += [(module, key) for key, value in list(namespace.items()) if value is original]
        elif namespace.get(name, None) is original:
            found.append((module, name))
    return found


def patch(module, name: str, new) -> Undo:
    """Re-bind ``module.name`` to ``new`` everywhere the code could look it up.

    Every binding of the original object in a loaded ``udl.*``/``claims.*`` module (under any
    name: ``from m import f as g`` copies, lazy facades' caches) and every same-named binding
    elsewhere in ``sys.modules`` is replaced.

    Returns
    -------
    callable
        Undo: restores every replaced binding, and every binding of ``new`` made meanwhile.
    """
    original = getattr(module, name)
    _materialise(name, original)
    bindings = _bindings(original, name)
    if not any(owner is module for owner, _ in bindings):
        bindings.append((module, name))
    # bindings of ``new`` that exist already (the mutant's own helper, shared by mutants) stay
    already = {(id(owner), key) for owner, key in _bindings(new, name)}
    for owner, key in bindings:
        setattr(owner, key, new)

    def undo() -> None:
        for owner, key in bindings:
            setattr(owner, key, original)
        for owner, key in _bindings(new, name):     # made while installed (e.g. a facade's cache)
            if (id(owner), key) not in already:
                setattr(owner, key, original)

    return undo


def patch_attribute(owner, name: str, new) -> Undo:
    """Set one attribute (a class's method, a module constant) to ``new``; undo restores it
    (deleting it again when ``owner`` only inherited it)."""
    missing = object()
    before = vars(owner).get(name, missing)
    setattr(owner, name, new)

    def undo() -> None:
        if before is missing:
            delattr(owner, name)
        else:
            setattr(owner, name, before)

    return undo


def combine(*undos: Undo) -> Undo:
    """One undo that runs ``undos`` in reverse order (last installed, first removed)."""

    def undo() -> None:
        for step in reversed(undos):
            step()

    return undo
