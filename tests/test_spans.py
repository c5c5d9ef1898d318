"""Removals placed back on the repaired text: every one found, and what is left is what the stages kept."""

from __future__ import annotations

import itertools
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


# The straightforward forms that `_visible` and `segments` replace (a loop per character, a
# search of every span for every run): the faster ones must give exactly what these give.


def _visible_by_characters(text: str) -> tuple[str, list[int]]:
    offsets = [at for at, ch in enumerate(text) if not ch.isspace()]
    return "".join(text[at] for at in offsets), offsets


def _segments_by_search(text: str, spans: list[Span]) -> list[tuple[str, Span | None]]:
    ordered = sorted(spans, key=lambda span: (span.kind == "duplicate", span.start))
    bounds = sorted({0, len(text), *(s.start for s in spans), *(s.end for s in spans)})
    out: list[tuple[str, Span | None]] = []
    for start, end in itertools.pairwise(bounds):
        if start >= len(text):
            break
        owner = next((s for s in ordered if s.start <= start and end <= s.end), None)
        if out and out[-1][1] is owner:
            out[-1] = (out[-1][0] + text[start:end], owner)
        else:
            out.append((text[start:end], owner))
    return out


_ANY_SPACE = "".join(chr(code) for code in range(0x3001) if chr(code).isspace())


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.one_of(st.characters(), st.sampled_from(_ANY_SPACE)), max_size=60))
def test_visible_characters_are_those_that_are_not_whitespace(text: str) -> None:
    from pipeline.spans import _visible

    assert _visible(text) == _visible_by_characters(text)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 40),
    st.lists(
        st.tuples(st.integers(-2, 45), st.integers(-2, 45), st.sampled_from(["rule", "site", "duplicate"])),
        max_size=8,
    ),
)
def test_segments_give_each_run_the_first_span_that_covers_it(length: int, cuts: list[tuple[int, int, str]]) -> None:
    text = "".join(chr(ord("a") + n % 26) for n in range(length))
    spans = [Span(start, end, kind, {"stage": kind}) for start, end, kind in cuts]
    got = segments(text, spans)
    want = _segments_by_search(text, spans)
    assert [part for part, _ in got] == [part for part, _ in want]
    assert all(a is b for (_, a), (_, b) in zip(got, want, strict=True))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40), st.lists(st.integers(-1, 42), max_size=10), st.booleans())
def test_segments_of_disjoint_spans_in_order(length: int, cuts: list[int], shuffle: bool) -> None:
    """The usual case (each removal after the one before), taken by a shortcut, gives what the search gives."""
    text = "".join(chr(ord("a") + n % 26) for n in range(length))
    points = sorted(set(cuts))
    spans = [Span(start, end, "rule", {"stage": "x"}) for start, end in zip(points[::2], points[1::2], strict=False)]
    if shuffle:
        spans.reverse()
    got = segments(text, spans)
    want = _segments_by_search(text, spans)
    assert [part for part, _ in got] == [part for part, _ in want]
    assert all(a is b for (_, a), (_, b) in zip(got, want, strict=True))
