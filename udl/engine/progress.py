"""Progress of a run on stderr, for a person at a terminal and for a log alike.

On a terminal the runner shows a tqdm bar (one tick per cell). When stderr is not a terminal
(CI, ``nohup``, a redirect to a file) a bar prints nothing useful, so :class:`ClaimLog` writes
one line when the run starts and one per finished claim instead: its id, its verdict and the
seconds its cells and decision took. The verdict is decided as soon as the claim's last cell is
in — the same decision the run records — before the run's Holm adjustment, which the final
table applies (a PASS may still become INCONCLUSIVE there).
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Callable, TextIO

__all__ = ["is_terminal", "ClaimLog"]


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class ClaimLog:
    """One line per finished claim, for a log.

    Parameters
    ----------
    tasks : list of udl.engine.tasks.CellTask
        Every task of the run, in task order.
    collect : callable
        ``collect(claim_id, [(task, outcome), ...])`` decides a claim from its tasks (in task
        order) and returns its :class:`~udl.engine.runner.ClaimResult`.
    stream : text stream, optional
        Where the lines go (default stderr).
    """

    def __init__(self, tasks: list, collect: Callable, stream: TextIO | None = None):
        self.collect = collect
        self.stream = sys.stderr if stream is None else stream
        self.remaining = Counter(task.claim.id for task in tasks)
        self.claims = len(self.remaining)
        self.finished = 0
        self._done: dict[str, list] = {cid: [] for cid in self.remaining}
        self._order = {id(task): index for index, task in enumerate(tasks)}
        self._print(f"udl: running {self.claims} claim{'s' if self.claims != 1 else ''} "
                    f"({len(tasks)} cell tasks)")

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def done(self, task, outcome) -> None:
        """Record a finished cell task; print the claim's line when it was its last."""
        cid = task.claim.id
        self._done[cid].append((self._order.get(id(task), 0), task, outcome))
        self.remaining[cid] -= 1
        if self.remaining[cid]:
            return
        pairs = [(t, o) for _, t, o in sorted(self._done.pop(cid), key=lambda item: item[0])]
        result = self.collect(cid, pairs)
        self.finished += 1
        seconds = result.seconds + result.control_seconds
        control = f", control {result.control_outcome}" if result.control_outcome is not None else ""
        self._print(f"udl: [{self.finished}/{self.claims}] {cid} {result.outcome}{control} ({seconds:.1f}s; "
                    "before the run's Holm adjustment)")
