"""Where conversations live: a session and its turns, each turn numbered by the store as it is appended.

`SessionStore` is the interface. `SqliteSessionStore` is the embedded store: one file (WAL journal,
`synchronous=FULL`) that outlives the gateway and that every gateway process on the host shares;
`RedisSessionStore` is the server-backed one that gateway replicas on many hosts share. `open_store(url)`
picks one by URL. An append takes the next sequence number and writes the turn in one atomic step
(a write transaction; a Lua script), so two turns appended at once to one session are both kept, in
the order the store took them, and an append returns only once the turn is stored.

A session untouched for `ttl_s` is gone: Redis expires its keys; SQLite deletes expired sessions
when new ones are made and reports them as unknown until then.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fashion_studio.errors import ConflictError, NotFoundError, UnavailableError, redis_reachable, without_password
from fashion_studio.settings import PROJECT_ROOT, Settings

logger = logging.getLogger(__name__)

SESSION_ID = re.compile(r"^[0-9a-f]{32}$")
UNKNOWN_SESSION = "must be the id of a live session (POST /sessions makes one; an idle session expires)"
DAY_S = 86_400.0


@dataclass(frozen=True)
class Turn:
    seq: int  # 1, 2, ... within its session, in the order the store appended them
    created_at: float  # epoch seconds
    data: dict[str, Any]


@dataclass(frozen=True)
class Session:
    id: str
    created_at: float
    updated_at: float
    turns: list[Turn] = field(default_factory=list)


class SessionStore(Protocol):
    """What the conversation needs from a session store."""

    url: str

    def create(self) -> Session: ...

    def get(self, session_id: str) -> Session: ...

    def append(self, session_id: str, data: dict[str, Any], after: int | None = None) -> Turn: ...

    def close(self) -> None: ...


def new_session_id() -> str:
    return uuid.uuid4().hex


def unknown(session_id: str) -> NotFoundError:
    return NotFoundError("session_id", session_id, UNKNOWN_SESSION)


def moved_on(session_id: str, after: int) -> ConflictError:
    """A turn acted on a session of `after` turns, and another turn was stored meanwhile (two messages of
    one session answered at once, on two gateway replicas): its edit would start from a stale image."""
    return ConflictError("session_id", session_id, f"another message of this session was answered while this one was (it acted on turn {after}): send it again")


def full(session_id: str, max_turns: int) -> ConflictError:
    return ConflictError("session_id", session_id, f"a session holds at most {max_turns} turns: start a new one (POST /sessions)")


class SqliteSessionStore:
    """The embedded store: one SQLite file; a write transaction per append (BEGIN IMMEDIATE), so
    processes sharing the file take sequence numbers one at a time."""

    def __init__(self, path: Path | str, max_turns: int = 200, ttl_s: float = 30 * DAY_S) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.max_turns = max_turns
        self.ttl_s = ttl_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._write():
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, created_at REAL NOT NULL, updated_at REAL NOT NULL,"
                " turns INTEGER NOT NULL DEFAULT 0)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS turns (session_id TEXT NOT NULL, seq INTEGER NOT NULL, created_at REAL NOT NULL,"
                " data TEXT NOT NULL, PRIMARY KEY (session_id, seq)) WITHOUT ROWID"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS sessions_updated ON sessions (updated_at)")

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction, taken before reading (so no other process slips in between)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:  # still locked after the 30 s busy timeout
                raise UnavailableError("sessions", f"the session store {self.path} is busy: {exc}") from exc
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def create(self) -> Session:
        now = time.time()
        session = Session(new_session_id(), now, now)
        with self._write():
            expired = now - self.ttl_s
            self._db.execute("DELETE FROM turns WHERE session_id IN (SELECT id FROM sessions WHERE updated_at < ?)", (expired,))
            self._db.execute("DELETE FROM sessions WHERE updated_at < ?", (expired,))
            self._db.execute("INSERT INTO sessions (id, created_at, updated_at) VALUES (?, ?, ?)", (session.id, now, now))
        return session

    def get(self, session_id: str) -> Session:
        if not SESSION_ID.match(session_id):
            raise unknown(session_id)
        with self._lock:
            row = self._db.execute("SELECT created_at, updated_at FROM sessions WHERE id = ?", (session_id,)).fetchone()
            rows = self._db.execute("SELECT seq, created_at, data FROM turns WHERE session_id = ? ORDER BY seq", (session_id,)).fetchall()
        if row is None or row[1] < time.time() - self.ttl_s:
            raise unknown(session_id)
        return Session(session_id, row[0], row[1], [Turn(seq, created, json.loads(data)) for seq, created, data in rows])

    def append(self, session_id: str, data: dict[str, Any], after: int | None = None) -> Turn:
        """Store the next turn; with `after`, only while the session still holds that many turns (else 409)."""
        if not SESSION_ID.match(session_id):
            raise unknown(session_id)
        now = time.time()
        text = json.dumps(data, ensure_ascii=False)
        with self._write():
            updated = self._db.execute(
                "UPDATE sessions SET turns = turns + 1, updated_at = ? WHERE id = ? AND updated_at >= ? AND turns < ? AND (? < 0 OR turns = ?)",
                (now, session_id, now - self.ttl_s, self.max_turns, -1 if after is None else after, after),
            )
            if updated.rowcount == 0:
                found = self._db.execute("SELECT updated_at, turns FROM sessions WHERE id = ?", (session_id,)).fetchone()
                if found is None or found[0] < now - self.ttl_s:
                    raise unknown(session_id)
                raise full(session_id, self.max_turns) if found[1] >= self.max_turns else moved_on(session_id, after or 0)
            (seq,) = self._db.execute("SELECT turns FROM sessions WHERE id = ?", (session_id,)).fetchone()
            self._db.execute("INSERT INTO turns (session_id, seq, created_at, data) VALUES (?, ?, ?, ?)", (session_id, seq, now, text))
        return Turn(int(seq), now, data)

    def close(self) -> None:
        with self._lock:
            self._db.close()


# KEYS: the session's hash, its turn list. ARGV: the turn as JSON, now, max turns, TTL in ms, the turns the
# session must hold (-1: any). -1: no such session; -2: full; -3: another turn came first; else the new
# turn's sequence number (the list's new length).
_APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[3]) then return -2 end
if tonumber(ARGV[5]) >= 0 and redis.call('LLEN', KEYS[2]) ~= tonumber(ARGV[5]) then return -3 end
local seq = redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return seq
"""


class RedisSessionStore:
    """The server-backed store: a hash per session and a list of its turns, both under one hash tag (one
    Redis Cluster slot); an append is one Lua script, which Redis runs alone."""

    def __init__(self, url: str, max_turns: int = 200, ttl_s: float = 30 * DAY_S, prefix: str = "fashion-studio:session:") -> None:
        import redis

        self.url = url
        self.max_turns = max_turns
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)
        self._append = self._redis.register_script(_APPEND)

    def _keys(self, session_id: str) -> tuple[str, str]:
        return f"{self.prefix}{{{session_id}}}", f"{self.prefix}{{{session_id}}}:turns"

    def _reachable(self) -> AbstractContextManager[None]:
        return redis_reachable("sessions", "session store", self.url)

    def create(self) -> Session:
        now = time.time()
        session = Session(new_session_id(), now, now)
        meta, _ = self._keys(session.id)
        with self._reachable():
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(meta, mapping={"created_at": repr(now), "updated_at": repr(now)})
            pipe.pexpire(meta, self.ttl_ms)
            pipe.execute()
        return session

    def get(self, session_id: str) -> Session:
        if not SESSION_ID.match(session_id):
            raise unknown(session_id)
        meta, turns = self._keys(session_id)
        with self._reachable():
            pipe = self._redis.pipeline(transaction=True)
            pipe.hgetall(meta)
            pipe.lrange(turns, 0, -1)
            fields, items = pipe.execute()
        if not fields:
            raise unknown(session_id)
        stored = [json.loads(item) for item in items]
        return Session(
            session_id,
            float(fields[b"created_at"]),
            float(fields[b"updated_at"]),
            [Turn(seq, item["created_at"], item["data"]) for seq, item in enumerate(stored, start=1)],
        )

    def append(self, session_id: str, data: dict[str, Any], after: int | None = None) -> Turn:
        """Store the next turn; with `after`, only while the session still holds that many turns (else 409)."""
        if not SESSION_ID.match(session_id):
            raise unknown(session_id)
        now = time.time()
        item = json.dumps({"created_at": now, "data": data}, ensure_ascii=False)
        with self._reachable():
            seq = int(self._append(keys=list(self._keys(session_id)), args=[item, repr(now), self.max_turns, self.ttl_ms, -1 if after is None else after]))
        if seq == -1:
            raise unknown(session_id)
        if seq == -2:
            raise full(session_id, self.max_turns)
        if seq == -3:
            raise moved_on(session_id, after or 0)
        return Turn(seq, now, data)

    def close(self) -> None:
        self._redis.close()


def default_url(settings: Settings) -> str:
    """`sessions_url`, else `sessions.db` under a local storage folder, else var/sessions.db."""
    if settings.sessions_url:
        return settings.sessions_url
    storage = settings.storage_url.removeprefix("file://")
    if "://" not in storage:
        return f"sqlite:///{Path(storage).resolve() / 'sessions.db'}"
    return f"sqlite:///{PROJECT_ROOT / 'var' / 'sessions.db'}"


def open_store(url: str, max_turns: int = 200, ttl_s: float = 30 * DAY_S) -> SessionStore:
    """The store behind a URL: `sqlite:////abs/path.db`, `sqlite:///path/under/the/project.db`, a file
    path, or `redis://[:password@]host:port/db` (`rediss://` for TLS)."""
    if url.startswith("sqlite:///"):
        rest = url[len("sqlite:///") :]
        return SqliteSessionStore(rest if rest.startswith("/") else PROJECT_ROOT / rest, max_turns, ttl_s)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisSessionStore(url, max_turns, ttl_s)
    if "://" in url:
        from fashion_studio.errors import InvalidInputError

        raise InvalidInputError("sessions_url", without_password(url), "supported stores: sqlite:///PATH, redis://HOST:PORT/DB, rediss://...")
    return SqliteSessionStore(url, max_turns, ttl_s)


def store_from_settings(settings: Settings) -> SessionStore:
    return open_store(default_url(settings), settings.limits.max_session_turns, settings.sessions_ttl_days * DAY_S)
