"""Find input files and group them into shards: the plan a run's tasks are built from.

A plan lists every input file (path relative to the input root, size, mtime) in sorted
order, cut into shards of `files_per_shard` (more where that would make over `max_shards`).
It is stored under a name made of the hash of its content, so a task that names a plan names
exactly one set of inputs; a file added, removed or changed gives a new plan and new task
outputs.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pipeline.storage import atomic_write_text


class InputError(ValueError):
    """An input argument that names nothing usable."""


class OutputInsideInputsError(InputError):
    """An output folder inside an input folder walked: every later run would read its output as input."""


DEFAULT_BATCH = "default"
"""The batch of a run given no `--date` or `--batch`: each such run replaces the last one."""
TASK_BATCH = "_task"
"""The batch of `python -m pipeline task`: no run can take the name (`check_batch_name`), so its
document is matched against every published batch, as the next run's would be."""
_BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_batch_name(name: str) -> str:
    """Return a batch name fit for a folder and a partition value, or raise InputError.

    >>> check_batch_name("2026-11-24")
    '2026-11-24'
    >>> check_batch_name("../x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pipeline.inputs.InputError: batch name '../x': use 1-64 letters, digits, '.', '_' or '-', ...
    """
    if not _BATCH_NAME.match(name):
        raise InputError(
            f"batch name {name!r}: use 1-64 letters, digits, '.', '_' or '-', beginning with a letter or digit"
        )
    return name


def parse_date(text: str) -> dt.date:
    """Return the date of a `YYYY-MM-DD` argument, or raise InputError.

    >>> parse_date("2026-02-28")
    datetime.date(2026, 2, 28)
    """
    message = f"date {text!r}: expected YYYY-MM-DD, e.g. 2026-11-24"
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise InputError(message)
    try:
        return dt.date.fromisoformat(text)
    except ValueError:  # e.g. 2026-02-30
        raise InputError(message) from None


def dated_inputs(arguments: list[str] | tuple[str, ...], date: dt.date) -> list[str]:
    """Return the inputs of one day's batch: each argument's `{date}` filled in, or its `<date>/` subfolder.

    A `{date}` placeholder takes a strftime format too (`{date:%Y/%m/%d}`); an argument without
    one names the inbox folder that holds one folder per day.

    >>> dated_inputs(["/data/inbox", "/mirror/{date:%Y/%m/%d}/*.warc.gz"], dt.date(2026, 11, 24))
    ['/data/inbox/2026-11-24', '/mirror/2026/11/24/*.warc.gz']
    """
    return [
        argument.format(date=date) if "{date" in argument else str(Path(argument) / date.isoformat())
        for argument in arguments
    ]


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


def stamp_files(root: str | Path, files: tuple[str, ...] | list[str]) -> str:
    """Return a hash of the root and the files' names, sizes and mtimes: what identifies a shard's inputs.

    A missing file stamps as size -1, so it is read (and quarantined) rather than crashing.
    """
    entries: list[object] = [str(root)]
    for relative in files:
        try:
            stat = (Path(root) / relative).stat()
            entries.append([relative, stat.st_size, stat.st_mtime_ns])
        except OSError:
            entries.append([relative, -1, -1])
    return hashlib.sha256(json.dumps(entries).encode("utf-8")).hexdigest()[:12]


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


def check_output_outside(folder: Path, output: Path) -> None:
    """Raise InputError when `output` lies in `folder`, an input folder walked: runs would read their own output.

    An output under a hidden folder is fine (hidden folders are not walked).

    >>> check_output_outside(Path("/"), Path("/data/.pipeline-out"))
    >>> check_output_outside(Path("/"), Path("/data/out"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    pipeline.inputs.OutputInsideInputsError: the output folder /data/out is inside the input folder /: ...
    """
    folder, target = folder.resolve(), output.resolve()
    if target.is_relative_to(folder) and not any(part.startswith(".") for part in target.relative_to(folder).parts):
        where = "is" if target == folder else "is inside"
        raise OutputInsideInputsError(
            f"the output folder {target} {where} the input folder {folder}: the next run would read "
            "this run's output as input; give an output folder outside the inputs"
        )


def list_input_files(arguments: list[str] | tuple[str, ...], output: Path | None = None) -> tuple[Path, list[Path]]:
    """Return the input root and every file the arguments name, sorted and unique.

    Folders are walked recursively; hidden files and folders (name starting with '.') and
    Luigi's temporary files are skipped. The root is the deepest folder holding them all.
    An `output` folder inside a folder walked is an InputError (see `check_output_outside`).
    """
    if not arguments:
        raise InputError("no input given")
    found: set[Path] = set()
    for argument in arguments:
        for path in _expand(argument):
            if path.is_dir():
                if output is not None:
                    check_output_outside(path, output)
                seen: set[str] = set()  # real paths of folders walked: symlink cycles end here
                for folder, dirs, names in os.walk(path, followlinks=True):
                    real = os.path.realpath(folder)
                    if real in seen:
                        dirs[:] = []
                        continue
                    seen.add(real)
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    found.update(Path(folder) / n for n in names if not n.startswith(".") and "-luigi-tmp-" not in n)
            else:
                found.add(path)
    # Absolute but not resolved: a symlink keeps its own place under the root. What is not a
    # regular file (a FIFO, a socket, a dangling link) stays too: the reader quarantines it with
    # its reason, so it is in the manifest rather than gone without a word.
    files = sorted({Path(os.path.abspath(path)) for path in found if not path.is_dir()})  # noqa: PTH100 - abspath keeps symlinks in place; resolve() would follow them
    if not files:
        raise InputError(f"{' '.join(arguments)}: no input files found")
    folders = [
        Path(os.path.abspath(path)) if path.is_dir() else Path(os.path.abspath(path)).parent  # noqa: PTH100 - abspath keeps symlinks in place; resolve() would follow them
        for argument in arguments
        for path in _expand(argument)
    ]
    root = Path(os.path.commonpath([str(folder) for folder in folders]))
    return root, files


def shard_size(n_files: int, files_per_shard: int, max_shards: int) -> int:
    """Return the files per shard: `files_per_shard`, or more where that would make over `max_shards` shards.

    >>> shard_size(1_000, 64, 1000), shard_size(1_000_000, 64, 1000), shard_size(64_001, 64, 1000)
    (64, 1000, 65)
    """
    return max(files_per_shard, -(-n_files // max_shards))


def make_plan(
    arguments: list[str] | tuple[str, ...], files_per_shard: int, max_shards: int, output: Path | None = None
) -> Plan:
    """List the inputs (refusing an `output` inside them) and cut them into shards (see `shard_size`), in path order."""
    root, files = list_input_files(arguments, output)
    relative = sorted(path.relative_to(root).as_posix() for path in files)
    size = shard_size(len(relative), files_per_shard, max_shards)
    shards = []
    for start in range(0, len(relative), size):
        chunk = tuple(relative[start : start + size])
        shards.append(Shard(str(root), chunk, stamp_files(root, chunk)))
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
    """Read a plan written by `save_plan`; raise InputError naming the file if it cannot be read as one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return Plan(data["root"], tuple(Shard(data["root"], tuple(s["files"]), s["stamp"]) for s in data["shards"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"plan {path}: not a readable plan ({type(error).__name__}: {error})") from error


@lru_cache(maxsize=4)
def cached_plan(path: str) -> Plan:
    """Return `load_plan(path)`, read once per process (a plan's name is the hash of its content)."""
    return load_plan(path)
