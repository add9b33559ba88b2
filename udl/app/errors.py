"""How the ``udl`` command reports an error: one line on stderr, an exit status by kind, and the
traceback only on request (``udl --debug …`` or ``UDL_DEBUG=1``).

=====================================================  ============================
error                                                  exit status
=====================================================  ============================
bad input (:class:`~udl.app.options.UsageError`), a    2 (:data:`EXIT_USAGE`)
path udl may not write or read (an output directory
that is not udl's, a malformed run), any ``OSError``
(permissions, a full disk, ``/proc``)
Ctrl-C                                                 130 (:data:`EXIT_INTERRUPTED`)
anything else: a bug in udl                            3 (:data:`EXIT_INTERNAL`)
=====================================================  ============================

Importing this module is cheap (the engine's error classes are looked up only when the engine
is already loaded).
"""

from __future__ import annotations

import os
import sys
import traceback

from udl.app.options import DEBUG_ENV, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, UsageError

__all__ = ["debug_requested", "one_line", "describe_os_error", "report_error"]

#: Values of :data:`~udl.app.options.DEBUG_ENV` that leave debugging off.
_OFF = ("", "0", "false", "no", "off")


def debug_requested(argv: list[str] | None) -> bool:
    """``--debug`` among the arguments, or ``UDL_DEBUG`` set (to anything but 0/false/no/off)."""
    return "--debug" in (argv or []) or os.environ.get(DEBUG_ENV, "").strip().lower() not in _OFF


def one_line(text: str) -> str:
    """``text`` on one line (runs of whitespace, newlines included, become one space)."""
    return " ".join(str(text).split())


def describe_os_error(exc: OSError) -> str:
    """``<strerror>: '<path>'`` (and ``-> '<path2>'`` for a rename), or the error's text."""
    if exc.strerror and exc.filename is not None:
        target = f" -> {str(exc.filename2)!r}" if exc.filename2 is not None else ""
        return f"{exc.strerror}: {str(exc.filename)!r}{target}"
    return one_line(str(exc)) or type(exc).__name__


def _input_errors() -> tuple[type, ...]:
    """The engine's errors that mean a path udl may not write or read (bad input, exit 2)."""
    kinds: list[type] = []
    for module, name in (("udl.engine.files", "OutputPathError"), ("udl.engine.results", "RunDirectoryError")):
        loaded = sys.modules.get(module)
        if loaded is not None:
            kinds.append(getattr(loaded, name))
    return tuple(kinds)


def report_error(exc: BaseException, prog: str, debug: bool) -> int:
    """Print one line for ``exc`` on stderr (after its traceback when ``debug``) and return the
    exit status.

    Parameters
    ----------
    exc : BaseException
        The error that ended the command (not a :class:`SystemExit`).
    prog : str
        The command (``"udl verify"``) that prefixes the line.
    debug : bool
        Print the traceback first.

    Returns
    -------
    int
    """
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    if isinstance(exc, UsageError):
        text = str(exc).splitlines()[0] if str(exc).strip() else f"{prog}: error"
        status = EXIT_USAGE
    elif isinstance(exc, KeyboardInterrupt):
        text, status = f"{prog}: interrupted", EXIT_INTERRUPTED
    elif isinstance(exc, _input_errors()):
        text, status = f"{prog}: error: {one_line(str(exc))}", EXIT_USAGE
    elif isinstance(exc, OSError):
        text, status = f"{prog}: error: {describe_os_error(exc)}", EXIT_USAGE
    else:
        hint = "" if debug else f"; run with {DEBUG_ENV}=1 or --debug for the traceback"
        text = (f"{prog}: internal error: {type(exc).__name__}: {one_line(str(exc))} (a bug in udl or in "
                f"the claims package{hint})")
        status = EXIT_INTERNAL
    print(text, file=sys.stderr, flush=True)
    return status
