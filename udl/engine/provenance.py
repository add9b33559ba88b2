"""Provenance of a run: which udl, from which source tree, on which software and hardware.

:func:`environment` is the ``environment`` section of ``results.json``: the versions of udl and
of the numerical stack, the Python and platform, the host, the device and the threads, and the
state of udl's own source tree (:func:`source_state`): the git commit and whether the tree had
changes that commit does not hold (``git_dirty``).

The commit is recorded only when udl runs from **its own** checkout: the git repository that
holds the ``udl`` package directory must have that directory at its root (``<root>/udl``) and a
``pyproject.toml`` whose project name is ``udl``. An installed udl (site-packages) that happens
to sit inside someone else's repository records no commit (``None``), never that repository's.
"""

from __future__ import annotations

import platform
import re
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["GIT_TIMEOUT_S", "PACKAGE_DIR", "udl_version", "source_state", "environment"]

#: Seconds allowed for each git call when recording the commit; a slow or hung git must not
#: hold up writing results.
GIT_TIMEOUT_S = 5
#: The ``udl`` package directory of this process.
PACKAGE_DIR = Path(__file__).resolve().parent.parent
_PROJECT_NAME = re.compile(r'^\s*name\s*=\s*["\']udl["\']\s*$', re.MULTILINE)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def udl_version() -> str:
    """The installed udl's version (``"unknown"`` when udl runs uninstalled from a source tree)."""
    return _version("udl") or "unknown"


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _is_udl_checkout(root: Path, package_dir: Path) -> bool:
    """``root`` holds ``package_dir`` at its top and declares the project ``udl``."""
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    project = text.split("[project]", 1)[1].split("\n[", 1)[0] if "[project]" in text else ""
    return package_dir.resolve() == (root / "udl").resolve() and bool(_PROJECT_NAME.search(project))


def source_state(package_dir: str | Path = PACKAGE_DIR) -> dict:
    """The git commit of udl's own checkout and whether the tree differs from it.

    Parameters
    ----------
    package_dir : path
        The ``udl`` package directory (default: this process's).

    Returns
    -------
    dict
        ``git_commit`` (hex, or None when ``package_dir`` is not in udl's own checkout or git
        is unavailable) and ``git_dirty`` (True when tracked files differ from the commit or
        files git does not ignore are untracked; None without a commit).
    """
    package_dir = Path(package_dir)
    top = _git(package_dir, "rev-parse", "--show-toplevel")
    if not top or not _is_udl_checkout(Path(top.strip()), package_dir):
        return {"git_commit": None, "git_dirty": None}
    root = Path(top.strip())
    commit = (_git(root, "rev-parse", "HEAD") or "").strip() or None
    status = _git(root, "status", "--porcelain") if commit else None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status.strip())}


def _device_name(device: str | None) -> str | None:
    if device is None:
        return None
    if str(device).startswith("cuda"):
        import torch

        try:
            return torch.cuda.get_device_name(torch.device(device))
        except (RuntimeError, AssertionError, ValueError):
            return None
    return platform.processor() or platform.machine() or None


def _threads(threads_per_cell: int | None) -> dict:
    from udl.engine.threads import usable_cores

    torch = sys.modules.get("torch")
    return {"per_cell": threads_per_cell, "usable_cores": usable_cores(),
            "torch": torch.get_num_threads() if torch is not None else None}


def environment(device: str | None = None, threads_per_cell: int | None = None) -> dict:
    """Versions, source tree, host, device and threads of this process (not deterministic
    across machines).

    Parameters
    ----------
    device : str, optional
        The run's device (``cpu``, ``cuda:0``): its name is recorded as ``device_name``.
    threads_per_cell : int, optional
        Threads each cell computed with.

    Returns
    -------
    dict
        ``udl``, ``torch``, ``numpy``, ``scipy``, ``pandas``, ``python``, ``platform``,
        ``host``, ``git_commit``, ``git_dirty`` (:func:`source_state`), ``device``,
        ``device_name``, ``threads`` (``per_cell``, ``usable_cores``, ``torch``) and ``argv``.
    """
    return {
        "udl": _version("udl"),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "pandas": _version("pandas"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        **source_state(),
        "device": device,
        "device_name": _device_name(device),
        "threads": _threads(threads_per_cell),
        "argv": list(sys.argv),
    }
