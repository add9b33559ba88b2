"""Writing files atomically: the one atomic-write helper of the project."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

__all__ = ["atomic_write"]


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
