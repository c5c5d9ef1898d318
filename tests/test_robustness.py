"""Bad documents and odd file systems: quarantined or handled, never a crashed batch or a stale result."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import luigi
import pytest
import yaml

from pipeline import tasks
from pipeline.config import DedupConfig
from pipeline.inputs import make_plan, save_plan
from pipeline.steps.dedup import DocumentInput, find_duplicates
from tests.conftest import SEEDS, run_pipeline
from tests.samples import eval_page


def test_a_document_that_breaks_a_step_is_quarantined_and_the_shard_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_split = tasks.split_paragraphs

    def split_or_break(text: str, language: str) -> list[list[str]]:
        if "Tehreek-e-Taliban Pakistan (TTP) has been creating" in text:
            raise RuntimeError("splitter broke on this document")
        return real_split(text, language)

    monkeypatch.setattr(tasks, "split_paragraphs", split_or_break)
    plan = save_plan(make_plan([str(SEEDS)], 64, 1000), tmp_path / "00_plan")
    task = tasks.WriteCorpus(plan=str(plan), output_dir=str(tmp_path))
    assert luigi.build([task], local_scheduler=True, workers=1, log_level="ERROR")
    manifest = {row["source"]: row for row in _read(tmp_path / "corpus" / "manifest")}
    broken = manifest["003_902b9772195b7b91.txt"]
    assert broken["status"] == "quarantined"
    assert "SplitSentences failed: RuntimeError: splitter broke" in broken["reason"]
    assert sum(row["status"] == "kept" for row in manifest.values()) == 4


def _read(folder: Path) -> list[dict[str, object]]:
    import pyarrow.parquet as pq

    return [row for part in sorted(folder.rglob("part-*.parquet")) for row in pq.read_table(part).to_pylist()]


def test_the_largest_limits_and_a_name_with_yaml_syntax_give_a_normal_run(tmp_path: Path) -> None:
    # A byte limit meant as "no limit" made every document's read set that much memory aside (exit
    # 1, MemoryError); a colon in the corpus name broke the dataset card's YAML front matter.
    config = {"input": {"max_document_bytes": 1 << 40}, "corpus": {"name": "Daily news: cleaned"}}
    done = run_pipeline(tmp_path / "out", "run", "--input", str(SEEDS), config=config)
    assert done.returncode == 0, done.stderr
    assert "5 documents in: 5 kept" in done.stdout
    card = (tmp_path / "out" / "corpus" / "README.md").read_text(encoding="utf-8")
    assert yaml.safe_load(card.split("---\n")[1])["pretty_name"] == "Daily news: cleaned"


def test_with_dedup_off_a_document_id_seen_twice_still_keeps_the_first(tmp_path: Path) -> None:
    # Dedup off skipped the same-id check too: two corpus rows had one id, and `explain` found both.
    inputs = tmp_path / "in"
    shutil.copytree(SEEDS, inputs)
    shutil.copy(SEEDS / "001_d07a408cf5f191c8.txt", inputs / "zz_copy.txt")
    done = run_pipeline(tmp_path / "out", "run", "--input", str(inputs), config={"dedup": {"enabled": False}})
    assert done.returncode == 0, done.stderr
    assert "6 documents in: 1 duplicate, 5 kept" in done.stdout
    ids = [row["id"] for row in done.table("data")]
    assert len(ids) == len(set(ids)) == 5
    (copy,) = [row for row in done.table("manifest") if row["source"] == "zz_copy.txt"]
    assert copy["status"] == "duplicate" and "same document id as 001_d07a408cf5f191c8.txt" in copy["reason"]


def test_a_second_capture_of_a_url_names_the_capture_kept(tmp_path: Path) -> None:
    # WCXB holds two captures of one article whose pages give the same canonical URL: one id.
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("0463", "3035"):
        (inputs / f"{name}.html").write_bytes(eval_page(name)[0])
    run = run_pipeline(tmp_path / "out", "run", "--input", str(inputs))
    assert run.returncode == 0, run.stderr
    manifest = {row["source"]: row for row in run.table("manifest")}
    kept, again = manifest["0463.html"], manifest["3035.html"]
    assert kept["status"] == "kept" and kept["url"] == again["url"] and kept["id"] == again["id"]
    assert again["status"] == "duplicate" and again["duplicate_of"] == kept["id"]
    assert again["reason"].startswith("same document id as 0463.html, kept earlier in this run")


def test_a_lone_surrogate_in_a_dump_quarantines_its_record_not_the_shard(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = (SEEDS / "002_15483e7a24de36bb.txt").read_text(encoding="utf-8")
    records = [json.dumps({"text": "Broken \ud800 text of a record."}), json.dumps({"text": good})]
    (inputs / "dump.jsonl").write_text("\n".join(records) + "\n", encoding="utf-8")
    run = run_pipeline(tmp_path / "out", "run", "--input", str(inputs))
    assert run.returncode == 3, run.stderr  # a quarantined document, not a failed task (1)
    manifest = {row["source"]: row for row in run.table("manifest")}
    assert manifest["dump.jsonl#1"]["status"] == "quarantined"
    assert "lone surrogate U+D800" in str(manifest["dump.jsonl#1"]["reason"])
    assert manifest["dump.jsonl#2"]["status"] == "kept"


def test_file_name_that_is_not_utf8_is_read_under_an_escaped_name(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(SEEDS / "002_15483e7a24de36bb.txt", os.fsencode(inputs) + b"/caf\xe9.txt")
    run = run_pipeline(tmp_path / "out", "run", "--input", str(inputs))
    assert run.returncode == 0, run.stderr
    (row,) = run.table("manifest")
    assert row["source"] == "caf\\xe9.txt" and row["status"] == "kept"
    # `explain` finds it by its path (bytes as given) and by its source, and traces every stage.
    for query in (os.fsdecode(os.fsencode(inputs) + b"/caf\xe9.txt"), "caf\\xe9.txt"):
        explained = run_pipeline(tmp_path / "out", "explain", query, "--color", "never")
        assert explained.returncode == 0, explained.stderr
        assert "status kept" in explained.stdout and "split sentences    16 sentences" in explained.stdout


def test_symlinked_folder_is_followed_and_links_keep_their_place(tmp_path: Path) -> None:
    inputs, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    inputs.mkdir()
    elsewhere.mkdir()
    shutil.copy(SEEDS / "000_dc83cd2776310e7f.txt", inputs / "a.txt")
    shutil.copy(SEEDS / "004_e07db85663372b98.txt", elsewhere / "b.txt")
    (inputs / "linked").symlink_to(elsewhere, target_is_directory=True)
    (inputs / "loop").symlink_to(inputs, target_is_directory=True)  # a cycle must end, not hang
    run = run_pipeline(tmp_path / "out", "run", "--input", str(inputs))
    assert run.returncode == 0, run.stderr
    assert sorted(str(row["source"]) for row in run.table("manifest")) == ["a.txt", "linked/b.txt"]


def test_what_is_not_a_regular_file_is_quarantined_with_its_kind_not_skipped_or_waited_on(tmp_path: Path) -> None:
    import socket

    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(SEEDS / "000_dc83cd2776310e7f.txt", inputs / "a.txt")
    os.mkfifo(inputs / "pipe.txt")  # opening it would wait for a writer for ever
    (inputs / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(inputs / "sock.txt"))
        run = run_pipeline(tmp_path / "out", "run", "--input", str(inputs))
    assert run.returncode == 3, run.stderr
    manifest = {str(row["source"]): row for row in run.table("manifest")}
    assert manifest["a.txt"]["status"] == "kept"
    reasons = {source: row["reason"] for source, row in manifest.items() if row["status"] == "quarantined"}
    assert reasons == {
        "pipe.txt": "not a regular file but a named pipe (FIFO)",
        "sock.txt": "not a regular file but a socket",
        "gone.txt": f"a symbolic link to {tmp_path / 'nowhere.txt'}, which does not exist",
    }
    assert "pipeline: quarantined pipe.txt: not a regular file" in run.stderr


def test_same_file_name_size_and_mtime_in_another_root_is_not_reused(tmp_path: Path) -> None:
    first, second = tmp_path / "r" / "a", tmp_path / "r" / "b"
    text = (SEEDS / "002_15483e7a24de36bb.txt").read_text(encoding="utf-8")
    for folder, day in ((first, "Thursday"), (second, "Saturday")):
        folder.mkdir(parents=True)
        (folder / "x.txt").write_text(text.replace("Thursday", day), encoding="utf-8")
        os.utime(folder / "x.txt", ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    out = tmp_path / "out"
    # Dedup against earlier runs would drop the second copy as a duplicate of the first: off here.
    config: dict[str, dict[str, object]] = {"dedup": {"index": "none"}}
    assert run_pipeline(out, "run", "--input", str(first), config=config).returncode == 0
    run = run_pipeline(out, "run", "--input", str(second), config=config)
    assert run.returncode == 0, run.stderr
    assert "Saturday" in run.texts()["x.txt"]


def test_a_survivor_too_short_to_publish_is_withdrawn() -> None:
    stub = ("Floods cut off three villages in the north on Monday night.", "Roads remain closed.")
    full = (*stub, "Rescue teams reached the villages by boat on Tuesday, officials said.")
    verdicts = list(
        find_duplicates(
            [DocumentInput("a", "A", stub), DocumentInput("b", "B", full)],
            DedupConfig(document_duplicate_fraction=1.0),
            min_document_words=20,
        )
    )
    assert verdicts[1].sentences == ()  # A will not be published, so B keeps its sentences


def test_stage_fingerprint_follows_library_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    task = tasks.StripBoilerplate(root=str(SEEDS), files=["000_dc83cd2776310e7f.txt"], stamp="s")
    tasks.code_fingerprint.cache_clear()
    before = task.stage_dir
    monkeypatch.setattr(tasks, "version", lambda name: "0.0-upgraded")
    tasks.code_fingerprint.cache_clear()
    try:
        assert task.stage_dir != before  # an upgraded ftfy or sentencex never reuses old results
    finally:
        tasks.code_fingerprint.cache_clear()
