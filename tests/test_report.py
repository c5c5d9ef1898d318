"""The HTML report every run writes: what it holds, that it escapes scraped text, that it stays bounded."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest.mock import patch

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

import pipeline.spill
from pipeline.report import DocumentView, RemovalTally, ReportData, StageCount, render_report, survivor_key
from pipeline.spans import Span
from pipeline.spill import SpillStore
from tests.conftest import REPO, SEEDS, Run, run_pipeline, to_toml


def _page(run: Run) -> str:
    return (run.output / "report" / "default" / "index.html").read_text(encoding="utf-8")


def test_seeds_report_has_every_part(seeds_run: Run) -> None:
    page = _page(seeds_run)
    assert page.startswith("<!DOCTYPE html>")
    for section in ("counts", "rules", "lines", "quarantine", "duplicates", "documents"):
        assert f'<section id="{section}">' in page, section
    assert page.count('<svg class="chart"') == 3
    rules = re.search(r'<figure id="chart-rules">(.*?)</figure>', page, re.S)
    fired = {(row["stage"], row["rule"]) for row in seeds_run.table("removals")}
    assert rules is not None and rules.group(1).count("<rect") == len(fired) >= 11  # one bar per rule that fired
    assert "<title>19 removals by related_block (strip_boilerplate)" in rules.group(1)
    for seed in sorted(p.name for p in SEEDS.glob("*.txt")):
        assert f'data-source="{seed}"' in page
    assert page.count('<article class="doc"') == 5
    # A duplicate sentence of seeds/001, struck through with what it duplicates on hover.
    title = "exact_duplicate: sentence 1, Jaccard 1.00, of sentence a92c86f19c262270:0 in document a92c86f19c262270"
    assert f'<del class="k-duplicate" title="{title} (001_d07a408cf5f191c8.txt), batch default">' in page
    assert '<del class="k-rule" title="ad_block: line 9">by Taboola</del>' in page
    assert '<td class="n">3</td><td class="n">1</td><td class="t">related_block</td>' in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page


def test_run_index_names_the_stage_outputs_the_corpus_was_built_from(seeds_run: Run) -> None:
    index = json.loads((seeds_run.output / "report" / "default" / "run.json").read_text(encoding="utf-8"))
    assert index["corpus"] == "corpus" and index["plan"].startswith("00_plan/plan-")
    (shard,) = index["shards"]
    assert shard["repaired"].startswith("02_repaired/") and shard["sentences"].startswith("04_sentences/")
    assert all((seeds_run.output / shard[kind]).is_file() for kind in ("repaired", "sentences"))
    marker = json.loads((seeds_run.corpus / "batches" / "default.json").read_text(encoding="utf-8"))
    assert index["fingerprint"] == marker["fingerprint"]


def test_report_is_bounded_by_its_config(tmp_path: Path) -> None:
    config = {"report": {"max_documents": 2, "max_document_chars": 300, "max_rows": 3}}
    run = run_pipeline(tmp_path / "out", "run", "--input", str(SEEDS), config=config)
    assert run.returncode == 0, run.stderr
    page = _page(run)
    assert page.count('<article class="doc"') == 2 and "The first 2 of 5 documents have a view" in page
    assert "more characters not shown (report.max_document_chars)" in page
    lines = re.search(r'<section id="lines">(.*?)</section>', page, re.S)
    assert lines is not None and lines.group(1).count("<tr>") == 4  # header and max_rows rows
    assert len(page) < len(_page(run_pipeline(tmp_path / "full", "run", "--input", str(SEEDS))))


def test_document_text_is_escaped() -> None:
    hostile = 'Hello <script>alert("x")</script> & <img src=x onerror=alert(1)>\nAD <b>here</b>'
    row = {"stage": "strip_boilerplate", "rule": "ad_block", "text": "AD <b>here</b>", "position": 1}
    manifest = {"id": "0123456789abcdef", "source": 'a"><script>.txt', "status": "kept", "url": "javascript:x"}
    view = DocumentView(0, manifest, hostile, 0, (Span(len(hostile) - 14, len(hostile), "rule", row),), (), 1)
    data = ReportData(
        title="<t>",
        facts=(("plan", "<p>"),),
        statuses=(("kept", 1),),
        stages=(StageCount("read", 1, len(hostile), "<none>"),),
        rules=(),
        lines=(),
        clusters=(),
        document_duplicates=(),
        quarantined=(("q<1>", "bad <x>", "/tmp/<y>"),),
        quarantined_total=1,
        documents=(view,),
        documents_total=1,
        max_document_chars=1000,
    )
    page = render_report(data)
    assert "<script>alert" not in page and "<img" not in page and "<b>here" not in page and "<t>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img" in page
    assert 'data-source="a&quot;&gt;&lt;script&gt;.txt"' in page
    assert '<del class="k-rule" title="ad_block: line 1">AD &lt;b&gt;here&lt;/b&gt;</del>' in page
    assert page.count("<script>") == 1  # the page's own


# --------------------------------------------------------------------------- counting removals by table

_STAGES = ["strip_boilerplate", "find_duplicates", "None"]
_RULES = ["site_repeated", "line_classifier", "ad_block", "None"]
_TEXTS = ["Menu", " Menu", "Menu\n", "Share\u00a0this", "Share this", "", "It rained.", " It rained. "]
_SOURCES = ["a.txt", "b.txt", "c.txt", "None", ""]
_ROW = st.fixed_dictionaries(
    {
        "source": st.sampled_from([*_SOURCES, None]),
        "stage": st.sampled_from([*_STAGES, None]),
        "rule": st.sampled_from([*_RULES, None]),
        "text": st.sampled_from([*_TEXTS, None]),
        "duplicate_of": st.sampled_from(["d1:0", "d1:3", "None", None]),
        "duplicate_of_run": st.sampled_from(["2026-11-01", "default", None]),
    }
)
_TALLY_COLUMNS = ("source", "stage", "rule", "text", "duplicate_of", "duplicate_of_run")
_TALLY_SCHEMA = pa.schema([(name, pa.string()) for name in _TALLY_COLUMNS])


def _tally_state(tally: RemovalTally) -> dict[str, object]:
    return {
        "rules": tally.rule_counts(),
        "lines": tally.top_lines(1000),
        "clusters": tally.top_clusters(1000),
        "cluster_counts": list(tally.clusters.items()),
        "line_counts": list(tally.lines.items()),
        "duplicate_chars": [(source, n) for source, n in tally.duplicate_chars.items() if n],
        "line_rules": list(tally.line_rules.items()),
    }


def _tally_both_ways(
    rows: list[dict[str, object]], cuts: list[int], store: SpillStore | None = None
) -> tuple[RemovalTally, RemovalTally]:
    """Count rows one by one in memory, and as tables cut at `cuts` into `store` (spilling if it is given)."""
    by_row, by_table = RemovalTally(), RemovalTally(store)
    for row in rows:
        by_row.add(row)
    table = pa.Table.from_pylist(rows, schema=_TALLY_SCHEMA)
    for start, end in itertools.pairwise([0, *sorted(set(cuts)), len(rows)]):
        by_table.add_table(table.slice(start, max(0, end - start)))
    return by_row, by_table


@settings(max_examples=200, deadline=None)
@given(st.lists(_ROW, max_size=40), st.lists(st.integers(0, 40), max_size=3), st.sampled_from([None, 1, 2, 5]))
def test_a_table_of_removals_counts_as_its_rows_do(
    rows: list[dict[str, object]], cuts: list[int], budget: int | None
) -> None:
    """`add_table` (Arrow and numpy) gives what `add` gives row by row, in tables cut anywhere (mid-document too),
    with its counts in memory or spilled to disk a few keys at a time."""
    cuts = [cut for cut in cuts if cut <= len(rows)]
    with tempfile.TemporaryDirectory() as scratch, SpillStore(Path(scratch)) as store:
        with patch.object(pipeline.spill, "SPILL_ENTRIES", budget or pipeline.spill.SPILL_ENTRIES):
            by_row, by_table = _tally_both_ways(rows, cuts, store if budget else None)
        assert _tally_state(by_table) == _tally_state(by_row)
        assert by_table.lines.spilled == (budget is not None and len(by_row.lines) >= budget)
        keys = by_row.top_clusters(1000)
        for tally in (by_row, by_table):
            tally.collect_cluster_documents([pa.Table.from_pylist(rows, schema=_TALLY_SCHEMA)], keys)
            for key in keys:
                sources = {
                    str(r["source"])
                    for r in rows
                    if r["stage"] == "find_duplicates" and survivor_key(r["duplicate_of"], r["duplicate_of_run"]) == key
                }
                assert tally.cluster_documents(key) == sorted(sources)
                survivor = {"source": "b.txt", "text": "It rained."}
                assert tally.cluster(key, {key: survivor}).documents == len(sources | {"b.txt"})


def test_the_removals_of_a_run_count_as_their_rows_do(seeds_run: Run) -> None:
    rows = [{name: row[name] for name in _TALLY_COLUMNS} for row in seeds_run.table("removals")]
    by_row, by_table = _tally_both_ways(rows, [len(rows) // 3])
    assert _tally_state(by_table) == _tally_state(by_row) and by_row.rules.total() == len(rows) > 50
    with tempfile.TemporaryDirectory() as scratch, SpillStore(Path(scratch)) as store:
        with patch.object(pipeline.spill, "SPILL_ENTRIES", 3):
            _, spilled = _tally_both_ways(rows, [], store)
        assert _tally_state(spilled) == _tally_state(by_row) and spilled.lines.spilled


# --------------------------------------------------------------------------- counts spilled to disk

# The real CLI with every report counter spilling at its first key (`SPILL_ENTRIES` = 1), each
# spill recorded by counter name in the file given first.
_SPILLING_RUN = """
import sys
from pathlib import Path
import pipeline.spill
from pipeline.cli import main
pipeline.spill.SPILL_ENTRIES = 1
spill = pipeline.spill.SpillCounter.spill
def recorded(counter):
    if counter._memory:
        with Path(sys.argv[1]).open("a", encoding="utf-8") as log:
            log.write(counter.name + "\\n")
    spill(counter)
pipeline.spill.SpillCounter.spill = recorded
sys.exit(main(sys.argv[2:]))
"""


def _inputs_with_copies(folder: Path) -> Path:
    """Seeds, each with one or two whole copies: documents tie on their copies."""
    folder.mkdir(parents=True)
    for n, seed in enumerate(sorted(SEEDS.glob("*.txt"))):
        text = seed.read_text(encoding="utf-8")
        (folder / seed.name).write_text(text, encoding="utf-8")
        for copy in range(1 + n % 2):
            (folder / f"copy{copy}_{seed.name}").write_text(text, encoding="utf-8")
    return folder


def test_report_is_byte_identical_when_its_counts_spill_to_disk(tmp_path: Path) -> None:
    """Counts spilled key by key to SQLite (2 workers) give the report the in-memory counts give, and leave nothing."""
    inputs = _inputs_with_copies(tmp_path / "in")
    # Three rows a table: the ranked tables are cut among ties.
    config = {"input": {"files_per_shard": 3}, "report": {"max_rows": 3, "max_documents": 4}}
    in_memory = run_pipeline(tmp_path / "memory", "run", "--input", str(inputs), config=config)
    assert in_memory.returncode == 0, in_memory.stderr

    out, log = tmp_path / "spilled", tmp_path / "spills.txt"
    leftover = out / "report" / "default" / ".counts.tmp-staging"  # as a killed attempt leaves it
    leftover.mkdir(parents=True)
    (leftover / "counts.sqlite").write_bytes(b"not a database")
    config_file = tmp_path / "spilled-config.toml"
    config_file.write_text(to_toml(config), encoding="utf-8")
    command = [sys.executable, "-c", _SPILLING_RUN, str(log), "run", "--input", str(inputs)]
    command += ["--output", str(out), "--workers", "2", "--config", str(config_file)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr

    spilled = set(log.read_text(encoding="utf-8").split())
    assert spilled >= {"lines", "line_rules", "clusters", "duplicate_chars", "dropped_whole", "document_duplicates"}
    assert "cluster_sources" in spilled
    report = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "report").rglob("*")) if p.is_file()}
    expected = in_memory.output / "report"
    assert report == {
        p.relative_to(in_memory.output).as_posix(): p.read_bytes() for p in sorted(expected.rglob("*")) if p.is_file()
    }
    assert set(report) == {"report/default/index.html", "report/default/run.json"}
    assert not leftover.exists()
    page = report["report/default/index.html"].decode("utf-8")
    duplicates = re.search(r"<h3>Documents dropped whole as duplicates</h3>(.*?)</section>", page, re.S)
    assert duplicates is not None and duplicates.group(1).count("<tr>") == 1 + 3  # cut at max_rows
