"""Cross-document evidence and the learned line classifier, through the real task graph.

- Lines repeated across a site's documents are removed once `site_min_documents` documents
  hold them, counting this run and earlier ones, and a rerun of the same batch counts nothing twice.
- The shipped classifier is a small JSON file of LightGBM text dumps, its decisions are in the
  removal log with their scores, and training is deterministic.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.config import PipelineConfig
from pipeline.evaluation import LabelledPage, load_pages, render_blocks, word_prf
from pipeline.line_stats import LineStatsParams, SiteLineStats
from pipeline.steps.boilerplate import line_key, prepare_lines, strip_boilerplate
from pipeline.steps.extract import DOM_FEATURES, extract_page_lines
from pipeline.steps.line_classifier import (
    DEFAULT_MODEL_PATH,
    DEFAULT_PAGE_MODEL_PATH,
    FIRST_STAGE_FEATURES,
    LineClassifier,
    default_classifier,
    default_page_classifier,
    line_features,
)
from pipeline.storage import read_records
from pipeline.tasks import preload_models
from pipeline.training import (
    AUGMENTED_RENDERINGS,
    PAGE_BOOSTING,
    PAGE_RENDERING,
    PLAIN_BOOSTING,
    article_text,
    augmented_text,
    cross_validated_scores,
    label_lines,
    page_lexicon,
    prepare_pages,
    train_models,
)
from tests.conftest import SEEDS, Run, run_pipeline
from tests.samples import WarcPage, eval_dir, write_warc, zstd

BIO = "Jane Roe covers city hall for the Daily Planet and has written about local politics since 2009."
PROMO = "Support independent local journalism with a subscription to the Daily Planet today."


STORIES = (
    "The council voted on Tuesday to rebuild the old bridge over the river before the winter. "
    "Engineers had warned in March that its northern pier was cracking after the spring floods.",
    "A new bakery opened on Main Street, and the queue reached the station by seven o'clock. "
    "Its owners trained in Lyon and plan to hire six apprentices from the technical college.",
    "Firefighters rescued two hikers stranded by the flood on the northern ridge overnight. "
    "Both were taken to the regional hospital with mild hypothermia and released by noon.",
    "The library will stay open until midnight during exam weeks, the mayor announced. "
    "Students had collected four thousand signatures asking for longer hours last autumn.",
    "School buses are running late because the ring road is closed for resurfacing works. "
    "Parents were told to expect delays of twenty minutes until the contractor finishes in May.",
    "Hospital staff received an award for cutting emergency waiting times by a third. "
    "The jury praised a triage desk staffed by senior nurses at the entrance since January.",
)


def _article(number: int) -> str:
    """A plain-text scrape of one article: its own story, plus the site's bio and promo lines."""
    return f"Local news {number}\n\n{STORIES[number % len(STORIES)]}\n\n{BIO}\n{PROMO}\n"


def _write_batch(folder: Path, numbers: range) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for number in numbers:
        (folder / f"story-{number:02d}.txt").write_text(_article(number), encoding="utf-8")
    return folder


def _removed(run: Run, rule: str) -> list[dict[str, object]]:
    return [row for row in run.table("removals") if row["rule"] == rule]


def test_lines_repeated_across_a_site_are_removed_over_runs(tmp_path: Path) -> None:
    output = tmp_path / "output"
    # Each day's scrape in its own folder, with one sub-folder per site: without URLs, the
    # folder a file sits in (relative to the input root) is its site.
    day1, day2 = tmp_path / "day1", tmp_path / "day2"
    _write_batch(day1 / "planet", range(1, 4))
    first = run_pipeline(output, "run", "--input", str(day1))
    assert first.returncode == 0, first.stderr
    assert not _removed(first, "site_repeated")  # three documents: below site_min_documents (5)
    assert len(first.texts()) == 3

    # The next day's batch: two more stories. Earlier runs' counts make five documents.
    _write_batch(day2 / "planet", range(4, 6))
    second = run_pipeline(output, "run", "--input", str(day2))
    assert second.returncode == 0, second.stderr
    texts = second.texts()
    assert len(texts) == 2
    assert not any(BIO in text or PROMO in text for text in texts.values())
    assert all(any(story in text for story in STORIES) for text in texts.values())
    removed = _removed(second, "site_repeated")
    assert {row["text"] for row in removed} == {BIO, PROMO}
    assert {row["score"] for row in removed} == {5.0}

    state = output / "state" / "site_lines.parquet"
    table = SiteLineStats.load(state, LineStatsParams(slots=8))
    # Rerunning a day already counted changes no count and no output.
    rerun = run_pipeline(output, "run", "--input", str(day2))
    assert rerun.returncode == 0, rerun.stderr
    after = SiteLineStats.load(state, LineStatsParams(slots=8))
    assert len(after) == len(table)
    assert (after.docs == table.docs).all()
    assert rerun.texts() == texts


def test_site_rule_switched_off_keeps_repeated_lines(tmp_path: Path) -> None:
    site = _write_batch(tmp_path / "day" / "planet", range(1, 7)).parent
    run = run_pipeline(
        tmp_path / "output", "run", "--input", str(site), config={"boilerplate": {"rules": {"site_repeated": False}}}
    )
    assert run.returncode == 0, run.stderr
    assert not _removed(run, "site_repeated")
    assert not (tmp_path / "output" / "state" / "site_lines.parquet").exists()


def test_corrupt_site_state_fails_the_run_naming_the_file(tmp_path: Path) -> None:
    state = tmp_path / "output" / "state" / "site_lines.parquet"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"not parquet at all")
    run = run_pipeline(tmp_path / "output", "run", "--input", str(SEEDS))
    assert run.returncode == 1
    assert "site_lines.parquet" in run.stderr


def test_shipped_model_is_small_json_without_pickle() -> None:
    raw = DEFAULT_MODEL_PATH.read_bytes()
    assert len(raw) < 5_000_000
    document = json.loads(raw)
    assert document["format"] == "pipeline-line-classifier"
    assert 0.0 < document["threshold"] < 1.0
    assert b"pickle" not in raw and not raw.startswith(b"\x80")
    LineClassifier.from_json(document)  # loads: its features are the code's features


def test_a_damaged_model_file_is_refused_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "model.json"
    document = json.loads(DEFAULT_MODEL_PATH.read_text(encoding="utf-8"))
    document["features"] = document["features"][:-1]
    bad.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ValueError, match=r"model\.json.*other features"):
        LineClassifier.load(bad)


@pytest.fixture(scope="module")
def some_pages() -> list[LabelledPage]:
    if not (eval_dir() / "ground-truth").is_dir():
        pytest.skip("evaluation data not found")
    return list(load_pages(eval_dir(), limit=40))


def test_classifier_decisions_are_logged_with_scores(tmp_path: Path, some_pages: list[LabelledPage]) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for page in some_pages[:8]:
        (inputs / f"{page.file_id}.txt").write_text(render_blocks(page.html), encoding="utf-8")
    for page in some_pages[8:11]:  # HTML pages: trafilatura chooses their text, the classifier stays out
        (inputs / f"{page.file_id}.html").write_text(page.html, encoding="utf-8")
    run = run_pipeline(tmp_path / "output", "run", "--input", str(inputs))  # on by default
    assert run.returncode == 0, run.stderr
    decisions = _removed(run, "line_classifier")
    assert {row["source"] for row in decisions} <= {f"{page.file_id}.txt" for page in some_pages[:8]}
    assert decisions
    threshold = default_classifier().threshold
    assert all(threshold <= float(str(row["score"])) <= 1.0 for row in decisions)
    # The cleaned text is closer to the human-checked article text than the raw rendering.
    texts = run.texts()
    for page in some_pages[:8]:
        source = f"{page.file_id}.txt"
        raw_f1 = word_prf(render_blocks(page.html), page.main_content)[2]
        assert word_prf(texts.get(source, ""), page.main_content)[2] >= raw_f1 - 0.02, source


def test_classifier_switch_and_threshold(some_pages: list[LabelledPage]) -> None:
    text = render_blocks(some_pages[0].html)
    classifier = default_classifier()
    off = PipelineConfig.model_validate({"boilerplate": {"rules": {"line_classifier": False}}})
    on = {"line_classifier": True}
    strict = PipelineConfig.model_validate({"boilerplate": {"classifier_threshold": 0.05, "rules": on}})
    default = PipelineConfig.model_validate({"boilerplate": {"rules": on}})
    removed = {
        name: sum(
            r.rule == "line_classifier" for r in strip_boilerplate(text, cfg.boilerplate, classifier, "en").removals
        )
        for name, cfg in (("off", off), ("strict", strict), ("default", default))
    }
    assert removed["off"] == 0
    assert removed["strict"] > removed["default"] > 0


def test_scores_of_some_lines_are_those_lines_of_every_score(some_pages: list[LabelledPage]) -> None:
    cfg = PipelineConfig()
    classifier = default_classifier()
    for page in some_pages[:3]:
        lines, _ = prepare_lines(render_blocks(page.html), cfg.boilerplate)
        content = [line.text for line in lines if line.text]
        features = line_features(content, [None] * len(content), "en")
        keys = [line_key(line) for line in content]
        every = classifier.boilerplate_scores(features, keys)
        rows = list(range(0, len(content), 3))
        np.testing.assert_array_equal(classifier.boilerplate_scores(features, keys, rows), every[rows])
        assert classifier.boilerplate_scores(features, keys, []).shape == (0,)
        with pytest.raises(ValueError, match="line keys"):
            classifier.boilerplate_scores(features, keys[1:])


def test_training_is_deterministic(some_pages: list[LabelledPage]) -> None:
    prepared = prepare_pages(some_pages[:24], PipelineConfig(), workers=1)
    models = [train_models(prepared, inner_folds=2) for _ in range(2)]
    assert models[0].first.model_to_string() == models[1].first.model_to_string()
    assert models[0].second.model_to_string() == models[1].second.model_to_string()
    assert models[0].lexicon.to_json() == models[1].lexicon.to_json()
    assert models[0].lexicon.weights  # 24 pages share enough phrases to weigh some
    assert models[0].first.num_feature() == len(FIRST_STAGE_FEATURES)
    assert [models[0].first.num_trees(), models[0].second.num_trees()] == [stage.rounds for stage in PLAIN_BOOSTING]


def test_augmented_renderings_keep_every_article_line_and_are_trained_on_not_scored(
    some_pages: list[LabelledPage],
) -> None:
    for page in some_pages[:6]:
        blocks = render_blocks(page.html).split("\n")
        coarse = augmented_text(page, "coarse_blocks").split("\n")
        assert len(coarse) < len(blocks) and " ".join(coarse).split() == " ".join(blocks).split()  # fewer, longer lines
        perturbed = augmented_text(page, "blocks_perturbed")
        assert perturbed == augmented_text(page, "blocks_perturbed") != "\n".join(blocks)  # seeded by the page
        labels = label_lines(blocks, article_text(page))
        assert all(line in perturbed for line, label in zip(blocks, labels, strict=True) if label >= 0.5)
        assert len(perturbed.split("\n")) < len(blocks)  # boilerplate lines left out, neighbours joined
        article = {line: label >= 0.5 for line, label in zip(blocks, labels, strict=True)}
        for line in perturbed.split("\n"):  # an original line, or two of one kind joined: no prose glued to furniture
            splits = [(line[:i], line[i + 1 :]) for i, char in enumerate(line) if char == " "]
            assert line in article or any(
                a in article and b in article and article[a] == article[b] for a, b in splits
            ), line
    cfg = PipelineConfig()
    prepared = prepare_pages(some_pages[:12], cfg, workers=1)
    extra = prepare_pages(some_pages[:12], cfg, workers=1, renderings=AUGMENTED_RENDERINGS)
    assert {page.rendering for page in extra} == set(AUGMENTED_RENDERINGS)
    scores, models = cross_validated_scores(prepared, folds=2, extra=extra)
    assert [len(s) for s in scores] == [len(page.labels) for page in prepared]  # the scored pages only
    _, without = cross_validated_scores(prepared, folds=2)
    assert models[0].first.model_to_string() != without[0].first.model_to_string()


def test_shipped_models_have_the_trees_training_names_for_them() -> None:
    # A change to a model's boosting in `pipeline/training.py` must come with the model retrained.
    for classifier, boosting in (
        (default_classifier(), PLAIN_BOOSTING),
        (default_page_classifier(DOM_FEATURES), PAGE_BOOSTING),
    ):
        assert [classifier.first.num_trees(), classifier.second.num_trees()] == [stage.rounds for stage in boosting]


def test_lexicon_keeps_only_phrases_shared_by_several_sites(some_pages: list[LabelledPage]) -> None:
    prepared = prepare_pages(some_pages[:24], PipelineConfig(), workers=1)
    sites: dict[str, set[str]] = {}
    for page in prepared:
        for key in page.keys:
            words = key.split()
            for gram in {*words, *(" ".join(pair) for pair in itertools.pairwise(words))}:
                sites.setdefault(gram, set()).add(page.site)
    lexicon = page_lexicon(prepared, min_sites=3)
    assert lexicon.weights
    assert all(len(sites[gram]) >= 3 for gram in lexicon.weights)
    # A phrase of one page only (its own topic) is never weighed, however often it repeats there.
    assert not any(gram in lexicon.weights for gram, found in sites.items() if len(found) == 1)


def test_shipped_lexicon_weighs_boilerplate_phrases_above_article_prose() -> None:
    lexicon = default_classifier().lexicon
    assert 0 < len(lexicon.weights) < 200_000
    legal, promo, prose = lexicon.line_scores(
        [
            line_key("Copyright 2024 Example Media. All rights reserved."),
            line_key("Sign up for our newsletter to get the latest news in your inbox."),
            line_key(next(SEEDS.glob("001_*.txt")).read_text(encoding="utf-8").split("\n")[6]),
        ]
    )[:, 0]
    assert legal > prose and promo > prose, (legal, promo, prose)


def test_a_model_file_whose_lexicon_is_not_numbers_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "model.json"
    document = json.loads(DEFAULT_MODEL_PATH.read_text(encoding="utf-8"))
    document["lexicon"] = {"rights reserved": "high"}
    bad.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ValueError, match=r"model\.json.*lexicon"):
        LineClassifier.load(bad)


def test_state_file_is_parquet_with_format_metadata(tmp_path: Path) -> None:
    run = run_pipeline(tmp_path / "output", "run", "--input", str(SEEDS))
    assert run.returncode == 0, run.stderr
    metadata = pq.read_schema(tmp_path / "output" / "state" / "site_lines.parquet").metadata
    assert metadata[b"format"] == b"pipeline-site-line-stats"


class _ScoresEverything:
    """A stand-in classifier that calls every line boilerplate, or only the last one."""

    threshold = 0.5

    def __init__(self, only_last: bool) -> None:
        self.only_last = only_last

    def boilerplate_scores(
        self, features: np.ndarray, keys: list[str], rows: list[int] | None = None, context: object = None
    ) -> np.ndarray:
        scores = np.full(len(features), 0.1 if self.only_last else 0.9)
        scores[-1] = 0.9
        return scores if rows is None else scores[rows]


def test_classifier_never_empties_a_page() -> None:
    cfg = PipelineConfig.model_validate({"boilerplate": {"rules": {"line_classifier": True}}})
    text = f"Local news 1\n\n{STORIES[0]}\n\n{BIO}"
    everything = strip_boilerplate(text, cfg.boilerplate, _ScoresEverything(only_last=False), "en")  # type: ignore[arg-type]
    assert everything.text == text and not everything.removals
    last = strip_boilerplate(text, cfg.boilerplate, _ScoresEverything(only_last=True), "en")  # type: ignore[arg-type]
    assert [(r.rule, r.text, r.score) for r in last.removals] == [("line_classifier", BIO, 0.9)]


def test_models_are_loaded_before_workers_fork_only_when_a_stage_needs_them() -> None:
    off = PipelineConfig.model_validate({"boilerplate": {"rules": {"line_classifier": False}}})
    default_classifier.cache_clear()
    preload_models(off)
    assert default_classifier.cache_info().currsize == 0
    preload_models(PipelineConfig())
    assert default_classifier.cache_info().currsize == 1


def test_what_shard_tasks_import_lazily_is_imported_before_workers_fork_without_the_classifier() -> None:
    """Forked shard tasks that count or read site lines import nothing more (pyarrow's pandas, ~0.1 s a task)."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import tempfile\n"
        "from pipeline.config import PipelineConfig\n"
        "from pipeline.line_stats import LineStatsParams, SiteLineCounts, SiteLineStats\n"
        "from pipeline.tasks import preload_models\n"
        "preload_models(PipelineConfig.model_validate({'boilerplate': {'rules': {'line_classifier': False}}}))\n"
        "before = set(sys.modules)\n"
        "params, folder = LineStatsParams(), Path(tempfile.mkdtemp())\n"
        "documents = [('site-a', f'doc-{n}', ['subscribe to our newsletter', f'story {n}']) for n in range(3)]\n"
        "chunks = SiteLineStats.chunks_of_documents(documents, params, 0)\n"
        "SiteLineStats.save_chunks(folder / 'lines.parquet', chunks, params)\n"
        "counts = SiteLineStats.from_documents(documents, params, 0).counts()\n"
        "counts.save(folder / 'counts.arrow')\n"
        "SiteLineCounts.open(folder / 'counts.arrow')\n"
        "assert set(sys.modules) == before, sorted(set(sys.modules) - before)[:10]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_model_loads_without_importing_scikit_learn_which_still_imports_afterwards() -> None:
    code = (
        "import sys\n"
        "from pipeline.steps.line_classifier import default_classifier\n"
        "default_classifier()\n"
        "assert 'sklearn' not in sys.modules\n"
        "import importlib.util\n"
        "if importlib.util.find_spec('sklearn'):\n"
        "    import sklearn.base\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


class _ScoresFirstAndLast:
    """A stand-in classifier that calls the first and the last line it judges boilerplate."""

    threshold = 0.5

    def boilerplate_scores(
        self, features: np.ndarray, keys: list[str], rows: list[int] | None = None, context: object = None
    ) -> np.ndarray:
        scores = np.full(len(features), 0.1)
        scores[[0, -1]] = 0.9
        return scores if rows is None else scores[rows]


def test_classifier_leaves_the_headline_and_its_copies_to_the_rules() -> None:
    cfg = PipelineConfig.model_validate({"boilerplate": {"rules": {"line_classifier": True}}})
    text = f"Bridge to close for repairs\n\nBridge to close for repairs\n\n{STORIES[0]}\n\n{BIO}"
    out = strip_boilerplate(text, cfg.boilerplate, _ScoresFirstAndLast(), "en")  # type: ignore[arg-type]
    assert [(r.rule, r.text) for r in out.removals] == [("line_classifier", BIO)]
    # A title-like first line with no prose after it is no headline: a list of teasers stays judged.
    teasers = "\n".join(
        ["Bridge to close for repairs", "Bakery opens on Main Street", "Library hours extended", "Buses late", BIO]
    )
    out = strip_boilerplate(teasers, cfg.boilerplate, _ScoresFirstAndLast(), "en")  # type: ignore[arg-type]
    assert [r.text for r in out.removals] == ["Bridge to close for repairs", BIO]


def test_run_time_scores_are_the_training_features_scores(some_pages: list[LabelledPage]) -> None:
    """The pipeline scores a line from the same features and lexicon keys the training path gives it."""
    cfg = PipelineConfig.model_validate({"boilerplate": {"rules": {"line_classifier": True}}})
    classifier = default_classifier()
    compared = 0
    for prepared in prepare_pages(some_pages[:6], cfg, workers=1):
        expected = classifier.boilerplate_scores(prepared.features, prepared.keys)
        assert not np.array_equal(expected, classifier.boilerplate_scores(prepared.features, [""] * len(expected)))
        by_position = {
            prepared.lines[i].position: round(score, 4)
            for i, score in zip(prepared.judged_index, expected.tolist(), strict=True)
        }
        out = strip_boilerplate(prepared.text, cfg.boilerplate, classifier, prepared.language)
        for removal in out.removals:
            if removal.rule == "line_classifier":
                assert removal.score == by_position[removal.position], removal.text
                compared += 1
    assert compared > 20


def test_shipped_page_model_reads_the_markup_context() -> None:
    raw = DEFAULT_PAGE_MODEL_PATH.read_bytes()
    assert len(raw) < 5_000_000 and b"pickle" not in raw
    classifier = default_page_classifier(DOM_FEATURES)
    assert classifier.context_features == DOM_FEATURES
    with pytest.raises(ValueError, match="other context columns"):
        LineClassifier.load(DEFAULT_PAGE_MODEL_PATH)  # a caller giving no context
    features = np.zeros((3, len(FIRST_STAGE_FEATURES) - 4))
    with pytest.raises(ValueError, match="context columns"):
        classifier.boilerplate_scores(features, ["a", "b", "c"])


def test_html_pages_rendered_whole_are_cleaned_by_the_page_classifier(
    tmp_path: Path, some_pages: list[LabelledPage]
) -> None:
    """With `html.main_content = "lines"`, the page's lines go through the rules and the page classifier."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    pages = some_pages[:12]
    sources = {}
    for page in pages[:8]:
        (inputs / f"{page.file_id}.html").write_text(page.html, encoding="utf-8")
        sources[page.file_id] = f"{page.file_id}.html"
    warc = [WarcPage(f"https://site{n}.example/story", page.html.encode("utf-8")) for n, page in enumerate(pages[8:10])]
    (inputs / "crawl.warc.gz").write_bytes(write_warc(warc, compress=True, with_requests=False))
    sources.update({page.file_id: f"crawl.warc.gz#{n}" for n, page in enumerate(pages[8:10], 2)})  # after warcinfo
    dump = "".join(json.dumps({"text": page.html}) + "\n" for page in pages[10:])
    (inputs / "dump.jsonl").write_text(dump, encoding="utf-8")
    sources.update({page.file_id: f"dump.jsonl#{n}" for n, page in enumerate(pages[10:], 1)})
    config = {"html": {"main_content": "lines"}}
    run = run_pipeline(tmp_path / "output", "run", "--input", str(inputs), config=config)
    assert run.returncode == 0, run.stderr
    decisions = _removed(run, "line_classifier")
    assert {row["source"] for row in decisions} == set(sources.values())
    threshold = default_page_classifier(DOM_FEATURES).threshold
    assert all(threshold <= float(str(row["score"])) <= 1.0 for row in decisions)
    # The context rides along to the stripping, and no further.
    for stage, has_context in (("02_repaired", True), ("03_stripped", False), ("04_sentences", False)):
        for path in (run.output / stage).rglob("*.jsonl.zst"):
            with zstd.open(path, "rt", encoding="utf-8") as handle:
                records = [record for record in read_records(handle) if record["status"] == "ok"]
            assert records and all(("line_context" in record) == has_context for record in records), path
    manifest = {row["source"]: row for row in run.table("manifest")}
    texts = run.texts()
    raw, cleaned = [], []
    for page in pages:
        source = sources[page.file_id]
        assert manifest[source]["status"] == "kept", source
        raw.append(word_prf(extract_page_lines(page.html).text, page.main_content)[2])
        cleaned.append(word_prf(texts[source], page.main_content)[2])
    assert np.mean(cleaned) > np.mean(raw) + 0.1, (cleaned, raw)


def test_run_time_page_scores_are_the_training_scores(some_pages: list[LabelledPage]) -> None:
    """A whole page's line is scored at run time from the same features and context as in training."""
    cfg = PipelineConfig.model_validate({"html": {"main_content": "lines"}})
    classifier = default_page_classifier(DOM_FEATURES)
    compared = 0
    for prepared in prepare_pages(some_pages[:6], cfg, workers=1, renderings=(PAGE_RENDERING,)):
        expected = classifier.boilerplate_scores(prepared.features, prepared.keys, context=prepared.context)
        blind = classifier.boilerplate_scores(prepared.features, prepared.keys, context=np.zeros_like(prepared.context))
        assert not np.array_equal(expected, blind)  # the context is read
        by_position = {
            prepared.lines[i].position: round(score, 4)
            for i, score in zip(prepared.judged_index, expected.tolist(), strict=True)
        }
        page = next(page for page in some_pages if page.file_id == prepared.file_id)
        context = extract_page_lines(page.html, page.url or None).line_context
        out = strip_boilerplate(prepared.text, cfg.boilerplate, classifier, prepared.language, line_context=context)
        for removal in out.removals:
            if removal.rule == "line_classifier":
                assert removal.score == by_position[removal.position], removal.text
                compared += 1
    assert compared > 20
