"""Real sample inputs built for tests: WARC archives of the WCXB pages, JSON Lines dumps of the
seeds, compressed variants, the same article in several encodings, and one of each bad input."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.evaluation import DEFAULT_EVAL_DIR
from tests.conftest import SEEDS

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd


def eval_dir() -> Path:
    """Return the WCXB folder; skip without it locally, fail in CI (where it must be present)."""
    if not (DEFAULT_EVAL_DIR / "html").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"evaluation data missing at {DEFAULT_EVAL_DIR}")
        pytest.skip(f"evaluation data not found at {DEFAULT_EVAL_DIR}")
    return DEFAULT_EVAL_DIR


def eval_page(file_id: str) -> tuple[bytes, dict[str, object]]:
    """Return a WCXB page's served bytes and its ground-truth record."""
    root = eval_dir()
    html = gzip.decompress((root / "html" / f"{file_id}.html.gz").read_bytes())
    truth = json.loads((root / "ground-truth" / f"{file_id}.json").read_text(encoding="utf-8"))
    return html, truth


@dataclass(frozen=True)
class WarcPage:
    """A page to put in a WARC: URL, body bytes and the HTTP Content-Type."""

    url: str
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: str = "200 OK"


def write_warc(pages: list[WarcPage], compress: bool, with_requests: bool = True) -> bytes:
    """Return a WARC (warcinfo, then per page a request and a response record) written by warcio."""
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=compress)
    writer.write_record(writer.create_warcinfo_record("test.warc", {"software": "tests/samples.py"}))
    for page in pages:
        if with_requests:
            request = StatusAndHeaders("GET / HTTP/1.1", [("Host", "example")], is_http_request=True)
            writer.write_record(
                writer.create_warc_record(page.url, "request", payload=io.BytesIO(b""), http_headers=request)
            )
        headers = StatusAndHeaders(page.status, [("Content-Type", page.content_type)], protocol="HTTP/1.1")
        record = writer.create_warc_record(
            page.url,
            "response",
            payload=io.BytesIO(page.body),
            http_headers=headers,
            warc_headers_dict={"WARC-Date": "2025-10-01T12:00:00Z"},
        )
        writer.write_record(record)
    return buffer.getvalue()


def compress(data: bytes, kind: str) -> bytes:
    """Compress bytes as gzip, bz2 or zstd ("" leaves them as they are)."""
    if kind == "gz":
        return gzip.compress(data, mtime=0)
    if kind == "bz2":
        return bz2.compress(data)
    if kind == "zst":
        return bytes(zstd.compress(data))
    if kind:
        raise ValueError(f"unknown compression {kind!r}")
    return data


def seeds_jsonl(extra: list[object] | None = None) -> bytes:
    """Return the seeds as a JSON Lines dump (text, url, id, title fields), then `extra` lines."""
    lines = []
    for path in sorted(SEEDS.glob("*.txt")):
        record = {"id": path.stem, "url": f"https://news.example/{path.stem}", "text": path.read_text("utf-8")}
        lines.append(json.dumps(record, ensure_ascii=False).encode())
    for item in extra or ():
        lines.append(item if isinstance(item, bytes) else json.dumps(item).encode())
    return b"\n".join(lines) + b"\n"


# Bytes of real binary formats, enough of them for a reader to see what they are.
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00\x1f\xf3\xffa" + bytes(
    range(256)
)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nstream\n" + bytes(range(256)) * 4
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00>\x00\x01\x00\x00\x00" + bytes(range(256)) * 2
