"""Count, per site, in how many distinct documents each line occurs, across runs, in bounded memory.

Boilerplate (navigation, author bios, newsletter pitches) repeats across the documents of one
website. `SiteLineStats` remembers, for every (site, line) pair, a bottom-k sketch of the
documents that contained the line: the `slots` smallest distinct document hashes seen. The
number of nonzero hashes is the document count, exact up to `slots` and saturating there.

Why a bottom-k sketch and not a counter: the union of two sketches (keep the `slots` smallest
distinct hashes of both) is commutative, associative and idempotent. So merging this run's
table into the stored one gives the same table whatever order batches arrive in, and rerunning
a batch changes no count, because its documents' hashes are already in the sketches. Only
`last_seen` moves, to the newer generation, when a rerun carries a higher one.

Memory: an entry takes 8 (site) + 8 (line) + 8 * slots (docs) + 8 (last_seen) bytes, 88 bytes
at the default slots=8; `max_entries` = 2,000,000 is 176 MB (168 MiB). A merge briefly holds
both inputs, the result and sort indices, about three times that. `pruned` keeps the table
at `max_entries`, dropping the entries with the fewest documents, then the oldest. A dropped
entry that comes back later starts counting afresh, so pruning can only lower counts, never
raise them.

Hashes are 64-bit blake2b (`stable_hash`): deterministic across processes and Python versions.
With millions of entries a collision is about as likely as 1 in 10^7 and costs at most one
line's count.

File format (Parquet, written atomically, equal tables give equal bytes): columns `site`
uint64, `line` uint64, `docs` fixed_size_list<uint64>[slots], `last_seen` int64, sorted by
(site, line) without duplicates; schema metadata `format` = "pipeline-site-line-stats",
`format_version` = "1", `slots`, `generation`.

>>> params = LineStatsParams(slots=4)
>>> nav = "home | world | sport"
>>> stats = SiteLineStats.from_documents(
...     [("example.com", "a", [nav, "Story A.", nav]), ("example.com", "b", [nav, "Story B."])],
...     params,
...     generation=1,
... )
>>> stats.document_counts("example.com", [nav, "Story A.", "never seen"]).tolist()
[2, 1, 0]
>>> stats.merge(stats).document_counts("example.com", [nav]).tolist()  # a rerun changes nothing
[2]
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.storage import AtomicParquetWriter, atomic_write_bytes, atomic_write_parquet

FORMAT_NAME = "pipeline-site-line-stats"
FORMAT_VERSION = "1"
COLUMNS = ("site", "line", "docs", "last_seen")
COUNTS_FORMAT_NAME = "pipeline-site-line-counts"
COUNTS_FORMAT_VERSION = "1"
_COUNTS_COLUMNS = {"site": pa.uint64(), "line": pa.uint64(), "documents": pa.uint8()}

# The table is small next to the corpus and its hashes are random; zstd mostly saves the zero
# padding of `docs` and the long runs in the sorted `site` column.
_COMPRESSION = "zstd"
_EMPTY_SLOT = np.uint64(0)
_HASH_CACHE_LIMIT = 100_000  # distinct lines; about 10-20 MB of strings kept alive at most
_CHUNK_DOCUMENTS = 2048  # documents counted at a time before their table is merged
_RECORD_SUFFIX = re.compile(r"#\d+$")

_Scalar = TypeVar("_Scalar", bound=np.generic)
Hashes = npt.NDArray[np.uint64]
Generations = npt.NDArray[np.int64]


class LineStatsError(ValueError):
    """A line statistics file that cannot be used: unreadable, of another format, or inconsistent."""


def stable_hash(text: str) -> int:
    """Return a 64-bit hash of `text` that is the same in every process, never 0.

    >>> stable_hash("home | world | sport")
    4289319950209842313
    >>> stable_hash("") != 0
    True
    """
    value = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")
    return value or 1  # 0 marks an empty slot in a sketch


def site_of(url: str | None, source: str) -> str:
    """Return the site a document belongs to: its URL's host without "www.", else its source's folder.

    >>> site_of("https://WWW.Example.com:8080/news/1?x=2", "crawl/a.warc.gz#12")
    'example.com'
    >>> site_of(None, "crawl/bbc/a.warc.gz#12")
    'crawl/bbc'
    >>> site_of("", "article.html")
    ''
    >>> site_of("/relative/path", "dumps/guardian/2024.jsonl#3")
    'dumps/guardian'
    """
    if url:
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:  # a malformed URL, such as an unclosed IPv6 bracket, has no usable host
            host = ""
        # A trailing dot names the same host (fully qualified form).
        host = host.rstrip(".").removeprefix("www.")
        if host:
            return host
    # Readers name the n-th record of a multi-record file "<path>#<n>"; only a trailing
    # "#<digits>" is that suffix, so a "#" inside a folder name stays part of the folder.
    folder = PurePosixPath(_RECORD_SUFFIX.sub("", source)).parent.as_posix()
    return "" if folder == "." else folder


@dataclass(frozen=True)
class LineStatsParams:
    """Parameters of a line statistics table.

    slots: documents remembered per (site, line); counts are exact up to `slots` and saturate
        there, so it should be at least the threshold the caller removes lines at. It is stored
        in the file; loading a file written with another value raises `LineStatsError` instead
        of converting, because a sketch cannot be widened (the hashes it forgot are gone).
    max_entries: the size the caller prunes the table to (`SiteLineStats.pruned`) before
        saving; a policy of the run, not a property of the file, so it is not stored.
    """

    slots: int = 8
    max_entries: int = 2_000_000

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ValueError(f"slots must be at least 1, not {self.slots}")
        if self.max_entries < 0:
            raise ValueError(f"max_entries must not be negative, not {self.max_entries}")

    @property
    def bytes_per_entry(self) -> int:
        """Return the memory one entry takes: site, line, `slots` document hashes, last_seen.

        >>> LineStatsParams(slots=8).bytes_per_entry
        88
        """
        return 8 + 8 + 8 * self.slots + 8


class SiteLineStats:
    """An immutable table of (site, line) -> sketch of the documents that contained the line.

    Arrays are sorted by (site, line) without duplicates and read-only: `site`, `line` (uint64
    hashes), `docs` (uint64[n, slots], the smallest distinct document hashes, ascending, padded
    with 0 at the end, at least one nonzero) and `last_seen` (int64, the highest generation that
    added to the entry). `generation` is the highest generation the table has recorded.

    Build tables with `empty`, `from_documents`, `merge`, `pruned` or `load`; the constructor
    checks only shapes and keeps read-only views of the arrays it is given, so a caller who
    calls it directly must hand over sorted arrays and not edit them afterwards.
    """

    __slots__ = ("_params", "docs", "generation", "last_seen", "line", "site")

    def __init__(
        self,
        params: LineStatsParams,
        site: Hashes,
        line: Hashes,
        docs: Hashes,
        last_seen: Generations,
        generation: int,
    ) -> None:
        n = len(site)
        if line.shape != (n,) or last_seen.shape != (n,) or docs.shape != (n, params.slots):
            raise ValueError(
                f"inconsistent shapes: site {site.shape}, line {line.shape}, docs {docs.shape} "
                f"(slots {params.slots}), last_seen {last_seen.shape}"
            )
        self._params = params
        self.site = _frozen(site, np.uint64)
        self.line = _frozen(line, np.uint64)
        self.docs = _frozen(docs, np.uint64)
        self.last_seen = _frozen(last_seen, np.int64)
        self.generation = int(generation)

    @property
    def params(self) -> LineStatsParams:
        return self._params

    def __len__(self) -> int:
        return len(self.site)

    def __repr__(self) -> str:
        return f"SiteLineStats(entries={len(self)}, slots={self._params.slots}, generation={self.generation})"

    @classmethod
    def empty(cls, params: LineStatsParams) -> SiteLineStats:
        """Return a table with no entries, at generation 0."""
        nothing = np.zeros(0, dtype=np.uint64)
        return cls(params, nothing, nothing, np.zeros((0, params.slots), np.uint64), np.zeros(0, np.int64), 0)

    @classmethod
    def from_documents(
        cls,
        documents: Iterable[tuple[str, str, Iterable[str]]],
        params: LineStatsParams,
        generation: int,
    ) -> SiteLineStats:
        """Count the documents of each (site, line) in `(site, document_key, line_keys)` tuples.

        A line counts once per document however often it repeats there; documents with the
        same key are one document. Every entry gets `last_seen = generation`.

        >>> stats = SiteLineStats.from_documents([("s", "d1", ["x", "x", "y"]), ("t", "d1", ["x"])],
        ...                                      LineStatsParams(), generation=3)
        >>> len(stats), stats.generation, stats.document_counts("s", ["x", "y"]).tolist()
        (3, 3, [1, 1])
        """
        if generation < 0:
            raise ValueError(f"generation must not be negative, not {generation}")
        # Documents are counted a chunk at a time into tables that are merged as they come (a
        # binary counter: tables of similar size merge), so no Python object per line outlives
        # its chunk. The union of sketches is exact, so the result is the table of all at once.
        tables: list[SiteLineStats] = []
        for table in cls.chunks_of_documents(documents, params, generation):
            tables.append(table)
            while len(tables) >= 2 and len(tables[-2]) <= 2 * len(tables[-1]):
                newer = tables.pop()
                tables.append(tables.pop().merge(newer))
        if not tables:  # no documents: an empty table, at this generation
            tables.append(cls._count_chunk([], params, generation, {}))
        while len(tables) >= 2:
            newer = tables.pop()
            tables.append(tables.pop().merge(newer))
        return tables[0]

    @classmethod
    def _count_chunk(
        cls,
        documents: list[tuple[str, str, Iterable[str]]],
        params: LineStatsParams,
        generation: int,
        known: dict[str, int],
    ) -> SiteLineStats:
        """Return the table of some documents (see `from_documents`); `known` memoises line hashes."""
        # Boilerplate lines repeat across documents by definition, so most lines are found here
        # instead of hashed again. The cache only memoises a pure function and is emptied when
        # it grows past a bound, so neither results nor memory depend on the batch's size.
        site_hashes: dict[str, int] = {}
        doc_sites: list[int] = []
        doc_hashes: list[int] = []
        doc_sizes: list[int] = []
        line_hashes: list[int] = []
        for site, key, line_keys in documents:
            texts = set(line_keys)
            if not texts:
                continue
            if len(known) > _HASH_CACHE_LIMIT:
                known.clear()
            for text in texts.difference(known):
                known[text] = stable_hash(text)
            line_hashes.extend([known[text] for text in texts])
            if site not in site_hashes:
                site_hashes[site] = stable_hash(site)
            doc_sites.append(site_hashes[site])
            doc_hashes.append(stable_hash(key))
            doc_sizes.append(len(texts))
        sizes = np.array(doc_sizes, dtype=np.int64)
        site_arr = np.repeat(np.array(doc_sites, dtype=np.uint64), sizes)
        doc_arr = np.repeat(np.array(doc_hashes, dtype=np.uint64), sizes)
        line_arr = np.array(line_hashes, dtype=np.uint64)

        order = np.lexsort((doc_arr, line_arr, site_arr))
        site_arr, line_arr, doc_arr = site_arr[order], line_arr[order], doc_arr[order]
        new_key = _starts(site_arr, line_arr)
        # The same document under one key twice (two documents with one key) counts once.
        new_triple = new_key.copy()
        new_triple[1:] |= doc_arr[1:] != doc_arr[:-1]
        site_arr, line_arr, doc_arr, new_key = (
            site_arr[new_triple],
            line_arr[new_triple],
            doc_arr[new_triple],
            new_key[new_triple],
        )
        group = np.cumsum(new_key) - 1
        starts = np.flatnonzero(new_key)
        rank = np.arange(len(doc_arr)) - starts[group]
        fits = rank < params.slots  # triples are sorted by document hash, so these are the smallest
        docs = np.zeros((len(starts), params.slots), dtype=np.uint64)
        docs[group[fits], rank[fits]] = doc_arr[fits]
        last_seen = np.full(len(starts), generation, dtype=np.int64)
        return cls(params, site_arr[starts], line_arr[starts], docs, last_seen, generation)

    def merge(self, other: SiteLineStats) -> SiteLineStats:
        """Return the union of two tables: sketches united, `last_seen` and `generation` the larger.

        >>> p = LineStatsParams(slots=2)
        >>> a = SiteLineStats.from_documents([("s", "d1", ["x"]), ("s", "d2", ["x"])], p, generation=1)
        >>> b = SiteLineStats.from_documents([("s", "d3", ["x"])], p, generation=2)
        >>> both = a.merge(b)
        >>> both.document_counts("s", ["x"]).tolist(), both.last_seen.tolist(), both.generation
        ([2], [2], 2)
        """
        if other.params != self.params:
            raise ValueError(f"cannot merge tables with different parameters: {self.params} and {other.params}")
        generation = max(self.generation, other.generation)
        site = np.concatenate([self.site, other.site])
        line = np.concatenate([self.line, other.line])
        order = np.lexsort((line, site))
        site, line = site[order], line[order]
        docs = np.concatenate([self.docs, other.docs])[order]
        last_seen = np.concatenate([self.last_seen, other.last_seen])[order]
        # Each input has unique keys, so a key occurs at most twice: at `first` and `first + 1`.
        first = np.flatnonzero(~_starts(site, line)[1:])
        second = first + 1
        # A rerun repeats sketches exactly; uniting only the rows that differ keeps it cheap.
        differ = first[(docs[first] != docs[second]).any(axis=1)]
        docs[differ] = unite_sketches(docs[differ], docs[differ + 1], self.params.slots)
        last_seen[first] = np.maximum(last_seen[first], last_seen[second])
        keep = np.ones(len(site), dtype=bool)
        keep[second] = False
        return SiteLineStats(self.params, site[keep], line[keep], docs[keep], last_seen[keep], generation)

    @classmethod
    def chunks_of_documents(
        cls, documents: Iterable[tuple[str, str, Iterable[str]]], params: LineStatsParams, generation: int
    ) -> Iterator[SiteLineStats]:
        """Yield the tables of `_CHUNK_DOCUMENTS` documents at a time (see `from_documents`), unmerged.

        Their merge is `from_documents(documents)`; only one chunk is in memory at a time.
        """
        known: dict[str, int] = {}
        chunk: list[tuple[str, str, Iterable[str]]] = []
        for document in documents:
            chunk.append(document)
            if len(chunk) >= _CHUNK_DOCUMENTS:
                yield cls._count_chunk(chunk, params, generation, known)
                chunk = []
        if chunk:
            yield cls._count_chunk(chunk, params, generation, known)

    def merged_with_tables(self, tables: Iterable[SiteLineStats], generation: int, scratch: Path) -> SiteLineStats:
        """Return this table merged with tables of one run, pruned to `max_entries`, in memory bounded by the table.

        The run's entries get `last_seen = generation` (a table counted apart, a shard at a
        time, does not know the run's generation). Each table goes to files under `scratch` (an
        empty folder) as it comes, its entries grouped by the top bits of the line hash; then
        each group of every table and of this one is merged alone and only its `max_entries`
        best entries are kept. The best of the whole merge are among those, so the result is
        `self.merge(...)` of all of them, pruned, whatever tables the run's documents were cut into.
        """
        if generation < 0:
            raise ValueError(f"generation must not be negative, not {generation}")
        params = self.params
        chunks: list[tuple[Path, npt.NDArray[np.int64]]] = []
        for table in tables:
            if table.params.slots != params.slots:
                raise ValueError(f"cannot merge tables of {table.params.slots} and {params.slots} slots")
            seen = np.full(len(table), generation, dtype=np.int64)
            stamped = SiteLineStats(params, table.site, table.line, table.docs, seen, generation)
            chunks.append(_write_chunk(stamped, scratch, len(chunks)))
        own = _by_group(self)
        best: list[SiteLineStats] = []
        kept = 0
        for group in range(_GROUPS):
            lo, hi = int(own[1][group]), int(own[1][group + 1])
            site, line, docs, last_seen = own[0]
            pieces = [SiteLineStats(params, site[lo:hi], line[lo:hi], docs[lo:hi], last_seen[lo:hi], self.generation)]
            pieces += [_read_group(folder, bounds, group, params, generation) for folder, bounds in chunks]
            while len(pieces) > 1:
                pieces = [a.merge(b) for a, b in zip(pieces[0::2], pieces[1::2], strict=False)] + (
                    [pieces[-1]] if len(pieces) % 2 else []
                )
            best.append(pieces[0].pruned(params.max_entries))
            kept += len(best[-1])
            if kept > 2 * params.max_entries:
                best = [_best_of(best, params)]
                kept = len(best[0])
        table = _best_of(best, params)
        return SiteLineStats(
            params, table.site, table.line, table.docs, table.last_seen, max(self.generation, generation)
        )

    def document_counts(self, site: str, line_keys: Sequence[str]) -> npt.NDArray[np.int64]:
        """Return how many documents of `site` contained each line (at most `slots`; 0 if unknown)."""
        rows = _rows_of(self.site, self.line, site, line_keys)
        counts = np.zeros(len(rows), dtype=np.int64)
        found = rows >= 0
        counts[found] = np.count_nonzero(self.docs[rows[found]], axis=1)
        return counts

    def counts(self) -> SiteLineCounts:
        """Return the lookup of document counts alone, what stripping reads (see `SiteLineCounts`).

        >>> stats = SiteLineStats.from_documents([("s", "d1", ["x"]), ("s", "d2", ["x", "y"])], LineStatsParams(), 1)
        >>> stats.counts().document_counts("s", ["x", "y", "z"]).tolist()
        [2, 1, 0]
        """
        # A count never passes `slots`; one byte holds it, saturating at 255 for tables of more slots.
        counts = np.minimum(np.count_nonzero(self.docs, axis=1), np.iinfo(np.uint8).max)
        return SiteLineCounts(self.site, self.line, counts.astype(np.uint8))

    def pruned(self, max_entries: int) -> SiteLineStats:
        """Return the `max_entries` most valuable entries: most documents, then newest, then hash order.

        The choice depends only on the table's content, so the same documents give the same
        pruned table whatever order they were merged in.

        >>> p = LineStatsParams()
        >>> old = SiteLineStats.from_documents([("s", "d1", ["a", "b"]), ("s", "d2", ["a"])], p, generation=1)
        >>> new = SiteLineStats.from_documents([("s", "d3", ["c"])], p, generation=2)
        >>> kept = old.merge(new).pruned(2)
        >>> kept.document_counts("s", ["a", "b", "c"]).tolist()
        [2, 0, 1]
        """
        if max_entries < 0:
            raise ValueError(f"max_entries must not be negative, not {max_entries}")
        if len(self) <= max_entries:
            return self
        counts = np.count_nonzero(self.docs, axis=1)
        # lexsort sorts by the last key first; negating puts larger counts and newer entries
        # first (last_seen is a non-negative generation, so negation cannot overflow).
        order = np.lexsort((self.line, self.site, -self.last_seen, -counts))
        keep = np.sort(order[:max_entries])  # positions in the (site, line)-sorted table
        return SiteLineStats(
            self.params, self.site[keep], self.line[keep], self.docs[keep], self.last_seen[keep], self.generation
        )

    def save(self, path: Path, merged: str = "") -> None:
        """Write the table to a Parquet file atomically; equal tables give equal bytes.

        `merged` names the last batch of documents merged in (read back by `last_merged`), so
        that a merge interrupted after the save is not done twice.
        """
        atomic_write_parquet(path, self._arrow(_schema(self.params.slots, self.generation, merged)), _COMPRESSION)

    @staticmethod
    def save_chunks(path: Path, tables: Iterable[SiteLineStats], params: LineStatsParams) -> None:
        """Write tables (of one run, at generation 0) as the row groups of one Parquet file, one in memory at a time.

        `load_chunks` reads them back one at a time. The file is renamed into place when whole.
        """
        schema = _schema(params.slots, 0, "")
        writer = AtomicParquetWriter(path, schema, _COMPRESSION)
        for table in tables:
            writer.write(table._arrow(schema))
        writer.commit()

    def _arrow(self, schema: pa.Schema) -> pa.Table:
        docs = pa.FixedSizeListArray.from_arrays(pa.array(self.docs.reshape(-1), type=pa.uint64()), self.params.slots)
        return pa.table([pa.array(self.site), pa.array(self.line), docs, pa.array(self.last_seen)], schema=schema)

    @staticmethod
    def last_merged(path: Path) -> str:
        """Return what `save` recorded as the last batch merged into a saved table ("" if none or no file)."""
        if not path.exists():
            return ""
        try:
            metadata = pq.read_schema(path).metadata or {}
        except (pa.ArrowException, OSError, ValueError):
            return ""  # `load` reports the broken file
        return str(metadata.get(b"merged", b"").decode("utf-8", "replace"))

    @classmethod
    def load(cls, path: Path, params: LineStatsParams) -> SiteLineStats:
        """Read a table saved by `save`; a missing file is an empty table, a bad one raises `LineStatsError`."""
        if not path.exists():
            return cls.empty(params)
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError, ValueError) as error:  # pyarrow's kinds of "cannot read this"
            raise LineStatsError(f"{path}: not a readable Parquet file ({error})") from error
        generation = _checked_generation(path, table.schema, params)
        return cls._from_arrow(path, table, params, generation)

    @classmethod
    def load_chunks(cls, path: Path, params: LineStatsParams) -> Iterator[SiteLineStats]:
        """Yield the tables `save_chunks` wrote, a row group at a time (`LineStatsError` if missing or bad)."""
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError, ValueError) as error:  # pyarrow's kinds of "cannot read this"
            raise LineStatsError(f"{path}: not a readable Parquet file ({error})") from error
        with parquet:
            generation = _checked_generation(path, parquet.schema_arrow, params)
            for group in range(parquet.num_row_groups):
                try:
                    table = parquet.read_row_group(group)
                except (pa.ArrowException, OSError, ValueError) as error:
                    raise LineStatsError(f"{path}: row group {group} is not readable ({error})") from error
                yield cls._from_arrow(path, table, params, generation)

    @classmethod
    def _from_arrow(cls, path: Path, table: pa.Table, params: LineStatsParams, generation: int) -> SiteLineStats:
        if any(column.null_count for column in table.columns):
            raise LineStatsError(f"{path}: a column holds nulls")
        docs_column = table.column("docs").combine_chunks()
        stats = cls(
            params,
            table.column("site").to_numpy(),
            table.column("line").to_numpy(),
            docs_column.flatten().to_numpy().reshape(len(table), params.slots),
            table.column("last_seen").to_numpy(),
            generation,
        )
        problem = _content_problem(stats)
        if problem is not None:
            raise LineStatsError(f"{path}: {problem}")
        return stats


def _schema(slots: int, generation: int, merged: str) -> pa.Schema:
    """Return the Parquet schema of a table of `slots` slots, with its metadata."""
    return pa.schema(
        [
            pa.field("site", pa.uint64(), nullable=False),
            pa.field("line", pa.uint64(), nullable=False),
            pa.field("docs", pa.list_(pa.uint64(), slots), nullable=False),
            pa.field("last_seen", pa.int64(), nullable=False),
        ],
        metadata={
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "slots": str(slots),
            "generation": str(generation),
            "merged": merged,
        },
    )


def _checked_generation(path: Path, schema: pa.Schema, params: LineStatsParams) -> int:
    """Return the generation a saved table's schema records; raise `LineStatsError` if it is not one of ours."""
    metadata = {key.decode(): value.decode() for key, value in (schema.metadata or {}).items()}
    if metadata.get("format") != FORMAT_NAME:
        raise LineStatsError(f"{path}: format is {metadata.get('format')!r}, expected {FORMAT_NAME!r}")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise LineStatsError(
            f"{path}: format version is {metadata.get('format_version')!r}, expected {FORMAT_VERSION!r}"
        )
    try:
        slots, generation = int(metadata["slots"]), int(metadata["generation"])
    except (KeyError, ValueError) as error:
        raise LineStatsError(f"{path}: metadata 'slots' or 'generation' missing or not an integer") from error
    if slots != params.slots:
        raise LineStatsError(
            f"{path}: written with slots={slots} but slots={params.slots} is configured; "
            "set slots back or delete the file to start counting afresh"
        )
    problem = _schema_problem(schema, slots)
    if problem is not None:
        raise LineStatsError(f"{path}: {problem}")
    return generation


class SiteLineCounts:
    """A read-only lookup of (site, line) -> documents that contained the line, opened memory-mapped.

    What stripping needs of a `SiteLineStats` and no more: the counts, not the sketches (17 bytes
    an entry instead of 88). Every shard task of a run reads the whole run's table; loading and
    checking the Parquet table at its 2,000,000-entry cap costs about a second of CPU a task. This
    file is an uncompressed Arrow IPC file that `open` maps into memory without reading it, so a
    task pays only for the pages its lookups touch, and the worker processes share those pages.
    The file is a stage output written by `CountSiteLines` from a table already checked, not
    state carried between runs, so `open` checks its format and columns, not its order.

    Arrays (read-only): `site`, `line` (uint64 hashes sorted by (site, line), no duplicates) and
    `documents` (uint8, at least 1).
    """

    __slots__ = ("documents", "line", "site")

    def __init__(self, site: Hashes, line: Hashes, documents: npt.NDArray[np.uint8]) -> None:
        if not site.shape == line.shape == documents.shape or site.ndim != 1:
            raise ValueError(f"inconsistent shapes: site {site.shape}, line {line.shape}, documents {documents.shape}")
        self.site = _frozen(site, np.uint64)
        self.line = _frozen(line, np.uint64)
        self.documents = _frozen(documents, np.uint8)

    def __len__(self) -> int:
        return len(self.site)

    def document_counts(self, site: str, line_keys: Sequence[str]) -> npt.NDArray[np.int64]:
        """Return how many documents of `site` contained each line (0 if unknown), as `SiteLineStats` does."""
        rows = _rows_of(self.site, self.line, site, line_keys)
        counts = np.zeros(len(rows), dtype=np.int64)
        found = rows >= 0
        counts[found] = self.documents[rows[found]]
        return counts

    def save(self, path: Path) -> None:
        """Write the lookup atomically as an uncompressed Arrow IPC file; equal lookups give equal bytes.

        >>> import tempfile
        >>> stats = SiteLineStats.from_documents([("s", "d1", ["x"]), ("s", "d2", ["x"])], LineStatsParams(), 1)
        >>> path = Path(tempfile.mkdtemp()) / "counts.arrow"
        >>> stats.counts().save(path)
        >>> SiteLineCounts.open(path).document_counts("s", ["x", "y"]).tolist()
        [2, 0]
        """
        schema = pa.schema(
            [pa.field(name, kind, nullable=False) for name, kind in _COUNTS_COLUMNS.items()],
            metadata={"format": COUNTS_FORMAT_NAME, "format_version": COUNTS_FORMAT_VERSION},
        )
        batch = pa.record_batch([pa.array(self.site), pa.array(self.line), pa.array(self.documents)], schema=schema)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, schema) as writer:
            writer.write_batch(batch)
        atomic_write_bytes(path, sink.getvalue().to_pybytes())

    @classmethod
    def open(cls, path: Path) -> SiteLineCounts:
        """Map a file written by `save` into memory; a missing or bad one raises `LineStatsError`."""
        try:
            table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        except (pa.ArrowException, OSError, ValueError) as error:  # pyarrow's kinds of "cannot read this"
            raise LineStatsError(f"{path}: not a readable Arrow IPC file ({error})") from error
        metadata = {key.decode(): value.decode() for key, value in (table.schema.metadata or {}).items()}
        if (metadata.get("format"), metadata.get("format_version")) != (COUNTS_FORMAT_NAME, COUNTS_FORMAT_VERSION):
            raise LineStatsError(
                f"{path}: format {metadata.get('format')!r} version {metadata.get('format_version')!r}, "
                f"expected {COUNTS_FORMAT_NAME!r} version {COUNTS_FORMAT_VERSION!r}"
            )
        found = {field.name: field.type for field in table.schema}
        if found != _COUNTS_COLUMNS:
            raise LineStatsError(f"{path}: columns are {found}, expected {_COUNTS_COLUMNS}")
        if any(column.null_count for column in table.columns):
            raise LineStatsError(f"{path}: a column holds nulls")
        site, line, documents = (_mapped(table.column(name)) for name in _COUNTS_COLUMNS)
        return cls(site, line, documents)


def _mapped(column: pa.ChunkedArray) -> npt.NDArray[Any]:
    """Return a column as a NumPy array over the mapped file (a copy only if `save` did not write it)."""
    array = column.chunk(0).to_numpy(zero_copy_only=True) if column.num_chunks == 1 else column.to_numpy()
    return np.asarray(array)


def _rows_of(sites: Hashes, lines: Hashes, site: str, line_keys: Sequence[str]) -> npt.NDArray[np.int64]:
    """Return the row of each (site, line key) in arrays sorted by (site, line), -1 where absent."""
    site_hash = np.uint64(stable_hash(site))
    lo, hi = int(np.searchsorted(sites, site_hash, "left")), int(np.searchsorted(sites, site_hash, "right"))
    of_site = lines[lo:hi]
    wanted = np.array([stable_hash(text) for text in line_keys], dtype=np.uint64)
    at = np.searchsorted(of_site, wanted)
    found = at < len(of_site)
    found[found] = of_site[at[found]] == wanted[found]
    return np.where(found, lo + at, -1).astype(np.int64)


_GROUPS = 64  # groups of entries (by the top bits of the line hash) merged one at a time
_GROUP_SHIFT = np.uint64(64 - 6)
_COLUMNS = (("site", np.uint64), ("line", np.uint64), ("docs", np.uint64), ("last_seen", np.int64))


def _by_group(stats: SiteLineStats) -> tuple[tuple[npt.NDArray[Any], ...], npt.NDArray[np.int64]]:
    """Return a table's columns ordered by group (each group still sorted by site and line) and the group bounds."""
    group = stats.line >> _GROUP_SHIFT
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(_GROUPS + 1, dtype=np.uint64)).astype(np.int64)
    return (stats.site[order], stats.line[order], stats.docs[order], stats.last_seen[order]), bounds


def _write_chunk(stats: SiteLineStats, scratch: Path, number: int) -> tuple[Path, npt.NDArray[np.int64]]:
    """Write a chunk's table, ordered by group, as raw column files; return its folder and group bounds."""
    columns, bounds = _by_group(stats)
    folder = scratch / f"chunk-{number:06d}"
    folder.mkdir(parents=True)
    for (name, dtype), column in zip(_COLUMNS, columns, strict=True):
        # Through Python's file object, not `ndarray.tofile`: a full disk then says so (ENOSPC)
        # rather than numpy's "666 requested and 0 written".
        with (folder / name).open("wb") as handle:
            handle.write(np.ascontiguousarray(column, dtype=dtype).data)
    return folder, bounds


def _read_group(
    folder: Path, bounds: npt.NDArray[np.int64], group: int, params: LineStatsParams, generation: int
) -> SiteLineStats:
    """Read one group of a chunk written by `_write_chunk` (only those rows: no file is mapped whole)."""
    lo, hi = int(bounds[group]), int(bounds[group + 1])
    columns: list[npt.NDArray[Any]] = []
    for name, dtype in _COLUMNS:
        width = params.slots if name == "docs" else 1
        with (folder / name).open("rb") as handle:
            handle.seek(lo * width * 8)
            values = np.fromfile(handle, dtype=dtype, count=(hi - lo) * width)
        columns.append(values.reshape(hi - lo, width) if name == "docs" else values)
    site, line, docs, last_seen = columns
    return SiteLineStats(params, site, line, docs, last_seen, generation)


def _best_of(tables: list[SiteLineStats], params: LineStatsParams) -> SiteLineStats:
    """Return the `max_entries` best entries of tables with disjoint keys, sorted by (site, line), as `pruned` ranks."""
    site = np.concatenate([t.site for t in tables])
    line = np.concatenate([t.line for t in tables])
    docs = np.concatenate([t.docs for t in tables]).reshape(len(site), params.slots)
    last_seen = np.concatenate([t.last_seen for t in tables])
    if len(site) > params.max_entries:
        counts = np.count_nonzero(docs, axis=1)
        keep = np.lexsort((line, site, -last_seen, -counts))[: params.max_entries]
        site, line, docs, last_seen = site[keep], line[keep], docs[keep], last_seen[keep]
    order = np.lexsort((line, site))
    generation = max((t.generation for t in tables), default=0)
    return SiteLineStats(params, site[order], line[order], docs[order], last_seen[order], generation)


def unite_sketches(a: Hashes, b: Hashes, slots: int) -> Hashes:
    """Return, row by row, the `slots` smallest distinct nonzero hashes of `a` and `b`, 0-padded.

    >>> a = np.array([[1, 4, 0]], dtype=np.uint64)
    >>> b = np.array([[2, 4, 9]], dtype=np.uint64)
    >>> unite_sketches(a, b, 3).tolist()
    [[1, 2, 4]]
    """
    # Subtracting 1 (wrapping) turns the 0 padding into the largest value, so one ascending sort
    # puts real hashes first and padding last; adding 1 afterwards turns it back into 0.
    shifted = np.concatenate([a, b], axis=1) - np.uint64(1)
    shifted.sort(axis=1)
    repeated = np.zeros(shifted.shape, dtype=bool)
    repeated[:, 1:] = shifted[:, 1:] == shifted[:, :-1]
    shifted[repeated] = np.iinfo(np.uint64).max
    shifted.sort(axis=1)
    united: Hashes = shifted[:, :slots] + np.uint64(1)
    return united


def _starts(site: Hashes, line: Hashes) -> npt.NDArray[np.bool_]:
    """Return where a new (site, line) key begins in arrays sorted by (site, line)."""
    starts = np.ones(len(site), dtype=bool)
    starts[1:] = (site[1:] != site[:-1]) | (line[1:] != line[:-1])
    return starts


def _frozen(values: npt.NDArray[Any], dtype: type[_Scalar]) -> npt.NDArray[_Scalar]:
    """Return a contiguous read-only view of `values` as `dtype`, so a table cannot be edited through it.

    A view, so the caller's own array (which may be the same object) stays writable.
    """
    array: npt.NDArray[_Scalar] = np.ascontiguousarray(values, dtype=dtype).view()
    array.flags.writeable = False
    return array


def _schema_problem(schema: pa.Schema, slots: int) -> str | None:
    """Return what is wrong with a file's columns, or None."""
    if tuple(schema.names) != COLUMNS:
        return f"columns are {schema.names}, expected {list(COLUMNS)}"
    docs = schema.field("docs").type
    expected = {"site": pa.uint64(), "line": pa.uint64(), "last_seen": pa.int64()}
    for name, kind in expected.items():
        if schema.field(name).type != kind:
            return f"column {name!r} is {schema.field(name).type}, expected {kind}"
    if not (pa.types.is_fixed_size_list(docs) and docs.list_size == slots and docs.value_type == pa.uint64()):
        return f"column 'docs' is {docs}, expected fixed_size_list<uint64>[{slots}]"
    return None


def _content_problem(stats: SiteLineStats) -> str | None:
    """Return which invariant of `SiteLineStats` a loaded table breaks, or None."""
    site, line, docs = stats.site, stats.line, stats.docs
    ascending = (site[1:] > site[:-1]) | ((site[1:] == site[:-1]) & (line[1:] > line[:-1]))
    if not ascending.all():
        return f"keys not sorted by (site, line) or duplicated at row {int(np.argmin(ascending)) + 1}"
    if len(docs) and not docs[:, 0].all():
        return "an entry has no document"
    used = docs != _EMPTY_SLOT
    if (used[:, 1:] & ~used[:, :-1]).any():
        return "a document hash follows an empty slot"
    if (used[:, 1:] & (docs[:, 1:] <= docs[:, :-1])).any():
        return "document hashes of an entry not strictly ascending"
    seen = stats.last_seen
    if len(seen) and (seen.min() < 0 or seen.max() > stats.generation):
        return f"last_seen outside 0..{stats.generation} (the file's generation)"
    return None
