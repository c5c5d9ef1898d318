"""Find input files and group them into shards: the plan a run's tasks are built from.

A plan lists every input file (path relative to the input root, size, mtime) in sorted
order, cut into shards of `files_per_shard`. It is stored under a name made of the hash of
its content, so a task that names a plan names exactly one set of inputs; a file added,
removed or changed gives a new plan and new task outputs.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.storage import atomic_write_text


class InputError(ValueError):
    """An input argument that names nothing usable."""


@dataclass(frozen=True)
class Shard:
    """Input files processed by one task of each per-shard stage."""

    root: str
    files: tuple[str, ...]
    stamp: str

    @property
    def name(self) -> str:
        """Return a file-system-safe name: the file's own name for one file, else a hash."""
        return shard_name(self.files, self.stamp)


@dataclass(frozen=True)
class Plan:
    """All shards of a run, in processing order."""

    root: str
    shards: tuple[Shard, ...]

    @property
    def n_files(self) -> int:
        """Return the number of input files."""
        return sum(len(shard.files) for shard in self.shards)


def shard_name(files: tuple[str, ...] | list[str], stamp: str = "") -> str:
    """Return the name under which a shard's stage outputs are stored.

    >>> shard_name(["a/b c.txt"])
    'a__b_c.txt'
    >>> shard_name(["x.txt", "y.txt"], "s").startswith("x.txt+1-")
    True
    """
    first = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in files[0].replace("/", "__"))[:80]
    if len(files) == 1 and not stamp:
        return first
    digest = hashlib.sha256(json.dumps([list(files), stamp]).encode()).hexdigest()[:10]
    return f"{first}+{len(files) - 1}-{digest}" if len(files) > 1 else f"{first}-{digest}"


def _expand(argument: str) -> list[Path]:
    if any(ch in argument for ch in "*?["):
        # glob.glob, not Path.glob: user patterns may be absolute.
        matches = sorted(Path(p) for p in glob.glob(argument, recursive=True))  # noqa: PTH207
        if not matches:
            raise InputError(f"{argument}: the pattern matches no file")
        return matches
    path = Path(argument)
    if not path.exists():
        raise InputError(f"{argument}: no such file or folder")
    return [path]


def list_input_files(arguments: list[str] | tuple[str, ...]) -> tuple[Path, list[Path]]:
    """Return the input root and every regular file the arguments name, sorted and unique.

    Folders are walked recursively; hidden files and folders (name starting with '.') and
    Luigi's temporary files are skipped. The root is the deepest folder holding them all.
    """
    if not arguments:
        raise InputError("no input given")
    found: set[Path] = set()
    for argument in arguments:
        for path in _expand(argument):
            if path.is_dir():
                for folder, dirs, names in os.walk(path):
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    found.update(Path(folder) / n for n in names if not n.startswith(".") and "-luigi-tmp-" not in n)
            elif path.is_file():
                found.add(path)
    files = sorted({path.resolve() for path in found if path.is_file()})
    if not files:
        raise InputError(f"{' '.join(arguments)}: no input files found")
    folders = [
        path.resolve() if path.is_dir() else path.resolve().parent
        for argument in arguments
        for path in _expand(argument)
    ]
    root = Path(os.path.commonpath([str(folder) for folder in folders]))
    return root, files


def make_plan(arguments: list[str] | tuple[str, ...], files_per_shard: int) -> Plan:
    """List the inputs and cut them into shards of `files_per_shard` files, in path order."""
    root, files = list_input_files(arguments)
    relative = sorted((path.relative_to(root).as_posix(), path) for path in files)
    shards = []
    for start in range(0, len(relative), files_per_shard):
        chunk = relative[start : start + files_per_shard]
        stats = [(rel, path.stat()) for rel, path in chunk]
        stamp_blob = json.dumps([[rel, st.st_size, st.st_mtime_ns] for rel, st in stats])
        stamp = hashlib.sha256(stamp_blob.encode()).hexdigest()[:12]
        shards.append(Shard(str(root), tuple(rel for rel, _ in chunk), stamp))
    return Plan(str(root), tuple(shards))


def plan_json(plan: Plan) -> str:
    """Return the plan as canonical JSON."""
    return (
        json.dumps(
            {"root": plan.root, "shards": [{"files": list(s.files), "stamp": s.stamp} for s in plan.shards]},
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )


def save_plan(plan: Plan, folder: Path) -> Path:
    """Store a plan under the hash of its content (atomically) and return its path."""
    text = plan_json(plan)
    path = folder / f"plan-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    if not path.exists():
        atomic_write_text(path, text)
    return path


def load_plan(path: str | Path) -> Plan:
    """Read a plan written by `save_plan`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return Plan(data["root"], tuple(Shard(data["root"], tuple(s["files"]), s["stamp"]) for s in data["shards"]))
