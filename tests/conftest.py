"""Shared fixtures: run the real pipeline (CLI, Luigi task graph) into temporary folders."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
DATA = Path(__file__).resolve().parent / "data"


@dataclass
class Run:
    """A finished run of `python -m pipeline`."""

    returncode: int
    stdout: str
    stderr: str
    output: Path

    @property
    def corpus(self) -> Path:
        return self.output / "corpus"

    def table(self, name: str) -> list[dict[str, object]]:
        """Return the rows of corpus/<name>/ (every batch partition), in batch and file order."""
        rows: list[dict[str, object]] = []
        for part in sorted((self.corpus / name).rglob("part-*.parquet")):
            rows.extend(pq.read_table(part).to_pylist())
        return rows

    def texts(self) -> dict[str, str]:
        """Return the corpus text by source."""
        return {str(row["source"]): str(row["text"]) for row in self.table("data")}


def reproducible_files(folder: Path) -> dict[str, bytes]:
    """Return every file under `folder` by relative path, as the same input and config must reproduce it."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_pipeline(output: Path, *args: str, config: dict[str, dict[str, object]] | None = None, cwd: Path = REPO) -> Run:
    """Run `python -m pipeline run` (or other arguments) as a user would, into `output`."""
    command = [sys.executable, "-m", "pipeline", *(args or ("run",)), "--output", str(output)]
    if config is not None:
        path = output.parent / f"{output.name}-config.toml"
        path.write_text(to_toml(config), encoding="utf-8")
        command += ["--config", str(path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    return Run(done.returncode, done.stdout, done.stderr, output)


def plant_leftovers(output: Path) -> tuple[list[Path], list[Path]]:
    """Put what killed writers leave into `output`: return (those two days old, those just written).

    Each kind: a writer's hidden temporary, and a dedup stage's working folder.
    """
    made: list[list[Path]] = [[], []]
    for age, label in ((2 * 24 * 3600, "stale"), (0, "fresh")):
        temporary = output / "03_stripped" / "0123456789" / f".part-{label}.jsonl.zst.tmp-x1y2z3"
        working = output / "05_duplicates" / f"hash-{label}" / f".plan-{label}-day0-0.in-progress"
        for path in (temporary, working / "progress.json"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}", encoding="utf-8")
        for path in (temporary, working / "progress.json", working):
            when = time.time() - age
            os.utime(path, (when, when))
        made[age == 0] += [temporary, working]
    return made[0], made[1]


def to_toml(config: dict[str, dict[str, object]]) -> str:
    """Render a two-level config mapping as TOML (enough for tests)."""
    lines: list[str] = []
    for section, values in config.items():
        nested = {k: v for k, v in values.items() if isinstance(v, dict)}
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items() if k not in nested]
        for name, table in nested.items():
            lines.append(f"[{section}.{name}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def seeds_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The main job on seeds/ with the embedded defaults, run once for the session."""
    run = run_pipeline(tmp_path_factory.mktemp("seeds") / "output", "run", "--input", str(SEEDS))
    assert run.returncode == 0, run.stderr
    return run


@pytest.fixture(scope="session")
def seed_labels() -> dict[str, dict[str, list[str]]]:
    """Hand labels of the seeds (tests/data/seed_labels.json)."""
    labels: dict[str, dict[str, list[str]]] = json.loads((DATA / "seed_labels.json").read_text("utf-8"))["seeds"]
    return labels


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int, server: subprocess.Popen[bytes], ready: Callable[[socket.socket], bool]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                if ready(connection):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError(f"server on port {port} did not come up (exit {server.poll()})")
        time.sleep(0.1)


def _redis_ping(connection: socket.socket) -> bool:
    connection.sendall(b"PING\r\n")
    return connection.recv(16).startswith(b"+PONG")


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real redis-server on loopback: the one `.ci/run` started (PIPELINE_TEST_REDIS_PORT), or our own."""
    if os.environ.get("PIPELINE_TEST_REDIS_PORT"):
        yield int(os.environ["PIPELINE_TEST_REDIS_PORT"])
        return
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the Redis tests, but redis-server is not installed")
        pytest.skip("redis-server is not installed (CI installs it: apt-get install redis-server)")
    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(folder),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(port, server, _redis_ping)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture(scope="session")
def luigid_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real central Luigi scheduler on loopback: the one `.ci/run` started (PIPELINE_TEST_LUIGID_URL), or our own."""
    if os.environ.get("PIPELINE_TEST_LUIGID_URL"):
        yield os.environ["PIPELINE_TEST_LUIGID_URL"]
        return
    port = _free_port()
    folder = tmp_path_factory.mktemp("luigid")
    luigid = str(Path(sys.executable).with_name("luigid"))
    command = [luigid, "--address", "127.0.0.1", "--port", str(port), "--logdir", str(folder)]
    command += ["--state-path", str(folder / "state")]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder)
    try:
        _wait_for(port, server, lambda connection: True)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(timeout=20)
