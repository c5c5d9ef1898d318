"""Turn the last stage's records into corpus rows, write them as Parquet parts, describe them.

`assemble_document` is pure: one document's record and dedup verdict in, its corpus row (if
kept), manifest row and removal rows out. `PartWriter` streams rows into numbered Parquet
files. `render_dataset_card` writes the README that documents the corpus.

Layout: each batch (a day's run, or the one `default` batch of undated runs) is a Hive-style
partition, `data/batch=<name>/part-*.parquet` and likewise under `manifest/` and `removals/`,
and is published when `batches/<name>.json` names it (written last).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from pipeline import __version__
from pipeline.config import PipelineConfig
from pipeline.schema import (
    DOCUMENT_FIELDS,
    MANIFEST_FIELDS,
    REMOVAL_FIELDS,
    SCHEMA_VERSION,
    FieldSpec,
    Stage,
    Status,
)
from pipeline.steps.dedup import DocumentVerdict, SentenceDuplicate
from pipeline.steps.sentences import count_words, join_sentences
from pipeline.storage import AtomicParquetWriter, stage_records

Row = dict[str, Any]

DATA_DIR, MANIFEST_DIR, REMOVALS_DIR = "data", "manifest", "removals"
TABLES = (DATA_DIR, MANIFEST_DIR, REMOVALS_DIR)
BATCHES_DIR = "batches"
"""Folder of the corpus holding one JSON marker per published batch: its plan, fingerprint and counts."""
_BOILERPLATE, _DEDUP = Stage.BOILERPLATE.value, Stage.DEDUP.value


def partition(batch: str) -> str:
    """Return the Hive-style partition folder of a batch.

    >>> partition("2026-11-24")
    'batch=2026-11-24'
    """
    return f"batch={batch}"


def published_batches(corpus: Path) -> list[dict[str, Any]]:
    """Return the markers of the batches published in a corpus folder, by batch name."""
    folder = corpus / BATCHES_DIR
    markers = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return [json.loads(path.read_text(encoding="utf-8")) for path in markers]


@dataclass(frozen=True)
class AssembledDocument:
    """One document's contribution to the corpus files."""

    document: Row | None
    manifest: Row
    removals: tuple[Row, ...]


def assemble_document(
    record: Row, verdict: DocumentVerdict | None, cfg: PipelineConfig, config_hash: str
) -> AssembledDocument:
    """Build the corpus row, manifest row and removal rows of one document."""
    source, doc_id = record["source"], record["doc_id"]
    manifest: Row = {
        "id": doc_id,
        "source": source,
        "url": record.get("url"),
        "format": record["format"],
        "status": Status.KEPT.value,
        "reason": None,
        "encoding": record.get("encoding"),
        "language": record.get("language"),
        "duplicate_of": None,
        "duplicate_of_run": None,
        "chars_before": record["chars_before"],
        "chars_after": 0,
    }
    if record["status"] in (Status.QUARANTINED.value, Status.SKIPPED.value):
        manifest.update(status=record["status"], reason=record["reason"])
        return AssembledDocument(None, manifest, ())

    removals = [
        {
            "doc_id": doc_id,
            "source": source,
            "stage": _BOILERPLATE,
            "rule": r["rule"],
            "text": r["text"],
            "position": r["position"],
            "score": r.get("score"),
            "duplicate_of": None,
            "duplicate_of_doc": None,
            "duplicate_of_run": None,
        }
        for r in record.get("removals", ())
    ]
    dropped: set[int] = set()
    if verdict is not None:
        for dup in verdict.sentences:
            dropped.add(dup.position)
            removals.append(
                {
                    "doc_id": doc_id,
                    "source": source,
                    "stage": _DEDUP,
                    "rule": dup.rule,
                    "text": dup.text,
                    "position": dup.position,
                    "score": dup.score,
                    "duplicate_of": dup.duplicate_of,
                    "duplicate_of_doc": dup.duplicate_of_doc,
                    "duplicate_of_run": dup.duplicate_of_run or None,
                }
            )
        if verdict.duplicate_of_doc is not None:
            manifest.update(
                status=Status.DUPLICATE.value,
                reason=verdict.reason,
                duplicate_of=verdict.duplicate_of_doc,
                duplicate_of_run=verdict.duplicate_of_run or None,
            )
            return AssembledDocument(None, manifest, tuple(removals))

    paragraphs: list[str] = []
    position = 0
    n_sentences = 0
    for paragraph in record["paragraphs"]:
        kept = []
        for sentence in paragraph:
            if position not in dropped:
                kept.append(sentence)
            position += 1
        if kept:
            paragraphs.append(join_sentences(kept, ends_paragraph=position - 1 not in dropped))
            n_sentences += len(kept)
    text = "\n".join(paragraphs)
    n_words = count_words(text)
    if n_words < max(cfg.corpus.min_words, 1):
        manifest.update(
            status=Status.EMPTY_AFTER_CLEANING.value,
            reason=f"{n_words} words left after cleaning (minimum {cfg.corpus.min_words})",
        )
        return AssembledDocument(None, manifest, tuple(removals))
    manifest["chars_after"] = len(text)
    document = {
        "id": doc_id,
        "source": source,
        "url": record.get("url"),
        "format": record["format"],
        "title": record.get("title"),
        "author": record.get("author"),
        "date": record.get("date"),
        "fetched": record.get("fetched"),
        "site_name": record.get("site_name"),
        "source_id": record.get("source_id"),
        "language": record.get("language"),
        "language_score": record.get("language_score"),
        "text": text,
        "n_sentences": n_sentences,
        "n_words": n_words,
        "pipeline_version": __version__,
        "config_hash": config_hash,
    }
    return AssembledDocument(document, manifest, tuple(removals))


ROW_GROUP_ROWS = 10_000
"""Most rows in a row group of a corpus file. A file is written a row group at a time, and a row
group is held in memory twice (rows, then its Arrow table) while it is written: this bounds the
memory of `WriteCorpus` whatever the corpus and `corpus.rows_per_file`. A constant, not a config
setting: the rows do not depend on it, and every setting is part of the config hash each row carries."""
ROW_GROUP_CHARS = 16 * 2**20
"""Most characters of `text` in a row group (one row alone may hold more), so that long documents
cannot make a row group large: about 4,300 documents of the news corpora measured (17 MB of
Parquet before compression)."""
TEXT_COLUMN = "text"
"""The column whose characters bound a row group: the document's text, the removed line's. The
other columns are ids and metadata, bounded by the rows. (Only this one is measured: counting
every string of every row would add a third to the time of writing the removal log.)"""


@dataclass
class PartWriter:
    """Write rows into `folder/part-NNNNN.parquet` files of at most `rows_per_file` rows.

    Each file is written a row group at a time (at most `row_group_rows` rows and, unless a row
    alone holds more, `row_group_chars` characters of `TEXT_COLUMN`) and renamed into place when full or
    closed, so memory stays one row group's whatever the number of rows. The same rows give the
    same files. Until `close`, the part being written is a hidden temporary file in `folder`.
    """

    folder: Path
    fields: tuple[FieldSpec, ...]
    rows_per_file: int
    compression: str
    row_group_rows: int = ROW_GROUP_ROWS
    row_group_chars: int = ROW_GROUP_CHARS
    written: list[str] = field(default_factory=list)
    _group: list[Row] = field(default_factory=list)
    _group_chars: int = 0
    _part: AtomicParquetWriter | None = None
    _part_rows: int = 0

    def __post_init__(self) -> None:
        self._schema = pa.schema([spec.arrow() for spec in self.fields], metadata={"schema_version": SCHEMA_VERSION})
        self._measured = any(spec.name == TEXT_COLUMN for spec in self.fields)

    def add(self, row: Row) -> None:
        """Add a row; a full row group is written out, and a full part renamed into place, at once."""
        chars = len(row[TEXT_COLUMN] or "") if self._measured else 0
        if self._group and self._group_chars + chars > self.row_group_chars:
            self._write_group()
        self._group.append(row)
        self._group_chars += chars
        if self._part_rows + len(self._group) >= self.rows_per_file:
            self._write_group()
            self._finish_part()
        elif len(self._group) >= self.row_group_rows:
            self._write_group()

    def add_all(self, rows: Iterable[Row]) -> None:
        """Add rows, as `add` does one by one."""
        for row in rows:
            self.add(row)

    def close(self) -> list[str]:
        """Write the last part (one of no rows, with the schema, if no row came at all) and return the part names."""
        if self._group or (self._part is None and not self.written):
            self._write_group()
        if self._part is not None:
            self._finish_part()
        return self.written

    def _write_group(self) -> None:
        rows, self._group, self._group_chars = self._group, [], 0
        table = pa.table({spec.name: [row[spec.name] for row in rows] for spec in self.fields}, schema=self._schema)
        if self._part is None:
            self._part = AtomicParquetWriter(
                self.folder / f"part-{len(self.written):05d}.parquet", self._schema, self.compression
            )
        if rows:  # a part of no rows has no row group: readers that size batches by row group (`datasets`) need it
            self._part.write(table)
        self._part_rows += len(rows)

    def _finish_part(self) -> None:
        assert self._part is not None
        self._part.commit()
        self.written.append(self._part.path.name)
        self._part, self._part_rows = None, 0


def reason_kind(reason: str) -> str:
    """Return the kind of a quarantine reason, without its numbers and details, for counting.

    >>> reason_kind("line 7: not valid JSON: Expecting value: line 1 column 2 (char 1)")
    'not valid JSON'
    >>> reason_kind("file of 12 bytes is over the limit of 10 (input.max_file_bytes)")
    'file of N bytes is over the limit of N'
    """
    kind = re.sub(r"^line \d+: ", "", reason)
    kind = re.split(r"[:(;]", kind, maxsplit=1)[0].strip()
    return re.sub(r"\d+", "N", kind)


@dataclass
class RunCounts:
    """Counts for the dataset card and the run summary."""

    documents: Counter[str] = field(default_factory=Counter)
    removals: Counter[tuple[str, str]] = field(default_factory=Counter)
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    languages: Counter[str] = field(default_factory=Counter)
    chars_before: int = 0
    chars_after: int = 0

    def add(self, assembled: AssembledDocument) -> None:
        """Count one assembled document."""
        manifest = assembled.manifest
        self.documents[manifest["status"]] += 1
        self.chars_before += manifest["chars_before"]
        self.chars_after += manifest["chars_after"]
        if manifest["status"] == Status.QUARANTINED.value:
            self.quarantine_reasons[reason_kind(str(manifest["reason"]))] += 1
        if manifest["status"] == Status.KEPT.value and manifest["language"]:
            self.languages[manifest["language"]] += 1
        self.removals.update((removal["stage"], removal["rule"]) for removal in assembled.removals)

    def as_dict(self) -> dict[str, Any]:
        """Return the counts as plain JSON-ready data."""
        return {
            "documents_in": sum(self.documents.values()),
            "documents": dict(sorted(self.documents.items())),
            "removals": [{"stage": s, "rule": r, "count": n} for (s, r), n in sorted(self.removals.items())],
            "quarantine_reasons": dict(sorted(self.quarantine_reasons.items())),
            "languages": dict(sorted(self.languages.items(), key=lambda item: (-item[1], item[0]))),
            "chars_before": self.chars_before,
            "chars_after": self.chars_after,
        }


def total_counts(counts: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up the counts of several batches (each as `RunCounts.as_dict` gave them).

    >>> one = {"documents_in": 2, "documents": {"kept": 2}, "removals": [{"stage": "dedup", "rule": "r", "count": 1}],
    ...        "quarantine_reasons": {}, "languages": {"en": 2}, "chars_before": 10, "chars_after": 8}
    >>> total_counts([one, one])["removals"]
    [{'stage': 'dedup', 'rule': 'r', 'count': 2}]
    """
    total = RunCounts()
    for c in counts:
        total.documents.update(c["documents"])
        total.removals.update({(r["stage"], r["rule"]): r["count"] for r in c["removals"]})
        total.quarantine_reasons.update(c["quarantine_reasons"])
        total.languages.update(c["languages"])
        total.chars_before += c["chars_before"]
        total.chars_after += c["chars_after"]
    return total.as_dict()


def _field_table(fields: tuple[FieldSpec, ...]) -> str:
    lines = ["| field | type | nullable | description |", "|---|---|---|---|"]
    lines += [f"| `{f.name}` | {f.type} | {'yes' if f.nullable else 'no'} | {f.description} |" for f in fields]
    return "\n".join(lines)


def _batch_rows(batches: list[dict[str, Any]]) -> str:
    rows = []
    for b in batches:
        docs = b["counts"]["documents"]
        rows.append(
            f"| `{b['batch']}` | {b['counts']['documents_in']} | {docs.get('kept', 0)} | {docs.get('duplicate', 0)} "
            f"| {docs.get('quarantined', 0)} | {b['counts']['chars_after']} | `{b['config_hash']}` | {b['plan']} |"
        )
    return "\n".join(rows)


def render_run_summary(summary: RunSummary) -> str:
    """Return the summary of one run as Markdown: documents in and out, removals by reason.

    No times: the same input and config give the same card, however long the run took.
    """
    counts = summary.counts
    docs = ", ".join(f"{n} {status}" for status, n in counts["documents"].items()) or "none"
    removals = "\n".join(f"| {r['stage']} | {r['rule']} | {r['count']} |" for r in counts["removals"])
    return f"""Batch `{summary.batch}`, plan `{summary.plan}`: {counts["documents_in"]} documents in ({docs}).

| stage | rule | removals |
|---|---|---|
{removals}
"""


@dataclass(frozen=True)
class RunSummary:
    """What one run did: its batch, plan and counts."""

    batch: str
    plan: str
    counts: dict[str, Any]


_HTML_STEP: Final[dict[str, str]] = {
    "trafilatura": "HTML goes through trafilatura for its main content and metadata.",
    "lines": "HTML pages are rendered whole, one line per block, each line with its markup context "
    "(the boilerplate stage's page classifier chooses the article's lines); trafilatura reads their metadata.",
}


def render_dataset_card(cfg: PipelineConfig, batches: list[dict[str, Any]], latest: RunSummary | None) -> str:
    """Return the dataset card (README.md) of a corpus of batches, with Hugging Face YAML front matter.

    `batches` are the markers of every published batch (the one being written included);
    `latest` is the summary of the run writing it.
    """
    counts = total_counts([b["counts"] for b in batches])
    docs = counts["documents"]
    removal_rows = "\n".join(f"| {r['stage']} | {r['rule']} | {r['count']} |" for r in counts["removals"])
    status_rows = "\n".join(f"| {status} | {n} |" for status, n in docs.items())
    config_text = json.dumps(cfg.model_dump(mode="json"), indent=2, sort_keys=True)
    found = list(counts["languages"]) or [cfg.sentences.fallback_language]
    languages = "\n".join(f"- {code}" for code in found)
    language_rows = "\n".join(f"| {code} | {n} |" for code, n in counts["languages"].items())
    reason_rows = "\n".join(f"| {kind} | {n} |" for kind, n in counts["quarantine_reasons"].items())
    n_files = {name: sum(b["parts"].get(name, 0) for b in batches) for name in TABLES}
    latest_text = render_run_summary(latest) if latest is not None else "(not recorded)\n"
    # The config shown below is that of the run writing the card, whichever batch it (re)published.
    written = next((b for b in batches if latest is not None and b["batch"] == latest.batch), None)
    if written is None and batches:
        written = batches[-1]
    latest_hash = f"`{written['config_hash']}` (batch `{written['batch']}`)" if written else "none"
    return f"""---
pretty_name: {json.dumps(cfg.corpus.name)}
language:
{languages}
configs:
- config_name: default
  default: true
  data_files:
  - split: train
    path: {DATA_DIR}/*/*.parquet
- config_name: manifest
  data_files:
  - split: train
    path: {MANIFEST_DIR}/*/*.parquet
- config_name: removals
  data_files:
  - split: train
    path: {REMOVALS_DIR}/*/*.parquet
---

# {cfg.corpus.name}

Cleaned, deduplicated text of scraped news pages, written by `pipeline` {__version__}.

- schema version: {SCHEMA_VERSION}
- pipeline version: {__version__}
- config hash of the latest run: {latest_hash} (SHA-256 prefix of the canonical JSON of the
  config below; every row carries the hash of the config that wrote it)
- batches: {len(batches)}; documents in: {counts["documents_in"]}; kept: {docs.get("kept", 0)}
- characters in: {counts["chars_before"]}; characters kept: {counts["chars_after"]}

## Loading

Each batch is a Hive-style partition (`batch=<name>`), so loaders add a `batch` column:

```python
import pyarrow.dataset as ds
corpus = ds.dataset("{DATA_DIR}", format="parquet", partitioning="hive")   # or:
from datasets import load_dataset
corpus = load_dataset("parquet", data_dir="{DATA_DIR}")                    # or, in DuckDB:
# SELECT * FROM read_parquet('{DATA_DIR}/*/*.parquet', hive_partitioning = true)
```

A batch is published when `{BATCHES_DIR}/<name>.json` names it; its partitions are replaced whole
(renamed into place), never appended to.

## Batches

| batch | documents in | kept | duplicates | quarantined | characters kept | config hash | plan |
|---|---|---|---|---|---|---|---|
{_batch_rows(batches)}

## Latest run

{latest_text}
## Files

| folder | parts | one row per |
|---|---|---|
| `{DATA_DIR}/` | {n_files[DATA_DIR]} | kept document |
| `{MANIFEST_DIR}/` | {n_files[MANIFEST_DIR]} | input document, whatever became of it |
| `{REMOVALS_DIR}/` | {n_files[REMOVALS_DIR]} | removed line, fragment or sentence, with its rule |

A file holds at most {cfg.corpus.rows_per_file:,} rows (`corpus.rows_per_file`), in input order, in
row groups of at most {ROW_GROUP_ROWS:,} rows and {ROW_GROUP_CHARS:,} characters of `text` (a longer
document is a row group of its own).

## Fields of `{DATA_DIR}/`

{_field_table(DOCUMENT_FIELDS)}

## Fields of `{MANIFEST_DIR}/`

{_field_table(MANIFEST_FIELDS)}

## Fields of `{REMOVALS_DIR}/`

{_field_table(REMOVAL_FIELDS)}

## What became of the input documents (all batches)

| status | documents |
|---|---|
{status_rows}

## Languages of the kept documents

| language | documents |
|---|---|
{language_rows}

## Why inputs were quarantined

| reason | units |
|---|---|
{reason_rows}

## Removals by stage and rule (all batches)

| stage | rule | removals |
|---|---|---|
{removal_rows}

## Processing

1. `01_read`: each input file is recognised by content and name (plain text, HTML, WARC,
   JSON Lines; gzip, bzip2 or zstd), split into documents (WARC response records, JSON lines)
   and decoded (byte-order mark, declared charset, `<meta charset>`, UTF-8, then detection).
   {_HTML_STEP[cfg.html.main_content]} What cannot be read is
   quarantined with its reason (`quarantine/<batch>/index.jsonl` beside the corpus lists them);
   WARC records that are not pages are skipped. The id hashes the URL (and capture date) when
   known, else the normalised text.
2. `02_repaired`: ftfy repairs mojibake, HTML entities and control characters line by line;
   Unicode {cfg.encoding.normalization}.
3. `03_stripped`: lines broken by links are rejoined, then named rules remove boilerplate lines
   (ads, teasers, promos, widgets, bylines, credits, interface words).
4. `04_sentences`: fastText lid.176 identifies the language of the cleaned text; sentencex splits
   each paragraph into sentences by the rules of {cfg.sentences.language!r} (`auto`: the identified
   language, else {cfg.sentences.fallback_language!r}).
5. `05_duplicates`: MinHash ({cfg.dedup.num_perm} permutations, seed {cfg.dedup.seed},
   {cfg.dedup.scheme}, {cfg.dedup.shingle} shingles) LSH candidates ({cfg.dedup.lsh_bands} bands of
   {cfg.dedup.lsh_rows}), confirmed by exact Jaccard >= {cfg.dedup.threshold}, against this run and
   every sentence earlier batches of the same output published (index: {cfg.dedup.index}). Earlier
   batches come first, then inputs in sorted path order; the first occurrence survives, and the
   removal log names the surviving sentence, its document and its batch. A document whose sentence
   text is at least {cfg.dedup.document_duplicate_fraction:.0%} duplicates is dropped whole.
6. `corpus`: documents with fewer than {cfg.corpus.min_words} words left are dropped as
   empty-after-cleaning; the rest are written here.

## Config of the latest run

```json
{config_text}
```
"""


def published_sentences(record: Row, verdict: DocumentVerdict | None, min_words: int) -> list[tuple[str, str, str]]:
    """Return `(key, doc_id, text)` of the sentences a kept document publishes to the dedup index.

    These are the sentences dedup kept as survivors: long enough to be matched, not duplicates.
    """
    dropped = {dup.position for dup in verdict.sentences} if verdict is not None else set()
    doc_id = record["doc_id"]
    sentences = (s for paragraph in record["paragraphs"] for s in paragraph)
    return [
        (f"{doc_id}:{n}", doc_id, text)
        for n, text in enumerate(sentences)
        if n not in dropped and count_words(text) >= min_words
    ]


def iter_verdicts(path: Path) -> Iterator[DocumentVerdict]:
    """Read the verdicts written by the dedup stage (a file that cannot be read is set aside: `stage_records`)."""
    for data in stage_records(path):
        data["sentences"] = tuple(SentenceDuplicate(**s) for s in data["sentences"])
        yield DocumentVerdict(**data)
