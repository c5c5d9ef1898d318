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
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import mmap
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
import redis
from datasketch import MinHash, MinHashLSH

from pipeline.config import DedupConfig
from pipeline.steps.dedup import (
    SIGNING_BATCH,
    BandKeys,
    MinHasher,
    Published,
    PublishedSentences,
    Signatures,
    match_band_keys,
    normalise_sentences,
    sort_bands,
)
from pipeline.storage import atomic_write_text

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

    def commit(self, run: str, survivors: Survivors) -> bool:
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


def _write_segment(folder: Path, columns: _Columns) -> None:
    """Write a segment folder atomically: into a temporary folder, synced, then renamed."""
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    sorted_keys, rows = sort_bands(columns.band_keys)
    _save(tmp / "band_keys.npy", np.ascontiguousarray(sorted_keys))
    _save(tmp / "band_rows.npy", rows.astype(np.uint32))
    _save(tmp / "commit.npy", columns.commit)
    _save(tmp / "seq.npy", columns.seq)
    _save(tmp / "position.npy", columns.position)
    _Strings.write(tmp, "doc", columns.docs)
    _Strings.write(tmp, "text", columns.texts)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    _fsync_dir(folder.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        order = np.argsort(merged_keys, kind="stable")
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
    _fsync_dir(folder.parent)
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

    def commit(self, run: str, survivors: Survivors) -> bool:
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
                columns = _Columns(
                    np.ascontiguousarray(survivors.band_keys),
                    np.full(len(survivors), commit, dtype=np.uint32),
                    np.arange(len(survivors), dtype=np.uint32),
                    np.array([int(k.rpartition(":")[2]) for k in survivors.keys], dtype=np.uint32),
                    list(survivors.doc_ids),
                    list(survivors.texts),
                )
                name = f"seg-{commit:08d}"
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

    def commit(self, run: str, survivors: Survivors) -> bool:
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
