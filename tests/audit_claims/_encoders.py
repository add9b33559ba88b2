"""Encoders for tests/test_audit.py, loadable by a file spec (``tests/audit_claims/_encoders.py:NAME``).

The leading underscore keeps :func:`udl.engine.harness.discover` from scanning this module for claims.
"""
import torch

import udl
from udl.app.audit import Declared


def broken():
    """No threshold at all, declared as the reference ISTA (the author believes it is ISTA)."""
    return Declared(udl.NoThreshold(), udl.ISTA.capabilities, name="broken")


class Detached(udl.ISTA):
    """ISTA computed without a graph: honestly declares no 'differentiable'."""

    name = "detached"
    capabilities = frozenset({"soft_threshold", "fixed_lambda"})

    def __call__(self, X, D, **kwargs):
        with torch.no_grad():
            return super().__call__(X.detach(), D.detach(), **kwargs)


class Flaky(udl.ISTA):
    """Passes the interface smoke call (T = 3) but raises on any deeper call: every claim ERRORs."""

    name = "flaky"

    def __call__(self, X, D, *, T, **kwargs):
        if T > 5:
            raise RuntimeError("deliberate failure beyond 5 layers")
        return super().__call__(X, D, T=T, **kwargs)

    def iterates(self, X, D, *, T, **kwargs):
        return iter(self(X, D, T=T, return_path=True, **kwargs)[1:])


class LiesAboutGradient(udl.ISTA):
    """Declares 'differentiable' but detaches its output: the interface check must catch it."""

    name = "liar"

    def __call__(self, X, D, **kwargs):
        return super().__call__(X, D, **kwargs).detach()


class WrongShape:
    name = "wrong-shape"
    capabilities = frozenset()

    def __call__(self, X, D, *, lam, step, T):
        return torch.zeros(X.shape[:-2] + (D.shape[-1], D.shape[-1]), dtype=X.dtype)


class NoCapabilities:
    def __call__(self, X, D, *, lam, step, T):
        return udl.ista(X, D, lam=lam, step=step, T=T)


class Typo(udl.ISTA):
    capabilities = frozenset({"differentiabel"})


def raises():
    raise RuntimeError("factory exploded")


INSTANCE = udl.FISTA()
