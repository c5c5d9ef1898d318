"""Split cleaned text into paragraphs of sentences with sentencex (about 300 languages), count words."""

from __future__ import annotations

import re

import sentencex

# Han ideographs, kana and their compatibility forms: scripts written without spaces between words.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]")


def split_sentences(paragraph: str, language: str) -> list[str]:
    """Split one paragraph into sentences, each keeping the whitespace that follows it.

    The sentences concatenate back to the paragraph (less leading whitespace), so joining kept
    sentences never inserts or drops a space, in scripts with spaces or without.

    >>> split_sentences("Mr. Smith went to Washington.  He said U.S. policy was clear.", "en")
    ['Mr. Smith went to Washington.  ', 'He said U.S. policy was clear.']
    >>> split_sentences("東京で雨が降った。明日は晴れる。", "ja")
    ['東京で雨が降った。', '明日は晴れる。']
    """
    sentences: list[str] = []
    for part in sentencex.segment(language, paragraph):
        if part.strip():
            sentences.append(part.lstrip() if not sentences else part)
        elif sentences:
            sentences[-1] += part
    return sentences


def split_paragraphs(text: str, language: str) -> list[list[str]]:
    """Split text with one paragraph per line into a list of paragraphs of sentences.

    >>> split_paragraphs("First one. Second one.\\n\\nThird.", "en")
    [['First one. ', 'Second one.'], ['Third.']]
    """
    return [split_sentences(line, language) for line in text.split("\n") if line.strip()]


def join_sentences(sentences: list[str], ends_paragraph: bool = True) -> str:
    """Return the paragraph made of (some of) a paragraph's sentences, spacing as in the source.

    Whitespace after the paragraph's own last sentence stays; after a sentence that only ends
    the paragraph because later ones were removed, it goes.

    >>> join_sentences(['First one.  ', 'Third.\\xa0'])
    'First one.  Third.\\xa0'
    >>> join_sentences(['First one.  '], ends_paragraph=False)
    'First one.'
    """
    joined = "".join(sentences)
    return joined if ends_paragraph else joined.rstrip()


def count_words(text: str) -> int:
    """Return the number of words: whitespace-separated tokens, each Han or kana character one word.

    >>> count_words("The rain stopped."), count_words("東京で雨が降った。"), count_words("iPhone発売")
    (3, 8, 3)
    """
    if _UNSPACED.search(text) is None:  # the common case: one word per token
        return len(text.split())
    words = 0
    for token in text.split():
        unspaced = len(_UNSPACED.findall(token))
        if unspaced:
            rest = _UNSPACED.sub(" ", token).split()
            words += unspaced + sum(1 for part in rest if any(ch.isalnum() for ch in part))
        else:
            words += 1
    return words
