"""`python -m pipeline`: run the whole job (one batch, or a backfill of days), or one stage on one document.

Exit status (for cron and systemd):
  0  every task succeeded and every input was kept, cleaned away or deduplicated
  1  a task failed (the message names the task and its input)
  2  bad usage: a bad config value, an unknown key, an input path that names nothing, a bad date
  3  every task succeeded but some inputs were quarantined: unreadable files, WARC records or JSON
     lines (each is listed on stderr and in <output>/quarantine/<batch>/index.jsonl with its reason)
  4  another run holds the output folder's lock: nothing was done (try again later)

`explain` exits 0 when it explained a document, 1 when the query names no document of the run,
2 when the output folder holds no finished run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import luigi
import luigi.configuration
from luigi.execution_summary import LuigiStatusCode
from luigi.tools.range import RangeDaily

from pipeline import __version__
from pipeline.config import ConfigError, load_config, render_default_toml
from pipeline.explain import explain_document, use_color
from pipeline.inputs import (
    DEFAULT_BATCH,
    TASK_BATCH,
    InputError,
    Plan,
    check_batch_name,
    dated_inputs,
    make_plan,
    parse_date,
    save_plan,
)
from pipeline.monitoring import ProgressBar, stage_times
from pipeline.runs import FinishedRun, RunNotFoundError, StageOutputError, sentence_number
from pipeline.storage import LockedError, exclusive_lock, remove_orphaned_temporaries
from pipeline.tasks import (
    PLAN_DIR,
    STAGES,
    DailyBatch,
    FindDuplicates,
    PipelineTask,
    PlanTask,
    ShardTask,
    WriteCorpus,
    WriteReport,
    preload_models,
    remove_other_dedup_progress,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_QUARANTINED, EXIT_BUSY = 0, 1, 2, 3, 4
DEFAULT_INPUT = "seeds"
DEFAULT_OUTPUT = "output"
log = logging.getLogger(__name__)
_WAIT_FOR_OTHERS = 2.0
"""Seconds a worker of a central scheduler waits before asking again for the work other workers hold."""
LOCK_FILE = ".lock"
"""File under the output root that a run (or backfill) holds while it runs, so runs never overlap."""


def _report_failure(task: PipelineTask, exception: BaseException) -> None:
    print(
        f"pipeline: FAILED {task.task_family} on {task.describe_input()}: {type(exception).__name__}: {exception}",
        file=sys.stderr,
        flush=True,
    )


def _build(tasks: list[luigi.Task], workers: int, scheduler_url: str | None = None) -> bool:
    """Run tasks with the local scheduler, or as workers of a central `luigid`; return whether all succeeded.

    A worker of a central scheduler stays until every task is done, including tasks other
    processes or machines run, so each process's exit status speaks for the whole run: when
    Luigi stops it while others still work (its summary says "not granted run permission"),
    it waits and schedules again, taking over what a worker that died had left.
    """
    handler = luigi.Task.event_handler(luigi.Event.FAILURE)(_report_failure)
    options: dict[str, Any] = {"local_scheduler": True}
    if scheduler_url:
        luigi.configuration.get_config().set("worker", "keep_alive", "true")
        options = {"local_scheduler": False, "scheduler_url": scheduler_url}
    try:
        while True:
            result = luigi.build(tasks, workers=workers, detailed_summary=True, log_level="WARNING", **options)
            others_working = scheduler_url and result.status == LuigiStatusCode.NOT_RUN
            if not others_working or all(task.complete() for task in tasks):
                break
            time.sleep(_WAIT_FOR_OTHERS)
    finally:
        luigi.Task._event_callbacks.get(luigi.Task, {}).get(luigi.Event.FAILURE, set()).discard(handler)
    ok = result.status in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY) or (
        result.status == LuigiStatusCode.NOT_RUN and bool(scheduler_url)
    )
    if not ok:
        print(f"pipeline: run did not succeed ({result.status.name}):\n{result.summary_text}", file=sys.stderr)
    return ok


def _preload(config: str | None, workers: int) -> None:
    """Load the models before Luigi forks more than one worker, so that every task's process inherits them."""
    if workers > 1:
        preload_models(load_config(config))


def _plan(config: str | None, inputs: list[str], output: str) -> Plan:
    """Check the config, the output folder and the inputs, and plan them, writing nothing.

    A usage error thus leaves no trace.
    """
    cfg = load_config(config)
    _check_output(output)
    return make_plan(inputs, cfg.input.files_per_shard, cfg.input.max_shards, Path(output))


def _check_output(output: str) -> None:
    """Raise InputError unless `output` is a folder this process can make or write into."""
    target = Path(output).resolve()
    existing = next(path for path in (target, *target.parents) if path.exists())
    if not existing.is_dir():
        raise InputError(f"--output {output}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--output {output}: {existing} is not writable by this user")


def _prepare(config: str | None, plan: Plan, output: str) -> tuple[dict[str, Any], Path]:
    """Save the plan into the output folder; return the common task parameters and the plan's file."""
    plan_path = save_plan(plan, Path(output).resolve() / PLAN_DIR)
    return _common(config, output), plan_path


def _common(config: str | None, output: str) -> dict[str, Any]:
    return {"config": str(Path(config).resolve()) if config else "", "output_dir": str(Path(output).resolve())}


ABANDONED_AFTER_SECONDS = 24 * 3600.0
"""Where no lock says nobody else writes (workers of a central scheduler; `backfill`'s dedup
working folders), a temporary or a dedup working folder unchanged for this long was left by a
killed process, and is removed."""


def _locked(args: argparse.Namespace, what: str) -> Any:
    """Return the run lock of the output folder; none for workers of a central scheduler.

    Workers sharing a `luigid` cooperate instead: the scheduler never gives one task to two of
    them. Either way, what killed writers left behind is removed first (see `_cleaned`).
    """
    output = Path(args.output).resolve()
    if args.scheduler_url:
        return _cleaned(output, nullcontext(), ABANDONED_AFTER_SECONDS)
    return _cleaned(output, exclusive_lock(output / LOCK_FILE, what), 0.0)


@contextmanager
def _cleaned(output: Path, lock: AbstractContextManager[Any], idle_seconds: float) -> Iterator[None]:
    """Hold `lock`, and first remove the temporaries killed writers left (those unchanged for `idle_seconds`)."""
    with lock:
        for path in remove_orphaned_temporaries(output, idle_seconds):
            log.info("removed %s, left by an interrupted run", path)
        yield


def _remove_dedup_progress(output: Path, keep: Path | None, alone: bool) -> None:
    """Remove the dedup working folders killed runs left, but `keep` (see `remove_other_dedup_progress`).

    A `run` `alone` on the output folder removes every other one; workers of a central scheduler
    and `backfill`, which deduplicate several batches at once or one after another, only those
    unchanged for `ABANDONED_AFTER_SECONDS`.
    """
    for path in remove_other_dedup_progress(output, keep, 0.0 if alone else ABANDONED_AFTER_SECONDS):
        log.info("removed %s, dedup progress left by an interrupted run", path)


def _run_batch(args: argparse.Namespace) -> tuple[str, list[str]]:
    """Return the batch a `run` publishes and its inputs (a day's folders for `--date`)."""
    if args.date and args.batch:
        raise InputError("give --date or --batch, not both (a dated run's batch is its date)")
    if args.date:
        day = parse_date(args.date)
        return day.isoformat(), dated_inputs(args.input, day)
    return check_batch_name(args.batch or DEFAULT_BATCH), list(args.input)


def _show_progress(args: argparse.Namespace) -> bool:
    return bool(args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty()))


def _busy(error: LockedError) -> int:
    print(f"pipeline: another run is in progress: {error}; nothing done (exit {EXIT_BUSY})", file=sys.stderr)
    return EXIT_BUSY


def command_run(args: argparse.Namespace) -> int:
    """Run the whole job into the output folder: publish one batch."""
    batch, inputs = _run_batch(args)
    plan = _plan(args.config, inputs, args.output)
    try:
        with _locked(args, f"python -m pipeline run (batch {batch})"):
            common, plan_path = _prepare(args.config, plan, args.output)
            report = WriteReport(plan=str(plan_path), batch=batch, **common)
            keep = FindDuplicates(plan=str(plan_path), batch=batch, **common).working_folder
            _remove_dedup_progress(Path(common["output_dir"]), keep, alone=not args.scheduler_url)
            _preload(args.config, args.workers)
            with ProgressBar(report) if _show_progress(args) else nullcontext():
                ok = _build([report], args.workers, args.scheduler_url)
    except LockedError as error:
        return _busy(error)
    if not ok:
        return EXIT_FAILED
    return _summarise(report)


def _summarise(report: WriteReport) -> int:
    """Print the run summary of a finished batch and return its exit status."""
    task = report.requires()
    marker = json.loads(Path(task.output().path).read_text(encoding="utf-8"))
    counts = marker["counts"]
    docs = counts["documents"]
    print(
        f"pipeline: batch {marker['batch']}: {counts['documents_in']} documents in: "
        + ", ".join(f"{n} {status}" for status, n in docs.items())
        + f"; corpus at {task.folder}; report at {report.folder / WriteReport.PAGE}"
    )
    removals = sorted(counts["removals"], key=lambda r: (-r["count"], r["stage"], r["rule"]))
    if removals:
        print("pipeline: removals: " + ", ".join(f"{r['rule']} {r['count']}" for r in removals))
    times = stage_times(report, include_self=True)
    print("pipeline: time per stage: " + ", ".join(f"{stage} {sec:.1f} s" for stage, (_, sec) in times.items()))
    if docs.get("quarantined"):
        print(
            f"pipeline: {docs['quarantined']} inputs quarantined; reasons in {task.quarantine_index} "
            f"and {task.folder / 'manifest'}",
            file=sys.stderr,
        )
        _list_quarantined(task.quarantine_index)
        return EXIT_QUARANTINED
    return EXIT_OK


def command_backfill(args: argparse.Namespace) -> int:
    """Publish every day from --start to --stop that has inputs and no published batch, oldest first."""
    start, stop = parse_date(args.start), parse_date(args.stop)
    if stop < start:
        raise InputError(f"--stop {stop} is before --start {start}")
    load_config(args.config)  # a bad config or output folder is a usage error, before anything runs
    _check_output(args.output)
    common = _common(args.config, args.output)
    days = [start + dt.timedelta(days=n) for n in range((stop - start).days + 1)]
    of_params = {"inputs": list(args.input), "since": start.isoformat(), **common}
    today = dt.date.today()
    backfill = RangeDaily(
        of=DailyBatch,
        of_params=of_params,
        start=start,
        stop=stop + dt.timedelta(days=1),  # RangeDaily's stop is exclusive
        days_back=max(0, (today - start).days) + 1,
        days_forward=max(0, (stop - today).days) + 1,
        task_limit=len(days),
        param_name="date",
    )
    # An output inside a day's folder is refused here, before anything runs (InputError).
    empty = [day for day in days if not DailyBatch(date=day, **of_params).has_inputs()]
    if len(empty) == len(days):
        where = " ".join(dated_inputs(args.input, start))
        raise InputError(f"no day from {start} to {stop} has inputs (the first day's are looked for in {where})")
    if empty:
        shown = ", ".join(d.isoformat() for d in empty[:10]) + (" ..." if len(empty) > 10 else "")
        print(f"pipeline: {len(empty)} days have no inputs and are skipped: {shown}", file=sys.stderr)
    try:
        with _locked(args, f"python -m pipeline backfill ({start} to {stop})"):
            _remove_dedup_progress(Path(common["output_dir"]), None, alone=False)
            _preload(args.config, args.workers)
            ok = _build([backfill], args.workers, args.scheduler_url)
    except LockedError as error:
        return _busy(error)
    if not ok:
        return EXIT_FAILED
    status = EXIT_OK
    for day in days:
        batch = DailyBatch(date=day, **of_params)
        marker = batch.corpus_marker()
        if marker.exists():
            counts = json.loads(marker.read_text(encoding="utf-8"))["counts"]
            docs = ", ".join(f"{n} {s}" for s, n in counts["documents"].items())
            print(f"pipeline: batch {day}: {counts['documents_in']} documents in: {docs}")
            if counts["documents"].get("quarantined"):
                _list_quarantined(batch.quarantine_index(), batch=day.isoformat())
                status = EXIT_QUARANTINED
    return status


def _list_quarantined(index: Path, limit: int = 20, batch: str = "") -> None:
    """Print the first quarantined inputs and their reasons to stderr (each after its `batch`, when given)."""
    with index.open(encoding="utf-8") as handle:
        entries = [json.loads(line) for line in handle]
    where = f"batch {batch}: " if batch else ""
    for entry in entries[:limit]:
        print(f"pipeline: {where}quarantined {entry['source']}: {entry['reason']}", file=sys.stderr)
    if len(entries) > limit:
        print(f"pipeline: ... and {len(entries) - limit} more, listed in {index}", file=sys.stderr)


def command_task(args: argparse.Namespace) -> int:
    """Run one stage (and what it needs) on one document and show where its result is."""
    stage = STAGES[args.stage]
    common, plan_path = _prepare(args.config, _plan(args.config, [args.doc], args.output), args.output)
    common["carry_state"] = False  # the document is counted against earlier runs' state, not added to it
    task: PipelineTask
    if issubclass(stage, ShardTask):
        # The one-document plan's only shard; its lines are counted against earlier runs' state.
        task = stage(plan=str(plan_path), index=0, **common)
    elif stage in (WriteCorpus, WriteReport):
        corpus_dir = Path(common["output_dir"]) / "debug" / Path(args.doc).name / "corpus"
        task = stage(plan=str(plan_path), batch=TASK_BATCH, corpus_dir=str(corpus_dir), **common)
    else:
        assert issubclass(stage, PlanTask)
        task = stage(plan=str(plan_path), batch=TASK_BATCH, **common)
    if not _build([task], 1):
        return EXIT_FAILED
    print(f"pipeline: {stage.__name__} done; result in {task.output().path}")
    return EXIT_OK


def command_explain(args: argparse.Namespace) -> int:
    """Print what every stage did to one document of the finished runs in the output folder."""
    try:
        runs = [FinishedRun.open(args.output, args.batch)] if args.batch else FinishedRun.open_all(args.output)
    except RunNotFoundError as error:
        print(f"pipeline: {error}", file=sys.stderr)
        return EXIT_USAGE
    everything = runs if not args.batch else FinishedRun.open_all(args.output)  # where survivors may be
    found = [(run, row) for run in reversed(runs) for row in run.find(args.document)]
    if not found:
        print(
            f"pipeline: no document {args.document!r} in the runs in {args.output} "
            "(give a document id, a source as listed in the manifest, or an input path)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    color = use_color(sys.stdout, args.color)
    wanted = sentence_number(args.document)
    status = EXIT_OK
    for number, (run, row) in enumerate(found[: args.limit]):
        try:
            trace = run.trace(row, everything)
        except StageOutputError as error:
            print(f"pipeline: cannot explain {row['source']} of batch {run.batch}: {error}", file=sys.stderr)
            return EXIT_FAILED
        if number:
            sys.stdout.write("\n" + "─" * 72 + "\n\n")
        if len(runs) > 1:
            sys.stdout.write(f"batch {run.batch}\n")
        sys.stdout.write(explain_document(trace, color=color, sentence=wanted))
        if wanted is not None and wanted >= len(trace.flat_sentences()):
            print(f"pipeline: document {row['id']} of batch {run.batch} has no sentence {wanted}", file=sys.stderr)
            status = EXIT_FAILED
    if len(found) > args.limit:
        print(f"pipeline: {len(found) - args.limit} more documents match; use --limit to see them", file=sys.stderr)
    return status


def command_config(args: argparse.Namespace) -> int:
    """Print the effective config as TOML (the defaults, or a file merged over them)."""
    if args.config:
        load_config(args.config)  # validate; report errors with the file's name
        print(f"# {args.config}: valid")
    else:
        sys.stdout.write(render_default_toml())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"pipeline {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="clean and deduplicate inputs into a corpus")
    run.add_argument(
        "--input",
        nargs="+",
        default=[DEFAULT_INPUT],
        metavar="PATH",
        help="input files, folders or glob patterns (default: seeds)",
    )
    run.add_argument(
        "--date",
        metavar="YYYY-MM-DD",
        help="publish that day's batch: each --input names an inbox holding one folder per day (<input>/<date>/), "
        "or has a {date} placeholder ({date:%%Y/%%m/%%d} for other layouts)",
    )
    run.add_argument(
        "--batch",
        metavar="NAME",
        help=f"publish the inputs as this batch (default without --date: {DEFAULT_BATCH!r}, replaced by each such run)",
    )
    run.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="draw a progress bar on stderr (default auto: when stderr is a terminal)",
    )
    run.set_defaults(func=command_run)

    backfill = commands.add_parser(
        "backfill", help="publish every missing day from --start to --stop, oldest first (Luigi RangeDaily)"
    )
    backfill.add_argument("--start", required=True, metavar="YYYY-MM-DD", help="first day")
    backfill.add_argument("--stop", required=True, metavar="YYYY-MM-DD", help="last day (included)")
    backfill.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="PATH",
        help="inbox folders holding one folder per day, or paths with a {date} placeholder (as run --date)",
    )
    backfill.set_defaults(func=command_backfill)

    task = commands.add_parser("task", help="run one stage on one document, for debugging")
    task.add_argument("stage", choices=list(STAGES), help="the stage (Luigi task) to run")
    task.add_argument("--doc", required=True, metavar="PATH", help="the input document")
    task.set_defaults(func=command_task)

    explain = commands.add_parser(
        "explain", help="show what every stage did to one document of a finished run, and why"
    )
    explain.add_argument(
        "document",
        metavar="ID_OR_PATH",
        help="a document id (or a sentence key <id>:<n>), a source as in the manifest, or an input path",
    )
    explain.add_argument(
        "--output", default=DEFAULT_OUTPUT, metavar="DIR", help="output root of the run (default: output)"
    )
    explain.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the output (default auto: on a terminal, unless NO_COLOR is set)",
    )
    explain.add_argument(
        "--limit", type=int, default=10, help="documents to explain when a path holds many (default: 10)"
    )
    explain.add_argument("--batch", metavar="NAME", help="look in this batch only (default: every batch, newest first)")
    explain.set_defaults(func=command_explain)

    config = commands.add_parser("config", help="print the default config, or validate a config file")
    config.set_defaults(func=command_config)

    for sub in (run, backfill, task):
        sub.add_argument("--output", default=DEFAULT_OUTPUT, metavar="DIR", help="output root (default: output)")
        sub.add_argument(
            "--config",
            default=None,
            metavar="FILE",
            help="TOML config (default: the embedded defaults; see configs/default.toml)",
        )
    for sub in (run, backfill):
        sub.add_argument("--workers", type=int, default=1, help="Luigi worker processes (default: 1)")
        sub.add_argument(
            "--scheduler-url",
            metavar="URL",
            help="work as workers of this central luigid (e.g. http://scheduler:8082/) instead of alone; "
            "start the same command on every machine (shared output folder; dedup.index = 'redis')",
        )
    config.add_argument("--config", default=None, metavar="FILE", help="a config file to validate")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the command, return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "workers", 1) < 1:
        print("pipeline: --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        status: int = args.func(args)
    except (ConfigError, InputError) as error:
        print(f"pipeline: {error}", file=sys.stderr)
        return EXIT_USAGE
    return status
