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
import gzip
import io
import json
import re
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


Item = RawDocument | Rejected


class ExpansionLimitError(ValueError):
    """A compressed stream expanded past the configured limits."""


class _BoundedStream(io.RawIOBase):
    """A readable stream that refuses to expand past a size or a ratio to the bytes on disk."""

    def __init__(self, inner: IO[bytes], disk: IO[bytes], cfg: InputConfig, compressed: bool) -> None:
        super().__init__()
        self._inner, self._disk, self._cfg, self._compressed = inner, disk, cfg, compressed
        self.expanded = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._inner.read(len(buffer))
        self.expanded += len(chunk)
        if self.expanded > self._cfg.max_expanded_bytes:
            raise ExpansionLimitError(
                f"expands past {self._cfg.max_expanded_bytes} bytes (input.max_expanded_bytes); "
                "possible decompression bomb"
            )
        if self._compressed and self.expanded > _RATIO_GRACE_BYTES:
            ratio = self.expanded / max(self._disk.tell(), 1)
            if ratio > self._cfg.max_expansion_ratio:
                raise ExpansionLimitError(
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
    except ValueError:
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
    progress = _Progress()
    container = Container.TEXT
    try:
        size = path.stat().st_size
        if size > cfg.max_file_bytes:
            yield Rejected(
                source,
                "quarantined",
                f"file of {size} bytes is over the limit of {cfg.max_file_bytes} (input.max_file_bytes)",
            )
            return
        with path.open("rb") as disk:
            compression = sniff_compression(disk.read(4))
            disk.seek(0)
            bounded = _BoundedStream(
                _open_decompressed(disk, compression), disk, cfg, compression is not Compression.NONE
            )
            stream = io.BufferedReader(bounded, buffer_size=_HEAD_BYTES)
            head = stream.peek(_HEAD_BYTES)[:_HEAD_BYTES]
            container = detect_container(relative, head)
            if container is Container.WARC and not head.lstrip().startswith((b"WARC/", b"filedesc://")):
                yield Rejected(source, "quarantined", "not a WARC file: it does not start with a 'WARC/' version line")
            elif container is Container.WARC:
                yield from _read_warc(stream, source, cfg, progress)
            elif container is Container.JSONL:
                yield from _read_jsonl(stream, source, cfg, progress)
            else:
                data = stream.read(cfg.max_document_bytes + 1)
                progress.units = 1
                if len(data) > cfg.max_document_bytes:
                    yield Rejected(source, "quarantined", _too_large(cfg))
                    return
                kind: Kind = "html" if container is Container.HTML else "text"
                yield RawDocument(source, container, kind, data=data)
    except _STREAM_ERRORS as error:
        if progress.units == 0:
            yield Rejected(source, "quarantined", _describe(error))
        else:
            where = f"{source}#{progress.units + 1}"
            unit = "record" if container is Container.WARC else "line"
            yield Rejected(
                where, "quarantined", f"{_describe(error)}; nothing from {unit} {progress.units + 1} on could be read"
            )


def _too_large(cfg: InputConfig) -> str:
    return f"over {cfg.max_document_bytes} bytes once decompressed (input.max_document_bytes)"


# --------------------------------------------------------------------------------------------------
# WARC


def _read_warc(stream: IO[bytes], source: str, cfg: InputConfig, progress: _Progress) -> Iterator[Item]:
    iterator = iter(ArchiveIterator(stream, ensure_http_headers=False))
    while True:
        where = f"{source}#{progress.units + 1}"
        try:
            record = next(iterator)
        except StopIteration:
            break
        except _STREAM_ERRORS:
            raise
        except Exception as error:  # warcio raises many kinds on a malformed record header
            yield Rejected(
                where,
                "quarantined",
                f"malformed WARC record ({type(error).__name__}: {error}); the rest of the file could not be read",
            )
            return
        progress.units += 1
        try:
            yield _warc_item(record, where, cfg)
        except _STREAM_ERRORS:
            raise
        except Exception as error:  # a broken body (bad chunking, bad content-encoding) is the record's own fault
            yield Rejected(where, "quarantined", f"unreadable WARC record ({_error_text(error)})")
    if progress.units == 0:
        yield Rejected(source, "quarantined", "no WARC records found")


def _header(headers: Any, name: str) -> str | None:
    value = headers.get_header(name) if headers is not None else None
    return str(value).strip() or None if value is not None else None


def _warc_item(record: Any, where: str, cfg: InputConfig) -> Item:
    record_type = record.rec_type
    if record_type is None or not hasattr(record.raw_stream, "limit"):
        raise ValueError("the record header is truncated or malformed")
    url = _header(record.rec_headers, "WARC-Target-URI")
    if record_type not in ("response", "resource"):
        kind = "".join(ch if ch.isprintable() else "?" for ch in str(record_type))[:40]
        return Rejected(where, "skipped", f"WARC {kind} record, not a page", url=url)
    if record_type == "response":
        status = record.http_headers.get_statuscode() if record.http_headers is not None else None
        if status is None:
            return Rejected(where, "skipped", "WARC response record without HTTP headers", url=url)
        if not str(status).startswith("2"):
            return Rejected(where, "skipped", f"HTTP status {status}", url=url)
        content_type = _header(record.http_headers, "Content-Type") or ""
    else:
        content_type = _header(record.rec_headers, "Content-Type") or ""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime and mime not in _HTML_TYPES | _TEXT_TYPES:
        return Rejected(where, "skipped", f"content type {mime}, not HTML or text", url=url)
    body = record.content_stream().read(cfg.max_document_bytes + 1)
    if len(body) > cfg.max_document_bytes:
        return Rejected(where, "quarantined", _too_large(cfg), url=url)
    missing = record.raw_stream.limit
    if missing > 0:
        return Rejected(
            where,
            "quarantined",
            f"truncated WARC record: the file ends {missing} bytes before the record's Content-Length",
            copy=body[:_COPY_LIMIT],
            url=url,
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
    """Yield each line of a stream (without its end), or None for a line longer than `limit`."""
    while True:
        line = stream.readline(limit + 2)
        if not line:
            return
        if len(line.rstrip(b"\r\n")) > limit:
            while line and not line.endswith(b"\n"):  # skip the rest of the long line
                line = stream.readline(1 << 20)
            yield None
            continue
        yield line.rstrip(b"\r\n")


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
            yield Rejected(where, "quarantined", f"line {progress.units}: {_too_large(cfg)}")
            continue
        yield _json_line_item(line.removeprefix(b"\xef\xbb\xbf"), where, progress.units, fields)
    if not seen_content:
        yield Rejected(source, "quarantined", "no JSON lines found" if progress.units else "empty file")


def _json_line_item(line: bytes, where: str, number: int, fields: JsonlFields) -> Item:
    def reject(problem: str) -> Rejected:
        return Rejected(where, "quarantined", f"line {number}: {problem}", copy=line[:_COPY_LIMIT])

    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError as error:
        return reject(f"invalid UTF-8 at byte {error.start} (JSON Lines are UTF-8)")
    try:
        record = json.loads(decoded)
    except ValueError as error:
        return reject(f"not valid JSON: {error}")
    if not isinstance(record, dict):
        return reject(f"a JSON {type(record).__name__}, not an object")
    text = _field(record, fields.text)
    if not isinstance(text, str):
        found = "no" if text is None else f"a {type(text).__name__} in the"
        return reject(f"{found} text field '{fields.text}' (input.jsonl.text)")
    is_html = fields.content == "html" or (fields.content == "auto" and looks_like_html(text))
    return RawDocument(
        where,
        Container.JSONL,
        "html" if is_html else "text",
        text=text,
        url=_scalar(_field(record, fields.url)),
        title=_scalar(_field(record, fields.title)),
        date=_scalar(_field(record, fields.date)),
        source_id=_scalar(_field(record, fields.id)),
    )
