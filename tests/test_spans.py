"""Removals placed back on the repaired text: every one found, and what is left is what the stages kept."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import BoilerplateConfig, DedupConfig
from pipeline.spans import Span, removed_spans, segments
from pipeline.steps.boilerplate import strip_boilerplate
from pipeline.steps.dedup import DocumentInput, find_duplicates
from pipeline.steps.sentences import split_paragraphs
from tests.conftest import DATA, SEEDS

CASES = json.loads((DATA / "boilerplate_cases.json").read_text(encoding="utf-8"))["cases"]
SEED_LINES = sorted({line for path in SEEDS.glob("*.txt") for line in path.read_text("utf-8").split("\n")})


def _rows(text: str) -> tuple[list[dict[str, object]], list[str], str]:
    """Strip, split and deduplicate `text` as the stages do; return removal rows, sentences, stripped text."""
    stripped = strip_boilerplate(text, BoilerplateConfig())
    rows: list[dict[str, object]] = [{"stage": "strip_boilerplate", **asdict(r)} for r in stripped.removals]
    sentences = [s for paragraph in split_paragraphs(stripped.text, "en") for s in paragraph]
    (verdict,) = find_duplicates([DocumentInput("doc.txt", "d", tuple(sentences))], DedupConfig())
    rows += [{"stage": "find_duplicates", **asdict(d)} for d in verdict.sentences]
    return rows, sentences, stripped.text


def _squeeze(text: str) -> str:
    return "".join(text.split())


def _check_placed(text: str) -> list[Span]:
    rows, sentences, stripped = _rows(text)
    spans = removed_spans(text, rows, sentences)
    assert len(spans) == len(rows), "every removal is placed"
    assert all(_squeeze(text[s.start : s.end]) == _squeeze(str(s.removal["text"])) for s in spans)
    boilerplate = [s for s in spans if s.kind != "duplicate"]
    kept = "".join(part for part, span in segments(text, boilerplate) if span is None)
    assert _squeeze(kept) == _squeeze(stripped), "what is not struck through is what stripping kept"
    return spans


@pytest.mark.parametrize("seed", sorted(p.name for p in SEEDS.glob("*.txt")))
def test_every_removal_of_a_seed_is_placed(seed: str) -> None:
    spans = _check_placed((SEEDS / seed).read_text(encoding="utf-8"))
    assert spans


@pytest.mark.parametrize("case", CASES, ids=[case["label"] for case in CASES])
def test_every_removal_of_a_golden_case_is_placed(case: dict[str, object]) -> None:
    _check_placed(str(case["text"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(SEED_LINES), min_size=1, max_size=40), st.sampled_from(["\n", "\n\n", " \n"]))
def test_removals_of_any_mix_of_seed_lines_are_placed(lines: list[str], separator: str) -> None:
    _check_placed(separator.join(lines))


def test_line_broken_by_a_link_is_struck_as_one_span() -> None:
    text = "Kept opening sentence of the story here.\nREAD MORE: Floods\nhit the north\n\nThe end of it all came."
    rows = [
        {"stage": "strip_boilerplate", "rule": "read_more", "text": "READ MORE: Floods hit the north", "position": 1}
    ]
    (span,) = removed_spans(text, rows)
    assert text[span.start : span.end] == "READ MORE: Floods\nhit the north"


def test_boilerplate_inside_a_duplicate_sentence_keeps_its_own_colour() -> None:
    text = "Rain fell ADVERTISEMENT all day."
    ad = Span(10, 23, "rule", {"stage": "strip_boilerplate", "rule": "inline_ad_marker"})
    duplicate = Span(0, len(text), "duplicate", {"stage": "find_duplicates", "rule": "exact_duplicate"})
    parts = [(part, span.kind if span else None) for part, span in segments(text, [duplicate, ad])]
    assert parts == [("Rain fell ", "duplicate"), ("ADVERTISEMENT", "rule"), (" all day.", "duplicate")]


def test_removal_that_is_not_there_is_left_out() -> None:
    rows = [{"stage": "strip_boilerplate", "rule": "ui_word", "text": "Menu", "position": 0}]
    assert removed_spans("Nothing to see.", rows) == []
