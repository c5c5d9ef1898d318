"""Extract the main content and metadata of an HTML page with trafilatura.

The extracted text keeps one paragraph per line, so it goes through the same plain-text
cleaning as any other input. Deduplication inside trafilatura stays off: duplicates are the
dedup stage's job, where they are logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import trafilatura
from trafilatura.settings import Document

from pipeline.config import HtmlConfig
from pipeline.steps.identify import UnreadableInputError

# htmldate refuses dates after `max_date`; trafilatura's default is today's date, which would make
# the output depend on the day of the run. The fetch date is used when known, else this one.
_LATEST_DATE: Final = "2099-12-31"


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
    document = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_comments=cfg.include_comments,
        include_tables=cfg.include_tables,
        favor_precision=cfg.favor == "precision",
        favor_recall=cfg.favor == "recall",
        deduplicate=False,
        date_extraction_params={
            "original_date": True,
            "extensive_search": True,
            "max_date": (fetched or _LATEST_DATE)[:10],
        },
    )
    text = document.text if isinstance(document, Document) else None
    if not isinstance(document, Document) or not text or not text.strip():
        raise NoMainContentError("HTML page with no main content (trafilatura found no article text)")
    return ExtractedPage(
        text=text,
        title=_clean(document.title),
        author=_clean(document.author),
        date=_clean(document.date),
        url=_clean(document.url) or url,
        site_name=_clean(document.sitename),
    )
