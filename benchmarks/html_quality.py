"""Score the whole pipeline on HTML input against the WCXB dev articles' human-checked main content.

Runs the real job (`python -m pipeline run`) over the benchmark's served pages
(`html/NNNN.html.gz`: gzip-compressed HTML as fetched), reads the corpus, and scores each
page's corpus text against its `main_content` by word-level precision, recall and F1 (bag of
lowercased word tokens, macro-averaged over pages; a page the pipeline did not keep scores
as empty text). In the same run it scores trafilatura alone (`trafilatura.extract` with its
defaults, deduplication off) on the same decoded pages, and prints both with their speed. It
also compares the kept pages' date, author and title with the ground truth's `publish_date`,
`author` and `title` (exact, case-insensitive): right (no value where the truth has none is
right too), wrong (a value where the truth has none is wrong) and missing.

Usage: `python benchmarks/html_quality.py [--limit N] [--workers 2] [--config FILE] [--keep DIR]`
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow.dataset as ds

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.evaluation import DEFAULT_EVAL_DIR, LabelledPage, load_pages, word_prf  # noqa: E402 - after the path set-up


def _macro(scores: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    n = max(len(scores), 1)
    return tuple(sum(s[i] for s in scores) / n for i in range(3))  # type: ignore[return-value]


def run_pipeline(pages: list[LabelledPage], eval_dir: Path, work: Path, workers: int, config: str | None) -> float:
    """Run the job over the pages' files (symlinked into one folder); return the seconds taken."""
    inputs = work / "html"
    inputs.mkdir(parents=True)
    for page in pages:
        (inputs / f"{page.file_id}.html.gz").symlink_to(eval_dir / "html" / f"{page.file_id}.html.gz")
    command = [sys.executable, "-m", "pipeline", "run", "--input", str(inputs), "--output", str(work / "out")]
    command += ["--workers", str(workers)] + (["--config", config] if config else [])
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 3):
        sys.exit(f"pipeline run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def corpus_texts(out: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Return the kept text by file id, and the count of pages by manifest status."""
    data = ds.dataset(out / "corpus" / "data", format="parquet").to_table(columns=["source", "text"]).to_pylist()
    manifest = ds.dataset(out / "corpus" / "manifest", format="parquet").to_table(columns=["status"]).to_pylist()
    statuses: dict[str, int] = {}
    for row in manifest:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    return {row["source"].split(".")[0]: row["text"] for row in data}, statuses


def metadata_agreement(out: Path, eval_dir: Path, pages: list[LabelledPage]) -> dict[str, Counter[str]]:
    """Count, per field, the kept pages whose value is right, wrong or missing against the ground truth."""
    columns = ["source", "date", "author", "title"]
    rows = ds.dataset(out / "corpus" / "data", format="parquet").to_table(columns=columns).to_pylist()
    kept = {row["source"].split(".")[0]: row for row in rows}
    counts: dict[str, Counter[str]] = {field: Counter() for field in ("date", "author", "title")}
    for page in pages:
        if page.file_id not in kept:
            continue
        truth = json.loads((eval_dir / "ground-truth" / f"{page.file_id}.json").read_text(encoding="utf-8"))
        expected = truth.get("ground_truth") or {}
        for field, key in (("date", "publish_date"), ("author", "author"), ("title", "title")):
            want = str(expected.get(key) or "").strip().casefold()
            got = str(kept[page.file_id][field] or "").strip().casefold()
            counts[field]["missing" if want and not got else "right" if want == got else "wrong"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="score only the first N pages")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", default=None, help="pipeline config file (default: embedded defaults)")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--keep", type=Path, default=None, help="keep the run's output in this folder")
    args = parser.parse_args()

    pages = list(load_pages(args.eval_dir, args.limit))
    import trafilatura

    start = time.perf_counter()
    alone = [trafilatura.extract(page.html, deduplicate=False) or "" for page in pages]
    alone_seconds = time.perf_counter() - start

    work = args.keep or Path(tempfile.mkdtemp(prefix="html-quality-"))
    pipeline_seconds = run_pipeline(pages, args.eval_dir.resolve(), work, args.workers, args.config)
    texts, statuses = corpus_texts(work / "out")

    ours = [word_prf(texts.get(page.file_id, ""), page.main_content) for page in pages]
    theirs = [word_prf(text, page.main_content) for text, page in zip(alone, pages, strict=True)]
    print(f"{len(pages)} pages from {args.eval_dir}; pipeline manifest: {json.dumps(statuses, sort_keys=True)}")
    print("| system | precision | recall | F1 | pages/s |\n|---|---|---|---|---|")
    for name, scores, seconds in (
        ("trafilatura.extract (defaults, alone)", theirs, alone_seconds),
        (f"pipeline run, whole job ({args.workers} workers)", ours, pipeline_seconds),
    ):
        p, r, f = _macro(scores)
        print(f"| {name} | {p:.3f} | {r:.3f} | {f:.3f} | {len(pages) / seconds:.1f} |")
    print("\n| field (kept pages) | right | wrong | missing |\n|---|---|---|---|")
    for field, counts in metadata_agreement(work / "out", args.eval_dir, pages).items():
        print(f"| {field} | {counts['right']} | {counts['wrong']} | {counts['missing']} |")
    worst = sorted(zip(ours, theirs, pages, strict=True), key=lambda item: item[0][2] - item[1][2])[:10]
    print("\nPages where the pipeline trails trafilatura most (F1 ours vs alone):")
    for (_, _, f_ours), (_, _, f_alone), page in worst:
        print(f"  {page.file_id}: {f_ours:.3f} vs {f_alone:.3f}  {page.url}")
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
