"""Memory and CPU of scheduling a whole run's task graph, without running any task.

`python benchmarks/scheduling_memory.py PLAN.json` builds the job's top task (`WriteReport`)
for a plan written by `python -m pipeline run` (`<output>/00_plan/plan-<hash>.json`) into an
empty temporary output folder, so that no task is complete, and hands it to a Luigi worker with
a local scheduler (`Worker.add`: every task is checked, its dependencies listed and the whole
graph sent to the scheduler, which keeps every task and its parameters). Prints the number of
tasks, the CPU and wall seconds of `add`, and the process's peak RSS before and after. Run it
from two checkouts to compare their scheduling on the same plan.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from luigi.scheduler import Scheduler  # noqa: E402 - after the path set-up
from luigi.worker import Worker  # noqa: E402

from pipeline.tasks import WriteReport  # noqa: E402


def peak_rss_mib() -> float:
    """Return this process's peak RSS in MiB (`ru_maxrss` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plan", type=Path, help="a plan file, <output>/00_plan/plan-<hash>.json")
    parser.add_argument("--workers", type=int, default=2, help="worker processes the worker is set up for")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as output:
        before = peak_rss_mib()
        wall, cpu = time.perf_counter(), time.process_time()
        worker = Worker(scheduler=Scheduler(), worker_processes=args.workers)
        worker.add(WriteReport(plan=str(args.plan.resolve()), output_dir=output))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        tasks = len(worker._scheduled_tasks)  # Luigi has no public count of the tasks a worker scheduled
        print(
            f"{REPO.name} at {args.plan.name}: {tasks:,} tasks scheduled in {cpu:.1f} CPU s ({wall:.1f} s); "
            f"peak RSS {peak_rss_mib():.0f} MiB ({before:.0f} MiB before scheduling)"
        )


if __name__ == "__main__":
    main()
