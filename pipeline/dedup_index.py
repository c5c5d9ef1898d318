"""The persistent index of sentences published by earlier runs: embedded files, or Redis.

Both backends keep the same things: the MinHash parameters the index was built with (checked
when it is opened; a mismatch is refused, never a silent zero-match), the runs that published
sentences (each with a seq, its place in the order rule, and the commit that holds its
sentences), and per sentence its LSH band keys, normal form, key, document, commit and seq.

A run's sentences become visible only when its commit is recorded in the manifest, which is
the last write of a commit, so a run killed at any point leaves the index as it was. A run
that is already in the index is matched only against the runs before it: rerunning it gives
the same result, and committing it again replaces its sentences (nothing if they are equal).

Embedded layout (`<output>/state/dedup/`):

    manifest.json            params, runs, segments; replaced atomically (temp file + rename)
    segments/seg-NNNNNNNN/   immutable, memory-mapped: band_keys.npy uint64[bands, n] sorted per
                             band, band_rows.npy uint32[bands, n], commit.npy uint32[n],
                             seq.npy uint32[n], position.npy uint32[n], doc.bin + doc.npy
                             (offsets), text.bin + text.npy (offsets)

Segments are merged when a newer one reaches half the size of the one before it, so a search
touches about log2(sentences / run) segments; merging drops sentences of replaced commits.

While a run is deduplicated, its own survivors are kept in files too (`RunSurvivorStore`: band
keys in sorted tiers, the columns appended in order), so its memory does not grow with the run;
the commit then writes them as the run's segment band by band (`SpilledSurvivors`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import logging
import mmap
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
import orjson
import redis
from datasketch import MinHash, MinHashLSH

from pipeline.config import DedupConfig
from pipeline.steps.dedup import (
    SIGNING_BATCH,
    BandKeys,
    Deduplicator,
    DedupProgress,
    DocumentInput,
    MinHasher,
    Published,
    PublishedSentences,
    RunCandidates,
    RunEntries,
    Signatures,
    band_filter,
    distinct,
    match_band_keys,
    normalise_sentences,
    sort_bands,
    stable_order,
)
from pipeline.storage import atomic_write_text, dump_record, fsync_folder, remove_orphaned_temporaries

log = logging.getLogger(__name__)

FORMAT_NAME: Final = "pipeline-dedup-index"
FORMAT_VERSION: Final = 1
MANIFEST: Final = "manifest.json"
SEGMENTS: Final = "segments"


class DedupIndexError(RuntimeError):
    """An index that cannot be used: unreadable, of another format, or built with other parameters."""


def index_params(hasher: MinHasher) -> dict[str, object]:
    """Return the parameters recorded with an index: the hasher's, plus a digest of its permutations.

    The digest catches a datasketch release that generates other permutations for the same
    seed (the 2.0 change of default scheme is the known case).
    """
    permutations = np.ascontiguousarray(hasher.permutations)
    digest = hashlib.sha256(permutations.tobytes()).hexdigest()[:16]
    return {**hasher.params, "permutations_sha256": digest, "format_version": FORMAT_VERSION}


def check_params(where: str, stored: dict[str, Any], wanted: dict[str, Any], fresh: str) -> None:
    """Raise DedupIndexError naming the first parameter that differs between an index and the config.

    Parameters are compared in the order `wanted` lists them, so a changed setting is named
    before the digests that follow from it.
    """
    for name in [*wanted, *(name for name in stored if name not in wanted)]:
        if stored.get(name) != wanted.get(name):
            raise DedupIndexError(
                f"{where}: the index was built with {name}={stored.get(name)!r} but {name}={wanted.get(name)!r} "
                "is configured; its signatures would match nothing. Set [dedup] back to the index's parameters, "
                f"or {fresh} to start a new index (earlier runs' sentences are then forgotten)."
            )


@dataclass(frozen=True)
class Survivors:
    """The sentences a run publishes, in the run's order: what a commit adds to the index."""

    keys: tuple[str, ...]
    doc_ids: tuple[str, ...]
    texts: tuple[str, ...]
    """Normal forms."""
    signatures: Signatures | None
    """Kept only for the Redis backend, whose LSH takes whole signatures."""
    band_keys: BandKeys

    def __len__(self) -> int:
        return len(self.keys)

    def digest(self) -> str:
        """Return a hash of the content: equal survivors commit nothing new."""
        digest = hashlib.sha256()
        for key, doc, text in zip(self.keys, self.doc_ids, self.texts, strict=True):
            digest.update(f"{key}\0{doc}\0{text}\n".encode())
        digest.update(np.ascontiguousarray(self.band_keys).tobytes())
        return digest.hexdigest()[:32]


def collect_survivors(
    hasher: MinHasher, sentences: Sequence[tuple[str, str, str]], keep_signatures: bool = False
) -> Survivors:
    """Return the survivors of `(key, doc_id, text)` sentences, signed and banded in batches."""
    # All normal forms first, then the signing: the hasher's memo of strings, made while signing,
    # does not end up scattered among them (it would keep their memory after they are freed).
    texts = tuple(
        norm
        for start in range(0, len(sentences), SIGNING_BATCH)
        for norm in normalise_sentences([text for _, _, text in sentences[start : start + SIGNING_BATCH]])
    )
    keys = np.zeros((len(texts), hasher.cfg.lsh_bands), dtype=np.uint64)
    kept: list[Signatures] = []
    for start in range(0, len(texts), SIGNING_BATCH):
        signatures = hasher.signatures(texts[start : start + SIGNING_BATCH], normalised=True)
        keys[start : start + len(signatures)] = hasher.band_keys(signatures)
        if keep_signatures:
            kept.append(signatures)
    return Survivors(
        tuple(key for key, _, _ in sentences),
        tuple(doc for _, doc, _ in sentences),
        texts,
        _stacked(kept, hasher) if keep_signatures else None,
        keys,
    )


def _stacked(parts: list[Signatures], hasher: MinHasher) -> Signatures:
    return np.concatenate(parts) if parts else np.zeros((0, hasher.cfg.num_perm), dtype=hasher.dtype)


class SentenceIndex(Protocol):
    """A persistent index of published sentences (embedded or Redis)."""

    def reader(self, run: str) -> PublishedSentences:
        """Return what `find_duplicates` searches for `run`: the runs committed before it."""
        ...

    def commit(self, run: str, survivors: Survivors | SpilledSurvivors) -> bool:
        """Publish a run's sentences; return False when the index already held exactly these."""
        ...

    def state(self, run: str) -> str:
        """Return a hash of what `run` is matched against: its dedup result is stored under it."""
        ...


# --------------------------------------------------------------------------------------------------
# Manifest


@dataclass(frozen=True)
class RunEntry:
    """One run in the index: its place in the order rule and the commit holding its sentences."""

    run: str
    seq: int
    commit: int
    sentences: int
    digest: str


@dataclass(frozen=True)
class Manifest:
    """The index's committed state."""

    params: dict[str, Any]
    runs: tuple[RunEntry, ...]
    segments: tuple[tuple[str, int], ...]
    next_commit: int

    def to_json(self) -> str:
        data = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "params": self.params,
            "runs": [vars(r) for r in self.runs],
            "segments": [{"name": name, "entries": n} for name, n in self.segments],
            "next_commit": self.next_commit,
        }
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT_NAME:
                raise DedupIndexError(f"{where}: format is {data.get('format')!r}, expected {FORMAT_NAME!r}")
            if data.get("format_version") != FORMAT_VERSION:
                raise DedupIndexError(
                    f"{where}: format version is {data.get('format_version')!r}, expected {FORMAT_VERSION}"
                )
            return cls(
                dict(data["params"]),
                tuple(RunEntry(**r) for r in data["runs"]),
                tuple((s["name"], int(s["entries"])) for s in data["segments"]),
                int(data["next_commit"]),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise DedupIndexError(f"{where}: not a readable index manifest ({error})") from error

    def run_entry(self, run: str) -> RunEntry | None:
        return next((r for r in self.runs if r.run == run), None)

    def visible(self, run: str) -> dict[int, RunEntry]:
        """Return the live commits a run is matched against, by commit: every run, or those before it."""
        own = self.run_entry(run)
        return {r.commit: r for r in self.runs if own is None or r.seq < own.seq}

    def state(self, run: str) -> str:
        """Return a hash of the runs (and their commits) a run is matched against; "none" when none."""
        visible = sorted((r.seq, r.run, r.commit, r.digest) for r in self.visible(run).values())
        return hashlib.sha256(json.dumps(visible).encode()).hexdigest()[:12] if visible else "none"

    def with_run(self, run: str, commit: int, sentences: int, digest: str) -> tuple[RunEntry, ...]:
        own = self.run_entry(run)
        seq = own.seq if own is not None else max((r.seq for r in self.runs), default=-1) + 1
        entry = RunEntry(run, seq, commit, sentences, digest)
        return tuple(sorted([r for r in self.runs if r.run != run] + [entry], key=lambda r: r.seq))


# --------------------------------------------------------------------------------------------------
# Embedded index


class _Strings:
    """A column of strings as one UTF-8 blob and offsets, memory-mapped."""

    def __init__(self, folder: Path, name: str) -> None:
        self.offsets = np.load(folder / f"{name}.npy", mmap_mode="r")
        size = int(self.offsets[-1])
        self.blob = np.memmap(folder / f"{name}.bin", dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)

    def __getitem__(self, row: int) -> str:
        return bytes(self.blob[int(self.offsets[row]) : int(self.offsets[row + 1])]).decode("utf-8")

    def many(self, rows: npt.NDArray[np.int64]) -> list[str]:
        """Return the strings of many rows (one gather of the offsets, no memmap object per string)."""
        blob = self.blob.view(np.ndarray)
        starts, ends = self.offsets[rows].tolist(), self.offsets[rows + 1].tolist()
        return [blob[start:end].tobytes().decode("utf-8") for start, end in zip(starts, ends, strict=True)]

    @staticmethod
    def write(folder: Path, name: str, values: Sequence[str]) -> None:
        encoded = [value.encode("utf-8") for value in values]
        offsets = np.zeros(len(encoded) + 1, dtype=np.uint64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        _save(folder / f"{name}.npy", offsets)
        _write_synced(folder / f"{name}.bin", b"".join(encoded))


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _save(path: Path, array: npt.NDArray[Any]) -> None:
    with path.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())


def _load(path: Path) -> npt.NDArray[Any]:
    array: npt.NDArray[Any] = np.load(path, mmap_mode="r", allow_pickle=False)
    return array


class _Segment:
    """One immutable segment, memory-mapped."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.band_keys = _load(folder / "band_keys.npy")
        self.band_rows = _load(folder / "band_rows.npy")
        self.commit = _load(folder / "commit.npy")
        self.seq = _load(folder / "seq.npy")
        self.position = _load(folder / "position.npy")
        self.doc = _Strings(folder, "doc")
        self.text = _Strings(folder, "text")

    def __len__(self) -> int:
        return len(self.commit)


@dataclass(frozen=True)
class _Columns:
    """A segment's entries in memory, before it is written."""

    band_keys: BandKeys  # [n, bands], unsorted
    commit: npt.NDArray[np.uint32]
    seq: npt.NDArray[np.uint32]
    position: npt.NDArray[np.uint32]
    docs: list[str]
    texts: list[str]


def _write_segment(folder: Path, columns: _Columns | SpilledSurvivors, commit: int = 0) -> None:
    """Write a segment folder atomically: into a temporary folder, synced, then renamed.

    `columns` are a segment's entries in memory, or a run's survivors spilled to files (written
    as commit `commit`, seq in their order), which are streamed band by band.
    """
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if isinstance(columns, SpilledSurvivors):
        columns.write_columns(tmp, commit)
    else:
        sorted_keys, rows = sort_bands(columns.band_keys)
        _save(tmp / "band_keys.npy", np.ascontiguousarray(sorted_keys))
        _save(tmp / "band_rows.npy", np.asfortranarray(rows, dtype=np.uint32))  # as a transposed argsort is laid out
        _save(tmp / "commit.npy", columns.commit)
        _save(tmp / "seq.npy", columns.seq)
        _save(tmp / "position.npy", columns.position)
        _Strings.write(tmp, "doc", columns.docs)
        _Strings.write(tmp, "text", columns.texts)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    fsync_folder(folder.parent)


_COPY_CHUNK: Final = 1 << 24  # bytes copied at a time when merging string blobs
_ROW_CHUNK: Final = 1 << 20  # rows gathered at a time when some rows of a segment are dropped


def _drop_pages(array: npt.NDArray[Any]) -> None:
    """Let go of the pages of a memory-mapped array this process has read (they stay in the file).

    A merge reads whole segments; without this their pages would count in the process's RSS
    until the merge ends, though the kernel could drop them at any time.
    """
    mapped = getattr(array, "_mmap", None)  # numpy.memmap keeps its mmap.mmap here
    if mapped is not None and hasattr(mapped, "madvise"):
        mapped.madvise(mmap.MADV_DONTNEED)


def _merge_segments(parts: list[_Segment], live: set[int], folder: Path) -> int:
    """Write the live entries of `parts`, in order, as one segment folder; return its entries.

    Streams one band at a time (each band of each part is already sorted: a stable sort of the
    two runs merges them) and copies the string blobs, so memory stays at a few arrays of one
    band, not the whole segment.
    """
    live_commits = np.array(sorted(live), dtype=np.uint32)
    keeps = [np.isin(np.asarray(part.commit), live_commits) for part in parts]
    remaps: list[npt.NDArray[np.int64]] = []
    total = 0
    for keep in keeps:
        remaps.append(np.cumsum(keep, dtype=np.int64) - 1 + total)
        total += int(keep.sum())
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    bands = parts[0].band_keys.shape[0]
    keys_out = np.lib.format.open_memmap(tmp / "band_keys.npy", mode="w+", dtype=np.uint64, shape=(bands, total))
    rows_out = np.lib.format.open_memmap(tmp / "band_rows.npy", mode="w+", dtype=np.uint32, shape=(bands, total))
    for band in range(bands):
        keys, rows = [], []
        for part, keep, remap in zip(parts, keeps, remaps, strict=True):
            part_rows = np.asarray(part.band_rows[band])
            alive = keep[part_rows]
            keys.append(np.asarray(part.band_keys[band])[alive])
            rows.append(remap[part_rows[alive]])
        merged_keys, merged_rows = np.concatenate(keys), np.concatenate(rows)
        order = stable_order(merged_keys)[0]
        keys_out[band] = merged_keys[order]
        rows_out[band] = merged_rows[order]
        keys_out.flush()
        rows_out.flush()
        for array in (keys_out, rows_out, *(part.band_keys for part in parts), *(part.band_rows for part in parts)):
            _drop_pages(array)
    keys_out.flush()
    rows_out.flush()
    del keys_out, rows_out
    for written_name in ("band_keys.npy", "band_rows.npy"):
        with (tmp / written_name).open("rb+") as handle:
            os.fsync(handle.fileno())
    for name in ("commit", "seq", "position"):
        column = np.concatenate(
            [np.asarray(getattr(part, name))[keep] for part, keep in zip(parts, keeps, strict=True)]
        )
        _save(tmp / f"{name}.npy", column)
    for name in ("doc", "text"):
        _merge_strings([getattr(part, name) for part in parts], keeps, tmp, name)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    fsync_folder(folder.parent)
    return total


def _merge_strings(columns: list[_Strings], keeps: list[npt.NDArray[np.bool_]], folder: Path, name: str) -> None:
    """Write the kept strings of several columns, in order, as one column."""
    offsets: list[npt.NDArray[np.uint64]] = []
    written = 0
    with (folder / f"{name}.bin").open("wb") as out:
        for column, keep in zip(columns, keeps, strict=True):
            starts = np.asarray(column.offsets[:-1], dtype=np.int64)
            lengths = np.diff(np.asarray(column.offsets, dtype=np.int64))
            if keep.all():
                for start in range(0, len(column.blob), _COPY_CHUNK):
                    out.write(bytes(column.blob[start : start + _COPY_CHUNK]))
                    _drop_pages(column.blob)
            else:
                kept_rows = np.flatnonzero(keep)
                for first in range(0, len(kept_rows), _ROW_CHUNK):
                    chunk = kept_rows[first : first + _ROW_CHUNK]
                    blob = column.blob
                    out.write(
                        b"".join(bytes(blob[s : s + n]) for s, n in zip(starts[chunk], lengths[chunk], strict=True))
                    )
                    _drop_pages(blob)
            kept_lengths = lengths[keep].astype(np.uint64)
            offsets.append(np.cumsum(kept_lengths, dtype=np.uint64) + np.uint64(written))
            written += int(kept_lengths.sum())
        out.flush()
        os.fsync(out.fileno())
    _save(folder / f"{name}.npy", np.concatenate([np.zeros(1, dtype=np.uint64), *offsets]))


class EmbeddedReader:
    """The sentences a run is matched against, read from memory-mapped segments."""

    def __init__(self, segments: list[_Segment], visible: dict[int, RunEntry]) -> None:
        self.segments = segments
        self.visible = visible
        top = max(visible, default=-1) + 1
        self._live = np.zeros(top, dtype=bool)
        self._live[list(visible)] = True

    def candidates(self, signatures: Signatures, band_keys: BandKeys) -> list[list[Published]]:
        found: list[list[Published]] = [[] for _ in range(len(band_keys))]
        if not self.visible:
            return found
        for segment in self.segments:
            queries, rows = match_band_keys(segment.band_keys, segment.band_rows, band_keys)
            if not len(rows):
                continue
            commits = np.asarray(segment.commit[rows], dtype=np.int64)
            alive = commits < len(self._live)
            alive[alive] = self._live[commits[alive]]
            rows = rows[alive]
            for query, commit, position, seq, doc, text in zip(
                queries[alive].tolist(),
                commits[alive].tolist(),
                segment.position[rows].tolist(),
                segment.seq[rows].tolist(),
                segment.doc.many(rows),
                segment.text.many(rows),
                strict=True,
            ):
                entry = self.visible[commit]
                found[query].append(Published(f"{doc}:{position}", doc, entry.run, text, (entry.seq, seq)))
        return found


class EmbeddedIndex:
    """The index as files under one folder; one writer at a time (a lock file), any number of readers."""

    def __init__(self, folder: Path, params: dict[str, Any]) -> None:
        self.folder = folder
        self.params = params
        self.manifest = self._read()

    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST

    def _read(self) -> Manifest:
        path = self.manifest_path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return Manifest(self.params, (), (), 0)
        except (OSError, UnicodeDecodeError) as error:
            raise DedupIndexError(f"{path}: cannot be read ({error})") from error
        manifest = Manifest.from_json(text, str(path))
        check_params(str(path), manifest.params, self.params, f"move {self.folder} away")
        for name, _ in manifest.segments:
            if not (self.folder / SEGMENTS / name / "text.npy").is_file():
                raise DedupIndexError(f"{path}: segment {name} is listed but missing")
        return manifest

    def _segments(self, manifest: Manifest) -> list[_Segment]:
        return [_Segment(self.folder / SEGMENTS / name) for name, _ in manifest.segments]

    def reader(self, run: str) -> EmbeddedReader:
        return EmbeddedReader(self._segments(self.manifest), self.manifest.visible(run))

    def state(self, run: str) -> str:
        return self.manifest.state(run)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def commit(self, run: str, survivors: Survivors | SpilledSurvivors) -> bool:
        """Add a run's sentences as a new segment, merge segments, then replace the manifest."""
        with self._locked():
            manifest = self._read()
            digest = survivors.digest()
            own = manifest.run_entry(run)
            if own is not None and own.digest == digest:
                return False
            commit = manifest.next_commit
            segments = list(manifest.segments)
            if len(survivors):
                name = f"seg-{commit:08d}"
                if isinstance(survivors, SpilledSurvivors):
                    _write_segment(self.folder / SEGMENTS / name, survivors, commit)
                else:
                    columns = _Columns(
                        np.ascontiguousarray(survivors.band_keys),
                        np.full(len(survivors), commit, dtype=np.uint32),
                        np.arange(len(survivors), dtype=np.uint32),
                        np.array([int(k.rpartition(":")[2]) for k in survivors.keys], dtype=np.uint32),
                        list(survivors.doc_ids),
                        list(survivors.texts),
                    )
                    _write_segment(self.folder / SEGMENTS / name, columns)
                segments.append((name, len(survivors)))
            runs = manifest.with_run(run, commit, len(survivors), digest)
            live = {r.commit for r in runs}
            segments = self._merged(segments, live, commit)
            updated = Manifest(self.params, runs, tuple(segments), commit + 1)
            atomic_write_text(self.manifest_path, updated.to_json())
            self.manifest = updated
            self._remove_unlisted({name for name, _ in segments})
            return True

    def _merged(self, segments: list[tuple[str, int]], live: set[int], commit: int) -> list[tuple[str, int]]:
        """Merge the two newest segments while the newer one is as large as the older (a binary counter).

        Segments then shrink geometrically from oldest to newest: a search reads about
        log2(sentences / run) of them, and each sentence is rewritten about as many times.
        """
        merges = 0
        while len(segments) >= 2 and segments[-2][1] <= segments[-1][1]:
            names = [segments[-2][0], segments[-1][0]]
            merges += 1
            name = f"seg-{commit:08d}-m{merges}"
            parts = [_Segment(self.folder / SEGMENTS / n) for n in names]
            entries = _merge_segments(parts, live, self.folder / SEGMENTS / name)
            segments[-2:] = [(name, entries)]
        return segments

    def _remove_unlisted(self, listed: set[str]) -> None:
        folder = self.folder / SEGMENTS
        if folder.is_dir():
            for path in folder.iterdir():
                if path.name not in listed:
                    shutil.rmtree(path, ignore_errors=True)

    def disk_bytes(self) -> int:
        """Return the bytes the index takes on disk."""
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------------
# This run's survivors, spilled to files

RUN_MEMORY_ROWS: Final = 1 << 14
"""This run's survivors searched in memory before they are written out as a sorted tier."""
RUN_MEMORY_TIERS: Final = 8
"""In-memory tiers searched one by one before they are merged into one (each batch adds one; a batch of
`SIGNING_BATCH` sentences keeps a few thousand, so the tiers are mostly spilled before there are this many)."""
_SEARCH_BYTES: Final = 1 << 23
"""Bytes of band filters of a tier file searched at once (their pages are read where keys fall)."""
RUN_TIER_LIMIT: Final = 1 << 25
"""Rows a merge of tiers makes at most: bounds its memory (one band of keys and rows at a time, ~32 bytes a row).

Every batch searches every tier, so fewer, larger tiers search faster: with 16M random rows,
4096 queries cost 141 CPU ms against the nine tiers a limit of 2^22 leaves and 62 ms against
the five of 2^25 or more, for 20% more CPU merging (102 -> 122 s) and a peak of 882 MiB instead
of 363 (`RunSurvivorStore` alone)."""
_SPILL_COLUMNS: Final = ("band_keys.u64", "position.u32", "seq.u64", "doc.bin", "doc.end", "text.bin", "text.end")
_SPILL_META: Final = "meta.json"
_Tier = tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64], BandKeys, npt.NDArray[np.uint8]]
"""An in-memory tier: keys sorted per band, their rows, the keys in row order (for merging), and `band_filter`s."""


def survivor_keys_digest() -> Any:
    """Return the hash object both sides feed with `<key>\\n` per survivor, to check they list the same."""
    return hashlib.sha256()


def _spilled(folder: Path, name: str, dtype: type[np.generic], width: int = 1) -> npt.NDArray[Any]:
    """Return an append-only column file as a read-only array (empty when the file is)."""
    path = folder / name
    rows = path.stat().st_size // (np.dtype(dtype).itemsize * width)
    if not rows:
        return np.zeros((0, width) if width > 1 else 0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(rows, width) if width > 1 else (rows,))


class _SpilledStrings:
    """A column of strings as one UTF-8 blob and end offsets, appended to files, read memory-mapped."""

    def __init__(self, folder: Path, name: str) -> None:
        self.ends = _spilled(folder, f"{name}.end", np.uint64)
        self.blob = _spilled(folder, f"{name}.bin", np.uint8)

    def many(self, rows: npt.NDArray[np.int64]) -> list[str]:
        ends = np.asarray(self.ends[rows], dtype=np.int64)
        starts = np.where(rows > 0, np.asarray(self.ends[np.maximum(rows - 1, 0)], dtype=np.int64), 0)
        blob = np.asarray(self.blob)
        return [blob[a:b].tobytes().decode("utf-8") for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]

    def drop_pages(self) -> None:
        _drop_pages(self.ends)
        _drop_pages(self.blob)


class RunSurvivorStore:
    """This run's surviving sentences, written to a folder as dedup finds them, searched there.

    What `find_duplicates` adds (`RunSentences`) is appended, in the run's order, to column files
    (band keys row by row, position, seq, document and normal form), which `SpilledSurvivors`
    later commits to the index as they are. Band keys are searched in sorted tiers: the newest
    in memory (`RUN_MEMORY_ROWS` rows at most), older ones memory-mapped from `tiers/`, so memory
    stays flat however many sentences the run has. `close` writes `meta.json` and removes `tiers/`.
    """

    def __init__(self, folder: Path, bands: int, run: str, checkpoints: bool = False, _append: bool = False) -> None:
        self.folder, self.bands, self.run = folder, bands, run
        (folder / "tiers").mkdir(parents=True, exist_ok=True)
        self._files = {name: (folder / name).open("ab" if _append else "wb") for name in _SPILL_COLUMNS}
        self._rows = 0
        self._ends = {"doc": 0, "text": 0}
        self._digest = survivor_keys_digest()
        self._memory: list[_Tier] = []
        self._disk: list[tuple[Path, int]] = []
        self._tier_names = 0
        self._columns: tuple[int, Any] | None = None
        # With checkpoints, tier files merged away stay until the next checkpoint no longer names
        # them, and tier files are synced before a checkpoint names them.
        self._checkpoints = checkpoints
        self._retired: list[tuple[Path, int]] = []
        self._synced: set[Path] = set()

    @classmethod
    def reopen(cls, folder: Path, bands: int, run: str, state: dict[str, Any]) -> RunSurvivorStore:
        """Return the store as `checkpoint` left it in `folder`: whatever was written after is dropped."""
        if state.get("bands") != bands or state.get("run") != run:
            raise ValueError(f"{folder} holds survivors of {state.get('bands')} bands of run {state.get('run')}")
        for name in _SPILL_COLUMNS:
            os.truncate(folder / name, int(state["bytes"][name]))
        store = cls(folder, bands, run, checkpoints=True, _append=True)
        store._rows, store._ends = int(state["rows"]), {k: int(v) for k, v in state["ends"].items()}
        store._disk = [(folder / "tiers" / name, int(rows)) for name, rows in state["tiers"]]
        store._tier_names = int(state["tier_names"])
        store._synced = {tier for tier, _ in store._disk}
        for tier in (folder / "tiers").iterdir():  # made after the checkpoint, or merged away before it
            if tier not in store._synced:
                shutil.rmtree(tier)
        position, _, docs, _ = store._read_columns()
        for start in range(0, store._rows, _ROW_CHUNK):
            rows = np.arange(start, min(start + _ROW_CHUNK, store._rows), dtype=np.int64)
            keys = zip(docs.many(rows), np.asarray(position[rows]).tolist(), strict=True)
            store._digest.update("".join(f"{doc}:{at}\n" for doc, at in keys).encode())
        return store

    @property
    def retired_rows(self) -> int:
        """Return the rows of tier files merged away but kept until the next checkpoint."""
        return sum(rows for _, rows in self._retired)

    def checkpoint(self) -> dict[str, Any]:
        """Write out what is in memory, sync every file, and return the state `reopen` starts from.

        Once the caller has stored that state, `release_retired` removes what it no longer names.
        """
        if self._memory:
            self._spill()
        for handle in self._files.values():
            handle.flush()
            os.fsync(handle.fileno())
        for tier, _ in self._disk:
            if tier not in self._synced:
                for path in tier.iterdir():
                    _fsync_file(path)
                fsync_folder(tier)
                self._synced.add(tier)
        fsync_folder(self.folder / "tiers")
        return {
            "bands": self.bands,
            "run": self.run,
            "rows": self._rows,
            "ends": dict(self._ends),
            "bytes": {name: handle.tell() for name, handle in self._files.items()},
            "tiers": [[tier.name, rows] for tier, rows in self._disk],
            "tier_names": self._tier_names,
        }

    def release_retired(self) -> None:
        """Remove the tier files merged away before the last checkpoint."""
        for tier, _ in self._retired:
            shutil.rmtree(tier, ignore_errors=True)
            self._synced.discard(tier)
        self._retired = []

    def add(self, entries: RunEntries, keys: BandKeys) -> None:
        """Append survivors and their band keys; spill the in-memory tiers when they are full."""
        if not len(entries):
            return
        first = self._rows
        files = self._files
        files["band_keys.u64"].write(np.ascontiguousarray(keys, dtype=np.uint64).tobytes())
        files["position.u32"].write(np.array(entries.positions, dtype=np.uint32).tobytes())
        files["seq.u64"].write(np.array(entries.seqs, dtype=np.uint64).tobytes())
        for name, values in (("doc", entries.doc_ids), ("text", entries.texts)):
            encoded = [value.encode("utf-8") for value in values]
            files[f"{name}.bin"].write(b"".join(encoded))
            ends = np.cumsum([len(e) for e in encoded], dtype=np.uint64) + np.uint64(self._ends[name])
            files[f"{name}.end"].write(ends.tobytes())
            self._ends[name] = int(ends[-1])
        self._digest.update(
            "".join(
                f"{doc}:{position}\n" for doc, position in zip(entries.doc_ids, entries.positions, strict=True)
            ).encode()
        )
        self._rows += len(entries)
        sorted_keys, rows = sort_bands(keys, stable=False)  # searched only: any order of equal keys
        self._memory.append((sorted_keys, rows + first, keys, band_filter(sorted_keys, RUN_MEMORY_ROWS)))
        if sum(_tier_rows(tier) for tier in self._memory) >= RUN_MEMORY_ROWS:
            self._spill()
        elif len(self._memory) > RUN_MEMORY_TIERS:  # each searched on its own: a few, merged now and then
            self._memory = [_merged_tier(self._memory)]

    def _spill(self) -> None:
        """Write the in-memory tiers as one sorted tier file; merge tier files up to `RUN_TIER_LIMIT` rows."""
        tier = _merged_tier(self._memory)
        self._memory = []
        self._disk.append(self._write_tier(tier[0], tier[1], tier[3]))
        while len(self._disk) >= 2 and self._disk[-2][1] <= self._disk[-1][1]:
            if self._disk[-2][1] + self._disk[-1][1] > RUN_TIER_LIMIT:
                break
            newer, older = self._disk.pop(), self._disk.pop()
            parts = [_load_tier(older[0]), _load_tier(newer[0])]
            bands, total = parts[0][0].shape[0], older[1] + newer[1]
            folder = self._tier_folder()
            keys = np.lib.format.open_memmap(folder / "keys.npy", mode="w+", dtype=np.uint64, shape=(bands, total))
            rows = np.lib.format.open_memmap(folder / "rows.npy", mode="w+", dtype=np.uint32, shape=(bands, total))
            filters: Any = None
            for band in range(bands):  # a band at a time, its pages let go: memory of one band
                both_keys = np.concatenate([np.asarray(part[0][band]) for part in parts])
                both_rows = np.concatenate([np.asarray(part[1][band]) for part in parts])
                order = np.argsort(both_keys, kind="stable")  # two sorted runs: merged in linear time
                keys[band], rows[band] = both_keys[order], both_rows[order]
                one = band_filter(keys[band : band + 1])
                if filters is None:
                    filters = np.lib.format.open_memmap(
                        folder / "filters.npy", mode="w+", dtype=np.uint8, shape=(bands, one.shape[1])
                    )
                filters[band] = one[0]
                # Let go without syncing: the tier is scratch (removed by `close`), and pages dropped
                # from a shared file mapping stay dirty in the page cache until written back.
                for mapped in (keys, rows, filters, *parts[0], *parts[1]):
                    _drop_pages(mapped)
            del parts, keys, rows, filters
            if self._checkpoints:
                self._retired += [older, newer]
            else:
                shutil.rmtree(older[0])
                shutil.rmtree(newer[0])
            self._disk.append((folder, total))

    def _tier_folder(self) -> Path:
        folder = self.folder / "tiers" / f"tier-{self._tier_names:06d}"
        self._tier_names += 1
        folder.mkdir()
        return folder

    def _write_tier(
        self, keys: npt.NDArray[np.uint64], rows: npt.NDArray[Any], filters: npt.NDArray[np.uint8]
    ) -> tuple[Path, int]:
        folder = self._tier_folder()
        np.save(folder / "keys.npy", np.ascontiguousarray(keys), allow_pickle=False)
        np.save(folder / "rows.npy", np.ascontiguousarray(rows, dtype=np.uint32), allow_pickle=False)
        np.save(folder / "filters.npy", filters, allow_pickle=False)
        return folder, int(keys.shape[1])

    def candidates(self, keys: BandKeys) -> RunCandidates:
        """Return this run's survivors sharing a band with each row of band keys."""
        queries: list[npt.NDArray[np.int64]] = []
        rows: list[npt.NDArray[np.int64]] = []
        for folder, _ in self._disk:  # a few bands at a time, their pages let go: memory of a few MB per tier
            sorted_keys, tier_rows, filters = _load_tier(folder)
            together = max(1, _SEARCH_BYTES // max(1, filters.shape[1]))  # bands whose filters fit in that
            for band in range(0, sorted_keys.shape[0], together):
                some = slice(band, band + together)
                q, r = match_band_keys(sorted_keys[some], tier_rows[some], keys[:, some], filters[some])
                queries.append(q)
                rows.append(r)
                for mapped in (sorted_keys, tier_rows, filters):
                    _drop_pages(mapped)
        for tier in self._memory:
            q, r = match_band_keys(tier[0], tier[1], keys, tier[3])
            queries.append(q)
            rows.append(r)
        if not sum(len(q) for q in queries):
            return RunCandidates.empty()
        query, row = np.concatenate(queries), np.concatenate(rows)
        span = int(row.max()) + 1
        pairs = distinct(query * span + row)
        query, row = pairs // span, pairs % span
        _, seq, _, texts = self._read_columns()
        rows_read = distinct(row)  # a survivor is often a candidate of several sentences: read once
        read = texts.many(rows_read)
        at = np.searchsorted(rows_read, row).tolist()
        found = RunCandidates(query, row, np.asarray(seq[row], dtype=np.int64), [read[n] for n in at])
        _drop_pages(seq)
        texts.drop_pages()
        return found

    def published(self, rows: Sequence[int]) -> list[Published]:
        """Return the survivors of some rows in full."""
        at = np.asarray(rows, dtype=np.int64)
        position, seq, docs, texts = self._read_columns()
        entries = RunEntries(
            docs.many(at), np.asarray(position[at]).tolist(), np.asarray(seq[at]).tolist(), texts.many(at)
        )
        for column in (position, seq):
            _drop_pages(column)
        docs.drop_pages()
        texts.drop_pages()
        return entries.published(self.run)

    def _read_columns(self) -> Any:
        """Return the column files as arrays (mapped again after rows were added)."""
        if self._columns is None or self._columns[0] != self._rows:
            for handle in self._files.values():
                handle.flush()
            folder = self.folder
            columns = (
                _spilled(folder, "position.u32", np.uint32),
                _spilled(folder, "seq.u64", np.uint64),
                _SpilledStrings(folder, "doc"),
                _SpilledStrings(folder, "text"),
            )
            self._columns = (self._rows, columns)
        return self._columns[1]

    def close(self) -> None:
        """Close the column files, remove the tiers, write `meta.json` (rows, bands, keys digest).

        The files are synced to disk: the folder is renamed into place next, and a later run
        commits what it holds to the index.
        """
        with contextlib.ExitStack() as closing:  # every handle closed, even when one fsync fails
            for handle in self._files.values():
                closing.enter_context(handle)
            for handle in self._files.values():
                handle.flush()
                os.fsync(handle.fileno())
        self._columns = None
        self._memory = []
        shutil.rmtree(self.folder / "tiers", ignore_errors=True)
        meta = {"rows": self._rows, "bands": self.bands, "keys_sha256": self._digest.hexdigest()}
        _write_synced(self.folder / _SPILL_META, (json.dumps(meta, sort_keys=True) + "\n").encode("utf-8"))
        fsync_folder(self.folder)


CHECKPOINT_SECONDS: Final = 300.0
"""How often `find_run_duplicates` records its progress (at the end of a batch): what a killed run redoes at most."""
CHECKPOINT_RETIRED_ROWS: Final = RUN_TIER_LIMIT // 4
"""Rows of merged-away tier files that bring the next checkpoint forward, so that they are removed (disk space)."""
VERDICTS_FILE: Final = "verdicts.jsonl"
_PROGRESS_FILE: Final = "progress.json"
_KEPT_DOCS_FILE: Final = "kept_docs.jsonl"
_PROGRESS_FORMAT: Final = 1


def find_run_duplicates(
    documents: Iterable[DocumentInput],
    cfg: DedupConfig,
    min_document_words: int,
    earlier: PublishedSentences | None,
    run: str,
    folder: Path,
    every_seconds: float | None = None,
) -> Path:
    """Deduplicate a run's documents into `folder`: its survivors (`RunSurvivorStore`) and the verdicts worth keeping.

    Returns the verdicts file (`VERDICTS_FILE` in `folder`, JSON Lines): every document with a
    duplicate sentence or dropped whole. Every `every_seconds` (default `CHECKPOINT_SECONDS`),
    at the end of a batch, the progress is synced to `folder`; a call finding progress there
    (left by a call with the same arguments that was killed) goes on from it, dropping what
    was written after it, and leaves the same files as a call never interrupted; a call finding
    the whole result there returns at once. Anything else in `folder` is removed first. Take the
    verdicts out with `take_verdicts`.
    """
    interval = CHECKPOINT_SECONDS if every_seconds is None else every_seconds
    if _finished(folder):  # killed after its last write, before the caller took the verdicts
        return _finish(folder)
    resumed = _resume(folder, cfg.lsh_bands, run)
    if resumed is None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        store = RunSurvivorStore(folder, cfg.lsh_bands, run, checkpoints=True)
        progress, done = None, 0
        verdicts = (folder / VERDICTS_FILE).open("wb")
    else:
        store, progress, done = resumed
        verdicts = (folder / VERDICTS_FILE).open("ab")
    kept_written = len(progress.kept_docs) if progress is not None else 0
    dedup = Deduplicator(cfg, min_document_words, earlier, run, store, progress)
    last = time.monotonic()
    with verdicts, (folder / _KEPT_DOCS_FILE).open("ab") as kept_file:
        for batch in dedup.verdict_batches(itertools.islice(documents, done, None)):
            verdicts.write(
                "".join(dump_record(v.record()) for v in batch if v.sentences or v.duplicate_of_doc).encode("utf-8")
            )
            done += len(batch)
            if time.monotonic() - last < interval and store.retired_rows < CHECKPOINT_RETIRED_ROWS:
                continue
            kept_docs = dedup.progress().kept_docs
            new = itertools.islice(kept_docs.items(), kept_written, None)
            kept_file.write(b"".join(orjson.dumps(list(item)) + b"\n" for item in new))
            kept_written = len(kept_docs)
            for handle in (verdicts, kept_file):
                handle.flush()
                os.fsync(handle.fileno())
            state = {
                "format": _PROGRESS_FORMAT,
                "documents": done,
                "verdict_bytes": verdicts.tell(),
                "kept_docs_bytes": kept_file.tell(),
                "seq": dedup.progress().seq,
                "store": store.checkpoint(),
            }
            atomic_write_text(folder / _PROGRESS_FILE, json.dumps(state, sort_keys=True) + "\n")
            fsync_folder(folder)
            store.release_retired()
            last = time.monotonic()
        verdicts.flush()
        os.fsync(verdicts.fileno())
    store.close()
    # Done: the survivors and the verdicts, kept as they are if the caller is killed before `take_verdicts`.
    atomic_write_text(folder / _PROGRESS_FILE, json.dumps({"format": _PROGRESS_FORMAT, "finished": True}) + "\n")
    fsync_folder(folder)
    return _finish(folder)


def _finish(folder: Path) -> Path:
    """Remove what only a resume needs from a finished working folder; return its verdicts file."""
    (folder / _KEPT_DOCS_FILE).unlink(missing_ok=True)
    return folder / VERDICTS_FILE


def take_verdicts(folder: Path, to: Path) -> None:
    """Move the verdicts `find_run_duplicates` left in `folder` to `to`; `folder` then holds the survivors alone."""
    (folder / VERDICTS_FILE).replace(to)
    (folder / _PROGRESS_FILE).unlink()


def _finished(folder: Path) -> bool:
    """Return whether `folder` holds the whole result of `find_run_duplicates`, its verdicts not yet taken."""
    try:
        state = json.loads((folder / _PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(state == {"format": _PROGRESS_FORMAT, "finished": True} and (folder / VERDICTS_FILE).is_file())


def _resume(folder: Path, bands: int, run: str) -> tuple[RunSurvivorStore, DedupProgress, int] | None:
    """Return the store, the deduplicator's progress and the documents done, as `folder`'s last checkpoint left them.

    None when there is no checkpoint there that can be used (then the work starts again).
    """
    if not (folder / _PROGRESS_FILE).is_file():
        return None
    remove_orphaned_temporaries(folder)  # a checkpoint killed mid-write: its progress file's temporary
    try:
        state = json.loads((folder / _PROGRESS_FILE).read_text(encoding="utf-8"))
        if not isinstance(state, dict) or state.get("format") != _PROGRESS_FORMAT or state.get("finished"):
            return None  # finished, and its verdicts taken: nothing to go on from
        os.truncate(folder / VERDICTS_FILE, int(state["verdict_bytes"]))
        os.truncate(folder / _KEPT_DOCS_FILE, int(state["kept_docs_bytes"]))
        with (folder / _KEPT_DOCS_FILE).open("rb") as kept_lines:
            kept = dict(orjson.loads(line) for line in kept_lines)
        store = RunSurvivorStore.reopen(folder, bands, run, state["store"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("starting the dedup of run %s again: its progress in %s cannot be used (%s)", run, folder, error)
        return None
    return store, DedupProgress(int(state["seq"]), kept), int(state["documents"])


def _tier_rows(tier: _Tier) -> int:
    return int(tier[0].shape[1])


def _merged_tier(tiers: list[_Tier]) -> _Tier:
    """Return one in-memory tier holding the entries of several (consecutive rows, in order)."""
    if len(tiers) == 1:
        return tiers[0]
    # Each band of each tier is sorted already: a stable sort of the runs side by side merges them.
    sorted_keys = np.concatenate([tier[0] for tier in tiers], axis=1)
    order = np.argsort(sorted_keys, axis=1, kind="stable")
    sorted_keys = np.take_along_axis(sorted_keys, order, axis=1)
    rows = np.take_along_axis(np.concatenate([tier[1] for tier in tiers], axis=1), order, axis=1)
    if len({tier[3].shape for tier in tiers}) == 1:  # filters of one size: the or of theirs
        filters = np.bitwise_or.reduce(np.stack([tier[3] for tier in tiers]), axis=0)
    else:
        filters = band_filter(sorted_keys, RUN_MEMORY_ROWS)
    return sorted_keys, rows, np.concatenate([tier[2] for tier in tiers]), filters


def _load_tier(folder: Path) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint32], npt.NDArray[np.uint8]]:
    return _load(folder / "keys.npy"), _load(folder / "rows.npy"), _load(folder / "filters.npy")


class SpilledSurvivors:
    """A run's survivors as `RunSurvivorStore` left them: what a commit adds, read from the files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        meta = json.loads((folder / _SPILL_META).read_text(encoding="utf-8"))
        self.rows, self.bands, self.keys_sha256 = int(meta["rows"]), int(meta["bands"]), str(meta["keys_sha256"])

    @classmethod
    def open(cls, folder: Path) -> SpilledSurvivors | None:
        """Return the spilled survivors in a folder, or None when there are none complete."""
        try:
            return cls(folder)
        except (OSError, ValueError, KeyError):
            return None

    def __len__(self) -> int:
        return self.rows

    def _band_keys(self) -> npt.NDArray[np.uint64]:
        return _spilled(self.folder, "band_keys.u64", np.uint64, self.bands).reshape(self.rows, self.bands)

    def digest(self) -> str:
        """Return `Survivors.digest` of the same sentences, streamed from the files."""
        digest = hashlib.sha256()
        positions = _spilled(self.folder, "position.u32", np.uint32)
        docs, texts = _SpilledStrings(self.folder, "doc"), _SpilledStrings(self.folder, "text")
        for start in range(0, self.rows, _ROW_CHUNK):
            rows = np.arange(start, min(start + _ROW_CHUNK, self.rows), dtype=np.int64)
            lines = [
                f"{doc}:{position}\0{doc}\0{text}\n"
                for position, doc, text in zip(
                    np.asarray(positions[rows]).tolist(), docs.many(rows), texts.many(rows), strict=True
                )
            ]
            digest.update("".join(lines).encode())
            docs.drop_pages()
            texts.drop_pages()
        with (self.folder / "band_keys.u64").open("rb") as handle:
            for chunk in iter(lambda: handle.read(_COPY_CHUNK), b""):
                digest.update(chunk)
        return digest.hexdigest()[:32]

    def write_columns(self, folder: Path, commit: int) -> None:
        """Write the segment files of these survivors as commit `commit`, band by band (see `_write_segment`)."""
        n, bands = self.rows, self.bands
        band_keys = self._band_keys()
        keys_out = np.lib.format.open_memmap(folder / "band_keys.npy", mode="w+", dtype=np.uint64, shape=(bands, n))
        # Rows in Fortran order, as `np.save` writes the transposed argsort of a segment in memory.
        rows_out = np.lib.format.open_memmap(
            folder / "band_rows.npy", mode="w+", dtype=np.uint32, shape=(bands, n), fortran_order=True
        )
        chunks = [slice(first, first + _ROW_CHUNK) for first in range(0, n, _ROW_CHUNK)]
        for band in range(bands):
            # A band is a column of the row-major spill file, and a row of the Fortran-order
            # output: both are gone through a chunk of rows at a time, their pages let go after
            # each, or every page of both files would count in RSS at once.
            keys = np.empty(n, dtype=np.uint64)
            for chunk in chunks:
                keys[chunk] = band_keys[chunk, band]
                _drop_pages(band_keys)
            order = stable_order(keys)[0]
            keys_out[band] = keys[order]
            keys_out.flush()
            _drop_pages(keys_out)
            rows = order.astype(np.uint32)
            for chunk in chunks:
                rows_out[band, chunk] = rows[chunk]
                rows_out.flush()
                _drop_pages(rows_out)
        del keys_out, rows_out
        for name in ("band_keys.npy", "band_rows.npy"):
            _fsync_file(folder / name)
        _save(folder / "commit.npy", np.full(n, commit, dtype=np.uint32))
        _save(folder / "seq.npy", np.arange(n, dtype=np.uint32))
        _save(folder / "position.npy", np.asarray(_spilled(self.folder, "position.u32", np.uint32)))
        for name in ("doc", "text"):
            ends = np.asarray(_spilled(self.folder, f"{name}.end", np.uint64))
            _save(folder / f"{name}.npy", np.concatenate([np.zeros(1, dtype=np.uint64), ends]))
            with (self.folder / f"{name}.bin").open("rb") as source, (folder / f"{name}.bin").open("wb") as out:
                shutil.copyfileobj(source, out, _COPY_CHUNK)
                out.flush()
                os.fsync(out.fileno())


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


# --------------------------------------------------------------------------------------------------
# Redis index


class RedisReader:
    """The sentences a run is matched against, found through datasketch's MinHashLSH on Redis."""

    def __init__(self, index: RedisIndex, visible: dict[int, RunEntry]) -> None:
        self.index = index
        self.visible = visible

    def candidates(self, signatures: Signatures, band_keys: BandKeys) -> list[list[Published]]:
        found: list[list[Published]] = [[] for _ in range(len(signatures))]
        if not self.visible:
            return found
        for n, row in enumerate(signatures):
            keys = [k for k in self.index.lsh.query(self.index.sketch(row)) if int(k.split(b":")[0]) in self.visible]
            if not keys:
                continue
            for key, value in zip(keys, self.index.client.hmget(self.index.entries_key, keys), strict=True):
                if value is None:
                    continue
                doc, position, text = json.loads(value)
                entry = self.visible[int(key.split(b":")[0])]
                seq = int(key.split(b":")[1])
                found[n].append(Published(f"{doc}:{position}", doc, entry.run, text, (entry.seq, seq)))
        return found


class RedisIndex:
    """The index on a Redis server, through datasketch's `MinHashLSH` Redis storage (no pickle).

    Keys under `<prefix>:`: `manifest` (as the embedded one's, JSON), `lsh...` (datasketch's
    buckets, entry keys `<commit>:<seq>`), `entries` (a hash: entry key -> [doc, position,
    normal form]), `next_commit` (a counter). A commit inserts its entries first and then sets
    the manifest in a transaction that fails if another writer changed it meanwhile.
    """

    def __init__(self, cfg: DedupConfig, hasher: MinHasher, params: dict[str, Any]) -> None:
        self.cfg = cfg
        self.hasher = hasher
        self.params = params
        self.where = f"redis://{cfg.redis_host}:{cfg.redis_port}/{cfg.redis_db} prefix {cfg.redis_prefix!r}"
        connection = {"host": cfg.redis_host, "port": cfg.redis_port, "db": cfg.redis_db}
        self.client = redis.Redis(host=cfg.redis_host, port=cfg.redis_port, db=cfg.redis_db)
        prefix = cfg.redis_prefix
        self.manifest_key = f"{prefix}:manifest"
        self.entries_key = f"{prefix}:entries"
        self.counter_key = f"{prefix}:next_commit"
        try:
            self.manifest = self._read()
        except redis.RedisError as error:
            raise DedupIndexError(f"{self.where}: cannot reach the Redis index ({error})") from error
        self.lsh = MinHashLSH(
            num_perm=cfg.num_perm,
            params=(cfg.lsh_bands, cfg.lsh_rows),
            storage_config={"type": "redis", "basename": f"{prefix}:lsh".encode(), "redis": connection},
            prepickle=False,
        )

    def _read(self) -> Manifest:
        text: bytes | None = self.client.get(self.manifest_key)  # type: ignore[assignment]  # bytes: no decode_responses
        if text is None:
            return Manifest(self.params, (), (), 0)
        manifest = Manifest.from_json(text.decode("utf-8"), self.where)
        check_params(self.where, manifest.params, self.params, "set another dedup.redis_prefix")
        return manifest

    def sketch(self, row: npt.NDArray[Any]) -> MinHash:
        return MinHash(
            num_perm=self.cfg.num_perm,
            seed=self.cfg.seed,
            hashvalues=row,
            permutations=self.hasher.permutations,
            scheme=self.cfg.scheme,
        )

    def reader(self, run: str) -> RedisReader:
        return RedisReader(self, self.manifest.visible(run))

    def state(self, run: str) -> str:
        return self.manifest.state(run)

    def commit(self, run: str, survivors: Survivors | SpilledSurvivors) -> bool:
        if isinstance(survivors, SpilledSurvivors):
            raise DedupIndexError(f"{self.where}: the Redis index needs the survivors' signatures, not spilled ones")
        manifest = self._read()
        digest = survivors.digest()
        own = manifest.run_entry(run)
        if own is not None and own.digest == digest:
            return False
        commit = int(self.client.incr(self.counter_key)) - 1
        assert survivors.signatures is not None, "the Redis index needs the survivors' signatures"
        with self.lsh.insertion_session() as session:
            for seq in range(len(survivors)):
                sketch = self.sketch(survivors.signatures[seq])
                session.insert(f"{commit}:{seq}".encode(), sketch, check_duplication=False)
        pipe = self.client.pipeline(transaction=False)
        for seq, (key, doc, text) in enumerate(zip(survivors.keys, survivors.doc_ids, survivors.texts, strict=True)):
            pipe.hset(self.entries_key, f"{commit}:{seq}", json.dumps([doc, int(key.rpartition(":")[2]), text]))
        pipe.execute()
        with self.client.pipeline() as pipe:
            try:
                pipe.watch(self.manifest_key)  # type: ignore[no-untyped-call]  # redis-py leaves watch unannotated
                current: bytes | None = pipe.get(self.manifest_key)  # type: ignore[assignment]  # immediate mode after watch
                now = Manifest.from_json(current.decode(), self.where) if current is not None else manifest
                if now != manifest:
                    raise DedupIndexError(f"{self.where}: another run committed meanwhile; run again")
                runs = manifest.with_run(run, commit, len(survivors), digest)
                updated = Manifest(self.params, runs, (), commit + 1)
                pipe.multi()
                pipe.set(self.manifest_key, updated.to_json())
                pipe.execute()
            except redis.WatchError as error:
                raise DedupIndexError(f"{self.where}: another run committed meanwhile; run again") from error
        self.manifest = updated
        if own is not None:  # the run's earlier sentences are no longer visible: remove them
            stale = [f"{own.commit}:{seq}".encode() for seq in range(own.sentences)]
            for entry_key in stale:
                if entry_key in self.lsh:
                    self.lsh.remove(entry_key)
            if stale:
                self.client.hdel(self.entries_key, *[k.decode() for k in stale])
        return True


def open_index(cfg: DedupConfig, state_dir: Path) -> SentenceIndex | None:
    """Open the configured index (None for `index = "none"`), refusing one built with other parameters."""
    hasher = MinHasher(cfg)
    params = index_params(hasher)
    # Band keys: the embedded index folds band values itself; datasketch's LSH keys bands by their bytes.
    params["band_key"] = "datasketch-bytes" if cfg.index == "redis" else "pipeline-fmix64"
    if cfg.index == "none":
        return None
    if cfg.index == "redis":
        return RedisIndex(cfg, hasher, params)
    return EmbeddedIndex(state_dir / "dedup", params)
