"""Strict JSON (RFC 8259) for every JSON file udl writes, and the one reader of them.

JSON has no infinities and no NaN, yet statistics do (a bound that never binds is ``inf``, a
ratio of nothing is ``nan``). Python's :mod:`json` writes them as the bare tokens ``Infinity``
and ``NaN`` by default, which strict parsers (``JSON.parse``, ``jq``, Go, Rust's serde, …)
reject. udl writes them as **strings** instead:

=============  ================
value          written as
=============  ================
``+inf``       ``"Infinity"``
``-inf``       ``"-Infinity"``
``nan``        ``"NaN"``
=============  ================

and its readers (:func:`loads`, :func:`load`) map exactly these three strings back to floats,
wherever they appear in a document. So a text field whose *whole* value is one of the three
words reads back as a number; udl writes no such text. Files written before this rule (bare
``Infinity``/``NaN`` tokens) are still read.

:func:`dumps` refuses anything else JSON cannot hold (``allow_nan=False`` after the mapping),
so a non-finite value can never slip into a file as a bare token.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["NONFINITE", "encode_nonfinite", "decode_nonfinite", "dumps", "loads", "load"]

#: The spelling of each non-finite float in udl's JSON files (and back).
NONFINITE = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


def _spelling(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def encode_nonfinite(value):
    """``value`` with every non-finite float replaced by its string (:data:`NONFINITE`).

    Dicts, lists and tuples are walked (tuples become lists); everything else is returned as is.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else _spelling(value)
    if isinstance(value, dict):
        return {key: encode_nonfinite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_nonfinite(item) for item in value]
    return value


def decode_nonfinite(value):
    """The inverse of :func:`encode_nonfinite`: the strings of :data:`NONFINITE` become floats."""
    if isinstance(value, str):
        return NONFINITE.get(value, value)
    if isinstance(value, dict):
        return {key: decode_nonfinite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_nonfinite(item) for item in value]
    return value


def dumps(document, *, indent: int | None = 2) -> str:
    """Deterministic strict JSON text: sorted keys, ``indent`` spaces, UTF-8 text, final newline.

    Raises
    ------
    ValueError
        A value JSON cannot hold even after the mapping (never a non-finite float).
    TypeError
        A value of a type JSON does not know (convert with :func:`udl.engine.stats.to_builtin`).
    """
    return json.dumps(encode_nonfinite(document), sort_keys=True, indent=indent, allow_nan=False,
                      ensure_ascii=False) + "\n"


def loads(text: str | bytes):
    """Parse udl's JSON text (strict, or an older file with bare ``Infinity``/``NaN``) and map the
    strings of :data:`NONFINITE` back to floats.

    Raises
    ------
    ValueError
        Not JSON (:class:`json.JSONDecodeError`).
    """
    return decode_nonfinite(json.loads(text))


def load(path: str | Path):
    """:func:`loads` of a UTF-8 file.

    Raises
    ------
    OSError
        The file cannot be read.
    ValueError
        Not JSON, or not UTF-8.
    """
    return loads(Path(path).read_bytes().decode("utf-8"))
