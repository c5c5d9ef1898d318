"""The whole job over a folder of every input kind a scraper leaves, good and bad: one manifest row
per document, a reason for each one quarantined, the articles in the corpus."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pipeline.evaluation import word_prf
from tests.conftest import DATA, SEEDS, Run, run_pipeline
from tests.samples import ELF, PDF, PNG, WarcPage, compress, eval_page, seeds_jsonl, write_warc

WARC_PAGES = ("0001", "0002", "0003")
HTML_PAGE = "0004"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, dict[str, str]]:
    """Build the folder, run the job on it once; return the run and the expected status by source."""
    root = tmp_path_factory.mktemp("mixed")
    inputs = root / "inputs"
    inputs.mkdir()
    expected: dict[str, str] = {}

    def put(name: str, data: bytes, *statuses: str) -> None:
        (inputs / name).write_bytes(data)
        if len(statuses) == 1:
            expected[name] = statuses[0]
        else:
            expected.update({f"{name}#{n}": status for n, status in enumerate(statuses, 1)})

    seeds = sorted(SEEDS.glob("*.txt"))
    # The dump below holds the same two articles; it sorts first, so its copies survive.
    put("seed-000.txt", seeds[0].read_bytes(), "duplicate")
    put("seed-001.txt.bz2", compress(seeds[1].read_bytes(), "bz2"), "duplicate")
    put("ja-shift-jis.txt", (DATA / "articles" / "ja.txt").read_text("utf-8").encode("shift_jis"), "kept")
    put("fr-cp1252.txt.gz", compress((DATA / "articles" / "fr.txt").read_text("utf-8").encode("cp1252"), "gz"), "kept")
    put(f"{HTML_PAGE}.html", eval_page(HTML_PAGE)[0], "kept")
    pages = [WarcPage(f"https://{n}.example/article", eval_page(n)[0]) for n in WARC_PAGES]
    pages.append(WarcPage("https://img.example/photo.jpg", b"\xff\xd8\xff\xe0" + bytes(300), content_type="image/jpeg"))
    # warcinfo, then (request, response) per page
    put("crawl.warc.gz", write_warc(pages, compress=True), *(["skipped"] + ["skipped", "kept"] * 3 + ["skipped"] * 2))
    dump = seeds_jsonl([b'{"text": "broken', {"no_text": 1}, b'{"text": "caf\xe9"}'])
    put("dump.jsonl.zst", compress(dump, "zst"), "kept", "kept", "kept", "kept", "kept", *["quarantined"] * 3)
    # one of each bad input
    put("empty.txt", b"", "quarantined")
    put("photo.png", PNG, "quarantined")
    put("paper.pdf", PDF, "quarantined")
    put("tool", ELF, "quarantined")
    put("cut.txt.gz", compress(seeds[2].read_bytes() * 5, "gz")[:700], "quarantined")
    put("bomb.txt.gz", gzip.compress(b"\0" * 40_000_000, compresslevel=9), "quarantined")
    put("huge.txt", seeds[3].read_bytes() * 400, "quarantined")  # over max_file_bytes below
    put(
        "nothing.html",
        b"<!DOCTYPE html><html><body><script>app()</script><div id=root></div></body></html>",
        "quarantined",
    )
    warc = write_warc(pages[:2], compress=False, with_requests=False)
    # The first page is the same capture (URL and date) as in crawl.warc.gz: a duplicate.
    put("cut.warc", warc[: len(warc) - 300], "skipped", "duplicate", "quarantined")
    put("notes.warc", b"This file is named like an archive but is not one.\n", "quarantined")

    config = {"input": {"max_file_bytes": 1_000_000}}
    run = run_pipeline(root / "output", "run", "--input", str(inputs), "--workers", "2", config=config)
    return run, expected


def test_exit_status_and_messages_name_each_quarantined_input(mixed: tuple[Run, dict[str, str]]) -> None:
    run, expected = mixed
    assert run.returncode == 3, run.stderr
    for source, status in expected.items():
        if status == "quarantined":
            assert f"quarantined {source}: " in run.stderr


def test_manifest_has_exactly_one_row_per_document(mixed: tuple[Run, dict[str, str]]) -> None:
    run, expected = mixed
    manifest = run.table("manifest")
    sources = [str(row["source"]) for row in manifest]
    assert len(sources) == len(set(sources))
    assert {source: row["status"] for source, row in zip(sources, manifest, strict=True)} == expected
    assert all(row["reason"] for row in manifest if row["status"] != "kept")
    index = [
        json.loads(line)
        for line in (run.output / "quarantine" / "default" / "index.jsonl").read_text("utf-8").splitlines()
    ]
    assert sorted(entry["source"] for entry in index) == sorted(s for s, v in expected.items() if v == "quarantined")
    assert all(Path(entry["bytes"]).exists() for entry in index)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("empty.txt", "empty file"),
        ("photo.png", "binary content"),
        ("paper.pdf", "binary content"),
        ("tool", "binary content"),
        ("cut.txt.gz", "truncated"),
        ("bomb.txt.gz", "decompression bomb"),
        ("huge.txt", "input.max_file_bytes"),
        ("nothing.html", "no main content"),
        ("cut.warc#3", "truncated WARC record"),
        ("notes.warc", "not a WARC file"),
        ("dump.jsonl.zst#6", "line 6: not valid JSON"),
        ("dump.jsonl.zst#7", "line 7: no text field 'text'"),
        ("dump.jsonl.zst#8", "line 8: invalid UTF-8"),
    ],
)
def test_each_bad_input_has_its_own_reason(mixed: tuple[Run, dict[str, str]], source: str, reason: str) -> None:
    run, _ = mixed
    (row,) = [row for row in run.table("manifest") if row["source"] == source]
    assert reason in str(row["reason"])


def test_corpus_holds_the_articles_with_their_metadata(mixed: tuple[Run, dict[str, str]]) -> None:
    run, _ = mixed
    rows = {str(row["source"]): row for row in run.table("data")}
    for n, file_id in enumerate(WARC_PAGES):
        row = rows[f"crawl.warc.gz#{3 + 2 * n}"]
        _, truth = eval_page(file_id)
        assert row["url"] == f"https://{file_id}.example/article"
        assert row["fetched"] == "2025-10-01T12:00:00Z" and row["format"] == "warc" and row["source_id"]
        assert word_prf(str(row["text"]), truth["ground_truth"]["main_content"])[2] > 0.8
    html = rows[f"{HTML_PAGE}.html"]
    assert html["format"] == "html" and html["title"]
    assert rows["ja-shift-jis.txt"]["language"] == "ja" and "気象庁" in str(rows["ja-shift-jis.txt"]["text"])
    assert rows["fr-cp1252.txt.gz"]["language"] == "fr" and "contrôleurs" in str(rows["fr-cp1252.txt.gz"]["text"])
    assert {rows[f"dump.jsonl.zst#{n}"]["source_id"] for n in range(1, 6)} == {p.stem for p in SEEDS.glob("*.txt")}
    assert all(row["language"] == "en" for source, row in rows.items() if source.startswith("dump"))
    manifest = {row["source"]: row for row in run.table("manifest")}
    assert manifest["ja-shift-jis.txt"]["encoding"] in ("shift_jis (detected)", "cp932 (detected)")
    assert str(manifest["crawl.warc.gz#3"]["encoding"]).startswith("utf-8 (declared by the server)")
