"""ftfy's own labelled cases through the pipeline's whole text path (the real Luigi task graph).

Every case of ../shared/eval/ftfy-cases/*.json is one line of a JSON Lines input. The job runs
over it with boilerplate removal, deduplication and the word minimum off (they drop content on
purpose and are not text normalisation), so what is left is reading and decoding, encoding
repair, sentence splitting and re-joining, and corpus assembly. It runs twice:

- with the encoding section set as ftfy's defaults are (`uncurl_quotes = true`, which is what the
  labels assume): every case ftfy itself passes (`ftfy.fix_text(original) == fixed`) must come out
  of the corpus as `fixed`; a case ftfy fails is an xfail that says so;
- with the pipeline's own defaults (curly quotes kept): every negative case comes out unchanged
  (except "Mostly negative: we only need to fix C1 control characters", whose label asks for a
  repair), and every case comes out exactly as ftfy with the same settings makes it, so the
  pipeline's own steps add nothing to ftfy's repair.

Every case is kept in both runs, with its manifest reason in the failure message when it is not.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ftfy
import pyarrow.parquet as pq
import pytest

from pipeline.config import EncodingConfig
from pipeline.evaluation import REPO_ROOT
from pipeline.steps.encoding import ftfy_config
from tests.conftest import Run, run_pipeline

CASES_DIR = REPO_ROOT.parent / "shared" / "eval" / "ftfy-cases"
INPUT_NAME = "ftfy-cases.jsonl"
TEXT_PATH_ONLY: dict[str, dict[str, object]] = {
    "boilerplate": {"enabled": False},
    "dedup": {"enabled": False},
    "corpus": {"min_words": 0},
}
AS_FTFY_DEFAULTS = {**TEXT_PATH_ONLY, "encoding": {"uncurl_quotes": True}}


@dataclass(frozen=True)
class Case:
    """One labelled ftfy case and where it sits in the input file."""

    line: int  # 1-based line of the JSON Lines input: the manifest's `source` is INPUT_NAME#line
    case_id: str  # the JSON line's "id", kept by the pipeline as `source_id`
    file: str
    label: str
    original: str
    fixed: str
    negative: bool
    fixed_encoding: str | None  # ftfy's output with only its encoding fixes, where the case gives it
    ftfy_output: str
    ftfy_output_as_configured: str  # ftfy with the pipeline's default encoding settings

    @property
    def ftfy_passes(self) -> bool:
        return self.ftfy_output == self.fixed

    @property
    def expected(self) -> str:
        """Return what the corpus must hold for this case."""
        if not self.negative or self.fixed == self.original:
            return self.fixed
        # A negative case whose `fixed-encoding` is the original differs in `fixed` only by ftfy's
        # quote uncurling: it must stay unchanged. Without that, `fixed` is a repair the case
        # itself asks for (a C1 control character), and it is held to it.
        return self.original if self.fixed_encoding == self.original else self.fixed


def load_cases(folder: Path = CASES_DIR) -> list[Case]:
    """Return every case of every file of the folder, in file-name order (none if it is missing)."""
    cases: list[Case] = []
    if not folder.is_dir():
        return cases
    for path in sorted(folder.glob("*.json")):
        for number, raw in enumerate(json.loads(path.read_text("utf-8"))):
            original = raw["original"]
            cases.append(
                Case(
                    line=len(cases) + 1,
                    case_id=f"{path.stem}:{number}",
                    file=path.name,
                    label=raw["label"],
                    original=original,
                    fixed=raw["fixed"],
                    negative=path.stem == "negative",
                    fixed_encoding=raw.get("fixed-encoding"),
                    ftfy_output=ftfy.fix_text(original),
                    ftfy_output_as_configured=ftfy.fix_text(original, PIPELINE_FTFY),
                )
            )
    return cases


def _params(cases: list[Case]) -> list[Any]:
    if not cases:  # the fixture skips (or fails under CI) before this placeholder is used
        return [pytest.param(None, id="ftfy-cases-missing")]
    params = []
    seen: dict[str, int] = {}
    for case in cases:
        seen[case.label] = seen.get(case.label, 0) + 1
        test_id = case.label if seen[case.label] == 1 else f"{case.label} ({seen[case.label]})"
        marks = []
        if not case.ftfy_passes:
            reason = f"ftfy {ftfy.__version__} itself fails this case: it gives {case.ftfy_output!r}"
            marks.append(pytest.mark.xfail(reason=reason, strict=False))
        params.append(pytest.param(case, id=test_id, marks=marks))
    return params


PIPELINE_FTFY = ftfy_config(EncodingConfig())._replace(explain=False)
CASES = load_cases()


@dataclass(frozen=True)
class Outcome:
    """The pipeline's result for the whole input: corpus rows and manifest rows by source."""

    run: Run
    data: dict[str, dict[str, Any]]
    manifest: dict[str, dict[str, Any]]


def _rows(folder: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for part in sorted(folder.rglob("part-*.parquet")):
        rows.extend(pq.read_table(part).to_pylist())
    return rows


def _run_cases(tmp_path_factory: pytest.TempPathFactory, name: str, config: dict[str, dict[str, object]]) -> Outcome:
    """Write every case as one JSON line, run the job once over them, read the corpus back."""
    if not CASES_DIR.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI must run this check, but the ftfy cases are missing at {CASES_DIR}")
        pytest.skip(f"ftfy cases not found at {CASES_DIR}")
    root = tmp_path_factory.mktemp(name)
    inputs = root / "inputs"
    inputs.mkdir()
    # Each case is a page of its own (a URL): cases with the same text are not one document.
    lines = [
        json.dumps(
            {"id": case.case_id, "url": f"https://ftfy-cases.test/{case.line}", "text": case.original},
            ensure_ascii=False,
        )
        for case in CASES
    ]
    (inputs / INPUT_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = run_pipeline(root / "output", "run", "--input", str(inputs), config=config)
    assert run.returncode == 0, f"exit status {run.returncode}\n{run.stderr}"
    data = _rows(run.corpus / "data")
    manifest = _rows(run.corpus / "manifest")
    by_source = {str(row["source"]): row for row in data}
    assert len(by_source) == len(data), "two corpus rows share a source"
    for row in data:  # the dump's own id and the line number must name the same case
        assert row["source_id"] == CASES[int(str(row["source"]).rsplit("#", 1)[1]) - 1].case_id, row["source"]
    return Outcome(run, by_source, {str(row["source"]): row for row in manifest})


@pytest.fixture(scope="module")
def as_ftfy(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The cases through the pipeline with the encoding settings of ftfy's defaults."""
    return _run_cases(tmp_path_factory, "ftfy-defaults", AS_FTFY_DEFAULTS)


@pytest.fixture(scope="module")
def as_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The cases through the pipeline with its own default encoding settings."""
    return _run_cases(tmp_path_factory, "pipeline-defaults", TEXT_PATH_ONLY)


def _kept_text(outcome: Outcome, case: Case) -> str:
    source = f"{INPUT_NAME}#{case.line}"
    row = outcome.manifest.get(source)
    assert row is not None, f"{case.file}: {case.label!r}: no manifest row for {source}"
    assert row["status"] == "kept", f"{case.file}: {case.label!r}: {row['status']}: {row['reason']}"
    document = outcome.data[source]
    assert document["source_id"] == case.case_id
    return str(document["text"])


@pytest.mark.parametrize("which", ["as_ftfy", "as_pipeline"])
def test_every_line_has_one_manifest_row(which: str, request: pytest.FixtureRequest) -> None:
    outcome: Outcome = request.getfixturevalue(which)
    assert CASES, f"no cases found in {CASES_DIR}"
    assert set(outcome.manifest) == {f"{INPUT_NAME}#{case.line}" for case in CASES}
    assert len(outcome.manifest) == len(CASES)


@pytest.mark.parametrize("case", _params(CASES))
def test_ftfy_case_passes_through_the_pipeline(as_ftfy: Outcome, case: Case | None) -> None:
    assert case is not None
    got = _kept_text(as_ftfy, case)
    assert got == case.fixed, (
        f"{case.file}: {case.label!r}\n  original: {case.original!r}\n  expected: {case.fixed!r}\n  got:      {got!r}"
    )


@pytest.mark.parametrize("case", [p for p in _params(CASES) if p.values[0] is None or p.values[0].negative])
def test_negative_case_comes_out_unchanged_with_pipeline_defaults(as_pipeline: Outcome, case: Case | None) -> None:
    assert case is not None
    got = _kept_text(as_pipeline, case)
    assert got == case.expected, (
        f"{case.file}: {case.label!r} should come out unchanged\n  original: {case.original!r}\n  got:      {got!r}"
    )


def test_pipeline_defaults_add_nothing_to_ftfy(as_pipeline: Outcome) -> None:
    """With curly quotes kept, every case is exactly what ftfy makes of it with the same settings."""
    differing = {
        case.label: (case.ftfy_output_as_configured, _kept_text(as_pipeline, case))
        for case in CASES
        if _kept_text(as_pipeline, case) != case.ftfy_output_as_configured
    }
    assert not differing
