"""Audit sentences: how a claim explains, in one sentence, an outcome that differs from the reference.

A claim may declare a class attribute ``audit_sentences``: a mapping whose keys are an outcome
(``"FAIL"``: for any encoder) or ``(outcome, encoder name)`` (for that encoder, preferred), and
whose values are *entries*: a format string, or a callable of the values returning a string or
None (None: the entry does not apply). The values are ``statistic``, ``lower``, ``upper``,
``threshold`` (floats, NaN when missing), ``statistic_name`` and ``reference`` (the reference
encoder's statistic when it measures the same thing, else NaN). An entry is the text after
"<claim> <OUTCOME> for <encoder>: " in the encoder matrix of ``udl audit --matrix``::

    audit_sentences = {
        "FAIL": "the floor does not scale with λ (slope {statistic:.2g}, needs 1 ± 0.25)",
        ("FAIL", "no-threshold"): "without a threshold the codes ignore λ (slope {statistic:.2g})",
        "INCONCLUSIVE": when("[trend]", "the deviation no longer shrinks (rate {statistic:.2g})"),
    }
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Union

__all__ = ["Entry", "when", "audit_sentence"]

#: An entry of ``audit_sentences``: a format string or a callable of the values.
Entry = Union[str, Callable[[Mapping[str, Any]], Union[str, None]]]


def when(part: str, template: str) -> Callable[[Mapping[str, Any]], str | None]:
    """An entry that applies only when the verdict's decisive part is ``part``.

    Parameters
    ----------
    part : str
        Text of the statistic's name that marks the part (for a verdict of
        :func:`udl.engine.stats.all_of`, the name of the part that decided it).
    template : str
        Format string of the values, used when ``part`` is in ``values["statistic_name"]``.

    Returns
    -------
    callable
        ``values -> str | None``.
    """
    def entry(values: Mapping[str, Any]) -> str | None:
        return template.format(**values) if part in values["statistic_name"] else None

    return entry


def audit_sentence(sentences: Mapping, outcome: str, encoder: str, values: Mapping[str, Any]) -> str | None:
    """A claim's sentence for ``outcome`` of ``encoder``: its ``(outcome, encoder)`` entry, else its
    ``outcome`` entry; None when neither applies.

    Parameters
    ----------
    sentences : mapping
        The claim's ``audit_sentences``.
    outcome, encoder : str
        The cell's outcome and the encoder's name.
    values : mapping
        The values the entries are formatted with (see the module docstring).

    Returns
    -------
    str or None
        An entry that does not apply, or whose template names a value that is missing or
        cannot be formatted, counts as absent.
    """
    for key in ((outcome, encoder), outcome):
        entry = sentences.get(key)
        if entry is None:
            continue
        try:
            text = entry(values) if callable(entry) else entry.format(**values)
        except (KeyError, ValueError, IndexError, TypeError):
            text = None
        if text:
            return text
    return None
