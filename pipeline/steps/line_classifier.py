"""Score each line of a page as article text or boilerplate with a small gradient-boosted model.

The classifier judges the lines the named rules keep, in page order, as if the removed lines
were gone: a removed ad block between two paragraphs does not split the article. The features
describe a line (length, punctuation, capitals, function words, boilerplate vocabulary, how
many rule-removed lines sat just above and below it and which rule removed them) and its
surroundings (the same for its neighbours, how much prose lies around it, whether it falls
inside the page's main run of prose) and what its words say: a lexicon learned with the
models weighs the words and word pairs that many sites use in boilerplate ("rights reserved",
"sign up") against those they use in articles (see `Lexicon`). Two LightGBM models are stacked:
the second also reads the first one's scores of the neighbouring lines, which lets a short
heading inside an article survive and a long bio below it go.

The models are LightGBM text dumps inside one JSON file shipped with the package
(`pipeline/models/line_classifier.json`), with the lexicon as a JSON object of weights, loaded
with `lightgbm.Booster(model_str=...)`: no pickle. `benchmarks/train_line_classifier.py` trains
them from the labelled WCXB pages.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import islice, pairwise
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

MODEL_FORMAT: Final = "pipeline-line-classifier"
MODEL_FORMAT_VERSION: Final = 3
DEFAULT_MODEL_PATH: Final[Path] = Path(__file__).resolve().parent.parent / "models" / "line_classifier.json"
DEFAULT_PAGE_MODEL_PATH: Final[Path] = DEFAULT_MODEL_PATH.with_name("page_line_classifier.json")
"""The model for whole HTML pages (`html.main_content = "lines"`): the same features and each line's markup context."""

FloatArray = npt.NDArray[np.float64]

_WORD: Final = re.compile(r"[^\W_]+(?:['’.-][^\W_]+)*")
_TERMINAL: Final = re.compile(r"[.!?…。！？][\"'”’»)\]]*$")
_SENTENCE_BREAK: Final = re.compile(r"[.!?…。！？][\"'”’»)\]]*\s+(?=[\"“‘'(]?[A-Z0-9])")
_SEPARATORS: Final = re.compile(r"[|•·»›/>«‹<–—]")
_URLISH: Final = re.compile(r"https?://|www\.|\.com\b|@\w|\w@")
_DATEISH: Final = re.compile(
    r"\b\d{1,2}[-./]\d{1,2}[-./]\d{2,4}\b|\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}:\d{2}\b"
    r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}\b"
    r"|\b\d+\s+(?:minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?)\s+ago\b",
    re.IGNORECASE,
)


def _words_by_first_letter(alternatives: str, flags: int = 0) -> re.Pattern[str]:
    r"""Compile `\b(?:<alternatives>)\b` with its alternatives grouped by their first letter.

    Wherever a word starts, `re` tries alternatives one after another; grouped, it tries only
    those that begin with the word's first letter. The matches are the flat pattern's: every
    alternative begins with a lower-case ASCII letter, the order within a letter is kept, and
    no character matches two such letters.

    >>> _words_by_first_letter(r"app|tap|apps|a\s+b").pattern
    '\\b(?:a(?:pp|pps|\\s+b)|t(?:ap))\\b'
    """
    groups: dict[str, list[str]] = {}
    depth, start = 0, 0
    for end, char in enumerate(f"{alternatives}|"):
        depth += (char == "(") - (char == ")")
        if char == "|" and depth == 0:
            alternative, start = alternatives[start:end], end + 1
            if not ("a" <= alternative[:1] <= "z"):
                raise ValueError(f"{alternative!r} does not begin with a lower-case ASCII letter")
            groups.setdefault(alternative[0], []).append(alternative[1:])
    grouped = "|".join(f"{letter}(?:{'|'.join(rests)})" for letter, rests in groups.items())
    return re.compile(rf"\b(?:{grouped})\b", flags)


_BOILERPLATE_WORDS: Final = (
    r"cookies?|privacy|copyright|rights\s+reserved|terms\s+(?:of|and)|subscri\w*|newsletters?|sign\s*(?:up|in)"
    r"|log\s*in|register|account|share|shares|comments?|repl(?:y|ies)|advert\w*|sponsor\w*|promot\w*|related"
    r"|read\s+more|click|tap|follow|download|app|apps|podcast|menu|home|contact|about\s+us|careers|email|e-mail"
    r"|newsroom|trending|popular|recommended|tags?|categor(?:y|ies)|author|editor|staff|writer|published|updated"
    r"|photo|image|video|watch|listen|gallery|next|previous|prev|back|top|more|view|see|all|search|skip|toggle"
    r"|facebook|twitter|instagram|linkedin|youtube|whatsapp|pinterest|reddit|tiktok|rss|print|save|bookmark"
)
_BOILERPLATE_TERMS: Final = _words_by_first_letter(_BOILERPLATE_WORDS, re.IGNORECASE)
_COMMENT_CUE: Final = re.compile(
    r"\b(?:comments?|repl(?:y|ies)|responses?|writes:|wrote:|says:|said\.\.\.|discussion|conversation|report\s+abuse"
    r"|flag(?:\s+as)?|upvote|downvote|permalink|\d+\s+(?:likes?|points?)|(?:log|sign)\s*in\s+to)\b",
    re.IGNORECASE,
)
# A lower-case letter run straight into a capital: menu items whose markup separated them ("SocietyDigital").
_GLUED: Final = re.compile(r"[a-z]{2}[A-Z][a-z]")
_BULLET_START: Final = re.compile(r"^[-*•·▪●◦>»›]|^\d{1,3}[.)]\s")

#: Named rules of `pipeline.steps.boilerplate` that a line can match, as a feature's codes.
RULE_CODES: Final[dict[str | None, int]] = {
    None: 0,
    "ad_block": 1,
    "related_block": 2,
    "read_more": 3,
    "app_promo": 4,
    "newsletter_promo": 5,
    "comment_widget": 6,
    "site_promo": 7,
    "byline_dateline": 8,
    "photo_credit": 9,
    "source_line": 10,
    "ui_word": 11,
    "inline_ad_marker": 12,
}

# ISO 639-1 codes (as lid.176 names languages) to jusText's stop-list names.
_STOPLIST_NAMES: Final[dict[str, str]] = {
    "af": "Afrikaans", "sq": "Albanian", "ar": "Arabic", "an": "Aragonese", "hy": "Armenian",
    "ast": "Asturian", "az": "Azerbaijani", "eu": "Basque", "be": "Belarusian", "bn": "Bengali",
    "bs": "Bosnian", "br": "Breton", "bg": "Bulgarian", "ca": "Catalan", "ceb": "Cebuano",
    "cv": "Chuvash", "hr": "Croatian", "cs": "Czech", "da": "Danish", "nl": "Dutch", "en": "English",
    "eo": "Esperanto", "et": "Estonian", "fi": "Finnish", "fr": "French", "gl": "Galician",
    "ka": "Georgian", "de": "German", "el": "Greek", "gu": "Gujarati", "ht": "Haitian", "he": "Hebrew",
    "hi": "Hindi", "hu": "Hungarian", "is": "Icelandic", "io": "Ido", "ig": "Igbo", "id": "Indonesian",
    "ga": "Irish", "it": "Italian", "jv": "Javanese", "kn": "Kannada", "kk": "Kazakh", "ko": "Korean",
    "ku": "Kurdish", "ky": "Kyrgyz", "la": "Latin", "lv": "Latvian", "lt": "Lithuanian", "lmo": "Lombard",
    "nds": "Low_Saxon", "lb": "Luxembourgish", "mk": "Macedonian", "ms": "Malay", "ml": "Malayalam",
    "mt": "Maltese", "mr": "Marathi", "nap": "Neapolitan", "ne": "Nepali", "new": "Newar",
    "no": "Norwegian_Bokmal", "nb": "Norwegian_Bokmal", "nn": "Norwegian_Nynorsk", "oc": "Occitan",
    "fa": "Persian", "pms": "Piedmontese", "pl": "Polish", "pt": "Portuguese", "qu": "Quechua",
    "ro": "Romanian", "ru": "Russian", "sr": "Serbian", "sh": "Serbo_Croatian", "scn": "Sicilian",
    "sk": "Slovak", "sl": "Slovenian", "es": "Spanish", "su": "Sundanese", "sw": "Swahili",
    "sv": "Swedish", "tl": "Tagalog", "ta": "Tamil", "te": "Telugu", "tr": "Turkish", "tk": "Turkmen",
    "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "vi": "Vietnamese", "vo": "Volapuk", "wa": "Walloon",
    "war": "Waray_Waray", "cy": "Welsh", "fy": "West_Frisian", "pnb": "Western_Panjabi", "yo": "Yoruba",
}  # fmt: skip

LINE_FEATURES: Final[tuple[str, ...]] = (
    "words",
    "chars",
    "ends_sentence",
    "ends_colon",
    "sentences",
    "upper_share",
    "capitalised_share",
    "digit_share",
    "punctuation_share",
    "stopword_share",
    "mean_word_length",
    "separators",
    "bullet_start",
    "urlish",
    "dateish",
    "boilerplate_terms",
    "boilerplate_term_share",
    "removed_above",
    "removed_below",
    "rule_above",
    "rule_below",
    "repeats_in_page",
    "comment_cue",
    "glued_words",
)
"""Features of one line on its own."""

_NEIGHBOUR_FEATURES: Final = ("words", "ends_sentence", "stopword_share", "capitalised_share", "removed_above")
_NEIGHBOUR_OFFSETS: Final = (-3, -2, -1, 1, 2, 3)

CONTEXT_FEATURES: Final[tuple[str, ...]] = (
    "position",
    "words_before_share",
    "in_main_run",
    "lines_to_main_run",
    "main_run_word_share",
    "prose_words_within_3",
    "prose_words_within_10",
    "lines_to_prose_above",
    "lines_to_prose_below",
    "page_lines",
    "page_words",
    "lines_to_first_removal_after_main_run",
    "lines_since_comment_cue",
    "comment_cues_above",
    "comment_cues_after_main_run_above",
    *(f"{name}@{offset:+d}" for offset in _NEIGHBOUR_OFFSETS for name in _NEIGHBOUR_FEATURES),
)
"""Features of a line's place in the page and of its neighbours."""

FEATURES: Final[tuple[str, ...]] = LINE_FEATURES + CONTEXT_FEATURES
"""Every first-stage feature, in column order."""

_SCORE_OFFSETS: Final = (-5, -4, -3, -2, -1, 1, 2, 3, 4, 5)
STACKED_FEATURES: Final[tuple[str, ...]] = (
    "score",
    *(f"score@{offset:+d}" for offset in _SCORE_OFFSETS),
    "score_mean_within_3",
    "score_mean_within_10",
    "score_mean_within_25",
    "page_score_mean",
    "score_run_in",
    "score_run_lines_away",
    "score_barrier",
    "score_mean_to_run",
    "score_rank",
    "words",
    "ends_sentence",
    "removed_above",
    "removed_below",
    "in_main_run",
)
"""Second-stage features: the first stage's scores around a line, and a few of its own features."""

_RECENT_LEXICAL_SCORES: Final = 1 << 15
"""Line keys whose lexical scores a `Lexicon` remembers before it starts again."""

LEXICAL_FEATURES: Final[tuple[str, ...]] = ("lexical_mean", "lexical_sum", "lexical_mean@-1", "lexical_mean@+1")
"""First-stage features read from the model's lexicon (see `Lexicon`), after `FEATURES`."""

FIRST_STAGE_FEATURES: Final[tuple[str, ...]] = FEATURES + LEXICAL_FEATURES
"""Every column the first stage reads, in order."""


def line_grams(key: str) -> list[str]:
    """Return the distinct words and adjacent word pairs of a line key (`line_key`), in order.

    >>> line_grams("all rights reserved all")
    ['all', 'rights', 'reserved', 'all rights', 'rights reserved', 'reserved all']
    """
    words = key.split()
    return list(dict.fromkeys([*words, *(f"{a} {b}" for a, b in pairwise(words))]))


@dataclass(frozen=True)
class Lexicon:
    """Weights of words and word pairs by how much more often sites use them in boilerplate than in articles.

    A gram's weight is the log ratio of the number of sites whose boilerplate lines hold it to
    the number whose article lines hold it (each plus one). Only grams found on at least a
    minimum number of sites are kept (`fit_lexicon`), so a weight says what many sites share
    ("rights reserved", "sign up"), not what one page is about.
    """

    weights: dict[str, float]
    recent: dict[str, tuple[float, float]] = field(default_factory=dict, compare=False, repr=False)
    """Scores of the line keys seen last: a site's menus and footers recur on every page of a shard."""

    def line_scores(self, keys: Sequence[str]) -> FloatArray:
        """Return, per line key, the mean weight of its grams (unknown grams weigh 0) and their sum.

        >>> Lexicon({"rights reserved": 3.0, "council": -1.0}).line_scores(["all rights reserved", ""]).tolist()
        [[0.6, 3.0], [0.0, 0.0]]
        """
        get, recent = self.weights.get, self.recent
        out = np.zeros((len(keys), 2))
        for row, key in enumerate(keys):
            scores = recent.get(key)
            if scores is None:
                grams = line_grams(key)
                total = sum(get(gram, 0.0) for gram in grams)
                scores = (total / len(grams), total) if grams else (0.0, 0.0)
                if len(recent) >= _RECENT_LEXICAL_SCORES:
                    recent.clear()
                recent[key] = scores
            out[row] = scores
        return out

    def features(self, keys: Sequence[str]) -> FloatArray:
        """Return the `LEXICAL_FEATURES` columns for the candidate lines' keys, in page order."""
        scores = self.line_scores(keys)
        mean = scores[:, 0]
        return np.column_stack([mean, scores[:, 1], _shifted(mean, -1), _shifted(mean, 1)])

    def to_json(self) -> dict[str, float]:
        """Return the weights as a JSON object, keys sorted, values rounded (the same lexicon gives the same text)."""
        return {gram: round(weight, 4) for gram, weight in sorted(self.weights.items())}


def fit_lexicon(lines: Iterable[tuple[str, str, bool]], min_sites: int = 5, min_weight: float = 0.05) -> Lexicon:
    """Fit a `Lexicon` from (site, line key, is boilerplate) triples.

    A gram is kept when the sites holding it, in boilerplate or article lines, number at least
    `min_sites` and its weight is at least `min_weight` either way.

    >>> rows = [(f"s{i}", "all rights reserved", True) for i in range(6)]
    >>> rows += [(f"s{i}", "the council met", False) for i in range(6)]
    >>> lexicon = fit_lexicon(rows, min_sites=5)
    >>> round(lexicon.weights["rights reserved"], 3), round(lexicon.weights["council"], 3)
    (1.946, -1.946)
    """
    boilerplate_sites: dict[str, set[str]] = {}
    article_sites: dict[str, set[str]] = {}
    for site, key, is_boilerplate in lines:
        chosen = boilerplate_sites if is_boilerplate else article_sites
        for gram in line_grams(key):
            chosen.setdefault(gram, set()).add(site)
    weights: dict[str, float] = {}
    for gram in sorted(boilerplate_sites.keys() | article_sites.keys()):
        in_boilerplate = boilerplate_sites.get(gram, set())
        in_articles = article_sites.get(gram, set())
        if len(in_boilerplate | in_articles) < min_sites:
            continue
        weight = float(np.log((len(in_boilerplate) + 1.0) / (len(in_articles) + 1.0)))
        if abs(weight) >= min_weight:
            weights[gram] = weight
    return Lexicon(weights)


@cache
def stopwords(language: str | None) -> frozenset[str]:
    """Return jusText's stop list for an ISO 639 code (empty when there is none).

    >>> "the" in stopwords("en"), "der" in stopwords("de"), len(stopwords("zz"))
    (True, True, 0)
    """
    name = _STOPLIST_NAMES.get((language or "").lower())
    if name is None:
        return frozenset()
    import justext  # trafilatura's dependency; imported lazily because loading it reads 100 lists

    return frozenset(justext.get_stoplist(name))


def _is_prose(words: int, ends: bool) -> bool:
    return (words >= 8 and ends) or words >= 20


def _best_span(gain: FloatArray) -> tuple[int, int]:
    """Return the [start, end) span of lines with the largest total gain (Kadane's maximum subarray).

    >>> _best_span(np.array([-1.0, 5.0, -2.0, 4.0, -9.0, 3.0]))
    (1, 4)
    """
    best = current = 0.0
    best_span = (0, 0)
    start = 0
    for index, value in enumerate(gain.tolist()):
        if current <= 0:
            current, start = value, index
        else:
            current += value
        if current > best:
            best, best_span = current, (start, index + 1)
    return best_span


def candidate_lines(rules: Sequence[str | None]) -> list[int]:
    """Return the positions of the lines the classifier judges: those no named rule removed.

    >>> candidate_lines([None, "ad_block", None])
    [0, 2]
    """
    return [i for i, rule in enumerate(rules) if rule is None]


def _removed_runs(rules: Sequence[str | None]) -> FloatArray:
    """Return, per candidate line (columns), the removed lines just above and below it and their rules' codes (rows)."""
    candidates = np.array(candidate_lines(rules), dtype=np.int64)
    if len(candidates) == 0:
        return np.zeros((4, 0))
    codes = np.array([RULE_CODES.get(rule, len(RULE_CODES)) for rule in rules], dtype=np.int64)
    above = np.diff(candidates, prepend=-1) - 1
    below = np.diff(candidates, append=len(rules)) - 1
    rule_above = np.where(above > 0, codes[candidates - 1], 0)  # index -1 wraps, but only where nothing is above
    rule_below = np.where(below > 0, codes[np.minimum(candidates + 1, len(rules) - 1)], 0)
    return np.array([above, below, rule_above, rule_below], dtype=np.float64)


def line_features(
    lines: Sequence[str], rules: Sequence[str | None], language: str | None = None, keys: Sequence[str] | None = None
) -> FloatArray:
    """Return the first-stage feature matrix: one row per candidate line (see `candidate_lines`).

    `lines` are the page's non-blank lines in order; `rules` the named rule that removes each
    (None for none); `language` picks the stop list; `keys`, when given, are the lines' keys
    (`pipeline.steps.boilerplate.line_key`), to save computing them again. Rule-removed lines
    get no row; they show in their neighbours' `removed_above` and `removed_below`.

    >>> x = line_features(["Home", "Advertisement", "The council met on Monday and voted to close the bridge."],
    ...                   [None, "ad_block", None], "en")
    >>> x.shape == (2, len(FEATURES)), float(x[1, FEATURES.index("removed_above")])
    (True, 1.0)
    >>> bool(x[1, FEATURES.index("stopword_share")] > 0.3)
    True
    """
    if keys is None:
        keys = [" ".join(_WORD.findall(line.lower())) for line in lines]
    key_counts = Counter(keys)
    candidates = candidate_lines(rules)
    own = _own_features_remembered([lines[i] for i in candidates], language)
    gaps = _removed_runs(rules).T
    repeats = np.array([key_counts[keys[i]] - 1 for i in candidates], dtype=np.float64)
    own[:, _GAP_COLUMNS] = gaps
    own[:, LINE_FEATURES.index("repeats_in_page")] = repeats
    return np.hstack([own, _context_features(own)])


_GAP_COLUMNS: Final = [
    LINE_FEATURES.index(name) for name in ("removed_above", "removed_below", "rule_above", "rule_below")
]


class _RecentRows:
    """The own-feature rows of the lines seen last, by language and line, as bytes (at most `size`).

    A site repeats its navigation and footer lines on every page, and a shard holds one site's
    pages: most lines of a page were scored on an earlier one. A row depends on its line and
    language alone, so remembering it changes no result.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.rows: dict[tuple[str | None, str], bytes] = {}

    def add(self, key: tuple[str | None, str], row: bytes) -> None:
        if len(self.rows) >= self.size:  # forget the older half at once, not one row per new row
            for old in list(islice(self.rows, self.size // 2)):
                del self.rows[old]
        self.rows[key] = row


_RECENT_OWN_ROWS: Final = _RecentRows(1 << 15)


def _own_features_remembered(lines: Sequence[str], language: str | None) -> FloatArray:
    """Return `_own_features(lines, language)`, computing only the rows of lines not seen lately."""
    memo = _RECENT_OWN_ROWS
    rows = [memo.rows.get((language, line)) for line in lines]
    missing = [i for i, row in enumerate(rows) if row is None]
    if missing:
        computed = _own_features([lines[i] for i in missing], language)
        for i, values in zip(missing, computed, strict=True):
            row = rows[i] = values.tobytes()
            memo.add((language, lines[i]), row)
    joined = b"".join(row for row in rows if row is not None)
    return np.frombuffer(joined, dtype=np.float64).reshape(len(lines), len(LINE_FEATURES)).copy()


def _own_features(lines: Sequence[str], language: str | None) -> FloatArray:
    """Return the columns of `LINE_FEATURES` that describe each line on its own (the others are 0).

    Characters are classified over the whole page at once with numpy, and each pattern runs
    once over the lines it can match, joined, so the cost goes with the page, not its lines.
    """
    n = len(lines)
    stop = stopwords(language)
    lowered_page = lower_for_matching(_PAGE_BREAK.join(lines))
    lowered = lowered_page.split(_PAGE_BREAK) if lowered_page is not None else None
    if lowered is not None and len(lowered) != n:
        lowered = None  # a line holds the break itself
    tokens = [_WORD.findall(line) for line in lines]
    flat = [token for line_tokens in tokens for token in line_tokens]
    n_words = np.array([len(line_tokens) for line_tokens in tokens], dtype=np.int64)
    has_words = n_words > 0
    words = np.maximum(n_words, 1)
    length = np.array([len(line) for line in lines], dtype=np.int64)
    chars = np.maximum(length, 1)
    upper, letters, digits, punctuation, separators = _char_counts(lines, length).T
    # Lowering the tokens joined lowers each as on its own: the break is neither cased nor case-ignorable.
    capitalised = _segment_sums(_char_classes("".join([token[0] for token in flat])) & _UPPER, n_words)
    lowered_tokens = _PAGE_BREAK.join(flat).lower().split(_PAGE_BREAK) if flat else []
    stop_words = _segment_sums(list(map(stop.__contains__, lowered_tokens)), n_words) if stop else None
    terms = _match_counts(_BOILERPLATE_TERMS, lines, lowered)
    # Where a pattern cannot match: every date needs a digit, every URL one of these strings.
    urlish = np.array([any(part in line for part in ("@", "://", "www.", ".com")) for line in lines], dtype=bool)
    columns = {
        "words": n_words,
        "chars": length,
        "ends_sentence": [bool(_TERMINAL.search(line)) for line in lines],
        "ends_colon": [line.endswith(":") for line in lines],
        "sentences": np.where(has_words, _match_counts(_SENTENCE_BREAK, lines, lowered) + 1, 0),
        "upper_share": np.where(letters > 0, upper / np.maximum(letters, 1), 0.0),
        "capitalised_share": np.where(has_words, capitalised / words, 0.0),
        "digit_share": digits / chars,
        "punctuation_share": punctuation / chars,
        "stopword_share": np.where(has_words, stop_words / words, np.nan) if stop_words is not None else np.nan,
        "mean_word_length": np.where(has_words, _segment_sums(list(map(len, flat)), n_words) / words, 0.0),
        "separators": separators,
        "bullet_start": [bool(_BULLET_START.match(line)) for line in lines],
        "urlish": _match_counts(_URLISH, lines, lowered, urlish) > 0,
        "dateish": _match_counts(_DATEISH, lines, lowered, digits > 0) > 0,
        "boilerplate_terms": terms,
        "boilerplate_term_share": np.where(has_words, terms / words, 0.0),
        "comment_cue": _match_counts(_COMMENT_CUE, lines, lowered, n_words <= 25) > 0,
        "glued_words": _match_counts(_GLUED, lines, lowered),
    }
    own = np.zeros((n, len(LINE_FEATURES)), dtype=np.float64)
    for name, values in columns.items():
        own[:, LINE_FEATURES.index(name)] = values
    return own


_PAGE_BREAK: Final = "\x00"
"""Joins a page's lines for one pass of a pattern: no feature pattern matches it or across it."""


def _match_counts(
    pattern: re.Pattern[str],
    lines: Sequence[str],
    lowered: Sequence[str] | None,
    rows: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.int64]:
    """Return how many non-overlapping matches of `pattern` each line holds, in one pass over the lines joined.

    `lowered` are the lines' `lower_for_matching` (None if not all have one), which a
    case-insensitive pattern's `lowercase_twin` reads instead; `rows`, when given, marks the
    only lines the pattern can match (the others count 0 unread).
    """
    if lowered is not None and pattern.flags & re.IGNORECASE:
        pattern, lines = lowercase_twin(pattern), lowered
    chosen = np.arange(len(lines)) if rows is None else np.flatnonzero(rows)
    texts = [lines[i] for i in chosen.tolist()]
    counts = np.zeros(len(lines), dtype=np.int64)
    page = _PAGE_BREAK.join(texts)
    if page.count(_PAGE_BREAK) != max(len(texts) - 1, 0):  # a line holds the break itself: line by line
        counts[chosen] = [len(pattern.findall(text)) for text in texts]
        return counts
    starts = np.cumsum([0] + [len(text) + 1 for text in texts[:-1]])
    hits = np.array([match.start() for match in pattern.finditer(page)], dtype=np.int64)
    counts[chosen] = np.bincount(np.searchsorted(starts, hits, side="right") - 1, minlength=len(texts))
    return counts


@cache
def lowercase_twin(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """Return a case-insensitive pattern compiled case-sensitively, to match `lower_for_matching` text.

    Only for patterns whose literal letters are all lower case.
    """
    return re.compile(pattern.pattern, pattern.flags & ~re.IGNORECASE)


def lower_for_matching(text: str) -> str | None:
    """Return `text` in lower case if case-insensitive patterns match it as their twins match that, else None.

    `re` matches case-insensitively several times slower than case-sensitively. A pattern with
    lower-case literals finds the same spans in a text as its `lowercase_twin` finds in the
    text's lower case when every character lowers to one character of its own kind and none
    is one of the letters `re` gives extra case-insensitive matches (Greek, Cyrillic, ſ, ı):
    ASCII, caseless characters (punctuation, symbols, most scripts) and Latin-1 and Latin
    Extended letters.

    >>> lower_for_matching("READ More: Café"), lower_for_matching("İstanbul"), lower_for_matching("Ωmega")
    ('read more: café', None, None)
    """
    if text.isascii() or all(map(_lowers_alike, set(text))):
        return text.lower()
    return None


@cache
def _lowers_alike(char: str) -> bool:
    """Return whether a character is one `lower_for_matching` accepts."""
    lower = char.lower()
    if char.isascii() or lower == char == char.upper():
        return True
    return "\u00c0" <= char <= "\u024f" and char not in "\u0130\u0131\u017f" and len(lower) == 1 and lower.isalpha()


def _segment_sums(values: npt.ArrayLike, lengths: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Return the sums of consecutive runs of integer `values` (along the first axis), the runs `lengths` long.

    >>> _segment_sums([1, 2, 3, 4], [2, 0, 2]).tolist()
    [3, 0, 7]
    """
    array = np.asarray(values, dtype=np.int64)
    runs = np.asarray(lengths, dtype=np.int64)
    sums = np.zeros((len(runs), *array.shape[1:]), dtype=np.int64)
    filled = runs > 0  # `reduceat` gives an empty run the value at its start, not 0
    if filled.any():
        sums[filled] = np.add.reduceat(array, (np.cumsum(runs) - runs)[filled], axis=0)
    return sums


_UPPER, _ALPHA, _DIGIT, _PUNCTUATION, _SEPARATOR = 1, 2, 4, 8, 16
_CHAR_CLASSES: Final = np.array([_UPPER, _ALPHA, _DIGIT, _PUNCTUATION, _SEPARATOR], dtype=np.uint8)


@cache
def _char_class(code: int) -> int:
    """Return one character's flags: upper case, letter, digit, punctuation (or symbol), separator."""
    ch = chr(code)
    return (
        _UPPER * ch.isupper()
        | _ALPHA * ch.isalpha()
        | _DIGIT * ch.isdigit()
        | _PUNCTUATION * (not ch.isalnum() and not ch.isspace())
        | _SEPARATOR * bool(_SEPARATORS.match(ch))
    )


_TABLED_CODES: Final = 0x3000
"""Characters below this code (Latin, Greek, Cyrillic, most alphabets, punctuation) have their flags in a table."""


@cache
def _class_table() -> npt.NDArray[np.uint8]:
    """Return the flags (see `_char_class`) of every character below `_TABLED_CODES`, by code."""
    return np.array([_char_class(code) for code in range(_TABLED_CODES)], dtype=np.uint8)


def _char_classes(text: str) -> npt.NDArray[np.uint8]:
    """Return the flags (see `_char_class`) of each character of a text."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    classes = _class_table()[np.minimum(codes, _TABLED_CODES - 1)]
    beyond = codes >= _TABLED_CODES
    if beyond.any():
        unique, inverse = np.unique(codes[beyond], return_inverse=True)
        classes[beyond] = np.array([_char_class(int(code)) for code in unique], dtype=np.uint8)[inverse]
    return classes


def _char_counts(lines: Sequence[str], length: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Return, per line (rows), how many of its characters are in each class of `_CHAR_CLASSES` (columns)."""
    classes = _char_classes("".join(lines))
    return _segment_sums((classes[:, None] & _CHAR_CLASSES) != 0, length)


def _column(matrix: FloatArray, name: str) -> FloatArray:
    return matrix[:, LINE_FEATURES.index(name)]


def _shifted(values: FloatArray, offset: int) -> FloatArray:
    """Return values[i + offset] for each i (along the first axis), NaN beyond either end."""
    out = np.full(values.shape, np.nan)
    if offset > 0:
        out[:-offset] = values[offset:]
    elif offset < 0:
        out[-offset:] = values[:offset]
    else:
        out[:] = values
    return out


def _window_sum(values: FloatArray, radius: int) -> FloatArray:
    padded = np.concatenate([[0.0], np.cumsum(values)])
    n = len(values)
    index = np.arange(n)
    low = np.clip(index - radius, 0, n)
    high = np.clip(index + radius + 1, 0, n)
    sums: FloatArray = padded[high] - padded[low]
    return sums


def _distance_to(mask: npt.NDArray[np.bool_], direction: int) -> FloatArray:
    """Lines from each line to the nearest True line above (-1) or below (+1); NaN when none."""
    n = len(mask)
    out = np.full(n, np.nan)
    last: int | None = None
    order = range(n) if direction < 0 else range(n - 1, -1, -1)
    for i in order:
        if last is not None:
            out[i] = abs(i - last)
        if mask[i]:
            last = i
    return out


def _context_features(own: FloatArray) -> FloatArray:
    n = own.shape[0]
    words = _column(own, "words")
    ends = _column(own, "ends_sentence").astype(bool)
    prose = np.array([_is_prose(int(w), bool(e)) for w, e in zip(words, ends, strict=True)], dtype=bool)
    prose_words = np.where(prose, words, 0.0)
    total_words = max(float(words.sum()), 1.0)
    # The main run: prose lines gain their words, every other line costs its words plus two, so
    # a stretch of navigation or teasers between two paragraphs splits them.
    start, end = _best_span(np.where(prose, words, -(words + 2)))
    index = np.arange(n, dtype=np.float64)
    in_run = (index >= start) & (index < end)
    to_run = np.where(in_run, 0.0, np.where(index < start, start - index, index - end + 1))
    cues = _column(own, "comment_cue").astype(bool)
    after_run = np.flatnonzero((_column(own, "removed_above") > 0) & (index >= end))
    first_removal_after = float(after_run[0]) if len(after_run) else float(n)
    columns: list[FloatArray] = [
        index / max(n - 1, 1),
        (np.cumsum(words) - words) / total_words,
        in_run.astype(np.float64),
        to_run,
        np.full(n, words[start:end].sum() / total_words),
        _window_sum(prose_words, 3) - prose_words,
        _window_sum(prose_words, 10) - prose_words,
        _distance_to(prose, -1),
        _distance_to(prose, +1),
        np.full(n, float(n)),
        np.full(n, total_words),
        (index - first_removal_after),
        _distance_to(cues, -1),
        np.cumsum(cues) - cues,
        np.cumsum(cues & (index >= end)) - (cues & (index >= end)),
    ]
    neighbours = own[:, _NEIGHBOUR_COLUMNS]
    columns.extend(_shifted(neighbours, offset) for offset in _NEIGHBOUR_OFFSETS)
    return np.column_stack(columns) if n else np.zeros((0, len(CONTEXT_FEATURES)))


_NEIGHBOUR_COLUMNS: Final = [LINE_FEATURES.index(name) for name in _NEIGHBOUR_FEATURES]


def stacked_features(features: FloatArray, scores: FloatArray, rows: Sequence[int] | None = None) -> FloatArray:
    """Return the second-stage matrix (columns as `STACKED_FEATURES`) from first-stage scores.

    `rows`, when given, are the only rows wanted (in that order); every line's score is read still.
    """
    n = len(scores)
    wanted = np.arange(n) if rows is None else np.asarray(rows, dtype=np.intp)
    if len(wanted) == 0:
        return np.zeros((0, len(STACKED_FEATURES)))
    ones = np.ones(n)
    counts3, counts10 = _window_sum(ones, 3), _window_sum(ones, 10)
    # Is the line inside the longest run of lines the first stage mostly keeps?
    run_start, run_end = _best_span(0.5 - scores)
    index = np.arange(n)
    away = np.where(index < run_start, run_start - index, np.where(index >= run_end, index - run_end + 1, 0))
    # The highest and the mean score between a line and the main run: a line the first stage
    # keeps but separated from the article by confident boilerplate (comments below a
    # "Reply | Share" bar) is likely not article text.
    barrier = np.zeros(n)
    if run_start > 1:  # the highest score below each line above the run, up to the run
        barrier[: run_start - 1] = np.maximum.accumulate(scores[:run_start][::-1])[::-1][1:]
    if n - run_end > 1:
        barrier[run_end + 1 :] = np.maximum.accumulate(scores[run_end:])[:-1]
    mean_to_run = np.zeros(n)
    for i in wanted.tolist():
        if i < run_start - 1 or i > run_end:
            between = scores[i + 1 : run_start] if i < run_start else scores[run_end:i]
            mean_to_run[i] = between.sum() / len(between)  # what between.mean() gives, without its overhead
    columns: list[FloatArray] = [
        scores,
        *(_shifted(scores, offset) for offset in _SCORE_OFFSETS),
        _window_sum(scores, 3) / counts3,
        _window_sum(scores, 10) / counts10,
        _window_sum(scores, 25) / _window_sum(ones, 25),
        np.full(n, scores.mean()),
        ((index >= run_start) & (index < run_end)).astype(np.float64),
        away.astype(np.float64),
        barrier,
        mean_to_run,
        np.argsort(np.argsort(scores, kind="stable"), kind="stable") / max(n - 1, 1),
        features[:, FEATURES.index("words")],
        features[:, FEATURES.index("ends_sentence")],
        features[:, FEATURES.index("removed_above")],
        features[:, FEATURES.index("removed_below")],
        features[:, FEATURES.index("in_main_run")],
    ]
    stacked: FloatArray = np.column_stack(columns)
    return stacked if rows is None else stacked[wanted]


@dataclass(frozen=True)
class LineClassifier:
    """Two stacked LightGBM boosters, the first one's lexicon and the score above which a line is boilerplate."""

    first: Any
    second: Any
    lexicon: Lexicon
    threshold: float
    version: str
    context_features: tuple[str, ...] = ()
    """Columns given besides the text's own (`boilerplate_scores`' `context`): for HTML pages, what the markup says."""

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> LineClassifier:
        """Build from the model file's JSON object, checking its format and feature lists."""
        lightgbm = _import_lightgbm()
        if document.get("format") != MODEL_FORMAT or document.get("format_version") != MODEL_FORMAT_VERSION:
            raise ValueError(f"not a {MODEL_FORMAT} v{MODEL_FORMAT_VERSION} model")
        features = tuple(document["features"])
        context = features[len(FEATURES) : len(features) - len(LEXICAL_FEATURES)]
        if features != FEATURES + context + LEXICAL_FEATURES or tuple(document["stacked_features"]) != STACKED_FEATURES:
            raise ValueError("the model was trained on other features; retrain it")
        weights = document["lexicon"]
        if not isinstance(weights, dict) or not all(isinstance(w, int | float) for w in weights.values()):
            raise ValueError("its lexicon is not an object of numbers")
        return cls(
            first=lightgbm.Booster(model_str=document["first"]),
            second=lightgbm.Booster(model_str=document["second"]),
            lexicon=Lexicon({str(gram): float(weight) for gram, weight in weights.items()}),
            threshold=float(document["threshold"]),
            version=str(document["version"]),
            context_features=context,
        )

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL_PATH, context_features: tuple[str, ...] = ()) -> LineClassifier:
        """Load a model file (JSON holding LightGBM text dumps); raise ValueError naming it if unusable.

        `context_features` are the context columns the caller will give; a model reading others is refused.
        """
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            classifier = cls.from_json(document)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"line classifier model {path}: {error}") from error
        if classifier.context_features != context_features:
            raise ValueError(f"line classifier model {path}: it reads other context columns; retrain it")
        return classifier

    def boilerplate_scores(
        self,
        features: FloatArray,
        keys: Sequence[str],
        rows: Sequence[int] | None = None,
        context: FloatArray | None = None,
    ) -> FloatArray:
        """Return each line's probability of being boilerplate (first stage, then stacked).

        `features` are `line_features`' rows and `keys` the same lines' keys (`line_key`), which
        the lexicon reads; `context`, for a model with `context_features`, those columns of the
        same lines. `rows`, when given, are the only rows (in that order) whose scores are
        wanted: the first stage still scores every line, since the second reads the scores around each.
        """
        wanted = range(len(features)) if rows is None else rows
        if len(wanted) == 0:
            return np.zeros(0)
        if len(keys) != len(features):
            raise ValueError(f"{len(keys)} line keys for {len(features)} rows of features")
        columns = [features]
        if self.context_features:
            if context is None or context.shape != (len(features), len(self.context_features)):
                raise ValueError(f"the model reads {len(self.context_features)} context columns for each line")
            columns.append(context)
        first_input = np.hstack([*columns, self.lexicon.features(keys)])
        first = np.asarray(self.first.predict(first_input, num_threads=1), dtype=np.float64)
        stacked = stacked_features(first_input, first, rows)
        return np.asarray(self.second.predict(stacked, num_threads=1), dtype=np.float64)


def _import_lightgbm() -> Any:
    """Import LightGBM without the scikit-learn estimator API it loads when scikit-learn is installed.

    Only `Booster` is used here, and importing scikit-learn is most of the cost of importing
    LightGBM (about 0.6 CPU s, in every process that loads the model). A None in `sys.modules`
    makes `import sklearn` fail, which LightGBM takes for scikit-learn being absent; the entry is
    removed at once, so scikit-learn imports as usual afterwards.
    """
    if "lightgbm" in sys.modules or "sklearn" in sys.modules:
        return importlib.import_module("lightgbm")
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # None is how `sys.modules` blocks an import
    try:
        return importlib.import_module("lightgbm")
    finally:
        del sys.modules["sklearn"]


@cache
def default_classifier() -> LineClassifier:
    """Return the model shipped with the package, loaded once per process."""
    return LineClassifier.load()


@cache
def default_page_classifier(context_features: tuple[str, ...]) -> LineClassifier:
    """Return the shipped model for whole HTML pages, which reads `context_features` too, loaded once per process."""
    return LineClassifier.load(DEFAULT_PAGE_MODEL_PATH, context_features)
