"""Score boilerplate removal on the WCXB dev article pages: plain-text renderings and the HTML path.

Every page is rendered to plain text both ways a scraper saves it (one line per block element;
one line per DOM text node, so links break sentences) and cleaned by the pipeline's own steps
(`repair_encoding`, then `strip_boilerplate`). Each result is scored against the page's
human-checked `main_content` by word-level precision, recall and F1 (bag of lowercased word
tokens, macro-averaged over pages), and by the ground truth's snippets: the share of `without`
(boilerplate) snippets gone and of `with` (article) snippets kept.

The line classifier is scored cross-validated: five folds grouped by site, each page cleaned
by a model trained without any page of its site (`pipeline.training`). The shipped model,
trained on all these pages, is not used for the figures. Baselines measured in the same run:
no cleaning; C4's line filter (datatrove's `C4QualityFilter`, line rules only: its page-level
sentence count needs an NLTK download); trafilatura on the HTML (`extract`, defaults). The
HTML path is the pipeline's, both ways `html.main_content` sets it: `trafilatura` (its main
content, comments excluded, then encoding repair and the named rules; the plain-text classifier
is scored on it too, to show why the pipeline leaves it out of that path) and `lines` (the whole
page one line per block with each line's markup context, encoding repair, the named rules and the
page classifier, cross-validated the same way). Ends with the ten worst pages of the plain-text
path and what went wrong on each.

Usage: `python benchmarks/boilerplate_quality.py [--limit N] [--workers 2]`
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.config import PipelineConfig  # noqa: E402 - after the path set-up
from pipeline.evaluation import (  # noqa: E402
    DEFAULT_EVAL_DIR,
    LabelledPage,
    load_pages,
    snippet_survival,
    word_prf,
    word_tokens,
)
from pipeline.steps.boilerplate import strip_boilerplate  # noqa: E402
from pipeline.steps.encoding import repair_encoding  # noqa: E402
from pipeline.steps.extract import DOM_FEATURES, NoMainContentError, extract_main_content, extract_page_lines  # noqa: E402
from pipeline.steps.line_classifier import LineClassifier, default_classifier, default_page_classifier  # noqa: E402
from pipeline.training import (  # noqa: E402
    AUGMENTED_RENDERINGS,
    PAGE_RENDERING,
    RENDERINGS,
    PageLines,
    classifier_from_models,
    cross_validated_scores,
    fold_of,
    label_lines,
    prepare_pages,
    site_of_page,
)

FOLDS = 5


@dataclass
class Scores:
    """Per-page scores of one system on one input form."""

    prf: list[tuple[float, float, float]] = field(default_factory=list)
    without_gone: list[float] = field(default_factory=list)
    with_kept: list[float] = field(default_factory=list)

    def add(self, text: str, page: LabelledPage) -> tuple[float, float, float]:
        prf = word_prf(text, page.main_content)
        self.prf.append(prf)
        if page.without_snippets:
            self.without_gone.append(1.0 - snippet_survival(text, page.without_snippets))
        if page.with_snippets:
            self.with_kept.append(snippet_survival(text, page.with_snippets))
        return prf

    def row(self, name: str, form: str) -> str:
        p, r, f = (statistics.fmean(s[i] for s in self.prf) for i in range(3))
        gone, kept = statistics.fmean(self.without_gone), statistics.fmean(self.with_kept)
        return f"| {name} | {form} | {p:.3f} | {r:.3f} | **{f:.3f}** | {gone:.3f} | {kept:.3f} |"


def c4_line_filter() -> Callable[[str], str]:
    """Return datatrove's C4 quality filter as text -> kept text ("" when it drops the page)."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import C4QualityFilter

    c4 = C4QualityFilter(min_num_sentences=-1)

    def apply(text: str) -> str:
        document = Document(text=text, id="page")
        kept = c4.filter(document)
        return document.text if kept is True else ""

    return apply


def trafilatura_alone(html: str, url: str) -> str:
    """Return trafilatura's main content with its defaults (deduplication off, as in the pipeline)."""
    import trafilatura

    return trafilatura.extract(html, url=url or None, deduplicate=False) or ""


def html_path(page: LabelledPage, cfg: PipelineConfig, classifier: LineClassifier | None, language: str | None) -> str:
    """Return the pipeline's text for the page's HTML: trafilatura, repair, line cleaning."""
    try:
        extracted = extract_main_content(page.html, cfg.html, page.url or None, None)
    except NoMainContentError:
        return ""
    text = repair_encoding(extracted.text, cfg.encoding).text
    return strip_boilerplate(text, cfg.boilerplate, classifier, language).text


def page_lines_path(page: LabelledPage, cfg: PipelineConfig, classifier: LineClassifier, language: str | None) -> str:
    """Return the pipeline's text for the page's HTML rendered whole: its lines and context, repair, line cleaning."""
    try:
        extracted = extract_page_lines(page.html, page.url or None)
    except NoMainContentError:
        return ""
    text = repair_encoding(extracted.text, cfg.encoding).text
    return strip_boilerplate(text, cfg.boilerplate, classifier, language, line_context=extracted.line_context).text


def what_went_wrong(prepared: PageLines, cleaned: str, page: LabelledPage) -> str:
    """Describe a page's biggest errors: the longest boilerplate line kept and article line removed."""
    truth = set(word_tokens(page.main_content))
    kept_lines = set(cleaned.split("\n"))
    worst_kept = ("", 0)
    worst_removed = ("", 0, "")
    content = [i for i, line in enumerate(prepared.lines) if line.text]
    labels = label_lines([prepared.lines[i].text for i in content], page.main_content)
    for index, label in zip(content, labels.tolist(), strict=True):
        text = prepared.lines[index].text
        words = len(word_tokens(text))
        if text in kept_lines and label < 0.5 and words > worst_kept[1]:
            worst_kept = (text, words)
        if text not in kept_lines and label >= 0.5 and words > worst_removed[1]:
            worst_removed = (text, words, prepared.verdicts[index] or "line_classifier")
    parts = []
    if not truth:
        parts.append("ground truth has no main content")
    if worst_kept[1]:
        parts.append(f"kept boilerplate ({worst_kept[1]} words): {worst_kept[0][:90]!r}")
    if worst_removed[1]:
        parts.append(
            f"removed article text by {worst_removed[2]} ({worst_removed[1]} words): {worst_removed[0][:90]!r}"
        )
    return "; ".join(parts) or "small errors spread over many lines"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N pages")
    parser.add_argument("--workers", type=int, default=2, help="processes preparing the pages")
    args = parser.parse_args()
    # The classifier is switched on here whatever its default, to score it.
    cfg = PipelineConfig.model_validate({"boilerplate": {"rules": {"line_classifier": True}}})
    start = time.perf_counter()
    labelled = list(load_pages(DEFAULT_EVAL_DIR, args.limit))
    by_id = {page.file_id: page for page in labelled}
    prepared = prepare_pages(labelled, cfg, args.workers)
    print(f"{len(labelled)} pages rendered and prepared in {time.perf_counter() - start:.0f}s", file=sys.stderr)

    augmented = prepare_pages(labelled, cfg, args.workers, renderings=AUGMENTED_RENDERINGS)  # trained on, as shipped
    _, models = cross_validated_scores(prepared, FOLDS, extra=augmented)
    threshold = default_classifier().threshold  # chosen on cross-validated scores by the training script
    fold_classifiers = [classifier_from_models(trained, threshold) for trained in models]
    whole_pages = prepare_pages(labelled, cfg, args.workers, renderings=(PAGE_RENDERING,))
    _, page_models = cross_validated_scores(whole_pages, FOLDS)
    page_threshold = default_page_classifier(DOM_FEATURES).threshold
    page_classifiers = [classifier_from_models(trained, page_threshold) for trained in page_models]
    page_languages = {item.file_id: item.language for item in whole_pages}
    print(f"cross-validation models trained at {time.perf_counter() - start:.0f}s", file=sys.stderr)

    c4 = c4_line_filter()
    systems = ("no cleaning", "C4 line filter (datatrove)", "pipeline rules only", "pipeline, classifier (CV)")
    table: dict[tuple[str, str], Scores] = {}
    worst: list[tuple[float, str, str, str]] = []
    languages: dict[str, str | None] = {}
    for item in prepared:
        page = by_id[item.file_id]
        languages[page.file_id] = item.language
        raw = RENDERINGS[item.rendering](page.html)
        classifier = fold_classifiers[fold_of(item.site, FOLDS)]
        cleaned = strip_boilerplate(item.text, cfg.boilerplate, classifier, item.language).text
        texts = (raw, c4(raw), strip_boilerplate(item.text, cfg.boilerplate).text, cleaned)
        for system, text in zip(systems, texts, strict=True):
            prf = table.setdefault((system, item.rendering), Scores()).add(text, page)
        worst.append((prf[2], item.rendering, page.file_id, what_went_wrong(item, cleaned, page)))
    for page in labelled:
        table.setdefault(("trafilatura.extract (defaults)", "html"), Scores()).add(
            trafilatura_alone(page.html, page.url), page
        )
        classifier = fold_classifiers[fold_of(site_of_page(page), FOLDS)]
        table.setdefault(("pipeline HTML path (as run: rules, no classifier)", "html"), Scores()).add(
            html_path(page, cfg, None, None), page
        )
        table.setdefault(("pipeline HTML path + classifier (CV; not used)", "html"), Scores()).add(
            html_path(page, cfg, classifier, languages.get(page.file_id)), page
        )
        page_classifier = page_classifiers[fold_of(site_of_page(page), FOLDS)]
        table.setdefault(('pipeline HTML path, `main_content = "lines"` (page classifier, CV)', "html"), Scores()).add(
            page_lines_path(page, cfg, page_classifier, page_languages.get(page.file_id)), page
        )
    print(f"scored at {time.perf_counter() - start:.0f}s", file=sys.stderr)

    print(
        f"\n{len(labelled)} WCXB dev article pages; macro-averaged word scores; "
        f"classifier threshold {threshold} (page classifier {page_threshold}), {FOLDS} folds grouped by site\n"
    )
    print("| system | input | precision | recall | F1 | `without` gone | `with` kept |")
    print("|---|---|---|---|---|---|---|")
    for form in (*RENDERINGS, "html"):
        for (system, rendering), scores in table.items():
            if rendering == form:
                print(scores.row(system, form))
    print("\nTen worst pages, pipeline with the classifier (CV), plain text:")
    for f1, rendering, file_id, note in sorted(worst)[:10]:
        print(f"- {file_id} ({rendering}) F1 {f1:.3f}: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
