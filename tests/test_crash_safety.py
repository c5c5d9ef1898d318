"""A job killed with SIGKILL anywhere, then started again, ends byte-identical to an uninterrupted one.

Two dated batches run one after the other (the second deduplicated against the first through
the dedup index). `tests/crash_harness.py` lists every point where a crash changes what is on
disk (records written, fsyncs, renames, Parquet files, index segments and merges), labelled with
the task running; the test kills the job at points spread over every stage of both batches,
checks that no file under a final name is partial, restarts, and compares the corpus (data,
manifest, removals, markers, card), the dedup index and the site line counts with an
uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.storage import STAGE_SUFFIX, UNREADABLE_SUFFIX, open_stage_output
from tests.conftest import REPO, SEEDS, Run, reproducible_files, run_pipeline, to_toml

DAYS = ("2026-11-01", "2026-11-02")
CONFIG = {"input": {"files_per_shard": 2}, "boilerplate": {"rules": {"line_classifier": False}}}
ALWAYS = {"index-segment", "index-merge", "parquet", "row-group"}
"""Kinds of point killed at every time they occur, not only at the ends of a stage."""


def _inbox(folder: Path) -> Path:
    """Day 1: two seeds; day 2: the other three and an edited copy of a day-1 story (a syndicated copy)."""
    seeds = sorted(SEEDS.glob("*.txt"))
    for day, files in zip(DAYS, (seeds[:2], seeds[2:]), strict=True):
        (folder / day).mkdir(parents=True)
        for path in files:
            shutil.copy(path, folder / day / path.name)
    wire = seeds[0].read_text("utf-8").replace("Islamabad", "Islamabad, the capital,")
    (folder / DAYS[1] / "syndicated.txt").write_text(wire, encoding="utf-8")
    return folder


def _job(output: Path, inbox: Path, config: Path, day: str, *harness: str) -> subprocess.CompletedProcess[str]:
    """Run one day's batch (through the harness when harness options are given)."""
    cli = ["run", "--input", str(inbox), "--date", day, "--output", str(output), "--config", str(config)]
    command = (
        [sys.executable, "-m", "tests.crash_harness", *harness, "--", *cli]
        if harness
        else [
            sys.executable,
            "-m",
            "pipeline",
            *cli,
        ]
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)


def _final_state(output: Path) -> dict[str, bytes]:
    files = {f"corpus/{k}": v for k, v in reproducible_files(output / "corpus").items()}
    files |= {f"state/{k}": v for k, v in reproducible_files(output / "state").items() if not k.endswith(".lock")}
    return files


def _assert_nothing_partial(output: Path) -> None:
    """Every file under a final name is whole: temporaries are hidden or carry Luigi's temporary mark."""
    for path in output.rglob("*"):
        hidden = any(part.startswith(".") for part in path.relative_to(output).parts)
        if not path.is_file() or hidden or "-luigi-tmp-" in path.name:
            continue
        data = path.read_bytes()
        if path.name.endswith(STAGE_SUFFIX):
            with open_stage_output(path) as handle:  # a cut frame does not decompress
                data = handle.read().encode("utf-8")
        if path.name.endswith((".jsonl", STAGE_SUFFIX)):
            assert not data or data.endswith(b"\n"), path
            for line in data.splitlines():
                json.loads(line)
        elif path.suffix == ".json":
            json.loads(data)
        elif path.suffix == ".parquet":
            pq.read_table(path)


def _kill_points(events: dict[str, list[str]]) -> list[tuple[str, int, str]]:
    """Pick (day, point, label): first, middle and last point of every stage of each day, its last rename
    (a whole file not yet under its name), and every index write."""
    chosen: set[tuple[str, int]] = set()
    for day, labels in events.items():
        by_stage: dict[str, list[int]] = defaultdict(list)
        for n, label in enumerate(labels, 1):
            by_stage[label.split(":")[0]].append(n)
            if label.split(":")[1] in ALWAYS:
                chosen.add((day, n))
        for points in by_stage.values():
            chosen |= {(day, points[0]), (day, points[len(points) // 2]), (day, points[-1])}
            renames = [n for n in points if labels[n - 1].split(":")[1] == "rename"]
            chosen |= {(day, renames[-1])} if renames else set()
    return [(day, n, events[day][n - 1]) for day, n in sorted(chosen)]


def test_killed_anywhere_and_restarted_ends_byte_identical(tmp_path: Path) -> None:
    inbox = _inbox(tmp_path / "inbox")
    config = tmp_path / "config.toml"
    config.write_text(to_toml(CONFIG), encoding="utf-8")

    # The uninterrupted job, counting the points each day's run passes.
    reference = tmp_path / "reference"
    events: dict[str, list[str]] = {}
    for day in DAYS:
        listed = tmp_path / f"events-{day}.json"
        done = _job(reference, inbox, config, day, "--events", str(listed))
        assert done.returncode == 0, done.stderr
        events[day] = json.loads(listed.read_text("utf-8"))
    expected = _final_state(reference)
    assert any(k.startswith("corpus/data/batch=2026-11-02/") for k in expected)
    assert any(k.startswith("state/dedup/segments/") for k in expected)

    # After day 1, the state a killed day-2 run starts from.
    after_day1 = tmp_path / "after-day1"
    assert _job(after_day1, inbox, config, DAYS[0]).returncode == 0

    points = _kill_points(events)
    stages = {(day, label.split(":")[0]) for day, _, label in points}
    assert len(points) >= 20
    for day in DAYS:
        for stage in ("ReadDocuments", "RepairEncoding", "CountShardLines", "StripBoilerplate", "SplitSentences"):
            assert (day, stage) in stages, (day, stage)
        for stage in ("CountSiteLines", "FindDuplicates", "WriteCorpus", "WriteReport"):
            assert (day, stage) in stages, (day, stage)
    kinds = {label.split(":")[1] for _, _, label in points}
    assert {"record", "fsync", "rename", "parquet", "index-segment", "index-merge"} <= kinds

    def killed_and_restarted(point: tuple[str, int, str]) -> str | None:
        day, n, label = point
        output = tmp_path / f"kill-{day}-{n}"
        if day == DAYS[1]:
            shutil.copytree(after_day1, output)
        killed = _job(output, inbox, config, day, "--kill-at", str(n))
        if killed.returncode != -9:
            return f"{day} point {n} ({label}): not killed, exit {killed.returncode}: {killed.stderr[-2000:]}"
        try:
            _assert_nothing_partial(output)
        except Exception as error:  # report which point left a partial file
            return f"{day} point {n} ({label}): partial file after the kill: {error!r}"
        for rest in DAYS[DAYS.index(day) :]:
            again = _job(output, inbox, config, rest)
            if again.returncode != 0:
                return f"{day} point {n} ({label}): restart of {rest} failed: {again.stderr[-2000:]}"
        state = _final_state(output)
        if state != expected:
            differ = sorted(k for k in state.keys() | expected.keys() if state.get(k) != expected.get(k))
            return f"{day} point {n} ({label}): differs from the uninterrupted run in {differ}"
        shutil.rmtree(output)
        return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [f for f in pool.map(killed_and_restarted, points) if f]
    assert not failures, "\n".join(failures)
    print(f"killed at {len(points)} points:", *(f"{d}#{n} {label}" for d, n, label in points), sep="\n  ")


if __name__ == "__main__":  # pragma: no cover - lets one run the test alone with its printout
    sys.exit(pytest.main([__file__, "-s", "-q"]))


def test_a_killed_dedup_is_resumed_by_the_next_run_which_removes_other_runs_progress(tmp_path: Path) -> None:
    inbox = _inbox(tmp_path / "inbox")
    config = tmp_path / "config.toml"
    config.write_text(to_toml(CONFIG), encoding="utf-8")
    reference, output = tmp_path / "reference", tmp_path / "killed"
    for folder in (reference, output):
        assert _job(folder, inbox, config, DAYS[0]).returncode == 0
    listed = tmp_path / "events.json"
    assert _job(reference, inbox, config, DAYS[1], "--events", str(listed)).returncode == 0
    events = json.loads(listed.read_text("utf-8"))
    dedup = [n for n, label in enumerate(events, 1) if label.startswith("FindDuplicates:")]
    first_progress = next(n for n in dedup if events[n - 1] == "FindDuplicates:rename")  # progress.json in place

    killed = _job(output, inbox, config, DAYS[1], "--kill-at", str(first_progress + 1))
    assert killed.returncode == -9
    (working,) = (output / "05_duplicates").glob("*/.*.in-progress")
    assert (working / "progress.json").is_file()
    strays = [  # left by killed runs of other inputs, and of older code
        working.parent / ".plan-0123456789abcdef-2026-11-02-none.in-progress",
        output / "05_duplicates" / "0123456789ab" / ".plan-0123456789abcdef-2026-11-01-none.in-progress",
    ]
    for stray in strays:
        (stray / "tiers").mkdir(parents=True)
    relisted = tmp_path / "rerun-events.json"
    again = _job(output, inbox, config, DAYS[1], "--events", str(relisted))
    assert again.returncode == 0, again.stderr
    assert not any(stray.exists() for stray in strays) and not working.exists()
    redone = [label for label in json.loads(relisted.read_text("utf-8")) if label.startswith("FindDuplicates:")]
    assert 0 < len(redone) < len(dedup)  # went on from the checkpoint
    assert _final_state(output) == _final_state(reference)


@pytest.mark.parametrize(
    ("copied_through", "cut_in", "suffix"),
    [
        ("02_repaired", "02_repaired", STAGE_SUFFIX),  # read by the next stage
        ("03_shard_lines", "03_shard_lines", ".parquet"),  # a shard's line counts, read by CountSiteLines
        ("03_site_lines", "03_site_lines", ".arrow"),  # the run's line counts, read by StripBoilerplate
        ("05_duplicates", "04_sentences", STAGE_SUFFIX),  # read by WriteCorpus, not its requirement
        ("05_duplicates", "05_duplicates", ".jsonl"),  # the dedup verdicts
    ],
)
def test_a_stage_output_left_cut_is_set_aside_and_made_again(
    tmp_path: Path, seeds_run: Run, copied_through: str, cut_in: str, suffix: str
) -> None:
    """A stage output cut short (a disk that failed, a copy cut off) fails the run that reads it, naming it;
    the next run makes it again and ends with the corpus of a run that never saw it."""
    output = tmp_path / "output"
    # What a run stopped after some stage leaves: the plan and the stages up to that one.
    stages = sorted(path.name for path in seeds_run.output.iterdir() if path.name[:2].isdigit())
    for stage in stages[: stages.index(copied_through) + 1]:
        shutil.copytree(seeds_run.output / stage, output / stage)
    (cut,) = (output / cut_in).rglob(f"*{suffix}")
    whole = cut.read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])

    failed = run_pipeline(output, "run", "--input", str(SEEDS))
    assert failed.returncode != 0
    assert f"{cut} cannot be read" in failed.stdout + failed.stderr
    assert not cut.exists() and cut.with_name(cut.name + UNREADABLE_SUFFIX).exists()

    again = run_pipeline(output, "run", "--input", str(SEEDS))
    assert again.returncode == 0, again.stderr
    assert cut.read_bytes() == whole
    for table in ("data", "manifest", "removals"):
        assert again.table(table) == seeds_run.table(table), table
