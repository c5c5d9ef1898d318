"""Build the static HTML report of a run: counts, charts, removed lines, quarantine, duplicates, documents.

Pure: rows and records in, one self-contained HTML page out (inline CSS, SVG charts drawn
here, a few lines of inline JavaScript to filter the document list; nothing fetched). All
document text is untrusted scraped content and goes through `html.escape`. The same input
gives the same bytes: every list has a total order and nothing reads the clock.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import SITE_LINE_SLOTS
from pipeline.schema import REMOVAL_FIELDS, Stage, Status
from pipeline.spans import KINDS, Span, removal_kind, segments
from pipeline.spill import SpillCounter, SpillStore
from pipeline.storage import gc_paused

Row = dict[str, Any]
_SCHEMA_COLUMNS = frozenset(spec.name for spec in REMOVAL_FIELDS)
_DEDUP = Stage.DEDUP.value


def survivor_key(duplicate_of: object, run: object) -> str:
    """Return the surviving sentence a dedup row points to: its key and the batch that published it.

    A document id names a page, so a page captured on two days has the same keys in both batches.

    >>> survivor_key("ab12:3", "2026-11-22"), survivor_key(None, None)
    ('ab12:3@2026-11-22', 'None@None')
    """
    return f"{duplicate_of}@{run}"


def survivor_codes(table: pa.Table | pa.RecordBatch) -> tuple[list[str], np.ndarray]:
    """Return a removals table's distinct `survivor_key`s and each row's number in them, as `column_codes` does."""
    targets, target_at = column_codes(table, "duplicate_of", "None")
    runs, run_at = column_codes(table, "duplicate_of_run", "None")
    pairs, pair_at = np.unique(target_at * len(runs) + run_at, return_inverse=True)
    keys = [survivor_key(targets[code // len(runs)], runs[code % len(runs)]) for code in pairs.tolist()]
    return keys, pair_at.reshape(-1).astype(np.int64)


def describe_removal(removal: Mapping[str, Any], survivors: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """Return one line saying why a removal row's text went: rule, where, score, what it duplicates.

    `survivors` are the sentences duplicates point to, by `survivor_key`. Columns beyond the
    schema's (added by later versions) are listed at the end.

    >>> describe_removal({"stage": "strip_boilerplate", "rule": "site_repeated", "position": 3, "score": 6.0})
    'site_repeated: line 3, in 6 documents of the site'
    >>> describe_removal({"stage": "strip_boilerplate", "rule": "site_repeated", "position": 3, "score": 8.0})
    'site_repeated: line 3, in 8+ documents of the site'
    >>> describe_removal({"stage": "find_duplicates", "rule": "near_duplicate", "position": 4, "score": 0.85,
    ...                   "duplicate_of": "ab:2", "duplicate_of_doc": "ab", "run_id": "r7"})
    'near_duplicate: sentence 4, Jaccard 0.85, of sentence ab:2 in document ab; run_id: r7'
    """
    rule, score, position = removal.get("rule"), removal.get("score"), removal.get("position")
    if removal.get("stage") == _DEDUP:
        text = f"{rule}: sentence {position}"
        if score is not None:
            text += f", Jaccard {score:.2f}"
        text += f", of sentence {removal.get('duplicate_of')} in document {removal.get('duplicate_of_doc')}"
        survivor = (survivors or {}).get(survivor_key(removal.get("duplicate_of"), removal.get("duplicate_of_run")))
        if survivor is not None:
            text += f" ({survivor['source']})"
        if removal.get("duplicate_of_run"):
            text += f", batch {removal['duplicate_of_run']}"
    else:
        text = f"{rule}: line {position}"
        if score is not None:
            kind = removal_kind(removal)
            text += (
                f", in {score:g}{'+' if score >= SITE_LINE_SLOTS else ''} documents of the site"
                if kind == "site"
                else f", boilerplate probability {score:.2f}"
                if kind == "classifier"
                else f", score {score:g}"
            )
    if _SCHEMA_COLUMNS.issuperset(removal):  # the usual row: no column beyond the schema's
        return text
    return "; ".join([text, *extra_columns(removal)])


def extra_columns(removal: Mapping[str, Any]) -> list[str]:
    """Return `name: value` for the columns of a removal row that the schema does not name (and not null)."""
    if _SCHEMA_COLUMNS.issuperset(removal):
        return []
    return [f"{k}: {v}" for k, v in sorted(removal.items()) if k not in _SCHEMA_COLUMNS and v is not None]


# --------------------------------------------------------------------------- what the page shows


@dataclass(frozen=True)
class StageCount:
    """Documents and characters left after one stage, and what the stage took out."""

    stage: str
    documents: int
    characters: int
    removed: str


@dataclass(frozen=True)
class RuleCount:
    """Removals by one rule of one stage."""

    stage: str
    rule: str
    kind: str
    count: int
    characters: int


@dataclass(frozen=True)
class LineCount:
    """A removed line (or fragment) and how often it was removed."""

    text: str
    count: int
    documents: int
    rules: tuple[str, ...]


@dataclass(frozen=True)
class Cluster:
    """A surviving sentence and the removed sentences that duplicate it."""

    key: str
    """Its `<doc_id>:<n>` key."""
    batch: str
    """The batch that published it."""
    copies: int
    documents: int
    survivor: Mapping[str, Any] | None
    example: str


@dataclass(frozen=True)
class DocumentView:
    """One document as the report shows it: its repaired text with the removed spans marked."""

    number: int
    manifest: Mapping[str, Any]
    text: str
    cut_chars: int
    spans: tuple[Span, ...]
    fixes: tuple[Mapping[str, Any], ...]
    removals: int
    survivors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportData:
    """Everything the report page shows."""

    title: str
    facts: tuple[tuple[str, str], ...]
    statuses: tuple[tuple[str, int], ...]
    stages: tuple[StageCount, ...]
    rules: tuple[RuleCount, ...]
    lines: tuple[LineCount, ...]
    clusters: tuple[Cluster, ...]
    document_duplicates: tuple[tuple[str, int, tuple[str, ...]], ...]
    quarantined: tuple[tuple[str, str, str], ...]
    quarantined_total: int
    documents: tuple[DocumentView, ...]
    documents_total: int
    max_document_chars: int


class RemovalTally:
    """Count removal rows: by rule, most frequent lines, duplicate clusters.

    Rows are added document by document (as the removals table lists them), so a line's
    documents are counted, not collected. `add` counts one row; `add_table` counts a table of
    them at once (columns stage, rule, text, source and duplicate_of), as `add` would row by row.
    The documents of the largest clusters are gathered by a second pass over the dedup rows
    (`collect_cluster_documents`). What grows with the run (a count per distinct line, cluster
    and source) is kept in `SpillCounter`s, which go to `store` beyond their memory budget.
    """

    def __init__(self, store: SpillStore | None = None) -> None:
        self.rules: Counter[tuple[str, str]] = Counter()
        self.rule_chars: Counter[tuple[str, str]] = Counter()
        self.kinds: dict[tuple[str, str], str] = {}
        self.lines = SpillCounter(store, "lines", sums=2)
        """Removals and documents of each line."""
        self.line_rules = SpillCounter(store, "line_rules", key_columns=2, sums=0)
        """(line, rule) pairs: the rules that removed each line."""
        self.clusters = SpillCounter(store, "clusters", sums=1, firsts=1)
        """Removed duplicates of each surviving sentence, and the first one's text."""
        self.cluster_sources = SpillCounter(store, "cluster_sources", key_columns=2, sums=0)
        """(surviving sentence, source) pairs of the clusters `collect_cluster_documents` gathered."""
        self.duplicate_chars = SpillCounter(store, "duplicate_chars", sums=1)
        """Characters of duplicate sentences removed, by source."""
        self._cluster_documents: dict[str, int] = {}
        self._source = ""
        self._documents = 0
        self._document_lines: set[str] = set()
        """The lines of the last document counted (numbered `_documents`): one that goes on in the next table."""

    def add(self, row: Mapping[str, Any]) -> None:
        """Count one removal row."""
        key = (str(row["stage"]), str(row["rule"]))
        text = str(row.get("text") or "").strip()
        self.rules[key] += 1
        self.rule_chars[key] += len(text)
        self.kinds[key] = removal_kind(row)
        source = str(row["source"])
        if source != self._source:
            self._source = source
            self._documents += 1
            self._document_lines = set()
        if row["stage"] == _DEDUP:
            target = survivor_key(row.get("duplicate_of"), row.get("duplicate_of_run"))
            self.clusters.add(target, (1,), (text,))
            self.duplicate_chars.add(source, (len(text),))
        else:
            new_document = text not in self._document_lines
            self._document_lines.add(text)
            self.lines.add(text, (1, int(new_document)))
            self.line_rules.add((text, sys.intern(key[1])))

    def add_table(self, table: pa.Table | pa.RecordBatch) -> None:
        """Count the rows of a table of removals, in order: what `add` gives row by row.

        The work per row is done by Arrow and numpy; Python loops only over the distinct
        (stripped) texts, rules and clusters of the table.
        """
        n = table.num_rows
        if not n:
            return
        # `str()` of a null is "None" in `add`: the same keys here.
        stages, stage_at = column_codes(table, "stage", "None")
        rules, rule_at = column_codes(table, "rule", "None")
        texts, texts_at = column_codes(table, "text", "")
        sources, source_at = column_codes(table, "source", "None")

        # The stripped text of every row, as a number: equal stripped texts, equal numbers.
        numbers: dict[str, int] = {}
        number_of = [numbers.setdefault(text.strip(), len(numbers)) for text in texts]
        stripped = list(numbers)
        text_at = np.asarray(number_of, dtype=np.int64)[texts_at]
        length_at = np.fromiter(map(len, stripped), dtype=np.int64, count=len(stripped))[text_at]

        # Documents: a new one wherever the source changes, as `add` counts them.
        changed = np.empty(n, dtype=bool)
        changed[0] = sources[source_at[0]] != self._source
        changed[1:] = source_at[1:] != source_at[:-1]
        document_at = self._documents + np.cumsum(changed)
        going_on = self._documents if not changed[0] else None
        """The document the previous table ended with, when this one goes on with it."""
        self._documents = int(document_at[-1])
        self._source = str(sources[source_at[-1]])

        pair = stage_at * len(rules) + rule_at
        pairs, pair_at = np.unique(pair, return_inverse=True)
        counts = np.bincount(pair_at)
        chars = np.bincount(pair_at, weights=length_at).astype(np.int64)
        for code, count, length in zip(pairs.tolist(), counts.tolist(), chars.tolist(), strict=True):
            stage_name, rule_name = stages[code // len(rules)], rules[code % len(rules)]
            key = (stage_name, rule_name)
            self.rules[key] += count
            self.rule_chars[key] += length
            self.kinds[key] = removal_kind({"stage": stage_name, "rule": rule_name})

        dedup = stage_at == stages.index(_DEDUP) if _DEDUP in stages else np.zeros(n, dtype=bool)
        if dedup.any():
            targets, target_at = survivor_codes(table)
            rows = np.flatnonzero(dedup)
            self._add_duplicates(
                targets, target_at[rows], stripped, text_at[rows], length_at[rows], sources, source_at[rows]
            )
        lines = np.flatnonzero(~dedup)
        last = self._documents
        carried = self._document_lines if going_on == last else set()
        if len(lines):
            self._add_lines(text_at[lines], document_at[lines], rule_at[lines], stripped, rules, going_on)
            in_last = lines[document_at[lines] == last]
            carried |= {stripped[code] for code in np.unique(text_at[in_last]).tolist()}
        self._document_lines = carried

    def _add_duplicates(
        self,
        targets: list[str],
        target_at: np.ndarray,
        stripped: list[str],
        text_at: np.ndarray,
        length_at: np.ndarray,
        sources: list[str],
        source_at: np.ndarray,
    ) -> None:
        """Count dedup rows: each row's surviving sentence, stripped text, its length and source, as numbers."""
        present, first = np.unique(target_at, return_index=True)
        counts = np.bincount(target_at)
        for code, at in zip(present.tolist(), first.tolist(), strict=True):
            self.clusters.add(targets[code], (int(counts[code]),), (stripped[text_at[at]],))
        by_source = np.bincount(source_at, weights=length_at, minlength=len(sources)).astype(np.int64)
        for code in np.unique(source_at).tolist():
            self.duplicate_chars.add(sources[code], (int(by_source[code]),))

    def _add_lines(
        self,
        text_at: np.ndarray,
        document_at: np.ndarray,
        rule_at: np.ndarray,
        stripped: list[str],
        rules: list[str],
        going_on: int | None,
    ) -> None:
        counts = np.bincount(text_at, minlength=len(stripped))
        # Distinct (text, document) pairs, sorted by text then document: a text's first document.
        first_document = int(document_at.min())
        width = int(document_at.max()) - first_document + 1
        pairs = np.unique(text_at * width + (document_at - first_document))
        pair_text = pairs // width
        pair_document = pairs % width + first_document
        documents = np.bincount(pair_text, minlength=len(stripped))
        present = np.unique(pair_text)
        lowest = pair_document[np.searchsorted(pair_text, present, side="left")]
        going_on_lines = self._document_lines
        for code, low in zip(present.tolist(), lowest.tolist(), strict=True):
            text = stripped[code]
            # A document the previous table ended with may go on in this one: counted once.
            counted_before = low == going_on and text in going_on_lines
            self.lines.add(text, (int(counts[code]), int(documents[code]) - counted_before))
        for code in np.unique(text_at * len(rules) + rule_at).tolist():
            self.line_rules.add((stripped[code // len(rules)], sys.intern(rules[code % len(rules)])))

    def collect_cluster_documents(self, tables: Iterable[pa.Table], keys: Iterable[str]) -> None:
        """Gather the documents of the clusters `keys` (`survivor_key`s) from the removals, read again.

        The tables need the columns stage, duplicate_of, duplicate_of_run and source.
        """
        wanted = set(keys)
        if wanted:
            for table in tables:
                stages, stage_at = column_codes(table, "stage", "None")
                if _DEDUP not in stages:
                    continue
                targets, target_at = survivor_codes(table)
                sources, source_at = column_codes(table, "source", "None")
                is_wanted = np.array([target in wanted for target in targets], dtype=bool)
                rows = np.flatnonzero((stage_at == stages.index(_DEDUP)) & is_wanted[target_at])
                for target, source in set(zip(target_at[rows].tolist(), source_at[rows].tolist(), strict=True)):
                    self.cluster_sources.add((targets[target], str(sources[source])))
        self._cluster_documents = self.cluster_sources.count_seconds(wanted)

    def cluster_documents(self, key: str) -> list[str]:
        """Return the sources of the documents in a cluster gathered by `collect_cluster_documents`, sorted."""
        return self.cluster_sources.seconds([key])[key]

    def rule_counts(self) -> tuple[RuleCount, ...]:
        """Return removals per rule, most first."""
        ordered = sorted(self.rules.items(), key=lambda item: (-item[1], item[0]))
        return tuple(RuleCount(s, r, self.kinds[(s, r)], n, self.rule_chars[(s, r)]) for (s, r), n in ordered)

    def top_lines(self, limit: int) -> tuple[LineCount, ...]:
        """Return the most frequently removed lines (then those in the most documents, then by text)."""
        top = self.lines.top(limit)
        rules = self.line_rules.seconds([text for text, _, _ in top])
        return tuple(LineCount(text, n, documents, tuple(rules[text])) for text, n, documents in top)

    def top_clusters(self, limit: int) -> list[str]:
        """Return the `survivor_key`s of the surviving sentences with the most duplicates."""
        return [key for key, _, _ in self.clusters.top(limit)]

    def duplicate_chars_of(self, source: str) -> int:
        """Return the characters of the duplicate sentences removed from one document."""
        counted = self.duplicate_chars.get(source)
        return 0 if counted is None else int(counted[0])

    def cluster(self, key: str, survivors: Mapping[str, Mapping[str, Any]]) -> Cluster:
        """Return the cluster of one surviving sentence (a `survivor_key` `collect_cluster_documents` gathered).

        `survivors` are the sentences found, by `survivor_key`.
        """
        survivor = survivors.get(key)
        copies, example = self.clusters.get(key) or (0, "")
        documents = self._cluster_documents[key]
        if survivor and (key, str(survivor["source"])) not in self.cluster_sources:
            documents += 1
        sentence, _, batch = key.rpartition("@")
        return Cluster(sentence, batch, copies + 1, documents, survivor, example)


def column_codes(table: pa.Table | pa.RecordBatch, name: str, null: Any) -> tuple[list[Any], np.ndarray]:
    """Return a column's distinct values (a null as `null`, a missing column all null) and each row's number in them.

    Arrow and numpy meet through buffers: `to_numpy` and `pa.array` would import pandas.
    """
    if name not in table.column_names or not table.num_rows:
        return [null], np.zeros(table.num_rows, dtype=np.int64)
    column = table.column(name)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column, null_encoding="encode")  # a null is a value of its own
    indices = encoded.indices
    codes = np.frombuffer(indices.buffers()[1], dtype=np.int32, count=len(indices), offset=indices.offset * 4).astype(
        np.int64
    )
    values = encoded.dictionary.to_pylist()
    if column.null_count:
        values = [null if value is None else value for value in values]
        numbers: dict[Any, int] = {}
        renumbered = [numbers.setdefault(value, len(numbers)) for value in values]
        if len(numbers) < len(values):  # a null and the value `null` itself: one value, as `str()` makes them
            values, codes = list(numbers), np.asarray(renumbered, dtype=np.int64)[codes]
    return values, codes


def take_table(table: pa.Table, positions: np.ndarray) -> pa.Table:
    """Return the rows of a table at the given positions, as a table."""
    indices = np.ascontiguousarray(positions, dtype=np.int64)
    return table.take(pa.Array.from_buffers(pa.int64(), len(indices), [None, pa.py_buffer(indices)]))


def take_rows(table: pa.Table, positions: np.ndarray) -> list[dict[str, Any]]:
    """Return the rows of a table at the given positions, as dicts (what `to_pylist` gives).

    Equal strings of a column are one object, not one a row: the same rule, stage, document and
    line recur row after row, and the memory they would take is touched for nothing.
    """
    if not len(positions):
        return []
    taken = take_table(table, positions)
    names = taken.column_names
    columns: list[list[Any]] = []
    for name in names:
        if pa.types.is_string(taken.schema.field(name).type):
            values, codes = column_codes(taken, name, None)
            columns.append([values[code] for code in codes.tolist()])
        else:
            columns.append(taken.column(name).to_pylist())
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def status_counts(statuses: Iterable[str]) -> tuple[tuple[str, int], ...]:
    """Return documents per status in the order of `Status`, then any other status by name."""
    counts = Counter(statuses)
    known = [(s.value, counts.pop(s.value)) for s in Status if s.value in counts]
    return (*known, *sorted(counts.items()))


# --------------------------------------------------------------------------- rendering

_CSS = """
:root{--ink:#1f2328;--muted:#656d76;--line:#d0d7de;--bg:#f6f8fa;--accent:#0969da;
--rule:#bc4c00;--rule-bg:#fff1e5;--site:#8250df;--site-bg:#fbefff;--classifier:#0550ae;--classifier-bg:#ddf4ff;
--duplicate:#bf3989;--duplicate-bg:#ffeff7;--kept:#1a7f37}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--ink);background:#fff}
header{padding:18px 32px;background:var(--bg);border-bottom:1px solid var(--line)}
header h1{margin:0 0 6px;font-size:22px}
nav a{margin-right:14px;color:var(--accent);text-decoration:none}
main{padding:8px 32px 48px;max-width:1200px}
section{margin-top:26px}
h2{font-size:18px;border-bottom:1px solid var(--line);padding-bottom:4px}
.facts{display:flex;flex-wrap:wrap;gap:8px 22px;margin:8px 0 10px;color:var(--muted)}
.facts b{color:var(--ink)}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
th{background:var(--bg)}
td.n{text-align:right;font-variant-numeric:tabular-nums}
td.t{max-width:640px;overflow-wrap:anywhere}
.charts{display:flex;flex-wrap:wrap;gap:18px}
figure{margin:0;padding:8px 10px;border:1px solid var(--line);border-radius:6px}
figcaption{font-weight:600;margin-bottom:4px}
svg.chart text{font:12px system-ui,sans-serif;fill:var(--ink)}
svg.chart .bar{fill:var(--accent)}
svg.chart .k-rule{fill:var(--rule)} svg.chart .k-site{fill:var(--site)}
svg.chart .k-classifier{fill:var(--classifier)} svg.chart .k-duplicate{fill:var(--duplicate)}
svg.chart .s-kept{fill:var(--kept)}
.muted{color:var(--muted)}
.legend span{display:inline-block;margin-right:14px}
del{text-decoration:line-through;text-decoration-thickness:1.5px;border-radius:2px;padding:0 1px}
del.k-rule{color:var(--rule);background:var(--rule-bg)}
del.k-site{color:var(--site);background:var(--site-bg)}
del.k-classifier{color:var(--classifier);background:var(--classifier-bg)}
del.k-duplicate{color:var(--duplicate);background:var(--duplicate-bg)}
#find{margin:8px 0}
#q{width:420px;padding:5px 8px;font:inherit;border:1px solid var(--line);border-radius:6px}
#doclist{max-height:260px;overflow:auto;border:1px solid var(--line);border-radius:6px;margin:6px 0;padding:4px 0;
list-style:none}
#doclist li{padding:1px 10px}
#doclist a{color:var(--accent);text-decoration:none;font-family:ui-monospace,monospace}
.doc{display:none;border:1px solid var(--line);border-radius:6px;padding:10px 16px;margin-top:10px}
.doc:target{display:block}
.doc h3{margin:4px 0;font-size:16px;overflow-wrap:anywhere}
.doc pre{white-space:pre-wrap;overflow-wrap:anywhere;font:13px/1.55 ui-monospace,"DejaVu Sans Mono",monospace;
background:var(--bg);padding:10px;border-radius:6px}
.status{display:inline-block;padding:0 8px;border-radius:10px;background:var(--bg);border:1px solid var(--line)}
.status.kept{color:var(--kept)}
"""

_JS = """
(function () {
  var box = document.getElementById("q");
  var items = Array.prototype.slice.call(document.querySelectorAll("#doclist li"));
  var shown = document.getElementById("shown");
  function filter() {
    var query = box.value.trim().toLowerCase(), n = 0;
    items.forEach(function (item) {
      var hit = !query || item.getAttribute("data-key").indexOf(query) >= 0;
      item.hidden = !hit;
      if (hit) { n += 1; }
    });
    shown.textContent = n + " of " + items.length;
  }
  box.addEventListener("input", filter);
  document.getElementById("find").addEventListener("submit", function (event) {
    event.preventDefault();
    var query = box.value.trim();
    var exact = items.filter(function (item) {
      return item.getAttribute("data-id") === query || item.getAttribute("data-source") === query;
    });
    var pick = exact.length ? exact : items.filter(function (item) { return !item.hidden; });
    if (pick.length) { location.hash = pick[0].getAttribute("data-anchor"); }
  });
  filter();
})();
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _n(value: int) -> str:
    return f"{value:,}"


def bar_chart(label: str, bars: Sequence[tuple[str, int, str, str]], width: int = 520) -> str:
    """Return an inline SVG horizontal bar chart of (label, value, css class, tooltip) bars.

    >>> svg = bar_chart("Removals", [("read_more", 2, "k-rule", "2 removals")])
    >>> svg.count("<rect"), 'aria-label="Removals"' in svg
    (1, True)
    """
    left, right, row = 190, 70, 22
    height = max(1, len(bars)) * row + 8
    top = max((value for _, value, _, _ in bars), default=0) or 1
    span = width - left - right
    parts = [
        f'<svg class="chart" role="img" aria-label="{_e(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{_e(label)}</title>'
    ]
    for index, (name, value, css, tip) in enumerate(bars):
        y = 4 + index * row
        length = max(1, round(span * value / top)) if value else 0
        short = name if len(name) <= 28 else name[:27] + "…"
        parts.append(
            f"<g><title>{_e(tip)}</title>"
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{_e(short)}</text>'
            f'<rect class="bar {_e(css)}" x="{left}" y="{y + 3}" width="{length}" height="{row - 6}" rx="2"></rect>'
            f'<text x="{left + length + 6}" y="{y + 15}">{_n(value)}</text></g>'
        )
    if not bars:
        parts.append('<text x="8" y="18">none</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """Return an HTML table; cells are already escaped HTML."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(f'<td class="{"n" if i in numeric else "t"}">{cell}</td>' for i, cell in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _clipped(text: str, limit: int = 160) -> str:
    """Return text as code, cut at `limit` characters (the whole text in its tooltip)."""
    if len(text) <= limit:
        return f"<code>{_e(text)}</code>"
    return f'<code title="{_e(text)}">{_e(text[: limit - 1])}…</code>'


def _legend() -> str:
    items = "".join(f'<span><del class="k-{kind}">{_e(kind)}</del> {_e(text)}</span>' for kind, text in KINDS.items())
    return f'<p class="legend">{items}</p>'


def _overview(data: ReportData) -> str:
    facts = "".join(f"<span>{_e(k)}: <b>{_e(v)}</b></span>" for k, v in data.facts)
    stage_rows = [(_e(s.stage), _n(s.documents), _n(s.characters), _e(s.removed)) for s in data.stages]
    status_bars = [(s, n, "s-kept" if s == Status.KEPT.value else "", f"{n} documents {s}") for s, n in data.statuses]
    char_bars = [(s.stage, s.characters, "", f"{s.characters:,} characters after {s.stage}") for s in data.stages]
    rule_bars = [
        (
            f"{r.rule}",
            r.count,
            f"k-{r.kind}",
            f"{r.count} removals by {r.rule} ({r.stage}), {r.characters:,} characters",
        )
        for r in data.rules
    ]
    rule_rows = ((_e(r.stage), _e(r.rule), _n(r.count), _n(r.characters)) for r in data.rules)
    return f"""<section id="counts"><h2>Counts per stage</h2>
<div class="facts">{facts}</div>
{_table(("stage", "documents", "characters", "removed"), stage_rows, numeric=(1, 2))}
<div class="charts">
{_figure("chart-stages", "Characters left after each stage", char_bars)}
{_figure("chart-status", "What became of the input documents", status_bars)}
</div></section>
<section id="rules"><h2>Removals by rule</h2>
{_figure("chart-rules", "Removals by rule (colour: kind of removal)", rule_bars, width=640)}
{_legend()}
{_table(("stage", "rule", "removals", "characters"), rule_rows, numeric=(2, 3))}
</section>"""


def _figure(anchor: str, caption: str, bars: Sequence[tuple[str, int, str, str]], width: int = 520) -> str:
    chart = bar_chart(caption, bars, width)
    return f'<figure id="{anchor}"><figcaption>{_e(caption)}</figcaption>{chart}</figure>'


def _lines(data: ReportData) -> str:
    rows = ((_n(x.count), _n(x.documents), _e(", ".join(x.rules)), _clipped(x.text)) for x in data.lines)
    return f"""<section id="lines"><h2>Most frequently removed lines</h2>
{_table(("removals", "documents", "rules", "text"), rows, numeric=(0, 1))}</section>"""


def _quarantine(data: ReportData) -> str:
    more = data.quarantined_total - len(data.quarantined)
    note = f'<p class="muted">… and {_n(more)} more in quarantine/index.jsonl</p>' if more > 0 else ""
    rows = ((f"<code>{_e(s)}</code>", _e(r), f"<code>{_e(w)}</code>") for s, r, w in data.quarantined)
    return f"""<section id="quarantine"><h2>Quarantined inputs ({_n(data.quarantined_total)})</h2>
{_table(("source", "reason", "bytes kept at"), rows)}{note}</section>"""


def _duplicates(data: ReportData) -> str:
    rows = []
    for c in data.clusters:
        survivor = c.survivor
        text = str(survivor["text"]) if survivor else c.example
        where = f"{survivor['source']}, batch {c.batch}" if survivor else f"batch {c.batch}"
        rows.append((_n(c.copies), _n(c.documents), f"<code>{_e(c.key)}</code><br>{_e(where)}", _e(text)))
    docs = ((f"<code>{_e(doc)}</code>", _n(n), _e(", ".join(sources))) for doc, n, sources in data.document_duplicates)
    return f"""<section id="duplicates"><h2>Largest duplicate clusters</h2>
<p class="muted">A surviving sentence and every sentence removed as its duplicate (copies include the survivor).</p>
{_table(("copies", "documents", "surviving sentence", "text"), rows, numeric=(0, 1))}
<h3>Documents dropped whole as duplicates</h3>
{_table(("duplicate of document", "dropped", "sources"), docs, numeric=(1,))}</section>"""


def _document(view: DocumentView) -> str:
    m = view.manifest
    status = str(m.get("status"))
    meta = [("status", f'<span class="status {_e(status)}">{_e(status)}</span>')]
    for key in ("reason", "url", "format", "encoding", "language", "duplicate_of", "chars_before", "chars_after"):
        value = m.get(key)
        if value is not None and value != "":
            meta.append((key, _e(value)))
    meta_html = " · ".join(f'<span class="muted">{k}</span> {v}' for k, v in meta)
    parts = [
        f'<article class="doc" id="d{view.number}" data-id="{_e(m.get("id") or "")}" data-source="{_e(m["source"])}">',
        f'<h3>{_e(m["source"])} <small class="muted">{_e(m.get("id") or "no id")}</small></h3>',
        f"<p>{meta_html}</p>",
    ]
    if view.fixes:
        items = "".join(
            f"<li>line {_e(f['line'])}: {_e(', '.join(f['steps']))} — was <code>{_e(f['before'])}</code></li>"
            for f in view.fixes
        )
        parts.append(
            f"<details open><summary>Encoding fixes on {len(view.fixes)} lines</summary><ul>{items}</ul></details>"
        )
    if view.text:
        kinds = Counter(kind for _, _, kind, _ in view.spans)
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "nothing"
        parts.append(f'<p class="muted">{view.removals} removals; marked here: {_e(summary)}</p>')
        body = []
        survivors = view.survivors
        for text, span in segments(view.text, view.spans):
            if span is None:
                body.append(escape(text))
            else:
                _, _, kind, removal = span
                tip = escape(describe_removal(removal, survivors))
                body.append(f'{_DEL.get(kind) or _del(kind)}{tip}">{escape(text)}</del>')
        parts.append(f'<pre class="text">{"".join(body)}</pre>')
        if view.cut_chars:
            parts.append(
                f'<p class="muted">… {_n(view.cut_chars)} more characters not shown (report.max_document_chars); '
                f"<code>python -m pipeline explain {_e(m.get('id') or m['source'])}</code> shows them all.</p>"
            )
    parts.append("</article>")
    return "".join(parts)


def _del(kind: str) -> str:
    return f'<del class="k-{_e(kind)}" title="'


_DEL = {kind: _del(kind) for kind in KINDS}
"""The opening of a removal's `<del>` element, up to its tooltip, by kind."""


def _list_item(view: DocumentView) -> str:
    m = view.manifest
    doc_id, source = str(m.get("id") or ""), str(m["source"])
    key = " ".join((doc_id, source, str(m.get("url") or ""))).lower()
    return (
        f'<li data-key="{_e(key)}" data-id="{_e(doc_id)}" data-source="{_e(source)}" data-anchor="d{view.number}">'
        f'<a href="#d{view.number}">{_e(source)}</a> '
        f'<span class="muted">{_e(doc_id)} · {_e(m.get("status"))}</span></li>'
    )


def _documents(data: ReportData) -> Iterator[str]:
    items = "".join(_list_item(view) for view in data.documents)
    more = data.documents_total - len(data.documents)
    note = (
        f'<p class="muted">The first {_n(len(data.documents))} of {_n(data.documents_total)} documents have a view '
        "here (report.max_documents); <code>python -m pipeline explain ID_OR_PATH</code> explains any of them.</p>"
        if more > 0
        else ""
    )
    yield f"""<section id="documents"><h2>Documents</h2>
<p class="muted">The repaired text of each document, with what later stages removed struck through and coloured by
reason; hover over a removal for its rule, line or sentence number and score.</p>{note}
{_legend()}
<form id="find" role="search"><input id="q" type="search" placeholder="document id, source or URL" autocomplete="off"
aria-label="find a document by id, source or URL"> <button type="submit">Open</button>
<span id="shown" class="muted"></span></form>
<ul id="doclist">{items}</ul>
"""
    for view in data.documents:
        yield _document(view)
    yield "</section>"


def report_parts(data: ReportData) -> Iterator[str]:
    """Yield the report page in pieces, a document's view each: a large page is never one string but once."""
    yield f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(data.title)}</title>
<style>{_CSS}</style></head>
<body><header><h1>{_e(data.title)}</h1>
<nav><a href="#counts">Counts</a><a href="#rules">Removals by rule</a><a href="#lines">Removed lines</a>
<a href="#quarantine">Quarantine</a><a href="#duplicates">Duplicates</a><a href="#documents">Documents</a></nav>
</header>
<main>
{_overview(data)}
{_lines(data)}
{_quarantine(data)}
{_duplicates(data)}
"""
    yield from _documents(data)
    yield f"""
</main>
<script>{_JS}</script>
</body></html>
"""


@gc_paused()
def render_report(data: ReportData) -> str:
    """Return the report page."""
    return "".join(report_parts(data))


@gc_paused()
def render_report_bytes(data: ReportData) -> bytes:
    """Return the report page encoded as UTF-8: what `render_report` gives, without the page as one string.

    A page with one character beyond the BMP would be a string of four bytes a character.
    """
    return b"".join(part.encode("utf-8") for part in report_parts(data))
