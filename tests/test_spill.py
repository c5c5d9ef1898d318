"""Counts that spill to disk answer as a `collections.Counter` holding everything would."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.spill import SpillCounter, SpillStore

# Keys that sort differently by UTF-16 units, by bytes of other encodings or by locale: code-point order is the rule.
_PIECES = ["a", "B", "b", " ", "\x00", "é", "e\u0301", "\uffff", "😀", "𝔸", "ß"]
_KEYS = st.lists(st.sampled_from(_PIECES), max_size=3).map("".join)
_BUDGETS = st.sampled_from([1, 2, 3, 7, 1_000_000])


def _ranked(sums: dict[str, tuple[int, int]], limit: int) -> list[tuple[str, int, int]]:
    """Return the reference order: sums descending, then the key (Python's string order: code points)."""
    return sorted(((key, a, b) for key, (a, b) in sums.items()), key=lambda row: (-row[1], -row[2], row[0]))[:limit]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_KEYS, st.integers(0, 3), st.integers(0, 3), st.text(max_size=3)), max_size=60),
    _BUDGETS,
    st.integers(0, 70),
)
def test_spilled_counts_rank_as_a_counter_does(adds: list[tuple[str, int, int, str]], budget: int, limit: int) -> None:
    """Top-N with ties (equal sums: the smaller key first), sums, first-seen texts and sizes, whatever the budget."""
    first: Counter[str] = Counter()
    second: Counter[str] = Counter()
    example: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch, SpillStore(Path(scratch)) as store:
        counts = SpillCounter(store, "lines", sums=2, firsts=1, budget=budget)
        for key, a, b, text in adds:
            counts.add(key, (a, b), (text,))
            first[key] += a
            second[key] += b
            example.setdefault(key, text)
        expected = {key: (first[key], second[key]) for key in example}
        assert counts.spilled == (len(example) >= budget)
        assert counts.top(limit) == [(key, a, b, example[key]) for key, a, b in _ranked(expected, limit)]
        assert list(counts.items()) == [(key, *expected[key], example[key]) for key in sorted(expected)]
        assert len(counts) == len(expected)
        for key in [*example, "absent"]:
            assert counts.get(key) == ([*expected[key], example[key]] if key in expected else None)
        # Counting goes on after answers were read, and the answers follow.
        counts.add("later", (10_000, 0), ("x",))
        assert counts.top(1) == [("later", 10_000, 0, "x")]  # no key of `_PIECES` makes "later"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_KEYS, _KEYS), max_size=40), _BUDGETS)
def test_spilled_pairs_are_a_set(pairs: list[tuple[str, str]], budget: int) -> None:
    """Pairs of keys with no sums: a set, asked for the second keys under first ones."""
    with tempfile.TemporaryDirectory() as scratch, SpillStore(Path(scratch)) as store:
        counts = SpillCounter(store, "pairs", key_columns=2, sums=0, budget=budget)
        for pair in pairs:
            counts.add(pair)
        firsts = sorted({first for first, _ in pairs} | {"absent"})
        assert counts.seconds(firsts) == {f: sorted({s for k, s in pairs if k == f}) for f in firsts}
        assert counts.count_seconds(firsts) == {f: len({s for k, s in pairs if k == f}) for f in firsts}
        assert len(counts) == len(set(pairs)) and all(pair in counts for pair in pairs)
        assert ("absent", "absent") not in counts


def test_the_store_removes_its_file(tmp_path: Path) -> None:
    with SpillStore(tmp_path / "counts") as store:
        counts = SpillCounter(store, "lines", budget=1)
        counts.add("a", (1,))
        assert counts.spilled and [p.name for p in (tmp_path / "counts").iterdir()] == ["counts.sqlite"]
    assert not list((tmp_path / "counts").iterdir())
