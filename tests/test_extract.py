"""HTML extraction: the pipeline's metadata is trafilatura's, found at less cost."""

from __future__ import annotations

import gc
import hashlib
from html import escape

import pytest
import trafilatura
from htmldate import find_date
from hypothesis import given, settings
from hypothesis import strategies as st
from trafilatura import metadata as trafilatura_metadata
from trafilatura.utils import load_html
from trafilatura.xpaths import AUTHOR_DISCARD_XPATHS, AUTHOR_XPATHS

from pipeline.config import HtmlConfig, PipelineConfig
from pipeline.evaluation import load_pages
from pipeline.steps.encoding import repair_encoding
from pipeline.steps.extract import (
    DOM_FEATURES,
    NoMainContentError,
    extract_author,
    extract_main_content,
    extract_page,
    extract_page_lines,
    page_metadata,
    render_block_lines,
    render_page_lines,
)
from tests.samples import eval_dir

# The expressions `extract_author` mirrors (whitespace-normalised, hashed). When a trafilatura
# upgrade changes them, port the change to pipeline/steps/extract.py, then update the hash.
AUTHOR_XPATHS_HASH = "6c36aacdd94ea203"

TAGS = ("a", "address", "div", "link", "p", "span", "strong", "h3", "h4", "section", "time", "figure")
TAGS += ("author", "rel", "li", "article")


def _specs(text: str) -> list[str]:
    return text.split("|")


ATTRIBUTES = ("id", "class", "itemprop", "data-component", "rel", "data-testid")
VALUES = _specs(
    "author|comments|comment-list|xcommentlist|ProductReviews|Comments box|sidebar|byline|Byline|writer|screenname|"
    "author-name|AuthorName|authorName|username|byl|BBL|author name|AuthorCard|AuthorURL|title|date|a quote|Figure|me|"
    "zuozhe|posted-by|meta-date|category|print|post"
)
TEXTS = ("", "Jane Doe", "By John Smith", "me", "x", "Anna Lee and Bo Chan", "https://example.com", "Staff")

# One case per rule of trafilatura's author search, as "tag attribute=value" elements.
DISCARDED = _specs(  # an author named inside one of these is not looked at
    "div id=comments|div class=comments|div class=title|div class=date|div id=comments-area|span id=x-commentlist|"
    "div id=comment-list|div id=ProductReviews2|div class=Comments|section class=x commentlist|a class=comments-list|"
    "div class=left-sidebar|div class=is-hidden|div class=blockquote|div class=embedly-instagram|"
    "div class=article-share|div class=article-support|div class=noprint|div class=category|div class=meta-date|"
    "div class=meta-reviewer|div data-component=Figure|time|figure"
)
KEPT = _specs("div class=x comments|p class=sidebar|div id=x-comments")
FOUND = _specs(  # the text of one of these is the author
    "div id=author|strong class=author|p itemprop=author name|div data-testid=AuthorCard|a data-testid=AuthorURL|"
    "span class=post-author-name|span class=authorname|span class=AuthorName|span class=theauthorName|author|"
    "address rel=author|h4 class=username|p class=byl|p class=BBL|span itemprop=creator author|span id=post-author|"
    "span id=zuozhe|span id=bianji1|span id=xiaobian|div class=channel-name|div class=submitted-by|div class=posted-by|"
    "div class=journalist-name|div class=zuozhe|div class=x-bianji|div class=xiaobian|li data-component=TheByline|"
    "li itemprop=author|li id=Author|li id=the-author|li class=Author|li class=screenname|li class=writer|"
    "li class=Byline|h3 class=author"
)


def _tag(spec: str, inner: str) -> str:
    tag, _, attribute = spec.partition(" ")
    name, _, value = attribute.partition("=")
    return f'<{tag} {name}="{value}">{inner}</{tag}>' if name else f"<{tag}>{inner}</{tag}>"


NAMED = '<span class="author">Jane Doe</span>'
AUTHOR_CASES = (
    [(_tag(spec, NAMED), None) for spec in DISCARDED]
    + [(_tag(spec, NAMED), "Jane Doe") for spec in KEPT]
    + [(_tag(spec, "Jane Doe"), "Jane Doe") for spec in FOUND]
    + [
        ('<li class="byline"><!-- c -->Jane Doe</li>', "Jane Doe"),
        # the specific expressions first, then the generic ones, then any element; 3 to 119 characters
        ('<span class="byline">Bo Chan</span><a rel="author">Jane Doe</a>', "Jane Doe"),
        ('<li class="author">Bo Chan</li><h3 class="byline">Jane Doe</h3>', "Jane Doe"),
        ('<li class="writer">Bo Chan</li><p class="BBL">Jane Doe</p>', "Jane Doe"),
        ('<span class="author">Al</span><li class="writer">Jane Doe</li>', "Jane Doe"),
        ('<span class="author">' + "Jane Doe " * 15 + '</span><li class="writer">Bo Chan</li>', "Bo Chan"),
        ('<div class="byline">Bo Chan <time>2024</time> Jane Doe</div>', "Bo Chan Jane Doe"),
        ("<address><rel>me</rel>Jane Doe</address>", "Me Jane Doe"),
        ('<span class="author">https://example.com/jane</span><li class="writer">Bo Chan</li>', None),
    ]
)


def _page(body: str) -> str:
    return f"<html><head><title>t</title></head><body><p>Text.</p>{body}</body></html>"


def _element(children: list[str]) -> st.SearchStrategy[str]:
    attributes = st.dictionaries(st.sampled_from(ATTRIBUTES), st.sampled_from(VALUES), max_size=2)
    return st.builds(
        lambda tag, attrs, text, tail: "<{}{}>{}{}</{}>{}".format(
            tag, "".join(f' {k}="{escape(v)}"' for k, v in attrs.items()), text, "".join(children), tag, tail
        ),
        st.sampled_from(TAGS),
        attributes,
        st.sampled_from(TEXTS),
        st.sampled_from(TEXTS),
    )


ELEMENTS = st.recursive(
    st.sampled_from(TEXTS),
    lambda inner: st.lists(inner, max_size=4).flatmap(_element),
    max_leaves=12,
)


def test_author_expressions_are_the_ones_mirrored() -> None:
    paths = " ".join(" ".join(x.path.split()) for x in AUTHOR_DISCARD_XPATHS + AUTHOR_XPATHS)
    assert hashlib.sha256(paths.encode()).hexdigest()[:16] == AUTHOR_XPATHS_HASH


@pytest.mark.parametrize(("body", "author"), AUTHOR_CASES)
def test_author_rule(body: str, author: str | None) -> None:
    tree = load_html(_page(body))
    assert extract_author(tree) == trafilatura_metadata.extract_author(tree) == author


@settings(max_examples=400, deadline=None)
@given(st.lists(ELEMENTS, min_size=1, max_size=4))
def test_author_is_trafilaturas(body: list[str]) -> None:
    tree = load_html(_page("".join(body)))
    assert extract_author(tree) == trafilatura_metadata.extract_author(tree)


def test_metadata_is_trafilaturas_on_real_pages() -> None:
    eval_dir()
    for page in load_pages(limit=60):
        tree = load_html(page.html)
        ours = page_metadata(tree, page.url, "2099-12-31")
        theirs = trafilatura_metadata.extract_metadata(
            tree, page.url, {"original_date": True, "max_date": "2099-12-31"}
        )
        assert (ours.title, ours.author, ours.url, ours.sitename) == (
            theirs.title,
            theirs.author,
            theirs.url,
            theirs.sitename,
        ), page.file_id
        fast_date = find_date(tree, extensive_search=False, original_date=True, url=theirs.url, max_date="2099-12-31")
        assert ours.date == fast_date, page.file_id


def test_date_is_never_after_the_fetch() -> None:
    html = (
        "<html><head><meta property='article:published_time' content='2024-05-02'></head><body><article>"
        + "<p>Heavy rain is expected across the region on Monday, forecasters said.</p>" * 5
        + "</article></body></html>"
    )
    assert extract_main_content(html, HtmlConfig()).date == "2024-05-02"
    assert extract_main_content(html, HtmlConfig(), fetched="2024-05-01T10:00:00Z").date != "2024-05-02"


def test_readers_comments_are_kept_when_asked_for_on_real_pages() -> None:
    # trafilatura returns comments apart from the text; they were dropped whatever the config said.
    eval_dir()
    for page in load_pages(limit=40):
        without = extract_page(page.html, HtmlConfig(), page.url).text
        with_comments = extract_page(page.html, HtmlConfig(include_comments=True), page.url).text
        assert with_comments.startswith(without), page.file_id
        if page.file_id == "0035":
            assert len(with_comments) > len(without) + 10_000


@pytest.mark.parametrize("html", ["", "<html><body><script>app()</script></body></html>"])
@pytest.mark.parametrize("main_content", ["trafilatura", "lines"])
def test_no_main_content(html: str, main_content: str) -> None:
    with pytest.raises(NoMainContentError):
        extract_page(html, HtmlConfig.model_validate({"main_content": main_content}))


def test_whole_page_lines_carry_their_markup_context_on_real_pages() -> None:
    """Each line of a whole page has its context row; what the markup says is told apart."""
    eval_dir()
    kinds = {"link": 0, "in_nav_or_footer": 0}
    for page in load_pages(limit=20):
        extracted = extract_page_lines(page.html, page.url)
        gc.collect()  # lxml's element proxies go; the context must not depend on which are alive
        assert extract_page_lines(page.html, page.url) == extracted, page.file_id
        tree = load_html(page.html)
        assert extracted.text.split("\n") == render_block_lines(tree) == render_page_lines(tree).lines
        context = extracted.line_context or []
        assert len(context) == len(extracted.text.split("\n"))
        assert all(len(row) == len(DOM_FEATURES) for row in context)
        for row in context:
            assert 0.0 <= row[DOM_FEATURES.index("link_share")] <= 1.0
            kinds["link"] += row[DOM_FEATURES.index("link_share")] == 1.0
            nav = row[DOM_FEATURES.index("inside_nav")] + row[DOM_FEATURES.index("inside_footer")]
            kinds["in_nav_or_footer"] += nav > 0
        # The metadata is the trafilatura path's.
        try:
            chosen = extract_main_content(page.html, HtmlConfig(), page.url)
            assert (extracted.title, extracted.date) == (chosen.title, chosen.date), page.file_id
        except NoMainContentError:
            pass
        # Encoding repair keeps a line a line, so the rows stay aligned.
        assert len(repair_encoding(extracted.text, PipelineConfig().encoding).text.split("\n")) == len(context)
    assert kinds["link"] > 100 and kinds["in_nav_or_footer"] > 100, kinds


@pytest.mark.parametrize("siblings", [500, 2000])
def test_rendering_a_page_costs_in_line_with_its_elements(siblings: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of paragraphs under one parent (a long comment thread, a list page) cost a tag look-up
    a few times each, not once per other sibling: their parent's `<p>` children are counted once."""
    import pipeline.steps.extract as extract

    looked_up = 0
    tag = extract._tag

    def counted(element: object) -> str:
        nonlocal looked_up
        looked_up += 1
        return tag(element)

    monkeypatch.setattr(extract, "_tag", counted)
    body = "".join(f"<p>Reply number {n} to the story, with a few words.</p>" for n in range(siblings))
    page = render_page_lines(load_html(f"<html><body><div class='comments'>{body}</div></body></html>"))
    assert len(page.lines) == siblings
    assert looked_up < 20 * siblings  # counting the siblings for each line would be siblings squared


def test_a_repaired_line_stays_one_line() -> None:
    repaired = repair_encoding("Breaking&#10;news\nSecond line", PipelineConfig().encoding)
    assert repaired.text == "Breaking news\nSecond line"


def test_text_is_trafilaturas_from_the_html_string() -> None:
    eval_dir()
    for page in load_pages(limit=20):
        document = trafilatura.bare_extraction(page.html, include_comments=False, deduplicate=False)
        try:
            text = extract_main_content(page.html, HtmlConfig()).text
        except NoMainContentError:
            text = ""
        assert text == (document.text if document else ""), page.file_id
