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
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.schema import Stage

SITE_RULE, CLASSIFIER_RULE = "site_repeated", "line_classifier"
KINDS: dict[str, str] = {
    "rule": "boilerplate line rules",
    "site": "lines repeated across a site (site_repeated)",
    "classifier": "learned line classifier (line_classifier)",
    "duplicate": "duplicate sentences",
}
"""Why text was removed, as a reader groups it: the report's legend and colours."""


@dataclass(frozen=True)
class Span:
    """Characters `start:end` of the repaired text, removed by one removal row."""

    start: int
    end: int
    kind: str
    removal: Mapping[str, Any]


def removal_kind(removal: Mapping[str, Any]) -> str:
    """Return the kind of a removal row: rule, site, classifier or duplicate.

    >>> removal_kind({"stage": "find_duplicates", "rule": "near_duplicate"})
    'duplicate'
    >>> removal_kind({"stage": "strip_boilerplate", "rule": "site_repeated"})
    'site'
    """
    if removal.get("stage") == Stage.DEDUP.value:
        return "duplicate"
    rule = removal.get("rule")
    return "site" if rule == SITE_RULE else "classifier" if rule == CLASSIFIER_RULE else "rule"


def _visible(text: str) -> tuple[str, list[int]]:
    """Return the text's non-whitespace characters and the offset of each in the text.

    A removal is found whitespace-insensitively by searching its own non-whitespace characters
    among these (what a pattern with `\\s*` between the characters would match, found once
    per page instead of compiling a pattern per removal).

    >>> _visible(" a b\\n c")
    ('abc', [1, 3, 6])
    """
    chars: list[str] = []
    offsets: list[int] = []
    for match in re.finditer(r"\S+", text):
        chars.append(match.group())
        offsets.extend(range(match.start(), match.end()))
    return "".join(chars), offsets


def _line_starts(text: str) -> list[int]:
    starts = [0]
    starts += [match.end() for match in re.finditer("\n", text)]
    return starts


def _blank_lines(text: str, starts: list[int]) -> list[int]:
    """Return the numbers of the blank (whitespace-only) lines, in order."""
    ends = [*starts[1:], len(text)]
    return [number for number, (start, end) in enumerate(zip(starts, ends, strict=True)) if not text[start:end].strip()]


def _paragraph_end(text: str, starts: list[int], blanks: list[int], line: int) -> int:
    """Return where the paragraph holding `line` ends: rejoining never crosses a blank line.

    `blanks` are the blank lines' numbers (`_blank_lines`): the paragraph ends at the first one
    after `line`, found by bisection, so placing every removal of a page without blank lines
    stays linear in its length.

    >>> text = "a\\nb\\n\\nc"
    >>> starts = _line_starts(text)
    >>> [_paragraph_end(text, starts, _blank_lines(text, starts), line) for line in range(4)]
    [4, 4, 6, 6]
    """
    after = bisect.bisect_right(blanks, line)
    return starts[blanks[after]] if after < len(blanks) else len(text)


class _Taken:
    """Disjoint spans already placed, sorted: sorted by start, their ends are sorted too."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def overlaps(self, start: int, end: int) -> bool:
        """Return whether `start:end` overlaps a placed span: the last one starting before `end`."""
        before = bisect.bisect_left(self.starts, end) - 1
        return before >= 0 and self.ends[before] > start

    def add(self, start: int, end: int) -> None:
        at = bisect.bisect_left(self.starts, start)
        self.starts.insert(at, start)
        self.ends.insert(at, end)


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
    starts = _line_starts(text)
    blanks = _blank_lines(text, starts)
    visible, offsets = _visible(text)
    rows = list(removals)
    spans: list[Span] = []
    taken = _Taken()
    for row in rows:
        if row.get("stage") == Stage.DEDUP.value:
            continue
        target = "".join(str(row.get("text") or "").split())
        line = int(row.get("position") or 0)
        if not target or not 0 <= line < len(starts):
            continue
        # The first occurrence from the line on, within its paragraph, that overlaps nothing placed.
        low = bisect.bisect_left(offsets, starts[line])
        high = bisect.bisect_left(offsets, _paragraph_end(text, starts, blanks, line))
        found = visible.find(target, low, high)
        while found >= 0:
            start, end = offsets[found], offsets[found + len(target) - 1] + 1
            if not taken.overlaps(start, end):
                taken.add(start, end)
                spans.append(Span(start, end, removal_kind(row), row))
                break
            found = visible.find(target, found + 1, high)
    duplicates = [row for row in rows if row.get("stage") == Stage.DEDUP.value]
    if duplicates and sentences:
        placed = _place_sentences(visible, offsets, list(zip(taken.starts, taken.ends, strict=True)), sentences)
        for row in duplicates:
            position = int(row.get("position") or 0)
            where = placed[position] if 0 <= position < len(placed) else None
            if where is not None:
                spans.append(Span(where[0], where[1], "duplicate", row))
    return sorted(spans, key=lambda span: (span.start, span.end))


def _place_sentences(
    visible: str, offsets: list[int], taken: list[tuple[int, int]], sentences: Sequence[str]
) -> list[tuple[int, int] | None]:
    """Return each sentence's span in the text, laid over the characters not taken by boilerplate.

    `visible` and `offsets` are the text's non-whitespace characters and their offsets
    (`_visible`); `taken` the disjoint spans of boilerplate, sorted.
    """
    chars: list[str] = []
    at: list[int] = []
    cursor = 0
    for start, end in taken:
        first = bisect.bisect_left(offsets, start)
        chars.append(visible[cursor:first])
        at += offsets[cursor:first]
        cursor = max(cursor, bisect.bisect_left(offsets, end))
    chars.append(visible[cursor:])
    at += offsets[cursor:]
    kept = "".join(chars)
    placed: list[tuple[int, int] | None] = []
    cursor = 0
    for sentence in sentences:
        target = "".join(ch for ch in sentence if not ch.isspace())
        found = cursor if kept.startswith(target, cursor) else kept.find(target, cursor)
        if not target or found < 0:
            placed.append(None)
            continue
        placed.append((at[found], at[found + len(target) - 1] + 1))
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
