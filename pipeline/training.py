"""Train the line classifier from labelled pages, with cross-validation grouped by site.

Each labelled page is rendered to plain text both ways a scraper saves it (one line per block;
one line per text node), cleaned up to the boilerplate step exactly as the pipeline does
(encoding repair, rejoining, the named rules), and each remaining line is labelled by how much
of it belongs to the page's human-checked title and main content. Folds are drawn by site (URL host), so
no page of a site is scored by a model that saw another page of it. The first stage's lexicon is
fitted from the same labels (`page_lexicon`), and training lines read it out of fold by site.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import numpy as np

from pipeline.config import PipelineConfig
from pipeline.evaluation import (
    LabelledPage,
    render_blocks,
    render_coarse_blocks,
    render_text_nodes,
    word_prf,
    word_tokens,
)
from pipeline.steps.boilerplate import SourceLine, judge_lines, language_sample, line_key, prepare_lines
from pipeline.steps.encoding import repair_encoding
from pipeline.steps.extract import DOM_FEATURES, NoMainContentError, extract_page_lines
from pipeline.steps.language import identify_language
from pipeline.steps.line_classifier import (
    FEATURES,
    LEXICAL_FEATURES,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    STACKED_FEATURES,
    FloatArray,
    Lexicon,
    LineClassifier,
    candidate_lines,
    fit_lexicon,
    line_features,
    stacked_features,
)

RENDERINGS: Final[dict[str, Callable[[str], str]]] = {"blocks": render_blocks, "text_nodes": render_text_nodes}
"""The two plain-text renderings of a page, by name."""

AUGMENTED_RENDERINGS: Final[tuple[str, ...]] = ("coarse_blocks", "blocks_perturbed", "text_nodes_perturbed")
"""More renderings of each page that the plain model trains on, never scored (`augmented_text`).

With 711 pages the model is short of data. Cross-validated by site, in the training script's own
figures (lines the rules keep), adding them moved macro word F1 from 0.9305 / 0.9270 (blocks / text
nodes) to 0.9371 / 0.9343. Either kind alone gained nothing significant. Joining lines of both kinds
(article text glued to a menu line) cross-validated well too, but taught the model that prose can be
furniture: it removed article paragraphs of two news seeds, at up to 0.97.
"""

PAGE_RENDERING: Final = "page"
"""The HTML path's rendering (`html.main_content = "lines"`): one line per block, with each line's `DOM_FEATURES`."""

PARAMS: Final[dict[str, Any]] = {
    "objective": "binary",
    "num_leaves": 31,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "seed": 7,
    # One thread, row-wise histograms and `deterministic` make training reproducible bit for bit.
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
"""LightGBM settings both stages share; each stage has its own rounds and learning rate (`Boosting`)."""


@dataclass(frozen=True)
class Boosting:
    """How long one stage boosts: its rounds (trees) and their learning rate."""

    rounds: int
    learning_rate: float


PLAIN_BOOSTING: Final = (Boosting(rounds=300, learning_rate=0.05), Boosting(rounds=300, learning_rate=0.05))
"""The plain-text model's stages: the first reads each line and its neighbours, the second the first's scores.

Cut to 100 trees, its second stage cross-validates as well (macro word F1 0.9307 against 0.9297 over
both renderings) at a sixth less cost, but at the threshold chosen with it (0.40) it removes the only
story paragraph of a short test article (`tests/test_boilerplate_learning.py`); 150 trees at 0.1 in the
first stage (half the cost) removed a news seed's dateline-led first paragraph. Neither is shipped.
"""
PAGE_BOOSTING: Final = (Boosting(rounds=300, learning_rate=0.05), Boosting(rounds=100, learning_rate=0.05))
"""The whole-page model's stages (the first reads each line's markup too). 100 trees in the second
stage instead of 300 cross-validate better: 0.9476 against 0.9444; 150 at 0.1 in the first lose 0.005.
"""


LEXICON_MIN_SITES: Final = 5
"""Sites a word or word pair must be found on to enter the lexicon: phrases many sites share, not one page's topic."""


PERTURBED_DROP: Final = 0.15
"""Share of a perturbed rendering's boilerplate lines left out (a scrape that missed some of the furniture)."""
PERTURBED_JOIN: Final = 0.10
"""Share of a perturbed rendering's lines glued to the next one of the same kind (two blocks saved as one line)."""


def perturbed_lines(text: str, main_content: str, seed: str) -> str:
    """Return a rendering with some boilerplate lines dropped and some neighbours joined, the same for the same seed.

    >>> text = "\\n".join(["Home", "News", "Rain fell all day.", "Share", "It stopped at night."])
    >>> perturbed_lines(text, "Rain fell all day. It stopped at night.", "7") == perturbed_lines(
    ...     text, "Rain fell all day. It stopped at night.", "7")
    True
    """
    rng = random.Random(seed)
    lines = text.split("\n")
    labels = label_lines(lines, main_content).tolist()
    # A draw for each boilerplate line only, in order: the same seed drops the same lines.
    dropped = [label < 0.5 and rng.random() < PERTURBED_DROP for label in labels]
    kept = [(line, label >= 0.5) for line, label, drop in zip(lines, labels, dropped, strict=True) if not drop]
    out: list[str] = []
    i = 0
    while i < len(kept):
        # Only lines of one kind are joined: article text glued to a menu would teach that prose can be furniture.
        if i + 1 < len(kept) and rng.random() < PERTURBED_JOIN and kept[i][1] == kept[i + 1][1]:
            out.append(f"{kept[i][0]} {kept[i + 1][0]}")
            i += 2
        else:
            out.append(kept[i][0])
            i += 1
    return "\n".join(out)


def augmented_text(page: LabelledPage, rendering: str) -> str:
    """Return one of `AUGMENTED_RENDERINGS` of a page: its coarse blocks, or a plain rendering perturbed."""
    if rendering == "coarse_blocks":
        return render_coarse_blocks(page.html)
    plain = rendering.removesuffix("_perturbed")
    return perturbed_lines(RENDERINGS[plain](page.html), article_text(page), f"{page.file_id}:{plain}")


def article_text(page: LabelledPage) -> str:
    """Return what training labels as a page's article: its title and main content.

    A headline is article text to a news corpus, though WCXB keeps titles apart from main content.
    """
    return f"{page.title}\n{page.main_content}"


def label_lines(lines: Sequence[str], main_content: str) -> FloatArray:
    """Return, for each line, the share of its word trigrams (bigram, word when shorter) in the main content.

    >>> label_lines(["the cat sat on the mat", "Share this", "sat"], "The cat sat on the mat today.").tolist()
    [1.0, 0.0, 1.0]
    """
    truth = word_tokens(main_content)
    grams: list[set[tuple[str, ...]]] = [set(zip(*(truth[k:] for k in range(n)), strict=False)) for n in (1, 2, 3)]
    out = np.zeros(len(lines))
    for i, line in enumerate(lines):
        tokens = word_tokens(line)
        if not tokens:
            continue
        n = min(len(tokens), 3)
        found = grams[n - 1]
        line_grams = list(zip(*(tokens[k:] for k in range(n)), strict=False))
        out[i] = sum(gram in found for gram in line_grams) / len(line_grams)
    return out


@dataclass
class PageLines:
    """One rendering of one page, cleaned up to the classifier: its lines, rule verdicts and labels."""

    file_id: str
    site: str
    rendering: str
    text: str
    lines: list[SourceLine]
    verdicts: list[str | None]
    language: str | None
    features: FloatArray
    labels: FloatArray
    words: FloatArray
    judged_index: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    context: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    """The judged lines' `DOM_FEATURES` (page rendering only; no columns otherwise)."""


def prepare_page(page: LabelledPage, rendering: str, cfg: PipelineConfig) -> PageLines:
    """Render, repair and judge a labelled page the way the pipeline's steps do before the classifier."""
    line_context: list[list[float]] | None = None
    if rendering == PAGE_RENDERING:
        try:
            extracted = extract_page_lines(page.html, page.url or None)
            raw, line_context = extracted.text, extracted.line_context
        except NoMainContentError:
            raw, line_context = "", []
    elif rendering in AUGMENTED_RENDERINGS:
        raw = augmented_text(page, rendering)
    else:
        raw = RENDERINGS[rendering](page.html)
    text = repair_encoding(raw, cfg.encoding).text
    lines, _ = prepare_lines(text, cfg.boilerplate)
    verdicts = judge_lines(lines, cfg.boilerplate)
    content = [i for i, line in enumerate(lines) if line.text]
    guess = identify_language(language_sample(text), cfg.language.sample_chars)
    language = guess.code if guess else None
    content_rules = [verdicts[i] for i in content]
    features = line_features([lines[i].text for i in content], content_rules, language)
    judged = [content[k] for k in candidate_lines(content_rules)]
    if line_context is None:
        context = np.zeros((len(judged), 0))
    else:
        rows = [line_context[lines[i].position] for i in judged]
        context = np.array(rows, dtype=np.float64).reshape(len(judged), len(DOM_FEATURES))
    return PageLines(
        file_id=page.file_id,
        site=site_of_page(page),
        rendering=rendering,
        text=text,
        lines=lines,
        verdicts=verdicts,
        language=language,
        features=features,
        labels=label_lines([lines[i].text for i in judged], article_text(page)),
        words=features[:, FEATURES.index("words")],
        judged_index=judged,
        keys=[line_key(lines[i].text) for i in judged],
        context=context,
    )


def site_of_page(page: LabelledPage) -> str:
    """Return the page's host without ``www.``, the unit of grouping for cross-validation."""
    host = (urlsplit(page.url).hostname or page.file_id).lower()
    return host.removeprefix("www.")


def fold_of(site: str, folds: int) -> int:
    """Return a site's fold, from a stable hash of its name.

    >>> fold_of("example.com", 5) == fold_of("example.com", 5)
    True
    """
    return int.from_bytes(hashlib.blake2b(site.encode("utf-8"), digest_size=4).digest(), "big") % folds


def _stack(pages: Sequence[PageLines], attribute: str) -> FloatArray:
    arrays = [getattr(page, attribute) for page in pages]
    return np.concatenate(arrays) if arrays else np.zeros(0)


def _train_stage(
    features: FloatArray, labels: FloatArray, weights: FloatArray, names: Sequence[str], boosting: Boosting
) -> Any:
    import lightgbm

    data = lightgbm.Dataset(features, label=labels, weight=weights, feature_name=list(names), params={"verbosity": -1})
    params = {**PARAMS, "learning_rate": boosting.learning_rate}
    return lightgbm.train(params, data, num_boost_round=boosting.rounds)


def _targets(pages: Sequence[PageLines]) -> tuple[FloatArray, FloatArray]:
    """Return boilerplate targets (1 = not main content) and weights for pages' lines.

    A line weighs its words (at least one) as a share of its page's words: the benchmark
    averages F1 over pages, so each page weighs the same whatever its length.
    """
    labels = _stack(pages, "labels")
    weights = [np.maximum(page.words, 1.0) * (1000.0 / max(float(page.words.sum()), 1.0)) for page in pages]
    return (labels < 0.5).astype(np.float64), np.concatenate(weights) if weights else np.zeros(0)


@dataclass(frozen=True)
class TrainedModels:
    """Both stages' boosters and the lexicon the first stage reads."""

    first: Any
    second: Any
    lexicon: Lexicon


def page_lexicon(pages: Sequence[PageLines], min_sites: int = LEXICON_MIN_SITES) -> Lexicon:
    """Fit the lexicon on pages' judged lines, each labelled as the classifier's target is."""
    return fit_lexicon(
        (
            (page.site, key, bool(label < 0.5))
            for page in pages
            for key, label in zip(page.keys, page.labels.tolist(), strict=True)
        ),
        min_sites,
    )


def first_stage_names(pages: Sequence[PageLines]) -> tuple[str, ...]:
    """Return the first stage's columns for these pages: line features, context columns if any, the lexicon's."""
    context = DOM_FEATURES if _carry_markup(pages) else ()
    return FEATURES + context + LEXICAL_FEATURES


def stage_boosting(pages: Sequence[PageLines]) -> tuple[Boosting, Boosting]:
    """Return both stages' boosting for these pages: the whole-page model's if they carry markup context."""
    return PAGE_BOOSTING if _carry_markup(pages) else PLAIN_BOOSTING


def _carry_markup(pages: Sequence[PageLines]) -> bool:
    """Return whether these pages are whole HTML pages, whose lines carry markup context columns."""
    return bool(pages) and pages[0].context.shape[1] > 0


def _first_stage_input(page: PageLines, lexicon: Lexicon) -> FloatArray:
    return np.hstack([page.features, page.context, lexicon.features(page.keys)])


def _out_of_fold_lexical_input(pages: Sequence[PageLines], folds: int) -> list[FloatArray]:
    """Return each page's first-stage input with lexical columns from a lexicon fitted without its site.

    Training on lexical scores of the lexicon's own lines would teach the model to trust them
    more than a page it has not seen deserves.
    """
    inputs: list[FloatArray | None] = [None] * len(pages)
    for fold in range(folds):
        lexicon = page_lexicon([page for page in pages if fold_of(page.site + "#lexicon", folds) != fold])
        for i, page in enumerate(pages):
            if fold_of(page.site + "#lexicon", folds) == fold:
                inputs[i] = _first_stage_input(page, lexicon)
    columns = len(first_stage_names(pages))
    return [x if x is not None else np.zeros((0, columns)) for x in inputs]


def _stack_arrays(arrays: Sequence[FloatArray], columns: int) -> FloatArray:
    return np.concatenate(arrays) if arrays else np.zeros((0, columns))


def train_models(pages: Sequence[PageLines], inner_folds: int = 4) -> TrainedModels:
    """Train both stages on `pages`; the second stage learns from out-of-fold first-stage scores."""
    targets, weights = _targets(pages)
    names = first_stage_names(pages)
    first_stage, second_stage = stage_boosting(pages)
    inputs = _out_of_fold_lexical_input(pages, inner_folds)
    first = _train_stage(_stack_arrays(inputs, len(names)), targets, weights, names, first_stage)
    # Out-of-fold first-stage scores for the second stage, so it learns how the first stage errs
    # on pages it has not seen (as at run time) rather than on its own training pages.
    oof: dict[int, FloatArray] = {}
    for fold in range(inner_folds):
        train = [i for i, page in enumerate(pages) if fold_of(page.site + "#inner", inner_folds) != fold]
        held = [i for i, page in enumerate(pages) if fold_of(page.site + "#inner", inner_folds) == fold]
        t_targets, t_weights = _targets([pages[i] for i in train])
        t_inputs = _stack_arrays([inputs[i] for i in train], len(names))
        model = _train_stage(t_inputs, t_targets, t_weights, names, first_stage)
        for i in held:
            oof[i] = np.asarray(model.predict(inputs[i], num_threads=1), dtype=np.float64)
    stacked = _stack_arrays([stacked_features(inputs[i], oof[i]) for i in range(len(pages))], len(STACKED_FEATURES))
    second = _train_stage(stacked, targets, weights, STACKED_FEATURES, second_stage)
    return TrainedModels(first, second, page_lexicon(pages))


def model_document(models: TrainedModels, threshold: float, version: str, notes: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON object of a model file holding both stages and the lexicon."""
    return {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "version": version,
        "threshold": threshold,
        "features": list(models.first.feature_name()),
        "stacked_features": list(STACKED_FEATURES),
        "notes": notes,
        "lexicon": models.lexicon.to_json(),
        "first": models.first.model_to_string(),
        "second": models.second.model_to_string(),
    }


def classifier_from_models(models: TrainedModels, threshold: float, version: str = "cv") -> LineClassifier:
    """Wrap trained models the way the model file would, through the same loader."""
    document = model_document(models, threshold, version, {})
    return LineClassifier.from_json(json.loads(json.dumps(document)))


def cross_validated_scores(
    pages: Sequence[PageLines], folds: int = 5, extra: Sequence[PageLines] = ()
) -> tuple[list[FloatArray], list[TrainedModels]]:
    """Return each page's boilerplate scores from models that never saw its site, and the fold models.

    `extra` pages (`AUGMENTED_RENDERINGS`) are trained on with their folds' pages, and never scored.
    """
    scores: list[FloatArray | None] = [None] * len(pages)
    models = []
    for fold in range(folds):
        train = [page for page in [*pages, *extra] if fold_of(page.site, folds) != fold]
        held = [i for i, page in enumerate(pages) if fold_of(page.site, folds) == fold]
        trained = train_models(train)
        models.append(trained)
        classifier = classifier_from_models(trained, threshold=0.5)
        for i in held:
            scores[i] = classifier.boilerplate_scores(pages[i].features, pages[i].keys, context=pages[i].context)
    return [s if s is not None else np.zeros(0) for s in scores], models


def kept_text(page: PageLines, scores: FloatArray, threshold: float) -> str:
    """Return the page's text keeping lines no rule removed and scoring below `threshold`."""
    judged = zip(page.judged_index, scores.tolist(), strict=True)
    return "\n".join(page.lines[i].text for i, score in judged if score < threshold)


def best_threshold(
    pages: Sequence[PageLines], scores: Sequence[FloatArray], truths: dict[str, str], grid: Iterable[float]
) -> tuple[float, float]:
    """Return the threshold with the best macro word F1 over `pages` (and that F1)."""
    best = (0.5, -1.0)
    for threshold in grid:
        f1 = float(
            np.mean(
                [word_prf(kept_text(p, s, threshold), truths[p.file_id])[2] for p, s in zip(pages, scores, strict=True)]
            )
        )
        if f1 > best[1]:
            best = (threshold, f1)
    return best


def _prepare_both(task: tuple[LabelledPage, PipelineConfig, tuple[str, ...]]) -> list[PageLines]:
    page, cfg, renderings = task
    return [prepare_page(page, rendering, cfg) for rendering in renderings]


def prepare_pages(
    pages: Sequence[LabelledPage], cfg: PipelineConfig, workers: int = 2, renderings: Sequence[str] = tuple(RENDERINGS)
) -> list[PageLines]:
    """Prepare every page in each rendering (pages in order, renderings in the order given), in `workers` processes."""
    from multiprocessing import get_context

    tasks = [(page, cfg, tuple(renderings)) for page in pages]
    if workers <= 1:
        results = [_prepare_both(task) for task in tasks]
    else:
        with get_context("spawn").Pool(workers) as pool:
            results = pool.map(_prepare_both, tasks, chunksize=8)
    return [prepared for pair in results for prepared in pair]
