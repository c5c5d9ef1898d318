"""Atomic file and folder writes, the run lock, and the zstd JSON Lines format of intermediate stage outputs."""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, TextIO

import luigi.format
import luigi.local_target
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

if sys.version_info >= (3, 14):
    from compression import zstd
else:  # the same module, backported
    from backports import zstd

TMP_MARK = ".tmp-"

STAGE_SUFFIX: Final = ".jsonl.zst"
"""Suffix of the per-shard stage outputs: JSON Lines in one zstd frame (read them with `zstdcat`)."""

STAGE_ZSTD_LEVEL: Final = 3
"""zstd's default level: stage records shrink ~9x (removed lines repeat) at ~350 MB/s of input."""


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()
"""Mode of every file written here: what `open()` would give, not mkstemp's owner-only 0600."""


def _temporary_beside(path: Path) -> tuple[int, Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}", dir=path.parent)
    # The corpus is read by other users' projects: keep the umask's permissions.
    os.fchmod(fd, _FILE_MODE)
    return fd, Path(name)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while the block runs (then restore it as it was).

    For whole-run stages that build many small acyclic objects (rows, spans, strings): each
    allocation burst sets off collections that walk every object alive, ever more of them, and
    free nothing (reference counting frees these). Cycles made meanwhile are collected after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write bytes to a temporary file beside `path`, sync it, then rename it into place."""
    fd, tmp = _temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (see `atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _parquet_options(compression: str) -> dict[str, Any]:
    """Return the Parquet writer settings of every file written here: equal rows, equal bytes."""
    return {
        "compression": None if compression == "none" else compression,
        "write_statistics": True,
        "use_dictionary": False,
        "store_schema": True,
    }


def atomic_write_parquet(path: Path, table: pa.Table, compression: str) -> None:
    """Write a Parquet file atomically, with settings that make equal tables equal bytes."""
    fd, tmp = _temporary_beside(path)
    os.close(fd)
    try:
        pq.write_table(table, tmp, **_parquet_options(compression))
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class AtomicParquetWriter:
    """Write a Parquet file a row group at a time into a temporary file beside `path`; `commit` renames it into place.

    Only one row group is in memory at a time, whatever the size of the file. Until `commit`
    nothing is under `path` (a failure or a kill leaves the hidden temporary, which
    `remove_orphaned_temporaries` or the writer's own staging folder clears). The settings are
    `atomic_write_parquet`'s, so the same row groups in the same order give the same bytes.
    """

    def __init__(self, path: Path, schema: pa.Schema, compression: str) -> None:
        self.path = path
        fd, self._tmp = _temporary_beside(path)
        os.close(fd)
        try:
            self._writer = pq.ParquetWriter(self._tmp, schema, **_parquet_options(compression))
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise

    def write(self, table: pa.Table) -> None:
        """Append the rows of `table` as one row group (a table of no rows gives an empty one)."""
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))

    def commit(self) -> None:
        """Finish the file, sync it and rename it into place."""
        try:
            self._writer.close()
            with self._tmp.open("rb") as handle:
                os.fsync(handle.fileno())
            self._tmp.replace(self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise


class _PipeClosingZstdFile(zstd.ZstdFile):
    """A zstd stream over a Luigi pipe that closes the pipe with it; a write that fails is not committed.

    Luigi's atomic file renames its temporary into place when closed, and only then; on an
    exception it is left unclosed, and Luigi removes the temporary.
    """

    def __init__(self, pipe: Any, writing: bool) -> None:
        if writing:
            super().__init__(pipe, "w", level=STAGE_ZSTD_LEVEL)
        else:
            super().__init__(pipe, "r")
        self._pipe = pipe

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._pipe.close()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
            return
        try:
            super().close()
        finally:
            self._pipe.__exit__(kind, error, trace)


class ZstdFormat(luigi.format.Format):
    """Luigi format of zstd-compressed bytes (`luigi.format.UTF8 >> ZstdFormat()` for text)."""

    input = "bytes"
    output = "bytes"

    @classmethod
    def pipe_reader(cls, input_pipe: Any) -> zstd.ZstdFile:
        return _PipeClosingZstdFile(input_pipe, writing=False)

    @classmethod
    def pipe_writer(cls, output_pipe: Any) -> zstd.ZstdFile:
        return _PipeClosingZstdFile(output_pipe, writing=True)


class _SyncedAtomicFile(luigi.local_target.atomic_file):
    """Luigi's atomic file, synced to disk before it is renamed into place, the rename then made durable."""

    def move_to_final_destination(self) -> None:
        temporary, final = Path(self.tmp_path), Path(self.path)
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        temporary.replace(final)
        fsync_folder(final.parent)


class SyncedLocalTarget(luigi.LocalTarget):
    """A `luigi.LocalTarget` whose file, written with `open("w")`, is on disk before its name is (every task output).

    Luigi renames its temporary file over the target without syncing it first, so a machine that
    loses power soon after can come back with the name on an empty or cut file, which every later
    run would take for a finished output. Syncing costs ~2 ms more a 3 MB shard file here.
    """

    def open(self, mode: str = "r") -> Any:
        # Luigi's target and atomic-file methods carry no annotations.
        if mode.replace("b", "").replace("t", "") == "w":
            self.makedirs()  # type: ignore[no-untyped-call]
            return self.format.pipe_writer(_SyncedAtomicFile(self.path))  # type: ignore[no-untyped-call]
        return super().open(mode)  # type: ignore[no-untyped-call]


STAGE_FORMAT: Final = luigi.format.UTF8 >> ZstdFormat()
"""Luigi format of the per-shard stage outputs (see `STAGE_SUFFIX`)."""


def open_stage_output(path: Path | str) -> TextIO:
    """Open a per-shard stage output for reading text lines (see `read_records`).

    Runs published before stage outputs were compressed name plain `.jsonl` files in their run
    index; those are read as they are.
    """
    if not str(path).endswith(STAGE_SUFFIX):
        return Path(path).open(encoding="utf-8")
    return zstd.open(path, "rt", encoding="utf-8")


STAGE_READ_ERRORS: Final = (OSError, EOFError, ValueError, zstd.ZstdError)
"""What reading a missing, cut or corrupt stage output raises (a lost file, a cut frame, bad JSON)."""


UNREADABLE_SUFFIX: Final = ".unreadable"
"""Added to the name of a stage output that a task found it cannot read (see `set_aside_unreadable`)."""


class UnreadableOutputError(RuntimeError):
    """A stage output that cannot be read (cut, corrupt, gone): set aside, so that the next run makes it again."""


def set_aside_unreadable(path: Path, error: BaseException) -> UnreadableOutputError:
    """Rename an output that cannot be read to `<name>.unreadable` and return the error that says so.

    Its task is then no longer complete, so the next run makes the file again rather than failing
    on it every time (a file cut by a crash, for one); the bad file stays there to look at.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / "s.jsonl.zst").write_bytes(b"cut")
    3
    >>> str(set_aside_unreadable(folder / "s.jsonl.zst", EOFError("cut frame"))).endswith(
    ...     "cannot be read (EOFError: cut frame); set aside as s.jsonl.zst.unreadable: the next run makes it again")
    True
    """
    aside = path.with_name(path.name + UNREADABLE_SUFFIX)
    try:
        path.replace(aside)
    except FileNotFoundError:
        done = "it is gone"
    except OSError as failure:
        done = f"it could not be set aside ({failure}), delete it"
    else:
        done = f"set aside as {aside.name}"
    return UnreadableOutputError(
        f"{path} cannot be read ({type(error).__name__}: {error}); {done}: the next run makes it again"
    )


def stage_records(
    path: Path,
    read: Callable[[TextIO], Iterator[dict[str, Any]]] | None = None,
    unreadable: Callable[[Path, BaseException], Exception] = set_aside_unreadable,
) -> Iterator[dict[str, Any]]:
    """Yield the records `read` (default `read_records`) finds in a stage output.

    An output that cannot be read raises what `unreadable` makes of it: by default it is set
    aside (`set_aside_unreadable`). Only reading is guarded: what the caller does with a record
    raises as it would.
    """
    try:
        with open_stage_output(path) as handle:
            yield from (read or read_records)(handle)
    except STAGE_READ_ERRORS as error:
        raise unreadable(path, error) from error


def count_stage_records(path: Path | str) -> int:
    """Return the number of records in a per-shard stage output (for progress percentages).

    Reading it whole also checks it: one that cannot be read is set aside (`set_aside_unreadable`).
    """
    try:
        with zstd.open(path, "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except STAGE_READ_ERRORS as error:
        raise set_aside_unreadable(Path(path), error) from error


def dump_record(record: dict[str, Any]) -> str:
    """Return one JSON Lines line for a record (compact, UTF-8 kept readable, key order kept).

    Stage records are the largest thing each per-shard task reads and writes: orjson writes
    them in a fraction of the time the json module takes (with `ensure_ascii=False` and no
    spaces), and the same text, but for floats, which may be spelled otherwise (`0.00001` for
    `1e-05`) and read back as the same number. NumPy numbers are written as Python's. What
    orjson refuses (a lone surrogate, an integer beyond 64 bits) the json module writes. A
    record must hold no NaN or infinity (orjson writes null) and, to be read back as written,
    no integer beyond 64 bits (see `load_record`).

    >>> dump_record({"text": "Café «ok»\\n", "n": 2, "score": 0.5, "cuts": ("a",), "url": None})
    '{"text":"Café «ok»\\\\n","n":2,"score":0.5,"cuts":["a"],"url":null}\\n'
    """
    try:
        return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY).decode("utf-8") + "\n"
    except orjson.JSONEncodeError:
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_records(handle: IO[str], records: Iterable[dict[str, Any]]) -> None:
    """Write records as JSON Lines to an open text handle."""
    for record in records:
        handle.write(dump_record(record))


def load_record(line: str) -> Any:
    """Return the value of one JSON Lines line: what `json.loads` gives, in a fraction of its time.

    orjson reads the line; what it refuses (a lone surrogate, NaN) the json module reads. The
    one difference: orjson reads an integer beyond 64 bits as a float.
    """
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


def read_records(handle: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Read JSON Lines records from an open text handle."""
    for line in handle:
        if line.strip():
            yield load_record(line)


_DECODER = json.JSONDecoder()
_scan_value = _DECODER.scan_once  # type: ignore[attr-defined]  # what `raw_decode` calls: one value at an index
_scan_string = json.decoder.scanstring  # type: ignore[attr-defined]


def read_record_fields(handle: Iterable[str], leading: Collection[str], last: str) -> Iterator[dict[str, Any]]:
    """Read JSON Lines records from an open text handle, decoding only some of their members.

    Yields, for each record, its members named in `leading`, which must come before any large
    member (they are decoded in order from the record's start until all are found), and its
    member `last`, which must be its last member (decoded from the record's end); the members
    between are not decoded. A record that is not so laid out is decoded whole (all its
    members are yielded). Either way the named members have the values `read_records` gives
    (integers within 64 bits, as records hold).
    """
    wanted = frozenset(leading)
    tail = f',"{last}":'
    for line in handle:
        if not line.strip():
            continue
        record = _decode_fields(line, wanted, tail) if len(line) > 512 else None
        yield load_record(line) if record is None else record


def _decode_fields(line: str, leading: frozenset[str], tail: str) -> dict[str, Any] | None:
    """Return the members `leading` and the last member (named in `tail`) of a record, or None if laid out otherwise.

    The last member is found by its `,"name":`, searched from the end: outside a string no
    such text can open anything but a member, and its value is the record's last when only the
    record's closing brace follows it.
    """
    record: dict[str, Any] = {}
    try:
        if not line.startswith("{"):
            return None
        at = 1
        while len(record) < len(leading):
            if line[at] != '"':
                return None
            key, at = _scan_string(line, at + 1)
            if line[at] != ":":
                return None
            value, at = _scan_value(line, at + 1)
            if key in leading:
                record[key] = value
            if line[at] != ",":
                return None
            at += 1
        start = line.rfind(tail)
        if start < at - 1:
            return None
        value, end = _scan_value(line, start + len(tail))
    except (ValueError, IndexError, StopIteration):
        return None
    if line[end:].strip() != "}":
        return None
    record[tail[2:-2]] = value
    return record


def remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete files in `folder` that are not named in `keep` (old parts, orphaned temporaries)."""
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and path.name not in keep:
                path.unlink()


def unchanged_for(path: Path, seconds: float) -> bool:
    """Return whether a file, or a folder and everything in it, has not been modified for `seconds` (gone: True).

    Anything is unchanged for no time at all, whatever its clock says (a file server's may run ahead).

    >>> fresh = Path(tempfile.mkdtemp())
    >>> unchanged_for(Path("/no/such/path"), 3600), unchanged_for(fresh, 3600), unchanged_for(fresh, 0)
    (True, False, True)
    """
    if seconds <= 0:
        return True
    since = time.time() - seconds
    try:
        if path.lstat().st_mtime > since:
            return False
    except OSError:
        return True
    if path.is_dir() and not path.is_symlink():
        for folder, _, files in os.walk(path):
            for name in files:
                with contextlib.suppress(OSError):  # removed meanwhile
                    if (Path(folder) / name).lstat().st_mtime > since:
                        return False
    return True


def remove_orphaned_temporaries(root: Path, idle_seconds: float = 0.0) -> list[Path]:
    """Delete the temporary files and folders that killed writers left under `root`; return them.

    Those are the hidden `.<name>.tmp-*` files and folders written here (and the dedup index's
    `.tmp-*` segment folders) and Luigi's `*-luigi-tmp-*` files. Another process's temporaries
    are work in progress: call it while holding the output folder's lock, or with
    `idle_seconds`, to remove only those unchanged for that long.
    """
    removed: list[Path] = []
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            if (name.startswith(".") and TMP_MARK in name) or "-luigi-tmp-" in name:
                path = Path(folder) / name
                if not unchanged_for(path, idle_seconds):
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
        dirs[:] = [d for d in dirs if (Path(folder) / d).exists()]
    return removed


def fsync_folder(folder: Path) -> None:
    """Make the renames inside a folder durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def staging_folder(final: Path) -> Path:
    """Return an empty hidden folder beside `final` to fill before `replace_folder` swaps it in.

    Whatever an interrupted earlier attempt left there is removed first. The leading dot keeps
    it out of `pyarrow.dataset` and Hugging Face `datasets` listings of the parent folder.
    """
    staging = final.parent / f".{final.name}{TMP_MARK}staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def replace_folder(staging: Path, final: Path) -> None:
    """Put a filled staging folder in place of `final` with renames: `final` is never half-written.

    An existing `final` is first renamed aside, then removed once the new one is in place; a
    crash in between leaves no folder under the final name (never a mix of old and new files),
    and the next attempt cleans the leftover up.
    """
    aside = final.parent / f".{final.name}{TMP_MARK}old"
    shutil.rmtree(aside, ignore_errors=True)
    if final.exists():
        final.rename(aside)
    staging.rename(final)
    fsync_folder(final.parent)
    shutil.rmtree(aside, ignore_errors=True)


class LockedError(RuntimeError):
    """Another process holds the lock."""


@contextlib.contextmanager
def exclusive_lock(path: Path, holder: str) -> Iterator[None]:
    """Hold an exclusive lock on `path` (flock) while the block runs, or raise LockedError at once.

    The file keeps a line saying who holds it (`holder`, the pid and the start time) for the
    message the next process gets. The kernel drops the lock when the holder exits, however it
    exits, so a killed run never leaves a stale lock behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            who = handle.read().strip() or "another process"
            raise LockedError(f"{path} is held by {who}") from None
        try:
            handle.seek(0)
            handle.truncate()
            started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            handle.write(f"{holder} (pid {os.getpid()}, started {started})\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
