"""Run the pipeline's CLI with a record of every Luigi task's run time, for benchmarks/throughput.py.

`python benchmarks/luigi_timings.py TIMINGS.jsonl run --input ... --output ... --workers N`
calls the real CLI (`pipeline.cli.main`) after registering handlers for Luigi's `START` and
`PROCESSING_TIME` events. Both fire in the process that runs the task (a forked worker process
when `--workers` > 1; the handlers are inherited through the fork), so each finished task
appends one JSON line: its family, when it started and ended (epoch seconds), its wall and CPU
seconds, the process id and the process's peak RSS (`VmHWM`: with `--workers` > 1 each task
runs in a process forked for it, so this is the task's peak, shared pages of the parent
included; with one worker every task runs in the main process, so it only ever grows). Lines
are short single `write`s to a file opened for appending, so those of concurrent workers do
not interleave. Nothing else about the run changes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import luigi  # noqa: E402 - after the path set-up

_started: dict[str, float] = {}


def _on_start(task: Any) -> None:
    _started[task.task_id] = time.process_time()


def _peak_rss() -> int:
    """Return this process's peak RSS in bytes (VmHWM): one task's, in a worker process of its own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _record(path: str) -> Any:
    def on_processing_time(task: Any, seconds: float) -> None:
        end = time.time()
        entry = {
            "family": task.task_family,
            "start": end - seconds,
            "end": end,
            "seconds": seconds,
            "cpu_seconds": time.process_time() - _started.pop(task.task_id, time.process_time()),
            "pid": os.getpid(),
            "peak_rss": _peak_rss(),
        }
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(entry) + "\n").encode())
        finally:
            os.close(fd)

    return on_processing_time


def main() -> int:
    """Register the handlers, then run `pipeline.cli.main` on the remaining arguments."""
    timings, arguments = sys.argv[1], sys.argv[2:]
    luigi.Task.event_handler(luigi.Event.START)(_on_start)
    luigi.Task.event_handler(luigi.Event.PROCESSING_TIME)(_record(timings))
    from pipeline.cli import main as cli_main

    return cli_main(arguments)


if __name__ == "__main__":
    sys.exit(main())
