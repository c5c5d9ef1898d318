"""`python -m pipeline explain`: one document's way through every stage, from what a run left."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.explain import use_color
from pipeline.storage import STAGE_SUFFIX
from tests.conftest import SEEDS, Run, run_pipeline

SEED0, SEED0_ID = "000_dc83cd2776310e7f.txt", "7e39d7a06e6b2832"
SEED1, SEED1_ID = "001_d07a408cf5f191c8.txt", "a92c86f19c262270"
# Double-encoded UTF-8 (mojibake) and an HTML entity, then a sentence copied from seeds/000.
REPOST = """A reader's letter on the talks, reposted from another site with its encoding broken.
The minister doesnÃ¢â‚¬â„¢t expect a quick answer &amp; neither do the diplomats in Kabul this week.
Pakistan has decided not to rush ahead in recognising Taliban as the legitimate rulers of Afghanistan where the insurgent group is cementing hold over the administrative affairs of the war-torn country.
The letter ends by asking readers to write in with their own view of what should happen next in the region.
"""  # noqa: E501  (the copied sentence is one line, as in the seed)


@pytest.fixture(scope="module")
def repost_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The seeds plus a repost with mojibake and a sentence of seeds/000."""
    inputs = tmp_path_factory.mktemp("repost") / "in"
    shutil.copytree(SEEDS, inputs)
    (inputs / "zz_repost.txt").write_text(REPOST, encoding="utf-8")
    run = run_pipeline(inputs.parent / "output", "run", "--input", str(inputs))
    assert run.returncode == 0, run.stderr
    return run


def _explain(run: Run, *args: str) -> Run:
    return run_pipeline(run.output, "explain", *args)


def test_explain_seed_by_path_shows_every_stage(seeds_run: Run) -> None:
    done = _explain(seeds_run, str(SEEDS / SEED1))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith(f"{SEED1}  id {SEED1_ID}")
    for stage in ("read", "repair encoding", "strip boilerplate", "split sentences", "find duplicates", "corpus"):
        assert f"\n{stage:<18} " in out, stage
    assert "no fix needed" in out
    assert 'ad_block: line 9\n    "by Taboola"' in out
    assert 'related_block: line 49\n    "Related Articles"' in out
    # The headline repeated as a standfirst: a duplicate of the first sentence of the same document.
    assert "exact_duplicate: sentence 1, Jaccard 1.00" in out
    assert f"duplicates {SEED1_ID}:0 in {SEED1} (this document), batch default:" in out
    assert "final text:\n  Pakistan in no rush to recognise Taliban government in Afghanistan, say officials\n" in out
    assert "Taboola" not in out.split("final text:")[1]
    assert "\x1b[" not in out  # piped: no colour


def test_explain_by_id_source_or_sentence_key_tells_the_same(seeds_run: Run) -> None:
    by_path = _explain(seeds_run, str(SEEDS / SEED0)).stdout
    assert "read_more: line 13" in by_path and "source_line: line 33" in by_path
    for query in (SEED0_ID, SEED0):
        done = _explain(seeds_run, query)
        assert done.returncode == 0, done.stderr
        assert done.stdout == by_path, query
    # A sentence key tells the same and quotes the sentence it names; a sentence not there is an error.
    key = _explain(seeds_run, f"{SEED0_ID}:4")
    assert key.returncode == 0, key.stderr
    asked = [line for line in key.stdout.splitlines() if line.startswith("  sentence 4, as asked: ")]
    assert len(asked) == 1 and asked[0].endswith('"')
    assert key.stdout.replace(asked[0] + "\n", "") == by_path
    missing = _explain(seeds_run, f"{SEED0_ID}:99")
    assert missing.returncode == 1 and f"document {SEED0_ID} of batch default has no sentence 99" in missing.stderr
    assert "  no sentence 99: the document has " in missing.stdout


def test_explain_shows_encoding_fixes_and_the_document_a_sentence_duplicates(repost_run: Run) -> None:
    done = _explain(repost_run, "zz_repost.txt")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "repair encoding    1 line fixed by ftfy" in out
    assert "line 1: apply:unescape_html, encode:sloppy-windows-1252, decode:utf-8, " in out
    assert '- "The minister doesnÃ¢â‚¬â„¢t expect' in out
    assert '+ "The minister doesn’t expect a quick answer & neither' in out
    assert "exact_duplicate: sentence 2, Jaccard 1.00" in out
    assert f"duplicates {SEED0_ID}:3 in {SEED0}, batch default:" in out
    assert '"Pakistan has decided not to rush ahead in recognising Taliban' in out.split(f"in {SEED0}, batch")[1]
    assert "status kept" in out and "final text:" in out


def test_explain_unknown_document_or_missing_run_exits_nonzero(seeds_run: Run, tmp_path: Path) -> None:
    unknown = _explain(seeds_run, "0123456789abcdef")
    assert unknown.returncode == 1
    assert "no document '0123456789abcdef'" in unknown.stderr and not unknown.stdout
    no_run = run_pipeline(tmp_path / "empty", "explain", SEED0_ID)
    assert no_run.returncode == 2
    assert "no finished run in" in no_run.stderr and "python -m pipeline run" in no_run.stderr


def test_explain_colours_only_when_asked_or_on_a_terminal(seeds_run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    coloured = _explain(seeds_run, SEED0_ID, "--color", "always")
    assert "\x1b[" in coloured.stdout
    plain = _explain(seeds_run, SEED0_ID)
    assert coloured.stdout.replace("\x1b[0m", "").count("\x1b[") > 10 and "\x1b[" not in plain.stdout

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(Terminal()) and not use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Terminal()) and use_color(Terminal(), "always")


def test_explain_reads_removal_rows_with_more_columns_than_the_schema(seeds_run: Run, tmp_path: Path) -> None:
    output = tmp_path / "output"
    shutil.copytree(seeds_run.output, output)
    (part,) = (output / "corpus" / "removals").rglob("part-*.parquet")
    table = pq.read_table(part)
    notes = ["checked" if stage == "find_duplicates" else None for stage in table["stage"].to_pylist()]
    pq.write_table(table.append_column("reviewer_note", pa.array(notes, pa.string())), part)
    done = run_pipeline(output, "explain", SEED1_ID)
    assert done.returncode == 0, done.stderr
    assert "exact_duplicate: sentence 1, Jaccard 1.00; reviewer_note: checked" in done.stdout
    # The run that published the surviving sentence is named.
    assert "(this document), batch default:" in done.stdout


def test_explain_names_a_stage_output_that_is_gone_or_corrupt(seeds_run: Run, tmp_path: Path) -> None:
    output = tmp_path / "output"
    shutil.copytree(seeds_run.output, output)
    (sentences,) = (output / "04_sentences").rglob(f"*{STAGE_SUFFIX}")
    sentences.write_bytes(sentences.read_bytes()[:-20])  # cut: the frame does not end
    cut = run_pipeline(output, "explain", SEED1_ID)
    assert cut.returncode == 1 and not cut.stdout
    assert f"cannot explain {SEED1} of batch default: stage output {sentences} cannot be read" in cut.stderr
    assert "Traceback" not in cut.stderr
    shutil.rmtree(output / "02_repaired")  # removed to save disk
    gone = run_pipeline(output, "explain", SEED1_ID)
    assert gone.returncode == 1 and "02_repaired" in gone.stderr and "FileNotFoundError" in gone.stderr
