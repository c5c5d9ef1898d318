"""Extract the main content and metadata of an HTML page with trafilatura.

The extracted text keeps one paragraph per line, so it goes through the same plain-text
cleaning as any other input. Deduplication inside trafilatura stays off: duplicates are the
dedup stage's job, where they are logged.

The page is parsed once; trafilatura extracts the text from a copy of the tree and the
metadata is read from the tree itself, only for a page with main content. The metadata is
what trafilatura's `extract_metadata` finds for the fields the pipeline keeps, at a fraction
of its cost (see `page_metadata`).

With `html.main_content = "lines"` the page is not cut down here: `extract_page_lines` renders
it whole, one line per block element (`render_page_lines`, the rendering the quality benchmark's
plain text is made with), and gives every line what its markup says (`DOM_FEATURES`), for the
boilerplate stage's page classifier to choose the article's lines.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, Final

import trafilatura
from htmldate import find_date
from lxml.html import HtmlElement
from trafilatura.json_metadata import normalize_authors
from trafilatura.metadata import (
    META_URL,
    examine_meta,
    extract_meta_json,
    extract_sitename,
    extract_title,
    extract_url,
)
from trafilatura.settings import Document
from trafilatura.utils import load_html, trim
from trafilatura.xml import delete_element

from pipeline.config import HtmlConfig
from pipeline.steps.identify import UnreadableInputError

# htmldate refuses dates after `max_date`; trafilatura's default is today's date, which would make
# the output depend on the day of the run. The fetch date is used when known, else this one.
_LATEST_DATE: Final = "2099-12-31"

# trafilatura's author search (`metadata.extract_author`: AUTHOR_DISCARD_XPATHS prunes, then the
# first AUTHOR_XPATHS expression with a short enough text wins) as predicates on one element.
# Its XPaths call Python for every `re:test` and walk the page four times; one walk here gives
# the same elements (tests/test_extract.py checks both against trafilatura's own).
_DISCARD_TAGS: Final = ("a", "div", "section", "span")
_DISCARD_ID: Final = re.compile("^comments|comment-?list|ProductReviews")
_DISCARD_CLASS: Final = re.compile(
    "^[Cc]omments|commentlist|comments-list|sidebar|is-hidden|quote|embedly-instagram|"
    "article-(?:share|support)|print|category|meta-date|meta-reviewer"
)
_SPECIFIC_TAGS: Final = frozenset({"a", "address", "div", "link", "p", "span", "strong"})
_SPECIFIC_CLASS: Final = re.compile("author-?name|AuthorName|authorName")
_GENERIC_TAGS: Final = frozenset({"a", "div", "h3", "h4", "p", "span"})
_GENERIC_ID: Final = re.compile("author|zuozhe|bianji|xiaobian")
_GENERIC_CLASS: Final = re.compile("author|channel-name|zuozhe|bianji|xiaobian|submitted-by|posted-by|journalist-name")
_ANY_ID: Final = re.compile("[Aa]uthor")
_ANY_CLASS: Final = re.compile("[Aa]uthor|screenname|writer|[Bb]yline")
_AUTHOR_MAX_CHARS: Final = 120


class NoMainContentError(UnreadableInputError):
    """A page in which the extractor finds no main content."""


@dataclass(frozen=True)
class ExtractedPage:
    """The main text of a page and what its markup says about it."""

    text: str
    title: str | None
    author: str | None
    date: str | None
    url: str | None
    site_name: str | None
    line_context: list[list[float]] | None = None
    """`DOM_FEATURES` of each line of `text`, when the page was rendered whole (`extract_page_lines`)."""


BLOCK_TAGS: Final[frozenset[str]] = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "br", "caption", "center", "dd",
        "details", "dialog", "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer",
        "form", "frameset", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "html",
        "legend", "li", "listing", "main", "menu", "nav", "ol", "p", "plaintext", "pre", "section",
        "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul", "xmp",
    }
)  # fmt: skip
"""Elements that start and end a line of a rendered page; every other element is inline."""

SKIPPED_TAGS: Final[frozenset[str]] = frozenset(
    {"title", "script", "style", "noscript", "template", "svg", "math", "iframe", "object"}
)
"""Elements whose contents are never rendered (their tail text, which follows them, still is).

``<head>`` itself is not skipped: it holds no text once these are gone, except body content that
libxml2 (unlike an HTML5 parser) leaves in ``<head>``, e.g. a ``<nav>`` after an unclosed head.
"""

_OPEN: Final = 0
_CLOSE: Final = 1
TEXT_EVENT: Final = 2
"""The kind of `walk_visible` event that carries text."""


def _tag(element: Any) -> str:
    tag = element.tag
    return tag.lower() if isinstance(tag, str) else ""


def walk_visible(root: Any) -> Iterator[tuple[int, Any]]:
    """Yield a parsed page's visible content in order: (`_OPEN`, element), (`TEXT_EVENT`, text), (`_CLOSE`, element).

    Skipped elements, comments and processing instructions are not entered; their tail text is yielded.
    """
    # Iterative depth-first walk: deeply nested pages would overflow recursion.
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        if closing:
            yield _CLOSE, node
        else:
            name = _tag(node)
            if name and name not in SKIPPED_TAGS:
                yield _OPEN, node
                if node.text:
                    yield TEXT_EVENT, node.text
                stack.append((node, True))
                stack.extend((child, False) for child in reversed(node))
                continue
        if node.tail and node is not root:
            yield TEXT_EVENT, node.tail


def _collapse(text: str) -> str:
    """Collapse runs of whitespace (Unicode, including no-break space) to one space; strip."""
    return " ".join(text.split())


def render_block_lines(root: Any, breaks: frozenset[str] = BLOCK_TAGS) -> list[str]:
    """Render a parsed page to its visible text, one line per block-level element (boilerplate kept).

    Only the block elements in `breaks` end a line; the others part words with a space.

    >>> from lxml import etree
    >>> page = etree.HTML("<nav><a href=/>Home</a></nav><p>One <a href=x>link</a>.<br>Two</p>")
    >>> render_block_lines(page), render_block_lines(page, BLOCK_TAGS - {"br"})
    (['Home', 'One link.', 'Two'], ['Home', 'One link. Two'])
    """
    lines: list[str] = []
    parts: list[str] = []
    for event, item in walk_visible(root):
        if event == TEXT_EVENT:
            parts.append(item)
        elif (tag := _tag(item)) in breaks:
            if line := _collapse("".join(parts)):
                lines.append(line)
            parts.clear()
        elif tag in BLOCK_TAGS:
            parts.append(" ")
    if line := _collapse("".join(parts)):
        lines.append(line)
    return lines


_NEGATIVE_NAMES: Final = re.compile(
    r"comment|related|share|social|foot|header|nav|menu|sidebar|widget|promo|sponsor|newsletter|subscri|"
    r"author|bio|byline|caption|credit|breadcrumb|banner|advert|\bads?\b|tag|meta|tool|popup|modal|cookie|"
    r"signup|login|search|recommend|trending|popular|more|teaser|card|list|rail|outbrain|taboola|disclaimer",
    re.IGNORECASE,
)
"""Words of class and id attributes that mark page furniture (menus, widgets, comments, promotions)."""
_POSITIVE_NAMES: Final = re.compile(r"article|body|content|entry|main|post|text|story|blog|prose|rich|paragraph", re.I)
"""Words of class and id attributes that mark an article's body."""
_BLOCK_KINDS: Final = ("p", "li", "heading", "cell", "div", "other")
_LANDMARKS: Final = (
    "nav", "header", "footer", "aside", "form", "article", "main", "figure", "table", "ul", "blockquote", "section",
)  # fmt: skip
_FAR: Final = 30
"""Distance given when no enclosing element's name matches."""

DOM_FEATURES: Final[tuple[str, ...]] = (
    "link_share",
    "depth",
    "furniture_name_distance",
    "body_name_distance",
    "furniture_names",
    "body_names",
    "parent_words",
    "grandparent_words",
    "parent_paragraphs",
    "own_furniture_name",
    "own_body_name",
    *(f"block_{kind}" for kind in _BLOCK_KINDS),
    *(f"inside_{name}" for name in _LANDMARKS),
)
"""What the markup says of each rendered line (`render_page_lines`): links, nesting and names around it."""


@dataclass(frozen=True)
class RenderedPage:
    """A page's lines as `render_block_lines` cuts them, with `DOM_FEATURES` rows for each."""

    lines: list[str]
    context: list[list[float]]


def _names(element: Any) -> str:
    return " ".join(value for value in (element.get("class"), element.get("id")) if value)


def _block_kind(tag: str) -> str:
    if tag in ("p", "li", "div"):
        return tag
    if len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
        return "heading"
    return "cell" if tag in ("td", "th") else "other"


def render_page_lines(root: Any) -> RenderedPage:
    """Render a parsed page one line per block (as `render_block_lines`), with what its markup says of each line.

    A line's context is that of the elements open at its first visible character: the share of
    its characters inside links, its depth, how near an enclosing element whose class or id names
    page furniture or an article body, the visible words of its block's parent and grandparent
    (an article's paragraphs share a large parent), and the landmarks (`nav`, `footer`, ...) around it.

    >>> from lxml import etree
    >>> page = render_page_lines(
    ...     etree.HTML('<div class="menu"><a href=/>Home</a></div><article><p>A b c.</p></article>'))
    >>> page.lines, [row[DOM_FEATURES.index("link_share")] for row in page.context]
    (['Home', 'A b c.'], [1.0, 0.0])
    >>> [row[DOM_FEATURES.index("inside_article")] for row in page.context]
    [0, 1]
    """
    open_elements: list[Any] = []
    # Visible words under each element. Keyed by the element itself: the key keeps lxml's proxy
    # alive, so `getparent()` returns that same object (an id() could be reused by another).
    words: dict[Any, int] = {}
    pending: list[tuple[str, list[Any], int, int]] = []
    parts: list[str] = []
    first: list[Any] | None = None
    in_link = 0
    link_chars = chars = 0

    def end_line() -> None:
        nonlocal first, link_chars, chars
        if line := _collapse("".join(parts)):
            pending.append((line, first or [], link_chars, chars))
        parts.clear()
        first, link_chars, chars = None, 0, 0

    for event, item in walk_visible(root):
        if event == TEXT_EVENT:
            parts.append(item)
            size = len(item.strip())
            if size:
                first = first if first is not None else list(open_elements)
                chars += size
                link_chars += size if in_link else 0
                count = len(item.split())
                for element in open_elements:
                    words[element] = words.get(element, 0) + count
        elif event == _OPEN:
            if _tag(item) in BLOCK_TAGS:
                end_line()
            open_elements.append(item)
            in_link += _tag(item) == "a"
        else:
            open_elements.pop()
            in_link -= _tag(item) == "a"
            if _tag(item) in BLOCK_TAGS:
                end_line()
    end_line()
    lines = [line for line, *_ in pending]
    known = _KnownElements(words)
    context = [_line_context(chain, link, total, known) for _, chain, link, total in pending]
    return RenderedPage(lines, context)


@dataclass
class _KnownElements:
    """What is known of a page's elements, each found once (lines share their ancestors), keyed by element."""

    words: dict[Any, int]
    """Visible words under each element."""
    paragraphs: dict[Any, int] = field(default_factory=dict)
    """`<p>` children of each parent: counted once, so a list of N items costs N, not N squared."""
    names: dict[Any, tuple[bool, bool]] = field(default_factory=dict)
    """Whether each element's class or id names page furniture, and an article body."""

    def named(self, element: Any) -> tuple[bool, bool]:
        found = self.names.get(element)
        if found is None:
            names = _names(element)
            found = (
                (bool(_NEGATIVE_NAMES.search(names)), bool(_POSITIVE_NAMES.search(names))) if names else (False, False)
            )
            self.names[element] = found
        return found


def _line_context(chain: list[Any], link_chars: int, chars: int, known: _KnownElements) -> list[float]:
    """Return a line's `DOM_FEATURES` row (whole numbers as `int`, so a record's JSON stays short)."""
    blocks = [element for element in chain if _tag(element) in BLOCK_TAGS]
    block = blocks[-1] if blocks else None
    kind = _block_kind(_tag(block)) if block is not None else "other"
    furniture_distance = body_distance = _FAR
    furniture = body = 0
    for distance, element in enumerate(reversed(chain)):
        is_furniture, is_body = known.named(element)
        if is_furniture:
            furniture += 1
            furniture_distance = min(furniture_distance, distance)
        if is_body:
            body += 1
            body_distance = min(body_distance, distance)
    parent = block.getparent() if block is not None else None
    grandparent = parent.getparent() if parent is not None else None
    if parent is not None and parent not in known.paragraphs:
        known.paragraphs[parent] = sum(1 for child in parent if _tag(child) == "p")
    tags = {_tag(element) for element in chain}
    own = known.named(chain[-1]) if chain else (False, False)
    return [
        round(link_chars / max(chars, 1), 4),
        len(chain),
        furniture_distance,
        body_distance,
        furniture,
        body,
        round(math.log1p(known.words.get(parent, 0)), 4) if parent is not None else 0,
        round(math.log1p(known.words.get(grandparent, 0)), 4) if grandparent is not None else 0,
        known.paragraphs[parent] if parent is not None else 0,
        int(own[0]),
        int(own[1]),
        *(int(kind == name) for name in _BLOCK_KINDS),
        *(int(name in tags) for name in _LANDMARKS),
    ]


def _clean(value: Any) -> str | None:
    return str(value).strip() or None if value else None


def _discarded(element: HtmlElement) -> bool:
    """Whether trafilatura's author search ignores this a, div, section or span and what it holds."""
    id_, class_ = element.get("id", ""), element.get("class", "")
    return bool(
        id_ == "comments"
        or class_ in ("comments", "title", "date")
        or _DISCARD_ID.search(id_)
        or _DISCARD_CLASS.search(class_)
        or "Figure" in element.get("data-component", "")
    )


def extract_author(tree: HtmlElement) -> str | None:
    """Return the author named in the page's markup, as trafilatura's `extract_author` does."""
    pruned = deepcopy(tree)
    for element in [e for e in pruned.iterdescendants(*_DISCARD_TAGS) if _discarded(e)]:
        delete_element(element)  # keeps the tail text, as trafilatura's pruning does
    for element in list(pruned.iter("time", "figure")):
        delete_element(element)
    rel_me = {rel.getparent() for rel in pruned.iter("rel") if rel.text_content() == "me"}
    specific: list[HtmlElement] = []
    generic: list[HtmlElement] = []
    anywhere: list[HtmlElement] = []
    for element in pruned.iter():
        tag = element.tag
        if not isinstance(tag, str):  # comments and processing instructions
            continue
        get = element.get
        id_, class_, itemprop = get("id", ""), get("class", ""), get("itemprop", "")
        if tag == "author" or (
            tag in _SPECIFIC_TAGS
            and (
                get("rel") == "author"
                or id_ == "author"
                or class_ == "author"
                or itemprop == "author name"
                or get("data-testid") in ("AuthorCard", "AuthorURL")
                or _SPECIFIC_CLASS.search(class_)
                or element in rel_me
            )
        ):
            specific.append(element)
        if tag in _GENERIC_TAGS and (
            class_ in ("byline", "username", "byl", "BBL")
            or "author" in itemprop
            or _GENERIC_ID.search(id_)
            or _GENERIC_CLASS.search(class_)
        ):
            generic.append(element)
        if (
            "Byline" in get("data-component", "")
            or "author" in itemprop
            or _ANY_ID.search(id_)
            or _ANY_CLASS.search(class_)
        ):
            anywhere.append(element)
    for candidates in (specific, generic, anywhere):
        for element in candidates:
            text = trim(" ".join(element.itertext()))
            if text and 2 < len(text) < _AUTHOR_MAX_CHARS:
                author: str | None = normalize_authors(None, text)  # None when no name is left
                return author
    return None


def page_metadata(tree: HtmlElement, url: str | None, max_date: str) -> Document:
    """Return the title, author, URL, date and site name of a parsed page, as trafilatura finds them.

    trafilatura's `extract_metadata` without what the pipeline does not keep (categories, tags,
    licence, host name), and with htmldate's fast date search: the extensive one reads every
    date-like string of the page, costs several times the rest, and more often returns a
    copyright year or a sidebar's date than the publication date. `max_date` (ISO) caps the date.
    """
    metadata = examine_meta(tree)
    if metadata.author and " " not in metadata.author:
        metadata.author = None
    with contextlib.suppress(Exception):  # trafilatura's own guard: its JSON-LD reader has known bugs
        metadata = extract_meta_json(tree, metadata)
    metadata.title = metadata.title or extract_title(tree)
    metadata.author = metadata.author or extract_author(tree)
    metadata.url = metadata.url or extract_url(tree, url)
    metadata.date = find_date(tree, extensive_search=False, original_date=True, url=metadata.url, max_date=max_date)
    metadata.sitename = metadata.sitename or extract_sitename(tree)
    if metadata.sitename:
        metadata.sitename = metadata.sitename.lstrip("@")  # a Twitter handle
        if metadata.sitename and "." not in metadata.sitename and not metadata.sitename[0].isupper():
            metadata.sitename = metadata.sitename.title()
    elif metadata.url and (match := META_URL.match(metadata.url)):
        metadata.sitename = match[1]
    metadata.clean_and_trim()
    return metadata


def extract_main_content(
    html: str, cfg: HtmlConfig, url: str | None = None, fetched: str | None = None
) -> ExtractedPage:
    """Return the main content of a page; raise NoMainContentError when there is none.

    `fetched` (an ISO date or date-time) is the latest publication date accepted.

    >>> page = extract_main_content(
    ...     "<html><head><title>Rain due</title></head><body><nav>Home | World</nav><article>"
    ...     "<h1>Rain due</h1><p>" + "Heavy rain is expected across the region on Monday. " * 4 +
    ...     "</p></article></body></html>", HtmlConfig())
    >>> page.title, page.text.count("Heavy rain"), "Home" in page.text
    ('Rain due', 4, False)
    """
    tree = load_html(html)
    document = None
    if tree is not None:
        document = trafilatura.bare_extraction(
            tree,  # trafilatura prunes a copy: `tree` stays whole for the metadata
            url=url,
            include_comments=cfg.include_comments,
            include_tables=cfg.include_tables,
            favor_precision=cfg.favor == "precision",
            favor_recall=cfg.favor == "recall",
            deduplicate=False,
        )
    text = document.text if isinstance(document, Document) else None
    if cfg.include_comments and text and isinstance(document, Document) and document.comments:
        text += "\n" + document.comments  # trafilatura keeps the readers' comments apart from the text
    if tree is None or not text or not text.strip():
        raise NoMainContentError("HTML page with no main content (trafilatura found no article text)")
    metadata = page_metadata(tree, url, (fetched or _LATEST_DATE)[:10])
    return ExtractedPage(
        text=text,
        title=_clean(metadata.title),
        author=_clean(metadata.author),
        date=_clean(metadata.date),
        url=_clean(metadata.url) or url,
        site_name=_clean(metadata.sitename),
    )


def extract_page_lines(html: str, url: str | None = None, fetched: str | None = None) -> ExtractedPage:
    """Return a whole page rendered one line per block, with each line's `DOM_FEATURES`, and its metadata.

    Nothing is removed here: the boilerplate stage's rules and its line classifier for HTML
    pages (which reads the markup's context too) choose the article's lines, and log each removal.

    >>> page = extract_page_lines("<html><head><title>Rain due</title></head><body><nav><a href=/>Home</a></nav>"
    ...                           "<p>Heavy rain is expected on Monday.</p></body></html>")
    >>> page.text, page.title, len(page.line_context or [])
    ('Home\\nHeavy rain is expected on Monday.', 'Rain due', 2)
    """
    tree = load_html(html)
    rendered = render_page_lines(tree) if tree is not None else None
    if tree is None or rendered is None or not rendered.lines:
        raise NoMainContentError("HTML page with no visible text")
    metadata = page_metadata(tree, url, (fetched or _LATEST_DATE)[:10])
    return ExtractedPage(
        text="\n".join(rendered.lines),
        title=_clean(metadata.title),
        author=_clean(metadata.author),
        date=_clean(metadata.date),
        url=_clean(metadata.url) or url,
        site_name=_clean(metadata.sitename),
        line_context=rendered.context,
    )


def extract_page(html: str, cfg: HtmlConfig, url: str | None = None, fetched: str | None = None) -> ExtractedPage:
    """Return a page's text and metadata as `html.main_content` says: trafilatura's choice or the whole page's lines."""
    if cfg.main_content == "lines":
        return extract_page_lines(html, url, fetched)
    return extract_main_content(html, cfg, url, fetched)
