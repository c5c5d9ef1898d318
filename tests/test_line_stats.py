"""The per-site line statistics table: counts, merge laws, pruning, its file and its corrupt files."""

from __future__ import annotations

import itertools
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import line_stats
from pipeline.line_stats import (
    FORMAT_NAME,
    LineStatsError,
    LineStatsParams,
    SiteLineCounts,
    SiteLineStats,
    site_of,
    stable_hash,
)

Document = tuple[str, str, list[str]]

PARAMS = LineStatsParams(slots=3)

documents = st.lists(
    st.tuples(
        st.sampled_from(["a.com", "b.org", ""]),
        st.sampled_from([f"doc{i}" for i in range(8)]),
        st.lists(st.sampled_from(["nav", "bio", "subscribe", "story 1", "story 2"]), max_size=6),
    ),
    max_size=12,
)


def build(docs: Iterable[Document], generation: int = 1, params: LineStatsParams = PARAMS) -> SiteLineStats:
    return SiteLineStats.from_documents(docs, params, generation=generation)


def assert_same(a: SiteLineStats, b: SiteLineStats) -> None:
    """Fail unless two tables hold the same entries, sketches, ages and generation."""
    assert a.params == b.params
    assert a.generation == b.generation
    for name in ("site", "line", "docs", "last_seen"):
        left, right = getattr(a, name), getattr(b, name)
        assert left.dtype == right.dtype, name
        np.testing.assert_array_equal(left, right, err_msg=name)


def true_counts(docs: Iterable[Document]) -> dict[tuple[str, str], int]:
    """Count distinct document keys per (site, line) the slow, obvious way."""
    seen: dict[tuple[str, str], set[str]] = {}
    for site, key, lines in docs:
        for line in lines:
            seen.setdefault((site, line), set()).add(key)
    return {entry: len(keys) for entry, keys in seen.items()}


# --- counting -----------------------------------------------------------------------------


def test_counts_are_kept_per_site() -> None:
    stats = build(
        [
            ("a.com", "1", ["Follow us", "Story"]),
            ("a.com", "2", ["Follow us"]),
            ("b.org", "3", ["Follow us"]),
        ]
    )
    assert stats.document_counts("a.com", ["Follow us", "Story"]).tolist() == [2, 1]
    assert stats.document_counts("b.org", ["Follow us", "Story"]).tolist() == [1, 0]
    assert stats.document_counts("c.net", ["Follow us"]).tolist() == [0]
    assert len(stats) == 3


def test_a_line_repeated_inside_one_document_counts_once() -> None:
    stats = build([("a.com", "1", ["Share", "Share", "Share"]), ("a.com", "2", ["Share"])])
    assert stats.document_counts("a.com", ["Share"]).tolist() == [2]


def test_two_documents_with_one_key_are_one_document() -> None:
    stats = build([("a.com", "1", ["Share"]), ("a.com", "1", ["Share", "Other"])])
    assert stats.document_counts("a.com", ["Share", "Other"]).tolist() == [1, 1]


def test_counts_saturate_at_slots() -> None:
    many = [("a.com", f"doc{i}", ["Menu"]) for i in range(10)]
    stats = build(many[:5]).merge(build(many[5:], generation=2))
    assert stats.document_counts("a.com", ["Menu"]).tolist() == [PARAMS.slots]
    assert np.count_nonzero(stats.docs) == PARAMS.slots


def test_documents_without_lines_add_nothing() -> None:
    stats = build([("a.com", "1", []), ("b.org", "2", [])], generation=4)
    assert len(stats) == 0
    assert stats.generation == 4
    assert stats.document_counts("a.com", []).tolist() == []


@given(documents)
def test_counts_match_a_direct_count(docs: list[Document]) -> None:
    stats = build(docs)
    expected = true_counts(docs)
    assert len(stats) == len(expected)
    for (site, line), count in expected.items():
        assert stats.document_counts(site, [line]).tolist() == [min(count, PARAMS.slots)]


def test_tables_cannot_be_edited_in_place() -> None:
    stats = build([("a.com", "1", ["Menu"])])
    with pytest.raises(ValueError, match="read-only"):
        stats.docs[0, 0] = 5


# --- merging: idempotent, commutative, associative ----------------------------------------


def test_adding_the_same_documents_again_changes_nothing() -> None:
    docs = [("a.com", "1", ["Menu", "Story"]), ("a.com", "2", ["Menu"]), ("b.org", "3", ["Menu"])]
    stats = build(docs)
    assert_same(stats.merge(stats), stats)
    assert_same(stats.merge(build(list(reversed(docs)))), stats)


def test_a_rerun_in_a_later_generation_changes_no_count_only_last_seen() -> None:
    docs = [("a.com", "1", ["Menu", "Story"]), ("a.com", "2", ["Menu"])]
    first = build(docs, generation=1)
    again = first.merge(build(docs, generation=2))
    np.testing.assert_array_equal(again.docs, first.docs)
    assert again.last_seen.tolist() == [2, 2]
    assert again.generation == 2


@given(documents, documents)
def test_merging_batches_equals_counting_them_together(a: list[Document], b: list[Document]) -> None:
    assert_same(build(a).merge(build(b)), build(a + b))


@given(documents, documents, documents)
def test_merge_is_commutative_associative_and_idempotent(
    a: list[Document], b: list[Document], c: list[Document]
) -> None:
    x, y, z = build(a, generation=1), build(b, generation=2), build(c, generation=3)
    assert_same(x.merge(y), y.merge(x))
    assert_same(x.merge(y).merge(z), x.merge(y.merge(z)))
    assert_same(x.merge(y).merge(y), x.merge(y))


@settings(max_examples=60, deadline=None)
@given(documents, documents, st.lists(st.integers(min_value=0, max_value=12), max_size=4))
def test_a_run_counted_by_shard_merges_into_the_stored_table_as_counted_at_once(
    earlier: list[Document], run: list[Document], cuts: list[int]
) -> None:
    # What `CountShardLines` and `CountSiteLines` do: each shard counted apart (at generation 0, a
    # chunk of documents a row group of its Parquet file), then merged into the stored table with the run's generation,
    # group by group and pruned; small `max_entries` so that pruning decides.
    params = LineStatsParams(slots=3, max_entries=5)
    stored = build(earlier, generation=1, params=params).pruned(params.max_entries)
    bounds = [0, *sorted(min(cut, len(run)) for cut in cuts), len(run)]
    shards = [run[lo:hi] for lo, hi in itertools.pairwise(bounds)]
    expected = stored.merge(build(run, generation=2, params=params)).pruned(params.max_entries)
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        patch.setattr(line_stats, "_CHUNK_DOCUMENTS", 2)  # several row groups a shard
        tables = []
        for n, shard in enumerate(shards):
            path = Path(folder) / f"shard-{n}.parquet"
            SiteLineStats.save_chunks(path, SiteLineStats.chunks_of_documents(shard, params, 0), params)
            chunks = list(SiteLineStats.load_chunks(path, params))
            assert len(chunks) == (len(shard) + 1) // 2
            tables.extend(chunks)
        assert_same(stored.merged_with_tables(tables, 2, Path(folder) / "scratch"), expected)


def test_a_one_slot_table_merges_through_its_scratch_files(tmp_path: Path) -> None:
    params = LineStatsParams(slots=1, max_entries=10)
    run = [("s", "d1", ["nav", "story"]), ("s", "d2", ["nav"])]
    merged = SiteLineStats.empty(params).merged_with_tables([build(run, 0, params)], 1, tmp_path / "scratch")
    assert_same(merged, build(run, 1, params))


def test_a_missing_or_broken_shard_count_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(LineStatsError, match=re.escape(str(tmp_path / "absent.parquet"))):
        list(SiteLineStats.load_chunks(tmp_path / "absent.parquet", PARAMS))
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(LineStatsError, match=r"broken\.parquet: not a readable Parquet file"):
        list(SiteLineStats.load_chunks(tmp_path / "broken.parquet", PARAMS))


def test_tables_with_different_parameters_do_not_merge() -> None:
    with pytest.raises(ValueError, match="different parameters"):
        build([("a", "1", ["x"])]).merge(build([("a", "1", ["x"])], params=LineStatsParams(slots=4)))


# --- pruning -------------------------------------------------------------------------------


def test_pruning_keeps_the_most_counted_then_the_newest_entries() -> None:
    old = build([("a.com", "1", ["common", "old rare"]), ("a.com", "2", ["common"])], generation=1)
    new = build([("a.com", "3", ["new rare"])], generation=2)
    stats = old.merge(new)
    assert stats.pruned(3) is stats
    kept = stats.pruned(2)
    assert kept.document_counts("a.com", ["common", "new rare", "old rare"]).tolist() == [2, 1, 0]
    assert kept.generation == 2
    assert len(stats.pruned(0)) == 0


@settings(max_examples=50)
@given(documents, documents, documents, st.integers(min_value=0, max_value=8))
def test_pruning_is_the_same_whatever_order_the_batches_were_merged_in(
    a: list[Document], b: list[Document], c: list[Document], limit: int
) -> None:
    batches = [build(a, generation=1), build(b, generation=2), build(c, generation=3)]
    results = []
    for x, y, z in itertools.permutations(batches):
        results.append(x.merge(y).merge(z).pruned(limit))
        results.append(x.merge(y.merge(z)).pruned(limit))
    for result in results[1:]:
        assert_same(result, results[0])

    full, kept = batches[0].merge(batches[1]).merge(batches[2]), results[0]
    assert len(kept) == min(limit, len(full))
    keys = list(zip(kept.site.tolist(), kept.line.tolist(), strict=True))
    assert keys == sorted(set(keys))
    # Every dropped entry ranks no higher (count, then last_seen) than every kept one.
    kept_keys = set(keys)
    rank = {
        (s, li): (int(np.count_nonzero(d)), int(seen))
        for s, li, d, seen in zip(full.site.tolist(), full.line.tolist(), full.docs, full.last_seen, strict=True)
    }
    dropped = [rank[key] for key in rank if key not in kept_keys]
    if dropped and keys:
        assert max(dropped) <= min(rank[key] for key in keys)


# --- the file ------------------------------------------------------------------------------


def sample_stats() -> SiteLineStats:
    first = build([("a.com", "1", ["Menu", "Story"]), ("a.com", "2", ["Menu"])], generation=1)
    return first.merge(build([("b.org", "3", ["Menu", "Bio"]), ("a.com", "4", ["Menu"])], generation=2))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    stats = sample_stats()
    path = tmp_path / "state" / "line_stats.parquet"
    stats.save(path)
    assert_same(SiteLineStats.load(path, PARAMS), stats)
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]  # no temporary left beside it
    metadata = pq.read_schema(path).metadata
    assert metadata[b"format"] == FORMAT_NAME.encode()
    assert metadata[b"slots"] == b"3"
    assert metadata[b"generation"] == b"2"


def test_an_empty_table_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    SiteLineStats.empty(PARAMS).save(path)
    assert_same(SiteLineStats.load(path, PARAMS), SiteLineStats.empty(PARAMS))


def test_equal_tables_give_identical_bytes(tmp_path: Path) -> None:
    sample_stats().save(tmp_path / "one.parquet")
    sample_stats().save(tmp_path / "two.parquet")
    sample_stats().save(tmp_path / "two.parquet")  # overwriting in place
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "two.parquet").read_bytes()


def test_a_missing_file_is_an_empty_table(tmp_path: Path) -> None:
    stats = SiteLineStats.load(tmp_path / "absent.parquet", PARAMS)
    assert len(stats) == 0
    assert stats.generation == 0


def test_a_file_of_random_bytes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "line_stats.parquet"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(LineStatsError, match=re.escape(str(path))):
        SiteLineStats.load(path, PARAMS)


def test_a_parquet_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "line_stats.parquet"
    pq.write_table(pa.table({"id": ["x"], "text": ["y"]}), path)
    with pytest.raises(LineStatsError, match=re.escape(str(path)) + ".*format"):
        SiteLineStats.load(path, PARAMS)


def _write_with_our_metadata(path: Path, table: pa.Table, generation: int = 1) -> None:
    metadata = {"format": FORMAT_NAME, "format_version": "1", "slots": str(PARAMS.slots), "generation": str(generation)}
    pq.write_table(table.replace_schema_metadata(metadata), path)


def test_our_metadata_on_other_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "line_stats.parquet"
    _write_with_our_metadata(path, pa.table({"site": pa.array([1], pa.uint64()), "text": ["y"]}))
    with pytest.raises(LineStatsError, match=re.escape(str(path)) + ".*columns"):
        SiteLineStats.load(path, PARAMS)


def test_unsorted_or_duplicate_keys_are_refused(tmp_path: Path) -> None:
    docs = pa.FixedSizeListArray.from_arrays(pa.array([5, 0, 0, 6, 0, 0], pa.uint64()), PARAMS.slots)
    for site, line in (([2, 1], [1, 1]), ([1, 1], [7, 7])):
        path = tmp_path / f"bad-{site}-{line}.parquet"
        table = pa.table(
            {
                "site": pa.array(site, pa.uint64()),
                "line": pa.array(line, pa.uint64()),
                "docs": docs,
                "last_seen": pa.array([1, 1], pa.int64()),
            }
        )
        _write_with_our_metadata(path, table)
        with pytest.raises(LineStatsError, match=re.escape(str(path)) + ".*sorted"):
            SiteLineStats.load(path, PARAMS)


def test_another_version_of_the_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "line_stats.parquet"
    sample_stats().save(path)
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"format_version": b"2"}), path)
    with pytest.raises(LineStatsError, match=re.escape(str(path)) + ".*version"):
        SiteLineStats.load(path, PARAMS)


def test_a_file_with_other_slots_is_refused_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "line_stats.parquet"
    sample_stats().save(path)
    with pytest.raises(LineStatsError, match=rf"{re.escape(str(path))}.*slots=3.*slots=5"):
        SiteLineStats.load(path, LineStatsParams(slots=5))


# --- the counts lookup that stripping reads ------------------------------------------------


@settings(max_examples=50)
@given(documents, st.lists(st.sampled_from(["nav", "bio", "subscribe", "story 1", "never seen"]), max_size=6))
def test_the_saved_counts_lookup_answers_as_the_table(
    tmp_path_factory: pytest.TempPathFactory, docs: list[Document], asked: list[str]
) -> None:
    stats = build(docs)
    path = tmp_path_factory.mktemp("counts") / "counts.arrow"
    stats.counts().save(path)
    lookup = SiteLineCounts.open(path)
    assert len(lookup) == len(stats)
    for site in ("a.com", "b.org", "", "c.net"):
        assert lookup.document_counts(site, asked).tolist() == stats.document_counts(site, asked).tolist()


def test_counts_of_tables_with_more_than_255_slots_saturate_in_the_lookup() -> None:
    params = LineStatsParams(slots=300)
    stats = SiteLineStats.from_documents([("s", f"d{i}", ["menu"]) for i in range(260)], params, generation=1)
    assert stats.document_counts("s", ["menu"]).tolist() == [260]
    assert stats.counts().document_counts("s", ["menu"]).tolist() == [255]


def test_the_counts_lookup_is_mapped_not_copied(tmp_path: Path) -> None:
    path = tmp_path / "counts.arrow"
    sample_stats().counts().save(path)
    lookup = SiteLineCounts.open(path)
    assert not any(array.flags.writeable for array in (lookup.site, lookup.line, lookup.documents))
    # Bytes written into the file after opening show through: the arrays are its mapped pages.
    first_line = lookup.line[0].tobytes()
    with path.open("r+b") as handle:
        handle.seek(path.read_bytes().index(first_line))
        handle.write(bytes(8))
    assert lookup.line[0] == 0


def test_equal_lookups_give_identical_bytes_and_leave_no_temporary(tmp_path: Path) -> None:
    sample_stats().counts().save(tmp_path / "one.arrow")
    sample_stats().counts().save(tmp_path / "two.arrow")
    sample_stats().counts().save(tmp_path / "two.arrow")  # overwriting in place
    assert (tmp_path / "one.arrow").read_bytes() == (tmp_path / "two.arrow").read_bytes()
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["one.arrow", "two.arrow"]


def test_an_empty_lookup_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "empty.arrow"
    SiteLineStats.empty(PARAMS).counts().save(path)
    assert SiteLineCounts.open(path).document_counts("a.com", ["Menu"]).tolist() == [0]


def test_a_bad_counts_lookup_is_refused_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.arrow"
    with pytest.raises(LineStatsError, match=re.escape(str(missing)) + ".*not a readable"):
        SiteLineCounts.open(missing)
    noise = tmp_path / "noise.arrow"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(LineStatsError, match=re.escape(str(noise)) + ".*not a readable"):
        SiteLineCounts.open(noise)
    stats_file = tmp_path / "stats.parquet"  # the state table is not the lookup
    sample_stats().save(stats_file)
    with pytest.raises(LineStatsError, match=re.escape(str(stats_file))):
        SiteLineCounts.open(stats_file)
    other = tmp_path / "other.arrow"
    table = pa.table({"site": pa.array([1], pa.uint64())})
    with pa.ipc.new_file(str(other), table.schema) as writer:
        writer.write_table(table)
    with pytest.raises(LineStatsError, match=re.escape(str(other)) + ".*format"):
        SiteLineCounts.open(other)
    renamed = tmp_path / "renamed.arrow"
    schema = pa.schema(
        [("site", pa.uint64()), ("line", pa.uint64()), ("docs", pa.uint8())],
        metadata={"format": "pipeline-site-line-counts", "format_version": "1"},
    )
    with pa.ipc.new_file(str(renamed), schema) as writer:
        writer.write_table(
            pa.table([pa.array([1], pa.uint64()), pa.array([2], pa.uint64()), pa.array([1], pa.uint8())], schema=schema)
        )
    with pytest.raises(LineStatsError, match=re.escape(str(renamed)) + ".*columns"):
        SiteLineCounts.open(renamed)


# --- site_of and stable_hash ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "source", "site"),
    [
        ("https://www.Example.COM:8443/a/b?c=d", "x.html", "example.com"),
        ("http://user:pw@news.example.co.uk/x", "x.html", "news.example.co.uk"),
        ("https://example.com./x", "x.html", "example.com"),
        ("https://www2.example.com/x", "x.html", "www2.example.com"),
        (None, "crawl/2024/bbc/page.html", "crawl/2024/bbc"),
        (None, "crawl/a.warc.gz#12", "crawl"),
        (None, "a.warc.gz#12", ""),
        (None, "page.html", ""),
        ("", "dumps/x.jsonl#3", "dumps"),
        ("not a url", "feeds/guardian/x.jsonl#1", "feeds/guardian"),
        ("http://[::1", "broken/x.html", "broken"),
        (None, "odd#folder/page.html", "odd#folder"),
    ],
)
def test_site_of(url: str | None, source: str, site: str) -> None:
    assert site_of(url, source) == site


def test_stable_hash_is_64_bit_and_separates_lines() -> None:
    values = {stable_hash(f"line {i}") for i in range(10_000)}
    assert len(values) == 10_000
    assert all(0 < value < 2**64 for value in values)


# --- size ----------------------------------------------------------------------------------


def test_a_batch_of_200k_lines() -> None:
    sites = [f"site{i}.com" for i in range(10)]
    docs = [
        (sites[d % 10], f"doc{d}", [f"menu {k}" for k in range(5)] + [f"doc {d} line {k}" for k in range(15)])
        for d in range(10_000)
    ]
    stats = SiteLineStats.from_documents(docs, LineStatsParams(), generation=1)
    assert len(stats) == 10 * 5 + 10_000 * 15
    assert stats.document_counts("site3.com", ["menu 0", "doc 3 line 0"]).tolist() == [8, 1]
