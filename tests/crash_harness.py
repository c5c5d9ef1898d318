"""Run `python -m pipeline` with numbered kill points, for the crash-safety test.

    python -m tests.crash_harness --events FILE -- run --input ...    # list the points a run passes
    python -m tests.crash_harness --kill-at N -- run --input ...      # SIGKILL itself at point N

A point is every place where a crash leaves something different on disk: each record written
to a stage output, each fsync, each rename that publishes a file or folder, each Parquet file,
Parquet row group and dedup index segment about to be written. Each is labelled with the Luigi
task running at the time. Nothing in the package knows about this: the harness wraps the functions it calls.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import luigi

import pipeline.dedup_index
import pipeline.steps.dedup
import pipeline.storage
from pipeline.cli import main

_events: list[str] = []
_task = ["(no task)"]
_kill_at: list[int | None] = [None]


def _point(kind: str) -> None:
    _events.append(f"{_task[0]}:{kind}")
    if _kill_at[0] is not None and len(_events) == _kill_at[0]:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def _wrap(owner: Any, name: str, kind: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        _point(kind)
        return original(*args, **kwargs)

    setattr(owner, name, wrapped)


@luigi.Task.event_handler(luigi.Event.START)
def _started(task: luigi.Task) -> None:
    _task[0] = task.task_family


def run(argv: list[str]) -> int:
    """Parse the harness's own options, install the kill points, run the pipeline's CLI."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", help="write the labels of the points passed to this JSON file")
    parser.add_argument("--kill-at", type=int, help="SIGKILL at this point (1-based)")
    own, rest = parser.parse_known_args(argv)
    _kill_at[0] = own.kill_at
    _wrap(os, "replace", "rename")
    _wrap(os, "rename", "rename")
    _wrap(os, "fsync", "fsync")
    _wrap(pipeline.storage, "dump_record", "record")
    _wrap(pipeline.dedup_index, "dump_record", "record")
    # The dedup stage judges documents in small batches and records its progress after each,
    # so that it is also killed between two checkpoints, and resumed.
    vars(pipeline.steps.dedup)["SIGNING_BATCH"] = 48
    vars(pipeline.dedup_index)["CHECKPOINT_SECONDS"] = 0.0
    _wrap(pipeline.storage.pq, "write_table", "parquet")
    _wrap(pipeline.storage.AtomicParquetWriter, "write", "row-group")
    _wrap(pipeline.dedup_index, "_write_segment", "index-segment")
    _wrap(pipeline.dedup_index, "_merge_segments", "index-merge")
    status = main([arg for arg in rest if arg != "--"])
    if own.events:
        with open(own.events, "w", encoding="utf-8") as handle:  # noqa: PTH123 - a test tool's plain write
            json.dump(_events, handle)
    return status


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
