"""Evaluation utilities over the labelled WCXB article pages (boilerplate-removal ground truth).

The data lives outside the repository (see ``../shared/eval/README.md``); this module only reads it.
It loads labelled pages, renders HTML to the full-page plain text a scraper would have saved
(boilerplate included), and scores cleaned text the way the WCXB benchmark does: bag-of-words
precision/recall/F1 against the human-accepted main content, plus survival of "must keep" snippets.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from lxml import etree

from pipeline.steps.extract import BLOCK_TAGS, SKIPPED_TAGS, TEXT_EVENT, render_block_lines, walk_visible
from pipeline.steps.identify import decode_document

__all__ = [
    "BLOCK_TAGS",
    "DEFAULT_EVAL_DIR",
    "SKIPPED_TAGS",
    "LabelledPage",
    "load_pages",
    "normalise_snippet_text",
    "render_blocks",
    "render_text_nodes",
    "snippet_survival",
    "word_prf",
    "word_tokens",
]

REPO_ROOT: Final[Path] = Path(__file__).resolve().parent.parent
"""The repository root: the folder that holds ``pipeline/``."""

DEFAULT_EVAL_DIR: Final[Path] = Path(
    os.environ.get("PIPELINE_EVAL_DIR") or REPO_ROOT.parent / "shared" / "eval" / "wcxb-dev-articles"
)
"""Labelled pages folder; ``$PIPELINE_EVAL_DIR`` (read at import time) overrides the default."""

_WORD_RE: Final = re.compile(r"\w+")
# An HTML5 parser ignores </body> and </html> and keeps what follows in <body>; libxml2 drops it.
_END_BODY_RE: Final = re.compile(r"</(?:body|html)\s*>", re.I)
# Typographic quotes and dashes fold to ASCII for snippet matching: the ground-truth snippets are
# mostly ASCII-normalised ("isn't") while pages serve "isn\u2019t".
_SNIPPET_FOLD: Final[dict[int, str]] = str.maketrans(
    dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'")
    | dict.fromkeys("\u201c\u201d\u201e\u201f\u2033", '"')
    | dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-")
)


@dataclass(frozen=True)
class LabelledPage:
    """One labelled page: served HTML plus its ground truth."""

    file_id: str
    url: str
    html: str
    main_content: str
    with_snippets: tuple[str, ...]
    without_snippets: tuple[str, ...]
    title: str


# --------------------------------------------------------------------------------------------------
# Loading


def load_pages(eval_dir: Path | str = DEFAULT_EVAL_DIR, limit: int | None = None) -> Iterator[LabelledPage]:
    """Yield the labelled pages of ``eval_dir`` in sorted ``file_id`` order (at most ``limit``).

    A page whose ground truth has no (or a null) ``main_content`` gets ``""``; two of the 711
    WCXB dev article pages are like that.
    """
    root = Path(eval_dir)
    truth_files = sorted((root / "ground-truth").glob("*.json"))
    if not truth_files:
        raise FileNotFoundError(f"no ground-truth/*.json under {root}")
    for count, truth_path in enumerate(truth_files):
        if limit is not None and count >= limit:
            return
        file_id = truth_path.stem
        record: dict[str, Any] = json.loads(truth_path.read_text(encoding="utf-8"))
        truth: dict[str, Any] = record.get("ground_truth") or {}
        with gzip.open(root / "html" / f"{file_id}.html.gz", "rb") as handle:
            html = decode_document(handle.read(), markup=True).text
        yield LabelledPage(
            file_id=file_id,
            url=str(record.get("url") or ""),
            html=html,
            main_content=str(truth.get("main_content") or ""),
            with_snippets=tuple(str(s) for s in truth.get("with") or ()),
            without_snippets=tuple(str(s) for s in truth.get("without") or ()),
            title=str(truth.get("title") or record.get("title") or ""),
        )


def load_sentences(eval_dir: Path | str = DEFAULT_EVAL_DIR, min_words: int = 4) -> list[str]:
    """Return the distinct sentences of the pages' human-checked main content, in page order.

    Sentences are split by sentencex's English rules; those with fewer than `min_words` words
    are left out. Only the ground truth is read, not the HTML.
    """
    from pipeline.steps.sentences import split_paragraphs  # imported here: sentencex only for this loader

    sentences: dict[str, None] = {}
    for truth_path in sorted((Path(eval_dir) / "ground-truth").glob("*.json")):
        record: dict[str, Any] = json.loads(truth_path.read_text(encoding="utf-8"))
        text = str((record.get("ground_truth") or {}).get("main_content") or "")
        for paragraph in split_paragraphs(text, "en"):
            sentences.update(dict.fromkeys(s.strip() for s in paragraph if len(s.split()) >= min_words))
    return list(sentences)


# --------------------------------------------------------------------------------------------------
# Rendering


def _parse(html: str) -> Any:
    """Parse an HTML string with lxml's HTML parser; ``None`` for an empty document."""
    parser = etree.HTMLParser(encoding="utf-8", huge_tree=True)
    # Bytes with a forced encoding: lxml refuses str input carrying an XML encoding declaration.
    data = _END_BODY_RE.sub("", html).encode("utf-8", errors="replace")
    return etree.fromstring(data, parser)


def render_blocks(html: str) -> str:
    """Render a page to visible text with boilerplate kept, one line per block-level element.

    Inline elements stay inside their line; ``<title>``, scripts, styles, ``noscript``,
    templates, SVG/MathML and iframe/object fallbacks are dropped (`render_block_lines`, the
    pipeline's own rendering of HTML pages).

    >>> render_blocks("<title>T</title><nav><a href=/>Home</a></nav>"
    ...               "<p>One <a href=x>link</a> here.<br>Two</p><div>  a\\n b </div>")
    'Home\\nOne link here.\\nTwo\\na b'
    """
    root = _parse(html)
    return "" if root is None else "\n".join(render_block_lines(root))


COARSE_BLOCK_BREAKS: Final[frozenset[str]] = BLOCK_TAGS - {"br", "hr", "li", "dd", "dt", "td", "th", "tr"}
"""The block elements that end a line in `render_coarse_blocks`: not list items, table cells and rows, or breaks."""


def render_coarse_blocks(html: str) -> str:
    """Render a page as `render_blocks` does, but list items, table cells and rows and ``<br>`` join their neighbours.

    A scraper that flattens lists and tables saves a menu as one line.

    >>> render_coarse_blocks("<ul><li>Home</li><li>World</li></ul><p>One.<br>Two.</p>")
    'Home World\\nOne. Two.'
    """
    root = _parse(html)
    return "" if root is None else "\n".join(render_block_lines(root, COARSE_BLOCK_BREAKS))


def render_text_nodes(html: str) -> str:
    """Render a page to visible text with boilerplate kept, one line per DOM text node.

    >>> render_text_nodes("<p>One <a href=x>link</a> here.</p><p>Two</p>")
    'One\\nlink\\nhere.\\nTwo'
    """
    root = _parse(html)
    if root is None:
        return ""
    lines = (" ".join(text.split()) for event, text in walk_visible(root) if event == TEXT_EVENT)
    return "\n".join(line for line in lines if line)


# --------------------------------------------------------------------------------------------------
# Scoring


def word_tokens(text: str) -> list[str]:
    """Lowercased Unicode ``\\w+`` word tokens.

    >>> word_tokens("Héllo, WORLD! it's 2025_ok")
    ['héllo', 'world', 'it', 's', '2025_ok']
    """
    return _WORD_RE.findall(text.lower())


def word_prf(predicted: str, reference: str) -> tuple[float, float, float]:
    """Bag-of-words (multiset) precision, recall and F1 of ``predicted`` against ``reference``.

    This is the WCXB benchmark's score. Edge cases: both texts without tokens give
    ``(1.0, 1.0, 1.0)`` (nothing to find, nothing wrongly kept); exactly one without tokens gives
    ``(0.0, 0.0, 0.0)``.

    >>> word_prf("the cat the", "the cat sat")
    (0.6666666666666666, 0.6666666666666666, 0.6666666666666666)
    >>> word_prf("", ""), word_prf("x", "")
    ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    """
    pred = Counter(word_tokens(predicted))
    ref = Counter(word_tokens(reference))
    n_pred, n_ref = pred.total(), ref.total()
    if n_pred == 0 and n_ref == 0:
        return 1.0, 1.0, 1.0
    if n_pred == 0 or n_ref == 0:
        return 0.0, 0.0, 0.0
    overlap = (pred & ref).total()
    precision, recall = overlap / n_pred, overlap / n_ref
    f1 = 2 * precision * recall / (precision + recall) if overlap else 0.0
    return precision, recall, f1


def normalise_snippet_text(text: str) -> str:
    """Lowercase, collapse whitespace and fold typographic quotes/dashes to ASCII, for snippet matching.

    >>> normalise_snippet_text("  Isn\u2019t\\n\\tBAR \u2014 ok")
    "isn't bar - ok"
    """
    return " ".join(text.translate(_SNIPPET_FOLD).lower().split())


def snippet_survival(text: str, snippets: Iterable[str]) -> float:
    """Fraction of ``snippets`` that occur in ``text``, both normalised by :func:`normalise_snippet_text`.

    With no snippets the result is ``1.0`` (nothing was lost). Use it with the ground truth's
    ``with`` snippets (higher is better) or its ``without`` snippets (lower is better).

    >>> snippet_survival("Hello  big\\nWorld", ["big world", "absent"])
    0.5
    >>> snippet_survival("anything", [])
    1.0
    """
    wanted = [normalise_snippet_text(s) for s in snippets]
    if not wanted:
        return 1.0
    haystack = normalise_snippet_text(text)
    return sum(s in haystack for s in wanted) / len(wanted)
