"""Property tests: random bytes and random mutations of real files thrown at the input readers.

Real files are the seeds, three WCXB eval pages, a WARC that warcio writes from those pages
(warcinfo, request and response records with a charset in the HTTP Content-Type, a 404 and an
image; uncompressed, gzip per record, zstd whole) and a JSON Lines dump of the seeds, plain and
compressed (gzip, bzip2, zstd). Hypothesis truncates them, flips, overwrites, inserts, deletes,
duplicates and repeats bytes (at random places and at line starts), mutates what a compressed
file holds and compresses it again, and throws pure random bytes, random bytes after real magic
numbers, WARC-shaped records with random fields, JSON Lines built line by line and pages with
any declared charset, under names whose suffix tells the truth or lies, with default and small
input limits.

Every file goes through the real reading path twice: `pipeline.readers.read_input`, and the
Luigi task's own `ReadDocuments(...).read_shard()` (decoding and HTML extraction included).
Whatever the bytes, no exception escapes, and every input is accounted for: at least one record
per file; sources unique, named after the file and numbered in order; a reason for every
rejected unit and a kept copy for every quarantined one; text and a doc_id for every ok one;
nothing after a record that says the rest could not be read. A text or HTML file gives exactly
one record. A JSON Lines file gives one record per non-blank line, named by its line number (a
line over the size limit gives one too), or one record for the whole file when it holds none;
when its stream breaks, the records of the lines read so far and one record naming the first
line not read. A WARC cut anywhere keeps the records before the cut and gives one record for
the cut one.

The last test replays the smallest inputs these properties found breaking those promises; the
comments there name the function at fault. `pytest -s` prints how many files were read
("reader property cases: N").
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.config import InputConfig, load_config
from pipeline.evaluation import DEFAULT_EVAL_DIR
from pipeline.readers import READ_CHUNK, Container, Rejected, detect_container, read_input
from pipeline.tasks import ReadDocuments
from tests.conftest import SEEDS
from tests.samples import compress

if sys.version_info >= (3, 14):
    from compression import zstd
else:  # the same module, backported (as pipeline/readers.py imports it)
    from backports import zstd

Record = dict[str, Any]

CASES: Counter[str] = Counter()
"""Files read per test (each hypothesis example reads one), printed at the end of the module."""

HEAD = 65536  # what the reader peeks at to tell a container (readers._HEAD_BYTES)
EVAL_IDS = ("0437", "4249", "0414")  # small real article pages that trafilatura extracts
SUFFIXES = (".txt", ".html", ".htm", ".warc", ".warc.gz", ".jsonl", ".jsonl.zst", ".ndjson", ".html.gz", ".txt.bz2")
MISLEADING = (".bin", "", ".txt", ".html", ".jsonl", ".warc", ".gz")
LIMITS: dict[str, dict[str, int]] = {
    "default": {},
    "small-documents": {"max_document_bytes": 3000},
    "small-expansion": {"max_expanded_bytes": 20_000},
    "small-files": {"max_file_bytes": 5000},
    "tiny-lines": {"max_document_bytes": 64},
}
MOSTLY_DEFAULT = st.sampled_from(["default", "default", "default", "small-documents", "small-expansion", "small-files"])
MAGICS = (
    b"\x1f\x8b",
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff",
    b"\x28\xb5\x2f\xfd",
    b"BZh9",
    b"BZh91AY&SY",
    b"WARC/1.0\r\n",
    b"WARC/1.1\r\nWARC-Type: response\r\nContent-Length: 40\r\n\r\n",
    b"filedesc://",
    b"{",
    b'{"text": "',
    b"<!DOCTYPE html>",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
)
CHARSET_LABELS = (
    "utf-8",
    "UTF8",
    "iso-8859-1",
    "windows-1252",
    "shift_jis",
    "euc-kr",
    "gb2312",
    "big5",
    "koi8-r",
    "utf-16",
    "utf-16le",
    "utf-32",
    "utf-7",
    "utf-8-sig",
    "x-user-defined",
    "x-bogus",
    "",
    '"utf-8"',
    "utf-8;q=1",
    # names Python's codec registry knows but that are not text encodings, or refuse every input
    "base64",
    "hex",
    "rot13",
    "uu",
    "zlib",
    "bz2",
    "quopri",
    "undefined",
    "punycode",
    "idna",
    "unicode_escape",
    "raw_unicode_escape",
    "cp037",
)
TOKENS: tuple[bytes, ...] = (
    b"\n",
    b"\r\n",
    b"\r",
    b" ",
    b"\x00",
    b"\xff",
    b"[",
    b"{",
    b'{"text": "',
    b'"',
    b"\\",
    b"<div>",
    b"<html>",
    b"<!--",
    b"\xef\xbb\xbf",
    b"WARC/1.0\r\n",
    b"\r\n\r\n",
    b"Content-Length: 99999999\r\n",
    b"WARC-Type: response\r\n",
    b"\x1f\x8b\x08\x00",
    b"BZh9",
    b"\x28\xb5\x2f\xfd",
    *(b'<meta charset="' + label.encode() + b'">' for label in CHARSET_LABELS),
)
_BREAK = re.compile(r"nothing from (?:record|line) (\d+) on could be read$|the rest of the file could not be read$")
_LINE_BREAK = re.compile(r"nothing from line (\d+) on could be read$")
PROPERTY = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module", autouse=True)
def _report_cases() -> Iterator[None]:
    yield
    counts = ", ".join(f"{name} {count}" for name, count in sorted(CASES.items()))
    print(f"\nreader property cases: {sum(CASES.values())} ({counts})")


# --------------------------------------------------------------------------------------------------
# Real files


class Sample:
    """A real input file: its name (the suffix tells its format) and its bytes."""

    def __init__(self, name: str, data: bytes, ends: tuple[int, ...] = ()) -> None:
        self.name, self.data = name, data
        self.ends = ends
        """Where each unit ends in `data` (the WARC records written one by one)."""

    def __repr__(self) -> str:  # hypothesis prints drawn samples; the bytes would drown the report
        return f"Sample({self.name!r}, <{len(self.data)} bytes>)"

    @property
    def stem(self) -> str:
        return self.name.split(".", 1)[0]


def seed_jsonl() -> bytes:
    """A JSON Lines dump of the seeds (text, url, id, title)."""
    lines = []
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text("utf-8")
        record = {"id": path.stem, "url": f"https://news.example/{path.stem}", "title": text[:40], "text": text}
        lines.append(json.dumps(record, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode()


def build_warc(pages: list[tuple[str, bytes]], gzip_records: bool) -> tuple[bytes, tuple[int, ...]]:
    """A WARC written by warcio: warcinfo, then per page a request and a response, then two non-pages.

    Returns the bytes and where each record ends in them.
    """
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=gzip_records)
    ends: list[int] = []

    def write(record: Any) -> None:
        writer.write_record(record)
        ends.append(buffer.tell())

    info = {"software": "tests/test_reader_properties.py", "format": "WARC File Format 1.1"}
    write(writer.create_warcinfo_record("crawl.warc", info))
    html = pages[0][1]
    served = [
        (url, body, content_type, "200 OK")
        for (url, body), content_type in zip(
            pages,
            ["text/html; charset=utf-8", "text/html; charset=ISO-8859-1", 'text/html;charset="UTF-8"'],
            strict=True,
        )
    ]
    # The second page as a latin-1 server sends it: the declared charset has to win.
    url, body, content_type, status = served[1]
    latin1 = body.decode("utf-8", "replace").encode("iso-8859-1", "xmlcharrefreplace")
    served[1] = (url, latin1, content_type, status)
    served += [
        ("https://news.example/gone", html[:2000], "text/html; charset=utf-8", "404 Not Found"),
        ("https://news.example/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "image/png", "200 OK"),
    ]
    for number, (url, body, content_type, status) in enumerate(served):
        request = StatusAndHeaders(
            "GET / HTTP/1.1", [("Host", "news.example"), ("User-Agent", "crawler/1.0")], is_http_request=True
        )
        write(writer.create_warc_record(url, "request", payload=io.BytesIO(b""), http_headers=request))
        headers = StatusAndHeaders(
            status, [("Content-Type", content_type), ("Content-Length", str(len(body)))], protocol="HTTP/1.1"
        )
        record = writer.create_warc_record(
            url,
            "response",
            payload=io.BytesIO(body),
            http_headers=headers,
            warc_headers_dict={"WARC-Date": f"2025-10-{number + 1:02d}T12:00:00Z"},
        )
        write(record)
    return buffer.getvalue(), tuple(ends)


def one_record_warc(content_type: str, body: bytes) -> bytes:
    """A WARC of one HTTP response record."""
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=False)
    headers = StatusAndHeaders("200 OK", [("Content-Type", content_type)], protocol="HTTP/1.1")
    record = writer.create_warc_record(
        "https://news.example/a", "response", payload=io.BytesIO(body), http_headers=headers
    )
    writer.write_record(record)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def seed_samples() -> list[Sample]:
    seeds = [path.read_bytes() for path in sorted(SEEDS.glob("*.txt"))]
    assert len(seeds) >= 4, f"seeds missing under {SEEDS}"
    dump = seed_jsonl()
    samples = [Sample(f"seed{n}.txt", data) for n, data in enumerate(seeds)]
    samples += [
        Sample("seed1.txt.gz", compress(seeds[1], "gz")),
        Sample("seed2.txt.bz2", compress(seeds[2], "bz2")),
        Sample("seed3.txt.zst", compress(seeds[3], "zst")),
        Sample("dump.jsonl", dump),
        Sample("dump.jsonl.gz", compress(dump, "gz")),
        Sample("dump.ndjson.bz2", compress(dump, "bz2")),
        Sample("dump.jsonl.zst", compress(dump, "zst")),
    ]
    return samples


@pytest.fixture(scope="module")
def eval_samples(any_eval_samples: list[Sample]) -> list[Sample]:
    """The samples made of eval pages; skipped without them locally, failed in CI."""
    if not any_eval_samples:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run this check, but the evaluation data is missing at {DEFAULT_EVAL_DIR}")
        pytest.skip(f"evaluation data not found at {DEFAULT_EVAL_DIR}")
    return any_eval_samples


@pytest.fixture(scope="module")
def any_eval_samples() -> list[Sample]:
    """The samples made of eval pages, or none when the eval data is missing."""
    html_dir = DEFAULT_EVAL_DIR / "html"
    if not html_dir.is_dir():
        return []
    files = [html_dir / f"{file_id}.html.gz" for file_id in EVAL_IDS]
    if not all(path.is_file() for path in files):
        files = sorted(html_dir.glob("*.html.gz"))[:3]
    pages = [(f"https://news.example/{path.name.split('.')[0]}", gzip.decompress(path.read_bytes())) for path in files]
    (plain, plain_ends), (per_record, per_record_ends) = build_warc(pages, False), build_warc(pages, True)
    samples = [Sample(f"page{n}.html", body) for n, (_, body) in enumerate(pages)]
    samples += [
        Sample("page0.html.gz", files[0].read_bytes()),
        Sample("crawl.warc", plain, plain_ends),
        Sample("crawl.warc.gz", per_record, per_record_ends),
        Sample("crawl.warc.zst", compress(plain, "zst")),
    ]
    return samples


# --------------------------------------------------------------------------------------------------
# Reading a file both ways and checking what comes out


class Work:
    """A folder for the generated files and one config file per set of limits."""

    def __init__(self, root: Path, configs: dict[str, tuple[str, InputConfig]]) -> None:
        self.root, self.configs = root, configs

    def __repr__(self) -> str:  # printed with every failing example
        return f"Work({str(self.root)!r})"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Work:
    root = tmp_path_factory.mktemp("reader-properties")
    configs: dict[str, tuple[str, InputConfig]] = {}
    for label, values in LIMITS.items():
        if not values:
            configs[label] = ("", InputConfig())
            continue
        path = root / f"{label}.toml"
        path.write_text("[input]\n" + "".join(f"{key} = {value}\n" for key, value in values.items()), "utf-8")
        configs[label] = (str(path), load_config(path).input)
    return Work(root, configs)


def read_file(work: Work, name: str, data: bytes, limits: str = "default") -> list[Record]:
    """Write `data` as `name`, read it with `read_input` and with `ReadDocuments`; check every invariant."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[-1].split(" ")[0].split("[")[0]
    CASES[test] += 1
    config, cfg = work.configs[limits]
    with tempfile.TemporaryDirectory(dir=work.root) as folder:
        inputs, output = Path(folder) / "in", Path(folder) / "out"
        inputs.mkdir()
        (inputs / name).write_bytes(data)
        items = list(read_input(inputs, name, cfg))
        task = ReadDocuments(root=str(inputs), files=[name], output_dir=str(output), config=config)
        records = list(task.read_shard())
        check_records(name, records)
        assert [r["source"] for r in records] == [item.source for item in items], "the two reading paths differ"
        for record, item in zip(records, items, strict=True):
            if isinstance(item, Rejected):
                assert (record["status"], record["reason"]) == (item.status, item.reason)
            if record["status"] == "quarantined":
                kept = record["quarantine"]
                assert kept and Path(kept).exists(), f"{record['source']}: quarantined without a copy ({kept!r})"
    check_accounting(name, data, cfg, records)
    return records


def check_records(name: str, records: list[Record]) -> None:
    """Check the invariants every file's records keep, whatever its bytes."""
    assert records, f"{name}: no record at all"
    sources = [record["source"] for record in records]
    assert len(set(sources)) == len(sources), f"{name}: repeated sources {sources}"
    for record in records:
        source = record["source"]
        assert source == name or (source.startswith(f"{name}#") and source[len(name) + 1 :].isdigit()), source
        assert record["status"] in ("ok", "quarantined", "skipped"), record
        if record["status"] == "ok":
            assert record["text"] and record["text"].strip(), f"{source}: ok record without text: {record!r}"
            assert re.fullmatch(r"[0-9a-f]{16}", record["doc_id"]), record
        else:
            assert record["reason"] and record["reason"].strip(), f"{source}: {record['status']} without a reason"
    if sources != [name]:
        assert name not in sources, f"{name}: a whole-file record among numbered ones: {sources}"
        numbers = [int(source.rsplit("#", 1)[1]) for source in sources]
        assert numbers[0] >= 1 and numbers == sorted(numbers), f"{name}: records out of order: {numbers}"
    for record in records[:-1]:
        assert not _BREAK.search(record["reason"] or ""), f"{name}: records after a break: {sources}"


def expand(data: bytes, cfg: InputConfig) -> tuple[bytes, bool]:
    """Return the bytes a reader can get out of a file, and whether that is all of them (no break)."""
    openers: dict[bytes, Callable[[IO[bytes]], IO[bytes]]] = {
        b"\x1f\x8b": lambda f: cast(IO[bytes], gzip.GzipFile(fileobj=f, mode="rb")),
        b"BZh": lambda f: cast(IO[bytes], bz2.BZ2File(f, mode="rb")),
        b"\x28\xb5\x2f\xfd": lambda f: cast(IO[bytes], zstd.ZstdFile(f, mode="rb")),
    }
    opener = next((open_ for magic, open_ in openers.items() if data[:4].startswith(magic)), None)
    if opener is None:
        whole = len(data) <= cfg.max_expanded_bytes
        return data[: cfg.max_expanded_bytes], whole
    out = bytearray()
    try:
        with opener(io.BytesIO(data)) as stream:
            while chunk := stream.read1(READ_CHUNK):  # type: ignore[attr-defined]
                out += chunk
                if len(out) > cfg.max_expanded_bytes:
                    return bytes(out[: cfg.max_expanded_bytes]), False
    except Exception:
        return bytes(out), False
    return bytes(out), True


def physical_lines(data: bytes, complete: bool) -> list[bytes]:
    """Split on b"\\n" as files are: the part after the last newline is a line only at the real end."""
    pieces = data.split(b"\n")
    rest = pieces.pop()
    return [piece + b"\n" for piece in pieces] + ([rest] if complete and rest else [])


def holds_record(line: bytes, limit: int) -> bool:
    """A line gives a record unless it is blank (a line over the size limit always gives one)."""
    content = line.removesuffix(b"\n").removesuffix(b"\r")  # one line end, as `_lines` strips
    return len(content) > limit or bool(content.strip())


def check_accounting(name: str, data: bytes, cfg: InputConfig, records: list[Record]) -> None:
    """Check the number of records against what the file holds: one per unit, one for a break."""
    sources = [record["source"] for record in records]
    if len(data) > cfg.max_file_bytes:
        assert sources == [name] and "max_file_bytes" in records[0]["reason"]
        return
    expanded, complete = expand(data, cfg)
    container = detect_container(name, expanded[:HEAD])
    if container in (Container.TEXT, Container.HTML):
        assert sources == [name], f"{name}: a {container} file gave {len(records)} records"
    elif container is Container.JSONL:
        check_jsonl_accounting(name, expanded, complete, cfg, records)


def check_jsonl_accounting(name: str, expanded: bytes, complete: bool, cfg: InputConfig, records: list[Record]) -> None:
    """What `_read_jsonl` promises: one record per non-blank line, named by its line number; when
    the stream breaks, the line it broke in says so, or one more record names the next line."""
    pieces = expanded.split(b"\n")
    rest = pieces.pop()
    lines = [piece + b"\n" for piece in pieces] + ([rest] if rest else [])
    wanted = [n for n, line in enumerate(lines, 1) if holds_record(line, cfg.max_document_bytes)]
    got = [int(record["source"].rsplit("#", 1)[1]) for record in records if "#" in record["source"]]
    whole_file = [record["source"] for record in records] == [name]
    summary = f"{name}: records for lines {got}, non-blank lines {wanted}, {len(lines)} lines, complete={complete}"
    if complete:
        assert got == wanted if wanted else whole_file, f"{summary}: lines lost, split or renumbered"
        return
    last = records[-1]
    assert last["status"] == "quarantined", summary
    if not lines:
        assert whole_file, summary
        return
    assert got[: len(wanted)] == wanted, f"{summary}: lines before the break lost or renumbered"
    extra = got[len(wanted) :]
    assert extra in ([], [len(lines) + 1]), f"{summary}: more than one record for the break"
    assert "cut short" in last["reason"] or "could be read" in last["reason"], summary


# --------------------------------------------------------------------------------------------------
# Strategies


@st.composite
def positions(draw: st.DrawFn, data: bytes) -> int:
    """A position in `data`: anywhere, or where a line (a JSON line, a header) or the file starts or ends."""
    lines = [match.end() for match in re.finditer(rb"\n", data[:200_000])]
    starts = [0, len(data), *lines[:500]]
    return draw(st.one_of(st.integers(0, len(data)), st.sampled_from(starts)))


PAYLOADS = st.one_of(st.binary(min_size=1, max_size=64), st.sampled_from(TOKENS))
OPERATIONS = ("truncate", "flip", "overwrite", "insert", "delete", "duplicate", "repeat")


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` after one to four random edits (what disks, networks and broken scrapers do to files)."""
    buffer = bytearray(data)
    for operation in draw(st.lists(st.sampled_from(OPERATIONS), min_size=1, max_size=4)):
        at = draw(positions(bytes(buffer)))
        if operation == "truncate":
            del buffer[at:]
        elif operation == "flip" and buffer:
            for where in draw(st.lists(st.integers(0, len(buffer) - 1), min_size=1, max_size=8)):
                buffer[where] ^= 1 << draw(st.integers(0, 7))
        elif operation == "overwrite":
            chunk = draw(PAYLOADS)
            buffer[at : at + len(chunk)] = chunk
        elif operation == "insert":
            buffer[at:at] = draw(PAYLOADS)
        elif operation == "delete":
            del buffer[at : draw(st.integers(at, len(buffer)))]
        elif operation == "duplicate":
            start = draw(st.integers(0, len(buffer)))
            piece = bytes(buffer[start : draw(st.integers(start, min(len(buffer), start + 20_000)))])
            buffer[at:at] = piece
        elif operation == "repeat":
            start = draw(st.integers(0, len(buffer)))
            token = draw(st.one_of(st.sampled_from(TOKENS), st.just(bytes(buffer[start : start + 8]) or b"x")))
            buffer[at:at] = token * draw(st.integers(2, 3000))
    return bytes(buffer)


def names(sample: Sample) -> st.SearchStrategy[str]:
    """The sample's own name, or its stem under a suffix that may lie about what it holds."""
    return st.one_of(st.just(sample.name), st.sampled_from([sample.stem + suffix for suffix in MISLEADING]))


@st.composite
def warc_like(draw: st.DrawFn) -> bytes:
    """Bytes shaped like WARC records: real header names with random values, random bodies and lengths."""
    out = b""
    for _ in range(draw(st.integers(1, 3))):
        body = draw(st.one_of(st.binary(max_size=300), st.sampled_from([b"", b"<html><body><p>Hi</p></body></html>"])))
        status = draw(st.sampled_from([b"200 OK", b"404 Not Found", b"", b"abc", b"2"]))
        content_type = draw(
            st.one_of(
                st.sampled_from([b"text/html", b"text/plain", b"", b";"]),
                st.sampled_from(CHARSET_LABELS).map(lambda label: b"text/html; charset=" + label.encode()),
            )
        )
        http = b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type + b"\r\n\r\n" + body
        payload = draw(st.sampled_from([http, body, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body]))
        length = draw(st.one_of(st.just(len(payload)), st.integers(0, 5000), st.sampled_from([-1, 10**30])))
        headers = [
            b"WARC-Type: " + draw(st.sampled_from([b"response", b"resource", b"request", b"metadata", b"\xff?"])),
            b"WARC-Target-URI: " + draw(st.sampled_from([b"https://news.example/a", b"", b"\x00\xff"])),
            b"WARC-Date: 2025-10-01T12:00:00Z",
            b"Content-Type: " + draw(st.sampled_from([b"application/http; msgtype=response", b"text/html", b""])),
            b"Content-Length: " + str(length).encode(),
        ]
        headers = draw(st.permutations(headers))[: draw(st.integers(0, len(headers)))]
        version = draw(st.sampled_from([b"WARC/1.0", b"WARC/1.1", b"WARC/0.9", b"WARC/"]))
        out += version + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + payload + b"\r\n\r\n"
    return out


# --------------------------------------------------------------------------------------------------
# Tests


def check_unmutated(work: Work, sample: Sample) -> None:
    """An unmutated sample: every unit read, in order, nothing rejected that is a page."""
    records = read_file(work, sample.name, sample.data)
    statuses = [record["status"] for record in records]
    sources = [record["source"] for record in records]
    if ".warc" in sample.name:
        # warcinfo, then (request, response) for 3 pages, a 404 page and an image.
        assert statuses == ["skipped"] + ["skipped", "ok"] * 3 + ["skipped"] * 4, sample.name
        assert sources == [f"{sample.name}#{n}" for n in range(1, 12)]
        encodings = [r["encoding"] for r in records if r["status"] == "ok"]
        assert encodings[1] == "cp1252 (declared by the server)", encodings
    elif ".jsonl" in sample.name or ".ndjson" in sample.name:
        assert statuses == ["ok"] * 5 and sources == [f"{sample.name}#{n}" for n in range(1, 6)], sources
    else:
        assert statuses == ["ok"] and sources == [sample.name], records


def test_unmutated_seed_files_read_whole(work: Work, seed_samples: list[Sample]) -> None:
    for sample in seed_samples:
        check_unmutated(work, sample)


def test_unmutated_eval_pages_and_warcs_read_whole(work: Work, eval_samples: list[Sample]) -> None:
    for sample in eval_samples:
        check_unmutated(work, sample)


@settings(PROPERTY, max_examples=300)
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(SUFFIXES + MISLEADING), limits=MOSTLY_DEFAULT)
def test_random_bytes(work: Work, data: bytes, suffix: str, limits: str) -> None:
    read_file(work, f"random{suffix}", data, limits)


@settings(PROPERTY, max_examples=240)
@given(
    magic=st.sampled_from(MAGICS),
    tail=st.one_of(st.binary(max_size=2048), st.sampled_from(TOKENS)),
    suffix=st.sampled_from(SUFFIXES + MISLEADING),
    limits=MOSTLY_DEFAULT,
)
def test_random_bytes_after_a_magic_number(work: Work, magic: bytes, tail: bytes, suffix: str, limits: str) -> None:
    read_file(work, f"magic{suffix}", magic + tail, limits)


@settings(PROPERTY, max_examples=200)
@given(data=warc_like(), suffix=st.sampled_from([".warc", ".warc.gz", ".txt", ""]), packed=st.sampled_from(["", "gz"]))
def test_warc_shaped_bytes(work: Work, data: bytes, suffix: str, packed: str) -> None:
    read_file(work, f"shaped{suffix}", compress(data, packed))


@settings(PROPERTY, max_examples=300)
@given(data=st.data(), limits=MOSTLY_DEFAULT)
def test_mutated_seed_files(work: Work, seed_samples: list[Sample], data: st.DataObject, limits: str) -> None:
    sample = data.draw(st.sampled_from(seed_samples), label="sample")
    read_file(work, data.draw(names(sample), label="name"), data.draw(mutations(sample.data), label="bytes"), limits)


@settings(PROPERTY, max_examples=300)
@given(data=st.data(), limits=MOSTLY_DEFAULT)
def test_mutated_eval_pages_and_warcs(work: Work, eval_samples: list[Sample], data: st.DataObject, limits: str) -> None:
    sample = data.draw(st.sampled_from(eval_samples), label="sample")
    read_file(work, data.draw(names(sample), label="name"), data.draw(mutations(sample.data), label="bytes"), limits)


@settings(PROPERTY, max_examples=200)
@given(data=st.data(), packed=st.sampled_from(["gz", "bz2", "zst"]), limits=MOSTLY_DEFAULT)
def test_mutated_contents_inside_valid_compression(
    work: Work,
    seed_samples: list[Sample],
    any_eval_samples: list[Sample],
    data: st.DataObject,
    packed: str,
    limits: str,
) -> None:
    """Mutate what a compressed file holds, then compress it: the damage reaches the parsers intact."""
    plain = [s for s in seed_samples + any_eval_samples if s.name.endswith((".txt", ".html", ".jsonl", ".warc"))]
    sample = data.draw(st.sampled_from(plain), label="sample")
    packed_bytes = compress(data.draw(mutations(sample.data), label="contents"), packed)
    if data.draw(st.booleans(), label="cut"):
        packed_bytes = packed_bytes[: data.draw(st.integers(0, len(packed_bytes)), label="cut at")]
    name = data.draw(st.sampled_from([f"{sample.name}.{packed}", f"{sample.stem}.{packed}", sample.name]), label="name")
    read_file(work, name, packed_bytes, limits)


PRISTINE: dict[str, list[Record]] = {}


def pristine(work: Work, sample: Sample) -> list[Record]:
    """The records of an unmutated sample (read once)."""
    if sample.name not in PRISTINE:
        PRISTINE[sample.name] = read_file(work, sample.name, sample.data)
    return PRISTINE[sample.name]


def same_unit(record: Record, before: Record) -> bool:
    keys = ("source", "status", "reason", "text", "doc_id", "url")
    return all(record[key] == before[key] for key in keys)


@settings(PROPERTY, max_examples=120)
@given(data=st.data())
def test_a_cut_warc_keeps_every_record_before_the_cut(
    work: Work, eval_samples: list[Sample], data: st.DataObject
) -> None:
    """A WARC cut anywhere gives the records before the cut unchanged, then one record for the cut one."""
    sample = data.draw(st.sampled_from([s for s in eval_samples if s.ends]), label="sample")
    whole = pristine(work, sample)
    near_a_boundary = st.sampled_from((0, *sample.ends)).flatmap(
        lambda end: st.integers(max(0, end - 8), min(len(sample.data), end + 8))
    )
    cut = data.draw(st.one_of(st.integers(0, len(sample.data)), near_a_boundary), label="cut at")
    records = read_file(work, sample.name, sample.data[:cut])
    kept = sum(end <= cut for end in sample.ends)
    sources = [record["source"] for record in records]
    where = f"cut at {cut} of {len(sample.data)} ({kept} whole records before it): {sources}"
    if kept == 0 and sources == [sample.name]:  # nothing whole before the cut: one record for the file
        assert records[0]["status"] == "quarantined", where
        return
    assert len(records) >= kept and all(same_unit(r, w) for r, w in zip(records, whole[:kept], strict=False)), (
        f"{where}: records before the cut were lost"
    )
    if cut in sample.ends:
        assert len(records) == kept, where
        return
    assert len(records) > kept, f"{where}: the cut record left no record (lost without a trace)"
    # The cut record is unchanged when only its closing blank lines (or a gzip member's trailer) were
    # cut, else it is not a document; a cut gzip member may add the break after the record.
    assert len(records) <= kept + (1 if sample.name.endswith(".warc") else 2), where
    assert all(same_unit(r, whole[kept]) or r["status"] != "ok" for r in records[kept:]), where


@st.composite
def jsonl_lines(draw: st.DrawFn, limit: int) -> bytes:
    """A JSON Lines file line by line: good and bad records, blank lines, odd line ends, lines near `limit`."""
    out = b""
    count = draw(st.integers(0, 12))
    for number in range(count):
        kind = draw(st.sampled_from(["record", "record", "blank", "junk", "array", "no-text", "bom", "deep"]))
        if kind == "record":
            text = draw(st.text(max_size=40))
            line = json.dumps({"text": text, "url": f"https://news.example/{number}"}).encode()
        elif kind == "blank":
            line = draw(st.sampled_from([b"", b" ", b"\t", b"\r", b" \r ", b"\x0b\x0c"]))
        elif kind == "junk":
            line = draw(st.binary(max_size=40)).replace(b"\n", b"")
        elif kind == "array":
            line = b'["text", 1]'
        elif kind == "no-text":
            line = draw(st.sampled_from([b'{"body": "x"}', b'{"text": 3}', b'{"text": null}', b'{"text": " "}']))
        elif kind == "bom":
            line = b'\xef\xbb\xbf{"text": "with a byte-order mark"}'
        else:
            line = b'{"text": ' + b"[" * draw(st.integers(1, 3000)) + b"]"
        if draw(st.booleans()) and len(line) < limit + 4:  # pad (JSON allows spaces) to just around the limit
            line += b" " * (limit + draw(st.integers(-3, 3)) - len(line))
        end = draw(st.sampled_from([b"\n", b"\n", b"\r\n", b"\r\r\n", b"\r\r\r\n", b"\r"]))
        out += line + (end if number < count - 1 or draw(st.booleans()) else b"")
    return out


@settings(PROPERTY, max_examples=300)
@given(data=st.data(), limits=st.sampled_from(["tiny-lines", "default"]), packed=st.sampled_from(["", "", "gz", "zst"]))
def test_jsonl_lines_are_accounted_for(work: Work, data: st.DataObject, limits: str, packed: str) -> None:
    """One record per non-blank line, numbered by its line; blank lines none; a line over the limit one."""
    limit = work.configs[limits][1].max_document_bytes
    content = data.draw(jsonl_lines(min(limit, 64)), label="contents")
    name = data.draw(st.sampled_from(["dump.jsonl", "dump.ndjson", "dump.txt"]), label="name")
    read_file(work, name + (f".{packed}" if packed else ""), compress(content, packed), limits)


@settings(PROPERTY, max_examples=150)
@given(
    data=st.data(),
    label=st.one_of(st.sampled_from(CHARSET_LABELS), st.text(st.characters(min_codepoint=33, max_codepoint=126))),
    where=st.sampled_from(["server", "meta", "both"]),
)
def test_any_declared_charset(
    work: Work, seed_samples: list[Sample], data: st.DataObject, label: str, where: str
) -> None:
    """A charset label, declared by the server (WARC) or by `<meta>`, never breaks the reading of a page."""
    seed = data.draw(st.sampled_from([s for s in seed_samples if s.name.endswith(".txt")]), label="seed")
    paragraphs = b"".join(b"<p>" + line + b"</p>" for line in seed.data.splitlines() if line.strip())
    meta = b'<meta charset="' + label.encode() + b'">' if where != "server" else b""
    page = (
        b"<html><head>" + meta + b"<title>News</title></head><body><article>" + paragraphs + b"</article></body></html>"
    )
    if where == "meta":
        read_file(work, "page.html", page)
    else:
        read_file(work, "crawl.warc", one_record_warc(f"text/html; charset={label}", page))


# --------------------------------------------------------------------------------------------------
# The smallest inputs the properties above found breaking a promise (see the module docstring).
# Each names the function that was at fault and the outcome it must have now.

_RESOURCE = (
    b"WARC/1.0\r\nWARC-Type: resource\r\nWARC-Target-URI: http://a/\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 5\r\n\r\nhello\r\n\r\n"
)
REPRODUCERS = [
    # ReadDocuments.decode / identify.decode_document: the emptiness check is on bytes before
    # decoding, so a byte-order mark alone, or Unicode spaces, give an ok record with no text.
    pytest.param("bom.txt", b"\xef\xbb\xbf", "default", 1, "quarantined", id="bom-only-file-quarantined"),
    pytest.param("space.txt", b"\xc2\xa0", "default", 1, "quarantined", id="unicode-space-file-quarantined"),
    # readers._json_line_item: json.loads raises RecursionError (not a ValueError) on deep nesting.
    pytest.param("deep.jsonl", b"[" * 1000, "default", 1, "quarantined", id="deep-json-line"),
    # readers._first_line_is_json_object (via detect_container): the same, while telling the container.
    pytest.param("deep.txt", b'{"a":' + b"[" * 1000, "default", 1, "ok", id="deep-json-first-line"),
    # identify.codec_for_label accepts codecs that are not text encodings; decode_document catches
    # only UnicodeDecodeError, so LookupError / UnicodeError escape ReadDocuments.open_item.
    pytest.param("hex.html", b'<meta charset="hex">x', "default", 1, "ok", id="meta-charset-hex"),
    pytest.param("undefined.html", b'<meta charset="undefined">x', "default", 1, "ok", id="meta-charset-undefined"),
    pytest.param(
        "hex.warc",
        one_record_warc("text/html; charset=hex", b"<p>x</p>"),
        "default",
        1,
        "quarantined",
        id="warc-charset-hex",
    ),
    # readers._lines: readline(limit + 2) on a line of exactly `limit` bytes ending in \r\r\n stops before
    # the \n, which then counts as a line of its own: later lines get the wrong number ...
    pytest.param(
        "renumbered.jsonl",
        b'{"text": "a"}' + b" " * 51 + b"\r\r\n" + b'{"text": "b"}\n',
        "tiny-lines",
        2,
        "quarantined",
        id="line-at-limit-ending-crcrlf",
    ),
    # ... and a longer line with \r\r at the limit is cut in two records, the first one read as ok.
    pytest.param(
        "split.jsonl",
        b'{"text": "a"}' + b" " * 51 + b"\r\rXYZ\n",
        "tiny-lines",
        1,
        "quarantined",
        id="line-over-limit-with-crcr",
    ),
    # readers._read_warc: warcio's ArchiveIterator ends quietly when a record's HTTP headers hit the end
    # of the file (it takes the EOFError for the end of the archive): the cut record leaves no record.
    pytest.param(
        "cut.warc",
        b"WARC/1.0\r\nWARC-Type: warcinfo\r\nContent-Length: 0\r\n\r\n\r\n\r\n"
        b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: http://a/\r\nContent-Length: 100\r\n\r\n",
        "default",
        2,
        "skipped",
        id="warc-cut-after-record-header",
    ),
    # readers.read_input: the decompressed stream is read through a 64 KB BufferedReader, so a break
    # in a compressed file throws away every whole record or line in the same 64 KB as the break.
    pytest.param("cut.warc.gz", gzip.compress(_RESOURCE, mtime=0) + b"\x1f\x8b", "default", 2, "ok", id="warc-gz-cut"),
    pytest.param(
        "cut.jsonl.gz", gzip.compress(b'{"text": "a"}\n', mtime=0)[:-4], "default", 2, "ok", id="jsonl-gz-cut"
    ),
]


@pytest.mark.parametrize(("name", "data", "limits", "units", "first"), REPRODUCERS)
def test_inputs_found_by_the_properties(
    work: Work, name: str, data: bytes, limits: str, units: int, first: str
) -> None:
    records = read_file(work, name, data, limits)
    assert len(records) == units, [(r["source"], r["status"], r["reason"]) for r in records]
    assert records[0]["status"] == first, records[0]
