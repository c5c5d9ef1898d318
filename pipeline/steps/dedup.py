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

A batch is matched in bulk: word counts, normal forms, signatures, the candidates of each normal
form (earlier runs, this run's earlier batches, the batch itself) and the exact similarity of every
candidate pair that can change a decision (`ShingleSets`; an identical candidate settles a normal
form, and a cheap upper bound leaves out pairs that cannot reach the threshold). The order rule
then goes a document at a time over the few sentences that have a candidate; the others survive.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections import Counter
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
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
_SHINGLE_BINS: Final = 64  # bins of shingles whose counts bound a pair's similarity (a power of 2)
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


_NO_LOWER: Final = np.uint32(0xFFFFFFFF)


@functools.cache
def _lower_table() -> npt.NDArray[np.uint32]:
    """Return `str.lower` of every character of the Basic Multilingual Plane, or `_NO_LOWER` where it is not
    one character on its own (several characters, or capital sigma, whose lowercase depends on its neighbours).
    """
    table = np.array([ord(low) if len(low := chr(c).lower()) == 1 else 0xFFFFFFFF for c in range(0x10000)], np.uint32)
    table[ord("Σ")] = _NO_LOWER
    return table


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
    points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    plane = points.max(initial=0) <= 0xFFFF
    lowered = _lower_table().take(points, mode="clip") if plane else points  # `str.lower` of each, where one
    if not plane or (lowered == _NO_LOWER).any():
        # Lowercasing all at once is the same as one by one: the one context rule (final sigma) stops at a 0.
        lowered = np.frombuffer(joined.lower().encode("utf-32-le", "surrogatepass"), dtype=np.uint32).copy()
    points = lowered
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


_SPACED_LIMIT: Final = 0x3040
"""Every whitespace character lies below this code point, and none of the scripts `count_words` counts by character."""
_SPACE: Final = np.array([chr(c).isspace() for c in range(_SPACED_LIMIT)])


def word_counts(texts: Sequence[str]) -> npt.NDArray[np.int64]:
    """Return `count_words` of every text, computed all at once.

    A word starts at each non-space character after a space (or at a text's start), as
    `str.split` finds them; a text with a character past `_SPACED_LIMIT` is counted on its own.

    >>> word_counts(["The rain stopped.", " a  b ", "", "東京で雨が降った。"]).tolist()
    [3, 2, 0, 8]
    """
    if not texts:
        return np.zeros(0, dtype=np.int64)
    points = np.frombuffer(("\n".join(texts) + "\n").encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lengths = np.fromiter(map(len, texts), np.int64, len(texts))
    starts = np.cumsum(lengths + 1) - lengths - 1
    space = _SPACE.take(points, mode="clip")  # past the table: such texts are counted again below
    begins = ~space
    begins[1:] &= space[:-1]
    counts: npt.NDArray[np.int64] = np.add.reduceat(begins, starts, dtype=np.int64)  # each run ends in its separator
    beyond = np.flatnonzero(points >= _SPACED_LIMIT)
    if len(beyond):
        for n in distinct(np.searchsorted(starts, beyond, side="right") - 1).tolist():
            counts[n] = count_words(texts[n])
    return counts


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

        The texts are normal forms. Each distinct text is shingled once (`ShingleSets`).

        >>> hasher = MinHasher(DedupConfig())
        >>> pairs = [("rain fell all day", "rain fell all night"), ("rain", "rain")]
        >>> hasher.similarities(*zip(*pairs)).tolist() == [jaccard(*map(hasher.shingles, p)) for p in pairs]
        True
        """
        if len(left) != len(right):
            raise ValueError(f"{len(left)} left texts but {len(right)} right ones")
        number: dict[str, int] = {}
        a = np.fromiter((number.setdefault(text, len(number)) for text in left), np.int64, len(left))
        b = np.fromiter((number.setdefault(text, len(number)) for text in right), np.int64, len(right))
        return ShingleSets(self, list(number)).similarities(a, b)

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


class ShingleSets:
    """The shingle sets of many normal forms, for the exact Jaccard similarity of many pairs of them.

    Character shingles of texts that fit the array path (`MinHasher._window_keys`) become sorted
    integer keys, one run per text, found with one sort; a pair's keys, its two runs laid side by
    side, are merged by a stable sort (which merges sorted runs in linear time), and a shingle both
    hold shows as two equal neighbours. Other texts (word shingles, short texts, code points past
    the packing limit) are compared with Python sets. Similarities are the floats `jaccard` gives:
    `|A & B| / |A | B|`, both counts exact integers.
    """

    def __init__(self, hasher: MinHasher, texts: Sequence[str]) -> None:
        self.hasher = hasher
        self.texts = texts
        self._sets: dict[int, set[str]] = {}
        self._bin_counts: npt.NDArray[np.int32] | None = None
        self.fast = np.zeros(len(texts), dtype=bool)
        self.keys = np.zeros(0, dtype=np.uint64)
        self.counts = np.zeros(len(texts), dtype=np.int64)
        self.offsets = np.zeros(len(texts), dtype=np.int64)
        self.key_bits = 0
        cfg = hasher.cfg
        if cfg.shingle_kind != "char" or not hasher._bits or not texts:
            return
        size = cfg.shingle_size
        points = _joined_points(texts)
        if np.count_nonzero(points == 0) != len(texts):
            points = _normal_points(texts)  # a 0 inside a text: not a normal form after all
        ends = np.flatnonzero(points == 0)
        lengths = np.diff(ends, prepend=-1) - 1
        fast = lengths >= size
        fast[np.searchsorted(ends, np.flatnonzero(points >= hasher._limit))] = False
        if not fast.any():
            return
        keys, _, code_bits = hasher._window_keys(points, lengths, fast)
        key_bits = size * code_bits
        shingles = np.where(fast, lengths - size + 1, 0)
        # Each text's keys sorted and told apart in one sort, the text's number above the key.
        per_sort = 1 << min(62, 64 - key_bits)  # texts whose numbers fit beside the keys
        bounds = np.concatenate(([0], np.cumsum(shingles)))
        parts: list[npt.NDArray[np.uint64]] = []
        for first in range(0, len(texts), per_sort):
            last = min(first + per_sort, len(texts))
            chunk = keys[bounds[first] : bounds[last]]
            owners = np.repeat(np.arange(last - first, dtype=np.uint64), shingles[first:last])
            chunk |= owners << np.uint64(key_bits)
            chunk.sort()
            distinct = np.empty(len(chunk), dtype=bool)
            distinct[:1] = True
            np.not_equal(chunk[1:], chunk[:-1], out=distinct[1:])
            chunk = chunk[distinct]
            self.counts[first:last] = np.bincount(
                (chunk >> np.uint64(key_bits)).astype(np.intp), minlength=last - first
            )
            chunk &= np.uint64((1 << key_bits) - 1)
            parts.append(chunk)
        self.keys = np.concatenate(parts)
        self.offsets = np.cumsum(self.counts) - self.counts
        self.fast = fast
        self.key_bits = key_bits

    def _bins(self) -> npt.NDArray[np.int32]:
        """Return per text the number of its shingles in each of `_SHINGLE_BINS` bins (by a hash of the key)."""
        if self._bin_counts is None:
            owners = np.repeat(np.arange(len(self.texts), dtype=np.int64), self.counts)
            spread = (self.keys * _BAND_MULTIPLIER) >> np.uint64(64 - _SHINGLE_BINS.bit_length() + 1)
            slots = owners * _SHINGLE_BINS + spread.astype(np.int64)
            counts = np.bincount(slots, minlength=len(self.texts) * _SHINGLE_BINS)
            self._bin_counts = counts.astype(np.int32).reshape(len(self.texts), _SHINGLE_BINS)
        return self._bin_counts

    def _set(self, n: int) -> set[str]:
        found = self._sets.get(n)
        if found is None:
            found = self._sets[n] = self.hasher.shingles(self.texts[n])
        return found

    def similarities(
        self, a: npt.NDArray[np.int64], b: npt.NDArray[np.int64], at_least: float | None = None
    ) -> npt.NDArray[np.float64]:
        """Return the exact Jaccard similarity of the shingle sets of texts `a[p]` and `b[p]`, for every p.

        With `at_least`, a pair that cannot reach it gets -1.0 instead: shingles are dealt into
        `_SHINGLE_BINS` bins by a hash, and two sets share at most the smaller count of each bin,
        which bounds the similarity from above (as a float too: `i / (n - i)` rounds monotonically).
        """
        scores = np.zeros(len(a), dtype=np.float64)
        done = self.fast[a] & self.fast[b]
        both = np.flatnonzero(done)
        if at_least is not None and len(both):
            bins = self._bins()
            bound = np.empty(len(both), dtype=np.float64)
            for first in range(0, len(both), _PAIRS_AT_ONCE):
                pairs = both[first : first + _PAIRS_AT_ONCE]
                left, right = a[pairs], b[pairs]
                shared = np.minimum(bins[left], bins[right]).sum(axis=1)
                bound[first : first + len(pairs)] = shared / (self.counts[left] + self.counts[right] - shared)
            scores[both[bound < at_least]] = -1.0
            both = both[bound >= at_least]
        per_merge = min(_PAIRS_AT_ONCE, 1 << min(62, 64 - self.key_bits))  # pairs whose numbers fit beside the keys
        shift = np.uint64(self.key_bits)
        for first in range(0, len(both), per_merge):
            pairs = both[first : first + per_merge]
            left, right = a[pairs], b[pairs]
            runs = np.empty(2 * len(pairs), dtype=np.int64)  # the two texts' runs of keys, side by side
            runs[0::2], runs[1::2] = self.counts[left], self.counts[right]
            starts = np.empty(2 * len(pairs), dtype=np.int64)
            starts[0::2], starts[1::2] = self.offsets[left], self.offsets[right]
            taken = np.repeat(starts - (np.cumsum(runs) - runs), runs)
            taken += np.arange(len(taken))
            merged = self.keys[taken]
            merged |= np.repeat(np.arange(len(pairs), dtype=np.uint64) << shift, runs[0::2] + runs[1::2])
            merged.sort(kind="stable")
            shared = np.bincount((merged[1:][merged[1:] == merged[:-1]] >> shift).astype(np.intp), minlength=len(pairs))
            scores[pairs] = shared / (self.counts[left] + self.counts[right] - shared)
        for p in np.flatnonzero(~done).tolist():
            scores[p] = jaccard(self._set(int(a[p])), self._set(int(b[p])))
        return scores


def _sorted_matches(
    keys: npt.NDArray[Any], wanted: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
    """Return which of `wanted` sorted `keys` holds, where each found one's run starts and how long it is.

    None when none is found.

    >>> _sorted_matches(np.array([2, 5, 5, 9]), np.array([5, 7, 9]))
    (array([ True, False,  True]), array([1, 3]), array([2, 1]))
    """
    left = np.searchsorted(keys, wanted, "left")
    present = np.asarray(keys[np.minimum(left, len(keys) - 1)]) == wanted
    if not present.any():
        return None
    left = left[present]
    return present, left, np.searchsorted(keys, wanted[present], "right") - left


def match_band_keys(
    sorted_keys: npt.NDArray[np.uint64],
    rows: npt.NDArray[Any],
    queries: BandKeys,
    filters: npt.NDArray[np.uint8] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Return (query, row) pairs whose key agrees in some band, unique, sorted, from per-band sorted keys.

    `sorted_keys[band]` is band `band`'s keys in ascending order and `rows[band]` the entry each
    belongs to; `queries[i, band]` is query i's key. With `filters` (`band_filter` of the keys),
    the few query keys they let pass are searched; without, the distinct query keys are searched in
    ascending order (the searches walk the keys one way), then matched back to their queries.

    >>> keys = np.array([[1, 5, 9]], dtype=np.uint64); rows = np.array([[2, 0, 1]])
    >>> [a.tolist() for a in match_band_keys(keys, rows, np.array([[5], [7]], dtype=np.uint64))]
    [[0], [0]]
    """
    found_query: list[npt.NDArray[np.int64]] = []
    found_row: list[npt.NDArray[np.int64]] = []
    if filters is not None and len(queries):  # the few keys the filters let pass, band by band, each searched
        band_of, query_of = np.nonzero(_in_filter(filters, queries).T)
        wanted_all = queries[query_of, band_of]
        cuts = np.searchsorted(band_of, np.arange(queries.shape[1] + 1)).tolist()
        for band in range(queries.shape[1]):
            keys = sorted_keys[band]
            if cuts[band] == cuts[band + 1] or not len(keys):
                continue
            found = _sorted_matches(keys, wanted_all[cuts[band] : cuts[band + 1]])
            if found is None:
                continue
            present, left, counts = found
            first = np.repeat(left - (np.cumsum(counts) - counts), counts)
            found_query.append(np.repeat(query_of[cuts[band] : cuts[band + 1]][present], counts))
            found_row.append(np.asarray(rows[band][first + np.arange(len(first))], dtype=np.int64))
    for band in range(queries.shape[1] if filters is None else 0):
        keys = sorted_keys[band]
        if not len(keys) or not len(queries):
            continue
        column = queries[:, band]
        wanted = distinct(column)
        matched = _sorted_matches(keys, wanted)
        if matched is None:
            continue
        present, left, hits = matched
        wanted = wanted[present]
        at = np.minimum(np.searchsorted(wanted, column), len(wanted) - 1)
        query = np.flatnonzero(wanted[at] == column)
        which = at[query]
        counts = hits[which]
        first = np.repeat(left[which] - (np.cumsum(counts) - counts), counts)
        found_query.append(np.repeat(query, counts))
        found_row.append(np.asarray(rows[band][first + np.arange(len(first))], dtype=np.int64))
    if not found_query:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    query, row = np.concatenate(found_query), np.concatenate(found_row)
    span = int(row.max()) + 1
    pairs = distinct(query * span + row)
    return pairs // span, pairs % span


_FILTER_SLOTS: Final = 16
"""Bits of a band filter per key: about 1 absent key in 16 passes it."""


def band_filter(sorted_keys: npt.NDArray[np.uint64], sized_for: int = 0) -> npt.NDArray[np.uint8]:
    """Return per band a bitmap of the keys' top bits (`_FILTER_SLOTS` bits a key): an absent key's bit is mostly unset.

    `sized_for`: make it as large as for that many keys (filters of one size are merged by an or).

    >>> keys = np.array([[1, 2**63]], dtype=np.uint64)
    >>> _in_filter(band_filter(keys), np.array([[2**63 + 5], [2**62]], dtype=np.uint64)).ravel().tolist()
    [True, False]
    """
    bands, size = sorted_keys.shape
    bits = max(6, (_FILTER_SLOTS * max(size, sized_for, 1) - 1).bit_length())
    shift = np.uint64(64 - bits)
    filters = np.zeros((bands, 1 << (bits - 3)), dtype=np.uint8)
    for band in range(bands):
        slots = np.asarray(sorted_keys[band]) >> shift  # ascending, as the keys are
        if not len(slots):
            continue
        byte = (slots >> np.uint64(3)).astype(np.int64)
        bit = np.left_shift(1, (slots & np.uint64(7)).astype(np.uint8)).astype(np.uint8)
        starts = np.flatnonzero(np.concatenate(([True], byte[1:] != byte[:-1])))
        filters[band, byte[starts]] = np.bitwise_or.reduceat(bit, starts)
    return filters


def _in_filter(filters: npt.NDArray[np.uint8], keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
    """Return whether each key's bit is set in its band's bitmap (`band_filter`; keys one column per band)."""
    size = filters.shape[1]
    slots = keys >> np.uint64(64 - (size * 8 - 1).bit_length())
    at = (slots >> np.uint64(3)).astype(np.int64)
    at += np.arange(keys.shape[1], dtype=np.int64) * size
    found: npt.NDArray[np.bool_] = (np.asarray(filters).ravel()[at] >> (slots & np.uint64(7)).astype(np.uint8)) & 1 == 1
    return found


def band_pairs(keys: BandKeys) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Return the pairs of rows (i < j) whose keys agree in some band, each once, in ascending order.

    Per band, each key's row goes in its low bits in place of the key's own; one sort then puts
    rows whose keys agree side by side (and, rarely, some whose keys agree only in the other bits,
    which the check on the whole keys leaves out).

    >>> keys = np.array([[1, 2], [3, 2], [1, 4], [5, 6]], dtype=np.uint64)
    >>> [a.tolist() for a in band_pairs(keys)]
    [[0, 0], [1, 2]]
    """
    empty = np.zeros(0, dtype=np.int64)
    if len(keys) < 2:
        return empty, empty
    row_bits = (len(keys) - 1).bit_length()
    low = np.uint64((1 << row_bits) - 1)
    rows = np.arange(len(keys), dtype=np.uint64)
    found: list[npt.NDArray[np.int64]] = []
    for band in range(keys.shape[1]):
        column = keys[:, band]
        packed = (column & ~low) | rows
        packed.sort()
        high = packed & ~low
        same = high[1:] == high[:-1]
        if not same.any():
            continue
        edges = np.flatnonzero(np.diff(np.concatenate(([False], same, [False])).astype(np.int8)))
        starts, ends = edges[0::2], edges[1::2] + 1  # runs of equal high bits: [start, end)
        sizes = ends - starts
        member = np.repeat(starts - (np.cumsum(sizes) - sizes), sizes) + np.arange(int(sizes.sum()))
        later = np.repeat(ends, sizes) - 1 - member  # members after each one in its run
        left = np.repeat(member, later)
        right = left + 1 + np.arange(len(left)) - np.repeat(np.cumsum(later) - later, later)
        i = (packed[left] & low).astype(np.int64)
        j = (packed[right] & low).astype(np.int64)
        agree = column[i] == column[j]
        i, j = i[agree], j[agree]
        found.append(np.minimum(i, j) * len(keys) + np.maximum(i, j))
    if not found:
        return empty, empty
    pairs = distinct(np.concatenate(found))
    return pairs // len(keys), pairs % len(keys)


def distinct(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Return the distinct values, ascending: `np.unique` of a 1-D array, by a plain sort (much faster in NumPy 2.4).

    >>> distinct(np.array([3, 1, 3, 2])).tolist()
    [1, 2, 3]
    """
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    result: npt.NDArray[Any] = ordered[keep]
    return result


def stable_order(keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """Return `np.argsort(keys, axis=-1, kind="stable")` of 64-bit keys (one row, or one per band), faster.

    Each key's place goes in its low bits in place of the key's own and the whole is sorted (an
    unstable sort of distinct values, much faster than a stable argsort); where keys that differ
    only in those bits came out of order, that row is sorted again the slow way.

    >>> keys = np.array([[3, 1, 3, 2], [0, 0, 9, 0]], dtype=np.uint64)
    >>> stable_order(keys).tolist() == np.argsort(keys, axis=-1, kind="stable").tolist()
    True
    """
    keys = np.atleast_2d(keys)
    places = keys.shape[-1]
    if places < 2:
        return np.zeros(keys.shape, dtype=np.int64)
    low = np.uint64((1 << (places - 1).bit_length()) - 1)
    packed = keys & ~low
    packed |= np.arange(places, dtype=np.uint64)
    packed.sort(axis=-1)
    order = (packed & low).astype(np.int64)
    in_order = np.take_along_axis(keys, order, axis=-1)
    for row in np.flatnonzero((in_order[:, 1:] < in_order[:, :-1]).any(axis=1)).tolist():
        order[row] = np.argsort(keys[row], kind="stable")
    return order


def sort_bands(keys: BandKeys, stable: bool = True) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Return, per band, the keys of `keys` (one row per entry) in ascending order and their rows.

    `stable`: equal keys keep their rows in ascending order (as an index's files need); a search
    does not care, and an unstable sort is faster.
    """
    by_band = np.ascontiguousarray(keys.T)
    if not len(keys):
        rows = np.zeros(by_band.shape, dtype=np.int64)
    else:
        rows = stable_order(by_band) if stable else np.argsort(by_band, axis=1)
    return np.take_along_axis(by_band, rows, axis=1), rows


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


@dataclass(frozen=True)
class RunEntries:
    """Survivors of the run being deduplicated, in the run's order, as columns."""

    doc_ids: list[str]
    positions: list[int]
    """Each sentence's number in its document."""
    seqs: list[int]
    """Each sentence's seq in the run (its order among the run's sentences)."""
    texts: list[str]
    """Normal forms."""

    def __len__(self) -> int:
        return len(self.texts)

    def published(self, run: str) -> list[Published]:
        """Return the entries as `Published` sentences of `run`."""
        return [
            Published(f"{doc}:{position}", doc, run, text, (CURRENT_RUN, seq))
            for doc, position, seq, text in zip(self.doc_ids, self.positions, self.seqs, self.texts, strict=True)
        ]


@dataclass(frozen=True)
class RunCandidates:
    """This run's survivors sharing an LSH band with some queries: one row per (query, survivor), unconfirmed."""

    queries: npt.NDArray[np.int64]
    """The query each row is a candidate of, ascending."""
    rows: npt.NDArray[np.int64]
    """The survivor: its row in the run's order (what `RunSentences.published` takes)."""
    seqs: npt.NDArray[np.int64]
    texts: list[str]
    """The survivors' normal forms."""

    @classmethod
    def empty(cls) -> RunCandidates:
        nothing = np.zeros(0, dtype=np.int64)
        return cls(nothing, nothing, nothing, [])


class RunSentences(Protocol):
    """This run's surviving sentences of the batches matched so far, searchable by band keys."""

    def add(self, entries: RunEntries, keys: BandKeys) -> None:
        """Add survivors (in the run's order) and their band keys."""
        ...

    def candidates(self, keys: BandKeys) -> RunCandidates:
        """Return the survivors sharing an LSH band with each row of band keys (unconfirmed)."""
        ...

    def published(self, rows: Sequence[int]) -> list[Published]:
        """Return the survivors of some rows (as `RunCandidates` names them) in full."""
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

    def record(self) -> dict[str, Any]:
        """Return what `dataclasses.asdict` gives for the verdict, without its deep copies.

        >>> from dataclasses import asdict
        >>> v = DocumentVerdict("a", "A", (SentenceDuplicate(0, "x", "exact_duplicate", 1.0, "B:0", "B"),))
        >>> v.record() == asdict(v)
        True
        """
        return {
            "source": self.source,
            "doc_id": self.doc_id,
            "sentences": tuple(dict(vars(duplicate)) for duplicate in self.sentences),
            "duplicate_of_doc": self.duplicate_of_doc,
            "reason": self.reason,
            "duplicate_of_run": self.duplicate_of_run,
        }


def same_id_verdict(doc: DocumentInput, first: str, run: str) -> DocumentVerdict:
    """Return the verdict on a document whose id a document kept earlier in the run (`first`, its source) has."""
    reason = f"same document id as {first}, kept earlier in this run (same URL, or same text where no URL)"
    return DocumentVerdict(doc.source, doc.doc_id, (), doc.doc_id, reason, run)


def repeated_id_verdicts(documents: Iterable[DocumentInput], run: str) -> Iterator[DocumentVerdict]:
    """Yield the verdicts on documents whose id an earlier one has, when no sentence is matched (dedup off).

    >>> docs = [DocumentInput("a.txt", "A", ()), DocumentInput("b.txt", "B", ()), DocumentInput("c.txt", "A", ())]
    >>> [(v.source, v.duplicate_of_doc) for v in repeated_id_verdicts(docs, "default")]
    [('c.txt', 'A')]
    """
    first: dict[str, str] = {}
    for doc in documents:
        if doc.doc_id in first:
            yield same_id_verdict(doc, first[doc.doc_id], run)
        else:
            first[doc.doc_id] = doc.source


class _RunSentences:
    """This run's surviving sentences from earlier batches: sorted band keys in a few tiers, in memory.

    Tiers are merged when the newer one grows to half the older one's size, so there are at most
    about log2(survivors / batch) tiers to search.
    """

    def __init__(self, run: str = "") -> None:
        self.run = run
        self.entries = RunEntries([], [], [], [])
        self._tiers: list[tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64], BandKeys, npt.NDArray[np.uint8]]] = []

    def add(self, entries: RunEntries, keys: BandKeys) -> None:
        if not len(entries):
            return
        first = len(self.entries)
        for mine, theirs in zip(vars(self.entries).values(), vars(entries).values(), strict=True):
            mine.extend(theirs)
        sorted_keys, rows = sort_bands(keys, stable=False)
        self._tiers.append((sorted_keys, rows + first, keys, band_filter(sorted_keys)))
        while len(self._tiers) >= 2 and self._tiers[-2][2].shape[0] <= 2 * self._tiers[-1][2].shape[0]:
            newer, older = self._tiers.pop(), self._tiers.pop()
            both = np.concatenate([older[2], newer[2]])
            first_row = int(older[1].min()) if older[1].size else 0
            sorted_keys, rows = sort_bands(both, stable=False)
            self._tiers.append((sorted_keys, rows + first_row, both, band_filter(sorted_keys)))

    def candidates(self, keys: BandKeys) -> RunCandidates:
        found = [match_band_keys(tier[0], tier[1], keys, tier[3]) for tier in self._tiers]
        if not found:
            return RunCandidates.empty()
        queries, rows = np.concatenate([q for q, _ in found]), np.concatenate([r for _, r in found])
        order = np.lexsort((rows, queries))
        queries, rows = queries[order], rows[order]
        seqs = np.array(self.entries.seqs, dtype=np.int64)[rows]
        return RunCandidates(queries, rows, seqs, [self.entries.texts[row] for row in rows.tolist()])

    def published(self, rows: Sequence[int]) -> list[Published]:
        e = self.entries
        chosen = RunEntries(
            [e.doc_ids[row] for row in rows],
            [e.positions[row] for row in rows],
            [e.seqs[row] for row in rows],
            [e.texts[row] for row in rows],
        )
        return chosen.published(self.run)


@dataclass(frozen=True)
class DedupProgress:
    """What a `Deduplicator` carries from one batch to the next besides the run's sentences.

    `seq` is the number of sentences judged survivors so far (each takes the next), and
    `kept_docs` maps the id of each document kept so far to its source, in the order kept.
    """

    seq: int
    kept_docs: Mapping[str, str]


class Deduplicator:
    """Find duplicates in one run's documents against earlier runs and against each other.

    `run` names this run in the removal log; `earlier` gives the sentences earlier runs
    published (None: this run only). Documents are matched in batches of whole documents
    (`SIGNING_BATCH` sentences): word counts, normal forms, signatures, candidates and the
    exact similarity of every candidate pair that can matter in bulk, then the order rule one
    document at a time, looking only at the sentences that have some candidate.

    Within a batch, the sentences with one normal form are matched through the first of them:
    its candidates are theirs; among this batch's sentences, only such firsts are candidates
    of others (a later sentence with the same normal form is found as an identical one).
    """

    def __init__(
        self,
        cfg: DedupConfig,
        min_document_words: int = 0,
        earlier: PublishedSentences | None = None,
        run: str = "",
        run_sentences: RunSentences | None = None,
        resumed: DedupProgress | None = None,
    ) -> None:
        self.cfg = cfg
        self.hasher = MinHasher(cfg)
        self.min_document_words = min_document_words
        self.earlier = earlier
        self.run = run
        self._run_sentences: RunSentences = run_sentences if run_sentences is not None else _RunSentences(run)
        # id -> source of each document kept in this run
        self._kept_docs: dict[str, str] = dict(resumed.kept_docs) if resumed is not None else {}
        self._seq = resumed.seq if resumed is not None else 0

    def progress(self) -> DedupProgress:
        """Return what the next documents are judged against besides the run's sentences (see `DedupProgress`)."""
        return DedupProgress(self._seq, self._kept_docs)

    def verdicts(self, documents: Iterable[DocumentInput]) -> Iterator[DocumentVerdict]:
        """Yield one verdict per document, in input order."""
        for verdicts in self.verdict_batches(documents):
            yield from verdicts

    def verdict_batches(self, documents: Iterable[DocumentInput]) -> Iterator[list[DocumentVerdict]]:
        """Yield the verdicts of the documents a batch at a time, each list once its survivors are added.

        Between two lists the state is whole: the run's sentences and `progress()` reflect
        exactly the documents judged so far, a point from which the rest can be judged later.
        """
        batch: list[DocumentInput] = []
        size = 0
        for doc in documents:
            batch.append(doc)
            size += len(doc.sentences)
            if size >= SIGNING_BATCH:
                yield list(self._batch(batch))
                batch, size = [], 0
        if batch:
            yield list(self._batch(batch))

    def _batch(self, docs: list[DocumentInput]) -> Iterator[DocumentVerdict]:
        cfg, run = self.cfg, self.run
        batch = _Batch(docs, cfg, self._kept_docs)
        matches = self._matches(batch)
        # The order rule, a document at a time. A dedupable sentence of a live document is a
        # survivor unless it has a candidate (`matches.contested`); those are judged here.
        survivor = batch.live & ~matches.contested
        same_norm = np.full(len(batch.reps), -1, dtype=np.int64)  # the batch's surviving sentence of each normal form
        same_norm[batch.row[survivor]] = np.flatnonzero(survivor)  # only firsts are uncontested
        judged = np.zeros(len(batch.norms), dtype=bool)  # survivors when judged (each takes a seq, withdrawn or not)
        threshold, fraction = cfg.threshold, cfg.document_duplicate_fraction
        contested = np.flatnonzero(matches.contested).tolist()
        bounds = np.searchsorted(batch.doc_of, np.arange(len(docs) + 1)).tolist()
        upto = np.searchsorted(contested, bounds).tolist()
        rows, firsts, options = batch.row.tolist(), batch.first.tolist(), matches.options
        earlier, exact_earlier = matches.earlier, matches.exact
        for d, doc in enumerate(docs):
            lo, hi = bounds[d], bounds[d + 1]
            if doc.doc_id in self._kept_docs:
                if batch.live_doc[d]:  # the same document kept earlier in this batch: nothing of it is judged
                    self._withdraw(lo, hi, survivor, same_norm, batch.row)
                yield same_id_verdict(doc, self._kept_docs[doc.doc_id], run)
                continue
            duplicates: list[SentenceDuplicate] = []
            duplicate_words = 0
            for n in contested[upto[d] : upto[d + 1]]:
                r = rows[n]
                found = earlier[r]
                of: int | Published | None = None
                if found is not None and exact_earlier[r]:
                    score, of = found
                elif same_norm[r] >= 0:
                    score, of = 1.0, int(same_norm[r])
                else:
                    score, of = found if found is not None else (threshold, None)
                    after = found is None  # a batch sentence must be more similar than an earlier one
                    for i, similarity in options.get(firsts[n], ()):
                        if i >= n:
                            break
                        if survivor[i] and (similarity > score or (after and similarity == score)):
                            score, of, after = similarity, i, False
                if of is None:
                    survivor[n] = True
                    same_norm[r] = n
                    continue
                if isinstance(of, Published):
                    rule = "exact_duplicate" if of.text == batch.norms[n] else "near_duplicate"
                    key, of_doc, of_run = of.key, of.doc_id, of.run
                else:
                    rule = "exact_duplicate" if firsts[of] == firsts[n] else "near_duplicate"
                    of_doc = docs[batch.doc_of[of]].doc_id
                    key, of_run = f"{of_doc}:{batch.position[of]}", run
                duplicates.append(
                    SentenceDuplicate(
                        int(batch.position[n]), batch.texts[n].strip(), rule, round(score, 6), key, of_doc, of_run
                    )
                )
                duplicate_words += int(batch.words[n])
            verdict = _judge_document(doc, duplicates, int(batch.doc_chars[d]), fraction, run)
            judged[lo:hi] = survivor[lo:hi]
            if verdict.duplicate_of_doc is not None or batch.doc_words[d] - duplicate_words < self.min_document_words:
                self._withdraw(lo, hi, survivor, same_norm, batch.row)  # nothing later may point into it
            else:
                self._kept_docs[doc.doc_id] = doc.source
            yield verdict
        seqs = self._seq + np.cumsum(judged) - 1
        self._seq += int(judged.sum())
        kept = np.flatnonzero(survivor)
        if len(kept):
            entries = RunEntries(
                [docs[d].doc_id for d in batch.doc_of[kept].tolist()],
                batch.position[kept].tolist(),
                seqs[kept].tolist(),
                [batch.norms[n] for n in kept.tolist()],
            )
            self._run_sentences.add(entries, batch.keys[batch.row[kept]])

    @staticmethod
    def _withdraw(
        lo: int, hi: int, survivor: npt.NDArray[np.bool_], same_norm: npt.NDArray[np.int64], row: npt.NDArray[np.int64]
    ) -> None:
        """Take back the surviving sentences lo..hi-1 (one document's)."""
        gone = lo + np.flatnonzero(survivor[lo:hi])
        survivor[gone] = False
        mine = same_norm[row[gone]] == gone
        same_norm[row[gone[mine]]] = -1

    def _matches(self, batch: _Batch) -> _Matches:
        """Return the batch's confirmed candidates: the best earlier one of each normal form, and the batch's own."""
        cfg, reps, norms = self.cfg, batch.reps, batch.norms
        matches = _Matches(batch)
        if not len(reps):
            return matches
        signatures = self.hasher.signatures([norms[k] for k in reps.tolist()], normalised=True)
        keys = batch.keys = self.hasher.band_keys(signatures)
        # Earlier candidates: published by earlier runs, and this run's survivors of earlier batches.
        queries: list[npt.NDArray[np.int64]] = []
        texts: list[str] = []
        orders: list[npt.NDArray[np.int64]] = []
        sources: list[Published | int] = []
        if self.earlier is not None:
            found = self.earlier.candidates(signatures, keys)
            published = [p for each in found for p in each]
            queries.append(np.repeat(np.arange(len(found), dtype=np.int64), [len(each) for each in found]))
            texts += [p.text for p in published]
            orders.append(np.array([p.order for p in published], dtype=np.int64).reshape(-1, 2))
            sources += published
        mine = self._run_sentences.candidates(keys)
        queries.append(mine.queries)
        texts += mine.texts
        orders.append(np.stack([np.full(len(mine.rows), CURRENT_RUN, dtype=np.int64), mine.seqs], axis=1))
        sources += mine.rows.tolist()
        query, order = np.concatenate(queries), np.concatenate(orders)
        rep_norms = [norms[k] for k in reps.tolist()]
        exact = np.fromiter((t == rep_norms[q] for t, q in zip(texts, query.tolist(), strict=True)), bool, len(texts))
        has_exact = np.zeros(len(reps), dtype=bool)
        has_exact[query[exact]] = True
        # Similarities: of each candidate of a normal form with no identical candidate, and of the
        # pairs of this batch's normal forms that share a band, where one may be the other's option.
        score = np.where(exact, 1.0, -1.0)
        scored = np.flatnonzero(~has_exact[query])
        first = reps
        last = np.full(len(reps), -1, dtype=np.int64)  # each normal form's last live sentence
        np.maximum.at(last, batch.row[batch.live], np.flatnonzero(batch.live))
        left, right = band_pairs(keys)
        open_left = batch.live[first[left]] & ~has_exact[left] & ~has_exact[right]  # as it can be known yet
        open_right = batch.live[first[right]] & ~has_exact[right] & ~has_exact[left] & (last[left] > first[right])
        left, right = left[open_left | open_right], right[open_left | open_right]
        number: dict[str, int] = {}  # the texts to shingle: normal forms compared, and candidates
        shingled = np.full(len(reps), -1, dtype=np.int64)
        for r in distinct(np.concatenate((query[scored], left, right))).tolist():
            shingled[r] = number.setdefault(rep_norms[r], len(number))
        other = np.fromiter((number.setdefault(texts[c], len(number)) for c in scored.tolist()), np.int64, len(scored))
        sets = ShingleSets(self.hasher, list(number))
        score[scored] = sets.similarities(shingled[query[scored]], other, cfg.threshold)
        confirmed = np.flatnonzero(score >= cfg.threshold)
        # The best earlier candidate of each normal form: most similar, identical first, then earliest.
        best = confirmed[
            np.lexsort(
                (order[confirmed, 1], order[confirmed, 0], ~exact[confirmed], -score[confirmed], query[confirmed])
            )
        ]
        best = best[np.concatenate(([True], query[best][1:] != query[best][:-1]))] if len(best) else best
        store_rows = [sources[c] for c in best.tolist() if not isinstance(sources[c], Published)]
        from_store = iter(self._run_sentences.published(store_rows)) if store_rows else iter(())
        for c in best.tolist():
            source = sources[c]
            entry = source if isinstance(source, Published) else next(from_store)
            matches.earlier[int(query[c])] = (float(score[c]), entry)
            matches.exact[int(query[c])] = bool(exact[c])
        duplicate = np.array([e is not None for e in matches.earlier], dtype=bool)
        # The batch's own pairs: a first is another's option if it can survive (its document live,
        # no earlier candidate confirmed) and the other's sentences are not settled by an identical one.
        can_survive = batch.live[first] & ~duplicate
        settled = np.array(matches.exact, dtype=bool)
        forward = can_survive[left] & ~settled[right]
        backward = can_survive[right] & ~settled[left] & (last[left] > first[right])
        wanted = np.flatnonzero(forward | backward)
        if len(wanted):
            similar = sets.similarities(shingled[left[wanted]], shingled[right[wanted]], cfg.threshold)
            keep = similar >= cfg.threshold
            pairs_left, pairs_right, similar = left[wanted][keep], right[wanted][keep], similar[keep]
            forward, backward = forward[wanted][keep], backward[wanted][keep]
            # options[first] = [(first of another normal form, similarity), ...] in ascending order
            target = np.concatenate([first[pairs_right][forward], first[pairs_left][backward]])
            option = np.concatenate([first[pairs_left][forward], first[pairs_right][backward]])
            value = np.concatenate([similar[forward], similar[backward]])
            ordered = np.lexsort((option, target))
            for t, o, v in zip(
                target[ordered].tolist(), option[ordered].tolist(), value[ordered].tolist(), strict=True
            ):
                matches.options.setdefault(t, []).append((o, v))
                if o < matches.earliest_option.get(t, len(batch.norms)):
                    matches.earliest_option[t] = o
        n = np.arange(len(batch.norms))
        earliest = np.full(len(batch.norms), len(batch.norms), dtype=np.int64)
        for t, o in matches.earliest_option.items():
            earliest[t] = o
        matches.contested = batch.live & (
            duplicate[np.maximum(batch.row, 0)] | (batch.first != n) | (earliest[batch.first] < n)
        )
        return matches


class _Batch:
    """One batch of documents as arrays: its dedupable sentences, their normal forms and firsts."""

    keys: BandKeys
    """Band keys of each normal form signed (`reps`), set when signed."""

    def __init__(self, docs: list[DocumentInput], cfg: DedupConfig, kept_docs: Container[str]) -> None:
        all_texts = [text for doc in docs for text in doc.sentences]
        sizes = np.fromiter((len(doc.sentences) for doc in docs), np.int64, len(docs))
        doc_start = np.cumsum(sizes) - sizes
        words = word_counts(all_texts)
        dedupable = np.flatnonzero(words >= cfg.min_words)
        self.doc_of = np.repeat(np.arange(len(docs)), sizes)[dedupable]
        """Each dedupable sentence's document (the batch's dedupable sentences are numbered n = 0, 1, ...)."""
        self.position = dedupable - doc_start[self.doc_of]
        self.texts = [all_texts[i] for i in dedupable.tolist()]
        self.words = words[dedupable]
        self.doc_words = _sums(words, sizes)
        """Words of each whole document."""
        chars = np.fromiter(map(len, self.texts), np.int64, len(self.texts))
        self.doc_chars = _sums(chars, np.bincount(self.doc_of, minlength=len(docs)))
        """Characters of each document's dedupable sentences."""
        self.norms = normalise_sentences(self.texts)
        first_of: dict[str, int] = {}
        self.first = np.fromiter(
            (first_of.setdefault(norm, n) for n, norm in enumerate(self.norms)), np.int64, len(self.norms)
        )
        """The first sentence of the batch with each sentence's normal form."""
        self.live_doc = np.fromiter((doc.doc_id not in kept_docs for doc in docs), bool, len(docs))
        """Documents not kept before the batch (a document kept already is not judged again)."""
        self.live = self.live_doc[self.doc_of]
        signed = np.zeros(len(self.norms), dtype=bool)
        signed[self.first[self.live]] = True
        self.reps = np.flatnonzero(signed)
        """The firsts of the normal forms that some live sentence has: these are signed."""
        row_of = np.full(len(self.norms), -1, dtype=np.int64)
        row_of[self.reps] = np.arange(len(self.reps))
        self.row = row_of[self.first]
        """Each sentence's normal form's row among `reps` (-1: no live sentence has it)."""
        self.keys = np.zeros((0, cfg.lsh_bands), dtype=np.uint64)


class _Matches:
    """What the order rule needs of a batch's candidates, per normal form signed (row of `_Batch.reps`)."""

    def __init__(self, batch: _Batch) -> None:
        self.earlier: list[tuple[float, Published] | None] = [None] * len(batch.reps)
        """The best confirmed candidate published before the batch, and its similarity."""
        self.exact: list[bool] = [False] * len(batch.reps)
        """Whether that candidate is identical (then nothing else can be better)."""
        self.options: dict[int, list[tuple[int, float]]] = {}
        """Per first: the firsts of other normal forms of the batch at or above the threshold, ascending."""
        self.earliest_option: dict[int, int] = {}
        self.contested = np.zeros(len(batch.norms), dtype=bool)
        """Live sentences with some candidate: an earlier one, an identical sentence or an option before them."""


def _sums(values: npt.NDArray[np.int64], sizes: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Return the sums of consecutive runs of `values`, of the given sizes (0 for an empty run)."""
    before = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(values, out=before[1:])
    ends = np.cumsum(sizes)
    result: npt.NDArray[np.int64] = before[ends] - before[ends - sizes]
    return result


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
