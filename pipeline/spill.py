"""Exact counts by key that stay in memory up to a budget, then go on in an SQLite file.

The report ranks removed lines, duplicated sentences and the documents dropped as duplicates
by counts known only at the end of the run, so every count is kept until then. A
`SpillCounter` holds at most `SPILL_ENTRIES` keys in memory; beyond that it adds them to a
table of an SQLite file in a scratch folder (summing counts, keeping the first-seen texts) and
starts afresh. Answers come from memory when nothing was spilled and from the file otherwise,
in the same order: sums descending, then the key in code-point order, which is the order of
SQLite's BINARY collation on UTF-8 text.

>>> counts = SpillCounter(None, "words")
>>> for word in ["b", "a", "b", "c"]:
...     counts.add(word, (1,))
>>> counts.top(2), counts.get("c"), len(counts)
([('b', 2), ('a', 1)], [1], 3)
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

SPILL_ENTRIES = 1 << 14
"""Keys a counter holds in memory before it spills them to its table: a few MB a counter.

The report's Python heap then peaks at ~61 MiB on the 10k and the 40k text runs alike (at 2^16,
82-90 MiB; all in memory, 92 and 192 MiB), for ~0.5 CPU s more at 10k. A memory bound, not a
setting: the output does not depend on it (and a config value would enter the config hash, so
changing it would republish the corpus)."""

_DATABASE = "counts.sqlite"

Key = Any
"""A counter's key: a string, or a tuple of `key_columns` strings."""


class SpillStore:
    """The SQLite file of a group of counters, in a scratch folder, opened when one first spills."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._connection: sqlite3.Connection | None = None

    @property
    def connection(self) -> sqlite3.Connection:
        """Return the connection to the file, creating it (a scratch file: no journal, no sync)."""
        if self._connection is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.folder / _DATABASE, isolation_level=None)
            for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -4096", "temp_store = FILE"):
                connection.execute(f"PRAGMA {pragma}")
            self._connection = connection
        return self._connection

    def close(self) -> None:
        """Close the file and remove it: its counts were needed only until the answers were read."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
            (self.folder / _DATABASE).unlink(missing_ok=True)

    def __enter__(self) -> SpillStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SpillCounter:
    """Sums of integers and first-seen texts by key, like a `Counter`, in memory bounded by a budget.

    Each key has `sums` integers, added up, and `firsts` texts, kept as first given. With no
    store (`None`) nothing is spilled: for tables known to be small.
    """

    def __init__(
        self,
        store: SpillStore | None,
        name: str,
        key_columns: int = 1,
        sums: int = 1,
        firsts: int = 0,
        budget: int | None = None,
    ) -> None:
        if not name.isidentifier():
            raise ValueError(f"counter name {name!r} is not an identifier")
        self.store, self.name = store, name
        self.key_columns, self.sums, self.firsts = key_columns, sums, firsts
        self.budget = SPILL_ENTRIES if budget is None else budget  # read when made: tests lower it
        self._memory: dict[Key, list[Any]] = {}
        self._spilled = False
        keys = [f"k{i}" for i in range(key_columns)]
        columns = [*(f"{k} TEXT NOT NULL" for k in keys), *(f"s{i} INTEGER NOT NULL" for i in range(sums))]
        columns += [f"f{i} TEXT NOT NULL" for i in range(firsts)]
        self._create = f"CREATE TABLE {name} ({', '.join(columns)}, PRIMARY KEY ({', '.join(keys)})) WITHOUT ROWID"
        marks = ", ".join("?" * (key_columns + sums + firsts))
        # The texts of a key already in the table stay: they were seen first.
        update = ", ".join(f"s{i} = s{i} + excluded.s{i}" for i in range(sums))
        conflict = f"DO UPDATE SET {update}" if update else "DO NOTHING"
        self._upsert = f"INSERT INTO {name} VALUES ({marks}) ON CONFLICT ({', '.join(keys)}) {conflict}"
        self._keys = ", ".join(keys)
        self._values = ", ".join([*(f"s{i}" for i in range(sums)), *(f"f{i}" for i in range(firsts))])
        self._order = ", ".join([*(f"s{i} DESC" for i in range(sums)), *keys])

    # ------------------------------------------------------------------------- counting

    def add(self, key: Key, sums: Sequence[int] = (), firsts: Sequence[str] = ()) -> None:
        """Add `sums` to a key's sums; give it `firsts` if it has none yet."""
        entry = self._memory.get(key)
        if entry is None:
            self._memory[key] = [*sums, *firsts]
            if self.store is not None and len(self._memory) >= self.budget:
                self.spill()
        else:
            for i, value in enumerate(sums):
                entry[i] += value

    def spill(self) -> None:
        """Add what memory holds to the table (made at the first spill) and empty memory."""
        if self.store is None or not self._memory:
            return
        connection = self.store.connection
        if not self._spilled:
            connection.execute(f"DROP TABLE IF EXISTS {self.name}")
            connection.execute(self._create)
            self._spilled = True
        rows = (self._row(key, entry) for key, entry in sorted(self._memory.items()))  # key order: local inserts
        connection.execute("BEGIN")
        connection.executemany(self._upsert, rows)
        connection.execute("COMMIT")
        self._memory.clear()

    def _row(self, key: Key, entry: list[Any]) -> tuple[Any, ...]:
        return (key, *entry) if self.key_columns == 1 else (*key, *entry)

    def _key(self, row: Sequence[Any]) -> Key:
        return row[0] if self.key_columns == 1 else tuple(row[: self.key_columns])

    def _settled(self) -> sqlite3.Connection | None:
        """Return the table's connection with every count in it, or None when all counts are in memory."""
        if not self._spilled:
            return None
        self.spill()
        assert self.store is not None  # spilled, so there is a store
        return self.store.connection

    # ------------------------------------------------------------------------- answers

    @property
    def spilled(self) -> bool:
        """Return whether the counts went to the table (once the budget was reached)."""
        return self._spilled

    def get(self, key: Key) -> list[Any] | None:
        """Return a key's sums and texts, or None for a key never added."""
        connection = self._settled()
        if connection is None:
            entry = self._memory.get(key)
            return None if entry is None else list(entry)
        where = " AND ".join(f"k{i} = ?" for i in range(self.key_columns))
        params = (key,) if self.key_columns == 1 else tuple(key)
        row = connection.execute(f"SELECT {self._values or 1} FROM {self.name} WHERE {where}", params).fetchone()
        return None if row is None else list(row)[: self.sums + self.firsts]

    def __contains__(self, key: Key) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        connection = self._settled()
        if connection is None:
            return len(self._memory)
        return int(connection.execute(f"SELECT COUNT(*) FROM {self.name}").fetchone()[0])

    def top(self, limit: int) -> list[tuple[Any, ...]]:
        """Return the `limit` keys with the largest sums, as (key, *sums, *texts): sums descending, then key.

        >>> counts = SpillCounter(None, "t", sums=2)
        >>> counts.add("x", (2, 1)); counts.add("é", (2, 5)); counts.add("a", (2, 1))
        >>> counts.top(3)
        [('é', 2, 5), ('a', 2, 1), ('x', 2, 1)]
        """
        connection = self._settled()
        if connection is None:
            sums = self.sums
            best = heapq.nsmallest(
                limit, self._memory.items(), key=lambda item: (*(-value for value in item[1][:sums]), item[0])
            )
            return [(key, *entry) for key, entry in best]
        query = f"SELECT {self._keys}, {self._values or 1} FROM {self.name} ORDER BY {self._order} LIMIT ?"
        width = self.sums + self.firsts
        return [(self._key(row), *row[self.key_columns :][:width]) for row in connection.execute(query, (limit,))]

    def items(self) -> Iterator[tuple[Any, ...]]:
        """Yield every key as (key, *sums, *texts), in key order."""
        connection = self._settled()
        if connection is None:
            yield from ((key, *entry) for key, entry in sorted(self._memory.items()))
            return
        width = self.sums + self.firsts
        query = f"SELECT {self._keys}, {self._values or 1} FROM {self.name} ORDER BY {self._keys}"
        for row in connection.execute(query):
            yield (self._key(row), *row[self.key_columns :][:width])

    def seconds(self, firsts: Collection[str]) -> dict[str, list[str]]:
        """Return, for each given first key column, the second key columns under it, sorted (pairs of keys only)."""
        if self.key_columns != 2:
            raise TypeError(f"{self.name} is not keyed by pairs")
        found: dict[str, list[str]] = {first: [] for first in firsts}
        connection = self._settled()
        if connection is None:
            for first, second in self._memory:
                if first in found:
                    found[first].append(second)
            return {first: sorted(seconds) for first, seconds in found.items()}
        for first in found:
            query = f"SELECT k1 FROM {self.name} WHERE k0 = ? ORDER BY k1"
            found[first] = [row[0] for row in connection.execute(query, (first,))]
        return found

    def count_seconds(self, firsts: Collection[str]) -> dict[str, int]:
        """Return, for each given first key column, how many keys have it (pairs of keys only)."""
        if self.key_columns != 2:
            raise TypeError(f"{self.name} is not keyed by pairs")
        counts = dict.fromkeys(firsts, 0)
        connection = self._settled()
        if connection is None:
            for first, _ in self._memory:
                if first in counts:
                    counts[first] += 1
            return counts
        for first in counts:
            query = f"SELECT COUNT(*) FROM {self.name} WHERE k0 = ?"
            counts[first] = int(connection.execute(query, (first,)).fetchone()[0])
        return counts
