"""Atomic file writes and the JSON Lines format of intermediate stage outputs."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

TMP_MARK = ".tmp-"


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


def atomic_write_parquet(path: Path, table: pa.Table, compression: str) -> None:
    """Write a Parquet file atomically, with settings that make equal tables equal bytes."""
    fd, tmp = _temporary_beside(path)
    os.close(fd)
    try:
        pq.write_table(
            table,
            tmp,
            compression=None if compression == "none" else compression,
            write_statistics=True,
            use_dictionary=False,
            store_schema=True,
        )
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def dump_record(record: dict[str, Any]) -> str:
    """Return one JSON Lines line for a record (UTF-8 kept readable, key order kept)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_records(handle: IO[str], records: Iterable[dict[str, Any]]) -> None:
    """Write records as JSON Lines to an open text handle."""
    for record in records:
        handle.write(dump_record(record))


def read_records(handle: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Read JSON Lines records from an open text handle."""
    for line in handle:
        if line.strip():
            yield json.loads(line)


def remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete files in `folder` that are not named in `keep` (old parts, orphaned temporaries)."""
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and path.name not in keep:
                path.unlink()
