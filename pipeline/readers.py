"""Read input files into documents: plain text, HTML, WARC and JSON Lines, compressed or not.

A file is recognised by its content first (compression magic numbers, the `WARC/` version
line, an HTML start, a JSON object) and by its name second. Every unit a file holds -- the
file itself, each WARC record, each JSON line -- comes out as exactly one item: a
`RawDocument` to process or a `Rejected` unit with its reason, so that the manifest can
account for all of them. A file that breaks half-way (a truncated gzip, a malformed WARC
record) keeps what was read before the break and adds one `Rejected` item for the rest.

Memory is bounded: a document is never read past `input.max_document_bytes`, WARC and JSON
Lines files are streamed, and a decompressed stream stops at `input.max_expanded_bytes` or when
it expands more than `input.max_expansion_ratio` times (decompression bombs).
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import io
import json
import re
import stat
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Final, Literal, cast

from warcio.archiveiterator import ArchiveIterator

from pipeline.config import InputConfig, JsonlFields

if sys.version_info >= (3, 14):
    from compression import zstd
else:  # the same module, backported
    from backports import zstd

Kind = Literal["text", "html"]


class Container(StrEnum):
    """What an input file holds."""

    TEXT = "text"
    HTML = "html"
    WARC = "warc"
    JSONL = "jsonl"


class Compression(StrEnum):
    """How an input file is compressed, told by its first bytes."""

    NONE = "none"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    ZSTD = "zstd"


_MAGIC: Final[tuple[tuple[bytes, Compression], ...]] = (
    (b"\x1f\x8b", Compression.GZIP),
    (b"BZh", Compression.BZIP2),
    (b"\x28\xb5\x2f\xfd", Compression.ZSTD),
)
_COMPRESSION_SUFFIXES: Final = (".gz", ".gzip", ".bz2", ".zst", ".zstd")
_HTML_SUFFIXES: Final = (".html", ".htm", ".xhtml", ".shtml")
_HTML_START = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta)\b", re.I | re.S
)
_HTML_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})
_TEXT_TYPES: Final = frozenset({"text/plain"})
_CHARSET_PARAM = re.compile(r"charset\s*=\s*[\"']?([^\"';\s]+)", re.I)
_HEAD_BYTES: Final = 65536
_RATIO_GRACE_BYTES: Final = 10_000_000
_COPY_LIMIT: Final = 1_000_000
READ_CHUNK: Final = 8192
"""Bytes asked of a decompressor at a time: at a corrupt checksum, at most this much is lost."""


@dataclass(frozen=True)
class RawDocument:
    """One document as read: bytes to decode (files, WARC records) or text (JSON lines)."""

    source: str
    container: Container
    kind: Kind
    data: bytes | None = None
    text: str | None = None
    charset: str | None = None
    url: str | None = None
    title: str | None = None
    date: str | None = None
    fetched: str | None = None
    source_id: str | None = None

    @property
    def size(self) -> int:
        """Return the document's size as read, in bytes or characters."""
        return len(self.data) if self.data is not None else len(self.text or "")

    @property
    def is_part(self) -> bool:
        """Whether the document is one record of a multi-document file."""
        return self.container in (Container.WARC, Container.JSONL)


@dataclass(frozen=True)
class Rejected:
    """A unit that gives no document: quarantined (unreadable) or skipped (not a page)."""

    source: str
    status: Literal["quarantined", "skipped"]
    reason: str
    copy: bytes | None = field(default=None, repr=False)
    """The unit's own bytes (a WARC record's body, a JSON line), kept for the quarantine folder."""
    url: str | None = None
    container: Container = Container.TEXT


Item = RawDocument | Rejected


class ExpansionLimitError(ValueError):
    """A compressed stream expanded past the configured limits."""


class _BoundedStream(io.RawIOBase):
    """A readable stream that stops at the first decompression error or past the expansion limits.

    It never raises: the error is kept in `error` and the stream just ends, so that everything
    decompressed before the break reaches the reader (one `read1` call at a time, which hands
    out each decompressed piece before the next one can fail).
    """

    def __init__(self, inner: IO[bytes], disk: IO[bytes], cfg: InputConfig, compressed: bool) -> None:
        super().__init__()
        self._inner, self._disk, self._cfg, self._compressed = inner, disk, cfg, compressed
        self.expanded = 0
        self.error: BaseException | None = None
        self._pending = b""

    def readable(self) -> bool:
        return True

    def head(self, size: int) -> bytes:
        """Return up to `size` first bytes (fewer only at the end or a break); they are read again."""
        buffer = bytearray(size)
        got = 0
        while got < size and (n := self.readinto(memoryview(buffer)[got:])):
            got += n
        self._pending = bytes(buffer[:got])
        return self._pending

    def readinto(self, buffer: Any) -> int:
        if self._pending:
            size = min(len(buffer), len(self._pending))
            buffer[:size] = self._pending[:size]
            self._pending = self._pending[size:]
            return size
        if self.error is not None:
            return 0
        try:
            chunk = self._inner.read1(min(len(buffer), READ_CHUNK))  # type: ignore[attr-defined]
        except _STREAM_ERRORS as error:
            self.error = error
            return 0
        allowed = self._cfg.max_expanded_bytes - self.expanded
        if len(chunk) > allowed:  # hand out the bytes up to the limit; the stream ends there
            chunk = chunk[:allowed]
            self.error = ExpansionLimitError(
                f"expands past {self._cfg.max_expanded_bytes} bytes (input.max_expanded_bytes); "
                "possible decompression bomb"
            )
        self.expanded += len(chunk)
        if self._compressed and self.expanded > _RATIO_GRACE_BYTES and self.error is None:
            ratio = self.expanded / max(self._disk.tell(), 1)
            if ratio > self._cfg.max_expansion_ratio:
                self.error = ExpansionLimitError(
                    f"expands {ratio:.0f} times (limit {self._cfg.max_expansion_ratio}, "
                    "input.max_expansion_ratio): a decompression bomb"
                )
        buffer[: len(chunk)] = chunk
        return len(chunk)


def sniff_compression(head: bytes) -> Compression:
    """Return the compression told by a file's first bytes.

    >>> sniff_compression(gzip.compress(b"x")), sniff_compression(b"<html>")
    (<Compression.GZIP: 'gzip'>, <Compression.NONE: 'none'>)
    """
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), Compression.NONE)


def looks_like_html(head: bytes | str) -> bool:
    """Whether a document starts the way HTML pages do (a doctype, `<html>`, `<head>`...).

    >>> looks_like_html(b"  <!DOCTYPE html><html>"), looks_like_html("Plain <b>text</b>")
    (True, False)
    """
    sample = head[:_HEAD_BYTES]
    if isinstance(sample, str):
        sample = sample.encode("utf-8", "replace")
    for bom, codec in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if sample.startswith(bom):
            sample = sample[2:].decode(codec, "ignore").encode("ascii", "ignore")
    return bool(_HTML_START.match(sample.removeprefix(b"\xef\xbb\xbf")))


def _base_suffix(name: str) -> str:
    lowered = name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        lowered = lowered.removesuffix(suffix)
    return Path(lowered).suffix


def _first_line_is_json_object(head: bytes) -> bool:
    line = head.lstrip().split(b"\n", 1)[0]
    if not line.startswith(b"{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


def detect_container(name: str, head: bytes) -> Container:
    """Tell what a (decompressed) file holds from its first bytes, then from its name.

    >>> detect_container("x.bin", b"WARC/1.1\\r\\n"), detect_container("a.txt", b"<!doctype html>")
    (<Container.WARC: 'warc'>, <Container.HTML: 'html'>)
    >>> detect_container("dump.jsonl.zst", b'{"text": "hi"}\\n'), detect_container("a.txt", b"Hello")
    (<Container.JSONL: 'jsonl'>, <Container.TEXT: 'text'>)
    """
    suffix = _base_suffix(name)
    stripped = head.lstrip()
    if stripped.startswith(b"WARC/") or suffix in (".warc", ".arc"):
        return Container.WARC
    if suffix in (".jsonl", ".ndjson") or (suffix not in _HTML_SUFFIXES and _first_line_is_json_object(head)):
        return Container.JSONL
    if looks_like_html(head) or (suffix in _HTML_SUFFIXES and b"<" in head):
        return Container.HTML
    return Container.TEXT


def display_name(relative: str) -> str:
    """Return a path for messages and the manifest: bytes that are not UTF-8 shown escaped."""
    return relative.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _open_decompressed(disk: IO[bytes], compression: Compression) -> IO[bytes]:
    if compression is Compression.GZIP:
        return cast(IO[bytes], gzip.GzipFile(fileobj=disk, mode="rb"))
    if compression is Compression.BZIP2:
        return cast(IO[bytes], bz2.BZ2File(disk, mode="rb"))
    if compression is Compression.ZSTD:
        return cast(IO[bytes], zstd.ZstdFile(disk, mode="rb"))
    return disk


_STREAM_ERRORS: Final = (OSError, EOFError, zlib.error, zstd.ZstdError, ExpansionLimitError)


def _error_text(error: BaseException, limit: int = 200) -> str:
    """Return `Type: message` with control characters escaped and the message cut to `limit`."""
    message = str(error)
    message = message if len(message) <= limit else message[:limit] + "..."
    escaped = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)
    return f"{type(error).__name__}: {escaped}"


def _describe(error: BaseException) -> str:
    if isinstance(error, EOFError):
        return "the compressed stream is truncated (it ends before its end-of-stream marker)"
    if isinstance(error, ExpansionLimitError):
        return str(error)
    return _error_text(error)


@dataclass
class _Progress:
    """How far a streamed file was read, for the message when it breaks."""

    units: int = 0


def read_input(root: str | Path, relative: str, cfg: InputConfig) -> Iterator[Item]:
    """Yield every unit of one input file: documents to process and rejected units."""
    source = display_name(relative)
    path = Path(root) / relative
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            # Opening a FIFO would wait for a writer for ever; a socket or a device is no document.
            reason = f"not a regular file but {_file_kind(status.st_mode)}"
            yield Rejected(source, "quarantined", reason, container=guess_container(relative))
            return
        size = status.st_size
        if size > cfg.max_file_bytes:
            reason = f"file of {size} bytes is over the limit of {cfg.max_file_bytes} (input.max_file_bytes)"
            yield Rejected(source, "quarantined", reason, container=guess_container(relative))
            return
        with path.open("rb") as disk:
            compression = sniff_compression(disk.read(4))
            disk.seek(0)
            bounded = _BoundedStream(
                _open_decompressed(disk, compression), disk, cfg, compression is not Compression.NONE
            )
            head = bounded.head(_HEAD_BYTES)
            stream = io.BufferedReader(bounded, buffer_size=_HEAD_BYTES)
            yield from _read_units(stream, bounded, head, relative, source, cfg)
    except OSError as error:  # the file itself: gone, unreadable, a folder
        reason = _describe(error)
        if isinstance(error, FileNotFoundError) and path.is_symlink():
            reason = f"a symbolic link to {path.readlink()}, which does not exist"
        yield Rejected(source, "quarantined", reason, container=guess_container(relative))


def _file_kind(mode: int) -> str:
    """Return what a file that is not a regular file is, for a quarantine reason.

    >>> _file_kind(stat.S_IFIFO), _file_kind(stat.S_IFCHR)
    ('a named pipe (FIFO)', 'a character device')
    """
    kinds = (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    )
    return next((name for test, name in kinds if test(mode)), f"a special file (mode {stat.S_IFMT(mode):o})")


def guess_container(name: str) -> Container:
    """Return what a file holds judging by its name alone (for files that could not be opened)."""
    return detect_container(name, b"")


def _read_units(
    stream: IO[bytes], bounded: _BoundedStream, head: bytes, relative: str, source: str, cfg: InputConfig
) -> Iterator[Item]:
    container = detect_container(relative, head)
    progress = _Progress()
    if container is Container.WARC and not head.lstrip().startswith((b"WARC/", b"filedesc://")):
        reason = (
            _describe(bounded.error)
            if bounded.error
            else "not a WARC file: it does not start with a 'WARC/' version line"
        )
        yield Rejected(source, "quarantined", reason, container=container)
        return
    if container in (Container.WARC, Container.JSONL):
        if container is Container.WARC:
            items = _read_warc(stream, source, cfg, progress, bounded)
        else:
            items = _read_jsonl(stream, source, cfg, progress)
        last: Item | None = None
        for item in items:
            if last is not None:
                yield last
            last = item
        if bounded.error is None:
            if last is not None:
                yield last
            return
        # The stream broke: the unit it broke in (already reported as cut short) says why;
        # otherwise one more item stands for everything after the last unit read.
        problem = _describe(bounded.error)
        unit = "record" if container is Container.WARC else "line"
        if isinstance(last, Rejected) and last.status == "quarantined" and last.source.endswith(f"#{progress.units}"):
            yield dataclasses.replace(last, reason=f"{problem}; {unit} {progress.units} is cut short")
        elif progress.units == 0:
            yield Rejected(source, "quarantined", problem, container=container)
        else:
            if last is not None:
                yield last
            where = f"{source}#{progress.units + 1}"
            yield Rejected(
                where,
                "quarantined",
                f"{problem}; nothing from {unit} {progress.units + 1} on could be read",
                container=container,
            )
        return
    data = read_at_most(stream, cfg.max_document_bytes + 1)
    if bounded.error is not None:
        yield Rejected(source, "quarantined", _describe(bounded.error), container=container)
    elif len(data) > cfg.max_document_bytes:
        yield Rejected(source, "quarantined", _too_large(cfg), container=container)
    else:
        yield RawDocument(source, container, "html" if container is Container.HTML else "text", data=data)


def read_at_most(stream: IO[bytes], size: int, chunk: int = 1 << 20) -> bytes:
    """Return up to `size` bytes of a stream, read a chunk at a time.

    A stream's own `read(size)` may set `size` bytes aside first: a limit meant as "no limit"
    would then fail every document for memory.

    >>> len(read_at_most(io.BytesIO(b"x" * 10), 10**15, chunk=4))
    10
    """
    parts: list[bytes] = []
    left = size
    while left > 0:
        part = stream.read(min(chunk, left))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _too_large(cfg: InputConfig) -> str:
    return f"over {cfg.max_document_bytes} bytes once decompressed (input.max_document_bytes)"


# --------------------------------------------------------------------------------------------------
# WARC


def _read_warc(
    stream: IO[bytes], source: str, cfg: InputConfig, progress: _Progress, bounded: _BoundedStream
) -> Iterator[Item]:
    archive = ArchiveIterator(stream, ensure_http_headers=False)
    iterator = iter(archive)
    while True:
        where = f"{source}#{progress.units + 1}"
        try:
            record = next(iterator)
        except StopIteration:
            # warcio ends quietly on a record cut inside its headers: bytes it never parsed say so.
            if bounded.error is None and bounded.expanded - archive.offset > 4:
                reason = (
                    f"truncated or malformed WARC record at byte {archive.offset}; it and anything after it are lost"
                )
                progress.units += 1
                yield Rejected(where, "quarantined", reason, container=Container.WARC)
            break
        except Exception as error:  # warcio raises many kinds on a malformed record header
            reason = f"malformed WARC record ({_error_text(error)}); the rest of the file could not be read"
            progress.units += 1
            yield Rejected(where, "quarantined", reason, container=Container.WARC)
            return
        progress.units += 1
        try:
            yield _warc_item(record, where, cfg)
        except Exception as error:  # a broken body (bad chunking, bad content-encoding) is the record's own fault
            reason = f"unreadable WARC record ({_error_text(error)})"
            yield Rejected(where, "quarantined", reason, container=Container.WARC)
    if progress.units == 0:
        yield Rejected(source, "quarantined", "no WARC records found", container=Container.WARC)


def _header(headers: Any, name: str) -> str | None:
    value = headers.get_header(name) if headers is not None else None
    return str(value).strip() or None if value is not None else None


def _warc_item(record: Any, where: str, cfg: InputConfig) -> Item:
    record_type = record.rec_type
    if record_type is None or not hasattr(record.raw_stream, "limit"):
        raise ValueError("the record header is truncated or malformed")
    length = _header(record.rec_headers, "Content-Length")
    if length is not None and not length.isdigit():  # warcio reads such a record as empty
        shown = "".join(ch if ch.isprintable() else "?" for ch in length)[:40]
        raise ValueError(f"its Content-Length {shown!r} is not a number of bytes")
    url = _header(record.rec_headers, "WARC-Target-URI")
    if record_type not in ("response", "resource"):
        kind = "".join(ch if ch.isprintable() else "?" for ch in str(record_type))[:40]
        return Rejected(where, "skipped", f"WARC {kind} record, not a page", url=url, container=Container.WARC)
    if record_type == "response":
        status = record.http_headers.get_statuscode() if record.http_headers is not None else None
        if status is None:
            return Rejected(
                where, "skipped", "WARC response record without HTTP headers", url=url, container=Container.WARC
            )
        if not str(status).startswith("2"):
            return Rejected(where, "skipped", f"HTTP status {status}", url=url, container=Container.WARC)
        content_type = _header(record.http_headers, "Content-Type") or ""
    else:
        content_type = _header(record.rec_headers, "Content-Type") or ""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime and mime not in _HTML_TYPES | _TEXT_TYPES:
        return Rejected(where, "skipped", f"content type {mime}, not HTML or text", url=url, container=Container.WARC)
    body = read_at_most(record.content_stream(), cfg.max_document_bytes + 1)
    if len(body) > cfg.max_document_bytes:
        return Rejected(where, "quarantined", _too_large(cfg), url=url, container=Container.WARC)
    missing = record.raw_stream.limit
    if missing > 0:
        return Rejected(
            where,
            "quarantined",
            f"truncated WARC record: the file ends {missing} bytes before the record's Content-Length",
            copy=body[:_COPY_LIMIT],
            url=url,
            container=Container.WARC,
        )
    charset = _CHARSET_PARAM.search(content_type)
    is_html = mime in _HTML_TYPES or (not mime and looks_like_html(body))
    return RawDocument(
        where,
        Container.WARC,
        "html" if is_html else "text",
        data=body,
        charset=charset.group(1) if charset else None,
        url=url,
        fetched=_header(record.rec_headers, "WARC-Date"),
        source_id=_header(record.rec_headers, "WARC-Record-ID"),
    )


# --------------------------------------------------------------------------------------------------
# JSON Lines


def _lines(stream: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """Yield each line of a stream (without its line end), or None for a line longer than `limit`."""
    while True:
        line = stream.readline(limit + 2)
        if not line:
            return
        complete = line.endswith(b"\n")
        content = line[:-1] if complete else line
        content = content.removesuffix(b"\r")
        if len(content) > limit or (not complete and len(line) == limit + 2):
            while not complete:  # skip the rest of the long line
                rest = stream.readline(1 << 20)
                complete = not rest or rest.endswith(b"\n")
            yield None
            continue
        yield content


def _field(record: dict[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split(".") if dotted else ():
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value).strip() or None


def _read_jsonl(stream: IO[bytes], source: str, cfg: InputConfig, progress: _Progress) -> Iterator[Item]:
    fields = cfg.jsonl
    seen_content = False
    for line in _lines(stream, cfg.max_document_bytes):
        progress.units += 1
        where = f"{source}#{progress.units}"
        if line is not None and not line.strip():
            continue  # a blank line holds no record
        seen_content = True
        if line is None:
            yield Rejected(where, "quarantined", f"line {progress.units}: {_too_large(cfg)}", container=Container.JSONL)
            continue
        yield _json_line_item(line.removeprefix(b"\xef\xbb\xbf"), where, progress.units, fields)
    if not seen_content:
        yield Rejected(
            source, "quarantined", "no JSON lines found" if progress.units else "empty file", container=Container.JSONL
        )


def _json_line_item(line: bytes, where: str, number: int, fields: JsonlFields) -> Item:
    def reject(problem: str) -> Rejected:
        return Rejected(
            where, "quarantined", f"line {number}: {problem}", copy=line[:_COPY_LIMIT], container=Container.JSONL
        )

    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError as error:
        return reject(f"invalid UTF-8 at byte {error.start} (JSON Lines are UTF-8)")
    try:
        record = json.loads(decoded)
    except (ValueError, RecursionError) as error:
        return reject(f"not valid JSON: {_error_text(error)}")
    if not isinstance(record, dict):
        return reject(f"a JSON {type(record).__name__}, not an object")
    text = _field(record, fields.text)
    if not isinstance(text, str):
        found = "no" if text is None else f"a {type(text).__name__} in the"
        return reject(f"{found} text field '{fields.text}' (input.jsonl.text)")
    values = {
        name: _scalar(_field(record, key))
        for name, key in (("url", fields.url), ("title", fields.title), ("date", fields.date), ("id", fields.id))
    }
    if "\\u" in decoded:  # only a \u escape can put a lone surrogate in valid UTF-8 JSON
        for name, value in (("text", text), *values.items()):
            surrogate = _LONE_SURROGATE.search(value or "")
            if surrogate:
                code = f"U+{ord(surrogate.group()):04X}"
                return reject(f"the {name} field holds a lone surrogate {code} at character {surrogate.start()}")
    is_html = fields.content == "html" or (fields.content == "auto" and looks_like_html(text))
    return RawDocument(
        where,
        Container.JSONL,
        "html" if is_html else "text",
        text=text,
        url=values["url"],
        title=values["title"],
        date=values["date"],
        source_id=values["id"],
    )


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""A UTF-16 surrogate left unpaired by a JSON escape (json.loads pairs the valid ones): not a character."""
