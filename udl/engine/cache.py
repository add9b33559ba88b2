"""A cache of finished cells, so that an interrupted or repeated run recomputes only what is missing.

One entry per finished cell task (claim × parameter cell × control flag): the annotated table that
:func:`udl.engine.tasks.simulate_cell` returned, stored as **data** — a gzipped CSV written by
:mod:`udl.engine.table_codec` (floats in their shortest round-trip form, dtypes and missing cells
described) plus a JSON description (columns, claim, cell, seeds, code version and source digests,
library and udl versions). Loading parses text and numbers only: nothing in a cache is ever
unpickled or executed, so a cache shared by Dask workers on a common file system cannot be a way
to run code. A table is stored only when it reads back identical to the computed one (dtypes,
missing cells, float bits); one that cannot (an exotic dtype) is computed every time.

The key is a sha256 of

- the **code version**: every ``*.py`` file of the ``udl`` package and of the package (or module)
  of each class in the claim's MRO (for udl's claims: every claim module, shared helpers included)
  — editing any of them invalidates the entries it could affect (a large third-party package
  stands in by the one module that defines the class; :mod:`udl.engine.sources`);
- the claim: id, class, and its instance state (pickled, to hash it; never unpickled);
- the cell: its position in the profile and its canonical JSON, the control flag, and the
  instance seeds (which carry the root seed and the instance count);
- the context: dtype, device and the encoder's identity (class, source, pickled state),
  and the threads per cell;
- the torch, numpy, scipy, pandas, scikit-learn, pyarrow and Python versions.

Nothing else (profile name, executor, worker count, order, other claims) enters, so a
``quick`` run, a Dask run and a serial run share entries when they compute the same cell.
A task whose claim, cell or encoder cannot be pickled is not cached (it is always computed),
nor is a task computed under a mutant (``ctx.mutant``, :mod:`udl.engine.mutants`): a mutated
cell is never read from the cache (an unmutated entry must not stand in for it) nor written to
it (a mutated table must never stand in for a correct one).

Only successful cells are stored — a cell that raised is recomputed on the next run.
Each file is written atomically (a temporary file in the same directory, then a rename), the
table before its description, and the description records the table's sha256: an interrupted
run never leaves an entry that reads, and an unreadable, mismatching or foreign file (a pickle,
say) is treated as missing and overwritten.

Where the cache lives, its layout, and how ``udl cache info|prune|clear`` inspect and empty it:
:mod:`udl.engine.cache_files`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from udl.engine.cache_files import (ENTRY_FORMAT, FORMAT, TAG_NAME, TAG_TEXT, default_directory, entry_paths)
from udl.engine.cells import canonical_cell
from udl.engine.files import atomic_write, check_writable
from udl.engine.provenance import udl_version
from udl.engine.sources import code_roots, library_versions, sha256_parts, source_digest, version_of_digests
from udl.engine.strict_json import dumps as json_dumps
from udl.engine.table_codec import TableCodecError, decode_table, encode_table
from udl.engine.tasks import CellOutcome, CellTask

__all__ = ["CellCache", "CacheKey", "CacheStats", "code_version", "default_directory", "FORMAT"]

#: gzip level of a stored table: fast, and most of the size gone (CSV of floats compresses ~2-3x).
GZIP_LEVEL = 6


def code_version(*classes: type) -> str:
    """sha256 of the ``udl`` sources and of the sources of ``classes`` (:mod:`udl.engine.sources`)."""
    return version_of_digests(_digests(classes))


def _digests(classes) -> dict[str, str]:
    return {str(root): source_digest(root) for root in code_roots(*classes)}


def _pickled(obj) -> bytes:
    """Bytes that identify ``obj``'s state, to hash (pickled: never unpickled)."""
    buffer = io.BytesIO()
    pickle.Pickler(buffer, protocol=4).dump(obj)
    return buffer.getvalue()


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class CacheKey(NamedTuple):
    """Where a task's entry lives: its code version (the directory), its key (sha256, the file name),
    and the source roots with the digests the code version was computed from (``udl cache info``
    recomputes them to tell a stale entry)."""

    version: str
    digest: str
    sources: tuple[tuple[str, str], ...]


@dataclass
class CacheStats:
    """What the cache did in one run (counts of cell tasks)."""

    hits: int = 0
    stored: int = 0
    uncacheable: int = 0
    unreadable: int = 0


class CellCache:
    """A directory of finished cells.

    Parameters
    ----------
    directory : path, optional
        Created on the first store; default :func:`udl.engine.cache_files.default_directory`
        (``$UDL_CACHE_DIR``, else ``$XDG_CACHE_HOME/udl``, else ``~/.cache/udl``).

    Examples
    --------
    >>> cache = CellCache("/tmp/udl-cache")            # doctest: +SKIP
    >>> udl.engine.runner.run(claims, "quick", 0, cache=cache)  # doctest: +SKIP
    """

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else default_directory()
        self.stats = CacheStats()
        self._claim_ids: dict[int, tuple] = {}
        self._encoder_ids: dict[int, tuple] = {}
        self._tagged = False

    def __repr__(self) -> str:
        return f"CellCache({str(self.directory)!r})"

    # ----------------------------------------------------------------- keys
    def _claim_identity(self, claim) -> tuple[str, dict[str, str], bytes]:
        cached = self._claim_ids.get(id(claim))
        if cached is None or cached[0] is not claim:
            cls = type(claim)
            digests = _digests(cls.__mro__)
            identity = b"|".join([claim.id.encode(), _class_name(cls).encode(), _pickled(vars(claim))])
            cached = (claim, version_of_digests(digests), digests, identity)
            self._claim_ids[id(claim)] = cached
        return cached[1], cached[2], cached[3]

    def _encoder_identity(self, encoder) -> tuple[bytes, dict[str, str]]:
        cached = self._encoder_ids.get(id(encoder))
        if cached is None or cached[0] is not encoder:
            if encoder is None:
                cached = (encoder, b"reference", {})
            else:
                cls = type(encoder)
                digests = _digests(cls.__mro__)
                identity = b"|".join([_class_name(cls).encode(), version_of_digests(digests).encode(),
                                      _pickled(encoder)])
                cached = (encoder, identity, digests)
            self._encoder_ids[id(encoder)] = cached
        return cached[1], cached[2]

    def key(self, task: CellTask) -> CacheKey | None:
        """The :class:`CacheKey` of a :class:`~udl.engine.tasks.CellTask`, or None when uncacheable
        (a task under a mutant is never cached)."""
        if getattr(task.ctx, "mutant", None) is not None:
            return None
        try:
            version, digests, claim = self._claim_identity(task.claim)
            ctx = task.ctx
            encoder, encoder_digests = self._encoder_identity(ctx.encoder)
            parts = [
                FORMAT.encode(), version.encode(), claim,
                str(task.cell_index).encode(), canonical_cell(task.cell).encode(),
                str(bool(ctx.control)).encode(),
                ",".join(str(int(s)) for s in task.seeds).encode(),
                f"threads={int(getattr(task, 'threads', 1))}".encode(),
                str(ctx.dtype).encode(), str(ctx.device).encode(), encoder,
                library_versions().encode(),
            ]
        except (LookupError, TypeError, AttributeError, pickle.PicklingError, OSError):
            return None
        sources = tuple(sorted({**digests, **encoder_digests}.items()))
        return CacheKey(version, sha256_parts(*parts), sources)

    # ----------------------------------------------------------------- entries
    def load(self, task: CellTask, key: CacheKey | None) -> CellOutcome | None:
        """The cached :class:`~udl.engine.tasks.CellOutcome` of ``task``, or None (a miss).

        An entry that does not read back as this task's table (a malformed, truncated or
        mismatching file) counts as ``unreadable`` and is a miss; nothing is unpickled.
        """
        if key is None:
            return None
        table_path, meta_path = entry_paths(self.directory, key.version, task.claim.id, key.digest)
        try:
            meta_text = meta_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            table = self._read(task, key, meta_text, table_path)
        except Exception:  # any damage (OS, gzip, JSON, CSV, a field): recompute, never crash the run
            self.stats.unreadable += 1
            return None
        self.stats.hits += 1
        return CellOutcome(table, None, None, 0.0)

    @staticmethod
    def _read(task: CellTask, key: CacheKey, meta_text: bytes, table_path: Path):
        meta = json.loads(meta_text.decode("utf-8"))
        expected = {"format": ENTRY_FORMAT, "key": key.digest, "claim": task.claim.id,
                    "cell_index": task.cell_index, "control": bool(task.ctx.control)}
        wrong = [name for name, value in expected.items() if meta.get(name) != value]
        if wrong:
            raise ValueError(f"entry fields {wrong} do not match the task")
        blob = table_path.read_bytes()
        described = meta["table"]
        if hashlib.sha256(blob).hexdigest() != described["sha256"]:
            raise ValueError("table file does not match its description")
        table = decode_table(gzip.decompress(blob), described["columns"])
        if len(table) != described["rows"]:
            raise ValueError("row count does not match the description")
        return table

    def _description(self, task: CellTask, key: CacheKey, outcome: CellOutcome, blob: bytes,
                      columns: list[dict]) -> dict:
        ctx = task.ctx
        encoder = "reference" if ctx.encoder is None else _class_name(type(ctx.encoder))
        return {
            "format": ENTRY_FORMAT, "key": key.digest, "udl_version": udl_version(),
            "code": {"version": key.version, "sources": dict(key.sources), "libraries": library_versions()},
            "claim": task.claim.id, "claim_class": _class_name(type(task.claim)),
            "cell_index": task.cell_index, "cell": json.loads(canonical_cell(task.cell)),
            "control": bool(ctx.control), "seeds": [int(s) for s in task.seeds],
            "threads": int(getattr(task, "threads", 1)), "dtype": str(ctx.dtype), "device": str(ctx.device),
            "encoder": encoder, "seconds": float(outcome.seconds),
            "table": {"sha256": hashlib.sha256(blob).hexdigest(), "rows": len(outcome.table), "columns": columns},
        }

    def store(self, task: CellTask, key: CacheKey | None, outcome: CellOutcome) -> bool:
        """Store a successful outcome atomically; errors and uncacheable tasks are skipped.

        Returns
        -------
        bool
            True when an entry was written. A table that would not read back identical
            (:class:`~udl.engine.table_codec.TableCodecError`) is not stored and counts as uncacheable.
        """
        if key is None:
            self.stats.uncacheable += 1
            return False
        if outcome.error is not None or outcome.table is None:
            return False
        try:
            data, columns = encode_table(outcome.table)
        except TableCodecError:
            self.stats.uncacheable += 1
            return False
        blob = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
        table_path, meta_path = entry_paths(self.directory, key.version, task.claim.id, key.digest)
        table_path.parent.mkdir(parents=True, exist_ok=True)
        self._tag()
        atomic_write(table_path, blob)
        atomic_write(meta_path, json_dumps(self._description(task, key, outcome, blob, columns)))
        self.stats.stored += 1
        return True

    def _tag(self) -> None:
        """Mark the directory as a udl cache (CACHEDIR.TAG), once."""
        if not self._tagged:
            tag = self.directory / TAG_NAME
            if not tag.exists():
                atomic_write(tag, TAG_TEXT)
            self._tagged = True

    def check(self) -> Path:
        """Check that the cache directory can be used (before computing anything).

        Raises
        ------
        ValueError
            The path exists and is not a directory, or cannot be created or written (a probe
            write, :func:`udl.engine.files.check_writable`).
        """
        target = self.directory
        if target.exists() and not target.is_dir():
            raise ValueError(f"cache path {str(target)!r} exists and is not a directory")
        check_writable(target, "cache directory")
        return target
