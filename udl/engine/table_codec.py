"""Tables as plain data: a pandas DataFrame written as CSV text plus a JSON-able list of its columns
(name, dtype, how each cell was written), and read back **identical**: same columns, dtypes, missing
values and float bits. Nothing is ever unpickled or evaluated: decoding parses numbers and text.

How a column's cells are written (``kind`` in its description):

===========  ====================================================  ==============================
kind         dtypes                                                cell text
===========  ====================================================  ==============================
``bool``     numpy ``bool``                                        ``True`` / ``False``
``int``      numpy signed and unsigned integers                    ``str(int)``
``float``    numpy floats (``float16`` to ``float64``)             shortest round-trip ``repr`` of
                                                                   the value as a float64; ``nan``
                                                                   with its sign bit: ``-nan``
``string``   pandas ``str`` / ``string`` (:class:`pandas.StringDtype`)  the text
``masked``   pandas nullable ``Int64``, ``Float64``, ``boolean``, ...  as the numpy kind above
``json``     numpy ``object`` holding JSON values                  :func:`json.dumps` of each value
===========  ====================================================  ==============================

A nullable column (``string``, ``masked``) lists its missing rows as runs ``[[start, length], ...]``
in ``missing``; their cells are empty. Anything else (categoricals, dates, tuples or numpy scalars in
an object column, a non-default index, non-text or repeated column names) cannot be written:
:func:`encode_table` raises :class:`TableCodecError`, and it also raises when the table would not
read back identical (:func:`identical`), so what it writes always does.
"""

from __future__ import annotations

import csv
import io
import json
import struct

import numpy as np
import pandas as pd

__all__ = ["TableCodecError", "encode_table", "decode_table", "identical"]

#: The nullable pandas dtypes written as kind ``masked`` (values as their numpy kind, plus a mask).
MASKED_DTYPES = frozenset([*(f"{sign}Int{bits}" for sign in ("", "U") for bits in (8, 16, 32, 64)),
                           "Float32", "Float64", "boolean"])
_TEXT_OF_BOOL = {True: "True", False: "False"}
_BOOL_OF_TEXT = {"True": True, "False": False}
#: Cell text of a NaN whose sign bit is set (0/0 gives one on x86); ``nan`` is the positive one.
NEGATIVE_NAN = "-nan"


class TableCodecError(ValueError):
    """A table that cannot be written as data and read back identical, or text that is not such a table."""


# --------------------------------------------------------------------------- cells of one kind
def _float_texts(values: np.ndarray) -> list[str]:
    wide = values.astype(np.float64)  # exact for every narrower float
    texts = [repr(x) for x in wide.tolist()]
    for row in np.flatnonzero(np.isnan(wide) & np.signbit(wide)).tolist():
        texts[row] = NEGATIVE_NAN
    return texts


def _floats(texts: list[str], dtype: np.dtype) -> np.ndarray:
    try:
        wide = np.array([float(t) for t in texts], dtype=np.float64)
    except ValueError as exc:
        raise TableCodecError(f"not a number: {exc}") from None
    return wide.astype(dtype)  # float('-nan') keeps the sign bit


def _ints(texts: list[str], dtype: np.dtype) -> np.ndarray:
    try:
        return np.array([int(t) for t in texts], dtype=dtype)
    except (ValueError, OverflowError) as exc:
        raise TableCodecError(f"not an integer of {dtype}: {exc}") from None


def _bools(texts: list[str]) -> np.ndarray:
    try:
        return np.array([_BOOL_OF_TEXT[t] for t in texts], dtype=bool)
    except KeyError as exc:
        raise TableCodecError(f"not True or False: {exc}") from None


def _numpy_texts(values: np.ndarray) -> list[str]:
    if values.dtype.kind == "b":
        return [_TEXT_OF_BOOL[v] for v in values.tolist()]
    if values.dtype.kind in "iu":
        return [str(v) for v in values.tolist()]
    return _float_texts(values)


def _numpy_values(texts: list[str], dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "b":
        return _bools(texts)
    if dtype.kind in "iu":
        return _ints(texts, dtype)
    return _floats(texts, dtype)


def _runs(mask: np.ndarray) -> list[list[int]]:
    """``[[start, length], ...]`` of the True stretches of a boolean mask."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [[int(a), int(b - a)] for a, b in zip(starts, stops)]


def _mask(runs, n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    try:
        for start, length in runs:
            if not (isinstance(start, int) and isinstance(length, int) and 0 <= start and 0 < length
                    and start + length <= n):
                raise TableCodecError(f"missing run {[start, length]} outside 0..{n}")
            mask[start:start + length] = True
    except (TypeError, ValueError) as exc:
        raise TableCodecError(f"malformed missing runs: {exc}") from None
    return mask


# --------------------------------------------------------------------------- columns
def _kind(dtype) -> str:
    if isinstance(dtype, np.dtype):
        if dtype.kind in "biuf":
            return {"b": "bool", "i": "int", "u": "int", "f": "float"}[dtype.kind]
        if dtype == np.dtype(object):
            return "json"
    elif isinstance(dtype, pd.StringDtype):
        return "string"
    elif str(dtype) in MASKED_DTYPES:
        return "masked"
    raise TableCodecError(f"dtype {dtype} cannot be written as data")


def _encode_column(name: str, series: pd.Series) -> tuple[dict, list[str]]:
    dtype = series.dtype
    kind = _kind(dtype)
    spec = {"name": name, "dtype": str(dtype), "kind": kind}
    if kind in ("bool", "int", "float"):
        return spec, _numpy_texts(series.to_numpy())
    if kind == "json":
        try:
            texts = [json.dumps(v, ensure_ascii=False, allow_nan=True) for v in series.tolist()]
        except (TypeError, ValueError) as exc:
            raise TableCodecError(f"column {name!r} holds a value JSON cannot hold: {exc}") from None
        return spec, texts
    missing = series.isna().to_numpy(dtype=bool)
    spec["missing"] = _runs(missing)
    if kind == "string":
        spec.update(storage=dtype.storage, na_value="NA" if dtype.na_value is pd.NA else "nan")
        texts = ["" if gone else str(v) for v, gone in zip(series.tolist(), missing.tolist())]
        return spec, texts
    data = series.array.to_numpy(dtype=dtype.numpy_dtype, na_value=dtype.numpy_dtype.type(0))
    texts = _numpy_texts(data)
    return spec, ["" if gone else t for t, gone in zip(texts, missing.tolist())]


def _string_dtype(spec: dict) -> pd.StringDtype:
    if spec.get("na_value") == "nan":
        return pd.StringDtype(storage=spec.get("storage"), na_value=np.nan)
    return pd.StringDtype(storage=spec.get("storage"))


def _decode_column(spec: dict, texts: list[str]):
    kind, dtype = spec["kind"], spec["dtype"]
    if kind in ("bool", "int", "float"):
        return _numpy_values(texts, np.dtype(dtype))
    if kind == "json":
        try:
            values = [json.loads(t) for t in texts]
        except ValueError as exc:
            raise TableCodecError(f"column {spec['name']!r}: not JSON: {exc}") from None
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array
    missing = _mask(spec.get("missing", []), len(texts))
    if any(texts[row] for row in np.flatnonzero(missing).tolist()):
        raise TableCodecError(f"column {spec['name']!r}: a missing cell holds text")
    if kind == "string":
        string_dtype = _string_dtype(spec)
        values = [None if gone else t for t, gone in zip(texts, missing.tolist())]
        return pd.array(values, dtype=string_dtype)
    if kind == "masked":
        masked_dtype = pd.api.types.pandas_dtype(dtype)
        if str(masked_dtype) not in MASKED_DTYPES:
            raise TableCodecError(f"column {spec['name']!r}: {dtype!r} is not a nullable dtype")
        numpy_dtype = masked_dtype.numpy_dtype
        filled = ["0" if gone else t for t, gone in zip(texts, missing.tolist())]
        if numpy_dtype.kind == "b":
            filled = ["False" if gone else t for t, gone in zip(texts, missing.tolist())]
        data = _numpy_values(filled, numpy_dtype)
        return masked_dtype.construct_array_type()(data, missing)
    raise TableCodecError(f"column {spec.get('name')!r}: unknown kind {kind!r}")


# --------------------------------------------------------------------------- tables
def _check_shape(table: pd.DataFrame) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TableCodecError(f"not a DataFrame: {type(table).__name__}")
    index = table.index
    if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None):
        raise TableCodecError("only a table with the default index (0, 1, 2, ...) can be written")
    names = list(table.columns)
    if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise TableCodecError(f"column names must be distinct strings, got {names[:8]}")


def encode_table(table: pd.DataFrame) -> tuple[bytes, list[dict]]:
    """Write a table as CSV text and the description of its columns.

    Parameters
    ----------
    table : pandas.DataFrame
        Default index, distinct string column names, dtypes of the kinds in the module docstring.

    Returns
    -------
    (bytes, list of dict)
        UTF-8 CSV (a header row, then one row per table row; ``\\n`` line ends) and one description
        per column, JSON-able; :func:`decode_table` of the two is :func:`identical` to ``table``.

    Raises
    ------
    TableCodecError
        The table cannot be written so that it reads back identical.
    """
    _check_shape(table)
    specs, columns = [], []
    for position, name in enumerate(table.columns):
        spec, texts = _encode_column(name, table.iloc[:, position])
        specs.append(spec)
        columns.append(texts)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(table.columns))
    writer.writerows(zip(*columns))
    data = buffer.getvalue().encode("utf-8")
    if not identical(decode_table(data, specs), table):
        raise TableCodecError("the table would not read back identical")
    return data, specs


def decode_table(data: bytes, columns: list[dict]) -> pd.DataFrame:
    """Read a table written by :func:`encode_table` from its CSV bytes and column descriptions.

    Raises
    ------
    TableCodecError
        Text that is not such a table (other columns, a cell that does not parse, ...).
    """
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TableCodecError(f"not UTF-8 CSV: {exc}") from None
    if not isinstance(columns, list) or not all(isinstance(c, dict) and "name" in c and "kind" in c
                                                and "dtype" in c for c in columns):
        raise TableCodecError("malformed column descriptions")
    names = [c["name"] for c in columns]
    if not rows or rows[0] != names:
        raise TableCodecError(f"header {rows[0][:8] if rows else []} is not the described columns {names[:8]}")
    body = rows[1:]
    if any(len(row) != len(names) for row in body):
        raise TableCodecError("a row does not have one cell per column")
    cells = list(zip(*body)) if body else [()] * len(names)
    try:
        values = {spec["name"]: _decode_column(spec, list(texts)) for spec, texts in zip(columns, cells)}
    except (TypeError, KeyError) as exc:
        raise TableCodecError(f"malformed column description: {exc!r}") from None
    return pd.DataFrame(values, index=pd.RangeIndex(len(body)), columns=names)


# --------------------------------------------------------------------------- identity
def _float_bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _same_value(a, b) -> bool:
    """Equal values of the same type; floats bit for bit; lists and dicts item by item."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return _float_bits(a) == _float_bits(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_value(a[k], b[k]) for k in a)
    return a == b


def _same_column(a: pd.Series, b: pd.Series) -> bool:
    if a.dtype != b.dtype or str(a.dtype) != str(b.dtype) or type(a.dtype) is not type(b.dtype):
        return False
    if isinstance(a.dtype, np.dtype) and a.dtype.kind in "biuf":
        left, right = np.ascontiguousarray(a.to_numpy()), np.ascontiguousarray(b.to_numpy())
        return left.tobytes() == right.tobytes()
    na_a, na_b = a.isna().to_numpy(dtype=bool), b.isna().to_numpy(dtype=bool)
    if isinstance(a.dtype, np.dtype):  # object
        return all(_same_value(x, y) for x, y in zip(a.tolist(), b.tolist()))
    if not np.array_equal(na_a, na_b):
        return False
    keep = ~na_a
    if isinstance(a.dtype, pd.StringDtype):
        return a[keep].tolist() == b[keep].tolist()
    numpy_dtype = a.dtype.numpy_dtype
    left = a.array.to_numpy(dtype=numpy_dtype, na_value=numpy_dtype.type(0))[keep]
    right = b.array.to_numpy(dtype=numpy_dtype, na_value=numpy_dtype.type(0))[keep]
    return left.tobytes() == right.tobytes()


def identical(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two tables are the same: columns in order, index, dtypes, missing cells, and every
    value (floats bit for bit, NaN signs included; object cells of the same type)."""
    if list(a.columns) != list(b.columns) or type(a.index) is not type(b.index):
        return False
    if not a.index.equals(b.index) or list(a.index.names) != list(b.index.names):
        return False
    return all(_same_column(a.iloc[:, i], b.iloc[:, i]) for i in range(a.shape[1]))
