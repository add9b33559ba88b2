"""Deprecated module paths of udl ≤ 0.1 (``udl.harness``, ``udl.report``, …), kept importable.

The modules moved into layer subpackages (``udl.core``, ``udl.engine``, ``udl.app``). Importing
an old path returns the module at its new home (the same module object, so monkeypatching
either name patches both) and emits a :class:`DeprecationWarning` naming the new path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: Old module path → new module path.
MOVED = {
    **{f"udl.{name}": f"udl.core.{name}" for name in (
        "_validate", "data", "encoders", "unrolled", "interpret", "metrics", "training", "learned")},
    # The old module udl.gradients; importing it rebinds the attribute udl.gradients (the function)
    # to the module, as importing any submodule does: use udl.core.estimators.
    "udl.gradients": "udl.core.estimators",
    **{f"udl.{name}": f"udl.engine.{name}" for name in (
        "stats", "harness", "executors", "_dask", "cache", "results")},
    **{f"udl.{name}": f"udl.app.{name}" for name in ("cli", "report", "compare", "audit", "_format")},
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path and loads it as the module of its new path."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} is deprecated; import {new} instead", DeprecationWarning,
                      stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module):
        """Nothing to execute: the module is the already imported new one."""


def install() -> None:
    """Register the alias finder once (idempotent)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
