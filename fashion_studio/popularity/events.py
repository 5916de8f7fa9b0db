"""The shop's append-only event log: views, clicks, likes and purchases of products and generated images.

`EventStore` is the interface; `SqliteEventStore` is the embedded store (stdlib sqlite3, WAL journal,
`synchronous=FULL`) for one process or host, `RedisEventStore` the one every gateway replica of a
deployment shares (a Redis stream, with per-subject counts kept beside it in the same atomic script), and
`open_store(url)` picks the store by URL scheme. An append returns only after the store has it: an
acknowledged event survives a crash of the process that took it (and, on Redis, a restart of Redis run with
`appendfsync always`, as k8s/components/sessions-redis runs it).
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from fashion_studio.errors import InvalidInputError, redis_reachable
from fashion_studio.settings import PROJECT_ROOT

Kind = Literal["view", "click", "like", "purchase"]
SubjectType = Literal["product", "image"]
KINDS: tuple[str, ...] = ("view", "click", "like", "purchase")
FEEDBACK_KINDS: tuple[str, ...] = ("view", "click", "like")  # purchases come from the shop's order export
# How much one event says about an article's appeal; the popularity target is log(1 + the weighted sum).
WEIGHTS: dict[str, float] = {"view": 0.1, "click": 1.0, "like": 3.0, "purchase": 10.0}
# Clocks differ a little between a client and the server; more than this ahead is an error.
MAX_CLOCK_SKEW_S = 60.0
EARLIEST_TS = 946_684_800.0  # 2000-01-01 UTC: no shop event is older, and year 1 cannot be written back as a date
MAX_QUANTITY = 1_000_000  # of one purchase line


@dataclass(frozen=True)
class Event:
    kind: str
    subject_type: str
    subject_id: str
    ts: float  # seconds since the epoch, UTC
    user: str | None = None
    quantity: int = 1
    source: str = "api"  # api | import | simulated


def check_event(event: Event, now: float | None = None) -> Event:
    """Reject what the log must not hold; each error names the field, the value and the limit."""
    if event.kind not in KINDS:
        raise InvalidInputError("kind", event.kind, f"must be one of {', '.join(KINDS)}")
    if event.subject_type not in ("product", "image"):
        raise InvalidInputError("subject_type", event.subject_type, "must be product or image")
    if not 1 <= event.quantity <= MAX_QUANTITY:
        raise InvalidInputError("quantity", event.quantity, f"must be from 1 to {MAX_QUANTITY}")
    if not math.isfinite(event.ts) or event.ts < EARLIEST_TS:
        raise InvalidInputError("timestamp", event.ts, f"must be a time at or after {iso(EARLIEST_TS)}")
    latest = (time.time() if now is None else now) + MAX_CLOCK_SKEW_S
    if event.ts > latest:
        raise InvalidInputError("timestamp", iso(event.ts), f"must not be in the future: at most {iso(latest)}")
    return event


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def parse_time(value: str | float | int, field: str = "timestamp") -> float:
    """Epoch seconds from epoch seconds or an ISO 8601 time (UTC unless it names its offset)."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(field, value, "must be ISO 8601 (2026-05-01T12:00:00Z) or epoch seconds") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


class EventStore(Protocol):
    """What the rest of the project needs from an event log."""

    def append(self, event: Event) -> int: ...

    def append_many(self, events: Iterable[Event], once: str | None = None) -> int: ...

    def count(self) -> int: ...

    def events(self) -> Iterator[Event]: ...

    def engagement(self, subject_type: str = "product") -> dict[str, dict[str, int]]: ...

    def close(self) -> None: ...


class SqliteEventStore:
    """The embedded store: one file, WAL journal, every append committed and synced before it returns."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, kind TEXT NOT NULL,"
            " subject_type TEXT NOT NULL, subject_id TEXT NOT NULL, user TEXT, quantity INTEGER NOT NULL DEFAULT 1,"
            " source TEXT NOT NULL, received_at REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS events_subject ON events (subject_type, subject_id)")
        self._db.execute("CREATE TABLE IF NOT EXISTS batches (key TEXT PRIMARY KEY, events INTEGER NOT NULL, stored_at REAL NOT NULL)")

    def append(self, event: Event) -> int:
        """Store one event; returns its id once committed."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._db.execute(_INSERT, _row(event))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return int(cursor.lastrowid or 0)

    def append_many(self, events: Iterable[Event], once: str | None = None) -> int:
        """Store events in one transaction: all of them or, on any failure, none. With `once` (a key naming
        the batch, such as an export file's digest), a batch whose key was stored before stores nothing
        and 0 is returned: an import run again after a kill counts nothing twice."""
        rows = [_row(e) for e in events]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if once is not None and self._db.execute("INSERT OR IGNORE INTO batches VALUES (?, ?, ?)", (once, len(rows), time.time())).rowcount == 0:
                    self._db.execute("ROLLBACK")
                    return 0
                self._db.executemany(_INSERT, rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(rows)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def events(self) -> Iterator[Event]:
        with self._lock:
            rows = self._db.execute("SELECT kind, subject_type, subject_id, ts, user, quantity, source FROM events ORDER BY id").fetchall()
        return (Event(*row) for row in rows)

    def engagement(self, subject_type: str = "product") -> dict[str, dict[str, int]]:
        """Per subject id, the number of each kind of event (purchases counted by quantity)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT subject_id, kind, SUM(quantity) FROM events WHERE subject_type = ? GROUP BY subject_id, kind",
                (subject_type,),
            ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for subject_id, kind, total in rows:
            out.setdefault(subject_id, {})[kind] = int(total)
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()


_INSERT = "INSERT INTO events (ts, kind, subject_type, subject_id, user, quantity, source, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def _row(event: Event) -> tuple:
    return (event.ts, event.kind, event.subject_type, event.subject_id, event.user, event.quantity, event.source, time.time())


# Appends events (Redis runs a script alone): each gets the next id, goes onto the stream, and adds its
# quantity to its subject's count of its kind. KEYS: the id counter, the stream, the product and the image
# counts, the stored batches' keys; ARGV: the batch's key ("" for none) and the time, then per event its
# JSON, its subject type, its "subject_id<TAB>kind" and its quantity. A batch whose key is stored already
# stores nothing (returns -1); the key is stored last, once every event is (checked events cannot make a
# command fail, so only a Redis out of memory could stop a script part-way, and then its key is not stored).
_APPEND_EVENTS = """
if ARGV[1] ~= '' and redis.call('HEXISTS', KEYS[5], ARGV[1]) == 1 then return -1 end
local last = 0
for i = 3, #ARGV, 4 do
  last = redis.call('INCR', KEYS[1])
  redis.call('XADD', KEYS[2], '*', 'id', last, 'event', ARGV[i])
  local counts = KEYS[3]
  if ARGV[i + 1] == 'image' then counts = KEYS[4] end
  redis.call('HINCRBY', counts, ARGV[i + 2], ARGV[i + 3])
end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[5], ARGV[1], ARGV[2]) end
return last
"""


class RedisEventStore:
    """The shared store: a Redis stream of events and a hash of counts per subject type, all under one hash
    tag (one Redis Cluster slot), written together by one script. Every gateway replica appends to it and
    the training reads it, as the conversation sessions share their Redis."""

    PAGE = 1000
    CHUNK = 1000  # events per script: a long script would hold Redis (and the sessions it serves) that long

    def __init__(self, url: str, prefix: str = "fashion-studio:events:") -> None:
        import redis

        self.url = url
        self._redis = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)
        tag = f"{prefix}{{log}}"
        self._keys = [f"{tag}:next-id", f"{tag}:stream", f"{tag}:counts:product", f"{tag}:counts:image", f"{tag}:batches"]
        self._append = self._redis.register_script(_APPEND_EVENTS)

    def _call(self, method, *args, **kwargs):
        with redis_reachable("events", "event store", self.url):
            return method(*args, **kwargs)

    def append(self, event: Event) -> int:
        """Store one event; returns its id once Redis has it."""
        return int(self._call(self._append, keys=self._keys, args=_redis_args([event])))

    def append_many(self, events: Iterable[Event], once: str | None = None) -> int:
        """Store events, CHUNK to a script; returns how many were stored now. With `once`, each chunk of
        the batch is stored once under `once#i`: a batch sent again stores only the chunks it did not (0
        when all were), so an import repeated after a kill or a lost connection counts nothing twice."""
        events = list(events)
        stored = 0
        for i in range(0, len(events), self.CHUNK):
            chunk = events[i : i + self.CHUNK]
            key = None if once is None else f"{once}#{i // self.CHUNK}"
            if int(self._call(self._append, keys=self._keys, args=_redis_args(chunk, key))) != -1:
                stored += len(chunk)
        return stored

    def count(self) -> int:
        return int(self._call(self._redis.xlen, self._keys[1]))

    def events(self) -> Iterator[Event]:
        """Every event in the order they were appended (read in pages)."""
        out: list[Event] = []
        start = "-"
        while True:
            page = self._call(self._redis.xrange, self._keys[1], min=start, max="+", count=self.PAGE)
            for _, fields in page:
                data = json.loads(fields[b"event"])
                out.append(Event(data["kind"], data["subject_type"], data["subject_id"], data["ts"], data["user"], data["quantity"], data["source"]))
            if len(page) < self.PAGE:
                return iter(out)
            start = "(" + page[-1][0].decode()

    def engagement(self, subject_type: str = "product") -> dict[str, dict[str, int]]:
        """Per subject id, the number of each kind of event (purchases counted by quantity)."""
        counts = self._call(self._redis.hgetall, self._keys[3] if subject_type == "image" else self._keys[2])
        out: dict[str, dict[str, int]] = {}
        for field, total in counts.items():
            subject_id, kind = field.decode().rsplit("\t", 1)
            out.setdefault(subject_id, {})[kind] = int(total)
        return out

    def close(self) -> None:
        self._redis.close()


def _redis_args(events: Iterable[Event], once: str | None = None) -> list[str | int]:
    args: list[str | int] = [once or "", repr(time.time())]
    for e in events:
        record = {"kind": e.kind, "subject_type": e.subject_type, "subject_id": e.subject_id, "ts": e.ts, "user": e.user, "quantity": e.quantity}
        args += [json.dumps({**record, "source": e.source, "received_at": time.time()}), e.subject_type, f"{e.subject_id}\t{e.kind}", e.quantity]
    return args


def open_store(url: str) -> EventStore:
    """The store behind a URL: `redis://HOST:PORT/DB` (or `rediss://`, shared by every replica),
    `sqlite:////abs/path.db`, `sqlite:///path/under/the/project.db` or a file path."""
    if url.startswith(("redis://", "rediss://")):
        return RedisEventStore(url)
    if url.startswith("sqlite:///"):
        rest = url[len("sqlite:///") :]
        return SqliteEventStore(rest if rest.startswith("/") else PROJECT_ROOT / rest)
    if "://" in url:
        raise InvalidInputError("events_url", url, "supported stores: redis://HOST:PORT/DB, sqlite:///PATH")
    return SqliteEventStore(url)


def engagement_score(counts: dict[str, int]) -> float:
    """The weighted engagement of one subject."""
    return sum(WEIGHTS[kind] * n for kind, n in counts.items() if kind in WEIGHTS)


def read_purchases(path: Path, known_products: set[str], now: float | None = None) -> list[Event]:
    """Purchases from a CSV export (product_id, timestamp, optional quantity and user), every row checked
    before any is stored: an error names its line, the field, the value and the limit."""
    events = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"product_id", "timestamp"} - set(reader.fieldnames or ())
        if missing:
            raise InvalidInputError("columns", reader.fieldnames, f"the CSV needs columns {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                events.append(_purchase(row, known_products, now))
            except InvalidInputError as exc:
                raise InvalidInputError(f"line {line}: {exc.field}", exc.value, exc.limit) from None
    return events


def _purchase(row: dict[str, str], known_products: set[str], now: float | None) -> Event:
    product_id = (row.get("product_id") or "").strip()
    if product_id not in known_products:
        raise InvalidInputError("product_id", product_id, "must be a product of the catalog")
    quantity_text = (row.get("quantity") or "1").strip()
    if not quantity_text.isdigit():
        raise InvalidInputError("quantity", quantity_text, "must be a whole number >= 1")
    event = Event("purchase", "product", product_id, parse_time(row.get("timestamp") or ""), (row.get("user") or None), int(quantity_text), "import")
    return check_event(event, now)
