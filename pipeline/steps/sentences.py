"""Split cleaned text into paragraphs of sentences with sentencex (about 300 languages)."""

from __future__ import annotations

import sentencex


def split_sentences(paragraph: str, language: str) -> list[str]:
    """Split one paragraph into sentences, stripped of surrounding whitespace.

    >>> split_sentences("Mr. Smith went to Washington. He said U.S. policy was clear.", "en")
    ['Mr. Smith went to Washington.', 'He said U.S. policy was clear.']
    """
    return [part.strip() for part in sentencex.segment(language, paragraph) if part.strip()]


def split_paragraphs(text: str, language: str) -> list[list[str]]:
    """Split text with one paragraph per line into a list of paragraphs of sentences.

    >>> split_paragraphs("First one. Second one.\\n\\nThird.", "en")
    [['First one.', 'Second one.'], ['Third.']]
    """
    return [split_sentences(line, language) for line in text.split("\n") if line.strip()]
