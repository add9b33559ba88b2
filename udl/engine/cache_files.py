"""The files of the cell cache (:mod:`udl.engine.cache`): where it lives, what udl writes there, and how
to look at it, prune it and clear it (``udl cache info|prune|clear``).

Location: ``--cache-dir``, else ``$UDL_CACHE_DIR``, else ``$XDG_CACHE_HOME/udl``, else ``~/.cache/udl``
(:func:`default_directory`); never the working directory unless asked for.

Layout (everything else in the directory is someone else's and is never touched)::

    <dir>/CACHEDIR.TAG                                   marks a udl cache (and tells backup tools to skip it)
    <dir>/v2/<code version[:16]>/<claim id>/<key>.csv.gz   a cell's table, gzipped CSV (udl.engine.table_codec)
    <dir>/v2/<code version[:16]>/<claim id>/<key>.json     its description: columns, claim, cell, seeds, code
                                                            version and source digests, library versions
    <dir>/v1/<code version[:16]>/<claim id>/<key>.pkl      entries of earlier udl versions (pickles): never read,
                                                            counted as stale and removed by prune and clear

An entry is **current** when every source root it records still has the digest it records and the
libraries are those it ran on (:mod:`udl.engine.sources`); otherwise it is **stale** (it can never be
read again). An entry whose description is unreadable or whose table is missing is **broken**.
This module imports only the standard library.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from udl.engine.sources import library_versions, sources_current

__all__ = ["CACHE_ENV", "DEFAULT_LOCATION", "FORMAT", "LEGACY_FORMAT", "ENTRY_FORMAT", "TAG_NAME", "TAG_TEXT",
           "TABLE_SUFFIX", "META_SUFFIX", "CacheDirectoryError", "CacheEntry", "CacheContents",
           "default_directory", "entry_paths", "is_cache", "scan", "remove_entries"]

#: Environment variable naming the cache directory (e.g. in CI, tests, or a cache shared by Dask workers).
CACHE_ENV = "UDL_CACHE_DIR"
#: Where the cache lives unless told otherwise, in words (``udl verify --help``, the README).
DEFAULT_LOCATION = f"${CACHE_ENV}, else $XDG_CACHE_HOME/udl, else ~/.cache/udl"
#: Directory of the current entry format; bump it when the entry format changes.
FORMAT = "v2"
#: Directory of the pickled entries of earlier udl versions (never read; stale).
LEGACY_FORMAT = "v1"
#: ``format`` field of an entry's description.
ENTRY_FORMAT = "udl-cell-cache/2"
TABLE_SUFFIX = ".csv.gz"
META_SUFFIX = ".json"
LEGACY_SUFFIX = ".pkl"
#: The Cache Directory Tagging signature (https://bford.info/cachedir/) and udl's comment.
TAG_NAME = "CACHEDIR.TAG"
TAG_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"
TAG_TEXT = (f"{TAG_SIGNATURE}\n# This file is a cache directory tag created by udl (its cache of finished cells).\n"
            "# `udl cache info|prune|clear --cache-dir <this directory>` inspects or empties it.\n")

_VERSION_DIR = re.compile(r"^[0-9a-f]{16}$")
_ENTRY = re.compile(r"^(?P<key>[0-9a-f]{64})(?P<suffix>\.csv\.gz|\.json|\.pkl)$")
_LEFTOVER = re.compile(r"^\.[0-9a-f]{64}(?:\.csv\.gz|\.json|\.pkl)\.tmp-[0-9a-f]{8,12}$")


class CacheDirectoryError(ValueError):
    """A path that is not a udl cache directory (the message names it and says why)."""


def default_directory() -> Path:
    """The cache directory when none is given: ``$UDL_CACHE_DIR``, else ``$XDG_CACHE_HOME/udl``,
    else ``~/.cache/udl`` (:data:`DEFAULT_LOCATION`)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():  # the XDG spec: a relative value is ignored
        return Path(xdg) / "udl"
    return Path.home() / ".cache" / "udl"


def entry_paths(directory: str | Path, version: str, claim_id: str, key: str) -> tuple[Path, Path]:
    """``(table, description)`` paths of an entry of the current format."""
    folder = Path(directory) / FORMAT / version[:16] / claim_id
    return folder / f"{key}{TABLE_SUFFIX}", folder / f"{key}{META_SUFFIX}"


# --------------------------------------------------------------------------- scanning
@dataclass
class CacheEntry:
    """One cached cell: its files, their size, and its state (``current``, ``stale`` or ``broken``)."""

    claim: str
    key: str
    files: list[Path]
    size: int
    state: str
    legacy: bool = False


@dataclass
class CacheContents:
    """What a cache directory holds: udl's entries, udl's leftover temporary files, and how many
    files in it are not udl's (never touched)."""

    directory: Path
    entries: list[CacheEntry] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    tagged: bool = False

    def count(self, state: str | None = None) -> int:
        return sum(1 for e in self.entries if state is None or e.state == state)

    def size(self, state: str | None = None) -> int:
        return sum(e.size for e in self.entries if state is None or e.state == state)


def _is_tag(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return False
    return text.startswith(TAG_SIGNATURE) and "udl" in text


def _state(meta_path: Path, table_path: Path, libraries: str) -> str:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        code = meta["code"]
        sources, recorded = code["sources"], code["libraries"]
        ok = meta["format"] == ENTRY_FORMAT and isinstance(sources, dict) and table_path.is_file()
    except (OSError, ValueError, KeyError, TypeError):
        return "broken"
    if not ok:
        return "broken"
    return "current" if recorded == libraries and sources_current(sources) else "stale"


def _dirs(path: Path):
    return [p for p in sorted(path.iterdir()) if p.is_dir() and not p.is_symlink()] if path.is_dir() else []


def _scan_claim_dir(folder: Path, legacy: bool, contents: CacheContents, libraries: str) -> None:
    groups: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        match = _ENTRY.match(path.name)
        if path.is_symlink() or not path.is_file():
            contents.foreign.append(str(path.relative_to(contents.directory)))
        elif match and (match["suffix"] == LEGACY_SUFFIX) == legacy:
            groups.setdefault(match["key"], []).append(path)
        elif _LEFTOVER.match(path.name):
            contents.leftovers.append(path)
        else:
            contents.foreign.append(str(path.relative_to(contents.directory)))
    for key, files in groups.items():
        if legacy:
            state = "stale"
        else:
            state = _state(folder / f"{key}{META_SUFFIX}", folder / f"{key}{TABLE_SUFFIX}", libraries)
        size = sum(f.stat().st_size for f in files)
        contents.entries.append(CacheEntry(folder.name, key, files, size, state, legacy))


def scan(directory: str | Path) -> CacheContents:
    """What ``directory`` holds (an absent directory holds nothing).

    Raises
    ------
    CacheDirectoryError
        ``directory`` exists and is not a directory.
    """
    directory = Path(directory)
    contents = CacheContents(directory)
    if not directory.exists():
        return contents
    if not directory.is_dir():
        raise CacheDirectoryError(f"{str(directory)!r} is not a directory")
    contents.tagged = _is_tag(directory / TAG_NAME)
    libraries = library_versions()
    for entry in sorted(directory.iterdir()):
        if entry.name == TAG_NAME and contents.tagged:
            continue
        if entry.name not in (FORMAT, LEGACY_FORMAT) or entry.is_symlink() or not entry.is_dir():
            contents.foreign.append(entry.name)
            continue
        for version_dir in sorted(entry.iterdir()):
            if version_dir.is_symlink() or not version_dir.is_dir() or not _VERSION_DIR.match(version_dir.name):
                contents.foreign.append(str(version_dir.relative_to(directory)))
                continue
            for claim_dir in sorted(version_dir.iterdir()):
                if claim_dir.is_symlink() or not claim_dir.is_dir():
                    contents.foreign.append(str(claim_dir.relative_to(directory)))
                    continue
                _scan_claim_dir(claim_dir, entry.name == LEGACY_FORMAT, contents, libraries)
    return contents


def is_cache(contents: CacheContents) -> bool:
    """A udl cache: tagged by udl (every cache it writes is), or holding the pickled entries of an
    earlier udl (whose caches were untagged)."""
    return contents.tagged or any(entry.legacy for entry in contents.entries)


# --------------------------------------------------------------------------- removing
def _remove_empty_dirs(directory: Path) -> None:
    for fmt in (FORMAT, LEGACY_FORMAT):
        for version_dir in _dirs(directory / fmt):
            for claim_dir in _dirs(version_dir):
                _rmdir(claim_dir)
            _rmdir(version_dir)
        if (directory / fmt).is_dir() and not (directory / fmt).is_symlink():
            _rmdir(directory / fmt)


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:  # not empty: something else is in it
        pass


def remove_entries(contents: CacheContents, states: tuple[str, ...], *, everything: bool = False) -> tuple[int, int]:
    """Delete the entries of ``contents`` in ``states`` (their files only), then the directories of
    the layout that became empty; ``everything`` also deletes udl's leftovers and its tag, and the
    cache directory when nothing else is left in it (files that are not udl's always stay).

    Returns
    -------
    (int, int)
        Entries removed and their bytes.

    Raises
    ------
    CacheDirectoryError
        ``contents`` is not a udl cache (:func:`is_cache`): nothing is deleted.
    """
    directory = contents.directory
    if not directory.exists():
        return 0, 0
    if not is_cache(contents):
        raise CacheDirectoryError(f"{str(directory)!r} is not a udl cache (no {TAG_NAME} written by udl and no "
                                  "cache entries); nothing removed")
    removed = size = 0
    for entry in contents.entries:
        if entry.state in states:
            for file in entry.files:
                file.unlink(missing_ok=True)
            removed += 1
            size += entry.size
    if everything:
        for leftover in contents.leftovers:
            leftover.unlink(missing_ok=True)
    _remove_empty_dirs(directory)
    if everything:
        if contents.tagged:
            (directory / TAG_NAME).unlink(missing_ok=True)
        _rmdir(directory)  # only when nothing else is in it
    return removed, size
