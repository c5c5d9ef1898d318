"""Build a realistic scraped-news corpus from real pages, for the throughput benchmark.

Templates are real pages: the 711 WCXB dev article pages (`../shared/eval/wcxb-dev-articles/`,
read in place) and the sample scrapes in `seeds/`. Every template has its article (the lines or
HTML text nodes found in the human-checked main content; for a seed, its lines of ten words or
more) and its boilerplate (everything else: menus, teasers, footers, captions).

Document `i` of a corpus is a pure function of (seed, i):

- it belongs to a site (`docs_per_site` documents each, on average) that owns one template; its
  boilerplate is that template's, verbatim (plain text: the lines before and after the article,
  and those between article lines at the same relative places), so every site repeats its
  boilerplate on every page, as real sites do;
- an *original* takes an article (plain text: any template's; HTML: its site template's) and
  replaces each word of three or more letters with probability `substitution` by a word of the
  same article, so no two originals share a sentence by chance while the text keeps its
  language, its word lengths and its punctuation. A plain-text article is cut to a news-sized
  length (log-normal, median 650 words), HTML pages are kept whole;
- a *near-copy* (with probability `near_copy_rate`) is a syndicated copy of an original: its
  article with a word replaced in a quarter of its lines (in one line of three for HTML),
  published on another site, under that site's boilerplate (plain text) or URL (HTML).

Plain-text documents are `text/site-NNNN/NNNNNNN.txt` (a site is the folder a file sits in);
HTML documents are `html/site-NNNN/NNNNNNN.html`, UTF-8, whose canonical URL is
`https://site-NNNN.example/news/NNNNNNN` (a site is the URL host). The same documents are also
written as JSON Lines (`jsonl/part-NNNNN.jsonl`: `id` = the relative path, `text`, `url`) for
readers that take one record per line (datatrove's `JsonlReader`).
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import random
import re
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from lxml import etree
from lxml import html as lxml_html

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.evaluation import DEFAULT_EVAL_DIR, load_pages, render_blocks  # noqa: E402 - after the path set-up

Kind = Literal["text", "html"]
SEEDS = REPO / "seeds"
GENERATOR_VERSION = 3
"""Bumped whenever the same spec would give other documents (it names the cached corpus folders)."""
JSONL_RECORDS = 64
"""Documents per JSON Lines file: the pipeline's default shard size, so both split the work alike."""
# Words of three or more letters, not parts of contractions ("isn't" stays whole).
_WORD = re.compile(r"(?<![\w'’])[^\W\d_]{3,}(?![\w'’])")
_SEED_ARTICLE_WORDS = 10
_MIN_ARTICLE_WORDS = 4


@dataclass(frozen=True)
class CorpusSpec:
    """What a corpus is made of; equal specs give byte-identical corpora."""

    kind: Kind
    documents: int
    seed: int = 8
    docs_per_site: int = 40
    near_copy_rate: float = 0.10
    substitution: float = 0.3
    """Share of an original's words replaced. Two originals of one template article keep ~70% of
    its words each, so their sentences share ~29% of their character 5-grams (Jaccard) and 5.1% of
    such pairs share an LSH band: each sentence's dedup candidates grow with the number of originals
    made from its article, ~0.057 per 1,000 documents from the 694 text templates. Far past 100k
    documents that growth, not the pipeline's index, sets the dedup stage's cost; at 0.5 the
    pairs share 14% of their 5-grams and 0.24% share a band (measured on 60 articles' sentences)."""
    median_words: int = 650
    templates: int | None = None
    """Use only the first N WCXB pages (tests); None for all."""

    def key(self) -> str:
        """Return a short hash naming this spec (the corpus folder's name)."""
        blob = json.dumps({**asdict(self), "generator": GENERATOR_VERSION}, sort_keys=True)
        return f"{self.kind}-{self.documents}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


@dataclass
class TextTemplate:
    """A plain-text page: boilerplate lines before and after its article region, and the region."""

    name: str
    header: list[str]
    region: list[tuple[str, bool]]
    """The lines from the first article line to the last, each with whether it is article."""
    footer: list[str]
    vocabulary: list[str]


@dataclass
class HtmlTemplate:
    """A page's markup with the text slots of its article, kept as source and parsed on use."""

    name: str
    html: str
    vocabulary: list[str]
    main: str
    """The article's text, normalised (whitespace collapsed, lowercased)."""


@dataclass
class PlannedDocument:
    """Where document `number` goes and what it is made of."""

    number: int
    site: int
    copy_of: int | None = None
    copies: list[int] = field(default_factory=list)

    def relative(self, kind: Kind) -> str:
        """Return the document's path relative to the corpus's input folder."""
        return f"site-{self.site:04d}/{self.number:07d}.{'txt' if kind == 'text' else 'html'}"


@dataclass(frozen=True)
class CorpusInfo:
    """What was written, for the benchmark's table and for tests."""

    folder: str
    inputs: str
    jsonl: str
    documents: int
    near_copies: int
    sites: int
    bytes: int
    spec: dict[str, Any]

    @property
    def files_dir(self) -> Path:
        """Return the folder of one-file-per-document inputs."""
        return Path(self.inputs)


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


def _vocabulary(text: str) -> list[str]:
    words = sorted({w.lower() for w in _WORD.findall(text)})
    return words if len(words) >= 50 else []


def _text_template(name: str, lines: list[str], is_article: list[bool], vocabulary: list[str]) -> TextTemplate | None:
    marked = [i for i, flag in enumerate(is_article) if flag]
    if len(marked) < 3 or not vocabulary:
        return None
    first, last = marked[0], marked[-1]
    region = list(zip(lines[first : last + 1], is_article[first : last + 1], strict=True))
    return TextTemplate(name, lines[:first], region, lines[last + 1 :], vocabulary)


def _seed_texts() -> list[tuple[str, str]]:
    return [(path.name, path.read_text(encoding="utf-8")) for path in sorted(SEEDS.glob("*.txt"))]


def _seed_html(title: str, lines: list[str]) -> str:
    """Return a plain page made of a seed scrape: short lines as navigation, long ones as article."""
    body = []
    for line in lines:
        escaped = line.replace("&", "&amp;").replace("<", "&lt;")
        tag = "p" if len(line.split()) >= _SEED_ARTICLE_WORDS else "div"
        body.append(f"<{tag}>{escaped}</{tag}>")
    return (
        f"<html><head><title>{title}</title></head><body><header><nav><a href='/'>Home</a> | "
        f"<a href='/world'>World</a></nav></header><article><h1>{title}</h1>{''.join(body)}</article>"
        "<footer>Contact us | Privacy | Terms</footer></body></html>"
    )


def load_text_templates(eval_dir: Path = DEFAULT_EVAL_DIR, limit: int | None = None) -> list[TextTemplate]:
    """Return the plain-text templates: WCXB pages rendered one line per block, then the seeds."""
    templates: list[TextTemplate] = []
    for page in load_pages(eval_dir, limit):
        main = _normal(page.main_content)
        lines = [line for line in render_blocks(page.html).split("\n") if line.strip()]
        flags = [len(line.split()) >= _MIN_ARTICLE_WORDS and _normal(line) in main for line in lines]
        template = _text_template(page.file_id, lines, flags, _vocabulary(page.main_content))
        if template is not None:
            templates.append(template)
    for name, text in _seed_texts():
        lines = [line for line in text.split("\n") if line.strip()]
        flags = [len(line.split()) >= _SEED_ARTICLE_WORDS for line in lines]
        template = _text_template(name, lines, flags, _vocabulary(text))
        if template is not None:
            templates.append(template)
    return templates


def load_html_templates(eval_dir: Path = DEFAULT_EVAL_DIR, limit: int | None = None) -> list[HtmlTemplate]:
    """Return the HTML templates: WCXB pages as served (decoded), then the seeds as simple pages."""
    templates = [
        HtmlTemplate(page.file_id, page.html, _vocabulary(page.main_content), _normal(page.main_content))
        for page in load_pages(eval_dir, limit)
        if page.main_content
    ]
    for name, text in _seed_texts():
        lines = [line for line in text.split("\n") if line.strip()]
        article = " ".join(line for line in lines[1:] if len(line.split()) >= _SEED_ARTICLE_WORDS)
        templates.append(HtmlTemplate(name, _seed_html(lines[0][:80], lines[1:]), _vocabulary(text), _normal(article)))
    return [t for t in templates if t.vocabulary]


def _substitute(text: str, vocabulary: list[str], rate: float, rng: random.Random) -> str:
    """Replace each word of three or more letters with probability `rate`, keeping its capital."""

    def replace(match: re.Match[str]) -> str:
        if rng.random() >= rate:
            return match.group(0)
        word = vocabulary[rng.randrange(len(vocabulary))]
        return word.capitalize() if match.group(0)[0].isupper() else word

    return _WORD.sub(replace, text)


def _edit_once(text: str, vocabulary: list[str], rng: random.Random) -> str:
    """Replace one word of a line (a syndication edit)."""
    words = list(_WORD.finditer(text))
    if not words:
        return text
    match = words[rng.randrange(len(words))]
    return text[: match.start()] + vocabulary[rng.randrange(len(vocabulary))] + text[match.end() :]


def plan_corpus(spec: CorpusSpec) -> list[PlannedDocument]:
    """Assign every document a site and decide which are near-copies of which originals."""
    rng = random.Random(f"plan:{spec.seed}")
    sites = max(1, math.ceil(spec.documents / spec.docs_per_site))
    planned = [PlannedDocument(i, i * sites // spec.documents) for i in range(spec.documents)]
    copies = set(
        rng.sample(range(1, spec.documents), min(spec.documents - 1, round(spec.near_copy_rate * spec.documents)))
    )
    is_copy = [i in copies for i in range(spec.documents)]
    originals = [d.number for d in planned if not is_copy[d.number]]
    for doc in planned:
        if is_copy[doc.number]:
            source = planned[originals[rng.randrange(len(originals))]]
            doc.copy_of = source.number
            source.copies.append(doc.number)
            if sites > 1 and doc.site == source.site:  # syndicated: published by another site
                doc.site = (doc.site + 1 + rng.randrange(sites - 1)) % sites
    return planned


class _TextWriter:
    def __init__(self, spec: CorpusSpec, templates: list[TextTemplate]) -> None:
        self.spec, self.templates = spec, templates

    def site_template(self, site: int) -> TextTemplate:
        return self.templates[(site * 7919) % len(self.templates)]

    def article(self, doc: PlannedDocument) -> list[str]:
        """Return an original's article: a template's article lines reworded, cut to a news-sized length."""
        rng = random.Random(f"text:{self.spec.seed}:{doc.number}")
        body = self.templates[rng.randrange(len(self.templates))]
        target = min(3000, max(150, int(rng.lognormvariate(math.log(self.spec.median_words), 0.5))))
        lines: list[str] = []
        words = 0
        for line, is_article in body.region:
            if is_article and words < target:
                lines.append(_substitute(line, body.vocabulary, self.spec.substitution, rng))
                words += len(lines[-1].split())
        return lines

    def render(self, site: int, article: list[str]) -> bytes:
        """Return a page of a site: its header, the article with the site's own in-article boilerplate
        (captions, ad markers, teasers) at the same relative places, its footer."""
        template = self.site_template(site)
        inserts = collections.defaultdict(list)
        for index, (line, is_article) in enumerate(template.region):
            if not is_article:
                inserts[round(index / len(template.region) * len(article))].append(line)
        middle = [line for index, text in enumerate(article) for line in (*inserts.pop(index, ()), text)]
        middle += [line for index in sorted(inserts) for line in inserts[index]]
        lines = [*template.header, *middle, *template.footer]
        return ("\n".join(lines) + "\n").encode("utf-8")

    def documents(
        self, doc: PlannedDocument, planned: list[PlannedDocument]
    ) -> Iterator[tuple[PlannedDocument, bytes]]:
        article = self.article(doc)
        yield doc, self.render(doc.site, article)
        for number in doc.copies:
            copy = planned[number]
            rng = random.Random(f"copy:{self.spec.seed}:{number}")
            vocabulary = self.site_template(doc.site).vocabulary
            edited = [_edit_once(line, vocabulary, rng) if rng.random() < 0.25 else line for line in article]
            yield copy, self.render(copy.site, edited)


class _HtmlWriter:
    def __init__(self, spec: CorpusSpec, templates: list[HtmlTemplate]) -> None:
        self.spec, self.templates = spec, templates
        self._prepared: tuple[str, tuple[Any, list[tuple[Any, str, str]], Any]] | None = None

    def prepare(self, template: HtmlTemplate) -> tuple[Any, list[tuple[Any, str, str]], Any]:
        """Return a template parsed (the last one is kept: originals come in site order)."""
        if self._prepared is None or self._prepared[0] != template.name:
            self._prepared = (template.name, self._parse(template))
        return self._prepared[1]

    @staticmethod
    def _parse(template: HtmlTemplate) -> tuple[Any, list[tuple[Any, str, str]], Any]:
        """Parse a template: its tree, its article slots (element, 'text'|'tail', text), its URL link."""
        tree = lxml_html.document_fromstring(template.html.encode("utf-8"), parser=_PARSER)
        head = tree.find("head")
        if head is None:
            head = etree.Element("head")
            tree.insert(0, head)
        for node in tree.xpath(
            "//link[@rel='canonical'] | //meta[@property='og:url'] | //meta[@charset]"
            " | //meta[translate(@http-equiv, 'CONTENT-TYPE', 'content-type')='content-type'] | //base"
        ):
            node.getparent().remove(node)
        charset = etree.SubElement(head, "meta", charset="utf-8")
        head.insert(0, charset)
        link = etree.SubElement(head, "link", rel="canonical", href="")
        main = template.main
        slots = []
        for element in tree.iter():
            if not isinstance(element.tag, str) or element.tag in ("script", "style"):
                continue
            for attribute in ("text", "tail"):
                value = getattr(element, attribute)
                if value and len(value.split()) >= _MIN_ARTICLE_WORDS and _normal(value) in main:
                    slots.append((element, attribute, value))
        return tree, slots, link

    def documents(
        self, doc: PlannedDocument, planned: list[PlannedDocument]
    ) -> Iterator[tuple[PlannedDocument, bytes]]:
        template = self.templates[(doc.site * 7919) % len(self.templates)]
        tree, slots, link = self.prepare(template)
        rng = random.Random(f"html:{self.spec.seed}:{doc.number}")
        texts = [_substitute(value, template.vocabulary, self.spec.substitution, rng) for _, _, value in slots]
        yield doc, self.render(tree, slots, link, texts, doc)
        for number in doc.copies:
            copy = planned[number]
            rng = random.Random(f"copy:{self.spec.seed}:{number}")
            edited = [_edit_once(t, template.vocabulary, rng) if rng.random() < 1 / 3 else t for t in texts]
            yield copy, self.render(tree, slots, link, edited, copy)

    @staticmethod
    def render(
        tree: Any, slots: list[tuple[Any, str, str]], link: Any, texts: list[str], doc: PlannedDocument
    ) -> bytes:
        for (element, attribute, _), text in zip(slots, texts, strict=True):
            setattr(element, attribute, text)
        link.set("href", f"https://site-{doc.site:04d}.example/news/{doc.number:07d}")
        return bytes(lxml_html.tostring(tree, encoding="utf-8", doctype="<!DOCTYPE html>"))


_PARSER = lxml_html.HTMLParser(encoding="utf-8", huge_tree=True)


def build_corpus(spec: CorpusSpec, work: Path, eval_dir: Path = DEFAULT_EVAL_DIR) -> CorpusInfo:
    """Write the corpus of a spec under `work/<spec key>/` (reused when already complete)."""
    folder = work / spec.key()
    done = folder / "corpus.json"
    if done.exists():
        return CorpusInfo(**json.loads(done.read_text(encoding="utf-8")))
    planned = plan_corpus(spec)
    writer: _TextWriter | _HtmlWriter
    if spec.kind == "text":
        writer = _TextWriter(spec, load_text_templates(eval_dir, spec.templates))
    else:
        writer = _HtmlWriter(spec, load_html_templates(eval_dir, spec.templates))
    inputs = folder / spec.kind
    written: list[str] = []
    total = 0
    # Originals are made in site order and their copies with them; files are written at once,
    # JSON Lines afterwards in path order (the order every reader of the folder sees).
    for doc in planned:
        if doc.copy_of is not None:
            continue
        for item, data in writer.documents(doc, planned):
            path = inputs / item.relative(spec.kind)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            total += len(data)
            written.append(item.relative(spec.kind))
    jsonl = folder / "jsonl"
    jsonl.mkdir(parents=True, exist_ok=True)
    ordered = sorted(written)
    for part, start in enumerate(range(0, len(ordered), JSONL_RECORDS)):
        with (jsonl / f"part-{part:05d}.jsonl").open("w", encoding="utf-8") as handle:
            for relative in ordered[start : start + JSONL_RECORDS]:
                text = (inputs / relative).read_text(encoding="utf-8")
                site, number = relative.split("/")
                url = f"https://{site}.example/news/{number.split('.')[0]}" if spec.kind == "html" else None
                handle.write(json.dumps({"id": relative, "text": text, "url": url}, ensure_ascii=False) + "\n")
    info = CorpusInfo(
        folder=str(folder),
        inputs=str(inputs),
        jsonl=str(jsonl),
        documents=len(planned),
        near_copies=sum(1 for d in planned if d.copy_of is not None),
        sites=len({d.site for d in planned}),
        bytes=total,
        spec=asdict(spec),
    )
    done.write_text(json.dumps(asdict(info), indent=1) + "\n", encoding="utf-8")
    return info
