"""The HTML report every run writes: what it holds, that it escapes scraped text, that it stays bounded."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.report import DocumentView, RemovalTally, ReportData, StageCount, render_report
from pipeline.spans import Span
from tests.conftest import SEEDS, Run, run_pipeline


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
    assert f'<del class="k-duplicate" title="{title} (001_d07a408cf5f191c8.txt)">' in page
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
    }
)
_TALLY_SCHEMA = pa.schema([(name, pa.string()) for name in ("source", "stage", "rule", "text", "duplicate_of")])


def _tally_state(tally: RemovalTally) -> dict[str, object]:
    return {
        "rules": tally.rule_counts(),
        "lines": tally.top_lines(1000),
        "clusters": tally.top_clusters(1000),
        "cluster_counts": dict(tally.clusters),
        "examples": tally.cluster_example,
        "duplicate_chars": +tally.duplicate_chars,
        "line_rules": {text: sorted(rules.split("\n")) for text, rules in tally.line_rules.items()},
    }


def _tally_both_ways(rows: list[dict[str, object]], cuts: list[int]) -> tuple[RemovalTally, RemovalTally]:
    by_row, by_table = RemovalTally(), RemovalTally()
    for row in rows:
        by_row.add(row)
    table = pa.Table.from_pylist(rows, schema=_TALLY_SCHEMA)
    for start, end in itertools.pairwise([0, *sorted(set(cuts)), len(rows)]):
        by_table.add_table(table.slice(start, max(0, end - start)))
    return by_row, by_table


@settings(max_examples=200, deadline=None)
@given(st.lists(_ROW, max_size=40), st.lists(st.integers(0, 40), max_size=3))
def test_a_table_of_removals_counts_as_its_rows_do(rows: list[dict[str, object]], cuts: list[int]) -> None:
    """`add_table` (Arrow and numpy) gives what `add` gives row by row, in tables cut anywhere (mid-document too)."""
    cuts = [cut for cut in cuts if cut <= len(rows)]
    by_row, by_table = _tally_both_ways(rows, cuts)
    assert _tally_state(by_table) == _tally_state(by_row)
    keys = by_row.top_clusters(1000)
    by_row.collect_cluster_documents([pa.Table.from_pylist(rows, schema=_TALLY_SCHEMA)], keys)
    assert by_row.cluster_docs == {
        key: {str(r["source"]) for r in rows if r["stage"] == "find_duplicates" and str(r["duplicate_of"]) == key}
        for key in keys
    }


def test_the_removals_of_a_run_count_as_their_rows_do(seeds_run: Run) -> None:
    rows = seeds_run.table("removals")
    columns = ["source", "stage", "rule", "text", "duplicate_of"]
    by_row, by_table = _tally_both_ways([{name: row[name] for name in columns} for row in rows], [len(rows) // 3])
    assert _tally_state(by_table) == _tally_state(by_row) and by_row.rules.total() == len(rows) > 50
