"""datatrove's equivalent of the job, for benchmarks/throughput.py: run inside its own virtual environment.

datatrove[processing] pins trafilatura < 1.12, which the pipeline's trafilatura 2.x excludes, so
`throughput.py` installs it into `benchmarks/.venv-datatrove/` (git-ignored) and runs this
script there; it imports nothing of the pipeline. The stages follow datatrove's own MinHash
example (`examples/minhash_deduplication.py`), each a `LocalPipelineExecutor`:

1. `JsonlReader` -> [`Trafilatura`, for HTML] -> `FTFYFormatter` -> `C4QualityFilter` -> `JsonlWriter`
   (the cleaned documents) -> `MinhashDedupSignature`;
2. `MinhashDedupBuckets`; 3. `MinhashDedupCluster`;
4. `JsonlReader` (the cleaned documents) -> `MinhashDedupFilter` -> `JsonlWriter` (the result).

Choices, each made so that datatrove does the same work as the pipeline, never more:
- `Trafilatura(favour_precision=False, deduplicate=False, timeout=30)`: the pipeline's
  trafilatura runs `balanced` with its deduplication off; datatrove's default 1 s timeout would
  drop the slowest pages instead of extracting them.
- `C4QualityFilter(min_num_sentences=-1)`: C4's line rules only. Its sentence count needs NLTK's
  punkt data, a download at run time, which this machine cannot make.
- `MinhashConfig()` defaults: word 5-grams, 14 buckets of 8 hashes, document-level only;
  words split by datatrove's assigned English tokenizer (spaCy's rule-based `blank("en")`).

Prints one JSON object: seconds per stage, documents in, after filtering, and kept.
Usage: `python datatrove_baseline.py --input JSONL_DIR --work DIR --workers N [--html]`
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import C4QualityFilter
from datatrove.pipeline.formatters import FTFYFormatter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter


def _count_lines(folder: Path) -> int:
    import gzip

    total = 0
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            total += sum(1 for _ in handle)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, required=True, help="folder of JSON Lines files (id, text, url)")
    parser.add_argument("--work", type=Path, required=True, help="empty folder for datatrove's outputs")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--html", action="store_true", help="the text field holds HTML: extract it first")
    args = parser.parse_args()

    files = sorted(args.input.glob("*.jsonl"))
    tasks = max(1, min(len(files), 4 * args.workers))
    config = MinhashConfig()
    work = args.work
    extract = [Trafilatura(favour_precision=False, deduplicate=False, timeout=30)] if args.html else []

    def reader(folder: Path, glob: str) -> JsonlReader:
        return JsonlReader(str(folder), glob_pattern=glob, text_key="text", id_key="id")

    stages = {
        "read_extract_ftfy_c4_sign": LocalPipelineExecutor(
            pipeline=[
                reader(args.input, "*.jsonl"),
                *extract,
                FTFYFormatter(),
                C4QualityFilter(min_num_sentences=-1),
                JsonlWriter(str(work / "cleaned")),
                MinhashDedupSignature(output_folder=str(work / "signatures"), config=config),
            ],
            tasks=tasks,
            workers=args.workers,
            logging_dir=str(work / "logs" / "1"),
        ),
        "buckets": LocalPipelineExecutor(
            pipeline=[
                MinhashDedupBuckets(
                    input_folder=str(work / "signatures"), output_folder=str(work / "buckets"), config=config
                )
            ],
            tasks=config.num_buckets,
            workers=args.workers,
            logging_dir=str(work / "logs" / "2"),
        ),
        "cluster": LocalPipelineExecutor(
            pipeline=[
                MinhashDedupCluster(
                    input_folder=str(work / "buckets"), output_folder=str(work / "remove_ids"), config=config
                )
            ],
            tasks=1,
            logging_dir=str(work / "logs" / "3"),
        ),
        "filter_write": LocalPipelineExecutor(
            pipeline=[
                reader(work / "cleaned", "*.jsonl.gz"),
                MinhashDedupFilter(input_folder=str(work / "remove_ids")),
                JsonlWriter(str(work / "result")),
            ],
            tasks=tasks,
            workers=args.workers,
            logging_dir=str(work / "logs" / "4"),
        ),
    }
    seconds: dict[str, float] = {}
    for name, executor in stages.items():
        start = time.perf_counter()
        executor.run()
        seconds[name] = time.perf_counter() - start
    documents_in = 0
    for path in files:
        with path.open(encoding="utf-8") as handle:
            documents_in += sum(1 for _ in handle)
    result = {
        "seconds": seconds,
        "tasks": tasks,
        "documents_in": documents_in,
        "after_filters": _count_lines(work / "cleaned"),
        "kept": _count_lines(work / "result"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
