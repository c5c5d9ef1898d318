"""Throughput and memory of the whole job, beside bare trafilatura, bare ftfy and datatrove, in one run.

For each size and each input path (`text`: one plain-text scrape per file; `html`: one served
page per file), builds a corpus from real pages with `benchmarks/news_corpus.py` (syndicated
near-copies and per-site boilerplate; cached under `--work`), then runs, one after another:

- the whole job, `python -m pipeline run --input ... --output ... --workers N` for each N of
  `--workers` (the real CLI in a subprocess, started through `benchmarks/luigi_timings.py`,
  which records each Luigi task's wall and CPU time), into a fresh output folder;
- the bare baselines over the same files, each in its own subprocess: `trafilatura.extract`
  (HTML), trafilatura as the pipeline calls it (`extract_main_content`: metadata, date search),
  and `ftfy.fix_text` (plain text);
- datatrove's pipeline over the same documents as JSON Lines (`benchmarks/datatrove_baseline.py`
  in `benchmarks/.venv-datatrove/`, created here with `pip install datatrove[processing] spacy orjson`
  when missing): reader, [trafilatura,] FTFY, C4 line filter, MinHash dedup in 4 stages.

Every run is timed from outside (wall clock; CPU of the process tree from `RUSAGE_CHILDREN`;
peak RSS of the process tree, the sum of its processes' RSS sampled every 0.1 s from `/proc`,
which counts a forked worker's shared pages twice: an upper bound; CPU seconds of the whole
tree, from `RUSAGE_CHILDREN` or, when larger, from the samples). Documents kept and their
statuses are read from the corpus folder (`pyarrow.dataset` over every Parquet file below
`corpus/data` and `corpus/manifest`, whatever the partitioning), not from the CLI's output.
The machine is shared: the load average is printed beside each run, and speeds are compared as
ratios to baselines measured in the same invocation.

Usage:
  python benchmarks/throughput.py          # --sizes 1000,10000 --html-sizes 1000; 1 worker at 1000 only
  python benchmarks/throughput.py --sizes 100000 --paths text --workers 2 --no-datatrove
  python benchmarks/throughput.py --sizes 1000000 --paths text --workers 2 --no-datatrove --no-baselines --resume \
      --substitution 0.5  # see `CorpusSpec.substitution`
  python benchmarks/throughput.py --sizes 1000 --paths text --profile  # py-spy of one run, summarised
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.dataset as ds

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCHMARKS))

from news_corpus import CorpusInfo, CorpusSpec, build_corpus  # noqa: E402 - after the path set-up

DATATROVE_VENV = BENCHMARKS / ".venv-datatrove"
DATATROVE_PACKAGES = ("datatrove[processing]", "spacy", "orjson")
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1_000_000


# --------------------------------------------------------------------------------------------------
# Measuring a process tree


def _processes() -> tuple[dict[int, list[int]], dict[int, int]]:
    """Return every process's children, and its CPU time so far in clock ticks, from /proc."""
    tree: dict[int, list[int]] = collections.defaultdict(list)
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        tree[int(fields[1])].append(pid)
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
    return tree, ticks


@dataclass
class TreeSample:
    """The summed RSS of a process tree now, and the CPU ticks each of its processes has used."""

    rss: int
    ticks: dict[int, int]


def sample_tree(root: int) -> TreeSample:
    """Return the RSS in bytes of a process and all its descendants, and their CPU ticks."""
    tree, ticks = _processes()
    total, stack, seen = 0, [root], {}
    while stack:
        pid = stack.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):  # the process has just ended
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
            seen[pid] = ticks.get(pid, 0)
        stack.extend(tree.get(pid, ()))
    return TreeSample(total, seen)


@dataclass
class Measured:
    """One subprocess run: its exit status, output, wall and CPU seconds, peak RSS of its tree."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    cpu_seconds: float
    peak_rss: int
    load: tuple[float, float]
    """The 1-minute load average before and after."""


def measure(command: list[str], cwd: Path = REPO, env: dict[str, str] | None = None) -> Measured:
    """Run a command, sampling the RSS of its process tree; return what it did and used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err, text=True, env=env)
        peak = 0
        ticks: dict[int, int] = {}
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.1):
                now = sample_tree(process.pid)
                peak = max(peak, now.rss)
                ticks.update(now.ticks)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        returncode = process.wait()
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Descendants that nobody waited for (a pool's workers) are missing from RUSAGE_CHILDREN;
    # the samples see them, short of their last 0.1 s.
    waited = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cpu = max(waited, sum(ticks.values()) / os.sysconf("SC_CLK_TCK"))
    return Measured(returncode, stdout, stderr, seconds, cpu, peak, (load_before, os.getloadavg()[0]))


# --------------------------------------------------------------------------------------------------
# The systems


@dataclass
class Row:
    """One line of the table."""

    path: str
    documents: int
    megabytes: float
    system: str
    workers: int
    run: Measured
    kept: int | None = None
    note: str = ""
    stages: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def docs_per_second(self) -> float:
        return self.documents / self.run.seconds

    @property
    def mb_per_second(self) -> float:
        return self.megabytes / self.run.seconds


def _parquet(folder: Path) -> ds.Dataset | None:
    """Return every Parquet file below a folder as one dataset (any partitioning, temporaries skipped)."""
    files = sorted(str(p) for p in folder.rglob("*.parquet") if not p.name.startswith("."))
    return ds.dataset(files, format="parquet") if files else None


def stage_summary(timings: Path) -> dict[str, dict[str, float]]:
    """Return, per Luigi task family in order of first start: tasks, wall and CPU sums, and span."""
    rows = [json.loads(line) for line in timings.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        return {}
    origin = min(r["start"] for r in rows)
    families: dict[str, dict[str, float]] = {}
    for r in sorted(rows, key=lambda r: r["start"]):
        f = families.setdefault(r["family"], {"tasks": 0, "seconds": 0.0, "cpu": 0.0, "first": 1e30, "last": 0.0})
        f["tasks"] += 1
        f["seconds"] += r["seconds"]
        f["cpu"] += r["cpu_seconds"]
        f["first"] = min(f["first"], r["start"] - origin)
        f["last"] = max(f["last"], r["end"] - origin)
        f["peak_rss"] = max(f.get("peak_rss", 0), r.get("peak_rss", 0))
    return families


def run_pipeline(
    corpus: CorpusInfo,
    workers: int,
    work: Path,
    profile: Path | None = None,
    resume: bool = False,
    config: Path | None = None,
) -> Row:
    """Run the whole job on a corpus into a fresh output folder (or, resuming, the last one); return its row."""
    out = work / f"out-{Path(corpus.folder).name}-{workers}w"
    timings = work / f"timings-{Path(corpus.folder).name}-{workers}w{'-profiled' if profile else ''}.jsonl"
    if not resume:
        shutil.rmtree(out, ignore_errors=True)
        timings.unlink(missing_ok=True)
    command = [sys.executable, str(BENCHMARKS / "luigi_timings.py"), str(timings), "run"]
    command += ["--input", corpus.inputs, "--output", str(out), "--workers", str(workers)]
    if config is not None:
        command += ["--config", str(config)]
    if profile is not None:
        spy = [str(Path(sys.executable).parent / "py-spy"), "record", "--subprocesses", "--format", "raw"]
        command = [*spy, "--rate", "50", "-o", str(profile), "--", *command]
    run = measure(command)
    if run.returncode not in (0, 3):
        sys.exit(f"pipeline run failed ({run.returncode}):\n{run.stderr[-3000:]}")
    manifest, data = _parquet(out / "corpus" / "manifest"), _parquet(out / "corpus" / "data")
    rows = manifest.to_table(columns=["status"]).column("status").to_pylist() if manifest is not None else []
    statuses = collections.Counter(rows)
    kept = data.count_rows() if data is not None else 0
    note = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    note += f"; output folder {folder_bytes(out) / MB:,.0f} MB"
    if resume:
        note += "; resumed: time, CPU and peak of this sitting only, stage figures of every sitting"
    shutil.rmtree(out, ignore_errors=True)
    return Row(
        corpus_path(corpus),
        corpus.documents,
        corpus.bytes / MB,
        "pipeline run (whole job)",
        workers,
        run,
        kept,
        note,
        stage_summary(timings),
    )


def folder_bytes(folder: Path) -> int:
    """Return the bytes of the files under a folder."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def corpus_path(corpus: CorpusInfo) -> str:
    return str(corpus.spec["kind"])


def run_baseline(corpus: CorpusInfo, name: str, work: Path) -> Row:
    """Run one bare library over the corpus's files in a subprocess (one process); return its row."""
    listing = work / f"files-{Path(corpus.folder).name}.txt"
    files = sorted(str(p) for p in Path(corpus.inputs).rglob("*") if p.is_file())
    listing.write_text("\n".join(files) + "\n", encoding="utf-8")
    run = measure([sys.executable, str(Path(__file__).resolve()), "--baseline", name, "--files", str(listing)])
    if run.returncode != 0:
        sys.exit(f"baseline {name} failed:\n{run.stderr[-3000:]}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    return Row(corpus_path(corpus), corpus.documents, corpus.bytes / MB, BASELINES[name], 1, run, result["kept"])


BASELINES = {
    "trafilatura": "trafilatura.extract alone (defaults, dedup off)",
    "extract": "trafilatura as the pipeline calls it (metadata, dates)",
    "ftfy": "ftfy.fix_text alone",
}


def baseline_main(name: str, listing: Path) -> None:
    """Run a bare library over the listed files (in this process) and print what it kept."""
    files = listing.read_text(encoding="utf-8").split()
    kept = 0
    if name == "ftfy":
        import ftfy

        for path in files:
            kept += bool(ftfy.fix_text(Path(path).read_bytes().decode("utf-8")))
    elif name == "trafilatura":
        import trafilatura

        for path in files:
            kept += bool(trafilatura.extract(Path(path).read_bytes().decode("utf-8"), deduplicate=False))
    else:
        from pipeline.config import HtmlConfig
        from pipeline.steps.extract import NoMainContentError, extract_main_content

        cfg = HtmlConfig()
        for path in files:
            with contextlib.suppress(NoMainContentError):
                kept += bool(extract_main_content(Path(path).read_bytes().decode("utf-8"), cfg).text)
    print(json.dumps({"kept": kept}))


def ensure_datatrove() -> Path:
    """Return datatrove's interpreter, creating its virtual environment first when missing."""
    python = DATATROVE_VENV / "bin" / "python"
    probe = [str(python), "-c", "import datatrove, spacy, trafilatura, ftfy, xxhash, orjson"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    print(f"creating {DATATROVE_VENV} with {' '.join(DATATROVE_PACKAGES)} (once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(DATATROVE_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *DATATROVE_PACKAGES], check=True)
    return python


def run_datatrove(corpus: CorpusInfo, workers: int, work: Path) -> Row:
    """Run datatrove's equivalent pipeline over the corpus's JSON Lines; return its row."""
    python = ensure_datatrove()
    folder = work / f"datatrove-{Path(corpus.folder).name}-{workers}w"
    shutil.rmtree(folder, ignore_errors=True)
    command = [str(python), str(BENCHMARKS / "datatrove_baseline.py"), "--input", corpus.jsonl]
    command += ["--work", str(folder), "--workers", str(workers)] + (
        ["--html"] if corpus.spec["kind"] == "html" else []
    )
    # datatrove's own interpreter, without this one's environment leaking into it.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    run = measure(command, env=env)
    if run.returncode != 0:
        sys.exit(f"datatrove failed ({run.returncode}):\n{run.stderr[-3000:]}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    shutil.rmtree(folder, ignore_errors=True)
    note = f"{result['after_filters']} after C4, {result['kept']} after MinHash"
    stages = {name: {"seconds": s} for name, s in result["seconds"].items()}
    return Row(
        corpus_path(corpus),
        corpus.documents,
        corpus.bytes / MB,
        "datatrove",
        workers,
        run,
        result["kept"],
        note,
        stages,
    )


# --------------------------------------------------------------------------------------------------
# Profile summary


def summarize_profile(raw: Path, top: int = 25) -> str:
    """Return two tables from py-spy's raw output: the functions with the most samples of their own,
    and the pipeline's functions (`pipeline/`) by samples spent in them and what they call."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(frame) for frame in stack.split(";") if not frame.startswith("process ")]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    ours = collections.Counter(
        {
            name: n
            for name, n in inclusive.items()
            if ("(pipeline/" in name or "(steps/" in name)
            and "(pipeline/cli.py)" not in name
            and "<genexpr>" not in name
        }
    )
    lines = [f"{total} samples (py-spy, 50 Hz, every process of the tree)", "", "| own % | function |", "|---|---|"]
    lines += [f"| {100 * n / total:.1f} | `{name}` |" for name, n in own.most_common(top)]
    lines += ["", "| inclusive % | pipeline function |", "|---|---|"]
    lines += [f"| {100 * n / total:.1f} | `{name}` |" for name, n in ours.most_common(top)]
    return "\n".join(lines)


def _frame(frame: str) -> str:
    """Return `function (package/module.py)` of a py-spy frame `function (path:line)`."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    parts = Path(path).parts
    for anchor in ("site-packages", "lib"):
        if anchor in parts:
            parts = parts[len(parts) - parts[::-1].index(anchor) :]
            break
    else:
        if "pipeline" in parts:
            parts = parts[parts.index("pipeline") :]
    return f"{name} ({'/'.join(parts[-2:])})"


# --------------------------------------------------------------------------------------------------
# The table


def print_table(rows: list[Row]) -> None:
    print(
        "| path | docs | MB | system | workers | seconds | docs/s | MB/s | CPU s | peak RSS (tree) | load avg "
        "| kept | ratio | note |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row.path} | {row.documents:,} | {row.megabytes:.0f} | {row.system} | {row.workers} "
            f"| {row.run.seconds:.1f} | {row.docs_per_second:.1f} | {row.mb_per_second:.2f} "
            f"| {row.run.cpu_seconds:.1f} "
            f"| {row.run.peak_rss / 2**20:,.0f} MiB | {row.run.load[0]:.1f}/{row.run.load[1]:.1f} "
            f"| {row.kept if row.kept is not None else ''} | {ratio_note(row, rows)} | {row.note} |"
        )


def ratio_note(row: Row, rows: list[Row]) -> str:
    """Return this row's speed against its reference in the same corpus: 1-worker run or pipeline."""
    same = [r for r in rows if r.path == row.path and r.documents == row.documents]
    ours = {r.workers: r for r in same if r.system.startswith("pipeline run")}
    if row.system.startswith("pipeline run"):
        if row.workers > 1 and 1 in ours:
            return f"{ours[1].run.seconds / row.run.seconds:.2f}x the 1-worker speed"
        return ""
    reference = ours.get(row.workers) or ours.get(max(ours, default=0))
    if reference is None:
        return ""
    return f"pipeline ({reference.workers}w) takes {reference.run.seconds / row.run.seconds:.2f}x its time"


def print_stages(rows: list[Row]) -> None:
    print(
        "\nTime per stage (Luigi task family: tasks, wall seconds summed over its tasks, their CPU seconds, "
        "span from the run's first task start; with 2+ workers each task runs in a process of its own, whose "
        "peak RSS is shown):"
    )
    for row in rows:
        if not row.stages:
            continue
        print(f"\n{row.system}, {row.path} {row.documents:,} docs, {row.workers} workers:")
        for family, s in row.stages.items():
            if "first" in s:
                span = f"{s['first']:.1f}-{s['last']:.1f} s"
                peak = f"  peak RSS of a task {s['peak_rss'] / 2**20:,.0f} MiB" if s.get("peak_rss") else ""
                print(f"  {family:<26} {int(s['tasks']):>5} {s['seconds']:9.1f} s {s['cpu']:9.1f} CPU s  {span}{peak}")
            else:
                print(f"  {family:<26}       {s['seconds']:9.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000", help="corpus sizes (documents), comma-separated")
    parser.add_argument("--html-sizes", default="1000", help="sizes of the HTML path (a page costs ~50x a text)")
    parser.add_argument("--paths", default="text,html", help="input paths to measure: text, html")
    parser.add_argument("--workers", default="1,2", help="worker counts of the pipeline runs")
    parser.add_argument(
        "--fewer-workers-max",
        type=int,
        default=1000,
        help="run the smaller worker counts only on corpora of at most this many documents (the largest always)",
    )
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "pipeline-throughput")
    parser.add_argument("--config", type=Path, default=None, help="pipeline config file (default: embedded defaults)")
    parser.add_argument(
        "--substitution",
        type=float,
        default=CorpusSpec.substitution,
        help="share of an original's words replaced (see benchmarks/news_corpus.py); raise it for corpora far "
        "past 100k documents, where originals of one template article would otherwise collide in dedup",
    )
    parser.add_argument("--no-datatrove", action="store_true", help="skip datatrove (and its install)")
    parser.add_argument("--no-baselines", action="store_true", help="skip bare trafilatura and ftfy")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the pipeline runs of an earlier invocation that was stopped (the job redoes nothing finished)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile one run of the smallest corpus of each path with py-spy"
    )
    parser.add_argument("--baseline", choices=sorted(BASELINES), help=argparse.SUPPRESS)
    parser.add_argument("--files", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        baseline_main(args.baseline, args.files)
        return

    args.work.mkdir(parents=True, exist_ok=True)
    workers = [int(w) for w in args.workers.split(",")]
    plan = []
    for path in args.paths.split(","):
        sizes = args.sizes if path == "text" else args.html_sizes
        plan += [(path, int(n)) for n in sizes.split(",") if n]
    print(f"machine: {os.cpu_count()} cores; load average at start {os.getloadavg()}; command: {' '.join(sys.argv)}")
    rows: list[Row] = []
    for path, size in plan:
        corpus = build_corpus(CorpusSpec(path, size, substitution=args.substitution), args.work)  # type: ignore[arg-type]
        print(
            f"\n{path} corpus: {corpus.documents:,} documents, {corpus.bytes / MB:.1f} MB, {corpus.sites} sites, "
            f"{corpus.near_copies} near-copies, substitution {corpus.spec['substitution']}, in {corpus.folder}",
            flush=True,
        )
        for n in workers:
            if n != max(workers) and size > args.fewer_workers_max:
                continue
            rows.append(run_pipeline(corpus, n, args.work, resume=args.resume, config=args.config))
            print_table(rows[-1:])
        for name in () if args.no_baselines else ("trafilatura", "extract") if path == "html" else ("ftfy",):
            rows.append(run_baseline(corpus, name, args.work))
            print_table(rows[-1:])
        if not args.no_datatrove:
            rows.append(run_datatrove(corpus, max(workers), args.work))
            print_table(rows[-1:])
        if args.profile and size == min(n for p, n in plan if p == path):
            raw = args.work / f"profile-{Path(corpus.folder).name}.txt"
            run_pipeline(corpus, 1, args.work, profile=raw, config=args.config)
            print(f"\nProfile of the whole job on {path} {size:,} (1 worker), raw in {raw}:\n")
            print(summarize_profile(raw))
    print(f"\nload average at the end {os.getloadavg()}\n")
    print_table(rows)
    print_stages(rows)


if __name__ == "__main__":
    main()
