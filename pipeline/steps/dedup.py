"""Find near-duplicate sentences and documents: MinHash LSH candidates confirmed by exact Jaccard.

Order rule (what survives): sentences published by earlier runs come first, in the order of
their runs; then this run's documents in the order given, which the pipeline fixes as input
files sorted by relative path, then records in file order, then sentences in text order. The
first occurrence survives; a later sentence whose shingle set has exact Jaccard similarity >=
`threshold` with a surviving one is a duplicate of the most similar of them (an identical
normal form first, then the earliest on a tie). A document whose dedupable text is mostly
duplicates is dropped whole, and its sentences are withdrawn so nothing later points into it.

Signatures are computed in bulk (`MinHasher.signatures`) and are bit-identical to datasketch's
`MinHash` with the same seed, scheme and hash function (tested). LSH bands of `lsh_rows`
signature values are folded into 64-bit band keys; two sentences are candidates when one band
key agrees, and every candidate is confirmed on the exact shingle sets, so precision is 1.0 by
construction and recall is the chance that a true pair shares a band.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
from datasketch import MinHash

from pipeline.config import DedupConfig
from pipeline.steps.sentences import count_words

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)

Signatures = npt.NDArray[np.unsignedinteger[Any]]
BandKeys = npt.NDArray[np.uint64]

SIGNING_BATCH: Final = 4096
"""Sentences signed and matched together."""
_PERMUTE_BLOCK: Final = 8192  # shingles permuted at a time: 4 MB of 32-bit values at 128 permutations
_PAIRS_AT_ONCE: Final = 8192  # candidate pairs whose shingle sets are compared at once
_HASH_CACHE_LIMIT: Final = 4_000_000  # distinct shingles remembered (12-16 bytes each)
CURRENT_RUN: Final = 2**62  # the run seq of the run being deduplicated: after every earlier run
_FMIX: Final = {
    32: (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16)),
    64: (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(33), np.uint64(0xC4CEB9FE1A85EC53), np.uint64(33)),
}
_BAND_MULTIPLIER: Final = np.uint64(0x9E3779B97F4A7C15)


def _word_character_table() -> npt.NDArray[np.bool_]:
    """Return, for every code point of the Basic Multilingual Plane, whether `_TOKEN` matches it."""
    every = "".join(map(chr, range(0x10000)))
    table = np.zeros(0x10000, dtype=bool)
    for match in _TOKEN.finditer(every):
        table[match.start() : match.end()] = True
    return table


_WORD_CHARACTER: Final = _word_character_table()


def _joined_points(texts: Sequence[str]) -> npt.NDArray[np.uint32]:
    """Return the code points of the texts, each followed by a 0."""
    if not texts:
        return np.zeros(0, dtype=np.uint32)
    return np.frombuffer(("\x00".join(texts) + "\x00").encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _text(points: npt.NDArray[np.uint32]) -> str:
    return points.tobytes().decode("utf-32-le", "surrogatepass")


def normalise_sentence(text: str) -> str:
    """Return the form of a sentence that shingles are taken from: lowercase words, one space.

    >>> normalise_sentence("  “Hello,”  she SAID!  ")
    'hello she said'
    """
    return " ".join(_TOKEN.findall(text.lower()))


def _normal_points(texts: Sequence[str]) -> npt.NDArray[np.uint32]:
    """Return the code points of every text's normal form, each followed by a 0: `normalise_sentence` in bulk.

    >>> _normal_points(["Hi, YOU!", "", "-- ok --"]).tobytes().decode("utf-32-le").split("\\x00")
    ['hi you', '', 'ok', '']
    """
    if not texts:
        return np.zeros(0, dtype=np.uint32)
    joined = "\x00".join(texts) + "\x00"
    if joined.count("\x00") != len(texts):  # a text holds the separator: any other non-word character does as well
        joined = "\x00".join(text.replace("\x00", " ") for text in texts) + "\x00"
    # Lowercasing all at once is the same as one by one: the one context rule (final sigma) stops at a 0.
    points = np.frombuffer(joined.lower().encode("utf-32-le", "surrogatepass"), dtype=np.uint32).copy()
    word = _WORD_CHARACTER.take(points, mode="clip")  # beyond the table: looked up below
    astral = np.flatnonzero(points > 0xFFFF)
    if len(astral):
        found, where = np.unique(points[astral], return_inverse=True)
        word[astral] = np.array([_TOKEN.match(chr(c)) is not None for c in found.tolist()])[where]
    kept = word | (points == 0)
    # A run of other characters becomes one space when it lies between two words of one text.
    edges = np.diff(~kept, prepend=False, append=False).nonzero()[0]
    starts, ends = edges[0::2], edges[1::2]
    between = (starts > 0) & word[starts - 1] & word[ends]
    spaces = starts[between]
    points[spaces] = ord(" ")
    kept[spaces] = True
    normal: npt.NDArray[np.uint32] = points[kept]
    return normal


def normalise_sentences(texts: Sequence[str]) -> list[str]:
    """Return `normalise_sentence` of every text, computed all at once.

    >>> normalise_sentences(["ΟΔΟΣ, Straße!", "\\x00"])
    ['οδος straße', '']
    """
    return _text(_normal_points(texts)).split("\x00")[:-1]


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


def fmix(values: npt.NDArray[Any], width: int) -> npt.NDArray[Any]:
    """Return the MurmurHash3 finalizer of unsigned `width`-bit values (datasketch's pre-mix)."""
    s1, m1, s2, m2, s3 = _FMIX[width]
    values = values ^ (values >> s1)
    values = values * m1
    values = values ^ (values >> s2)
    values = values * m2
    mixed: npt.NDArray[Any] = values ^ (values >> s3)
    return mixed


class MinHasher:
    """The one factory for MinHash signatures and LSH band keys: every parameter fixed here.

    `signatures` signs many sentences at once with NumPy and gives datasketch's hash values bit
    for bit: SHA-1 of each shingle's UTF-8 bytes (first 4 bytes little-endian for `affine32`, 8
    for `affine64`), the MurmurHash3 pre-mix, then `a * h + b` in wrapping unsigned arithmetic
    with datasketch's permutations for the seed. Each distinct shingle is hashed once and
    remembered (a memo of a pure function, bounded). The whole batch is normalised at once, and
    character shingles of text whose code points fit `64 // size` bits are found, told apart and
    permuted with array operations, without a Python string per shingle.

    >>> hasher = MinHasher(DedupConfig())
    >>> sentence = "Rain fell all day in the capital."
    >>> bool((hasher.signatures([sentence])[0] == hasher.minhash(hasher.shingles(sentence)).hashvalues).all())
    True
    """

    def __init__(self, cfg: DedupConfig) -> None:
        self.cfg = cfg
        template = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, scheme=cfg.scheme)
        self.permutations: npt.NDArray[Any] = template.permutations
        self.width = 32 if cfg.scheme == "affine32" else 64
        self.dtype: type[np.unsignedinteger[Any]] = np.uint32 if self.width == 32 else np.uint64
        self._a = self.permutations[0].astype(self.dtype)[:, None]
        self._b = self.permutations[1].astype(self.dtype)[:, None]
        self._bits = 64 // cfg.shingle_size
        self._limit = min(1 << self._bits, 0x110000)  # code points a character shingle packs exactly
        self._known_keys = np.zeros(0, dtype=np.uint64)
        self._known_values = np.zeros(0, dtype=self.dtype)
        self._known_strings: dict[str, int] = {}
        self._scratch = np.empty((cfg.num_perm, 0), dtype=self.dtype)

    @property
    def params(self) -> dict[str, object]:
        """Return what must match for two signatures, or two sets of band keys, to be comparable."""
        cfg = self.cfg
        return {
            "num_perm": cfg.num_perm,
            "seed": cfg.seed,
            "scheme": cfg.scheme,
            "hashfunc": "sha1_hash32" if cfg.scheme == "affine32" else "sha1_hash64",
            "shingle": cfg.shingle,
            "normal_form": "lowercase word characters, single spaces",
            "lsh_bands": cfg.lsh_bands,
            "lsh_rows": cfg.lsh_rows,
        }

    def shingles(self, text: str) -> set[str]:
        """Return the configured shingle set of a sentence."""
        return shingle(text, self.cfg.shingle_kind, self.cfg.shingle_size)

    def minhash(self, shingles: Iterable[str]) -> MinHash:
        """Return datasketch's MinHash of a shingle set (the reference `signatures` must equal)."""
        sketch = MinHash(
            num_perm=self.cfg.num_perm, seed=self.cfg.seed, permutations=self.permutations, scheme=self.cfg.scheme
        )
        sketch.update_batch([item.encode("utf-8") for item in shingles])
        return sketch

    def signatures(self, texts: Sequence[str], normalised: bool = False) -> Signatures:
        """Return the MinHash signatures of many sentences, one row each (datasketch's values).

        `normalised`: the texts are already `normalise_sentence`'s output (saves doing it again).
        """
        points = _joined_points(texts) if normalised else _normal_points(texts)
        if normalised and np.count_nonzero(points == 0) != len(texts):
            points = _normal_points(texts)  # a 0 inside a text: not a normal form after all
        ends = np.flatnonzero(points == 0)
        lengths = np.diff(ends, prepend=-1) - 1
        out = np.empty((len(lengths), self.cfg.num_perm), dtype=self.dtype)
        size = self.cfg.shingle_size
        fast = np.zeros(len(lengths), dtype=bool)
        if self.cfg.shingle_kind == "char" and self._bits:
            fast = lengths >= size
            fast[np.searchsorted(ends, np.flatnonzero(points >= self._limit))] = False
        fast_rows, slow_rows = np.flatnonzero(fast), np.flatnonzero(~fast)
        if len(fast_rows):
            hashes = self._char_shingle_hashes(points, lengths, fast)
            minima = self._permuted_minima(hashes, lengths[fast_rows] - size + 1)
            if len(fast_rows) == len(out):
                return minima
            out[fast_rows] = minima
        if len(slow_rows):
            starts = ends - lengths
            norms = [_text(points[starts[n] : ends[n]]) for n in slow_rows.tolist()]
            sets = [self.shingles(norm) for norm in norms]
            counts = np.array([len(s) for s in sets], dtype=np.int64)
            out[slow_rows] = self._permuted_minima(self._string_hashes([s for each in sets for s in each]), counts)
        return out

    def similarities(self, left: Sequence[str], right: Sequence[str]) -> npt.NDArray[np.float64]:
        """Return the exact Jaccard similarity of each pair's shingle sets: `jaccard` in bulk, the same floats.

        The texts are normal forms. Pairs of character shingles that fit the array path are
        compared with one sort; the others with Python sets.

        >>> hasher = MinHasher(DedupConfig())
        >>> pairs = [("rain fell all day", "rain fell all night"), ("rain", "rain")]
        >>> hasher.similarities(*zip(*pairs)).tolist() == [jaccard(*map(hasher.shingles, p)) for p in pairs]
        True
        """
        scores = np.zeros(len(left), dtype=np.float64)
        done = np.zeros(len(left), dtype=bool)
        if self.cfg.shingle_kind == "char" and self._bits and len(left):
            done, found = self._char_similarities([text for pair in zip(left, right, strict=True) for text in pair])
            scores[done] = found[done]
        for p in np.flatnonzero(~done).tolist():
            scores[p] = jaccard(self.shingles(left[p]), self.shingles(right[p]))
        return scores

    def _char_similarities(self, texts: list[str]) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
        """Return which pairs (texts 2p and 2p + 1) were compared, and their Jaccard similarities.

        Each shingle becomes one integer (pair, shingle key, side); sorted, a shingle both sides
        hold shows as two neighbours that differ only in the side.
        """
        size, pairs = self.cfg.shingle_size, len(texts) // 2
        points = _joined_points(texts)
        if np.count_nonzero(points == 0) != len(texts):
            points = _normal_points(texts)  # a 0 inside a text: not a normal form after all
        ends = np.flatnonzero(points == 0)
        lengths = np.diff(ends, prepend=-1) - 1
        fast = lengths >= size
        fast[np.searchsorted(ends, np.flatnonzero(points >= self._limit))] = False
        done = fast[0::2] & fast[1::2]
        take = np.repeat(done, 2)
        if not done.any():
            return done, np.zeros(pairs)
        keys, _, code_bits = self._window_keys(points, lengths, take)
        key_bits = size * code_bits + 1
        if key_bits + max(1, (pairs - 1).bit_length()) > 64:  # too many distinct characters: Python sets
            return np.zeros(pairs, dtype=bool), np.zeros(pairs)
        owners = np.repeat(np.arange(len(texts), dtype=np.uint64), np.where(take, lengths - size + 1, 0))
        keys <<= np.uint64(1)
        keys |= owners & np.uint64(1)
        keys |= (owners >> np.uint64(1)) << np.uint64(key_bits)
        keys.sort()
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]  # each side a set
        shared = (keys[1:] >> np.uint64(1)) == (keys[:-1] >> np.uint64(1))
        pair = (keys >> np.uint64(key_bits)).astype(np.int64)
        both = np.bincount(pair[1:][shared], minlength=pairs)
        either = np.bincount(pair, minlength=pairs) - both
        return done, both / np.maximum(either, 1)

    def band_keys(self, signatures: Signatures) -> BandKeys:
        """Return one 64-bit key per LSH band and sentence: `lsh_rows` signature values folded and mixed."""
        bands, rows = self.cfg.lsh_bands, self.cfg.lsh_rows
        values = signatures[:, : bands * rows].astype(np.uint64).reshape(len(signatures), bands, rows)
        keys = np.zeros((len(signatures), bands), dtype=np.uint64)
        for column in range(rows):
            keys = fmix((keys * _BAND_MULTIPLIER) ^ values[:, :, column], 64)
        return keys

    def _string_hashes(self, shingles: list[str]) -> npt.NDArray[Any]:
        """Return the pre-mixed hash of each shingle given as a string, remembered."""
        known = self._known_strings
        missing = list(dict.fromkeys(s for s in shingles if s not in known))
        if missing:
            digests = b"".join([hashlib.sha1(s.encode("utf-8")).digest() for s in missing])
            known.update(zip(missing, self._premixed(digests).tolist(), strict=True))
        values = np.array([known[s] for s in shingles], dtype=self.dtype)
        if len(known) > _HASH_CACHE_LIMIT:
            known.clear()  # bounded: start again, as a fresh hasher would
        return values

    def _premixed(self, digests: bytes) -> npt.NDArray[Any]:
        """Return datasketch's hash values of SHA-1 digests laid end to end: first bytes little-endian, pre-mixed."""
        width = self.width // 8
        raw = np.frombuffer(digests, dtype=np.uint8).reshape(-1, 20)[:, :width]
        return fmix(np.ascontiguousarray(raw).view(f"<u{width}").ravel().astype(self.dtype), self.width)

    def _char_shingle_hashes(
        self, points: npt.NDArray[np.uint32], lengths: npt.NDArray[np.int64], fast: npt.NDArray[np.bool_]
    ) -> npt.NDArray[Any]:
        """Return the pre-mixed hash of every character shingle of the `fast` sentences, in order.

        A shingle's key (`_window_keys`) and its place fit one 64-bit integer: one sort then finds
        the distinct shingles.
        """
        size = self.cfg.shingle_size
        keys, used, code_bits = self._window_keys(points, lengths, fast)
        place_bits = max(1, (len(keys) - 1).bit_length())
        if size * code_bits + place_bits > 64:  # too many distinct characters in this batch to pack the place too
            distinct, inverse = np.unique(keys, return_inverse=True)
            return self._shingle_values(self._code_points_key(distinct, used, code_bits))[inverse]
        keys <<= np.uint64(place_bits)
        keys |= np.arange(len(keys), dtype=np.uint64)
        keys.sort()
        places = (keys & np.uint64((1 << place_bits) - 1)).view(np.int64)
        keys >>= np.uint64(place_bits)
        first = np.empty(len(keys), dtype=bool)
        first[:1] = True
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
        values = self._shingle_values(self._code_points_key(keys[first], used, code_bits))
        group = np.cumsum(first, dtype=np.int32)
        group -= 1
        hashes = np.empty(len(keys), dtype=self.dtype)
        hashes[places] = values[group]
        return hashes

    def _window_keys(
        self, points: npt.NDArray[np.uint32], lengths: npt.NDArray[np.int64], take: npt.NDArray[np.bool_]
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.intp], int]:
        """Return the key of each character shingle of the `take` texts, in order, the code points coded, bits per code.

        `points` are the texts, each followed by a 0; a text taken has a shingle and no code point
        beyond the limit. A key is the shingle's characters, each written with a small code (the
        characters of these texts, in code point order), so that keys sort as the shingles do.
        """
        size = self.cfg.shingle_size
        small = points if points.max(initial=0) < self._limit else points[points < self._limit]
        used = np.flatnonzero(np.bincount(small))
        code = np.zeros(self._limit, dtype=np.uint32)
        code[used] = np.arange(len(used), dtype=np.uint32)
        codes = code.take(points, mode="clip")  # a code point beyond the limit is in no shingle taken
        code_bits = max(1, (len(used) - 1).bit_length())
        span = len(points) - size + 1
        keys = codes[:span].astype(np.uint64)
        for offset in range(1, size):
            keys <<= np.uint64(code_bits)
            keys |= codes[offset : offset + span]
        if not take.all():  # a shingle of a text not taken must not be taken
            points = np.where(np.repeat(take, lengths + 1), points, 0)
        crossing = points[:span] == 0  # a shingle that takes in a text's end
        for offset in range(1, size):
            crossing |= points[offset : offset + span] == 0
        return keys[~crossing], used, code_bits

    def _code_points_key(
        self, keys: npt.NDArray[np.uint64], used: npt.NDArray[np.intp], code_bits: int
    ) -> npt.NDArray[np.uint64]:
        """Return shingle keys in a batch's character codes as keys in code points, the same in every batch."""
        size, mask = self.cfg.shingle_size, np.uint64((1 << code_bits) - 1)
        rewritten = np.zeros(len(keys), dtype=np.uint64)
        for offset in range(size):
            rewritten <<= np.uint64(self._bits)
            rewritten |= used[(keys >> np.uint64(code_bits * (size - 1 - offset))) & mask].astype(np.uint64)
        return rewritten

    def _shingle_values(self, shingles: npt.NDArray[np.uint64]) -> npt.NDArray[Any]:
        """Return the pre-mixed hash of each character shingle (packed code points, ascending), remembered."""
        size, bits, known = self.cfg.shingle_size, self._bits, self._known_keys
        at = np.minimum(np.searchsorted(known, shingles), max(len(known) - 1, 0))
        hit = known[at] == shingles if len(known) else np.zeros(len(shingles), dtype=bool)
        values = np.empty(len(shingles), dtype=self.dtype)
        values[hit] = self._known_values[at[hit]]
        missing = shingles[~hit]
        if len(missing):
            shifts = np.arange(size - 1, -1, -1, dtype=np.uint64) * np.uint64(bits)
            points = ((missing[:, None] >> shifts) & np.uint64((1 << bits) - 1)).astype(np.uint32)
            points = np.concatenate((points, np.zeros((len(missing), 1), dtype=np.uint32)), axis=1)
            utf8 = _text(points.ravel()).encode("utf-8").split(b"\x00")[:-1]  # no shingle holds a 0
            mixed = self._premixed(b"".join([hashlib.sha1(shingle).digest() for shingle in utf8]))
            values[~hit] = mixed
            if len(known) + len(missing) <= _HASH_CACHE_LIMIT:
                where = np.searchsorted(known, missing)
                self._known_keys = np.insert(known, where, missing)
                self._known_values = np.insert(self._known_values, where, mixed)
        return values

    def _permuted_minima(self, hashes: npt.NDArray[Any], counts: npt.NDArray[np.int64]) -> Signatures:
        """Return per sentence the minimum of `a * h + b` over its shingle hashes, for every permutation.

        Sentences are taken in blocks of about `_PERMUTE_BLOCK` shingles, computed in one buffer.
        """
        out = np.empty((len(counts), self.cfg.num_perm), dtype=self.dtype)
        if not len(counts):
            return out
        ends = np.cumsum(counts)
        starts = ends - counts
        bounds = (np.flatnonzero(np.diff(starts // _PERMUTE_BLOCK)) + 1).tolist()
        width = _PERMUTE_BLOCK + int(counts.max())
        if self._scratch.shape[1] < width:  # kept from call to call: a fresh 4 MB costs page faults each time
            self._scratch = np.empty((self.cfg.num_perm, width), dtype=self.dtype)
        buffer = self._scratch
        for lo, hi in zip([0, *bounds], [*bounds, len(counts)], strict=True):
            first, last = int(starts[lo]), int(ends[hi - 1])
            permuted = buffer[:, : last - first]
            np.multiply(self._a, hashes[first:last], out=permuted)
            permuted += self._b
            out[lo:hi] = np.minimum.reduceat(permuted, starts[lo:hi] - first, axis=1).T
        return out


def match_band_keys(
    sorted_keys: npt.NDArray[np.uint64], rows: npt.NDArray[Any], queries: BandKeys
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Return (query, row) pairs whose key agrees in some band, unique, from per-band sorted keys.

    `sorted_keys[band]` is band `band`'s keys in ascending order and `rows[band]` the entry each
    belongs to; `queries[i, band]` is query i's key.

    >>> keys = np.array([[1, 5, 9]], dtype=np.uint64); rows = np.array([[2, 0, 1]])
    >>> [a.tolist() for a in match_band_keys(keys, rows, np.array([[5], [7]], dtype=np.uint64))]
    [[0], [0]]
    """
    found_query: list[npt.NDArray[np.int64]] = []
    found_row: list[npt.NDArray[np.int64]] = []
    for band in range(queries.shape[1]):
        keys = sorted_keys[band]
        if not len(keys):
            continue
        order = np.argsort(queries[:, band])  # needles in order: the searches walk the keys one way
        wanted = queries[order, band]
        left = np.searchsorted(keys, wanted, "left")
        found = np.asarray(keys[np.minimum(left, len(keys) - 1)]) == wanted
        if not found.any():
            continue
        left, wanted, order = left[found], wanted[found], order[found]
        hits = np.searchsorted(keys, wanted, "right") - left
        query = np.repeat(order.astype(np.int64), hits)
        first = np.repeat(left - (np.cumsum(hits) - hits), hits)
        found_query.append(query)
        found_row.append(np.asarray(rows[band][first + np.arange(len(query))], dtype=np.int64))
    if not found_query:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    pairs = np.unique(np.stack([np.concatenate(found_query), np.concatenate(found_row)], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def sort_bands(keys: BandKeys) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Return, per band, the keys of `keys` (one row per entry) in ascending order and their rows."""
    rows = np.argsort(keys, axis=0, kind="stable").T
    return np.take_along_axis(keys.T, rows, axis=1), rows


@dataclass(frozen=True)
class Published:
    """A surviving sentence that later sentences may duplicate: from an earlier run or this one."""

    key: str
    """`<doc_id>:<sentence number>`."""
    doc_id: str
    run: str
    text: str
    """Its normal form (`normalise_sentence`)."""
    order: tuple[int, int]
    """(run seq, sentence seq in the run): earlier sorts first."""


class RunSentences(Protocol):
    """This run's surviving sentences of the batches matched so far, searchable by band keys."""

    def add(self, entries: list[Published], keys: BandKeys) -> None:
        """Add survivors (in the run's order) and their band keys."""
        ...

    def candidates(self, keys: BandKeys) -> list[list[Published]]:
        """Return, per row of band keys, the survivors sharing an LSH band with it (unconfirmed)."""
        ...


class PublishedSentences(Protocol):
    """Sentences published by earlier runs, as a persistent index gives them to this run."""

    def candidates(self, signatures: Signatures, band_keys: BandKeys) -> list[list[Published]]:
        """Return, per sentence, the published sentences sharing an LSH band with it (unconfirmed)."""
        ...


@dataclass(frozen=True)
class SentenceDuplicate:
    """One removed sentence and the surviving sentence it duplicates."""

    position: int
    text: str
    rule: str
    score: float
    duplicate_of: str
    duplicate_of_doc: str
    duplicate_of_run: str = ""


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
    duplicate_of_run: str | None = None


@dataclass
class _Sentence:
    """One dedupable sentence of the batch being matched."""

    doc: int
    position: int
    text: str
    norm: str
    earlier: list[tuple[float, Published]] = field(default_factory=list)
    """Confirmed matches among sentences published before this batch (earlier runs, earlier batches)."""
    nearby: list[int] = field(default_factory=list)
    """Other sentences of this batch sharing a band (not yet confirmed), for the first of a normal form."""
    shingles: set[str] | None = None
    survivor: Published | None = None
    first: int = 0
    """The first sentence of the batch with the same normal form (itself if none before)."""


class _RunSentences:
    """This run's surviving sentences from earlier batches: sorted band keys in a few tiers, in memory.

    Tiers are merged when the newer one grows to half the older one's size, so there are at most
    about log2(survivors / batch) tiers to search.
    """

    def __init__(self) -> None:
        self.entries: list[Published] = []
        self._tiers: list[tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64], BandKeys]] = []

    def add(self, entries: list[Published], keys: BandKeys) -> None:
        if not entries:
            return
        first = len(self.entries)
        self.entries.extend(entries)
        sorted_keys, rows = sort_bands(keys)
        self._tiers.append((sorted_keys, rows + first, keys))
        while len(self._tiers) >= 2 and self._tiers[-2][2].shape[0] <= 2 * self._tiers[-1][2].shape[0]:
            newer, older = self._tiers.pop(), self._tiers.pop()
            both = np.concatenate([older[2], newer[2]])
            first_row = int(older[1].min()) if older[1].size else 0
            sorted_keys, rows = sort_bands(both)
            self._tiers.append((sorted_keys, rows + first_row, both))

    def candidates(self, keys: BandKeys) -> list[list[Published]]:
        found: list[list[Published]] = [[] for _ in range(len(keys))]
        for sorted_keys, rows, _ in self._tiers:
            queries, matched = match_band_keys(sorted_keys, rows, keys)
            for query, row in zip(queries.tolist(), matched.tolist(), strict=True):
                found[query].append(self.entries[row])
        return found


class Deduplicator:
    """Find duplicates in one run's documents against earlier runs and against each other.

    `run` names this run in the removal log; `earlier` gives the sentences earlier runs
    published (None: this run only). Documents are matched in batches of whole documents
    (`SIGNING_BATCH` sentences): signatures and candidates in bulk, then the order rule one
    sentence at a time.
    """

    def __init__(
        self,
        cfg: DedupConfig,
        min_document_words: int = 0,
        earlier: PublishedSentences | None = None,
        run: str = "",
        run_sentences: RunSentences | None = None,
    ) -> None:
        self.cfg = cfg
        self.hasher = MinHasher(cfg)
        self.min_document_words = min_document_words
        self.earlier = earlier
        self.run = run
        self._run_sentences: RunSentences = run_sentences if run_sentences is not None else _RunSentences()
        self._exact: dict[str, Published] = {}
        """Survivors of the current batch by normal form (earlier batches' are found through their band keys)."""
        self._kept_docs: set[str] = set()
        self._seq = 0

    def verdicts(self, documents: Iterable[DocumentInput]) -> Iterator[DocumentVerdict]:
        """Yield one verdict per document, in input order."""
        batch: list[DocumentInput] = []
        size = 0
        for doc in documents:
            batch.append(doc)
            size += len(doc.sentences)
            if size >= SIGNING_BATCH:
                yield from self._batch(batch)
                batch, size = [], 0
        if batch:
            yield from self._batch(batch)

    def _batch(self, docs: list[DocumentInput]) -> Iterator[DocumentVerdict]:
        # An identical normal form has identical band keys, so a survivor of an earlier batch is
        # among the candidates (at similarity 1.0): only this batch's need the exact map.
        self._exact.clear()
        dedupable = [
            (d, position, text)
            for d, doc in enumerate(docs)
            for position, text in enumerate(doc.sentences)
            if count_words(text) >= self.cfg.min_words
        ]
        norms = normalise_sentences([text for _, _, text in dedupable])
        sentences = [
            _Sentence(d, position, text, norm) for (d, position, text), norm in zip(dedupable, norms, strict=True)
        ]
        keys = self._find_candidates(sentences)
        by_doc: dict[int, list[int]] = {}
        for n, sentence in enumerate(sentences):
            by_doc.setdefault(sentence.doc, []).append(n)
        new_survivors: list[int] = []
        for d, doc in enumerate(docs):
            yield self._judge(doc, by_doc.get(d, []), sentences, new_survivors)
        kept = [n for n in new_survivors if sentences[n].survivor is not None]
        if kept:
            survivors = [sentences[n].survivor for n in kept]
            self._run_sentences.add([s for s in survivors if s is not None], keys[kept])

    def _find_candidates(self, sentences: list[_Sentence]) -> BandKeys:
        """Fill in each sentence's confirmed earlier matches and its neighbours in the batch; return band keys.

        Sentences with the same normal form are matched once, through the first of them.
        """
        first: dict[str, int] = {}
        for n, sentence in enumerate(sentences):
            sentence.first = first.setdefault(sentence.norm, n)
        distinct = sorted(set(first.values()))
        signatures = self.hasher.signatures([sentences[n].norm for n in distinct], normalised=True)
        distinct_keys = self.hasher.band_keys(signatures)
        if distinct:
            earlier = self.earlier.candidates(signatures, distinct_keys) if self.earlier is not None else None
            this_run = self._run_sentences.candidates(distinct_keys)
            pairs = [
                (n, published)
                for k, n in enumerate(distinct)
                for published in (earlier[k] if earlier is not None else []) + this_run[k]
            ]
            # Compared a slice of pairs at a time: a batch can have many candidates, each similarity is exact.
            scores = np.concatenate(
                [
                    self.hasher.similarities(
                        [sentences[n].norm for n, _ in pairs[start : start + _PAIRS_AT_ONCE]],
                        [p.text for _, p in pairs[start : start + _PAIRS_AT_ONCE]],
                    )
                    for start in range(0, len(pairs), _PAIRS_AT_ONCE)
                ]
                or [np.zeros(0)]
            )
            for (n, published), score in zip(pairs, scores.tolist(), strict=True):
                if score >= self.cfg.threshold:
                    sentences[n].earlier.append((score, published))
            # Neighbours within the batch: sentences whose band keys agree somewhere.
            sorted_keys, rows = sort_bands(distinct_keys)
            neighbours: set[tuple[int, int]] = set()
            for band in range(distinct_keys.shape[1]):
                band_keys = sorted_keys[band]
                bounds = np.flatnonzero(band_keys[1:] != band_keys[:-1]) + 1
                starts = np.concatenate(([0], bounds))
                ends = np.concatenate((bounds, [len(band_keys)]))
                for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
                    if end - start > 1:
                        members = [distinct[k] for k in rows[band][start:end].tolist()]
                        neighbours.update((i, j) for i in members for j in members if i != j)
            for i, j in sorted(neighbours):
                sentences[i].nearby.append(j)
        row_of = {n: k for k, n in enumerate(distinct)}
        return distinct_keys[[row_of[s.first] for s in sentences]] if sentences else distinct_keys

    def _shingles(self, sentence: _Sentence) -> set[str]:
        if sentence.shingles is None:
            sentence.shingles = self.hasher.shingles(sentence.norm)
        return sentence.shingles

    def _best(self, n: int, batch: list[_Sentence]) -> tuple[float, Published] | None:
        """Return the surviving sentence that sentence `n` of the batch duplicates and the similarity, or None."""
        sentence = batch[n]
        first = batch[sentence.first]
        options = list(first.earlier)
        exact = self._exact.get(sentence.norm)
        if exact is not None:
            options.append((1.0, exact))
        for i in first.nearby:
            other = batch[i]
            if i < n and other.survivor is not None:
                score = jaccard(self._shingles(sentence), self._shingles(other))
                if score >= self.cfg.threshold:
                    options.append((score, other.survivor))
        if not options:
            return None
        return min(options, key=lambda o: (-o[0], o[1].text != sentence.norm, o[1].order))

    def _judge(
        self, doc: DocumentInput, members: list[int], batch: list[_Sentence], new_survivors: list[int]
    ) -> DocumentVerdict:
        if doc.doc_id in self._kept_docs:
            reason = f"same content as document {doc.doc_id} seen earlier"
            return DocumentVerdict(doc.source, doc.doc_id, (), doc.doc_id, reason, self.run)
        duplicates: list[SentenceDuplicate] = []
        added: list[int] = []
        dedupable_chars = 0
        for n in members:
            sentence = batch[n]
            dedupable_chars += len(sentence.text)
            found = self._best(n, batch)
            if found is None:
                sentence.survivor = Published(
                    f"{doc.doc_id}:{sentence.position}",
                    doc.doc_id,
                    self.run,
                    sentence.norm,
                    (CURRENT_RUN, self._seq),
                )
                self._seq += 1
                self._exact.setdefault(sentence.norm, sentence.survivor)
                added.append(n)
            else:
                score, of = found
                rule = "exact_duplicate" if of.text == sentence.norm else "near_duplicate"
                duplicates.append(
                    SentenceDuplicate(
                        sentence.position, sentence.text.strip(), rule, round(score, 6), of.key, of.doc_id, of.run
                    )
                )
        verdict = _judge_document(doc, duplicates, dedupable_chars, self.cfg.document_duplicate_fraction, self.run)
        dropped = {dup.position for dup in duplicates}
        kept_words = sum(count_words(s) for n, s in enumerate(doc.sentences) if n not in dropped)
        if verdict.duplicate_of_doc is not None or kept_words < self.min_document_words:
            for n in added:  # withdrawn: nothing later may point into a document not published
                sentence = batch[n]
                if self._exact.get(sentence.norm) is sentence.survivor:
                    del self._exact[sentence.norm]
                sentence.survivor = None
        else:
            self._kept_docs.add(doc.doc_id)
            new_survivors.extend(added)
        return verdict


def find_duplicates(
    documents: Iterable[DocumentInput],
    cfg: DedupConfig,
    min_document_words: int = 0,
    earlier: PublishedSentences | None = None,
    run: str = "",
    run_sentences: RunSentences | None = None,
) -> Iterator[DocumentVerdict]:
    """Yield one verdict per document, in input order, on its duplicate sentences.

    `run_sentences` keeps this run's survivors (default: in memory; the pipeline spills them to disk).

    A document left with fewer than `min_document_words` words once its duplicates are out
    will not be published, so its sentences are withdrawn: nothing later points into it.

    >>> docs = [DocumentInput("a.txt", "A", ("Rain fell all day in the capital.", "Shops shut early.")),
    ...         DocumentInput("b.txt", "B", ("Rain fell all day in the capital!", "Then the sun came out."))]
    >>> [(v.source, [(d.rule, d.duplicate_of) for d in v.sentences]) for v in find_duplicates(docs, DedupConfig())]
    [('a.txt', []), ('b.txt', [('exact_duplicate', 'A:0')])]
    """
    return Deduplicator(cfg, min_document_words, earlier, run, run_sentences).verdicts(documents)


def _judge_document(
    doc: DocumentInput, duplicates: list[SentenceDuplicate], dedupable_chars: int, fraction: float, run: str
) -> DocumentVerdict:
    """Return the verdict: a document duplicate when enough of its text duplicates other documents.

    A sentence counts when it duplicates another document, or any document of an earlier run
    (the same document published before counts too).
    """
    foreign = [dup for dup in duplicates if dup.duplicate_of_doc != doc.doc_id or dup.duplicate_of_run != run]
    duplicate_chars = sum(len(dup.text) for dup in foreign)
    if dedupable_chars and foreign and duplicate_chars / dedupable_chars >= fraction:
        counts = Counter((dup.duplicate_of_run, dup.duplicate_of_doc) for dup in foreign)
        first_seen = {(dup.duplicate_of_run, dup.duplicate_of_doc): n for n, dup in reversed(list(enumerate(foreign)))}
        of_run, of_doc = min(counts, key=lambda d: (-counts[d], first_seen[d]))
        share = float(np.round(duplicate_chars / dedupable_chars, 3))
        where = "" if of_run == run else f" of batch {of_run}"
        return DocumentVerdict(
            doc.source,
            doc.doc_id,
            tuple(duplicates),
            of_doc,
            f"{share:.0%} of its sentence text duplicates earlier documents "
            f"(threshold {fraction:.0%}); mostly document {of_doc}{where}",
            of_run,
        )
    return DocumentVerdict(doc.source, doc.doc_id, tuple(duplicates))
