"""Scale-out: two worker processes share a real `luigid` and the Redis dedup index, and match one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import redis

from pipeline.evaluation import DEFAULT_EVAL_DIR
from tests.conftest import REPO, plant_leftovers, reproducible_files, to_toml
from tests.test_runs import _mixed_inputs

PREFIX = "scale-out-test"


def _config(folder: Path, redis_port: int) -> Path:
    config = {
        "input": {"files_per_shard": 3},
        "dedup": {"index": "redis", "redis_port": redis_port, "redis_prefix": PREFIX},
    }
    path = folder / "config.toml"
    path.write_text(to_toml(config), encoding="utf-8")
    return path


def _forget_index(redis_port: int) -> None:
    client = redis.Redis(host="127.0.0.1", port=redis_port)
    keys = list(client.scan_iter(match=f"{PREFIX}*"))
    if keys:
        client.delete(*keys)


def _command(inputs: Path, output: Path, config: Path, *more: str) -> list[str]:
    run = ["run", "--input", str(inputs), "--batch", "day1", "--output", str(output), "--config", str(config)]
    return [sys.executable, "-m", "pipeline", *run, "--progress", "never", *more]


def test_two_workers_behind_luigid_give_the_single_process_corpus(
    tmp_path: Path, redis_port: int, luigid_url: str
) -> None:
    inputs = _mixed_inputs(tmp_path / "in")
    pages = sorted((DEFAULT_EVAL_DIR / "html").glob("*.html.gz"))[:40]  # real pages: work worth sharing
    for page in pages:
        shutil.copy(page, inputs / page.name)
    config = _config(tmp_path, redis_port)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    _forget_index(redis_port)
    single = tmp_path / "single"
    done = subprocess.run(
        _command(inputs, single, config), cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr

    _forget_index(redis_port)
    shared = tmp_path / "shared"  # the storage both workers see (one folder here; NFS or the like across machines)
    stale, fresh = plant_leftovers(shared)  # no lock here: only what is a day old is surely another's leftover
    workers = [
        subprocess.Popen(
            _command(inputs, shared, config, "--scheduler-url", luigid_url),
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
        assert f"pipeline: batch day1: {7 + len(pages)} documents in:" in stdout  # each reports the whole run

    assert not any(path.exists() for path in stale) and all(path.exists() for path in fresh)
    assert reproducible_files(shared / "corpus") == reproducible_files(single / "corpus")
    assert reproducible_files(shared / "report") == reproducible_files(single / "report")
    ran_by = {json.loads(p.read_text("utf-8"))["worker"] for p in (shared / "timings").glob("*.json")}
    assert len(ran_by) == 2, ran_by  # both processes did part of the work
    assert not (shared / "state" / "dedup").exists()  # the index lives in Redis

    shown = _scheduler_tasks(luigid_url, "DONE")  # what luigid's web page lists
    mine = [t for t in shown.values() if str(shared) in json.dumps(t["params"])]
    assert {"ReadDocuments", "StripBoilerplate", "FindDuplicates", "WriteCorpus"} <= {t["name"] for t in mine}
    for task in mine:  # every task left a status message and its progress at 100%
        assert task["status_message"], task
        assert task["progress_percentage"] == 100, task


def _scheduler_tasks(url: str, status: str) -> dict[str, dict[str, object]]:
    """Return the tasks luigid's API lists with this status: what its web page shows."""
    query = urllib.parse.quote(json.dumps({"status": status, "upstream_status": "", "search": ""}))
    with urllib.request.urlopen(f"{url.rstrip('/')}/api/task_list?data={query}", timeout=30) as reply:
        return dict(json.loads(reply.read())["response"])
