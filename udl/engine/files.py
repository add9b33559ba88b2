"""Writing files safely: the one atomic-write helper of the project, and the checks that keep udl
from writing where it cannot (a probe write) or from replacing what it did not write (an output
directory may be replaced only when everything in it is udl's, per a layout of what udl writes).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Iterable, Mapping

__all__ = ["atomic_write", "OutputPathError", "PROBE_PREFIX", "nearest_existing", "check_writable",
           "foreign_entries", "describe_entries", "check_replaceable", "discard_directory"]


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part.

    The bytes go to a temporary file in the same directory (same file system), are flushed
    and fsynced, and the temporary file is then renamed over ``path`` (:func:`os.replace`).
    On any error the temporary file is removed and ``path`` is left as it was. The file gets
    the permissions of a normally created file (the umask applies).

    Parameters
    ----------
    path : str or pathlib.Path
        The file to write; its directory must exist.
    data : bytes or str
        The content; a ``str`` is encoded as UTF-8 (no newline translation).

    Raises
    ------
    TypeError
        ``data`` is neither ``bytes`` nor ``str``.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write data must be bytes or str, got {type(data).__name__}")
    path = Path(path)
    staging = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        with open(staging, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- output directories
class OutputPathError(ValueError):
    """An output path that udl must not or cannot write; the message names it and says why."""


#: udl's own half-written or set-aside entries (``.<name>.tmp-<hex>``, ``.<name>.old-<hex>``),
#: left by a crash in the middle of an atomic write or a directory swap.
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-[0-9a-f]{8,12}$")
#: Prefix of the probe directory created (and removed at once) to test that a directory is writable.
PROBE_PREFIX = ".udl-probe-"


def nearest_existing(path: str | Path) -> Path:
    """``path`` made absolute, or its nearest ancestor that exists."""
    current = Path(path).absolute()
    while not (current.exists() or current.is_symlink()) and current != current.parent:
        current = current.parent
    return current


def check_writable(directory: str | Path, what: str = "output directory", *, beside: bool = False) -> Path:
    """Check, by a probe write, that files can be created in ``directory`` (or, when it does not
    exist yet, that it can be created): a uniquely named directory is made in the nearest
    existing ancestor and removed at once. Permission bits alone say nothing for root, a
    read-only mount or ``/proc``; the probe does.

    Parameters
    ----------
    directory : path
    what : str
        Names the directory in the message (``"output directory"``, ``"cache directory"``, …).
    beside : bool
        Probe next to ``directory`` (its parent, or the nearest existing ancestor of that):
        for a directory that is written elsewhere and renamed into place.

    Returns
    -------
    pathlib.Path
        The nearest existing ancestor that was probed.

    Raises
    ------
    OutputPathError
        That ancestor is not a directory, or the probe could not be written (the OS error).
    """
    ancestor = nearest_existing(Path(directory).absolute().parent if beside else directory)
    if not ancestor.is_dir():
        raise OutputPathError(f"cannot create {what} {str(directory)!r}: {str(ancestor)!r} is not a directory")
    probe = ancestor / f"{PROBE_PREFIX}{uuid.uuid4().hex[:12]}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise OutputPathError(f"cannot write {what} {str(directory)!r}: a probe write in {str(ancestor)!r} "
                              f"failed ({exc.strerror or type(exc).__name__})") from None
    return ancestor


def _ours(entry: Path, layout: Mapping[str, tuple[str, ...] | None], inside: tuple[str, ...] | None) -> bool:
    """Whether ``entry`` is one udl writes: a ``layout`` name of the right kind (a file for None,
    a directory for suffixes), a file with one of the directory's ``inside`` suffixes, or a leftover."""
    if entry.is_symlink():
        return False
    leftover = _LEFTOVER.match(entry.name)
    if leftover:
        name = leftover.group("name")
        return name in layout if inside is None else name.endswith(inside)
    if inside is not None:
        return entry.is_file() and entry.name.endswith(inside)
    if entry.name not in layout:
        return False
    return entry.is_file() if layout[entry.name] is None else entry.is_dir()


def foreign_entries(directory: str | Path, layout: Mapping[str, tuple[str, ...] | None]) -> list[str]:
    """The entries of ``directory`` that udl did not write, as relative paths (sorted).

    Parameters
    ----------
    directory : path
        An existing directory.
    layout : mapping
        What udl writes there: ``{name: None}`` for a file, ``{name: suffixes}`` for a directory
        that holds only files ending in one of ``suffixes`` (e.g. ``{"tables": (".csv.gz",)}``). udl's own
        leftovers of an interrupted atomic write (``.<name>.tmp-<hex>``) count as udl's; a
        symbolic link never does.

    Returns
    -------
    list of str
    """
    directory = Path(directory)
    foreign = []
    for entry in sorted(directory.iterdir()):
        if not _ours(entry, layout, None):
            foreign.append(entry.name + ("/" if entry.is_dir() and not entry.is_symlink() else ""))
        elif entry.is_dir() and not _LEFTOVER.match(entry.name):
            foreign += [f"{entry.name}/{inner.name}" for inner in sorted(entry.iterdir())
                        if not _ours(inner, layout, layout[entry.name])]
    return foreign


def describe_entries(names: list[str], limit: int = 4) -> str:
    """``a, b, c`` (at most ``limit`` names, then ``and N more``) for a one-line message."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def check_replaceable(directory: str | Path, layout: Mapping[str, tuple[str, ...] | None], what: str,
                      names: Iterable[str] | None = None) -> None:
    """Refuse to replace anything in ``directory`` that udl did not write.

    Parameters
    ----------
    directory : path
        An existing directory.
    layout : mapping
        What udl writes there (see :func:`foreign_entries`).
    what : str
        Names the directory in the message.
    names : iterable of str, optional
        Only these entries of ``directory`` will be replaced (default: the whole directory):
        each that exists must be udl's.

    Raises
    ------
    OutputPathError
        Something there udl did not write (the message lists it).
    """
    directory = Path(directory)
    if names is None:
        foreign = foreign_entries(directory, layout)
    else:
        wanted = {name: layout[name] for name in names}
        foreign = [name for name in foreign_entries(directory, layout)
                   if name.split("/")[0].rstrip("/") in wanted]
    if foreign:
        raise OutputPathError(f"{what} {str(directory)!r} holds files udl did not write "
                              f"({describe_entries(foreign)}); refusing to replace them: move them, "
                              "or choose another directory")


def discard_directory(directory: str | Path, layout: Mapping[str, tuple[str, ...] | None]) -> list[str]:
    """Delete a directory that udl wrote, entry by entry: only udl's entries are removed.

    Returns
    -------
    list of str
        Entries udl did not write, left in place (with the directory); empty when the
        directory is gone.
    """
    directory = Path(directory)
    foreign = foreign_entries(directory, layout)
    if foreign:
        return foreign
    shutil.rmtree(directory, ignore_errors=True)
    return []


def write_directory(target: str | Path, files: Mapping[str, bytes | str],
                    layout: Mapping[str, tuple[str, ...] | None]) -> Path:
    """Write a small output directory (``files``: name → content) atomically over ``target``.

    The files are written into a staging directory beside ``target``, which is then swapped into
    place; an earlier ``target`` is moved aside first and deleted entry by entry afterwards (only
    the entries of ``layout``: :func:`discard_directory`), and put back if the swap fails. A
    failure at any point leaves ``target`` as it was and no staging directory behind. The caller
    checks beforehand that ``target`` may be replaced (:func:`check_replaceable`).

    Returns
    -------
    pathlib.Path
        ``target``.
    """
    target = Path(target)
    parent = target.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        for name, data in files.items():
            atomic_write(staging / name, data)
        aside = None
        if target.exists():
            aside = parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, aside)
        try:
            os.replace(staging, target)
        except BaseException:
            if aside is not None:
                os.replace(aside, target)
            raise
        if aside is not None:
            discard_directory(aside, layout)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def check_output_directory(out: str | Path, layout: Mapping[str, tuple[str, ...] | None]) -> Path:
    """Check, before anything is computed, that a small output directory may be written at ``out``:
    a new path, or a directory holding only entries of ``layout`` (:func:`check_replaceable`), with
    a writable parent (a probe write). Raises :class:`OutputPathError` otherwise (a file, a link, a
    directory with other entries, an unwritable place); returns ``out`` as a path."""
    target = Path(out)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise OutputPathError(f"output path {str(target)!r} exists and is not a directory")
    if target.is_dir():
        check_replaceable(target, layout, "output directory")
    check_writable(target, beside=True)
    return target
