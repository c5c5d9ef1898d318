"""Train the line classifiers shipped in `pipeline/models/`: for plain text, and for whole HTML pages (`--page`).

Reads the labelled WCXB dev article pages (`../shared/eval/wcxb-dev-articles/`, or
`$PIPELINE_EVAL_DIR`), renders each both ways a scraper saves text, cleans it up to the
classifier with the pipeline's own steps, and labels each line by its overlap with the
human-checked main content (`pipeline.training`); the lexicon of words and word pairs shared
by at least `LEXICON_MIN_SITES` sites is fitted from the same labels. Five folds grouped by site give
cross-validated scores; the threshold with the best cross-validated macro word F1 over both
renderings is kept; the final models are then trained on every page. The plain model also trains
on `AUGMENTED_RENDERINGS` of each page (coarser blocks; copies with some boilerplate lines left
out and some lines joined), which are never scored. Training is single-threaded
and seeded, so the same data gives the same file.

With `--page`, the model for `html.main_content = "lines"` is trained instead
(`page_line_classifier.json`): each page rendered from its HTML as the pipeline's reader does,
one line per block, every line with its markup context (`DOM_FEATURES`) as more columns.

Usage: `python benchmarks/train_line_classifier.py [--page] [--limit N] [--output PATH]`
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.config import PipelineConfig  # noqa: E402 - after the path set-up
from pipeline.evaluation import DEFAULT_EVAL_DIR, load_pages  # noqa: E402
from pipeline.steps.line_classifier import DEFAULT_MODEL_PATH, DEFAULT_PAGE_MODEL_PATH  # noqa: E402
from pipeline.storage import atomic_write_text  # noqa: E402
from pipeline.training import (  # noqa: E402
    AUGMENTED_RENDERINGS,
    LEXICON_MIN_SITES,
    PAGE_RENDERING,
    RENDERINGS,
    best_threshold,
    cross_validated_scores,
    model_document,
    prepare_pages,
    stage_boosting,
    train_models,
)

MODEL_VERSION = "2.0"
THRESHOLDS = [round(t, 2) for t in np.arange(0.30, 0.76, 0.05)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N pages (a quick check)")
    parser.add_argument("--page", action="store_true", help="train the model for whole HTML pages")
    parser.add_argument("--output", type=Path, default=None, help="model file to write (default: the shipped one)")
    args = parser.parse_args()
    renderings = (PAGE_RENDERING,) if args.page else tuple(RENDERINGS)
    output = args.output or (DEFAULT_PAGE_MODEL_PATH if args.page else DEFAULT_MODEL_PATH)

    start = time.perf_counter()
    labelled = list(load_pages(DEFAULT_EVAL_DIR, args.limit))
    truths = {page.file_id: page.main_content for page in labelled}
    pages = prepare_pages(labelled, PipelineConfig(), renderings=renderings)
    augmented = [] if args.page else prepare_pages(labelled, PipelineConfig(), renderings=AUGMENTED_RENDERINGS)
    print(
        f"{len(labelled)} pages, {sum(len(p.labels) for p in pages)} lines in {len(renderings)} renderings "
        f"(and {sum(len(p.labels) for p in augmented)} more to train on) prepared in {time.perf_counter() - start:.0f}s"
    )

    scores, _ = cross_validated_scores(pages, extra=augmented)
    threshold, f1 = best_threshold(pages, scores, truths, THRESHOLDS)
    cv = {}
    for rendering in renderings:
        chosen = [(p, s) for p, s in zip(pages, scores, strict=True) if p.rendering == rendering]
        cv[rendering] = round(best_threshold([p for p, _ in chosen], [s for _, s in chosen], truths, [threshold])[1], 4)
    print(f"cross-validated (5 folds by site): threshold {threshold}, macro word F1 {f1:.4f} {cv}")

    models = train_models([*pages, *augmented])
    ids = ",".join(sorted(truths))
    notes = {
        "trained_on": "WCXB dev article pages, "
        + ("whole HTML pages with their markup context" if args.page else "both plain-text renderings"),
        "pages": len(labelled),
        "pages_digest": hashlib.sha256(ids.encode()).hexdigest()[:16],
        "rounds": [stage.rounds for stage in stage_boosting(pages)],
        "augmented_renderings": [] if args.page else list(AUGMENTED_RENDERINGS),
        "lexicon_min_sites": LEXICON_MIN_SITES,
        "lexicon_grams": len(models.lexicon.weights),
        "cross_validated_f1_lines_only": cv,
        "command": "python benchmarks/train_line_classifier.py" + (" --page" if args.page else ""),
    }
    document = model_document(models, threshold, MODEL_VERSION, notes)
    text = json.dumps(document, sort_keys=True) + "\n"
    atomic_write_text(output, text)
    print(f"wrote {output} ({len(text.encode()) / 1e6:.2f} MB) in {time.perf_counter() - start:.0f}s total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
