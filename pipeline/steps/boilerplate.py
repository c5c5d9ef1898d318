"""Strip scraped boilerplate from plain text, line by line, recording every removal's rule.

The text is first mended: lines that a link broke apart are rejoined into one. Then each
line meets the named rules in `LINE_RULES` (whole-line patterns of a kind: promos, widgets,
credits, interface words). Block headers ("Sponsored Links", "Related Articles") open a
block that goes on over the teaser lines that follow them; in a related-articles block a
long teaser paragraph is taken too when it follows a repeated headline or a teaser's
metadata line. Finally partial rules cut datelines, trailing photo credits and inline ad
markers out of lines that are otherwise kept.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import numpy as np

from pipeline.config import BoilerplateConfig
from pipeline.steps.line_classifier import (
    LineClassifier,
    candidate_lines,
    line_features,
    lower_for_matching,
    lowercase_twin,
)

CLASSIFIER_RULE = "line_classifier"
"""Rule name recorded for lines the learned classifier removes."""
SITE_RULE = "site_repeated"
"""Rule name recorded for lines repeated across many documents of one site."""

# --------------------------------------------------------------------------- line shapes

_WORD = re.compile(r"[^\W_]+(?:['’.-][^\W_]+)*", re.UNICODE)
_FINAL_STOPS = ".!?…。！？"
_CLOSERS = "\"'”’»)]"
_CONNECTORS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "with",
        "and",
        "or",
        "but",
        "nor",
        "as",
        "than",
        "that",
        "which",
        "who",
        "whose",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "has",
        "have",
        "had",
        "its",
        "their",
        "his",
        "her",
        "our",
        "your",
        "this",
        "these",
        "those",
        "into",
        "onto",
        "over",
        "under",
        "about",
        "after",
        "before",
        "between",
        "against",
        "during",
        "via",
        "per",
    ]
)


@lru_cache(maxsize=1 << 16)
def count_words(line: str) -> int:
    """Return the number of word tokens in a line (remembered for the lines seen last).

    >>> count_words("It's a well-known push, isn't it?")
    6
    """
    return len(_WORD.findall(line))


def ends_sentence(line: str) -> bool:
    """Return whether a line ends with sentence-final punctuation (closing quotes allowed).

    >>> ends_sentence('He said "no."'), ends_sentence("Breaking news")
    (True, False)
    """
    # A final stop, then only closing quotes and brackets: what `[.!?…]["'”’»)\]]*$` finds, without trying a
    # pattern at every position of the line.
    core = line.rstrip().rstrip(_CLOSERS)
    return bool(core) and core[-1] in _FINAL_STOPS


def is_prose(line: str) -> bool:
    """Return whether a line reads as article prose rather than a headline, label or teaser."""
    words = count_words(line)
    return (words >= 10 and ends_sentence(line)) or words >= 25


@lru_cache(maxsize=1 << 16)
def line_key(line: str) -> str:
    """Return a line reduced to lowercase words and single spaces, for matching (remembered for the lines seen last).

    >>> line_key("  Share  this: Facebook | X ")
    'share this facebook x'
    """
    return " ".join(_WORD.findall(line.lower()))


# --------------------------------------------------------------------------- rejoining


@dataclass(frozen=True)
class SourceLine:
    """A line after rejoining, with the number of the first input line it came from."""

    text: str
    position: int


def rejoin_broken_lines(lines: list[str]) -> tuple[list[SourceLine], int]:
    """Rejoin sentences that links broke over several lines; return the lines and joins made.

    A line is glued to the previous one when the previous one does not end a sentence and
    the line starts in lower case or with closing punctuation, or the previous one ends
    with a comma or a function word, or the line is a short fragment (a link's text) that
    the next line continues. Blank lines are paragraph breaks and are never crossed.

    >>> joined, n = rejoin_broken_lines(["The issue of", "terrorist sanctuaries", ".", "Next."])
    >>> [line.text for line in joined], n
    (['The issue of terrorist sanctuaries.', 'Next.'], 2)
    >>> [line.text for line in rejoin_broken_lines(["The minister visited", "Kabul", "on Monday."])[0]]
    ['The minister visited Kabul on Monday.']
    """
    stripped = [raw.strip() for raw in lines]
    out: list[SourceLine] = []
    joins = 0
    for position, line in enumerate(stripped):
        if not line:
            out.append(SourceLine("", position))
            continue
        previous = stripped[position - 1] if position else ""
        following = stripped[position + 1] if position + 1 < len(stripped) else ""
        if previous and line != previous and out and out[-1].text and _continues(out[-1].text, line, following):
            glue = "" if line[0] in ",.;:!?)]}”’%" else " "
            out[-1] = SourceLine(out[-1].text + glue + line, out[-1].position)
            joins += 1
        else:
            out.append(SourceLine(line, position))
    return out, joins


def _continues(previous: str, line: str, following: str) -> bool:
    if ends_sentence(previous) or previous.endswith(":"):
        return False
    if line[0] in ",.;:!?)]}%" or (line[0] in "”’" and len(line) <= 3):
        return True
    if line.split(None, 1)[0].islower():
        return True
    last = previous.rsplit(None, 1)[-1].lower()
    if previous.endswith(",") or (last in _CONNECTORS and count_words(previous) >= 3):
        return True
    # A link's text between two fragments of one sentence: "visited" / "Kabul" / "on Monday."
    return (
        count_words(previous) >= 3
        and count_words(line) <= 6
        and not ends_sentence(line)
        and bool(following)
        and (following[0].islower() or following[0] in ",.;:!?)]}")
    )


# --------------------------------------------------------------------------- rules


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.UNICODE)


_DATE = (
    r"(?:\d{1,2}[-./]\d{1,2}[-./]\d{2,4}"
    r"|\d{4}-\d{2}-\d{2}"
    r"|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}"
    r"|\d{1,2}(?:st|nd|rd|th)?\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?,?\s+\d{4})"
)
_TIME = (
    r"(?:,?\s*(?:at\s+)?\d{1,2}[:.]\d{2}\s*(?:am|pm|a\.m\.|p\.m\.)?"
    r"\s*(?:ist|gmt|utc|et|est|edt|pt|pst|pdt|cet|cest|bst)?)?"
)

_AD_HEADER = _rx(
    r"^(?:(?:ads?|content|stories|links)?\s*by\s+(?:taboola|outbrain|revcontent|mgid|zergnet)"
    r"|taboola|outbrain|sponsored(?:\s+(?:links?|content|stories|posts?|articles?|by\s+.{1,40}))?"
    r"|promoted(?:\s+(?:links?|content|stories|posts?))?|paid\s+(?:content|post|partner(?:\s+content)?)"
    r"|(?:partner|native)\s+content|you\s+(?:may|might)\s+(?:also\s+)?like|around\s+the\s+web"
    r"|from\s+(?:the\s+web|our\s+partners?)|recommended\s+by|more\s+from\s+our\s+partners?"
    r"|advertiser\s+content|featured\s+partners?|ad\s+choices|adchoices|ads\s+by\s+google)$"
)
_RELATED_HEADER = _rx(
    r"^(?:related(?:\s+(?:articles?|stories|story|news|posts?|content|coverage|reading|links|topics|videos?))?"
    r"|more\s+(?:stories|news|articles|coverage|videos?|to\s+read|like\s+this)(?:\s+(?:from|on|in|about)\s+.{1,40})?"
    r"|more\s+from\s+.{1,40}|recommended(?:\s+(?:for\s+you|stories|articles|reading|videos?))?"
    r"|trending(?:\s+(?:now|stories|news|articles|topics|videos?))?|top\s+(?:stories|news|picks)"
    r"|most\s+(?:read|popular|viewed|shared|watched|commented)(?:\s+(?:stories|articles|news|today|now))?"
    r"|popular(?:\s+(?:now|stories|articles|news|posts|on\s+.{1,30}))?|latest\s+(?:news|stories|articles|videos?)"
    r"|editors?[’']?\s*picks?|what\s+to\s+read\s+next|in\s+case\s+you\s+missed\s+it|other\s+stories"
    r"|you\s+may\s+also\s+(?:like|be\s+interested\s+in|enjoy)|read\s+next|up\s+next|don[’']?t\s+miss"
    r"|also\s+read|also\s+see|see\s+also|further\s+reading|keep\s+reading|more\s+in\s+.{1,30})$"
)
_READ_MORE = _rx(
    r"^(?:read\s+(?:more|also|next|this|the\s+full\s+(?:story|article))|also\s+read|see\s+also|related|"
    r"recommended|must\s+read|don[’']?t\s+miss|watch|listen|more\s+on\s+this(?:\s+story)?|also\s+on\s+\S+|"
    r"click\s+here(?:\s+to\s+read)?|continue\s+reading|read)\s*(?:(?:[:|>»›→\-–—]+|\.{3}|…)\s*\S.*)?$"
)
_READ_MORE_SHAPE = _rx(r"^(?:read|also|see|related|recommended|must|don|watch|listen|more|click|continue)\b")
_INLINE_AD = _rx(
    r"(?:story|article)\s+continues\s+(?:below|after)\s+(?:this\s+)?(?:advertisement|advert|ad)\b"
    r"|continue\s+reading\s+(?:below|the\s+main\s+story)|scroll\s+(?:down\s+)?to\s+continue(?:\s+with\s+content)?"
    r"|skip\s+advert(?:isement)?"
)
# The bare word only in capitals: "the advertisement was misleading" is prose.
_INLINE_AD_WORD = re.compile(r"\bADVERTISEMENT\b")
_INLINE_AD_LINE = _rx(r"^(?:advertisement|advertising|ads?|sponsored|advert|anzeige|publicidad|publicité)$")
_APP_PROMO = _rx(
    r"\bdownload\s+(?:the|our)\s+(?:\S+\s+){0,3}app\b|\b(?:get|install|open|try)\s+(?:it\s+on|the|our)\s+(?:\S+\s+){0,3}"
    r"(?:app|google\s+play|app\s+store)\b|\bapp[-\s]?store|\bplay[-\s]?store\b|\bgoogle\s+play\b"
    r"|\bavailable\s+on\s+(?:ios|android)\b|\bdownload\s+\S+\s+app\b|\bin\s+(?:the|our)\s+app\b"
    r"|^try\s+(?:our|the)\s+(?:\S+\s+){0,3}(?:features?|app|premium|free\s+trial)\b"
    r"|\bexplore\s+what\s+.{1,40}\s+can\s+do\s+for\s+you\b"
)
_NEWSLETTER = _rx(
    r"\b(?:sign\s*up|subscribe|register)\b.{0,80}\b(?:newsletters?|inbox|mailing\s+list|e-?mail\s+updates|alerts)\b"
    r"|\bnewsletters?\b.{0,60}\b(?:sign\s*up|subscribe|inbox|delivered|free)\b"
    r"|^(?:get|receive)\s+(?:the|our)\s+.{0,50}(?:newsletter|in\s+your\s+inbox)"
    r"|^(?:enter\s+your\s+e-?mail|your\s+e-?mail\s+address|e-?mail\s+address)\b"
    r"|^by\s+(?:signing\s+up|subscribing|clicking)\b.{0,200}\b(?:privacy|terms)\b"
    r"|^thank\s+you\s+for\s+(?:signing\s+up|subscribing)|^(?:subscribe|sign\s+up)(?:\s+(?:now|today|here|for\s+free))?$"
)
_COMMENTS = _rx(
    r"^(?:\d+\s+)?comments?(?:\s+\d+)?$|^no\s+comments(?:\s+yet)?$|^(?:leave|post|add|write)\s+a\s+(?:comment|reply)"
    r"|^be\s+the\s+first\s+to\s+comment|^(?:view|show|load|see|read)\s+(?:all\s+)?(?:\d+\s+)?(?:more\s+)?(?:comments|replies)"
    r"|^comments?\s+(?:are\s+)?closed|^join\s+the\s+(?:discussion|conversation)|^(?:sign|log)\s+in\s+to\s+(?:comment|reply)"
    r"|^you\s+must\s+(?:be\s+logged\s+in|log\s+in|sign\s+in)\s+to\s+(?:post\s+a\s+)?comment|^(?:\d+\s+)?(?:replies|reply)$|^comment\s+(?:now|here)$"
)
_COMMENTS_LINE = _rx(r"^comments?\s*\(\d+\)$|^no\s+comments\s+yet\W*$")
_SITE_PROMO = _rx(
    r"\bfollow\s+us\s+on\b|^(?:like|follow|join|find)\s+us\s+(?:on|at)\b|\bjoin\s+our\s+(?:whatsapp|telegram|facebook|discord)"
    r"|^read\s+(?:all\s+)?(?:the\s+)?latest\b.{0,120}\bnews\b|^(?:catch|get)\s+(?:all\s+)?(?:the\s+)?(?:latest|breaking)\s+"
    r"(?:news|updates)\b|^share\s+(?:this|on|via)\s*(?:article|story|page|post|\w+)?\s*$|^(?:click|tap)\s+here\b|"
    r"^follow\s+.{1,40}\s+on\s+(?:whatsapp|telegram|facebook|twitter|x|instagram|google\s+news)\b|"
    r"^catch\s+all\s+the\b.{0,160}\bnews\b|^subscribe\s+to\s+our\s+\S+\s+channel"
    r"|^(?:for|get)\s+(?:more|the\s+latest)\s+(?:news|updates|stories)\b.{0,60}\b(?:visit|follow|click|download|subscribe)"
)
_SOCIAL_WORDS = frozenset(
    [
        "facebook",
        "twitter",
        "x",
        "whatsapp",
        "linkedin",
        "telegram",
        "pinterest",
        "reddit",
        "instagram",
        "youtube",
        "tiktok",
        "email",
        "e-mail",
        "mail",
        "print",
        "share",
        "tweet",
        "copy",
        "link",
        "messenger",
        "flipboard",
        "sms",
        "threads",
        "bluesky",
        "mastodon",
        "comments",
        "comment",
        "save",
    ]
)
_BYLINE = _rx(
    r"^(?:written\s+by|posted\s+by|published\s+by|reported\s+by|edited\s+by|words\s+by|story\s+by|by)\s*:?\s+"
    r"(?P<name>[^\W\d_][\w .,'’&|-]{1,80})$"
)
_STAMP = _rx(
    r"^(?:published|updated|posted|last\s+updated|first\s+published|modified)(?:\s+(?:on|at))?\s*:?\s*"
    rf"(?:{_DATE}|\d{{1,2}}[:.]\d{{2}}|\d+\s+\w+\s+ago|[a-z]+day\b)"
    r"|^\d+\s*(?:min(?:ute)?s?)\s+read$|^(?:time\s*)?\d+\s*(?:sec(?:ond)?s?|min(?:ute)?s?|hours?|hrs?|days?|weeks?|months?|years?)\s+ago$"
    rf"|^[^\W\d_][\w&.'’ -]{{1,50}}?\s*[|,·•-]?\s*{_DATE}{_TIME}$"
)
_DATE_ONLY = _rx(rf"^[/|•·-]?\s*{_DATE}{_TIME}$")
_NAME_WORD = re.compile(r"^(?:[A-Z][\w'’.-]*|and|&|\||,|de|van|von|da|al|el|bin)$")


def _is_byline(line: str) -> bool:
    """Return whether a line is 'By <names>' (capitalised words only) or a publication stamp."""
    match = _BYLINE.match(line)
    if match:
        words = match.group("name").replace(",", " , ").replace("|", " | ").split()
        return len(words) <= 8 and all(_NAME_WORD.match(word) for word in words)
    return count_words(line) <= 12 and _may_be_stamp(line) and bool(_STAMP.match(line)) and not line.endswith(":")


def _may_be_stamp(line: str) -> bool:
    """Return False when `_STAMP` cannot match a line: each of its forms holds a digit or a weekday's "day"."""
    return "day" in line.lower() or any(map(str.isdecimal, line))


_DATELINE = re.compile(
    r"^(?:[A-Z][A-Z .'’-]{2,30}(?:,\s*[A-Z][A-Za-z .]{1,30})?\s*\([A-Za-z][\w .&]{0,20}\)\s*[:\-–—]+\s*"
    r"|[A-Z][A-Za-z .'’-]{1,30},\s*"
    r"(?:\d{1,2}(?:st|nd|rd|th)?\s+[A-Z][a-z]+\.?|[A-Z][a-z]+\.?\s+\d{1,2}(?:st|nd|rd|th)?),?"
    r"\s+\d{4}\s*(?:\([A-Za-z][\w .&]{0,20}\))?\s*[:\-–—]+\s*"
    r"|/\s*" + _DATE.replace("(?:", "(?i:", 1) + _TIME + r"\s+)(?=[\"“‘'A-Z0-9])"
)
_CREDIT_WORDS = (
    r"photos?|pics?|pictures?|images?|archive|file|credit|courtesy|getty|reuters|ap|afp|epa|pti|ani|ians"
    r"|shutterstock|istock|xinhua|bloomberg|dpa|anadolu|efe|alamy|sipa|zuma|handout|screengrab|screenshot"
)
_TRAILING_CREDIT = _rx(rf"\s*\((?:[\w.&/-]+\s+){{0,3}}(?:{_CREDIT_WORDS})\b[^()]{{0,40}}\)\s*(?=\.?$)")
_CREDIT_LINE = _rx(
    r"^(?:(?:photo|image|picture|video|graphic|illustration|pic)s?\s*(?:credits?)?\s*[:/|©-]|©|\(c\)\s|copyright\s"
    r"|credits?\s*:|courtesy\s*(?:of\s+)?[:\w]|(?:file\s+)?photo\s*[:/])"
    r"|(?:getty\s+images|shutterstock|istock(?:photo)?|ap\s+photo|afp\s+via\s+getty|reuters)\s*\)?\.?$"
)
_SOURCE = _rx(
    r"^(?:source|via|inputs?)\s*:\s*\S.{0,80}$|^\(?with\s+inputs?\s+from\s+[\w ,&.'’-]{2,60}\)?\.?$"
    r"|^this\s+(?:story|article|piece|report)\s+(?:was|is|has\s+been)\s+(?:first\s+|originally\s+)?"
    r"(?:published|posted|appeared|produced)\b.{0,150}$|^originally\s+published\b.{0,150}$"
    r"|^(?:copyright|©|\(c\))\s*(?:\d{4})?.{0,100}\ball\s+rights\s+reserved\.?$|^source\s+link$"
    r"|^\(?(?:additional\s+)?(?:reporting|writing|editing)\s+by\s+[^;]{2,60}(?:;\s*(?:additional\s+)?"
    r"(?:reporting|writing|editing)\s+by\s+[^;]{2,60})*\)?\.?$"
)
_UI_WORDS = frozenset(
    line_key(word)
    for word in (
        "logo",
        "undo",
        "menu",
        "main menu",
        "close",
        "close menu",
        "search",
        "search for",
        "share",
        "print",
        "email",
        "tweet",
        "reply",
        "skip to content",
        "skip to main content",
        "skip to navigation",
        "toggle navigation",
        "navigation",
        "back to top",
        "scroll to top",
        "loading",
        "loading...",
        "live events",
        "live",
        "live tv",
        "home",
        "next",
        "previous",
        "prev",
        "next article",
        "previous article",
        "more",
        "less",
        "show more",
        "show less",
        "read less",
        "expand",
        "collapse",
        "sign in",
        "sign out",
        "log in",
        "login",
        "log out",
        "register",
        "my account",
        "accept",
        "accept all",
        "reject all",
        "cookie settings",
        "manage cookies",
        "open in app",
        "listen",
        "listen to this article",
        "play",
        "pause",
        "mute",
        "unmute",
        "copy link",
        "link copied",
        "copied",
        "save",
        "saved",
        "bookmark",
        "font size",
        "text size",
        "a a",
        "zoom",
        "gallery",
        "view gallery",
        "enlarge",
        "image",
        "video",
        "audio",
        "watch",
        "watch video",
        "play video",
        "subscribe",
        "follow",
        "following",
        "unfollow",
        "like",
        "dislike",
        "advertisement",
        "trending",
        "tags",
        "topics",
        "live updates",
        "also watch",
        "filed under",
        "categories",
        "breadcrumb",
        "x",
    )
)
_UI_SHAPE = _rx(
    r"^(?:[\w-]+\s+){1,2}(?:logo|icon|background|banner|thumbnail|avatar|placeholder|sprite)(?:\s+(?:image|icon))?$"
    r"|^home\s*[>/»›|]|^tags?\s*:|^(?:page\s+)?\d+\s+(?:of|/)\s+\d+$|^[<>«»‹›←→|•·]+$"
)


MAX_DATE_STAMPS = 4
"""A document with more date-only lines than this holds dates as data (a table), not as stamps."""


@dataclass(frozen=True)
class Removal:
    """Text removed by a rule: its line number in the input, the rule's name, the text, and a score.

    `score` is the classifier's boilerplate probability for `line_classifier`, the number of
    the site's documents holding the line for `site_repeated`, else None.
    """

    position: int
    rule: str
    text: str
    score: float | None = None


@dataclass(frozen=True)
class StrippedText:
    """Text left after stripping, what was removed, and how many broken lines were rejoined."""

    text: str
    removals: tuple[Removal, ...]
    rejoined: int


def _is_social_row(key: str) -> bool:
    words = key.split()
    return 1 <= len(words) <= 12 and all(word in _SOCIAL_WORDS for word in words)


@lru_cache(maxsize=1 << 16)
def _match_line_rule(line: str, key: str, dates_are_stamps: bool = True) -> str | None:
    """Return the name of the whole-line rule that removes `line`, or None.

    `dates_are_stamps` is false in a document with many date-only lines: those are a table's
    or a list's data, not publication stamps. Remembered for the lines seen last: a site
    repeats its boilerplate lines on every page.
    """
    words = count_words(line)
    short = words <= 15
    lowered = lower_for_matching(line)
    if not key:
        return "ui_word" if words == 0 and len(line) <= 3 else None
    if _INLINE_AD_LINE.match(key) or (short and _INLINE_AD.fullmatch(line.strip(" .:-–—*|"))):
        return "inline_ad_marker"
    if short and _AD_HEADER.match(key):
        return "ad_block"
    if short and _RELATED_HEADER.match(key):
        return "related_block"
    if words <= 25 and _READ_MORE_SHAPE.match(key) and _READ_MORE.match(line.strip().rstrip(".")):
        return "read_more"
    if _read_more_label(line):
        return "read_more"
    if words <= 40 and _found(_APP_PROMO, line, lowered) and _promo_line(line, _APP_PROMO):
        return "app_promo"
    if words <= 60 and _found(_NEWSLETTER, line, lowered) and _promo_line(line, _NEWSLETTER):
        return "newsletter_promo"
    if short and (_COMMENTS.search(key) or _COMMENTS_LINE.search(line)):
        return "comment_widget"
    if words <= 40 and _found(_SITE_PROMO, line, lowered) and _promo_line(line, _SITE_PROMO):
        return "site_promo"
    if _is_social_row(key):
        return "site_promo"
    if short and (_is_byline(line.strip()) or (dates_are_stamps and _DATE_ONLY.match(line.strip()))):
        return "byline_dateline"
    if short and _is_credit_line(line):
        return "photo_credit"
    if words <= 30 and _SOURCE.match(line.strip()):
        return "source_line"
    if words <= 4 and (key in _UI_WORDS or _UI_SHAPE.match(line.strip())):
        return "ui_word"
    return None


def _found(pattern: re.Pattern[str], line: str, lowered: str | None) -> bool:
    """Return whether a case-insensitive pattern matches in a line; `lowered` is the line's `lower_for_matching`."""
    if lowered is None:
        return bool(pattern.search(line))
    return _may_match(pattern, lowered) and bool(lowercase_twin(pattern).search(lowered))


# Every match of each pattern holds one of its words (in lower case). A search tries the pattern
# at every position of a line, a substring test is many times cheaper: most lines hold none.
_NEEDLES: Final[dict[re.Pattern[str], tuple[str, ...]]] = {
    _APP_PROMO: ("app", "play", "available", "try", "explore"),
    _NEWSLETTER: ("sign", "subscri", "register", "newsletter", "inbox", "mail", "privacy", "terms"),
    _SITE_PROMO: (
        "follow", "like", "join", "find", "latest", "breaking", "share", "click", "tap", "catch", "channel",
        "visit", "download", "subscribe",
    ),
    _SOURCE: (
        "source", "via", "input", "publish", "post", "appear", "produc", "reserved", "reporting", "writing",
        "editing",
    ),
}  # fmt: skip


def _may_match(pattern: re.Pattern[str], lowered: str | None) -> bool:
    """Return False when `pattern` cannot match a text: its `lower_for_matching` holds none of the pattern's needles."""
    needles = _NEEDLES.get(pattern)
    return lowered is None or needles is None or any(map(lowered.__contains__, needles))


_PROMO_VOICE = _rx(
    r"\b(?:you|your|yours|our|us|we)\b|^(?:download|get|install|open|try|sign|subscribe|register|join|follow|like"
    r"|click|tap|read|watch|listen|catch|enter|share|explore|check|visit|stay|never|don[’']?t)\b"
)


@lru_cache(maxsize=1 << 10)
def _is_promo_voice(text: str) -> bool:
    """Return whether text addresses the reader (you/our/imperative) or is a short label.

    Promotions speak to the reader; news prose that merely mentions an app or a newsletter
    does not. A label of up to six words ('DOWNLOAD THE APP') counts as promo voice.
    """
    return count_words(text) <= 6 or bool(_PROMO_VOICE.search(text.strip()))


def _is_credit_line(line: str) -> bool:
    """Return whether a whole line is a photo credit (a caption ending in one only loses the credit)."""
    core = _TRAILING_CREDIT.sub("", line)
    if core != line and count_words(core) >= 4:
        return bool(_CREDIT_LINE.search(core))
    return bool(_CREDIT_LINE.search(line)) and not ends_sentence(line.rstrip(")"))


def _read_more_label(line: str) -> bool:
    """Return whether a line is a link label in capitals followed by a headline ('READ MORE: ...')."""
    head, sep, _ = line.partition(":")
    return (
        bool(sep)
        and head.isupper()
        and line_key(head)
        in {"read more", "read also", "also read", "related", "watch", "see also", "read", "must read"}
    )


_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)]*\s+")


def _promo_line(line: str, pattern: re.Pattern[str]) -> bool:
    """Return whether a line matching a promo pattern is a promotion and not news prose about one."""
    return _is_promo_voice(line) and not _has_article_sentence(line, pattern)


def _has_article_sentence(line: str, pattern: re.Pattern[str]) -> bool:
    """Return whether some sentence of a line is prose that `pattern` does not match."""
    return any(count_words(part) >= 8 and not pattern.search(part) for part in _SENTENCE_END.split(line))


@lru_cache(maxsize=1 << 16)
def _is_date_only(line: str) -> bool:
    """Return whether a line is a date (and time) alone (remembered for the lines seen last)."""
    return bool(_DATE_ONLY.match(line))


def _is_teaser_meta(line: str, key: str) -> bool:
    """Return whether a line is a teaser's metadata: time ago, date, bullet, short source name."""
    stripped = line.strip()
    return bool(_is_byline(stripped) or _DATE_ONLY.match(stripped) or stripped[:1] in "•·▪●◦")


def _partial_removals(line: str, rules: Callable[[str], bool]) -> tuple[str, list[tuple[str, str]]]:
    """Cut datelines, trailing credits and inline ad markers out of a kept line."""
    cut: list[tuple[str, str]] = []
    if rules("byline_dateline"):
        match = _DATELINE.match(line)
        if match and count_words(line[match.end() :]) >= 3:
            cut.append(("byline_dateline", match.group(0).strip()))
            line = line[match.end() :]
    if rules("photo_credit") and ")" in line:
        match = _TRAILING_CREDIT.search(line)
        if match and count_words(line[: match.start()]) >= 3:
            cut.append(("photo_credit", match.group(0).strip()))
            line = line[: match.start()].rstrip() + line[match.end() :]
    if rules("inline_ad_marker") and _may_hold_inline_ad(line):
        matches = [*_INLINE_AD.finditer(line), *_INLINE_AD_WORD.finditer(line)]
        for match in sorted(matches, key=lambda m: m.start(), reverse=True):
            cut.append(("inline_ad_marker", match.group(0)))
            line = (line[: match.start()].rstrip() + " " + line[match.end() :].lstrip()).strip()
    for name, pattern in (("site_promo", _SITE_PROMO), ("source_line", _SOURCE), ("app_promo", _APP_PROMO)):
        if rules(name):
            line = _cut_trailing_sentences(line, name, pattern, cut)
    return line, cut


def _may_hold_inline_ad(line: str) -> bool:
    """Return False when neither inline ad pattern can match a line (each needs one of these words)."""
    lowered = lower_for_matching(line)
    if lowered is None or "ADVERTISEMENT" in line:
        return True
    return "continue" in lowered or "scroll" in lowered or "skip" in lowered


@lru_cache(maxsize=1 << 8)
def _sentence_starts(line: str) -> tuple[int, ...]:
    """Return where each sentence of a line after the first begins (remembered: each promo rule asks)."""
    return tuple(match.end() for match in _SENTENCE_END.finditer(line) if match.end() < len(line))


def _cut_trailing_sentences(line: str, rule: str, pattern: re.Pattern[str], cut: list[tuple[str, str]]) -> str:
    """Cut promo sentences from the end of a line whose earlier sentences are kept."""
    starts = _sentence_starts(line)
    # Nothing is cut unless the last sentence matches: most lines hold none of the pattern's words there.
    if not starts or not _may_match(pattern, lower_for_matching(line[starts[-1] :])):
        return line
    cut_at = None
    for start in reversed(starts):
        tail = line[start:].strip()
        if (
            count_words(tail) <= 30
            and _is_promo_voice(tail)
            and all(pattern.search(part) for part in _SENTENCE_END.split(tail) if part.strip())
        ):
            cut_at = start
        else:
            break
    if cut_at is None:
        return line
    cut.append((rule, line[cut_at:].strip()))
    return line[:cut_at].rstrip()


@dataclass
class _Block:
    kind: str
    lines: int = 0
    seen: Counter[str] = field(default_factory=Counter)
    last_was_meta: bool = False


def judge_lines(
    lines: Sequence[SourceLine], cfg: BoilerplateConfig, keys: Sequence[str] | None = None
) -> list[str | None]:
    """Return, for each line, the name of the enabled whole-line or block rule that removes it, or None.

    Blank lines get None: they are paragraph breaks, not content. `keys`, when given, are the
    lines' `line_key`s.
    """
    enabled = cfg.rules.model_dump()
    verdicts: list[str | None] = []
    block: _Block | None = None
    dates_are_stamps = sum(_is_date_only(line.text) for line in lines) <= MAX_DATE_STAMPS
    if keys is None:
        keys = [line_key(line.text) for line in lines]
    for line, key in zip(lines, keys, strict=True):
        if not line.text:
            verdicts.append(None)
            continue
        rule = _match_line_rule(line.text, key, dates_are_stamps)
        if rule is not None and enabled.get(rule, False):
            verdicts.append(rule)
            if rule in ("ad_block", "related_block"):
                block = _Block(rule)
            elif block is not None:
                block.lines += 1
                block.last_was_meta = _is_teaser_meta(line.text, key)
            continue
        if block is not None and _in_block(block, line.text, key, cfg.max_block_lines):
            verdicts.append(block.kind)
            continue
        block = None
        verdicts.append(None)
    return verdicts


def prepare_lines(text: str, cfg: BoilerplateConfig) -> tuple[list[SourceLine], int]:
    """Split text into lines, rejoining broken sentences when configured; return them and the joins."""
    raw_lines = text.split("\n")
    if cfg.rejoin_broken_lines:
        return rejoin_broken_lines(raw_lines)
    return [SourceLine(line.strip(), n) for n, line in enumerate(raw_lines)], 0


def strip_boilerplate(
    text: str,
    cfg: BoilerplateConfig,
    classifier: LineClassifier | None = None,
    language: str | None = None,
    site_documents: Callable[[list[str]], Sequence[int]] | None = None,
    line_context: Sequence[Sequence[float]] | None = None,
) -> StrippedText:
    """Remove boilerplate lines and fragments from plain text; record each removal's rule.

    The named rules judge each line first. `site_documents`, when given, maps line keys (see
    `line_key`) to the number of documents of this text's site that hold them: a line in at
    least `cfg.site_min_documents` is removed as `site_repeated`, with that number as its
    score. When a `classifier` is given, it scores the lines still kept (`language`, an ISO
    639 code, picks its stop list) and removes those scoring at or above its threshold, as
    `line_classifier` with the score recorded; it leaves the page's headline (`_headline`)
    and that line's copies to the named rules. `line_context` gives, for each line of `text`,
    the context columns a classifier for whole HTML pages reads (see `LineClassifier.context_features`).

    >>> cfg = BoilerplateConfig()
    >>> out = strip_boilerplate("Rain fell all day in the capital on Monday, officials said.\\n"
    ...                         "READ MORE: Floods hit the north\\nSource: Wire", cfg)
    >>> out.text
    'Rain fell all day in the capital on Monday, officials said.'
    >>> [(r.rule, r.text) for r in out.removals]
    [('read_more', 'READ MORE: Floods hit the north'), ('source_line', 'Source: Wire')]
    """
    if not cfg.enabled:
        return StrippedText(text, (), 0)
    lines, joins = prepare_lines(text, cfg)
    enabled = cfg.rules.model_dump()

    def rule_on(name: str) -> bool:
        return bool(enabled.get(name, False))

    keys = [line_key(line.text) for line in lines]
    rule_verdicts = judge_lines(lines, cfg, keys)
    verdicts = list(rule_verdicts)
    scores: dict[int, float] = {}
    content = [i for i, line in enumerate(lines) if line.text]
    if site_documents is not None and rule_on(SITE_RULE):
        candidates = [i for i in content if verdicts[i] is None and keys[i]]
        asked = list(dict.fromkeys(keys[i] for i in candidates))  # a page repeats its menu lines: ask once
        counts = dict(zip(asked, site_documents(asked), strict=True))
        for i in candidates:
            documents = counts[keys[i]]
            if documents >= cfg.site_min_documents:
                verdicts[i] = SITE_RULE
                scores[i] = float(documents)
    if classifier is not None and rule_on(CLASSIFIER_RULE):
        threshold = cfg.classifier_threshold or classifier.threshold
        flagged = _lines_scored_as_boilerplate(
            classifier, threshold, lines, keys, rule_verdicts, verdicts, language, line_context
        )
        headline = _headline(lines, verdicts)
        # The classifier judges which lines of a page are its article; it never judges that a
        # page has none (that is for the rules and the corpus's minimum length to say).
        if any(verdicts[i] is None and i not in flagged for i in content):
            for i, score in flagged.items():
                if headline is not None and keys[i] == keys[headline]:
                    continue  # a news corpus keeps the headline: the classifier leaves it and its copies alone
                verdicts[i] = CLASSIFIER_RULE
                scores[i] = score

    removals: list[Removal] = []
    kept: list[SourceLine] = []
    for index, (line, verdict) in enumerate(zip(lines, verdicts, strict=True)):
        if not line.text:
            if kept and kept[-1].text:
                kept.append(line)
            continue
        if verdict is not None:
            removals.append(Removal(line.position, verdict, line.text, scores.get(index)))
            continue
        text_kept, cuts = _partial_removals(line.text, rule_on)
        removals.extend(Removal(line.position, name, fragment) for name, fragment in cuts)
        if count_words(text_kept) == 0 and rule_on("ui_word"):
            if text_kept:  # punctuation or symbols only: interface debris, recorded like any removal
                removals.append(Removal(line.position, "ui_word", text_kept))
            continue
        kept.append(SourceLine(text_kept, line.position))
    while kept and not kept[-1].text:
        kept.pop()
    return StrippedText(
        "\n".join(line.text for line in kept),
        tuple(removals),
        joins,
    )


HEADLINE_PROSE_WITHIN: Final = 3
"""Kept lines after a title-like first line among which prose must start for it to be the headline."""


def _headline(lines: Sequence[SourceLine], verdicts: Sequence[str | None]) -> int | None:
    """Return the index of the page's headline: its first kept line, if that reads as a title and prose follows it.

    Reads as a title: 2 to 25 words, no closing stop (as `guess_title`). Prose must begin within
    `HEADLINE_PROSE_WITHIN` kept lines after it, so a menu or teaser list at the top is not taken
    for a headline.

    >>> lines = [SourceLine(t, i) for i, t in enumerate(
    ...     ["logo", "Bridge to close for repairs", "", "The council voted on Monday to close the old "
    ...      "bridge over the river for six months of repairs, officials said."])]
    >>> _headline(lines, ["ui_word", None, None, None]), _headline(lines[:2], ["ui_word", None])
    (1, None)
    """
    kept = [i for i, line in enumerate(lines) if line.text and verdicts[i] is None]
    if not kept or guess_title(lines[kept[0]].text) is None:
        return None
    following = kept[1 : 1 + HEADLINE_PROSE_WITHIN]
    return kept[0] if any(is_prose(lines[i].text) for i in following) else None


def _lines_scored_as_boilerplate(
    classifier: LineClassifier,
    threshold: float,
    lines: Sequence[SourceLine],
    keys: Sequence[str],
    rule_verdicts: Sequence[str | None],
    verdicts: Sequence[str | None],
    language: str | None,
    line_context: Sequence[Sequence[float]] | None = None,
) -> dict[int, float]:
    """Return the still-kept lines the classifier scores at or above `threshold`, with their scores.

    The features see the named rules' verdicts only, as in training; only the lines no rule
    has removed yet (a line repeated across the site may be gone already) need a score. A
    rejoined line reads the context of the first input line it came from.
    """
    content = [i for i, line in enumerate(lines) if line.text]
    content_rules = [rule_verdicts[i] for i in content]
    judged = [content[k] for k in candidate_lines(content_rules)]
    open_rows = [row for row, i in enumerate(judged) if verdicts[i] is None]
    if not open_rows:
        return {}
    features = line_features([lines[i].text for i in content], content_rules, language, [keys[i] for i in content])
    context = None
    if line_context is not None:
        context = np.array([line_context[lines[i].position] for i in judged], dtype=np.float64)
        context = context.reshape(len(judged), len(classifier.context_features))
    judged_keys = [keys[i] for i in judged]
    open_scores = classifier.boilerplate_scores(features, judged_keys, open_rows, context=context).tolist()
    return {
        judged[row]: round(score, 4) for row, score in zip(open_rows, open_scores, strict=True) if score >= threshold
    }


def _in_block(block: _Block, line: str, key: str, max_lines: int) -> bool:
    """Return whether a line belongs to the open teaser block (and update the block)."""
    if block.lines >= max_lines:
        return False
    repeated = block.seen[key] > 0
    if not is_prose(line):
        block.seen[key] += 1
        block.lines += 1
        block.last_was_meta = repeated or _is_teaser_meta(line, key)
        return True
    if block.kind == "related_block" and block.last_was_meta:
        block.lines += 1
        block.last_was_meta = False
        return True
    return False


LANGUAGE_SAMPLE_CHARS = 500
"""How much prose `language_sample` gives: enough for lid.176 to name a language, at an eighth of the cost of 4000.

Every document of the 1,000-document text corpus and every WCXB page gets the language it gets
from 1,000 characters of prose (from 400, one WCXB page flips to Latin).
"""


def language_sample(text: str, max_chars: int = LANGUAGE_SAMPLE_CHARS) -> str:
    """Return a scraped text's first prose lines (at most `max_chars` characters), to identify its language from.

    A page's text opens with menus and links, whose words say less of its language than its
    sentences do, and identifying costs with the length of what is read. The text itself is
    returned when no line reads as prose (`is_prose`).

    >>> language_sample("Home\\nNews\\nThe council met on Monday and voted to close the bridge for a month.\\nShare")
    'The council met on Monday and voted to close the bridge for a month.'
    """
    prose: list[str] = []
    size = 0
    for raw in text.split("\n"):
        line = raw.strip()
        if line and is_prose(line):
            prose.append(line)
            size += len(line) + 1
            if size >= max_chars:
                break
    return " ".join(prose)[:max_chars] if prose else text


def guess_title(text: str) -> str | None:
    """Return the first line when it reads like a headline: short and without a final full stop.

    >>> guess_title("Pakistan in no rush to recognise Taliban\\nThe remarks came days after...")
    'Pakistan in no rush to recognise Taliban'
    >>> guess_title("It rained. Then it stopped.") is None
    True
    """
    first = text.split("\n", 1)[0].strip()
    words = count_words(first)
    if 2 <= words <= 25 and not first.endswith((".", ",", ";", ":")):
        return first
    return None
