"""``udl cache info|prune|clear``: look at the cache of finished cells, remove its stale entries, or
empty it.

- ``info`` prints where the cache is (and why there), its entries and their size, and how many are
  **stale** (computed by other code or library versions: never read again) or **broken**;
- ``prune`` removes the stale and broken entries, keeping the current ones;
- ``clear`` removes every entry udl wrote.

Only udl's files are ever removed (:mod:`udl.engine.cache_files`: its entries, its leftovers, its
``CACHEDIR.TAG``); anything else in the directory stays, and is named. ``prune`` and ``clear``
refuse a directory that is not a udl cache (exit 2). Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from udl.app.options import EXIT_OK, UsageError
from udl.engine.cache_files import CACHE_ENV, DEFAULT_LOCATION

__all__ = ["PROG", "ACTIONS", "configure", "main", "size_text"]

PROG = "udl cache"
ACTIONS = {
    "info": "print the cache's location, entries, size, and how many are stale",
    "prune": "remove the stale entries (other code or library versions) and broken ones",
    "clear": "remove every entry udl wrote (other files in the directory stay)",
}
#: Entry states removed by each action (:class:`udl.engine.cache_files.CacheEntry`).
_REMOVES = {"prune": ("stale", "broken"), "clear": ("current", "stale", "broken")}


def configure(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``udl cache``."""
    parser.epilog = ("exit status: 0 done; 2 bad input: --cache-dir is not a directory, or (prune, clear) "
                     "not a udl cache. Only files udl wrote are ever removed.")
    parser.add_argument("action", metavar="ACTION", choices=tuple(ACTIONS),
                        help="; ".join(f"{name}: {text}" for name, text in ACTIONS.items()))
    parser.add_argument("--cache-dir", metavar="DIR", default=None,
                        help=f"the cache directory (default {DEFAULT_LOCATION})")


def size_text(n: int) -> str:
    """Bytes in words: ``512 B``, ``3.4 kB``, ``12.0 MB``, ``1.5 GB`` (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _where(args: argparse.Namespace) -> tuple[Path, str]:
    from udl.engine.cache_files import default_directory

    if args.cache_dir:
        return Path(args.cache_dir), "--cache-dir"
    if os.environ.get(CACHE_ENV):
        return default_directory(), f"${CACHE_ENV}"
    return default_directory(), f"default: {DEFAULT_LOCATION}"


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _entries(n: int, adjective: str = "") -> str:
    return f"{n} {adjective}{'entry' if n == 1 else 'entries'}"


def _foreign_line(contents) -> str | None:
    from udl.engine.files import describe_entries

    if not contents.foreign:
        return None
    return f"not udl's, left alone: {_count(len(contents.foreign), 'file')} ({describe_entries(contents.foreign)})"


def _info(directory: Path, source: str, contents) -> int:
    from udl.engine.cache_files import is_cache

    print(f"cache: {directory} ({source})")
    if not directory.exists():
        print("entries: 0 (the directory does not exist yet)")
        return EXIT_OK
    print(f"entries: {contents.count()} ({size_text(contents.size())})")
    if not is_cache(contents):
        print("not a udl cache: no CACHEDIR.TAG written by udl and no entries")
    for state, meaning in (("current", "computed by this code and these library versions"),
                           ("stale", "other code or library versions, never read again: `udl cache prune` "
                                     "removes them"),
                           ("broken", "unreadable or incomplete, never read: `udl cache prune` removes them")):
        n = contents.count(state)
        if n or state != "broken":
            print(f"  {state}: {n} ({size_text(contents.size(state))}) - {meaning}")
    if contents.leftovers:
        print(f"leftover temporary files: {len(contents.leftovers)} (`udl cache clear` removes them)")
    foreign = _foreign_line(contents)
    if foreign:
        print(foreign)
    return EXIT_OK


def main(args: argparse.Namespace) -> int:
    """Run ``udl cache ACTION``; returns the exit status.

    Raises
    ------
    UsageError
        ``--cache-dir`` is not a directory, or (prune, clear) not a udl cache: nothing removed.
    """
    from udl.engine.cache_files import CacheDirectoryError, remove_entries, scan

    directory, source = _where(args)
    try:
        contents = scan(directory)
    except CacheDirectoryError as exc:
        raise UsageError(f"{PROG} {args.action}: error: argument --cache-dir: {exc}") from None
    if args.action == "info":
        return _info(directory, source, contents)
    if not directory.exists():
        print(f"{PROG} {args.action}: {directory} ({source}) does not exist: nothing to remove")
        return EXIT_OK
    try:
        removed, size = remove_entries(contents, _REMOVES[args.action], everything=args.action == "clear")
    except CacheDirectoryError as exc:
        raise UsageError(f"{PROG} {args.action}: error: argument --cache-dir: {exc}") from None
    line = f"removed {_entries(removed, 'stale or broken ' if args.action == 'prune' else '')} ({size_text(size)})"
    if args.action == "prune":
        line += f"; kept {_entries(contents.count() - removed, 'current ')}"
    print(f"{line} from {directory}")
    foreign = _foreign_line(contents)
    if foreign:
        print(foreign, file=sys.stderr)
    return EXIT_OK
