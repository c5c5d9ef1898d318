"""Read what a finished run left in its output folder: stage outputs, corpus tables, one document's trace.

A run's report task writes `<output>/report/<batch>/run.json`, the run index: the batch, the
plan, the corpus folder and, per shard, the stage outputs the corpus was built from (paths
relative to the output folder). `FinishedRun` opens it and reads those files; nothing is recomputed. Corpus
rows are read by column name, so tables with more columns than the schema names still read.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.config import ReportConfig
from pipeline.corpus import DATA_DIR, MANIFEST_DIR, REMOVALS_DIR, partition
from pipeline.readers import display_name
from pipeline.report import (
    DocumentView,
    RemovalTally,
    ReportData,
    StageCount,
    column_codes,
    status_counts,
    survivor_codes,
    survivor_key,
    take_rows,
)
from pipeline.schema import Stage, Status
from pipeline.spans import removed_spans
from pipeline.spill import SpillCounter, SpillStore
from pipeline.storage import gc_paused, read_record_fields, read_records, stage_records

Row = dict[str, Any]
REPORT_DIR = "report"
RUN_INDEX = "run.json"
_DEDUP = Stage.DEDUP.value
_SENTENCE_KEY = re.compile(r"^([0-9a-f]{16}):(\d+)$")


def sentence_number(query: str) -> int | None:
    """Return the sentence a query names when it is a sentence key `<doc_id>:<n>`, else None.

    >>> sentence_number("a92c86f19c262270:3"), sentence_number("a92c86f19c262270")
    (3, None)
    """
    match = _SENTENCE_KEY.match(query.strip())
    return int(match.group(2)) if match else None


class RunNotFoundError(LookupError):
    """The output folder holds no finished run."""


class StageOutputError(Exception):
    """A stage output that a run's index names is missing or cannot be read."""


@dataclass(frozen=True)
class ShardOutputs:
    """The stage outputs of one shard that the corpus was built from."""

    files: tuple[str, ...]
    repaired: Path
    sentences: Path


@dataclass(frozen=True)
class DocumentTrace:
    """Everything a run recorded about one input document, stage by stage."""

    batch: str
    """The batch of the run that recorded it."""
    manifest: Row
    repaired: Row | None
    """The `02_repaired` record: repaired text and ftfy's fixes per line (None if never read)."""
    sentences: Row | None
    """The `04_sentences` record: language and the paragraphs' sentences after stripping."""
    removals: tuple[Row, ...]
    document: Row | None
    """The corpus row, when the document was kept."""
    survivors: dict[str, Row] = field(default_factory=dict)
    """Surviving sentences that this document's duplicates point to, by `survivor_key`: text, doc_id, source."""
    kept_bytes: str | None = None
    """For a quarantined unit: where its bytes are (a copy under the output folder, or the input file)."""

    def flat_sentences(self) -> list[str]:
        """Return the document's sentences in order, as the dedup stage numbered them."""
        if self.sentences is None:
            return []
        return [sentence for paragraph in self.sentences.get("paragraphs") or () for sentence in paragraph]


@dataclass(frozen=True)
class FinishedRun:
    """A run's output folder, read through its run index."""

    base: Path
    batch: str
    plan: Path
    plan_root: Path
    corpus: Path
    quarantine: Path
    shards: tuple[ShardOutputs, ...]
    fingerprint: str

    @classmethod
    def open(cls, output: str | Path, batch: str | None = None) -> FinishedRun:
        """Open the run of one batch (the newest finished one by default), or raise RunNotFoundError."""
        runs = cls.open_all(output)
        if batch is None:
            return runs[-1]
        for run in runs:
            if run.batch == batch:
                return run
        known = ", ".join(run.batch for run in runs)
        raise RunNotFoundError(f"no finished run of batch {batch!r} in {output} (batches: {known})")

    @classmethod
    def open_all(cls, output: str | Path) -> list[FinishedRun]:
        """Open the finished run of every batch in an output folder, oldest report first.

        Raises RunNotFoundError, saying what is missing, when there is none.
        """
        base = Path(output)
        indexes = sorted((base / REPORT_DIR).glob(f"*/{RUN_INDEX}"), key=lambda p: (p.stat().st_mtime_ns, p.as_posix()))
        if not indexes:
            raise RunNotFoundError(
                f"no finished run in {base} (no {REPORT_DIR}/<batch>/{RUN_INDEX});"
                f" run `python -m pipeline run --output {base}` first"
            )
        runs = []
        for index in indexes:
            try:
                runs.append(cls.from_index(base, json.loads(index.read_text(encoding="utf-8"))))
            except (ValueError, KeyError) as error:
                raise RunNotFoundError(f"{index}: unreadable run index: {error}") from None
        return runs

    @classmethod
    def from_index(cls, base: Path, data: dict[str, Any]) -> FinishedRun:
        """Return the run described by a run index (paths relative to `base`)."""
        return cls(
            base=base,
            batch=data["batch"],
            plan=base / data["plan"],
            plan_root=Path(data["plan_root"]),
            corpus=base / data["corpus"],
            quarantine=base / data["quarantine"],
            shards=tuple(
                ShardOutputs(tuple(s["files"]), base / s["repaired"], base / s["sentences"]) for s in data["shards"]
            ),
            fingerprint=data["fingerprint"],
        )

    def index(self) -> dict[str, Any]:
        """Return the run index (the inverse of `from_index`)."""

        def rel(path: Path) -> str:
            return Path(os.path.relpath(path, self.base)).as_posix()

        return {
            "fingerprint": self.fingerprint,
            "batch": self.batch,
            "plan": rel(self.plan),
            "plan_root": str(self.plan_root),
            "corpus": rel(self.corpus),
            "quarantine": rel(self.quarantine),
            "shards": [
                {"files": list(s.files), "repaired": rel(s.repaired), "sentences": rel(s.sentences)}
                for s in self.shards
            ],
        }

    # ----------------------------------------------------------------------------- reading

    def _parts(self, name: str) -> list[Path]:
        return sorted((self.corpus / name / partition(self.batch)).glob("part-*.parquet"))

    def table(self, name: str, columns: list[str] | None = None) -> Iterator[Row]:
        """Yield the rows of corpus/<name>/ (data, manifest, removals) in file order."""
        for part in self._parts(name):
            with pq.ParquetFile(part) as parquet:
                for batch in parquet.iter_batches(batch_size=4096, columns=columns):
                    yield from batch.to_pylist()

    def tables(self, name: str, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """Yield corpus/<name>/ (data, manifest, removals) as Arrow tables, one per file, in file order."""
        for part in self._parts(name):
            with pq.ParquetFile(part) as parquet:  # not `pq.read_table`, which imports pyarrow.dataset and pandas
                table = parquet.read(columns=columns, use_threads=False)
            yield table

    def _where(self, name: str, predicate: Any) -> list[Row]:
        """Return the rows of a corpus table matching a predicate on its Arrow table."""
        rows: list[Row] = []
        for part in self._parts(name):
            table = pq.read_table(part)
            if table.num_rows:
                rows += table.filter(predicate(table)).to_pylist()
        return rows

    def records(
        self, kind: Literal["repaired", "sentences"], shards: Iterable[ShardOutputs] | None = None
    ) -> Iterator[Row]:
        """Yield the records of a stage's outputs (`02_repaired` or `04_sentences`), in plan order."""
        for shard in self.shards if shards is None else shards:
            yield from _stage_records(getattr(shard, kind), read_records)

    def record_fields(
        self, kind: Literal["repaired", "sentences"], leading: tuple[str, ...], last: str
    ) -> Iterator[Row]:
        """Yield some members of the records of a stage's outputs, in plan order (see `read_record_fields`)."""
        for shard in self.shards:
            yield from _stage_records(getattr(shard, kind), lambda handle: read_record_fields(handle, leading, last))

    def quarantine_index(self, sources: Collection[str] | None = None) -> dict[str, Row]:
        """Return the quarantine index entries by source (only those of `sources`, when given)."""
        if not self.quarantine.exists():
            return {}
        with self.quarantine.open(encoding="utf-8") as handle:
            return {
                entry["source"]: entry
                for entry in read_records(handle)
                if sources is None or entry["source"] in sources
            }

    def kept_bytes(self, entry: Row) -> str:
        """Return where a quarantined unit's bytes are: relative to the output folder when inside it."""
        path = Path(str(entry.get("bytes") or ""))
        with contextlib.suppress(ValueError):
            return path.relative_to(self.base).as_posix()
        return str(path)

    # ----------------------------------------------------------------------------- one document

    def find(self, query: str) -> list[Row]:
        """Return the manifest rows a query names: a document id, a sentence key `<id>:<n>`, a source or a path."""
        query = query.strip()
        if match := _SENTENCE_KEY.match(query):
            query = match.group(1)
        # Sources are display names: bytes of a file name that are not UTF-8 are shown escaped.
        names = {display_name(query)}
        path = Path(query)
        if path.exists():
            with contextlib.suppress(ValueError):  # a path outside the input root names no source
                names.add(display_name(path.resolve().relative_to(self.plan_root.resolve()).as_posix()))
        names.discard("")
        candidates = pa.array(sorted(names), pa.string())

        def matches(table: pa.Table) -> Any:
            source = table["source"]
            whole_files = pc.is_in(pc.replace_substring_regex(source, "#[0-9]+$", ""), value_set=candidates)
            return pc.or_(
                pc.or_(pc.is_in(table["id"], value_set=candidates), pc.is_in(source, value_set=candidates)), whole_files
            )

        return self._where(MANIFEST_DIR, matches)

    def trace(self, manifest: Row, others: Sequence[FinishedRun] = ()) -> DocumentTrace:
        """Return what every stage recorded about the document of one manifest row.

        The sentence each duplicate points to is looked up in the run that published it
        (`duplicate_of_run`): this one, or one of `others`. A document id names a page, not a
        capture, so the same key can name different sentences in two batches.
        """
        source = manifest["source"]
        file = source.split("#", 1)[0]
        shards = [shard for shard in self.shards if file in {display_name(name) for name in shard.files}]
        repaired = next((r for r in self.records("repaired", shards) if r["source"] == source), None)
        sentences = next((r for r in self.records("sentences", shards) if r["source"] == source), None)
        removals = self._where(REMOVALS_DIR, lambda t: pc.equal(t["source"], source))
        documents = self._where(DATA_DIR, lambda t: pc.equal(t["source"], source))
        quarantined = self.quarantine_index().get(source) if manifest["status"] == Status.QUARANTINED.value else None
        wanted: dict[str, set[str]] = {}
        for r in removals:
            if r.get("stage") == Stage.DEDUP.value and r.get("duplicate_of"):
                wanted.setdefault(str(r.get("duplicate_of_run") or self.batch), set()).add(str(r["duplicate_of"]))
        survivors: dict[str, Row] = {}
        runs = {run.batch: run for run in others} | {self.batch: self}
        for batch, keys in wanted.items():
            if batch in runs:
                # A quote, not the account: an earlier batch whose stage outputs were cleaned up goes without.
                with contextlib.suppress(StageOutputError):
                    found = runs[batch].sentence_texts(keys)
                    survivors |= {survivor_key(key, batch): row for key, row in found.items()}
        return DocumentTrace(
            self.batch,
            manifest,
            repaired if repaired is None or repaired.get("status") == "ok" else None,
            sentences if sentences is None or sentences.get("status") == "ok" else None,
            tuple(removals),
            documents[0] if documents else None,
            survivors,
            self.kept_bytes(quarantined) if quarantined else None,
        )

    def sentence_texts(self, keys: set[str]) -> dict[str, Row]:
        """Return the sentences named by keys `<doc_id>:<n>` (those of this run), with their document."""
        finder = _SentenceFinder(keys)
        for record in self.records("sentences") if finder.wanted else ():
            if finder.offer(record):
                break
        return finder.found


def _stage_records(path: Path, read: Callable[[TextIO], Iterator[Row]]) -> Iterator[Row]:
    """Yield the records `read` finds in a stage output; raise `StageOutputError` naming it if it cannot be read.

    A finished run's files are only looked at here: one that cannot be read stays where it is.
    """
    return stage_records(path, read, _not_readable)


def _not_readable(path: Path, error: BaseException) -> StageOutputError:
    return StageOutputError(f"stage output {path} cannot be read: {type(error).__name__}: {error}")


class _SentenceFinder:
    """Collect the sentences named by keys `<doc_id>:<n>` from `04_sentences` records offered in plan order.

    The first record of a document (with status ok) gives its sentences.
    """

    def __init__(self, keys: set[str]) -> None:
        self.wanted: dict[str, set[int]] = {}
        for key in keys:
            doc_id, _, digits = key.rpartition(":")
            if digits.isdigit():
                self.wanted.setdefault(doc_id, set()).add(int(digits))
        self.found: dict[str, Row] = {}

    def offer(self, record: Row) -> bool:
        """Take the wanted sentences of one record; return whether none is wanted any more."""
        numbers = self.wanted.get(record.get("doc_id", ""))
        if not numbers or record.get("status") != "ok":
            return not self.wanted
        flat = [s for paragraph in record["paragraphs"] for s in paragraph]
        for number in numbers:
            if number < len(flat):
                key = f"{record['doc_id']}:{number}"
                self.found[key] = {"text": flat[number].strip(), "doc_id": record["doc_id"], "source": record["source"]}
        del self.wanted[record["doc_id"]]
        return not self.wanted


# --------------------------------------------------------------------------- the report's data


@dataclass
class _RemovalsRead:
    """What one pass over the removals table gives the report besides the tally."""

    shown: dict[str, list[Row]] = field(default_factory=dict)
    """The rows of the documents shown, by source."""
    view_keys: set[str] = field(default_factory=set)
    """The surviving sentences that those documents' duplicates point to (`survivor_key`s)."""


def _tally_removals(run: FinishedRun, tally: RemovalTally, shown: set[str]) -> _RemovalsRead:
    """Count every removal row of the run into `tally`, and keep what else the report needs of them.

    Rows are counted and picked table by table with Arrow and numpy (`RemovalTally.add_table`):
    only the rows of the documents `shown` become Python rows.
    """
    read = _RemovalsRead()
    for table in run.tables(REMOVALS_DIR):
        tally.add_table(table)
        stages, stage_at = column_codes(table, "stage", "None")
        dedup = stage_at == stages.index(_DEDUP) if _DEDUP in stages else np.zeros(table.num_rows, dtype=bool)
        sources, source_at = column_codes(table, "source", None)
        picked = np.flatnonzero(np.array([source in shown for source in sources], dtype=bool)[source_at])
        if not len(picked):
            continue
        rows = take_rows(table, picked)
        # A document's rows are consecutive (the table lists them document by document): grouped by runs.
        codes = source_at[picked]
        cuts = [0, *(np.flatnonzero(codes[1:] != codes[:-1]) + 1).tolist(), len(rows)]
        for begin, end in itertools.pairwise(cuts):
            read.shown.setdefault(str(sources[codes[begin]]), []).extend(rows[begin:end])
        if dedup[picked].any():
            targets, target_at = survivor_codes(table)
            read.view_keys.update(targets[code] for code in np.unique(target_at[picked[dedup[picked]]]).tolist())
    return read


def _documents_dropped_as_duplicates(run: FinishedRun, of: Collection[str], limit: int) -> dict[str, list[str]]:
    """Return the first `limit` documents (sources, in manifest order) dropped as duplicates of each of `of`."""
    found: dict[str, list[str]] = {key: [] for key in of}
    if not found:
        return found
    for table in run.tables(MANIFEST_DIR, columns=["status", "duplicate_of", "source"]):
        statuses, status_at = column_codes(table, "status", None)
        if Status.DUPLICATE.value not in statuses:
            continue
        rows = np.flatnonzero(status_at == statuses.index(Status.DUPLICATE.value))
        targets, target_at = column_codes(table, "duplicate_of", "None")  # `str()` of a null, as counted
        sources, source_at = column_codes(table, "source", "None")
        for target, source in zip(target_at[rows].tolist(), source_at[rows].tolist(), strict=True):
            dropped = found.get(str(targets[target]))
            if dropped is not None and len(dropped) < limit:
                dropped.append(str(sources[source]))
    return found


@gc_paused()
def collect_report(
    run: FinishedRun, cfg: ReportConfig, title: str, facts: tuple[tuple[str, str], ...], scratch: Path
) -> ReportData:
    """Read a finished run once more and return what its report shows (bounded by `cfg`).

    What grows with the run (counts per removed line, duplicate cluster and document) stays in
    memory up to a budget and goes on in a file of the folder `scratch` (`pipeline/spill.py`),
    removed before returning; the folder must not be shared with another report being collected.
    """
    with SpillStore(scratch) as store:
        return _collect_report(run, cfg, title, facts, store)


def _collect_report(
    run: FinishedRun, cfg: ReportConfig, title: str, facts: tuple[tuple[str, str], ...], store: SpillStore
) -> ReportData:
    statuses: Counter[str] = Counter()
    quarantined_rows: list[Row] = []
    """The first `max_rows` quarantined documents' manifest rows."""
    doc_duplicate_counts = SpillCounter(store, "document_duplicates")
    """Documents dropped as duplicates of each document."""
    chosen: list[Row] = []
    dropped_whole = SpillCounter(store, "dropped_whole", sums=0)
    read_chars = kept_chars = 0
    for row in run.table(MANIFEST_DIR):
        status = str(row["status"])
        statuses[status] += 1
        if len(chosen) < cfg.max_documents:
            chosen.append(row)
        if status == Status.QUARANTINED.value:
            if len(quarantined_rows) < cfg.max_rows:
                quarantined_rows.append(row)
        elif status != Status.SKIPPED.value:
            read_chars += int(row["chars_before"])
        if status == Status.DUPLICATE.value:
            dropped_whole.add(str(row["source"]))
            doc_duplicate_counts.add(str(row["duplicate_of"]), (1,))
        kept_chars += int(row["chars_after"] or 0)
    selected = {str(row["source"]) for row in chosen}
    most_duplicated = doc_duplicate_counts.top(cfg.max_rows)
    doc_duplicates = _documents_dropped_as_duplicates(run, [doc for doc, _ in most_duplicated], cfg.max_rows)
    where = run.quarantine_index({row["source"] for row in quarantined_rows})
    quarantined = [
        (str(row["source"]), str(row["reason"]), run.kept_bytes(where.get(row["source"], {})))
        for row in quarantined_rows
    ]

    tally = RemovalTally(store)
    removals_read = _tally_removals(run, tally, selected)
    doc_removals, view_keys = removals_read.shown, removals_read.view_keys
    cluster_keys = tally.top_clusters(cfg.max_rows)
    dedup_columns = ["stage", "duplicate_of", "duplicate_of_run", "source"]
    tally.collect_cluster_documents(run.tables(REMOVALS_DIR, dedup_columns) if cluster_keys else (), cluster_keys)
    # Quoted from this run's sentences: those its own documents published.
    this_run = survivor_key("", run.batch)
    wanted = {key.removesuffix(this_run) for key in {*cluster_keys, *view_keys} if key.endswith(this_run)}
    survivors_of = _SentenceFinder(wanted)

    repaired: dict[str, Row] = {}
    repaired_docs = repaired_chars = fixed_lines = fixed_docs = 0
    for record in run.records("repaired"):
        if record.get("status") != "ok":
            continue
        repaired_docs += 1
        repaired_chars += len(record["text"])
        fixes = record.get("fixes") or []
        fixed_lines += len(fixes)
        fixed_docs += bool(fixes)
        if record["source"] in selected:
            repaired[record["source"]] = record
    sentences: dict[str, Row] = {}
    stripped_docs = stripped_chars = deduplicated_chars = 0
    # Not the removals, the bulk of these records: only what is counted and shown.
    for record in run.record_fields("sentences", ("source", "doc_id", "status"), "paragraphs"):
        if survivors_of.wanted:
            survivors_of.offer(record)
        if record.get("status") != "ok":
            continue
        paragraphs = record["paragraphs"]
        chars = sum(len("".join(p)) for p in paragraphs) + max(0, len(paragraphs) - 1)
        stripped_docs += 1
        stripped_chars += chars
        if record["source"] not in dropped_whole:
            deduplicated_chars += max(0, chars - tally.duplicate_chars_of(record["source"]))
        if record["source"] in selected:
            sentences[record["source"]] = record
    survivors = {survivor_key(key, run.batch): row for key, row in survivors_of.found.items()}

    counts = statuses
    rules = tally.rule_counts()
    boilerplate = sum(r.count for r in rules if r.stage != Stage.DEDUP.value)
    duplicates = sum(r.count for r in rules if r.stage == Stage.DEDUP.value)
    stages = (
        StageCount(
            "read",
            counts.total() - counts[Status.QUARANTINED.value] - counts[Status.SKIPPED.value],
            read_chars,
            f"{counts[Status.QUARANTINED.value]:,} quarantined, {counts[Status.SKIPPED.value]:,} skipped",
        ),
        StageCount(
            "repair encoding", repaired_docs, repaired_chars, f"{fixed_lines:,} lines fixed in {fixed_docs:,} documents"
        ),
        StageCount("strip boilerplate", stripped_docs, stripped_chars, f"{boilerplate:,} lines and fragments"),
        StageCount(
            "find duplicates",
            stripped_docs - len(dropped_whole),
            deduplicated_chars,
            f"{duplicates:,} sentences, {len(dropped_whole):,} whole documents",
        ),
        StageCount(
            "corpus",
            counts[Status.KEPT.value],
            kept_chars,
            f"{counts[Status.EMPTY_AFTER_CLEANING.value]:,} documents too short (corpus.min_words)",
        ),
    )

    views = []
    for number, row in enumerate(chosen):
        source = str(row["source"])
        repaired_record = repaired.get(source)
        text = str(repaired_record["text"]) if repaired_record else ""
        shown = text[: cfg.max_document_chars]
        sentence_record = sentences.get(source)
        flat = [s for p in sentence_record["paragraphs"] for s in p] if sentence_record else None
        removals = doc_removals.get(source, [])
        views.append(
            DocumentView(
                number,
                row,
                shown,
                len(text) - len(shown),
                tuple(removed_spans(shown, removals, flat)),
                tuple(repaired_record.get("fixes") or ()) if repaired_record else (),
                len(removals),
                survivors,
            )
        )
    document_duplicates = tuple((doc, n, tuple(doc_duplicates[doc])) for doc, n in most_duplicated)
    return ReportData(
        title=title,
        facts=facts,
        statuses=status_counts(statuses.elements()),
        stages=stages,
        rules=rules,
        lines=tally.top_lines(cfg.max_rows),
        clusters=tuple(tally.cluster(key, survivors) for key in cluster_keys),
        document_duplicates=document_duplicates,
        quarantined=tuple(quarantined),
        quarantined_total=counts[Status.QUARANTINED.value],
        documents=tuple(views),
        documents_total=counts.total(),
        max_document_chars=cfg.max_document_chars,
    )
