"""What a running job tells its watchers: task status and progress, task times, a terminal progress bar.

- Tasks call `report_progress`, which sets Luigi's status message and progress percentage (shown
  on `luigid`'s web page), at most once a second so a central scheduler is not flooded.
- Every stage task's run time is kept in `<output>/timings/<task id>.json` with the host and pid
  that ran it (written by the task's own process, so it works with any number of workers and
  machines); `stage_times` adds them up per stage for the run summary.
- `ProgressBar` polls which tasks of a run are complete and draws a bar on a terminal.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import luigi
from luigi.task import flatten

from pipeline.storage import atomic_write_text

TIMINGS_DIR = "timings"
_REPORT_EVERY = 1.0
"""Seconds between two progress reports of one task."""


def report_progress(task: luigi.Task, done: int, total: int | None, message: str, force: bool = False) -> None:
    """Set a task's status message and, when the total is known, its progress percentage (throttled).

    Outside a Luigi worker (a task's `run` called directly) there is no one to tell: nothing happens.
    """
    tell: Any = task  # Luigi's worker sets these two callbacks on the task it runs; they are None before
    if tell.set_status_message is None:
        return
    now = time.monotonic()
    last = tell.__dict__.get("_last_progress_report", 0.0)
    if not force and now - last < _REPORT_EVERY and (total is None or done < total):
        return
    tell.__dict__["_last_progress_report"] = now
    tell.set_status_message(message)
    if total and tell.set_progress_percentage is not None:
        tell.set_progress_percentage(min(100, round(100 * done / total)))


def timing_path(output_dir: str | Path, task: luigi.Task) -> Path:
    """Return where a task's run time is kept."""
    return Path(output_dir) / TIMINGS_DIR / f"{task.task_id}.json"


def record_task_time(task: luigi.Task, seconds: float) -> None:
    """Keep how long a task took (Luigi's PROCESSING_TIME event, in the process that ran it)."""
    output_dir = getattr(task, "output_dir", None)
    if output_dir:
        worker = f"{socket.gethostname()}:{os.getpid()}"
        record = {"task": task.task_family, "seconds": round(seconds, 3), "worker": worker}
        atomic_write_text(timing_path(output_dir, task), json.dumps(record) + "\n")


def upstream(task: luigi.Task) -> Iterator[luigi.Task]:
    """Yield every task a task depends on, directly or not, each once, dependencies first."""
    seen: set[str] = set()

    def visit(node: luigi.Task) -> Iterator[luigi.Task]:
        for dependency in flatten(node.requires()):  # type: ignore[no-untyped-call]  # luigi is untyped
            if dependency.task_id not in seen:
                seen.add(dependency.task_id)
                yield from visit(dependency)
                yield dependency

    yield from visit(task)


def stage_times(task: luigi.Task, include_self: bool = False) -> dict[str, tuple[int, float]]:
    """Return, per stage, how many of a task's upstream tasks have a recorded time and their total seconds.

    Stages come in the order the run went through them; `include_self` adds the task's own time.
    """
    times: dict[str, tuple[int, float]] = {}
    for node in [*upstream(task), *([task] if include_self else [])]:
        try:
            path = timing_path(getattr(task, "output_dir", "."), node)
            seconds = float(json.loads(path.read_text("utf-8"))["seconds"])
        except (OSError, ValueError, KeyError):
            continue
        n, total = times.get(node.task_family, (0, 0.0))
        times[node.task_family] = (n + 1, total + seconds)
    return times


class ProgressBar:
    """A progress bar of a run's tasks on a terminal, refreshed from a background thread.

    It counts the tasks whose outputs are complete, so it follows work done by every worker
    process (and by other machines sharing the scheduler).
    """

    def __init__(self, root: luigi.Task, stream: IO[str] = sys.stderr, every: float = 1.0) -> None:
        self.tasks = [*upstream(root), root]
        self.stream = stream
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> ProgressBar:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._draw(final=True)
        self.stream.write("\n")
        self.stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._draw()

    def _draw(self, final: bool = False) -> None:
        done = sum(1 for task in self.tasks if _complete(task))
        total = len(self.tasks)
        width = 30
        filled = width * done // total if total else width
        elapsed = time.monotonic() - self._started
        line = f"\rpipeline: [{'#' * filled}{'.' * (width - filled)}] {done}/{total} tasks, {elapsed:.0f} s"
        self.stream.write(line + ("" if final else " "))
        self.stream.flush()


def _complete(task: luigi.Task) -> bool:
    try:
        return bool(task.complete())  # type: ignore[no-untyped-call]  # luigi is untyped
    except Exception:  # a task that cannot tell yet (e.g. its index is busy) is not done
        return False
