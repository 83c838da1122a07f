"""What every ``tutor`` command shares: where output goes, how bad input fails, progress, threads.

Results go to stdout (one JSON object with ``--json``), progress and errors to stderr, so the
commands compose in shell pipelines; bad input exits with status 2 and a message that says what
to fix. This module imports nothing of the project's: both sides of the command line use it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

#: Called with (steps done, steps in all, what is happening, metrics so far).
Report = Callable[[int, int, str, Mapping[str, float]], None]
#: seconds between two progress lines when stderr is not a terminal (a log file, CI)
LINE_EVERY_S = 10.0


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error and return the exit to raise (status 2: bad input)."""
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(2)


def _shown(metrics: Mapping[str, float]) -> str:
    return "  ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in metrics.items())


@dataclass
class _Shown:
    """What a progress report last showed: its description, when (monotonic s), which line."""

    what: str = ""
    at: float = 0.0
    line: str = ""


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Report]:
    """A progress callback ``(done, total, what, metrics)`` reporting on stderr.

    On a terminal it draws a bar; otherwise (a log file, CI) it prints a line when the
    description changes (a new epoch, a new fold) and at most every :data:`LINE_EVERY_S`
    seconds, so long work is visible wherever stderr goes. Lines whose description changes
    stay on screen after the bar ends (each epoch's loss and validation AUC, say).
    """
    if not enabled:
        yield lambda done, total, what, metrics: None
        return
    last = _Shown()

    def line(done: int, total: int, what: str, metrics: Mapping[str, float]) -> str:
        return f"{what}  {_shown(metrics)}".rstrip() + f"  [{done}/{total}]"

    if not err.is_terminal:
        def report(done: int, total: int, what: str, metrics: Mapping[str, float]) -> None:
            now = time.monotonic()
            if what != last.what or now - last.at >= LINE_EVERY_S:
                err.print(line(done, total, what, metrics), highlight=False)
                last.what, last.at = what, now

        yield report
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total}"), TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("starting", total=1)

        def draw(done: int, total: int, what: str, metrics: Mapping[str, float]) -> None:
            if what != last.what and last.line:  # keep the finished step's last line
                bar.console.print(last.line, highlight=False)
            last.what, last.line = what, line(done, total, what, metrics)
            bar.update(task, completed=done, total=total,
                       description=f"{what}  {_shown(metrics)}".rstrip())

        yield draw


def default_threads() -> int:
    """Threads for numerical work when ``--threads`` is not given: half the cores, at least 1.

    PyTorch and numba default to one thread per core; on a shared machine a core taken by
    another process then stalls every parallel step (DKT training on a busy 2-core machine:
    statics2011, 3 epochs beside a busy loop: 1.06x its idle time with one thread, 3.07x with
    two; bench/threads_busy.py, bench/README.md).
    """
    return max(1, (os.cpu_count() or 2) // 2)


def use_threads(threads: int | None) -> int:
    """Run numba and PyTorch with ``threads`` threads (default: :func:`default_threads`);
    returns the number used. PyTorch is not imported for this: if it is not loaded yet, it
    reads the number from ``OMP_NUM_THREADS`` when it is."""
    n = default_threads() if threads is None else threads
    if n < 1:
        raise fail(f"--threads must be at least 1, got {n}")
    import numba

    # numba ships py.typed, but numba.core.config creates its settings at import time through
    # globals(), so no type checker sees NUMBA_NUM_THREADS (the documented number of threads
    # numba launches, which set_num_threads may not exceed)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    else:
        os.environ["OMP_NUM_THREADS"] = str(n)
    return n


def writable(path: Path, flag: str, *, directory: bool = False) -> None:
    """Fail now, before any long work, if ``path`` (a file, or a ``directory``) cannot be
    written; missing folders on the way are created."""
    if directory and path.exists() and not path.is_dir():
        raise fail(f"{flag} {path} is a file; give a directory")
    if not directory and path.is_dir():
        raise fail(f"{flag} {path} is a directory; give a file name")
    folder = path if directory else path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"{flag} {path}: cannot create the folder {folder} ({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise fail(f"{flag} {path}: no permission to write in {folder}")
