"""A cache of finished cells, so that an interrupted or repeated run recomputes only what is missing.

One entry per finished cell task (claim × parameter cell × control flag): the annotated
table that :func:`udl.engine.tasks.simulate_cell` returned, pickled. The key is a sha256 of

- the **code version**: every ``*.py`` file of the ``udl`` package and of the package (or
  module) of each class in the claim's MRO (for ``claims/``: every claim module, shared
  helpers included) — editing any of them invalidates the entries it could affect (a large
  third-party package stands in by the one module that defines the class);
- the claim: id, class, and its instance state (pickled);
- the cell: its position in the profile and its canonical JSON, the control flag, and the
  instance seeds (which carry the root seed and the instance count);
- the context: dtype, device and the encoder's identity (class, source, pickled state),
  and the threads per cell;
- the torch, numpy, scipy, pandas, scikit-learn and Python versions.

Nothing else (profile name, executor, worker count, order, other claims) enters, so a
``quick`` run, a Dask run and a serial run share entries when they compute the same cell.
A task whose claim, cell or encoder cannot be pickled is not cached (it is always computed).

Only successful cells are stored — a cell that raised is recomputed on the next run.
Entries are written atomically (a temporary file in the same directory, then a rename), so
an interrupted run never leaves a half-written entry; an unreadable or mismatching entry is
treated as missing and overwritten.

Layout: ``<dir>/v1/<code version[:16]>/<claim id>/<key>.pkl``. Old code versions are never
read again; delete their directories (or the whole cache) to reclaim space. Entries are
pickles: only point ``--cache-dir`` at a directory you trust.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from udl.engine.cells import canonical_cell, cell_dict
from udl.engine.files import atomic_write
from udl.engine.tasks import CellOutcome, CellTask

__all__ = ["CellCache", "CacheStats", "code_version", "DEFAULT_DIR", "FORMAT"]

#: Default cache directory, relative to the working directory (git-ignored in this repository).
DEFAULT_DIR = ".udl-cache"
#: Layout/format version of the entries; bump it when the entry format changes.
FORMAT = "v1"
_HASH_CHUNK = 1 << 20


def _sha256(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


#: A package with more ``*.py`` files than this (torch, numpy, ...) is versioned by the one
#: module that defines the class, not by its whole tree (its version is in the key anyway).
MAX_PACKAGE_FILES = 300
_PACKAGE_SIZES: dict[Path, int] = {}


def _source_root(module_name: str) -> Path | None:
    """What versions a class's code: its top-level package directory, or its module's file.

    The module's file alone stands for it when the module is not in a package, or when the
    package is large (more than :data:`MAX_PACKAGE_FILES` modules: a third-party library).
    """
    module = sys.modules.get(module_name)
    top = sys.modules.get(module_name.split(".")[0])
    file = getattr(module, "__file__", None)
    top_file = getattr(top, "__file__", None)
    if top_file is not None and Path(top_file).name == "__init__.py":
        package = Path(top_file).resolve().parent
        if package not in _PACKAGE_SIZES:
            _PACKAGE_SIZES[package] = sum(1 for _ in package.rglob("*.py"))
        if _PACKAGE_SIZES[package] <= MAX_PACKAGE_FILES or file is None:
            return package
    return None if file is None else Path(file).resolve()


def _hash_sources(root: Path) -> str:
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    digest = hashlib.sha256()
    for file in files:
        relative = file.relative_to(root).as_posix() if root.is_dir() else file.name
        digest.update(relative.encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


_SOURCE_HASHES: dict[tuple, str] = {}


def _source_hash(root: Path) -> str:
    # memoised on the (name, mtime, size) of every file, so an edit is always seen
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    key = (root, stamp)
    if key not in _SOURCE_HASHES:
        _SOURCE_HASHES[key] = _hash_sources(root)
    return _SOURCE_HASHES[key]


def code_version(*classes: type) -> str:
    """sha256 of the ``udl`` sources and of the sources of ``classes`` (their packages).

    Parameters
    ----------
    *classes : type
        Classes whose defining package's (or module's) ``*.py`` files enter the hash, e.g.
        ``type(claim).__mro__``.

    Returns
    -------
    str
        Hex digest.

    Raises
    ------
    LookupError
        A class has no source file (defined interactively): its code cannot be versioned.
    """
    roots = {Path(__file__).resolve().parent}
    for cls in classes:
        if cls is object or cls.__module__ == "builtins":
            continue
        root = _source_root(cls.__module__)
        if root is None:
            raise LookupError(f"{cls.__qualname__} has no source file (module {cls.__module__})")
        roots.add(root)
    return _sha256(*(f"{root.name}:{_source_hash(root)}".encode() for root in sorted(roots)))


def _versions() -> str:
    names = ("torch", "numpy", "scipy", "pandas", "scikit-learn")
    found = []
    for name in names:
        try:
            found.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name}=?")
    return ";".join([*found, f"python={platform.python_version()}"])


def _pickled(obj) -> bytes:
    buffer = io.BytesIO()
    pickle.Pickler(buffer, protocol=4).dump(obj)
    return buffer.getvalue()


def _encoder_identity(encoder) -> bytes:
    if encoder is None:
        return b"reference"
    cls = type(encoder)
    return b"|".join([f"{cls.__module__}.{cls.__qualname__}".encode(), code_version(*cls.__mro__).encode(),
                      _pickled(encoder)])


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
    directory : path
        Created on the first store.

    Examples
    --------
    >>> cache = CellCache(".udl-cache")            # doctest: +SKIP
    >>> udl.engine.runner.run(claims, "quick", 0, cache=cache)  # doctest: +SKIP
    """

    def __init__(self, directory: str | os.PathLike = DEFAULT_DIR):
        self.directory = Path(directory)
        self.stats = CacheStats()
        self._claim_ids: dict[int, tuple] = {}
        self._encoder_ids: dict[int, tuple] = {}

    def __repr__(self) -> str:
        return f"CellCache({str(self.directory)!r})"

    # ----------------------------------------------------------------- keys
    def _claim_identity(self, claim) -> tuple[str, bytes]:
        cached = self._claim_ids.get(id(claim))
        if cached is None or cached[0] is not claim:
            cls = type(claim)
            version = code_version(*cls.__mro__)
            identity = b"|".join([claim.id.encode(), f"{cls.__module__}.{cls.__qualname__}".encode(),
                                  _pickled(vars(claim))])
            cached = (claim, version, identity)
            self._claim_ids[id(claim)] = cached
        return cached[1], cached[2]

    def _encoder_identity(self, encoder) -> bytes:
        cached = self._encoder_ids.get(id(encoder))
        if cached is None or cached[0] is not encoder:
            cached = (encoder, _encoder_identity(encoder))
            self._encoder_ids[id(encoder)] = cached
        return cached[1]

    def key(self, task: CellTask) -> tuple[str, str] | None:
        """``(code version, key)`` of a :class:`~udl.engine.tasks.CellTask`, or None when uncacheable."""
        try:
            version, claim = self._claim_identity(task.claim)
            ctx = task.ctx
            parts = [
                FORMAT.encode(), version.encode(), claim,
                str(task.cell_index).encode(), canonical_cell(task.cell).encode(),
                str(bool(ctx.control)).encode(),
                ",".join(str(int(s)) for s in task.seeds).encode(),
                f"threads={int(getattr(task, 'threads', 1))}".encode(),
                str(ctx.dtype).encode(), str(ctx.device).encode(), self._encoder_identity(ctx.encoder),
                _versions().encode(),
            ]
        except (LookupError, TypeError, AttributeError, pickle.PicklingError, OSError):
            return None
        return version, _sha256(*parts)

    def _path(self, task: CellTask, key: tuple[str, str]) -> Path:
        version, digest = key
        return self.directory / FORMAT / version[:16] / task.claim.id / f"{digest}.pkl"

    # ----------------------------------------------------------------- entries
    def load(self, task: CellTask, key: tuple[str, str] | None) -> CellOutcome | None:
        """The cached :class:`~udl.engine.tasks.CellOutcome` of ``task``, or None (a miss)."""
        if key is None:
            return None
        path = self._path(task, key)
        try:
            with open(path, "rb") as handle:
                entry = pickle.load(handle)
        except FileNotFoundError:
            return None
        except Exception:  # truncated by hand, written by another version, ...: recompute
            self.stats.unreadable += 1
            return None
        if not isinstance(entry, dict) or entry.get("key") != key[1] or "table" not in entry:
            self.stats.unreadable += 1
            return None
        self.stats.hits += 1
        return CellOutcome(entry["table"], None, None, 0.0)

    def store(self, task: CellTask, key: tuple[str, str] | None, outcome: CellOutcome) -> bool:
        """Store a successful outcome atomically; errors and uncacheable tasks are skipped.

        Returns
        -------
        bool
            True when an entry was written.
        """
        if key is None:
            self.stats.uncacheable += 1
            return False
        if outcome.error is not None or outcome.table is None:
            return False
        path = self._path(task, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"key": key[1], "claim": task.claim.id, "cell_index": task.cell_index, "cell": cell_dict(task.cell),
                 "control": bool(task.ctx.control), "seconds": outcome.seconds, "table": outcome.table}
        atomic_write(path, pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))
        self.stats.stored += 1
        return True

    def check(self) -> Path:
        """Check that the cache directory can be used (before computing anything).

        Raises
        ------
        ValueError
            The path exists and is not a directory, or cannot be created or written.
        """
        target = self.directory
        if target.exists() and not target.is_dir():
            raise ValueError(f"cache path {str(target)!r} exists and is not a directory")
        ancestor = target.absolute()
        while not ancestor.exists():
            ancestor = ancestor.parent
        if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
            raise ValueError(f"cache directory {str(target)!r} is not writable ({str(ancestor)!r})")
        return target
