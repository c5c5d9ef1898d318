"""Daily batches: dated runs into partitions, backfills with Luigi's RangeDaily, the run lock."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds

from pipeline.runs import FinishedRun
from tests.conftest import REPO, SEEDS, plant_leftovers, reproducible_files, run_pipeline
from tests.test_dedup_index import RULES_ONLY, _second_run_inputs

DAY1, DAY2, DAY3, DAY4 = "2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"


def _inbox(folder: Path, days: dict[str, list[Path]]) -> Path:
    """Build an inbox holding one folder per day with the given files."""
    for day, files in days.items():
        (folder / day).mkdir(parents=True)
        for path in files:
            shutil.copy(path, folder / day / path.name)
    return folder


def _two_days(tmp_path: Path) -> Path:
    _second_run_inputs(tmp_path / "second")
    return _inbox(
        tmp_path / "inbox",
        {DAY1: sorted(SEEDS.glob("*.txt")), DAY2: sorted((tmp_path / "second").iterdir())},
    )


def _published(output: Path) -> dict[str, bytes]:
    """Everything a run publishes: corpus partitions, markers, card, and the dedup index."""
    files = {f"corpus/{k}": v for k, v in reproducible_files(output / "corpus").items()}
    files |= {f"index/{k}": v for k, v in reproducible_files(output / "state" / "dedup").items() if k != ".lock"}
    return files


def test_two_dated_runs_make_two_partitions_and_the_second_is_deduplicated_against_the_first(tmp_path: Path) -> None:
    inbox = _two_days(tmp_path)
    out = tmp_path / "out"
    first = run_pipeline(out, "run", "--input", str(inbox), "--date", DAY1, config=RULES_ONLY)
    assert first.returncode == 0, first.stderr
    assert f"pipeline: batch {DAY1}: 5 documents in: 5 kept" in first.stdout
    second = run_pipeline(out, "run", "--input", str(inbox), "--date", DAY2, config=RULES_ONLY)
    assert second.returncode == 0, second.stderr
    assert "time per stage: ReadDocuments" in second.stdout and "removals: " in second.stdout
    assert sorted(p.name for p in (out / "corpus" / "data").iterdir()) == [f"batch={DAY1}", f"batch={DAY2}"]
    manifest = ds.dataset(out / "corpus" / "manifest", format="parquet", partitioning="hive").to_table().to_pylist()
    by_source = {(row["batch"], row["source"]): row for row in manifest}
    assert len(by_source) == 7
    syndicated = by_source[(DAY2, "syndicated.txt")]
    assert syndicated["status"] == "duplicate" and syndicated["duplicate_of_run"] == DAY1
    assert by_source[(DAY2, "new_story.txt")]["status"] == "kept"
    card = (out / "corpus" / "README.md").read_text(encoding="utf-8")
    assert f"| `{DAY1}` | 5 | 5 | 0 | 0 |" in card and f"| `{DAY2}` | 2 | 1 | 1 | 0 |" in card
    assert "batches: 2; documents in: 7; kept: 6" in card
    latest = card.split("## Latest run", 1)[1].split("\n## ", 1)[0]
    assert f"Batch `{DAY2}`" in latest and "| find_duplicates | exact_duplicate |" in latest
    assert "seconds" not in card  # no times: the same input gives the same card
    markers = sorted(p.name for p in (out / "corpus" / "batches").iterdir())
    assert markers == [f"{DAY1}.json", f"{DAY2}.json"]
    # `explain` quotes a sentence that an earlier batch published, not only its key.
    removals = ds.dataset(out / "corpus" / "removals", format="parquet", partitioning="hive").to_table().to_pylist()
    earlier = next(r for r in removals if r["batch"] == DAY2 and r["duplicate_of_run"] == DAY1)
    explained = run_pipeline(out, "explain", str(earlier["doc_id"]), "--color", "never")
    assert explained.returncode == 0, explained.stderr
    shown = explained.stdout.split(f"duplicates {earlier['duplicate_of']} in ", 1)[1].splitlines()
    assert shown[0].endswith(f"batch {DAY1}:") and shown[1].startswith('    "')
    # With the earlier batch's stage outputs cleaned up, the account still comes, without the quote.
    for shard in FinishedRun.open(out, DAY1).shards:
        shard.sentences.unlink()
    without = run_pipeline(out, "explain", str(earlier["doc_id"]), "--color", "never")
    assert without.returncode == 0, without.stderr
    assert f"duplicates {earlier['duplicate_of']} in document {earlier['duplicate_of_doc']}" in without.stdout
    # Running a published day again changes nothing.
    before = _published(out)
    again = run_pipeline(out, "run", "--input", str(inbox), "--date", DAY1, config=RULES_ONLY)
    assert again.returncode == 0, again.stderr
    assert _published(out) == before


def test_the_card_names_the_config_of_the_run_that_wrote_it_when_an_earlier_day_is_run_again(tmp_path: Path) -> None:
    inbox, out = _two_days(tmp_path), tmp_path / "out"
    for day in (DAY1, DAY2):
        assert run_pipeline(out, "run", "--input", str(inbox), "--date", day, config=RULES_ONLY).returncode == 0
    changed = {"boilerplate": {"rules": {"line_classifier": False, "read_more": False}}}
    again = run_pipeline(out, "run", "--input", str(inbox), "--date", DAY1, config=changed)
    assert again.returncode == 0, again.stderr
    markers = {day: json.loads((out / "corpus" / "batches" / f"{day}.json").read_text()) for day in (DAY1, DAY2)}
    assert markers[DAY1]["config_hash"] != markers[DAY2]["config_hash"]
    card = (out / "corpus" / "README.md").read_text(encoding="utf-8")
    # The hash in the header is the one of the config printed below: the rerun's, not the last day's.
    assert f"config hash of the latest run: `{markers[DAY1]['config_hash']}` (batch `{DAY1}`)" in card
    assert '"read_more": false' in card.split("## Config of the latest run", 1)[1]


def test_a_day_without_inputs_and_a_bad_date_are_usage_errors(tmp_path: Path) -> None:
    inbox = _two_days(tmp_path)
    missing = run_pipeline(tmp_path / "out", "run", "--input", str(inbox), "--date", DAY3)
    assert missing.returncode == 2 and f"{inbox / DAY3}: no such file or folder" in missing.stderr
    bad = run_pipeline(tmp_path / "out", "run", "--input", str(inbox), "--date", "2026-02-30")
    assert bad.returncode == 2 and "expected YYYY-MM-DD" in bad.stderr
    both = run_pipeline(tmp_path / "out", "run", "--input", str(inbox), "--date", DAY1, "--batch", "x")
    assert both.returncode == 2 and "not both" in both.stderr
    name = run_pipeline(tmp_path / "out", "run", "--input", str(SEEDS), "--batch", "../up")
    assert name.returncode == 2 and "batch name '../up'" in name.stderr
    config = run_pipeline(tmp_path / "out", "run", "--input", str(SEEDS), config={"input": {"files_per_shard": 0}})
    assert config.returncode == 2 and "files_per_shard" in config.stderr
    folder = run_pipeline(tmp_path / "out", "run", "--input", str(SEEDS), "--config", str(tmp_path))
    assert folder.returncode == 2 and "the config file cannot be read: Is a directory" in folder.stderr
    assert not (tmp_path / "out").exists()  # a usage error writes nothing, not even the lock
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    for output in (tmp_path / "a-file", tmp_path / "a-file" / "out"):
        not_a_folder = run_pipeline(output, "run", "--input", str(SEEDS))
        assert not_a_folder.returncode == 2 and f"{tmp_path / 'a-file'} is a file, not a folder" in not_a_folder.stderr


def test_an_output_folder_inside_the_input_folder_is_refused(tmp_path: Path) -> None:
    # Else every later run would read the corpus, state and stage files of the runs before as inputs.
    inputs = tmp_path / "in"
    shutil.copytree(SEEDS, inputs)
    for output in (inputs / "out", inputs):
        refused = run_pipeline(output, "run", "--input", str(inputs))
        assert refused.returncode == 2 and f"the input folder {inputs}: the next run would read" in refused.stderr
        assert sorted(p.name for p in inputs.iterdir()) == sorted(p.name for p in SEEDS.iterdir())
    # Hidden folders are not read, so an output in one is fine, and a second run reads the same 5 files.
    for _ in range(2):
        done = run_pipeline(inputs / ".pipeline", "run", "--input", str(inputs), config=RULES_ONLY)
        assert done.returncode == 0, done.stderr
        assert len(done.table("manifest")) == len(list(SEEDS.iterdir()))


def test_a_backfill_with_no_inputs_or_its_output_in_a_day_folder_is_a_usage_error(tmp_path: Path) -> None:
    inbox = _two_days(tmp_path)
    days = ("--start", DAY1, "--stop", DAY2)
    # Else it published a day, found its own output in that day's folder, and ran again without end.
    inside = inbox / DAY1 / "out"
    refused = run_pipeline(inside, "backfill", "--input", str(inbox), *days)
    assert refused.returncode == 2, refused.stderr
    assert f"is inside the input folder {inbox / DAY1}" in refused.stderr and not inside.exists()
    # A misspelt inbox exited 0, as if every day had been done.
    missing = run_pipeline(tmp_path / "out", "backfill", "--input", str(tmp_path / "inbx"), *days)
    assert missing.returncode == 2, missing.stderr
    looked_in = tmp_path / "inbx" / DAY1
    assert f"no day from {DAY1} to {DAY2} has inputs (the first day's are looked for in {looked_in})" in missing.stderr
    assert not (tmp_path / "out").exists()


def test_backfill_with_two_workers_equals_day_by_day_runs_and_skips_empty_days(tmp_path: Path) -> None:
    inbox = _two_days(tmp_path)
    fourth = inbox / DAY4
    fourth.mkdir()
    shutil.copy(SEEDS / "002_15483e7a24de36bb.txt", fourth / "again.txt")  # a whole repeat of a day-1 story
    by_day = tmp_path / "by-day"
    for day in (DAY1, DAY2, DAY4):
        done = run_pipeline(by_day, "run", "--input", str(inbox), "--date", day, config=RULES_ONLY)
        assert done.returncode == 0, done.stderr
    backfilled = tmp_path / "backfilled"
    args = ("backfill", "--start", DAY1, "--stop", DAY4, "--input", str(inbox), "--workers", "2")
    done = run_pipeline(backfilled, *args, config=RULES_ONLY)
    assert done.returncode == 0, done.stderr
    assert f"1 days have no inputs and are skipped: {DAY3}" in done.stderr
    assert f"pipeline: batch {DAY4}: 1 documents in: 1 duplicate" in done.stdout
    assert _published(backfilled) == _published(by_day)
    # The repeat has the story's document id (a page without a URL is named by its text), so its
    # duplicates' keys name sentences of both batches: they are quoted from the batch they point to.
    explained = run_pipeline(backfilled, "explain", str(fourth / "again.txt"), "--color", "never")
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout.count(f"in 002_15483e7a24de36bb.txt, batch {DAY1}:") >= 5
    assert "(this document)" not in explained.stdout and "in again.txt" not in explained.stdout
    report = (backfilled / "report" / DAY4 / "index.html").read_text(encoding="utf-8")
    clusters = report.split('<section id="duplicates">', 1)[1].split("</section>", 1)[0]
    assert f"<br>batch {DAY1}</td>" in clusters and "again.txt, batch" not in clusters
    # A second backfill over the same days finds nothing missing and changes nothing. Holding the
    # lock, it removes every temporary killed writers left; dedup progress only once a day old.
    before = {p: p.stat().st_mtime_ns for p in (backfilled / "corpus").rglob("*") if p.is_file()}
    stale, fresh = plant_leftovers(backfilled)
    again = run_pipeline(backfilled, *args, config=RULES_ONLY)
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in (backfilled / "corpus").rglob("*") if p.is_file()} == before
    temporary, working = fresh
    assert not any(path.exists() for path in [*stale, temporary]) and working.is_dir()


def test_a_backfill_with_quarantined_inputs_names_them_and_exits_3(tmp_path: Path) -> None:
    inbox = _inbox(tmp_path / "inbox", {DAY1: [SEEDS / "000_dc83cd2776310e7f.txt"], DAY2: []})
    (inbox / DAY2 / "empty.txt").write_bytes(b"")
    args = ("backfill", "--start", DAY1, "--stop", DAY2, "--input", str(inbox))
    done = run_pipeline(tmp_path / "out", *args, config=RULES_ONLY)
    assert done.returncode == 3, done.stderr  # as a run's: published, with inputs to look at
    assert f"pipeline: batch {DAY2}: 1 documents in: 1 quarantined" in done.stdout
    assert f"pipeline: batch {DAY2}: quarantined empty.txt: empty file" in done.stderr  # which day's input


HOLD_LOCK = """
import sys, time
from pathlib import Path
from pipeline.storage import exclusive_lock
with exclusive_lock(Path(sys.argv[1]), "python -m pipeline run (batch default)"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_run_started_while_another_holds_the_output_exits_4_and_touches_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out / ".lock")], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        busy = run_pipeline(out, "run", "--input", str(SEEDS))
        assert busy.returncode == 4, busy.stderr
        assert "another run is in progress" in busy.stderr and f"(pid {holder.pid}, started" in busy.stderr
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing was written
    finally:
        holder.send_signal(signal.SIGKILL)  # the kernel releases a killed holder's lock
        holder.wait(timeout=30)
    after = run_pipeline(out, "run", "--input", str(SEEDS))
    assert after.returncode == 0, after.stderr
    assert json.loads((out / "corpus" / "batches" / "default.json").read_text("utf-8"))["batch"] == "default"
