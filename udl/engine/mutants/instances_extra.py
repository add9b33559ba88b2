"""More mutants of the instance generator (:func:`udl.core.data.make_instances`): an option of the
initial dictionary accepted and silently ignored."""

from __future__ import annotations

from dataclasses import replace

from udl.core import data
from udl.engine.mutants.registry import patch, register

__all__: list[str] = []


@register(
    "init-distance-ignored", area="instances",
    bug="The generator accepts init_distance but always builds D⁽⁰⁾ = normalise(D* + c·E) from init_scale "
        "(the exact-distance branch lost in a refactor), while the instances record the requested distance.",
    code="udl.core.data.make_instances",
    why="A sweep over the column distance δ measures nothing: D⁽⁰⁾ stays where init_scale puts it (at D* "
        "when init_scale = 0), so a claim about how the code error grows with δ must see that it does not "
        "grow — and a claim that checks the distances it asked for sees it directly.")
def _init_distance_ignored():
    make = data.make_instances

    def make_bug(m, p, s, n, *, init_distance=None, **kwargs):
        inst = make(m, p, s, n, **kwargs)
        return replace(inst, params={**inst.params, "init_distance": init_distance})

    return patch(data, "make_instances", make_bug)
