"""Rebuild a finished run's report page in this process and print its peak RSS and CPU time.

    python benchmarks/report_memory.py OUTPUT_DIR PAGE [--config FILE] [--batch NAME]

Reads the run through its run index (`report/<batch>/run.json`: the stage outputs and corpus
the report was built from), collects the report as `WriteReport` does, with the same facts, and
writes the page to PAGE, so that `cmp PAGE OUTPUT_DIR/report/<batch>/index.html` checks the
bytes. Nothing of the run is recomputed, so the code measured may differ from the code that
made the run (compare old and new code with PYTHONPATH pointing at each checkout): the page
does not depend on the code fingerprint. Peak RSS is the process's `VmHWM`.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import resource
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from pipeline import __version__
from pipeline.config import load_config
from pipeline.report import render_report_bytes
from pipeline.runs import FinishedRun, collect_report


def memory_status() -> dict[str, float]:
    """Return this process's memory figures from `/proc/self/status` (VmHWM: peak RSS; RssAnon, RssFile), in MiB."""
    figures = {}
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            figures[name] = int(value.split()[0]) / 1024
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="the run's output folder")
    parser.add_argument("page", type=Path, help="where to write the page")
    parser.add_argument("--config", default=None, help="the run's TOML config (the embedded defaults if not given)")
    parser.add_argument("--batch", default=None, help="the batch (the newest finished one if not given)")
    parser.add_argument(
        "--spill-entries", type=int, default=None, help="keys a counter holds in memory (pipeline.spill.SPILL_ENTRIES)"
    )
    args = parser.parse_args()
    if args.spill_entries is not None:
        import pipeline.spill

        pipeline.spill.SPILL_ENTRIES = args.spill_entries
    cfg = load_config(args.config)
    run = FinishedRun.open(args.output, args.batch)
    facts = (  # as `WriteReport.run` gives them, for a run with the corpus in <output>/corpus
        ("pipeline", __version__),
        ("batch", run.batch),
        ("plan", run.plan.name),
        ("config hash", hashlib.sha256(cfg.canonical_json().encode()).hexdigest()[:16]),
        ("corpus", "corpus/"),
    )
    title = f"{cfg.corpus.name}: what was removed and why"
    started = time.process_time()
    scratch = Path(tempfile.mkdtemp(prefix="report-counts-", dir=args.page.parent))
    try:
        if "scratch" in inspect.signature(collect_report).parameters:  # code before the spilled counts has none
            data = collect_report(run, cfg.report, title, facts, scratch=scratch)
        else:
            data = collect_report(run, cfg.report, title, facts)
        args.page.write_bytes(render_report_bytes(data))
    finally:
        shutil.rmtree(scratch)
    cpu = time.process_time() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    memory = memory_status()
    print(
        f"{args.page}: peak RSS {memory['VmHWM']:.0f} MiB (VmHWM; at the end RssAnon {memory['RssAnon']:.0f}, "
        f"RssFile {memory['RssFile']:.0f}), Arrow pool peak {pa.default_memory_pool().max_memory() / 2**20:.0f} MiB, "
        f"{cpu:.1f} CPU s collecting and rendering, {usage.ru_utime + usage.ru_stime:.1f} CPU s in all"
    )


if __name__ == "__main__":
    main()
