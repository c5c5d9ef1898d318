"""How the job behaves as a batch job: determinism, re-runs, config changes, errors, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipeline.storage import STAGE_SUFFIX, open_stage_output
from tests.conftest import REPO, SEEDS, Run, reproducible_files, run_pipeline


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _mtimes(folder: Path) -> dict[str, int]:
    """Return the modification times of the files a run writes (not of the lock it takes)."""
    return {p.as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}


def _mixed_inputs(folder: Path) -> Path:
    """Seeds plus a few more documents, so that several shards exist."""
    folder.mkdir(parents=True)
    for seed in SEEDS.iterdir():
        shutil.copy(seed, folder / seed.name)
    nested = folder / "more"
    nested.mkdir()
    text = (SEEDS / "000_dc83cd2776310e7f.txt").read_text(encoding="utf-8")
    (nested / "copy_of_000.txt").write_text(text, encoding="utf-8")  # a whole-document duplicate
    (nested / "edited.txt").write_text(text.replace("Islamabad", "Islamabad, the capital,"), encoding="utf-8")
    return folder


def test_byte_identical_across_worker_counts(tmp_path: Path) -> None:
    inputs = _mixed_inputs(tmp_path / "in")
    config = {"input": {"files_per_shard": 2}}
    one = run_pipeline(tmp_path / "w1", "run", "--input", str(inputs), "--workers", "1", config=config)
    two = run_pipeline(tmp_path / "w2", "run", "--input", str(inputs), "--workers", "2", config=config)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    corpus_one, corpus_two = reproducible_files(one.corpus), reproducible_files(two.corpus)
    assert corpus_one == corpus_two
    report_one = _files(one.output / "report")
    assert report_one == _files(two.output / "report")
    assert set(report_one) == {"default/index.html", "default/run.json"}
    assert set(corpus_one) == {
        "data/batch=default/part-00000.parquet",
        "manifest/batch=default/part-00000.parquet",
        "removals/batch=default/part-00000.parquet",
        "batches/default.json",
        "README.md",
    }
    assert len(list((tmp_path / "w1" / "03_stripped").rglob(f"*{STAGE_SUFFIX}"))) == 4  # 7 files, 2 per shard


def test_whole_document_duplicate_dropped_and_first_copy_survives(tmp_path: Path) -> None:
    inputs = _mixed_inputs(tmp_path / "in")
    run = run_pipeline(tmp_path / "out", "run", "--input", str(inputs))
    assert run.returncode == 0, run.stderr
    status = {row["source"]: row for row in run.table("manifest")}
    assert len(status) == 7
    assert status["000_dc83cd2776310e7f.txt"]["status"] == "kept"
    assert status["more/copy_of_000.txt"]["status"] == "duplicate"
    assert status["more/copy_of_000.txt"]["duplicate_of"] == status["000_dc83cd2776310e7f.txt"]["id"]
    assert status["more/edited.txt"]["status"] == "duplicate"
    assert "duplicates earlier documents" in str(status["more/edited.txt"]["reason"])


def test_second_run_with_nothing_changed_does_nothing(tmp_path: Path) -> None:
    first = run_pipeline(tmp_path / "out", "run", "--input", str(SEEDS))
    assert first.returncode == 0, first.stderr
    before = _mtimes(tmp_path / "out")
    second = run_pipeline(tmp_path / "out", "run", "--input", str(SEEDS))
    assert second.returncode == 0, second.stderr
    assert _mtimes(tmp_path / "out") == before


def test_changed_config_reruns_only_affected_stages(tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = run_pipeline(out, "run", "--input", str(SEEDS))
    assert before.returncode == 0, before.stderr
    assert "READ MORE" not in before.texts()["000_dc83cd2776310e7f.txt"]
    hash_before = {row["config_hash"] for row in before.table("data")}
    changed = run_pipeline(out, "run", "--input", str(SEEDS), config={"boilerplate": {"rules": {"read_more": False}}})
    assert changed.returncode == 0, changed.stderr
    assert "READ MORE: China open" in changed.texts()["000_dc83cd2776310e7f.txt"]
    assert len(list((out / "02_repaired").iterdir())) == 1  # upstream of the change: reused
    assert len(list((out / "03_stripped").iterdir())) == 2  # the changed stage: run again
    for counts in ("03_shard_lines", "03_site_lines"):  # a rule's switch does not change the counts
        assert len(list((out / counts).iterdir())) == 1, counts
    hash_after = {row["config_hash"] for row in changed.table("data")}
    assert len(hash_before) == len(hash_after) == 1 and hash_before != hash_after
    unjoined = run_pipeline(out, "run", "--input", str(SEEDS), config={"boilerplate": {"rejoin_broken_lines": False}})
    assert unjoined.returncode == 0, unjoined.stderr
    for counts in ("03_shard_lines", "03_site_lines"):  # how text is cut into lines does
        assert len(list((out / counts).iterdir())) == 2, counts


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[dedup]\ntreshold = 0.9\n", "dedup.treshold: unknown key"),
        ("[dedup]\nthreshold = 1.5\n", "dedup.threshold"),
        ("[corpus]\nmin_words = -3\n", "corpus.min_words"),
        ("[boilerplate.rules]\nno_such_rule = true\n", "boilerplate.rules.no_such_rule: unknown key"),
        ("[dedup]\nlsh_bands = 30\nlsh_rows = 6\n", "lsh_bands * lsh_rows"),
        ("[input\n", "not valid TOML"),
    ],
)
def test_bad_config_fails_before_any_task_names_the_key(tmp_path: Path, toml: str, expected: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml, encoding="utf-8")
    run = run_pipeline(tmp_path / "out", "run", "--input", str(SEEDS), "--config", str(config))
    assert run.returncode == 2
    assert expected in run.stderr and str(config) in run.stderr
    assert not (tmp_path / "out" / "01_read").exists()


def test_missing_input_and_config_are_usage_errors(tmp_path: Path) -> None:
    assert run_pipeline(tmp_path / "a", "run", "--input", str(tmp_path / "nope")).returncode == 2
    missing = run_pipeline(tmp_path / "b", "run", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "config file not found" in missing.stderr


def test_failed_task_gives_nonzero_exit_naming_task_and_input(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert (
        run_pipeline(out, "task", "StripBoilerplate", "--doc", str(SEEDS / "002_15483e7a24de36bb.txt")).returncode == 0
    )
    # Corrupt the finished stage output: the next stage must fail loudly, not pass it on.
    (stripped,) = (out / "03_stripped").rglob(f"*{STAGE_SUFFIX}")
    stripped.write_bytes(b"\x28\xb5\x2f\xfd not a whole zstd frame")
    run = run_pipeline(out, "task", "SplitSentences", "--doc", str(SEEDS / "002_15483e7a24de36bb.txt"))
    assert run.returncode == 1
    assert "FAILED SplitSentences on" in run.stderr and "002_15483e7a24de36bb.txt" in run.stderr


def test_bad_inputs_are_quarantined_and_the_rest_goes_on(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    shutil.copytree(SEEDS, inputs)
    (inputs / "empty.txt").write_bytes(b"")
    (inputs / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    config = {"input": {"max_file_bytes": 11_000}}  # seeds/001 is larger
    run = run_pipeline(tmp_path / "out", "run", "--input", str(inputs), config=config)
    assert run.returncode == 3, run.stderr
    manifest = {row["source"]: row for row in run.table("manifest")}
    assert len(manifest) == 7
    assert "empty file" in str(manifest["empty.txt"]["reason"])
    assert "binary" in str(manifest["image.png"]["reason"])
    assert "over the limit" in str(manifest["001_d07a408cf5f191c8.txt"]["reason"])
    assert sum(row["status"] == "kept" for row in manifest.values()) == 4
    report = (tmp_path / "out" / "report" / "default" / "index.html").read_text(encoding="utf-8")
    assert "Quarantined inputs (3)" in report
    assert '<td class="t"><code>empty.txt</code></td><td class="t">empty file' in report
    explained = run_pipeline(tmp_path / "out", "explain", str(inputs / "image.png"))
    assert explained.returncode == 0, explained.stderr
    assert "status quarantined" in explained.stdout
    assert f"its bytes are kept at {inputs / 'image.png'}" in explained.stdout


def test_single_task_on_one_document(tmp_path: Path) -> None:
    doc = SEEDS / "001_d07a408cf5f191c8.txt"
    run = run_pipeline(tmp_path / "out", "task", "StripBoilerplate", "--doc", str(doc))
    assert run.returncode == 0, run.stderr
    (result,) = (tmp_path / "out" / "03_stripped").rglob(f"*{STAGE_SUFFIX}")
    assert result.name.startswith("001_d07a408cf5f191c8.txt")
    assert str(result) in run.stdout
    assert "Taboola" not in _stage_text(result).split('"text"')[1].split('"removals"')[0]
    assert not (tmp_path / "out" / "04_sentences").exists()
    dedup = run_pipeline(tmp_path / "out", "task", "FindDuplicates", "--doc", str(doc))
    assert dedup.returncode == 0, dedup.stderr
    assert "exact_duplicate" in next((tmp_path / "out" / "05_duplicates").rglob("*.jsonl")).read_text("utf-8")


def test_debugging_one_document_reads_the_carried_state_but_leaves_it_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_pipeline(out, "run", "--input", str(SEEDS)).returncode == 0
    state = {p: p.read_bytes() for p in sorted((out / "state").rglob("*")) if p.is_file() and p.name != ".lock"}
    assert out / "state" / "site_lines.parquet" in state
    (plan,) = (out / "00_plan").glob("plan-*.json")  # the run's, before the debugging plans
    for stage in ("StripBoilerplate", "FindDuplicates", "WriteCorpus"):
        done = run_pipeline(out, "task", stage, "--doc", str(SEEDS / "001_d07a408cf5f191c8.txt"))
        assert done.returncode == 0, done.stderr
        if stage == "FindDuplicates":
            # Matched as the next run's would be: against every published batch, the run's own included.
            (verdict,) = map(json.loads, Path(done.stdout.rsplit("result in ", 1)[1].strip()).read_text().splitlines())
            assert verdict["duplicate_of_run"] == "default" and verdict["reason"].startswith("100% of its sentence")
    after = {p: p.read_bytes() for p in sorted((out / "state").rglob("*")) if p.is_file() and p.name != ".lock"}
    assert after == state
    # The plain Luigi form says the same with --carry-state false: a new batch of the run's plan,
    # written whole, publishes nothing to the dedup index.
    command = [
        str(Path(sys.executable).parent / "luigi"), "--module", "pipeline.tasks", "WriteCorpus", "--plan", str(plan),
        "--WriteCorpus-batch", "trial", "--output-dir", str(out), "--carry-state", "false", "--local-scheduler",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert (out / "corpus" / "batches" / "trial.json").exists()
    after = {p: p.read_bytes() for p in sorted((out / "state").rglob("*")) if p.is_file() and p.name != ".lock"}
    assert after == state


def test_plain_luigi_command_line_form(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(SEEDS / "000_dc83cd2776310e7f.txt", inputs / "000_dc83cd2776310e7f.txt")
    luigi_bin = Path(sys.executable).parent / "luigi"
    command = [
        str(luigi_bin), "--module", "pipeline.tasks", "StripBoilerplate", "--root", str(inputs),
        "--files", '["000_dc83cd2776310e7f.txt"]', "--output-dir", str(tmp_path / "out"), "--local-scheduler",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    (result,) = (tmp_path / "out" / "03_stripped").rglob(f"000_dc83cd2776310e7f.txt*{STAGE_SUFFIX}")
    assert '"rule":"read_more"' in _stage_text(result)
    # Named by hand, without the planner's stamp: an edited input still gives a fresh result.
    with (inputs / "000_dc83cd2776310e7f.txt").open("a", encoding="utf-8") as handle:
        handle.write("\nA new closing paragraph was added to the story later that evening by its editors.\n")
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    results = list((tmp_path / "out" / "03_stripped").rglob(f"000_dc83cd2776310e7f.txt*{STAGE_SUFFIX}"))
    assert len(results) == 2
    assert any("A new closing paragraph" in _stage_text(path) for path in results)


def test_corpus_loads_with_pyarrow_datasets_and_duckdb(seeds_run: Run) -> None:
    import duckdb
    import pyarrow.dataset as ds
    from datasets import load_dataset

    corpus = ds.dataset(seeds_run.corpus / "data", format="parquet", partitioning="hive")
    assert corpus.count_rows() == 5
    assert set(corpus.to_table(columns=["batch"])["batch"].to_pylist()) == {"default"}
    loaded = load_dataset(
        "parquet",
        data_dir=str(seeds_run.corpus / "data"),
        split="train",
        cache_dir=str(seeds_run.output.parent / "hf-cache"),
    )
    assert len(loaded) == 5 and {"id", "source", "text", "title", "n_sentences"} <= set(loaded.column_names)
    glob = (seeds_run.corpus / "removals" / "*" / "*.parquet").as_posix()
    [(count,)] = duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}') WHERE rule = 'read_more'").fetchall()
    assert count == 2


def test_a_batch_that_keeps_no_document_still_loads_with_hugging_face_datasets(tmp_path: Path) -> None:
    from datasets import load_dataset

    out = tmp_path / "out"
    first = run_pipeline(out, "run", "--input", str(SEEDS), "--batch", "day1")
    assert first.returncode == 0, first.stderr
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(SEEDS / "002_15483e7a24de36bb.txt", again / "copy.txt")  # a whole repeat: dropped as a duplicate
    second = run_pipeline(out, "run", "--input", str(again), "--batch", "day2")
    assert second.returncode == 0 and "1 documents in: 1 duplicate" in second.stdout, second.stderr
    (part,) = (out / "corpus" / "data" / "batch=day2").glob("*.parquet")
    assert pq.ParquetFile(part).metadata.num_rows == 0 == pq.ParquetFile(part).metadata.num_row_groups
    data = str(out / "corpus" / "data")
    loaded = load_dataset("parquet", data_dir=data, split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert len(loaded) == 5 and set(loaded.column_names) == set(pq.read_schema(part).names)


def test_corpus_files_are_readable_by_other_users_as_the_umask_allows(seeds_run: Run) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    files = [path for path in seeds_run.corpus.rglob("*") if path.is_file()]
    assert files
    for path in files:  # atomic writes go through mkstemp, whose files are owner-only (0600)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_dataset_card_documents_every_field(seeds_run: Run) -> None:
    from pipeline.schema import DOCUMENT_FIELDS, MANIFEST_FIELDS, REMOVAL_FIELDS, SCHEMA_VERSION

    card = (seeds_run.corpus / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "configs:" in card and "path: data/*/*.parquet" in card
    for spec in DOCUMENT_FIELDS + MANIFEST_FIELDS + REMOVAL_FIELDS:
        assert f"| `{spec.name}` |" in card
    assert f"schema version: {SCHEMA_VERSION}" in card
    assert "| strip_boilerplate | read_more | 2 |" in card
    assert '"threshold": 0.8' in card
    assert "row groups of at most 10,000 rows" in card


# Tricky text for the members the partial reader skips: what looks like the member it looks for.
_TRAPS = ['","paragraphs":[]}', ',"paragraphs":', "}", '\\",\\"paragraphs\\":', "\u2028", "\ud800", "x" * 600]
# Integers within 64 bits: records hold no larger ones (see `load_record`).
_INTEGERS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
_VALUE = st.recursive(
    st.none() | st.booleans() | _INTEGERS | st.text(max_size=8) | st.sampled_from(_TRAPS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["paragraphs", "status", "k"]), inner),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["source", "doc_id", "status", "removals", "paragraphs", "x"]), _VALUE)),
    st.sampled_from(["as drawn", "padded", "laid out as a stage writes it"]),
)
def test_reading_some_members_gives_what_reading_the_record_gives(
    members: list[tuple[str, object]], layout: str
) -> None:
    """`read_record_fields` gives the named members' values (or the whole record) whatever the record holds."""
    from pipeline.storage import dump_record, read_record_fields, read_records

    record = dict(members)
    if layout != "as drawn":  # long enough to be read in part
        record = {"source": "a", "doc_id": "b", "status": "ok", "removals": ["x" * 600, *_TRAPS], **record}
    if layout == "laid out as a stage writes it":
        record.pop("paragraphs", None)
        record["paragraphs"] = [["One.", *_TRAPS], ["Two."]]
    lines = [dump_record(record)]
    (whole,) = read_records(lines)
    (some,) = read_record_fields(lines, ("source", "doc_id", "status"), "paragraphs")
    for name in ("source", "doc_id", "status", "paragraphs"):
        assert some.get(name, "missing") == whole.get(name, "missing")
    if layout == "laid out as a stage writes it" and len(lines[0]) > 512:
        assert len(some) == 4  # read in part


_RECORD_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | _INTEGERS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from([*_TRAPS, '\x00\x1f\x7f\u2028\u2029"\\/', "Café «ok» 東京"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.tuples(inner) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _RECORD_VALUE, max_size=6))
def test_stage_records_are_written_and_read_as_the_json_module_does(record: dict[str, object]) -> None:
    import json

    from pipeline.storage import dump_record, read_records

    line = dump_record(record)
    reference = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
    assert list(read_records([line])) == [json.loads(reference)]
    if not _holds_float(record):  # floats may be spelled otherwise (0.00001 for 1e-05), read back the same
        assert line == reference
    assert list(read_records([reference])) == [json.loads(reference)]  # a line written by the json module too


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=8), _RECORD_VALUE, max_size=6), max_size=30))
def test_stage_outputs_are_zstd_json_lines_committed_only_when_whole(
    tmp_path_factory: pytest.TempPathFactory, records: list[dict[str, object]]
) -> None:
    import json

    import luigi

    from pipeline.storage import STAGE_FORMAT, count_stage_records, dump_record, read_records, write_records

    assume(all(_encodes(dump_record(record)) for record in records))  # lone surrogates are quarantined at reading
    path = tmp_path_factory.mktemp("stage") / f"shard{STAGE_SUFFIX}"
    target = luigi.LocalTarget(str(path), format=STAGE_FORMAT)
    with target.open("w") as handle:
        write_records(handle, records)
    assert path.read_bytes().startswith(b"\x28\xb5\x2f\xfd")  # one zstd frame
    with target.open("r") as handle:
        through_luigi = list(read_records(handle))
    with open_stage_output(path) as handle:
        assert list(read_records(handle)) == through_luigi
    assert count_stage_records(path) == len(records)
    assert through_luigi == [json.loads(dump_record(record)) for record in records]
    plain = path.with_name("written-before-compression.jsonl")  # still named by older runs' indexes
    plain.write_text("".join(dump_record(record) for record in records), encoding="utf-8")
    with open_stage_output(plain) as handle:
        assert list(read_records(handle)) == through_luigi
    failed = path.with_name(f"failed{STAGE_SUFFIX}")
    with pytest.raises(RuntimeError), luigi.LocalTarget(str(failed), format=STAGE_FORMAT).open("w") as handle:
        write_records(handle, records)
        raise RuntimeError("the step broke mid-shard")
    assert not failed.exists()  # nothing under the final name; Luigi's temporary is cleared


def test_task_outputs_are_synced_before_they_are_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from pipeline.storage import STAGE_FORMAT, SyncedLocalTarget, read_records, write_records

    synced: list[str] = []
    fsync = os.fsync

    def recording(fd: int) -> None:
        synced.append(str(Path(f"/proc/self/fd/{fd}").readlink()))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    path = tmp_path / "stage" / f"shard{STAGE_SUFFIX}"
    target = SyncedLocalTarget(str(path), format=STAGE_FORMAT)
    with target.open("w") as handle:
        write_records(handle, [{"doc_id": "a", "text": "Rain fell."}])
        assert not synced and not path.exists()
    # The file's own data first (under its temporary name), then its folder, holding the rename.
    assert len(synced) == 2 and "-luigi-tmp-" in synced[0] and synced[1] == str(path.parent)
    with target.open("r") as handle:
        assert list(read_records(handle)) == [{"doc_id": "a", "text": "Rain fell."}]
    failed = SyncedLocalTarget(str(tmp_path / "stage" / f"failed{STAGE_SUFFIX}"), format=STAGE_FORMAT)
    with pytest.raises(RuntimeError), failed.open("w") as handle:
        write_records(handle, [{"doc_id": "b"}])
        raise RuntimeError("the step broke mid-shard")
    assert not Path(failed.path).exists() and len(synced) == 2  # nothing committed, nothing synced


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _holds_float(value: object) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_holds_float(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_float(item) for item in value)
    return False


_REMOVAL_ROW = st.fixed_dictionaries(
    {
        "doc_id": st.text(alphabet="0123456789abcdef", min_size=1, max_size=4),
        "text": st.text(max_size=40),
        "position": st.integers(0, 2**31 - 1),
        "score": st.none() | st.floats(allow_nan=False),
    }
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_REMOVAL_ROW, max_size=40),
    st.integers(1, 9),
    st.integers(1, 5),
    st.integers(1, 60),
)
def test_corpus_parts_are_written_in_bounded_row_groups_and_read_back_in_order(
    rows: list[dict[str, object]], rows_per_file: int, group_rows: int, group_chars: int
) -> None:
    """Parts of at most `rows_per_file` rows, row groups within both bounds (or one long row), the rows in order."""
    import tempfile

    import pyarrow.parquet as pq

    from pipeline.corpus import PartWriter
    from pipeline.schema import REMOVAL_FIELDS

    fields = tuple(spec for spec in REMOVAL_FIELDS if spec.name in rows[0]) if rows else REMOVAL_FIELDS[:1]
    rows = [{spec.name: row[spec.name] for spec in fields} for row in rows]
    written: list[dict[str, bytes]] = []
    for _ in range(2):
        with tempfile.TemporaryDirectory() as folder:
            writer = PartWriter(Path(folder), fields, rows_per_file, "zstd", group_rows, group_chars)
            for n, row in enumerate(rows):  # one at a time and several at once: the same files
                (writer.add_all([row]) if n % 2 else writer.add(row))
            parts = writer.close()
            assert sorted(p.name for p in Path(folder).iterdir()) == parts  # no temporary left
            assert len(parts) == max(1, -(-len(rows) // rows_per_file))
            read: list[dict[str, object]] = []
            for part in parts:
                file = pq.ParquetFile(Path(folder) / part)
                assert file.metadata.num_rows <= rows_per_file
                for group in range(file.num_row_groups):
                    table = file.read_row_group(group)
                    chunk = table.to_pylist()
                    assert table.num_rows <= group_rows
                    chars = sum(len(row["text"]) for row in chunk)
                    assert len(chunk) == 1 or chars <= group_chars
                    read += chunk
            assert read == rows
            written.append(_files(Path(folder)))
    assert written[0] == written[1]


def _stage_text(path: Path) -> str:
    with open_stage_output(path) as handle:
        return handle.read()
