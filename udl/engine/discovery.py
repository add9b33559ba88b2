"""Discovery: find the claims of a package, and select some by claim or theorem id."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterable, Mapping

from udl.engine.anatomy import Claim, ClaimDefinitionError, check_claim
from udl.engine.defaults import DEFAULT_PACKAGE, OWN_CLAIMS

__all__ = ["DEFAULT_PACKAGE", "discover", "resolve_package_name", "select_claims"]


def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False
    except Exception:  # a parent package that fails to import: importing it reports why
        return True


def resolve_package_name(package: str) -> str:
    """The dotted name to import for ``package``: ``package`` itself, except for a name of udl's own
    claims (:data:`~udl.engine.defaults.OWN_CLAIMS`) that is not importable while the other one is
    (``claims`` from outside a checkout is ``udl.claims``; ``udl.claims`` in an uninstalled
    checkout is its ``claims/`` folder)."""
    if package not in OWN_CLAIMS or _findable(package):
        return package
    return next((other for other in OWN_CLAIMS if other != package and _findable(other)), package)


def _import_package(package: str | ModuleType) -> ModuleType:
    """Import a package given as a module, a dotted name, or a directory path (with a '/')."""
    if isinstance(package, ModuleType):
        return package
    if "/" in package or "\\" in package:
        path = Path(package).resolve()
        if not (path / "__init__.py").is_file():
            raise ClaimDefinitionError(f"{package!r} is not a package directory (no __init__.py)")
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        package = path.name
    else:
        package = resolve_package_name(package)
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise ClaimDefinitionError(f"cannot import claims package {package!r}: {exc}") from exc


def discover(package: str | ModuleType = DEFAULT_PACKAGE) -> dict[str, Claim]:
    """Find every claim of a package.

    Imports every module of ``package`` (names starting with ``_`` are skipped) and collects
    the :class:`Claim` subclasses defined there that set an ``id``.

    Parameters
    ----------
    package : str or module
        Dotted package name (``"udl.claims"``; see :func:`resolve_package_name`), a package
        directory path (its parent is put on ``sys.path``), or the imported package.

    Returns
    -------
    dict
        ``{id: claim instance}`` sorted by id.

    Raises
    ------
    ClaimDefinitionError
        A module fails to import, two claims share an id, or a claim is malformed.
    """
    pkg = _import_package(package)
    found: dict[str, Claim] = {}
    for info in sorted(pkgutil.iter_modules(getattr(pkg, "__path__", [])), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        name = f"{pkg.__name__}.{info.name}"
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # a broken claim module must be loud, not skipped
            raise ClaimDefinitionError(f"claim module {name} failed to import: "
                                       f"{type(exc).__name__}: {exc}") from exc
        for obj in vars(module).values():
            if not (isinstance(obj, type) and issubclass(obj, Claim) and obj is not Claim):
                continue
            if obj.__module__ != module.__name__ or "id" not in _class_attrs(obj):
                continue
            problems = check_claim(obj)
            if problems:
                raise ClaimDefinitionError("; ".join(problems))
            if obj.id in found:
                raise ClaimDefinitionError(f"claim id {obj.id!r} defined twice "
                                           f"({type(found[obj.id]).__module__} and {name})")
            found[obj.id] = obj()
    return dict(sorted(found.items()))


def _class_attrs(cls: type) -> set[str]:
    return {attr for klass in cls.__mro__ if klass is not Claim and klass is not object for attr in vars(klass)}


def select_claims(available: Mapping[str, Claim], tokens: Iterable[str]) -> dict[str, Claim]:
    """Select claims by id or by theorem id.

    Parameters
    ----------
    available : mapping
        ``{id: claim}`` (e.g. from :func:`discover`).
    tokens : iterable of str
        Claim ids (``"A.3b"``) or theorem ids (``"A.3"`` selects all its claims).

    Returns
    -------
    dict
        Selected claims sorted by id.

    Raises
    ------
    ValueError
        A token names neither a claim nor a theorem; the message names it.
    """
    chosen = {}
    for token in tokens:
        token = token.strip()
        matches = {cid: c for cid, c in available.items() if cid == token or c.theorem == token}
        if not matches:
            known = ", ".join(available) or "none"
            theorems = ", ".join(sorted({c.theorem for c in available.values()})) or "none"
            raise ValueError(f"unknown claim {token!r} (claims: {known}; theorems: {theorems})")
        chosen.update(matches)
    return dict(sorted(chosen.items()))
