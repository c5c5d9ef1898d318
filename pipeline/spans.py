"""Place a document's removals on its repaired text: which characters went, and why.

The removal log names each removal by stage, rule, text and position (a line number of the
repaired text for boilerplate, a sentence number for duplicates). `removed_spans` turns those
into character spans of the repaired text, so the text can be shown whole with what was
removed struck through. Pure: text and rows in, spans out.

Boilerplate removals are found from their line on, whitespace-insensitively (broken lines
were rejoined before the rules judged them). Sentences are then laid over the characters that
survived stripping, in order, since those are exactly the characters the sentence splitter saw
(less whitespace).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from pipeline.schema import Stage

SITE_RULE, CLASSIFIER_RULE = "site_repeated", "line_classifier"
KINDS: dict[str, str] = {
    "rule": "boilerplate line rules",
    "site": "lines repeated across a site (site_repeated)",
    "classifier": "learned line classifier (line_classifier)",
    "duplicate": "duplicate sentences",
}
"""Why text was removed, as a reader groups it: the report's legend and colours."""
_DEDUP = Stage.DEDUP.value
_BMP = 0xFFFF


@functools.cache
def _space_table() -> np.ndarray:
    """Return whether each character of the Basic Multilingual Plane is whitespace (`str.isspace`)."""
    return np.array([chr(code).isspace() for code in range(_BMP + 1)], dtype=bool)


class Span(NamedTuple):
    """Characters `start:end` of the repaired text, removed by one removal row.

    A named tuple, the cheapest immutable record to make: a report places tens of thousands.
    """

    start: int
    end: int
    kind: str
    removal: Mapping[str, Any]


_RULE_KINDS: dict[Any, str] = {SITE_RULE: "site", CLASSIFIER_RULE: "classifier"}


def removal_kind(removal: Mapping[str, Any]) -> str:
    """Return the kind of a removal row: rule, site, classifier or duplicate.

    >>> removal_kind({"stage": "find_duplicates", "rule": "near_duplicate"})
    'duplicate'
    >>> removal_kind({"stage": "strip_boilerplate", "rule": "site_repeated"})
    'site'
    """
    if removal.get("stage") == _DEDUP:
        return "duplicate"
    return _RULE_KINDS.get(removal.get("rule"), "rule")


def _visible(text: str) -> tuple[str, list[int]]:
    """Return the text's non-whitespace characters and the offset of each in the text.

    A removal is found whitespace-insensitively by searching its own non-whitespace characters
    among these (what a pattern with `\\s*` between the characters would match, found once
    per page instead of compiling a pattern per removal). Whitespace is `str.isspace`, as for
    `str.split` and the `\\s` of `re`.

    >>> _visible(" a b\\n c")
    ('abc', [1, 3, 6])
    """
    layout = _Layout(text)
    return layout.visible, layout.offsets.tolist()


class _Layout:
    """A text's non-whitespace characters, where each stands, and its lines and paragraphs in their terms.

    Found with numpy over the whole text, with no loop (nor Python object) per character or per
    line. Line `n` starts at character `low[n]` of `visible`, and the paragraph holding it
    (rejoining never crosses a blank line, one holding only whitespace) ends at character
    `high[n]`. Removals are placed on `visible`, then put back on the text (`to_text`).

    >>> layout = _Layout("a b\\nc\\n \\nd")
    >>> layout.visible, layout.offsets.tolist(), layout.low, layout.high
    ('abcd', [0, 2, 4, 8], [0, 2, 3, 3], [3, 3, 4, 4])
    """

    def __init__(self, text: str) -> None:
        if text.isascii():
            codes: np.ndarray = np.frombuffer(text.encode("ascii"), np.uint8)
            space = _space_table()[codes]
        else:
            codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), "<u4")
            space = _space_table()[np.minimum(codes, _BMP)]
            astral = codes > _BMP
            if astral.any():  # no character beyond the BMP is whitespace today; ask Python, should one become so
                for code in np.unique(codes[astral]).tolist():
                    if chr(code).isspace():
                        space[codes == code] = True
        kept = ~space
        self.offsets = np.flatnonzero(kept)
        """The offset in the text of each character of `visible`."""
        encoding = "ascii" if codes.dtype == np.uint8 else "utf-32-le"
        self.visible = codes[kept].tobytes().decode(encoding, "surrogatepass")
        line_starts = np.concatenate(([0], np.flatnonzero(codes == 10) + 1))
        # Characters of `visible` before each line, and after the last one: a line is blank when it adds none.
        before = np.append(np.searchsorted(self.offsets, line_starts), len(self.offsets))
        blanks = np.flatnonzero(before[1:] == before[:-1])
        following = np.searchsorted(blanks, np.arange(len(line_starts)), side="right")
        self.low: list[int] = before[:-1].tolist()
        self.high: list[int] = np.append(before[blanks], len(self.offsets))[following].tolist()

    def to_text(self, starts: list[int], ends: list[int]) -> tuple[list[int], list[int]]:
        """Return where spans `starts[i]:ends[i]` of `visible` (none empty) stand in the text."""
        if not starts:
            return [], []
        return self.offsets[starts].tolist(), (self.offsets[np.asarray(ends) - 1] + 1).tolist()


_BY_PLACE = operator.itemgetter(0, 1)
"""A span's place, start then end (a `Span` is a tuple: faster than by attribute)."""


def removed_spans(
    text: str, removals: Iterable[Mapping[str, Any]], sentences: Sequence[str] | None = None
) -> list[Span]:
    """Return the spans of `text` that the removal rows removed, sorted by start.

    `sentences` are the document's sentences as split (every paragraph's, in order); without
    them duplicate sentences cannot be placed. A removal that cannot be found is left out.

    >>> text = "Rain fell all day.\\nREAD MORE: Floods\\nIt stopped. It stopped."
    >>> rows = [{"stage": "strip_boilerplate", "rule": "read_more", "text": "READ MORE: Floods", "position": 1},
    ...         {"stage": "find_duplicates", "rule": "exact_duplicate", "text": "It stopped.", "position": 2}]
    >>> [(text[s.start : s.end], s.kind) for s in removed_spans(text, rows, ["Rain fell all day.", "It stopped. ",
    ...                                                                      "It stopped."])]
    [('READ MORE: Floods', 'rule'), ('It stopped.', 'duplicate')]
    """
    layout = _Layout(text)
    visible, lows, highs = layout.visible, layout.low, layout.high
    lines = len(lows)
    # Spans are placed on `visible`: two overlap there exactly when they overlap in the text.
    rows: list[Mapping[str, Any]] = []
    kinds: list[str] = []
    duplicates: list[Mapping[str, Any]] = []
    # The boilerplate spans placed, disjoint: sorted by start, their ends are sorted too.
    starts: list[int] = []
    ends: list[int] = []
    placed_starts: list[int] = []
    placed_ends: list[int] = []
    for row in removals:
        get = row.get
        if get("stage") == _DEDUP:
            duplicates.append(row)
            continue
        target = "".join(str(get("text") or "").split())
        line = int(get("position") or 0)
        if not target or not 0 <= line < lines:
            continue
        # The first occurrence from the line on, within its paragraph, that overlaps nothing placed.
        high = highs[line]
        start = visible.find(target, lows[line], high)
        while start >= 0:
            end = start + len(target)
            if not ends or start >= ends[-1]:  # after every span placed: the usual case, in line order
                starts.append(start)
                ends.append(end)
            else:
                before = bisect.bisect_left(starts, end) - 1  # the last span starting before `end`
                if before >= 0 and ends[before] > start:
                    start = visible.find(target, start + 1, high)
                    continue
                at = bisect.bisect_left(starts, start)
                starts.insert(at, start)
                ends.insert(at, end)
            placed_starts.append(start)
            placed_ends.append(end)
            rows.append(row)
            kinds.append(_RULE_KINDS.get(get("rule"), "rule"))
            break
    if duplicates and sentences:
        sentence_spans = _place_sentences(visible, list(zip(starts, ends, strict=True)), sentences)
        for row in duplicates:
            position = int(row.get("position") or 0)
            where = sentence_spans[position] if 0 <= position < len(sentence_spans) else None
            if where is not None:
                placed_starts.append(where[0])
                placed_ends.append(where[1])
                rows.append(row)
                kinds.append("duplicate")
    text_starts, text_ends = layout.to_text(placed_starts, placed_ends)
    return sorted(map(Span, text_starts, text_ends, kinds, rows), key=_BY_PLACE)


def _place_sentences(
    visible: str, taken: list[tuple[int, int]], sentences: Sequence[str]
) -> list[tuple[int, int] | None]:
    """Return each sentence's span in `visible`, laid over the characters not taken by boilerplate.

    `visible` is the text's non-whitespace characters (`_Layout`); `taken` the disjoint spans
    of boilerplate in it, sorted.
    """
    chars: list[str] = []
    # Where each piece of `kept` begins, in `kept` and in `visible`.
    piece_kept: list[int] = []
    piece_visible: list[int] = []
    length = cursor = 0
    for start, end in [*taken, (len(visible), len(visible))]:
        if start > cursor:
            piece_kept.append(length)
            piece_visible.append(cursor)
            chars.append(visible[cursor:start])
            length += start - cursor
        cursor = max(cursor, end)
    kept = "".join(chars)

    def where(at: int) -> int:
        piece = bisect.bisect_right(piece_kept, at) - 1
        return piece_visible[piece] + at - piece_kept[piece]

    placed: list[tuple[int, int] | None] = []
    cursor = 0
    for sentence in sentences:
        target = "".join(sentence.split())
        found = cursor if kept.startswith(target, cursor) else kept.find(target, cursor)
        if not target or found < 0:
            placed.append(None)
            continue
        placed.append((where(found), where(found + len(target) - 1) + 1))
        cursor = found + len(target)
    return placed


def segments(text: str, spans: Sequence[Span]) -> list[tuple[str, Span | None]]:
    """Cut `text` into runs that are kept (None) or removed by one span.

    Where spans overlap (a duplicate sentence around an inline ad marker), the boilerplate
    span wins: it was removed first.

    >>> row = {"stage": "strip_boilerplate", "rule": "ui_word"}
    >>> [(part, span.kind if span else None) for part, span in segments("a Menu b", [Span(2, 6, "rule", row)])]
    [('a ', None), ('Menu', 'rule'), (' b', None)]
    """
    out: list[tuple[str, Span | None]] = []
    at = 0
    for span in spans:
        start, end, _, _ = span
        if not at <= start < end or start >= len(text):
            break  # not disjoint in order, or empty or out of the text: the general case below
        if start > at:
            out.append((text[at:start], None))
        out.append((text[start:end], span))
        at = end
    else:  # disjoint, in order: the usual case, where every span owns what it covers
        if at < len(text):
            out.append((text[at:], None))
        return out
    ordered = sorted(spans, key=lambda span: (span.kind == "duplicate", span.start))
    bounds = sorted({0, len(text), *(s.start for s in spans), *(s.end for s in spans)})
    # Sweep the bounds: a span owns a run between two bounds when it covers it, that is when it
    # starts at or before the run and ends after the run's start; of those the first in `ordered`.
    pending = sorted(range(len(ordered)), key=lambda rank: ordered[rank].start)
    active: list[int] = []
    owners: list[Span | None] = []
    pieces: list[list[str]] = []
    next_pending = 0
    for start, end in itertools.pairwise(bounds):
        if start >= len(text):
            break
        while next_pending < len(pending) and ordered[pending[next_pending]].start <= start:
            active.append(pending[next_pending])
            next_pending += 1
        if active:
            active = [rank for rank in active if ordered[rank].end > start]
        owner = ordered[min(active)] if active else None
        if owners and owners[-1] is owner:
            pieces[-1].append(text[start:end])
        else:
            owners.append(owner)
            pieces.append([text[start:end]])
    return [("".join(parts), owner) for parts, owner in zip(pieces, owners, strict=True)]
