"""Find near-duplicate sentences and documents: MinHash LSH candidates confirmed by exact Jaccard.

Order rule (what survives): documents are taken in the order given, which the pipeline fixes
as input files sorted by relative path, then records in file order, then sentences in text
order. The first occurrence survives; a later sentence whose shingle set has exact Jaccard
similarity >= `threshold` with a surviving one is a duplicate of the most similar of them
(the earliest on a tie). A document whose dedupable text is mostly duplicates is dropped
whole, and its sentences are withdrawn from the index so nothing later points into it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from datasketch import MinHash, MinHashLSH

from pipeline.config import DedupConfig
from pipeline.steps.sentences import count_words

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def normalise_sentence(text: str) -> str:
    """Return the form of a sentence that shingles are taken from: lowercase words, one space.

    >>> normalise_sentence("  “Hello,”  she SAID!  ")
    'hello she said'
    """
    return " ".join(_TOKEN.findall(text.lower()))


def shingle(text: str, kind: str, size: int) -> set[str]:
    """Return the shingle set of a sentence: character or word n-grams of its normal form.

    A sentence shorter than one shingle gives itself as its only shingle.

    >>> sorted(shingle("The cat sat", "word", 2))
    ['cat sat', 'the cat']
    >>> len(shingle("abcdef", "char", 5))
    2
    """
    norm = normalise_sentence(text)
    if kind == "word":
        words = norm.split()
        if len(words) <= size:
            return {norm}
        return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}
    if len(norm) <= size:
        return {norm}
    return {norm[i : i + size] for i in range(len(norm) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """Return the exact Jaccard similarity of two sets (1.0 for two empty sets).

    >>> jaccard({"a", "b"}, {"b", "c"})
    0.3333333333333333
    """
    union = len(a | b)
    return len(a & b) / union if union else 1.0


class MinHasher:
    """The one factory for MinHash signatures: seed, permutations, scheme and shingles fixed.

    Permutations are generated once and shared, since generating them per sentence is most
    of the cost of a fresh `MinHash()`.
    """

    def __init__(self, cfg: DedupConfig) -> None:
        self.cfg = cfg
        template = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, scheme=cfg.scheme)
        self._permutations = template.permutations

    @property
    def params(self) -> dict[str, object]:
        """Return what must match for two signatures to be comparable."""
        return {
            "num_perm": self.cfg.num_perm,
            "seed": self.cfg.seed,
            "scheme": self.cfg.scheme,
            "hashfunc": "sha1_hash32" if self.cfg.scheme == "affine32" else "sha1_hash64",
            "shingle": self.cfg.shingle,
        }

    def shingles(self, text: str) -> set[str]:
        """Return the configured shingle set of a sentence."""
        return shingle(text, self.cfg.shingle_kind, self.cfg.shingle_size)

    def minhash(self, shingles: Iterable[str]) -> MinHash:
        """Return the MinHash of a shingle set."""
        sketch = MinHash(
            num_perm=self.cfg.num_perm, seed=self.cfg.seed, permutations=self._permutations, scheme=self.cfg.scheme
        )
        sketch.update_batch([item.encode("utf-8") for item in shingles])
        return sketch


@dataclass(frozen=True)
class SentenceDuplicate:
    """One removed sentence and the surviving sentence it duplicates."""

    position: int
    text: str
    rule: str
    score: float
    duplicate_of: str
    duplicate_of_doc: str


@dataclass(frozen=True)
class DocumentInput:
    """What dedup needs of one document: where it came from, its id and its sentences."""

    source: str
    doc_id: str
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class DocumentVerdict:
    """Dedup's finding for one document: its duplicate sentences, and whether it goes whole."""

    source: str
    doc_id: str
    sentences: tuple[SentenceDuplicate, ...]
    duplicate_of_doc: str | None = None
    reason: str | None = None


@dataclass
class _Entry:
    seq: int
    doc_id: str
    shingles: frozenset[str]


class SentenceIndex:
    """Surviving sentences in insertion order: an exact-text map and an LSH index over MinHashes."""

    def __init__(self, hasher: MinHasher) -> None:
        cfg = hasher.cfg
        self.hasher = hasher
        self.threshold = cfg.threshold
        self._lsh = MinHashLSH(threshold=cfg.lsh_threshold, num_perm=cfg.num_perm)
        self._exact: dict[str, str] = {}
        self._entries: dict[str, _Entry] = {}
        self._seq = 0

    def find(self, text: str, shingles: set[str], sketch: MinHash) -> tuple[str, str, float, str] | None:
        """Return (rule, key, score, doc_id) of the surviving sentence `text` duplicates, or None."""
        exact = self._exact.get(normalise_sentence(text))
        if exact is not None:
            return "exact_duplicate", exact, 1.0, self._entries[exact].doc_id
        best: tuple[float, int, str] | None = None
        for key in self._lsh.query(sketch):
            entry = self._entries[key]
            score = jaccard(shingles, set(entry.shingles))
            if score >= self.threshold and (best is None or (-score, entry.seq) < (-best[0], best[1])):
                best = (score, entry.seq, key)
        if best is None:
            return None
        return "near_duplicate", best[2], best[0], self._entries[best[2]].doc_id

    def add(self, key: str, doc_id: str, text: str, shingles: set[str], sketch: MinHash) -> None:
        """Add a surviving sentence."""
        self._lsh.insert(key, sketch)
        self._exact.setdefault(normalise_sentence(text), key)
        self._entries[key] = _Entry(self._seq, doc_id, frozenset(shingles))
        self._seq += 1

    def withdraw(self, key: str, text: str) -> None:
        """Remove a sentence added earlier (its document turned out to be a duplicate)."""
        self._lsh.remove(key)
        norm = normalise_sentence(text)
        if self._exact.get(norm) == key:
            del self._exact[norm]
        del self._entries[key]


def find_duplicates(
    documents: Iterable[DocumentInput], cfg: DedupConfig, min_document_words: int = 0
) -> Iterator[DocumentVerdict]:
    """Yield one verdict per document, in input order, on its duplicate sentences.

    A document left with fewer than `min_document_words` words once its duplicates are out
    will not be published, so its sentences are withdrawn: nothing later points into it.

    >>> docs = [DocumentInput("a.txt", "A", ("Rain fell all day in the capital.", "Shops shut early.")),
    ...         DocumentInput("b.txt", "B", ("Rain fell all day in the capital!", "Then the sun came out."))]
    >>> [(v.source, [(d.rule, d.duplicate_of) for d in v.sentences]) for v in find_duplicates(docs, DedupConfig())]
    [('a.txt', []), ('b.txt', [('exact_duplicate', 'A:0')])]
    """
    hasher = MinHasher(cfg)
    index = SentenceIndex(hasher)
    kept_docs: set[str] = set()
    for doc in documents:
        if doc.doc_id in kept_docs:
            yield DocumentVerdict(
                doc.source, doc.doc_id, (), doc.doc_id, f"same content as document {doc.doc_id} seen earlier"
            )
            continue
        duplicates: list[SentenceDuplicate] = []
        added: list[tuple[str, str]] = []
        dedupable_chars = 0
        for position, text in enumerate(doc.sentences):
            if count_words(text) < cfg.min_words:
                continue
            dedupable_chars += len(text)
            shingles = hasher.shingles(text)
            sketch = hasher.minhash(shingles)
            found = index.find(text, shingles, sketch)
            if found is None:
                key = f"{doc.doc_id}:{position}"
                index.add(key, doc.doc_id, text, shingles, sketch)
                added.append((key, text))
            else:
                rule, key, score, of_doc = found
                duplicates.append(SentenceDuplicate(position, text.strip(), rule, round(score, 6), key, of_doc))
        verdict = _judge_document(doc, duplicates, dedupable_chars, cfg.document_duplicate_fraction)
        dropped = {dup.position for dup in duplicates}
        kept_words = sum(count_words(s) for n, s in enumerate(doc.sentences) if n not in dropped)
        if verdict.duplicate_of_doc is not None or kept_words < min_document_words:
            for key, text in added:
                index.withdraw(key, text)
        else:
            kept_docs.add(doc.doc_id)
        yield verdict


def _judge_document(
    doc: DocumentInput, duplicates: list[SentenceDuplicate], dedupable_chars: int, fraction: float
) -> DocumentVerdict:
    """Return the verdict: a document duplicate when enough of its text duplicates others."""
    foreign = [dup for dup in duplicates if dup.duplicate_of_doc != doc.doc_id]
    duplicate_chars = sum(len(dup.text) for dup in foreign)
    if dedupable_chars and foreign and duplicate_chars / dedupable_chars >= fraction:
        counts = Counter(dup.duplicate_of_doc for dup in foreign)
        first_seen = {dup.duplicate_of_doc: n for n, dup in reversed(list(enumerate(foreign)))}
        of_doc = min(counts, key=lambda d: (-counts[d], first_seen[d]))
        share = float(np.round(duplicate_chars / dedupable_chars, 3))
        return DocumentVerdict(
            doc.source,
            doc.doc_id,
            tuple(duplicates),
            of_doc,
            f"{share:.0%} of its sentence text duplicates earlier documents "
            f"(threshold {fraction:.0%}); mostly document {of_doc}",
        )
    return DocumentVerdict(doc.source, doc.doc_id, tuple(duplicates))
