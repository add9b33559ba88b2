"""Mutants of the instance generator (:func:`udl.core.data.make_instances`): bugs that leave every
instance well formed and its recorded parameters as declared, but draw something else."""

from __future__ import annotations

import inspect
from dataclasses import replace

from udl.core import data
from udl.engine.mutants.registry import patch, register

__all__: list[str] = []


def _default(name: str):
    return inspect.signature(data.make_instances).parameters[name].default


def _seeds(seed, batch) -> list[int] | None:
    """The per-instance seeds make_instances would use, or None when it will reject ``seed``."""
    try:
        if isinstance(seed, int) and not isinstance(seed, bool):
            return list(data.instance_seeds_from(seed, 1 if batch is None else batch))
        return [int(s) for s in seed]
    except (TypeError, ValueError):
        return None


@register(
    "shared-seed", area="instances",
    bug="The generator draws every instance from the first instance's seed (one generator created outside "
        "the loop), while each instance still records its own seed.",
    code="udl.core.data.make_instances",
    why="All instances of a cell are copies of one: the statistics see zero spread, so a test's "
        "confidence is fake — an independence check, or any test that needs a spread, must catch it.")
def _shared_seed():
    make = data.make_instances

    def make_bug(m, p, s, n, *, batch=None, seed=_default("seed"), **kwargs):
        seeds = _seeds(seed, batch)
        if not seeds:
            return make(m, p, s, n, batch=batch, seed=seed, **kwargs)     # the original's error
        inst = make(m, p, s, n, seed=[seeds[0]] * len(seeds), **kwargs)
        return replace(inst, seeds=tuple(seeds))

    return patch(data, "make_instances", make_bug)


@register(
    "shared-signs", area="instances",
    bug="The codes get one random sign per example shared by its s entries even when the cell asks for "
        "independent signs (the 'shared' branch taken for both), and the instances record 'independent'.",
    code="udl.core.data.make_instances",
    why="E[z*] = 0 per entry no longer holds: the theory's independent-sign regime is silently replaced by "
        "the authors' shared-sign data, which shifts the gradient biases the orderings rely on.")
def _shared_signs():
    make = data.make_instances

    def make_bug(m, p, s, n, *, sign=_default("sign"), **kwargs):
        inst = make(m, p, s, n, sign="shared" if sign == "independent" else sign, **kwargs)
        return replace(inst, params={**inst.params, "sign": sign})

    return patch(data, "make_instances", make_bug)


@register(
    "amplitude-law", area="instances",
    bug="Code amplitudes are drawn from U[0, b] instead of U[a, b] (the lower bound a ignored), while "
        "the instances record (a, b).",
    code="udl.core.data.make_instances",
    why="True entries can be arbitrarily small: the λ threshold zeroes them, so support recovery and "
        "the code-error floor (which assume |z*| ≥ a) break.")
def _amplitude_law():
    make = data.make_instances

    def make_bug(m, p, s, n, *, amplitude=_default("amplitude"), **kwargs):
        try:
            low, high = (float(v) for v in amplitude)
        except (TypeError, ValueError):
            low = high = -1.0
        if not 0 <= low <= high:
            return make(m, p, s, n, amplitude=amplitude, **kwargs)       # the original's error
        inst = make(m, p, s, n, amplitude=(0.0, high), **kwargs)
        return replace(inst, params={**inst.params, "amplitude": (low, high)})

    return patch(data, "make_instances", make_bug)
