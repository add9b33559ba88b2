"""The claims: one module per theorem, each defining :class:`udl.engine.harness.Claim` subclasses.

Adding a theorem is adding one file here: define a subclass of :class:`udl.engine.harness.Claim`
with an ``id`` (and the other class attributes), ``simulate`` and ``decide`` — and its report
figures as methods marked with :func:`udl.engine.figure`; :func:`discover` finds it. Modules whose name starts with ``_`` are not scanned (use them for shared helpers).

This folder is installed as the package ``udl.claims`` (``udl verify`` discovers it by default); in
a checkout it is also importable as ``claims`` from the repository root.
"""

from __future__ import annotations

from types import ModuleType

from udl.engine.harness import Claim, discover as _discover

__all__ = ["Claim", "discover"]


def discover(package: str | ModuleType | None = None) -> dict[str, Claim]:
    """Every claim of ``package`` as ``{id: instance}``, sorted by id.

    Parameters
    ----------
    package : str or module
        Dotted package name (default: this package), a package directory path, or a module.

    Returns
    -------
    dict
    """
    return _discover(__name__ if package is None else package)
