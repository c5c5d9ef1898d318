"""Extract the main content and metadata of an HTML page with trafilatura.

The extracted text keeps one paragraph per line, so it goes through the same plain-text
cleaning as any other input. Deduplication inside trafilatura stays off: duplicates are the
dedup stage's job, where they are logged.

The page is parsed once; trafilatura extracts the text from a copy of the tree and the
metadata is read from the tree itself, only for a page with main content. The metadata is
what trafilatura's `extract_metadata` finds for the fields the pipeline keeps, at a fraction
of its cost (see `page_metadata`).
"""

from __future__ import annotations

import contextlib
import re
from copy import deepcopy
from dataclasses import dataclass
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
