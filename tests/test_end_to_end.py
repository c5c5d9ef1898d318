"""The main job on seeds/: boilerplate gone, article kept, every input accounted for."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import luigi
import luigi.task
import pytest

from pipeline import tasks
from pipeline.storage import SyncedLocalTarget
from tests.conftest import SEEDS, Run, run_pipeline


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_manifest_accounts_for_every_seed(seeds_run: Run) -> None:
    manifest = seeds_run.table("manifest")
    assert sorted(row["source"] for row in manifest) == sorted(p.name for p in SEEDS.iterdir())
    assert {row["status"] for row in manifest} == {"kept"}
    assert all(row["chars_after"] < row["chars_before"] for row in manifest)


@pytest.mark.parametrize("seed", sorted(p.name for p in SEEDS.glob("*.txt")))
def test_every_article_paragraph_kept(seeds_run: Run, seed_labels: dict[str, dict[str, list[str]]], seed: str) -> None:
    text = _norm(seeds_run.texts()[seed])
    missing = [p for p in seed_labels[seed]["article_paragraphs"] if _norm(p) not in text]
    assert not missing


@pytest.mark.parametrize("seed", sorted(p.name for p in SEEDS.glob("*.txt")))
def test_every_boilerplate_line_gone(seeds_run: Run, seed_labels: dict[str, dict[str, list[str]]], seed: str) -> None:
    text = seeds_run.texts()[seed]
    lines = {_norm(line) for line in text.split("\n")}
    labels = seed_labels[seed]
    survivors = [
        b for b in labels["boilerplate_lines"] if _norm(b) in lines or (len(b.split()) >= 4 and _norm(b) in _norm(text))
    ]
    survivors += [f for f in labels.get("boilerplate_fragments", []) if f in text]
    assert not survivors


@pytest.mark.parametrize("seed", sorted(p.name for p in SEEDS.glob("*.txt")))
def test_repeated_title_caption_standfirst_kept_once(
    seeds_run: Run, seed_labels: dict[str, dict[str, list[str]]], seed: str
) -> None:
    text = _norm(seeds_run.texts()[seed])
    for repeated in seed_labels[seed]["kept_once"]:
        assert text.count(_norm(repeated)) == 1, repeated


def test_link_broken_sentence_rejoined(seeds_run: Run) -> None:
    text = seeds_run.texts()["001_d07a408cf5f191c8.txt"]
    assert (
        "is the unresolved issue of terrorist sanctuaries in Afghanistan.\n" in text + "\n"
        or "is the unresolved issue of terrorist sanctuaries in Afghanistan. " in text
    )


def test_removals_name_rule_and_text(seeds_run: Run) -> None:
    removals = seeds_run.table("removals")
    rules = Counter((row["source"], row["rule"]) for row in removals)
    seed1 = "001_d07a408cf5f191c8.txt"
    for rule in ("ad_block", "related_block", "app_promo", "comment_widget", "ui_word", "byline_dateline"):
        assert rules[(seed1, rule)] >= 1, rule
    assert rules[("000_dc83cd2776310e7f.txt", "read_more")] == 2
    assert rules[("000_dc83cd2776310e7f.txt", "source_line")] == 1
    assert rules[("003_902b9772195b7b91.txt", "site_promo")] == 1
    assert all(row["text"] for row in removals)


def test_duplicates_point_at_surviving_sentence(seeds_run: Run) -> None:
    documents = {row["id"]: row for row in seeds_run.table("data")}
    duplicates = [row for row in seeds_run.table("removals") if row["stage"] == "find_duplicates"]
    assert len(duplicates) >= 3  # the repeated title, standfirst and caption
    for row in duplicates:
        doc_id, _, position = str(row["duplicate_of"]).rpartition(":")
        assert doc_id == row["duplicate_of_doc"] and position.isdigit()
        survivor = documents[doc_id]["text"]
        assert _norm(str(row["text"]).replace("!", ".")).split()[:4] == _norm(survivor).split()[:4] or _norm(
            str(row["text"])
        )[:40] in _norm(survivor)


def test_corpus_fields(seeds_run: Run) -> None:
    rows = seeds_run.table("data")
    assert len(rows) == 5
    ids = [row["id"] for row in rows]
    assert len(set(ids)) == 5 and all(re.fullmatch(r"[0-9a-f]{16}", str(i)) for i in ids)
    for row in rows:
        assert row["n_sentences"] > 5 and row["n_words"] > 100
        assert row["pipeline_version"] and row["config_hash"]
    titles = {row["source"]: row["title"] for row in rows}
    assert (
        titles["001_d07a408cf5f191c8.txt"]
        == "Pakistan in no rush to recognise Taliban government in Afghanistan, say officials"
    )
    assert titles["002_15483e7a24de36bb.txt"] == "Pakistan Dismisses Recognition Of Taliban As ‘Speculation’"


@pytest.fixture(scope="module")
def two_shard_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The seeds cut into two shards (3 + 2 files): one file a shard, at most two shards."""
    output = tmp_path_factory.mktemp("two_shards") / "output"
    run = run_pipeline(output, "run", "--input", str(SEEDS), config={"input": {"files_per_shard": 1, "max_shards": 2}})
    assert run.returncode == 0, run.stderr
    return run


def test_the_shard_layout_does_not_change_the_corpus(seeds_run: Run, two_shard_run: Run) -> None:
    (plan,) = (two_shard_run.output / "00_plan").glob("plan-*.json")
    assert [len(shard["files"]) for shard in json.loads(plan.read_text(encoding="utf-8"))["shards"]] == [3, 2]
    for table in ("data", "manifest", "removals"):
        ours = [{k: v for k, v in row.items() if k != "config_hash"} for row in two_shard_run.table(table)]
        assert ours == [{k: v for k, v in row.items() if k != "config_hash"} for row in seeds_run.table(table)], table


def _task_graph(task: luigi.Task) -> dict[str, luigi.Task]:
    graph: dict[str, luigi.Task] = {}
    stack = [task]
    while stack:
        current = stack.pop()
        if current.task_id not in graph:
            graph[current.task_id] = current
            stack.extend(luigi.task.flatten(current.requires()))
    return graph


def test_job_shard_tasks_are_named_by_plan_and_a_task_named_by_hand_finds_their_output(two_shard_run: Run) -> None:
    (plan,) = (two_shard_run.output / "00_plan").glob("plan-*.json")
    planned = json.loads(plan.read_text(encoding="utf-8"))
    shards = planned["shards"]
    config = two_shard_run.output.parent / "output-config.toml"  # where `run_pipeline` wrote the run's config
    common = {"config": str(config), "output_dir": str(two_shard_run.output)}
    graph = _task_graph(tasks.WriteReport(plan=str(plan), **common))
    # Every task's output is on disk before its name is (see `SyncedLocalTarget`).
    outputs = [target for task in graph.values() for target in luigi.task.flatten(task.output())]
    assert outputs and all(isinstance(target, SyncedLocalTarget) for target in outputs)
    shard_tasks = [task for task in graph.values() if isinstance(task, tasks.ShardTask)]
    # Five stages a shard; none carries its files (a scheduler holds every task's parameters).
    assert len(shard_tasks) == 5 * len(shards) == 10
    assert all(task.files == () for task in shard_tasks)
    assert sorted(task.index for task in shard_tasks) == [0] * 5 + [1] * 5
    for task in shard_tasks:
        files = shards[task.index]["files"]
        by_hand = type(task)(root=planned["root"], files=files, plan=str(plan), **common)
        assert Path(task.output().path).exists()
        assert by_hand.output().path == task.output().path, (type(task).__name__, task.index)
        if not isinstance(task, tasks.RunShardTask):  # whose output does not depend on the plan
            assert type(task)(root=planned["root"], files=files, **common).output().path == task.output().path
        # Upstream, the shard named by hand is the run's own task: one task id, run once.
        assert [t.task_id for t in luigi.task.flatten(by_hand.requires())] == [
            t.task_id for t in luigi.task.flatten(task.requires())
        ]
