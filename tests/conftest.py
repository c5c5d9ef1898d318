"""Shared fixtures: run the real pipeline (CLI, Luigi task graph) into temporary folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
        """Return the rows of corpus/<name>/ in file order."""
        rows: list[dict[str, object]] = []
        for part in sorted((self.corpus / name).glob("part-*.parquet")):
            rows.extend(pq.read_table(part).to_pylist())
        return rows

    def texts(self) -> dict[str, str]:
        """Return the corpus text by source."""
        return {str(row["source"]): str(row["text"]) for row in self.table("data")}


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
