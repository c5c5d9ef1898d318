"""Dedup against earlier runs: the persistent index (embedded and Redis), its commits and its checks."""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasketch import MinHash

from pipeline.config import DedupConfig
from pipeline.corpus import published_sentences
from pipeline.dedup_index import DedupIndexError, EmbeddedIndex, Survivors, collect_survivors, index_params
from pipeline.evaluation import DEFAULT_EVAL_DIR
from pipeline.steps.dedup import DocumentInput, MinHasher, find_duplicates, jaccard, normalise_sentence
from pipeline.steps.sentences import split_paragraphs
from tests.conftest import SEEDS, Run, reproducible_files, run_pipeline

WIRE = "000_dc83cd2776310e7f.txt"


def _real_sentences(limit: int = 3000) -> list[str]:
    """Sentences of the seeds and, when the evaluation data is there, of the WCXB ground truth."""
    texts = [path.read_text("utf-8") for path in sorted(SEEDS.glob("*.txt"))]
    truth = sorted((DEFAULT_EVAL_DIR / "ground-truth").glob("*.json"))[:150]
    texts += [(json.loads(p.read_text("utf-8")).get("ground_truth") or {}).get("main_content") or "" for p in truth]
    sentences = [s for text in texts for para in split_paragraphs(text, "en") for s in para]
    return list(dict.fromkeys(s.strip() for s in sentences if s.strip()))[:limit]


@pytest.mark.parametrize(
    "cfg",
    [
        DedupConfig(),
        DedupConfig(scheme="affine64"),
        DedupConfig(shingle="word3"),
        DedupConfig(seed=7, num_perm=64, lsh_bands=10),
    ],
    ids=["char5-affine32", "char5-affine64", "word3", "seed7-perm64"],
)
def test_bulk_signatures_identical_to_datasketch(cfg: DedupConfig) -> None:
    hasher = MinHasher(cfg)
    sentences = [*_real_sentences(), *_AWKWARD_SENTENCES]
    signatures = hasher.signatures(sentences)
    for sentence, row in zip(sentences, signatures, strict=True):
        naive = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, scheme=cfg.scheme)  # a fresh one: nothing shared
        for item in hasher.shingles(sentence):
            naive.update(item.encode("utf-8"))
        assert np.array_equal(naive.hashvalues, row), sentence


_AWKWARD_SENTENCES = [
    "x",
    "",
    "?!",
    "abcde",
    "a b",
    "Ünïcödé façade — 東京で雨が降った。",
    "ΟΔΟΣ ΣΤΗΝ ΑΘΗΝΑ, Σ.",  # final sigma: lowercase depends on the neighbours
    "İstanbul'da YAĞMUR",  # İ lowercases to two code points
    "Rain\x00fell all day\x00",  # the separator the bulk signer joins texts with
    "𝐁𝐨𝐥𝐝 letters and 😀 emoji in the news today",  # beyond the Basic Multilingual Plane
    "snake_case and under__scores are two words each",
]


def test_bulk_signatures_identical_when_remembered_and_when_normalised() -> None:
    cfg = DedupConfig()
    hasher = MinHasher(cfg)
    sentences = [*_real_sentences(400), *_AWKWARD_SENTENCES]
    alphabet = "".join(chr(c) for c in range(0x100, 0x1000) if chr(c).isalpha() and chr(c).lower() == chr(c))
    many_letters = " ".join(alphabet[n : n + 7] for n in range(0, len(alphabet), 7))  # > 1024 distinct characters
    first = hasher.signatures([*sentences, many_letters])
    again = hasher.signatures([sentences[-1], many_letters, *sentences[:-1]])  # every shingle remembered
    normalised = MinHasher(cfg).signatures([normalise_sentence(s) for s in sentences], normalised=True)
    for n, sentence in enumerate([*sentences, many_letters]):
        expected = hasher.minhash(hasher.shingles(sentence)).hashvalues
        assert np.array_equal(first[n], expected), sentence
    assert np.array_equal(again[2:], first[: len(sentences) - 1])
    assert np.array_equal(again[:2], first[[len(sentences) - 1, len(sentences)]])
    assert np.array_equal(normalised, first[: len(sentences)])
    assert hasher.signatures([]).shape == (0, cfg.num_perm)


def _edit(sentence: str, n: int) -> str:
    words = sentence.split()
    middle = len(words) // 2
    return " ".join([*words[:middle], "reportedly" if n % 2 else "also", *words[middle:]])


def test_edited_copies_found_against_an_earlier_run_in_memory(tmp_path: Path) -> None:
    cfg = DedupConfig(document_duplicate_fraction=1.0)
    originals = [s for s in _real_sentences(600) if len(s.split()) >= 15]
    index = EmbeddedIndex(tmp_path / "dedup", index_params(MinHasher(cfg)))
    first = list(
        find_duplicates([DocumentInput("a", "A", tuple(originals))], cfg, earlier=index.reader("r1"), run="r1")
    )
    assert first[0].sentences == ()
    index.commit("r1", collect_survivors(MinHasher(cfg), [(f"A:{n}", "A", s) for n, s in enumerate(originals)]))
    edited = [_edit(s, n) for n, s in enumerate(originals)]
    reopened = EmbeddedIndex(tmp_path / "dedup", index_params(MinHasher(cfg)))
    second = list(
        find_duplicates([DocumentInput("b", "B", tuple(edited))], cfg, earlier=reopened.reader("r2"), run="r2")
    )
    hasher = MinHasher(cfg)
    truly = {
        n
        for n, (o, e) in enumerate(zip(originals, edited, strict=True))
        if jaccard(hasher.shingles(o), hasher.shingles(e)) >= cfg.threshold
    }
    found = {dup.position: dup for dup in second[0].sentences}
    assert len(found.keys() & truly) >= 0.98 * len(truly)
    for position, dup in found.items():
        assert dup.duplicate_of_run == "r1" and dup.duplicate_of_doc == "A"
        of = originals[int(dup.duplicate_of.split(":")[1])]
        assert jaccard(hasher.shingles(edited[position]), hasher.shingles(of)) >= cfg.threshold


# --------------------------------------------------------------------------------------------------
# Two runs into one output folder, through the real task graph


def _second_run_inputs(folder: Path) -> dict[str, str]:
    """Edited copies of first-run sentences (a syndicated copy, and a few sentences in a new story)."""
    folder.mkdir(parents=True)
    wire = (SEEDS / WIRE).read_text("utf-8")
    copy = wire.replace("Islamabad", "Islamabad, the capital,").replace("Pakistan has", "Pakistan had")
    (folder / "syndicated.txt").write_text(copy, encoding="utf-8")
    lines = [s.strip() for para in split_paragraphs(wire, "en") for s in para if len(s.split()) > 12]
    story = [
        "Storm clouds gathered over the harbour town late on Sunday afternoon as fishermen hauled their boats ashore.",
        "The mayor said the ferry service would stay suspended until engineers had checked the old stone pier.",
        _edit(lines[1], 0),
        " ".join(word for n, word in enumerate(lines[2].split()) if n != 2),
        "Local shops reported brisk trade in candles, batteries and bottled water as residents prepared.",
        "Forecasters expect the wind to ease by Tuesday, although heavy rain may persist along the northern coast.",
    ]
    (folder / "new_story.txt").write_text("\n".join(story) + "\n", encoding="utf-8")
    return {"edited_1": lines[1], "edited_2": lines[2]}


# These tests are about dedup: the learned line classifier is kept out of the way, since on the
# short hand-made story above it may judge an edited sentence to be boilerplate before dedup sees it.
RULES_ONLY = {"boilerplate": {"rules": {"line_classifier": False}}}


def _runs(index_file: Path) -> list[str]:
    return [r["run"] for r in json.loads(index_file.read_text("utf-8"))["runs"]]


def test_second_run_removes_edited_copies_pointing_into_the_first_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_pipeline(out, "run", "--input", str(SEEDS), "--batch", "day1", config=RULES_ONLY)
    assert first.returncode == 0, first.stderr
    first_data = first.table("data")
    assert _runs(out / "state" / "dedup" / "manifest.json") == ["day1"]
    _second_run_inputs(tmp_path / "in2")
    second = run_pipeline(out, "run", "--input", str(tmp_path / "in2"), "--batch", "day2", config=RULES_ONLY)
    assert second.returncode == 0, second.stderr
    assert _runs(out / "state" / "dedup" / "manifest.json") == ["day1", "day2"]
    assert sorted(p.name for p in (out / "corpus" / "data").iterdir()) == ["batch=day1", "batch=day2"]
    _check_with_first_data(first_data, _batch(second, "day2"), "day1")
    # The same two runs with two workers give the same bytes, corpus and index.
    other = tmp_path / "two-workers"
    config = {"input": {"files_per_shard": 1}, **RULES_ONLY}
    for batch, inputs in (("day1", SEEDS), ("day2", tmp_path / "in2")):
        args = ("run", "--input", str(inputs), "--batch", batch)
        one = run_pipeline(tmp_path / "w1", *args, "--workers", "1", config=config)
        two = run_pipeline(other, *args, "--workers", "2", config=config)
        assert one.returncode == two.returncode == 0, one.stderr + two.stderr
        assert reproducible_files(one.corpus) == reproducible_files(two.corpus)
    assert _files(tmp_path / "w1" / "state" / "dedup") == _files(other / "state" / "dedup")


def _batch(run: Run, batch: str) -> Run:
    """Return a view of a run that reads one batch's partitions only."""

    class OneBatch(Run):
        def table(self, name: str) -> list[dict[str, object]]:
            return [row for row in super().table(name) if row["source"] in sources]

    manifest = pq.read_table(run.corpus / "manifest" / f"batch={batch}").to_pylist()
    sources = {row["source"] for row in manifest}
    return OneBatch(run.returncode, run.stdout, run.stderr, run.output)


def _check_with_first_data(first_data: list[dict[str, object]], second: Run, first_run: str) -> None:
    manifest = {row["source"]: row for row in second.table("manifest")}
    assert manifest["syndicated.txt"]["status"] == "duplicate"
    assert manifest["syndicated.txt"]["duplicate_of_run"] == first_run
    assert "of batch " + first_run in str(manifest["syndicated.txt"]["reason"])
    assert manifest["new_story.txt"]["status"] == "kept"
    wire_id = next(row["id"] for row in first_data if row["source"] == WIRE)
    assert manifest["syndicated.txt"]["duplicate_of"] == wire_id
    removed = [
        r for r in second.table("removals") if r["stage"] == "find_duplicates" and r["source"] == "new_story.txt"
    ]
    assert {r["rule"] for r in removed} == {"near_duplicate"} and len(removed) == 2
    for row in removed:
        assert row["duplicate_of_run"] == first_run and row["duplicate_of_doc"] == wire_id
        assert str(row["duplicate_of"]).startswith(f"{wire_id}:")
        assert 0.8 <= float(row["score"]) < 1.0
    kept = second.texts()["new_story.txt"]
    assert "Storm clouds gathered" in kept and "Forecasters expect" in kept


# --------------------------------------------------------------------------------------------------
# The same through Redis


def test_second_run_through_redis(tmp_path: Path, redis_port: int) -> None:
    config = {"dedup": {"index": "redis", "redis_port": redis_port, "redis_prefix": "two-runs"}, **RULES_ONLY}
    out = tmp_path / "out"
    first = run_pipeline(out, "run", "--input", str(SEEDS), "--batch", "day1", config=config)
    assert first.returncode == 0, first.stderr
    first_data = first.table("data")
    assert not (out / "state" / "dedup").exists()  # the index lives in Redis
    _second_run_inputs(tmp_path / "in2")
    second = run_pipeline(out, "run", "--input", str(tmp_path / "in2"), "--batch", "day2", config=config)
    assert second.returncode == 0, second.stderr
    _check_with_first_data(first_data, _batch(second, "day2"), "day1")
    # Another output folder sharing the index (another machine) sees both batches' sentences.
    third = run_pipeline(
        tmp_path / "elsewhere", "run", "--input", str(tmp_path / "in2"), "--batch", "day3", config=config
    )
    assert third.returncode == 0, third.stderr
    third_manifest = {row["source"]: row for row in third.table("manifest")}
    assert {row["status"] for row in third_manifest.values()} == {"duplicate"}
    assert third_manifest["new_story.txt"]["duplicate_of_run"] == "day2"
    mismatch = {"dedup": {**config["dedup"], "seed": 2}}
    refused = run_pipeline(tmp_path / "other", "run", "--input", str(SEEDS), config=mismatch)
    assert refused.returncode == 1 and "FAILED FindDuplicates" in refused.stderr
    assert "built with seed=1 but seed=2" in refused.stderr and "redis_prefix" in refused.stderr


# --------------------------------------------------------------------------------------------------
# Parameters, killed runs, reruns


def test_index_built_with_other_parameters_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_pipeline(out, "run", "--input", str(SEEDS), "--batch", "day1").returncode == 0
    _second_run_inputs(tmp_path / "in2")
    for change, named in (({"num_perm": 64, "lsh_bands": 10}, "num_perm"), ({"shingle": "word3"}, "shingle")):
        run = run_pipeline(out, "run", "--input", str(tmp_path / "in2"), "--batch", "day2", config={"dedup": change})
        assert run.returncode == 1
        index = out / "state" / "dedup" / "manifest.json"
        assert str(index) in run.stderr and f"{named}=" in run.stderr and "move " in run.stderr
    hasher = MinHasher(DedupConfig())
    with pytest.raises(DedupIndexError, match="permutations_sha256"):
        EmbeddedIndex(out / "state" / "dedup", {**index_params(hasher), "permutations_sha256": "0"})


def test_failed_run_leaves_the_index_as_it_was_and_a_rerun_commits(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_pipeline(out, "run", "--input", str(SEEDS), "--batch", "day1").returncode == 0
    index = out / "state" / "dedup"
    before = {p.relative_to(index).as_posix(): p.read_bytes() for p in index.rglob("*") if p.is_file()}
    _second_run_inputs(tmp_path / "in2")
    shutil.rmtree(out / "corpus" / "removals")
    (out / "corpus" / "removals").write_text("in the way", encoding="utf-8")  # WriteCorpus fails mid-way
    failed = run_pipeline(out, "run", "--input", str(tmp_path / "in2"), "--batch", "day2")
    assert failed.returncode == 1 and "FAILED WriteCorpus" in failed.stderr
    assert list((out / "05_duplicates").rglob("*.jsonl"))  # FindDuplicates had finished
    after = {p.relative_to(index).as_posix(): p.read_bytes() for p in index.rglob("*") if p.is_file()}
    assert after == before
    (out / "corpus" / "removals").unlink()
    again = run_pipeline(out, "run", "--input", str(tmp_path / "in2"), "--batch", "day2")
    assert again.returncode == 0, again.stderr
    assert len(_runs(index / "manifest.json")) == 2
    assert {row["status"] for row in again.table("manifest")} == {"kept", "duplicate"}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rerun_of_a_committed_run_is_not_deduplicated_against_itself(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_pipeline(out, "run", "--input", str(SEEDS), "--batch", "day1")
    assert first.returncode == 0, first.stderr
    day1 = reproducible_files(out / "corpus" / "data" / "batch=day1")
    _second_run_inputs(tmp_path / "in2")
    assert run_pipeline(out, "run", "--input", str(tmp_path / "in2"), "--batch", "day2").returncode == 0
    manifest = (out / "state" / "dedup" / "manifest.json").read_bytes()
    shutil.rmtree(out / "05_duplicates")  # dedup itself runs again, against the index as it is now
    rerun = run_pipeline(out, "run", "--input", str(SEEDS), "--batch", "day1")
    assert rerun.returncode == 0, rerun.stderr
    assert reproducible_files(out / "corpus" / "data" / "batch=day1") == day1
    assert (out / "state" / "dedup" / "manifest.json").read_bytes() == manifest


def test_segments_merge_and_a_replaced_run_is_forgotten(tmp_path: Path) -> None:
    cfg = DedupConfig()
    hasher = MinHasher(cfg)
    sentences = [s for s in _real_sentences(2000) if len(s.split()) >= 8][:400]
    parts = [sentences[n * 100 : (n + 1) * 100] for n in range(4)]

    def survivors(doc: str, texts: list[str]) -> Survivors:
        return collect_survivors(hasher, [(f"{doc}:{n}", doc, t) for n, t in enumerate(texts)])

    index = EmbeddedIndex(tmp_path / "dedup", index_params(hasher))
    assert index.commit("r1", survivors("A", parts[0]))
    assert index.commit("r2", survivors("B", parts[1]))
    assert len(index.manifest.segments) == 1  # 100 + 100: merged
    assert not index.commit("r2", survivors("B", parts[1]))  # same content: nothing new
    assert index.commit("r1", survivors("C", parts[2]))  # r1 rerun with other content
    assert index.commit("r3", survivors("D", parts[3]))
    assert [n for _, n in index.manifest.segments] == [300]  # merged again; r1's first sentences dropped
    assert [r.run for r in index.manifest.runs] == ["r1", "r2", "r3"]

    def found(run: str, texts: list[str]) -> list[set[tuple[str, str]]]:
        sigs = hasher.signatures(texts)
        reader = EmbeddedIndex(tmp_path / "dedup", index_params(hasher)).reader(run)
        return [{(p.run, p.doc_id) for p in c} for c in reader.candidates(sigs, hasher.band_keys(sigs))]

    assert all(("r1", "A") not in c for c in found("new", parts[0]))
    assert all(("r1", "C") in c for c in found("new", parts[2]))
    assert all(not c for c in found("r1", parts[2]))  # r1 is matched against nothing before it
    assert all(("r1", "C") in c and ("r2", "B") not in c for c in found("r2", parts[2]))


def test_commit_killed_before_the_manifest_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.dedup_index as dedup_index

    hasher = MinHasher(DedupConfig())
    sentences = [s for s in _real_sentences(600) if len(s.split()) >= 8][:200]
    survivors = [
        collect_survivors(hasher, [(f"{d}:{n}", d, t) for n, t in enumerate(part)])
        for d, part in (("A", sentences[:100]), ("B", sentences[100:]))
    ]
    index = EmbeddedIndex(tmp_path / "dedup", index_params(hasher))
    index.commit("r1", survivors[0])
    before = _files(tmp_path / "dedup")

    def killed(path: Path, text: str) -> None:
        raise KeyboardInterrupt("killed")  # as if the process died here: segments written, manifest not

    monkeypatch.setattr(dedup_index, "atomic_write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        index.commit("r2", survivors[1])  # 100 + 100: writes a segment and a merged one first
    monkeypatch.undo()
    reopened = EmbeddedIndex(tmp_path / "dedup", index_params(hasher))
    assert [r.run for r in reopened.manifest.runs] == ["r1"]
    assert (tmp_path / "dedup" / "manifest.json").read_bytes() == before["manifest.json"]
    assert reopened.commit("r2", survivors[1])  # the next commit clears what the killed one left
    assert sorted(p.name for p in (tmp_path / "dedup" / "segments").iterdir()) == [reopened.manifest.segments[0][0]]


def test_survivors_spilled_to_disk_give_the_same_verdicts_and_index_as_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.dedup_index as dedup_index
    import pipeline.steps.dedup as dedup_module
    from pipeline.dedup_index import RunSurvivorStore, SpilledSurvivors

    monkeypatch.setattr(dedup_index, "RUN_MEMORY_ROWS", 64)  # spill to tier files, and merge them, many times
    monkeypatch.setattr(dedup_index, "RUN_TIER_LIMIT", 256)
    monkeypatch.setattr(dedup_module, "SIGNING_BATCH", 100)  # copies meet their originals through the tiers
    monkeypatch.setattr(dedup_index, "_ROW_CHUNK", 97)  # the commit goes through rows in chunks, the last short
    cfg = DedupConfig()
    sentences = [s for s in _real_sentences(3000) if len(s.split()) >= 8][:1200]
    halves = (sentences[:600], sentences[600:])
    documents = [DocumentInput(f"a{n}", f"A{n}", tuple(halves[0][n * 60 : (n + 1) * 60])) for n in range(10)]
    documents += [DocumentInput(f"b{n}", f"B{n}", tuple(_edit(s, n) for s in halves[0][n::10])) for n in range(10)]
    documents += [DocumentInput(f"c{n}", f"C{n}", tuple(halves[1][n * 60 : (n + 1) * 60])) for n in range(10)]

    in_memory = list(find_duplicates(documents, cfg, run="r1"))
    store = RunSurvivorStore(tmp_path / "spilled", cfg.lsh_bands, "r1")
    spilled = list(find_duplicates(documents, cfg, run="r1", run_sentences=store))
    assert any((tmp_path / "spilled" / "tiers").iterdir())  # the run's sentences did leave memory
    store.close()
    assert spilled == in_memory
    assert sum(len(v.sentences) for v in spilled) >= 300  # the edited copies of the first documents

    hasher = MinHasher(cfg)
    verdicts = {v.doc_id: v for v in in_memory}
    published = [  # what WriteCorpus publishes: documents kept whole or in part, less their duplicates
        sentence
        for doc in documents
        if not (doc.doc_id in verdicts and verdicts[doc.doc_id].duplicate_of_doc)
        for sentence in published_sentences(
            {"doc_id": doc.doc_id, "paragraphs": [doc.sentences]}, verdicts.get(doc.doc_id), cfg.min_words
        )
    ]
    assert len(published) < len(sentences) + 600  # whole copies and copied sentences are not published
    from_files = SpilledSurvivors.open(tmp_path / "spilled")
    assert from_files is not None and len(from_files) == len(published) > 10 * 97
    EmbeddedIndex(tmp_path / "from-files", index_params(hasher)).commit("r1", from_files)
    EmbeddedIndex(tmp_path / "signed-again", index_params(hasher)).commit("r1", collect_survivors(hasher, published))
    assert _files(tmp_path / "from-files") == _files(tmp_path / "signed-again")


def _dedup_documents() -> list[DocumentInput]:
    """Real sentences, edited copies of some documents (found through spilled tiers), one document id seen twice."""
    sentences = [s for s in _real_sentences(3000) if len(s.split()) >= 8][:1200]
    halves = (sentences[:600], sentences[600:])
    documents = [DocumentInput(f"a{n}", f"A{n}", tuple(halves[0][n * 60 : (n + 1) * 60])) for n in range(10)]
    documents += [DocumentInput(f"b{n}", f"B{n}", tuple(_edit(s, n) for s in halves[0][n::10])) for n in range(10)]
    documents += [DocumentInput(f"c{n}", f"C{n}", tuple(halves[1][n * 60 : (n + 1) * 60])) for n in range(10)]
    documents.insert(25, DocumentInput("a3-again", "A3", documents[3].sentences))
    return documents


def test_a_dedup_killed_goes_on_from_its_last_checkpoint_to_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import pipeline.dedup_index as dedup_index
    import pipeline.steps.dedup as dedup_module
    from pipeline.dedup_index import VERDICTS_FILE, find_run_duplicates, take_verdicts
    from pipeline.storage import dump_record

    monkeypatch.setattr(dedup_index, "RUN_MEMORY_ROWS", 64)  # tier files spilled and merged between checkpoints
    monkeypatch.setattr(dedup_index, "RUN_TIER_LIMIT", 256)
    monkeypatch.setattr(dedup_module, "SIGNING_BATCH", 100)
    judged: list[int] = []  # documents judged, batch by batch
    batch = dedup_module.Deduplicator._batch

    def counted(self: dedup_module.Deduplicator, docs: list[DocumentInput]) -> Iterator[Any]:
        judged.append(len(docs))
        return batch(self, docs)

    monkeypatch.setattr(dedup_module.Deduplicator, "_batch", counted)
    cfg, documents = DedupConfig(), _dedup_documents()

    ticks = itertools.count()  # a clock that moves a second a look: a checkpoint every third batch
    monkeypatch.setattr(dedup_index, "time", SimpleNamespace(monotonic=lambda: float(next(ticks))))

    def dedup(folder: Path, docs: Iterator[DocumentInput]) -> Path:
        return find_run_duplicates(docs, cfg, 20, None, "r1", folder, every_seconds=2.5)

    reference = dedup(tmp_path / "reference", iter(documents))
    assert "cannot be used" not in caplog.text  # nothing to resume from is no news
    expected = _files(tmp_path / "reference")
    assert reference == tmp_path / "reference" / VERDICTS_FILE
    assert sorted(expected) == sorted(["meta.json", "progress.json", VERDICTS_FILE, *dedup_index._SPILL_COLUMNS])
    in_memory = find_duplicates(documents, cfg, 20, run="r1")  # what the stage wrote before it kept progress
    written = "".join(dump_record(v.record()) for v in in_memory if v.sentences or v.duplicate_of_doc)
    assert expected[VERDICTS_FILE] == written.encode("utf-8")
    assert b"kept earlier in this run" in written.encode("utf-8") and written.count("near_duplicate") >= 100
    judged.clear()  # killed after its last write, before its verdicts were taken: nothing is done again
    assert dedup(tmp_path / "reference", iter(documents)) == reference and not judged
    take_verdicts(tmp_path / "reference", tmp_path / "taken.jsonl")
    assert (tmp_path / "taken.jsonl").read_bytes() == written.encode("utf-8")
    survivors = {name: data for name, data in expected.items() if name not in (VERDICTS_FILE, "progress.json")}
    assert _files(tmp_path / "reference") == survivors

    def killed_at(stop: int) -> Iterator[DocumentInput]:
        for n, doc in enumerate(documents):
            if n == stop:
                raise KeyboardInterrupt("killed")  # as if the process died here, between two checkpoints
            yield doc

    for stop, spoilt in ((9, False), (27, False), (27, True)):
        folder = tmp_path / f"killed-{stop}-{spoilt}"
        with pytest.raises(KeyboardInterrupt):
            dedup(folder, killed_at(stop))
        progress = json.loads((folder / "progress.json").read_text("utf-8"))
        assert 0 < progress["documents"] < stop
        # What the killed process wrote after its last checkpoint (and more): all of it is dropped.
        for name in (VERDICTS_FILE, "kept_docs.jsonl", "band_keys.u64", "text.bin", "text.end"):
            with (folder / name).open("ab") as handle:
                handle.write(b"\x00written after the checkpoint\n")
        (folder / "tiers" / "tier-999999").mkdir()
        if spoilt:  # progress that cannot be read: the work starts again
            (folder / "progress.json").write_text("{", encoding="utf-8")
        judged.clear()
        caplog.clear()
        assert dedup(folder, iter(documents)) == folder / VERDICTS_FILE
        assert ("progress in" in caplog.text) == spoilt, caplog.text
        assert _files(folder) == expected
        assert sum(judged) == len(documents) - (0 if spoilt else progress["documents"])


def _dedup_in_a_child(folder: Path, kill_at: int | None, timeout: float = 120.0) -> tuple[bool, int, list[str]]:
    """Run the checkpointing dedup of `_dedup_documents` in a forked process, SIGKILLed at its `kill_at`-th write.

    A write is a call that changes the file system (`os.fsync`, `os.replace`, `os.rename`,
    `os.truncate`, `os.unlink`, `shutil.rmtree`). Returns whether the child was killed and,
    when it was not, how many writes it made and the warnings it logged.
    """
    import logging.handlers
    import os
    import signal
    import time

    from pipeline.dedup_index import find_run_duplicates

    documents = _dedup_documents()  # built before the fork: the child only deduplicates
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns to pytest
        status = 3
        try:
            os.close(read_end)
            writes = itertools.count(1)
            warnings = logging.handlers.BufferingHandler(1 << 16)  # keeps every record logged
            warnings.setLevel(logging.WARNING)
            logging.getLogger("pipeline.dedup_index").addHandler(warnings)

            def counted(original: Any) -> Any:
                def write(*args: Any, **kwargs: Any) -> Any:
                    if next(writes) == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return original(*args, **kwargs)

                return write

            for owner, name in [(os, n) for n in ("fsync", "replace", "rename", "truncate", "unlink")] + [
                (shutil, "rmtree")
            ]:
                setattr(owner, name, counted(getattr(owner, name)))
            find_run_duplicates(iter(documents), DedupConfig(), 20, None, "r1", folder, every_seconds=0.0)
            logged = [record.getMessage() for record in warnings.buffer]
            os.write(write_end, json.dumps([next(writes) - 1, logged]).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    while (waited := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the dedup in {folder} did not end within {timeout} s")
        time.sleep(0.01)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read()
    status = waited[1]
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        return True, 0, []
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"the dedup in {folder} failed: {status}"
    made, warned = json.loads(report)
    return False, made, warned


def test_a_dedup_killed_at_any_write_resumes_to_the_same_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL inside a checkpoint, a tier merge or the finish, then run again: the files are the uninterrupted ones.

    Checkpoints come after every batch here, and tiers spill and merge between them, so the
    writes counted cover every kind the stage makes; a sample of them (every 9th from the 5th,
    and the last ten: the finish) is each the kill point of one run, and no rerun starts over.
    """
    import pipeline.dedup_index as dedup_index
    import pipeline.steps.dedup as dedup_module

    monkeypatch.setattr(dedup_index, "RUN_MEMORY_ROWS", 64)
    monkeypatch.setattr(dedup_index, "RUN_TIER_LIMIT", 256)
    monkeypatch.setattr(dedup_module, "SIGNING_BATCH", 100)
    killed, writes, warned = _dedup_in_a_child(tmp_path / "reference", None)
    assert not killed and not warned and writes > 200  # checkpoints (fsync, replace), merges (rmtree), spills
    expected = _files(tmp_path / "reference")
    assert "progress.json" in expected
    for kill_at in sorted({*range(5, writes, 9), *range(writes - 9, writes + 1)}):
        folder = tmp_path / f"killed-at-{kill_at}"
        assert _dedup_in_a_child(folder, kill_at) == (True, 0, [])
        killed, _, warned = _dedup_in_a_child(folder, None)
        assert not killed and not warned, f"killed at write {kill_at}: {warned}"
        assert _files(folder) == expected, f"killed at write {kill_at}"
        shutil.rmtree(folder)
