"""Tests for pipeline.evaluation: scoring, rendering, decoding and loading the WCXB pages."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.evaluation import (
    DEFAULT_EVAL_DIR,
    LabelledPage,
    load_pages,
    render_blocks,
    render_text_nodes,
    snippet_survival,
    word_prf,
    word_tokens,
)

LINKED_SENTENCE = "<html><body><p>Read the <a href='/x'>full report</a> before voting.</p></body></html>"


def test_word_tokens_lowercase_unicode() -> None:
    assert word_tokens("Zoë's CAFÉ, 3 €") == ["zoë", "s", "café", "3"]


@pytest.mark.parametrize(
    ("predicted", "reference", "expected"),
    [
        ("a b c", "a b c", (1.0, 1.0, 1.0)),
        ("A, b!", "a b", (1.0, 1.0, 1.0)),  # case and punctuation do not matter
        ("a b c d", "a b", (0.5, 1.0, 2 / 3)),  # boilerplate kept: precision drops
        ("a", "a b c d", (1.0, 0.25, 0.4)),  # content lost: recall drops
        ("a a a b", "a b b", (0.5, 2 / 3, 4 / 7)),  # multiset: repeats only count as often as in both
        ("x y", "a b", (0.0, 0.0, 0.0)),
        ("", "", (1.0, 1.0, 1.0)),
        ("...", "", (1.0, 1.0, 1.0)),  # no tokens on either side
        ("", "a b", (0.0, 0.0, 0.0)),
        ("a b", "", (0.0, 0.0, 0.0)),
    ],
)
def test_word_prf_known_answers(predicted: str, reference: str, expected: tuple[float, float, float]) -> None:
    assert word_prf(predicted, reference) == pytest.approx(expected)


def test_render_text_nodes_splits_sentence_at_link() -> None:
    assert render_text_nodes(LINKED_SENTENCE).splitlines() == ["Read the", "full report", "before voting."]


def test_render_blocks_keeps_sentence_on_one_line() -> None:
    assert render_blocks(LINKED_SENTENCE).splitlines() == ["Read the full report before voting."]


def test_render_keeps_boilerplate_and_drops_invisible_text() -> None:
    html = """<!doctype html><html><head><title>Page title</title><style>p{}</style></head><body>
    <nav><ul><li>Home</li><li>News</li></ul></nav><script>var x = "code";</script>
    <article><h1>Head</h1><p>Body   text<br>next</p><noscript>enable js</noscript></article>
    <footer>&copy; 2025 Site</footer></body></html>"""
    expected = ["Home", "News", "Head", "Body text", "next", "© 2025 Site"]
    assert render_blocks(html).splitlines() == expected
    assert render_text_nodes(html).splitlines() == expected


def test_render_keeps_content_after_stray_body_end_tag() -> None:
    html = "<html><body><nav>Menu</nav></body></html><div><p>The article.</p></div>"
    assert render_blocks(html).splitlines() == ["Menu", "The article."]


def test_render_empty_and_xml_declared_input() -> None:
    assert render_blocks("") == ""
    assert render_text_nodes("   ") == ""
    assert render_blocks('<?xml version="1.0" encoding="iso-8859-1"?><p>é</p>') == "é"


def test_snippet_survival() -> None:
    text = "Home\nIt isn\u2019t   over \u2014 yet.\nFooter"
    assert snippet_survival(text, ["it isn't over - yet.", "HOME", "missing"]) == pytest.approx(2 / 3)
    assert snippet_survival(text, []) == 1.0


def test_load_first_real_pages() -> None:
    if not (DEFAULT_EVAL_DIR / "ground-truth").is_dir():
        pytest.skip(f"evaluation data not found at {DEFAULT_EVAL_DIR}")
    pages = list(load_pages(limit=3))
    assert len(pages) == 3
    assert [p.file_id for p in pages] == sorted(p.file_id for p in pages)
    for page in pages:
        assert isinstance(page, LabelledPage)
        assert page.url.startswith("http")
        assert "<" in page.html and "\ufffd" not in page.html
        assert page.main_content and page.title and page.with_snippets and page.without_snippets
        rendered = render_blocks(page.html)
        # Unclean full-page text keeps (nearly) all of the main content and every must-keep snippet.
        assert word_prf(rendered, page.main_content)[1] > 0.95
        assert snippet_survival(rendered, page.with_snippets) == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        pages[0].title = "changed"  # type: ignore[misc]
