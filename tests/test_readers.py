"""Input readers: every format, compression and encoding, and every kind of bad input."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.config import InputConfig, JsonlFields
from pipeline.readers import Container, RawDocument, Rejected, read_input
from pipeline.steps.identify import UnreadableInputError, decode_document
from pipeline.tasks import ReadDocuments
from tests.conftest import DATA, SEEDS
from tests.samples import ELF, PDF, PNG, WarcPage, compress, eval_page, seeds_jsonl, write_warc

ARTICLES = DATA / "articles"
SEED = sorted(SEEDS.glob("*.txt"))[0]


def read_all(folder: Path, name: str, data: bytes, cfg: InputConfig | None = None) -> list[RawDocument | Rejected]:
    (folder / name).write_bytes(data)
    return list(read_input(folder, name, cfg or InputConfig()))


# --------------------------------------------------------------------------------------------------
# Formats and compression


@pytest.mark.parametrize("kind", ["", "gz", "bz2", "zst"])
@pytest.mark.parametrize("name", ["article.txt", "article", "article.data"])
def test_compressed_text_reads_the_same_bytes(tmp_path: Path, kind: str, name: str) -> None:
    raw = SEED.read_bytes()
    data = compress(raw, kind) if kind else raw
    items = read_all(tmp_path, f"{name}.{kind}" if kind else name, data)
    assert len(items) == 1
    item = items[0]
    assert isinstance(item, RawDocument)
    assert (item.data, item.kind, item.container) == (raw, "text", Container.TEXT)


def test_html_is_told_by_content_even_under_a_txt_name(tmp_path: Path) -> None:
    html, _ = eval_page("0001")
    for name in ("page.html", "page.txt", "page.html.gz", "page"):
        data = compress(html, "gz") if name.endswith(".gz") else html
        (item,) = read_all(tmp_path, name, data)
        assert isinstance(item, RawDocument) and item.kind == "html", name


def test_warc_response_records_become_documents_with_their_metadata(tmp_path: Path) -> None:
    pages = [WarcPage(f"https://site.example/{n}", eval_page(n)[0]) for n in ("0001", "0002")]
    pages += [
        WarcPage("https://site.example/missing", b"<html>gone</html>", status="404 Not Found"),
        WarcPage("https://site.example/logo.png", PNG, content_type="image/png"),
    ]
    for compressed in (True, False):
        items = read_all(tmp_path, "crawl.warc.gz" if compressed else "crawl.warc", write_warc(pages, compressed))
        # warcinfo + (request, response) per page: every record is accounted for, in order.
        assert [item.source.rsplit("#", 1)[1] for item in items] == [str(n) for n in range(1, 10)]
        documents = [item for item in items if isinstance(item, RawDocument)]
        assert [d.url for d in documents] == ["https://site.example/0001", "https://site.example/0002"]
        assert all(d.kind == "html" and d.charset == "utf-8" and d.fetched == "2025-10-01T12:00:00Z" for d in documents)
        assert documents[0].data == pages[0].body
        reasons = [item.reason for item in items if isinstance(item, Rejected)]
        assert all(item.status == "skipped" for item in items if isinstance(item, Rejected))
        assert reasons[0] == "WARC warcinfo record, not a page"
        assert "HTTP status 404" in reasons and "content type image/png, not HTML or text" in reasons


def test_truncated_warc_keeps_the_records_before_the_cut(tmp_path: Path) -> None:
    pages = [WarcPage(f"https://site.example/{n}", eval_page(n)[0]) for n in ("0001", "0002", "0003")]
    whole = write_warc(pages, compress=True, with_requests=False)
    items = read_all(tmp_path, "cut.warc.gz", whole[: len(whole) * 2 // 3])
    documents = [item for item in items if isinstance(item, RawDocument)]
    assert documents and documents[0].url == "https://site.example/0001"
    last = items[-1]
    assert isinstance(last, Rejected) and last.status == "quarantined"
    assert "truncated" in last.reason

    plain = write_warc(pages, compress=False, with_requests=False)
    items = read_all(tmp_path, "cut.warc", plain[: len(plain) - 500])
    last = items[-1]
    assert isinstance(last, Rejected) and "truncated WARC record" in last.reason and last.copy


def test_a_record_with_a_broken_compressed_body_is_quarantined_and_the_next_is_read(tmp_path: Path) -> None:
    good = eval_page("0001")[0]
    # A response whose body says Content-Encoding: gzip but is not a gzip stream past its magic.
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=True)
    headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html"), ("Content-Encoding", "gzip")], "HTTP/1.1")
    body = io.BytesIO(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4)
    writer.write_record(
        writer.create_warc_record("https://site.example/broken", "response", body, http_headers=headers)
    )
    rest = write_warc([WarcPage("https://site.example/good", good)], compress=True, with_requests=False)
    (tmp_path / "mixed.warc.gz").write_bytes(buffer.getvalue() + rest)
    task = ReadDocuments(root=str(tmp_path), files=["mixed.warc.gz"], output_dir=str(tmp_path / "out"))
    records = list(task.read_shard())
    # warcio hands back the undecodable body as it is; decoding sees bytes, not text.
    assert [r["status"] for r in records] == ["quarantined", "skipped", "ok"]  # the second WARC's warcinfo
    assert "binary content" in records[0]["reason"] and records[2]["url"] == "https://site.example/good"


def test_malformed_warc_record_is_quarantined_after_the_good_ones(tmp_path: Path) -> None:
    good = write_warc([WarcPage("https://site.example/a", eval_page("0001")[0])], compress=False, with_requests=False)
    items = read_all(tmp_path, "bad.warc", good + b"HTTP/1.1 200 OK\r\n\r\n<html>")
    assert isinstance(items[1], RawDocument)
    assert isinstance(items[-1], Rejected) and items[-1].status == "quarantined"
    assert items[-1].source == "bad.warc#3"
    (only,) = read_all(tmp_path, "not.warc", b"This is not an archive at all.\n" * 5)
    assert isinstance(only, Rejected) and only.reason.startswith("not a WARC file")
    # warcio reads a record whose Content-Length is not a number as empty: it is malformed, not skipped.
    bad_length = b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: abc\r\n\r\nhello"
    items = read_all(tmp_path, "length.warc", good + bad_length)
    assert isinstance(items[1], RawDocument)
    assert isinstance(items[-1], Rejected) and items[-1].status == "quarantined"
    assert "its Content-Length 'abc' is not a number of bytes" in items[-1].reason


def test_jsonl_lines_fields_and_bad_lines(tmp_path: Path) -> None:
    extra: list[object] = [
        b"",
        b'{"text": "unterminated',
        b"[1, 2]",
        {"url": "https://news.example/no-text"},
        b'{"text": "caf\xe9 au lait"}',
        {"meta": {"link": "https://news.example/nested"}, "body": {"html": "<html><body><p>x</p></body></html>"}},
    ]
    data = compress(seeds_jsonl(extra), "zst")
    items = read_all(tmp_path, "dump.jsonl.zst", data)
    seeds = sorted(SEEDS.glob("*.txt"))
    assert [i.source for i in items] == [f"dump.jsonl.zst#{n}" for n in range(1, len(seeds) + 7) if n != len(seeds) + 1]
    first = items[0]
    assert isinstance(first, RawDocument) and first.source_id == seeds[0].stem and first.text
    assert first.url == f"https://news.example/{seeds[0].stem}"
    bad = {item.source.rsplit("#", 1)[1]: item.reason for item in items if isinstance(item, Rejected)}
    n = len(seeds)
    assert bad[str(n + 2)].startswith(f"line {n + 2}: not valid JSON")
    assert bad[str(n + 3)] == f"line {n + 3}: a JSON list, not an object"
    assert bad[str(n + 4)] == f"line {n + 4}: no text field 'text' (input.jsonl.text)"
    assert bad[str(n + 5)] == f"line {n + 5}: invalid UTF-8 at byte 13 (JSON Lines are UTF-8)"
    assert bad[str(n + 6)].startswith(f"line {n + 6}: no text field")

    nested = InputConfig(jsonl=JsonlFields(text="body.html", url="meta.link"))
    last = list(read_input(tmp_path, "dump.jsonl.zst", nested))[-1]
    assert isinstance(last, RawDocument) and last.kind == "html" and last.url == "https://news.example/nested"


def test_jsonl_lone_surrogate_escapes_are_quarantined_and_pairs_kept(tmp_path: Path) -> None:
    lines = [
        rb'{"text": "Hello \ud800 world, a sentence that has enough words."}',
        rb'{"text": "A fine article body.", "title": "Tail \uDC01"}',
        rb'{"text": "A smile \ud83d\ude00 in a well formed pair."}',
    ]
    items = read_all(tmp_path, "dump.jsonl", b"\n".join(lines) + b"\n")
    first, second, third = items
    assert (
        isinstance(first, Rejected)
        and first.reason == "line 1: the text field holds a lone surrogate U+D800 at character 6"
    )
    assert (
        isinstance(second, Rejected)
        and second.reason == "line 2: the title field holds a lone surrogate U+DC01 at character 5"
    )
    assert isinstance(third, RawDocument) and third.text == "A smile \U0001f600 in a well formed pair."


# --------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("image.png", PNG, "binary content"),
        ("paper.pdf", PDF, "binary content"),
        ("program", ELF, "binary content"),
        ("blank.txt", b"  \n\t\n", "only whitespace"),
    ],
)
def test_unreadable_files_give_a_reason(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    items = read_all(tmp_path, name, data)
    problems = [i.reason for i in items if isinstance(i, Rejected)]
    for item in items:
        if isinstance(item, RawDocument):
            with pytest.raises(UnreadableInputError) as error:
                decode_document(item.data or b"")
            problems.append(str(error.value))
    assert len(problems) == 1 and reason in problems[0]


def test_truncated_gzip_and_bombs_are_quarantined(tmp_path: Path) -> None:
    whole = compress(SEED.read_bytes() * 20, "gz")
    (item,) = read_all(tmp_path, "cut.txt.gz", whole[: len(whole) // 2])
    assert isinstance(item, Rejected) and "truncated" in item.reason

    bomb = gzip.compress(b"\0" * 60_000_000, compresslevel=9)
    (item,) = read_all(tmp_path, "bomb.txt.gz", bomb)
    assert isinstance(item, Rejected) and "decompression bomb" in item.reason

    small = InputConfig(max_file_bytes=1000)
    (item,) = read_all(tmp_path, "big.txt", SEED.read_bytes(), small)
    assert isinstance(item, Rejected) and "input.max_file_bytes" in item.reason

    lines = seeds_jsonl([{"text": "x" * 50_000}, {"text": "after the long line"}])
    items = read_all(tmp_path, "long.jsonl", lines, InputConfig(max_document_bytes=40_000))
    reasons = [i.reason for i in items if isinstance(i, Rejected)]
    assert len(reasons) == 1 and "input.max_document_bytes" in reasons[0]
    assert isinstance(items[-1], RawDocument) and items[-1].text == "after the long line"


# --------------------------------------------------------------------------------------------------
# Encodings


@pytest.mark.parametrize(
    ("article", "encodings"),
    [
        ("fr.txt", ["utf-8", "cp1252", "latin-1", "gb18030", "utf-16", "utf-8-sig"]),
        ("ja.txt", ["utf-8", "shift_jis", "euc-jp", "gb18030", "utf-16"]),
        (SEED.name, ["utf-8", "cp1252", "gb18030", "utf-16"]),
    ],
)
def test_the_same_article_in_several_encodings_decodes_the_same(article: str, encodings: list[str]) -> None:
    text = (ARTICLES / article if (ARTICLES / article).exists() else SEED).read_text(encoding="utf-8")
    for encoding in encodings:
        decoded = decode_document(text.encode(encoding))
        assert decoded.text == text, f"{article} in {encoding}: read as {decoded.label}"


def test_english_with_a_few_accented_letters_in_cp1252_is_not_read_as_central_european() -> None:
    # charset-normalizer's own best breaks a near tie by list order: cp1250, where "à" is "ŕ".
    text = SEED.read_text(encoding="utf-8").replace(" a decision", " à decision").replace(" the ", " thé ", 4)
    assert "à" in text and "thé" in text
    decoded = decode_document(b'<html><head><meta charset="utf-8"></head><body>' + text.encode("cp1252"), markup=True)
    assert decoded.label == "cp1252 (detected)" and text in decoded.text


def _legacy_encoded_paragraphs() -> list[tuple[str, str, str, bytes]]:
    """News paragraphs in 30 languages, each in every legacy code page its sites used (not valid UTF-8)."""
    battery = json.loads((DATA / "encoding_battery.json").read_text(encoding="utf-8"))
    cases = []
    for name, text in battery["paragraphs"].items():
        for encoding in battery["encodings"][name.split("-")[0]]:
            try:
                data = text.encode(encoding)
                data.decode("utf-8")
            except UnicodeEncodeError:  # a letter the code page lacks
                continue
            except UnicodeDecodeError:  # not valid UTF-8: detection decides
                cases.append((name, encoding, text, data))
    return cases


def test_legacy_code_pages_without_a_declaration_decode_back_exactly() -> None:
    # charset-normalizer's best (and the rule before this one: 179 of 264) read ISO-8859-2 Polish as
    # ISO-8859-10 ("Zaŋóģæ"), Baltic and Finnish text as windows-1252 or HP Roman-8.
    cases = _legacy_encoded_paragraphs()
    wrong = []
    for name, encoding, text, data in cases:
        decoded = decode_document(data)
        if decoded.text != text:
            wrong.append((name, encoding, decoded.encoding))
    assert len(cases) > 250 and len(wrong) <= 0.06 * len(cases), wrong
    families = {(name.split("-")[0], encoding) for name, encoding, _, _ in cases}
    for language, encoding in (
        ("pl", "iso8859_2"),
        ("cs", "cp1250"),
        ("lt", "cp1257"),
        ("lt", "iso8859_4"),
        ("fi", "cp1252"),
    ):
        assert (language, encoding) in families
        assert not [case for case in wrong if case[0].startswith(language + "-") and case[1] == encoding], wrong


def test_declared_charsets_in_order() -> None:
    french = (ARTICLES / "fr.txt").read_text(encoding="utf-8")
    body = french.encode("cp1252")
    # The server's header wins over detection; a BOM wins over the header.
    assert decode_document(body, declared="windows-1252").label == "cp1252 (declared by the server)"
    assert decode_document(b"\xef\xbb\xbf" + french.encode(), declared="latin-1").text == french
    # <meta charset> speaks for HTML only; a declaration the bytes break is not trusted.
    page = b'<html><head><meta charset="iso-8859-1"></head><body>' + body + b"</body></html>"
    assert decode_document(page, markup=True).label == "cp1252 (declared by <meta>)"
    wrong = b'<meta charset="utf-8">' + body
    decoded = decode_document(wrong, markup=True)
    assert "\ufffd" not in decoded.text and decoded.how == "detected"
    assert decode_document(french.encode("shift_jis", "ignore"), declared="x-unknown").text
    with pytest.raises(UnreadableInputError, match="byte-order mark"):
        decode_document(b"\xff\xfe" + b"\x00\xd8" * 3)


def test_mostly_utf8_with_a_few_bad_bytes_keeps_the_text() -> None:
    french = (ARTICLES / "fr.txt").read_text(encoding="utf-8").encode()
    broken = french[:300] + b"\xff" + french[300:]
    decoded = decode_document(broken)
    assert decoded.label == "utf-8 (invalid bytes replaced)"
    assert decoded.text.count("\ufffd") == 1 and "contrôleurs" in decoded.text
