"""`python -m pipeline`: run the whole job, or one stage on one document.

Exit status (for cron and systemd):
  0  every task succeeded and every input was kept, cleaned away or deduplicated
  1  a task failed (the message names the task and its input)
  2  bad usage: a bad config value, an unknown key, an input path that names nothing
  3  every task succeeded but some inputs were quarantined: unreadable files, WARC records or JSON
     lines (each is listed on stderr and in <output>/quarantine/index.jsonl with its reason)

`explain` exits 0 when it explained a document, 1 when the query names no document of the run,
2 when the output folder holds no finished run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import luigi
from luigi.execution_summary import LuigiStatusCode

from pipeline import __version__
from pipeline.config import ConfigError, load_config, render_default_toml
from pipeline.explain import explain_document, use_color
from pipeline.inputs import InputError, make_plan, save_plan
from pipeline.runs import FinishedRun, RunNotFoundError
from pipeline.tasks import STAGES, PipelineTask, PlanTask, RunShardTask, ShardTask, WriteCorpus, WriteReport

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_QUARANTINED = 0, 1, 2, 3
DEFAULT_INPUT = "seeds"
DEFAULT_OUTPUT = "output"
PLAN_DIR = "00_plan"


def _report_failure(task: PipelineTask, exception: BaseException) -> None:
    print(
        f"pipeline: FAILED {task.task_family} on {task.describe_input()}: {type(exception).__name__}: {exception}",
        file=sys.stderr,
        flush=True,
    )


def _build(tasks: list[luigi.Task], workers: int) -> bool:
    """Run tasks with the local scheduler; return whether every one of them succeeded."""
    handler = luigi.Task.event_handler(luigi.Event.FAILURE)(_report_failure)
    try:
        result = luigi.build(tasks, workers=workers, local_scheduler=True, detailed_summary=True, log_level="WARNING")
    finally:
        luigi.Task._event_callbacks.get(luigi.Task, {}).get(luigi.Event.FAILURE, set()).discard(handler)
    ok = result.status in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY)
    if not ok:
        print(f"pipeline: run did not succeed ({result.status.name}):\n{result.summary_text}", file=sys.stderr)
    return ok


def _prepare(config: str | None, inputs: list[str], output: str) -> tuple[dict[str, Any], Path]:
    """Validate the config, plan the inputs, and return the common task parameters and the plan."""
    cfg = load_config(config)
    plan = make_plan(inputs, cfg.input.files_per_shard)
    output_dir = Path(output).resolve()
    plan_path = save_plan(plan, output_dir / PLAN_DIR)
    common = {"config": str(Path(config).resolve()) if config else "", "output_dir": str(output_dir)}
    return common, plan_path


def command_run(args: argparse.Namespace) -> int:
    """Run the whole job into the output folder."""
    common, plan_path = _prepare(args.config, args.input, args.output)
    report = WriteReport(plan=str(plan_path), **common)
    if not _build([report], args.workers):
        return EXIT_FAILED
    task = report.requires()
    marker = json.loads(Path(task.output().path).read_text(encoding="utf-8"))
    counts = marker["counts"]
    docs = counts["documents"]
    print(
        f"pipeline: {counts['documents_in']} documents in: "
        + ", ".join(f"{n} {status}" for status, n in docs.items())
        + f"; corpus at {task.folder}; report at {report.folder / WriteReport.PAGE}"
    )
    if docs.get("quarantined"):
        print(
            f"pipeline: {docs['quarantined']} inputs quarantined; reasons in {task.folder / 'manifest'}",
            file=sys.stderr,
        )
        _list_quarantined(task.quarantine_index)
        return EXIT_QUARANTINED
    return EXIT_OK


def _list_quarantined(index: Path, limit: int = 20) -> None:
    """Print the first quarantined inputs and their reasons to stderr."""
    with index.open(encoding="utf-8") as handle:
        entries = [json.loads(line) for line in handle]
    for entry in entries[:limit]:
        print(f"pipeline: quarantined {entry['source']}: {entry['reason']}", file=sys.stderr)
    if len(entries) > limit:
        print(f"pipeline: ... and {len(entries) - limit} more, listed in {index}", file=sys.stderr)


def command_task(args: argparse.Namespace) -> int:
    """Run one stage (and what it needs) on one document and show where its result is."""
    stage = STAGES[args.stage]
    common, plan_path = _prepare(args.config, [args.doc], args.output)
    task: PipelineTask
    if issubclass(stage, ShardTask):
        shard = json.loads(plan_path.read_text(encoding="utf-8"))["shards"][0]
        shard_params = {"root": str(Path(args.doc).resolve().parent), "files": shard["files"], "stamp": shard["stamp"]}
        if issubclass(stage, RunShardTask):  # the one-document plan: its lines are counted against earlier runs' state
            shard_params["plan"] = str(plan_path)
        task = stage(**shard_params, **common)
    elif stage in (WriteCorpus, WriteReport):
        corpus_dir = Path(common["output_dir"]) / "debug" / Path(args.doc).name / "corpus"
        task = stage(plan=str(plan_path), corpus_dir=str(corpus_dir), **common)
    else:
        assert issubclass(stage, PlanTask)
        task = stage(plan=str(plan_path), **common)
    if not _build([task], 1):
        return EXIT_FAILED
    print(f"pipeline: {stage.__name__} done; result in {task.output().path}")
    return EXIT_OK


def command_explain(args: argparse.Namespace) -> int:
    """Print what every stage did to one document of the finished run in the output folder."""
    try:
        run = FinishedRun.open(args.output)
    except RunNotFoundError as error:
        print(f"pipeline: {error}", file=sys.stderr)
        return EXIT_USAGE
    found = run.find(args.document)
    if not found:
        print(
            f"pipeline: no document {args.document!r} in the run in {args.output} "
            "(give a document id, a source as listed in the manifest, or an input path)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    color = use_color(sys.stdout, args.color)
    for number, row in enumerate(found[: args.limit]):
        if number:
            sys.stdout.write("\n" + "─" * 72 + "\n\n")
        sys.stdout.write(explain_document(run.trace(row), color=color))
    if len(found) > args.limit:
        print(f"pipeline: {len(found) - args.limit} more documents match; use --limit to see them", file=sys.stderr)
    return EXIT_OK


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
    run.add_argument("--workers", type=int, default=1, help="Luigi worker processes (default: 1)")
    run.set_defaults(func=command_run)

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
    explain.set_defaults(func=command_explain)

    config = commands.add_parser("config", help="print the default config, or validate a config file")
    config.set_defaults(func=command_config)

    for sub in (run, task):
        sub.add_argument("--output", default=DEFAULT_OUTPUT, metavar="DIR", help="output root (default: output)")
        sub.add_argument(
            "--config",
            default=None,
            metavar="FILE",
            help="TOML config (default: the embedded defaults; see configs/default.toml)",
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
