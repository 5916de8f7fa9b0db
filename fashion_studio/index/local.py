"""The embedded product store: a folder with one SQLite file, searched exactly in memory.

SQLite holds every entry durably (vector, filter columns, metadata); each process that opens the folder
keeps the vectors and filter columns in numpy arrays and answers a query with one matrix-vector product
over the rows its filters leave, so recall is exact and a query at 100,000 products takes milliseconds
(docs/index.md has the measurements that chose this over the other embedded stores). Every write
transaction stamps its rows with the next sequence number, and a deletion leaves a tombstone, so a
process picks up what another one wrote (a `fashion-studio index add` while the gateway serves) by
reading only the rows newer than the last it saw, never by a rebuild.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from fashion_studio.index.records import Entry, Filters, Hit

logger = logging.getLogger(__name__)

DB_FILE = "index.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    product_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    vector BLOB,            -- float32, unit length; NULL: deleted (a tombstone other processes read)
    product_type TEXT,
    colour TEXT,
    price REAL,
    metadata TEXT
);
CREATE INDEX IF NOT EXISTS entries_seq ON entries (seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


# One query's matrix-vector product is too small to share between threads: on a busy machine a BLAS
# thread waiting for a core stalls the whole product (20 ms instead of 2 at 30,000 products, measured).
_BLAS = ThreadpoolController()


class IndexMissingError(FileNotFoundError):
    """No index at the place the settings name (nothing built there yet)."""


class _Codes:
    """Strings of a filter column as small integers, so that a filter is one vectorised comparison."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def of(self, value: str | None) -> int:
        if value is None:
            return -1
        return self.codes.setdefault(value, len(self.codes))

    def find(self, value: str) -> int | None:
        return self.codes.get(value)


class LocalStore:
    kind = "local"

    def __init__(self, folder: Path | str, create: bool = False, threads: int = 1) -> None:
        self.folder = Path(folder)
        self.threads = threads  # BLAS threads of one search (a large index's scan is memory-bound)
        self.url = str(self.folder)
        path = self.folder / DB_FILE
        if not path.is_file():
            if not create:
                raise IndexMissingError(f"no product index at {self.folder}")
            self.folder.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._dim: int | None = None
        self._seq = 0
        self._data_version: int | None = None
        self._rows: dict[str, int] = {}
        self._ids: list[str] = []
        self._n = 0
        self._live = 0
        self._vectors = np.zeros((0, 0), np.float32)
        self._alive = np.zeros(0, bool)
        self._types, self._colours = _Codes(), _Codes()
        self._type_codes = np.zeros(0, np.int32)
        self._colour_codes = np.zeros(0, np.int32)
        self._prices = np.zeros(0, np.float64)
        self._sync()

    # -- reading what any process wrote -------------------------------------------------------------

    def _changed(self) -> bool:
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        changed = version != self._data_version
        self._data_version = version
        return changed

    def _sync(self) -> None:
        """Apply the rows written since the last sync (by this process or another)."""
        with self._lock:
            self._changed()
            if self._dim is None:
                row = self._db.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
                if row is None:
                    return
                self._dim = int(row[0])
                self._vectors = np.zeros((0, self._dim), np.float32)
            rows = self._db.execute(
                "SELECT product_id, seq, vector, product_type, colour, price FROM entries WHERE seq > ? ORDER BY seq", (self._seq,)
            ).fetchall()
            if rows:
                self._apply(rows)

    def _apply(self, rows: list[tuple]) -> None:
        self._reserve(self._n + sum(1 for r in rows if r[0] not in self._rows))
        for product_id, seq, blob, product_type, colour, price in rows:
            self._seq = max(self._seq, seq)
            row = self._rows.get(product_id)
            if blob is None:  # deleted
                if row is not None and self._alive[row]:
                    self._alive[row] = False
                    self._live -= 1
                continue
            if row is None:
                row = self._n
                self._n += 1
                self._rows[product_id] = row
                self._ids.append(product_id)
            if not self._alive[row]:
                self._live += 1
            self._vectors[row] = np.frombuffer(blob, np.float32)
            self._alive[row] = True
            self._type_codes[row] = self._types.of(product_type)
            self._colour_codes[row] = self._colours.of(colour)
            self._prices[row] = np.nan if price is None else price
        if self._n > 1000 and self._live < self._n // 2:
            self._compact()

    def _reserve(self, rows: int) -> None:
        capacity = len(self._alive)
        if rows <= capacity:
            return
        capacity = max(rows, 2 * capacity, 1024)
        grow = capacity - len(self._alive)
        self._vectors = np.concatenate([self._vectors, np.zeros((grow, self._dim or 0), np.float32)])
        self._alive = np.concatenate([self._alive, np.zeros(grow, bool)])
        self._type_codes = np.concatenate([self._type_codes, np.full(grow, -1, np.int32)])
        self._colour_codes = np.concatenate([self._colour_codes, np.full(grow, -1, np.int32)])
        self._prices = np.concatenate([self._prices, np.full(grow, np.nan)])

    def _compact(self) -> None:
        """Drop the rows of deleted entries from memory (the file keeps their tombstones)."""
        keep = np.flatnonzero(self._alive[: self._n])
        self._vectors = self._vectors[keep].copy()
        self._alive = self._alive[keep].copy()
        self._type_codes = self._type_codes[keep].copy()
        self._colour_codes = self._colour_codes[keep].copy()
        self._prices = self._prices[keep].copy()
        self._ids = [self._ids[i] for i in keep]
        self._rows = {pid: i for i, pid in enumerate(self._ids)}
        self._n = len(self._ids)

    # -- writing --------------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        return self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM entries").fetchone()[0]

    def upsert(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        dim = len(entries[0].vector)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                stored = self._db.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
                if stored is None:
                    self._db.execute("INSERT INTO meta VALUES ('dim', ?)", (str(dim),))
                elif int(stored[0]) != dim:
                    raise ValueError(f"vectors of dimension {dim} cannot join an index of dimension {stored[0]}; rebuild it into a new folder")
                seq = self._next_seq()
                self._db.executemany(
                    "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            e.product_id,
                            seq,
                            np.asarray(e.vector, np.float32).tobytes(),
                            e.metadata.get("product_type"),
                            e.metadata.get("colour"),
                            e.metadata.get("price"),
                            json.dumps(e.metadata, ensure_ascii=False),
                        )
                        for e in entries
                    ],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._sync()

    def delete(self, product_ids: Sequence[str]) -> int:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = self._next_seq()
                deleted = 0
                for product_id in product_ids:
                    deleted += self._db.execute(
                        "UPDATE entries SET seq = ?, vector = NULL, metadata = NULL WHERE product_id = ? AND vector IS NOT NULL", (seq, product_id)
                    ).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._sync()
            return deleted

    # -- queries --------------------------------------------------------------------------------------

    def _fresh(self) -> None:
        if self._changed():
            self._sync()

    def count(self) -> int:
        with self._lock:
            self._fresh()
            return self._live

    @property
    def dim(self) -> int | None:
        with self._lock:
            self._fresh()
            return self._dim

    def _mask(self, filters: Filters) -> np.ndarray | None:
        """The rows a query may return; None: every row (nothing deleted, nothing filtered)."""
        n = self._n
        if filters.empty and self._live == n:
            return None
        mask = self._alive[:n].copy()
        for value, codes, column in (
            (filters.product_type, self._types, self._type_codes),
            (filters.colour, self._colours, self._colour_codes),
        ):
            if value is not None:
                code = codes.find(value)
                if code is None:
                    return np.zeros(n, bool)
                mask &= column[:n] == code
        if filters.min_price is not None:
            mask &= self._prices[:n] >= filters.min_price
        if filters.max_price is not None:
            mask &= self._prices[:n] <= filters.max_price
        return mask

    def search(self, vector: np.ndarray, k: int, filters: Filters | None = None, with_vectors: bool = False) -> list[Hit]:
        query = np.asarray(vector, np.float32).reshape(-1)
        with self._lock:
            self._fresh()
            if self._dim is None or self._live == 0:
                return []
            if len(query) != self._dim:
                raise ValueError(f"a query vector of dimension {len(query)} cannot search an index of dimension {self._dim}")
            mask = self._mask(filters or Filters())
            rows = None
            with _BLAS.limit(limits=self.threads, user_api="blas"):
                if mask is None:
                    scores = self._vectors[: self._n] @ query
                elif np.count_nonzero(mask) * 4 > self._n:  # a wide filter: score every row, drop the others
                    scores = np.where(mask, self._vectors[: self._n] @ query, -np.inf)
                    k = min(k, int(np.count_nonzero(mask)))
                else:  # a narrow one: score only its rows
                    rows = np.flatnonzero(mask)
                    scores = self._vectors[rows] @ query
            if len(scores) == 0 or k == 0:
                return []
            top = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
            top = top[np.argsort(-scores[top], kind="stable")]
            positions = [int(rows[i] if rows is not None else i) for i in top]
            found = [(self._ids[p], float(scores[i]), self._vectors[p].copy() if with_vectors else None) for p, i in zip(positions, top)]
        metadata = self.get([pid for pid, _, _ in found])
        return [Hit(pid, score, metadata[pid], vector) for pid, score, vector in found if pid in metadata]

    def get(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not product_ids:
            return {}
        marks = ",".join("?" * len(product_ids))
        with self._lock:
            rows = self._db.execute(
                f"SELECT product_id, metadata FROM entries WHERE vector IS NOT NULL AND product_id IN ({marks})", list(product_ids)
            ).fetchall()
        return {pid: json.loads(text) for pid, text in rows}

    def fingerprints(self) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute("SELECT product_id, json_extract(metadata, '$.fingerprint') FROM entries WHERE vector IS NOT NULL").fetchall()
        return {pid: fp for pid, fp in rows if fp}

    def vectors(self) -> tuple[list[str], np.ndarray]:
        """Every live entry's id and vector (for exact-search checks and exports)."""
        with self._lock:
            self._fresh()
            rows = np.flatnonzero(self._alive[: self._n])
            return [self._ids[i] for i in rows], self._vectors[rows].copy()

    def close(self) -> None:
        with self._lock:
            self._db.close()
