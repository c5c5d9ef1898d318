"""The boilerplate rules on text they were not written against: real pages rendered to plain text.

Pages of ../shared/eval/wcxb-dev-articles are rendered the two ways scrapers save text (one
line per block element; one line per DOM text node, so links break sentences) and cleaned by
the pipeline's own steps. The rules must not lose article text: word recall against the
human-checked main content stays >= 0.97.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from pipeline.config import PipelineConfig
from pipeline.evaluation import (
    DEFAULT_EVAL_DIR,
    LabelledPage,
    load_pages,
    render_blocks,
    render_text_nodes,
    word_prf,
)
from pipeline.steps.boilerplate import strip_boilerplate
from pipeline.steps.encoding import repair_encoding

MIN_RECALL = 0.97


@pytest.fixture(scope="module")
def pages() -> list[LabelledPage]:
    if not DEFAULT_EVAL_DIR.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI must run this check, but the evaluation data is missing at {DEFAULT_EVAL_DIR}")
        pytest.skip(f"evaluation data not found at {DEFAULT_EVAL_DIR}")
    return list(load_pages())


@pytest.mark.parametrize("render", [render_blocks, render_text_nodes], ids=["blocks", "text_nodes"])
def test_rules_keep_article_text_of_real_pages(pages: list[LabelledPage], render: Callable[[str], str]) -> None:
    cfg = PipelineConfig()
    recall_raw = recall_clean = precision_raw = precision_clean = 0.0
    for page in pages:
        raw = render(page.html)
        cleaned = strip_boilerplate(repair_encoding(raw, cfg.encoding).text, cfg.boilerplate).text
        p0, r0, _ = word_prf(raw, page.main_content)
        p1, r1, _ = word_prf(cleaned, page.main_content)
        recall_raw, recall_clean = recall_raw + r0, recall_clean + r1
        precision_raw, precision_clean = precision_raw + p0, precision_clean + p1
    n = len(pages)
    print(
        f"\n{len(pages)} pages: word recall {recall_raw / n:.4f} -> {recall_clean / n:.4f}, "
        f"precision {precision_raw / n:.4f} -> {precision_clean / n:.4f}"
    )
    assert len(pages) >= 700
    assert recall_clean / n >= MIN_RECALL
    assert precision_clean > precision_raw  # the rules do remove boilerplate there too
