"""The throughput benchmark's corpus (benchmarks/news_corpus.py): real text, near-copies at the set rate."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from pipeline.evaluation import DEFAULT_EVAL_DIR

# benchmarks/ is not a package: its modules are found through the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from news_corpus import CorpusSpec, build_corpus, plan_corpus

pytestmark = pytest.mark.skipif(
    not (DEFAULT_EVAL_DIR / "ground-truth").is_dir(), reason=f"evaluation data not found at {DEFAULT_EVAL_DIR}"
)


def _texts(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*.*"))}


def test_text_corpus_has_near_copies_at_the_rate_and_site_boilerplate(tmp_path: Path) -> None:
    spec = CorpusSpec("text", 80, docs_per_site=10, near_copy_rate=0.25, templates=20)
    info = build_corpus(spec, tmp_path / "a")
    texts = _texts(info.files_dir)
    assert len(texts) == info.documents == 80 and info.near_copies == 20 and info.sites == 8
    planned = plan_corpus(spec)
    shared = total = 0
    for doc in planned:
        if doc.copy_of is None:
            continue
        source = planned[doc.copy_of]
        assert doc.site != source.site  # syndicated elsewhere
        # The source's own article: its long lines that no other page of its site holds.
        site = source.relative("text").split("/")[0]
        others = {
            line
            for path, text in texts.items()
            if path.startswith(site) and path != source.relative("text")
            for line in text.split("\n")
        }
        article = [line for line in texts[source.relative("text")].split("\n") if len(line.split()) >= 8]
        article = [line for line in article if line not in others]
        copy_lines = set(texts[doc.relative("text")].split("\n"))
        assert article
        shared += sum(line in copy_lines for line in article)
        total += len(article)
    # A quarter of a copy's article lines get an edit; the rest are the original's, verbatim.
    assert 0.6 < shared / total < 0.9
    # Originals of different sites share no long line by chance (their articles are reworded).
    sites_of_line: dict[str, set[int]] = {}
    for d in planned:
        if d.copy_of is None and not d.copies:
            for line in texts[d.relative("text")].split("\n"):
                if len(line.split()) >= 25:
                    sites_of_line.setdefault(line, set()).add(d.site)
    assert sites_of_line and max(len(sites) for sites in sites_of_line.values()) == 1
    # Every site repeats its boilerplate on each of its pages.
    first_lines = Counter(text.split("\n", 1)[0] for path, text in texts.items() if path.startswith("site-0000/"))
    assert first_lines.most_common(1)[0][1] >= 8
    # Deterministic, and the JSON Lines hold the same documents in path order.
    assert _texts(build_corpus(spec, tmp_path / "b").files_dir) == texts
    records = [json.loads(line) for part in sorted(Path(info.jsonl).glob("*.jsonl")) for line in part.open()]
    assert [(r["id"], r["text"]) for r in records] == sorted(texts.items())


def test_html_corpus_pages_are_utf8_with_own_urls(tmp_path: Path) -> None:
    info = build_corpus(CorpusSpec("html", 12, docs_per_site=4, near_copy_rate=0.25, templates=5), tmp_path)
    pages = _texts(info.files_dir)
    assert len(pages) == 12 and info.near_copies == 3
    urls = {path: page.split('<link rel="canonical" href="', 1)[1].split('"', 1)[0] for path, page in pages.items()}
    assert len(set(urls.values())) == 12
    for path, url in urls.items():
        assert url.startswith(f"https://{path.split('/')[0]}.example/")
    assert all('<meta charset="utf-8">' in page for page in pages.values())
