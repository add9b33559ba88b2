"""The code version of a computation: sha256 digests of the source files it ran, and the versions of
the libraries it ran on. The cell cache (:mod:`udl.engine.cache`) keys its entries on them, and
tells a stale entry from a current one by recomputing them (:func:`sources_current`).

This module imports only the standard library (``udl cache info`` needs no torch).
"""

from __future__ import annotations

import functools
import hashlib
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Mapping

__all__ = ["MAX_PACKAGE_FILES", "UDL_ROOT", "LIBRARIES", "sha256_parts", "source_root", "source_digest",
           "code_roots", "code_version", "version_of_digests", "library_versions", "sources_current"]

#: A package with more ``*.py`` files than this (torch, numpy, ...) is versioned by the one
#: module that defines the class, not by its whole tree (its version is in the key anyway).
MAX_PACKAGE_FILES = 300
#: The ``udl`` package directory: every computation depends on all of it.
UDL_ROOT = Path(__file__).resolve().parents[1]
#: Libraries whose version enters every key (a new torch may compute other last digits; pyarrow
#: decides how pandas stores text columns).
LIBRARIES = ("torch", "numpy", "scipy", "pandas", "scikit-learn", "pyarrow")

_PACKAGE_SIZES: dict[Path, int] = {}
_SOURCE_HASHES: dict[tuple, str] = {}


def sha256_parts(*parts: bytes) -> str:
    """Hex sha256 of length-prefixed parts (no two sequences of parts give the same input)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _package_size(package: Path) -> int:
    if package not in _PACKAGE_SIZES:
        _PACKAGE_SIZES[package] = sum(1 for _ in package.rglob("*.py"))
    return _PACKAGE_SIZES[package]


def source_root(module_name: str) -> Path | None:
    """What versions a module's code: the directory of its outermost package that holds its file,
    or its file alone.

    The outermost package is looked for along the dotted name, so a package installed under
    another package's name (``udl.claims`` from the ``claims/`` folder of a checkout) is versioned
    by its own directory. The file alone stands for the module when it is not in a package, or
    when that package is large (more than :data:`MAX_PACKAGE_FILES` modules: a third-party library).

    Returns
    -------
    pathlib.Path or None
        None when the module has no source file (defined interactively).
    """
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if file is None:
        return None
    file = Path(file).resolve()
    parts = module_name.split(".")
    for depth in range(1, len(parts) + 1):
        package = sys.modules.get(".".join(parts[:depth]))
        init = getattr(package, "__file__", None)
        if init is None or Path(init).name != "__init__.py":
            continue
        directory = Path(init).resolve().parent
        if file.is_relative_to(directory):
            return directory if _package_size(directory) <= MAX_PACKAGE_FILES else file
    return file


def _hash_sources(root: Path) -> str:
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    digest = hashlib.sha256()
    for file in files:
        relative = file.relative_to(root).as_posix() if root.is_dir() else file.name
        digest.update(relative.encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def source_digest(root: str | Path) -> str:
    """sha256 of the ``*.py`` files under ``root`` (their relative names and contents), or of the
    one file ``root``; memoised on the name, mtime and size of every file, so an edit is always seen.

    Raises
    ------
    OSError
        ``root`` is gone or unreadable.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"source {str(root)!r} does not exist")
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    key = (root, stamp)
    if key not in _SOURCE_HASHES:
        _SOURCE_HASHES[key] = _hash_sources(root)
    return _SOURCE_HASHES[key]


def code_roots(*classes: type) -> list[Path]:
    """The source roots of ``classes`` (:func:`source_root` of each one's module) and of udl itself.

    Raises
    ------
    LookupError
        A class has no source file (defined interactively): its code cannot be versioned.
    """
    roots = {UDL_ROOT}
    for cls in classes:
        if cls is object or cls.__module__ == "builtins":
            continue
        root = source_root(cls.__module__)
        if root is None:
            raise LookupError(f"{cls.__qualname__} has no source file (module {cls.__module__})")
        roots.add(root)
    return sorted(roots)


def version_of_digests(digests: Mapping[str, str]) -> str:
    """The code version of ``{source root path: digest}``: sha256 over the roots' names and digests."""
    named = sorted((Path(root).name, digest, str(root)) for root, digest in digests.items())
    return sha256_parts(*(f"{name}:{digest}".encode() for name, digest, _ in named))


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
    return version_of_digests({str(root): source_digest(root) for root in code_roots(*classes)})


@functools.lru_cache(maxsize=None)  # fixed for the life of a process
def library_versions() -> str:
    """``torch=2.x;numpy=...;...;python=3.x.y``: the versions of :data:`LIBRARIES` (``?`` when one is
    not installed) and of Python."""
    found = []
    for name in LIBRARIES:
        try:
            found.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name}=?")
    return ";".join([*found, f"python={platform.python_version()}"])


def sources_current(digests: Mapping[str, str]) -> bool:
    """Whether every source root of ``{path: digest}`` still exists with that digest."""
    try:
        return all(source_digest(root) == digest for root, digest in digests.items())
    except OSError:
        return False
