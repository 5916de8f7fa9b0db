"""API keys for the gateway: hashed at rest, checked per request, rate-limited per key.

Keys come from a JSON hash file (written by `fashion-studio keys`) and/or `FASHION_API_KEYS` (plain
keys from a Kubernetes Secret, hashed in memory at start). With no key configured, auth is off, which
suits local use. A key is 32 random bytes, so a salted SHA-256 is enough to keep the file useless to a
reader: a slow hash (scrypt, PBKDF2) protects guessable passwords, and would cost CPU on every request
here. Keys are never logged; logs and metrics name a key by its id.

Statuses: 401 without a key or with an unknown one, 403 for a revoked key, 429 with `Retry-After`
once a key's token bucket is empty, or while the key has its burst of requests in flight: the rate
bounds how often a client may start work, the in-flight bound how much of the deployment one client's
long requests may hold at once, so that one key's burst does not starve the others.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from fashion_studio.settings import Settings, get_settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "fsk_"
MIN_KEY_CHARS = 16
FILE_VERSION = 1
RELOAD_INTERVAL_S = 1.0


def hash_key(key: str, salt: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass
class KeyRecord:
    """One key as stored: an id to name it by, a salt and the salted hash; never the key itself."""

    id: str
    name: str
    salt: str
    sha256: str
    created_at: str
    revoked_at: str | None = None
    rate_per_minute: float | None = None
    burst: int | None = None

    @classmethod
    def create(cls, key: str, name: str, rate_per_minute: float | None = None, burst: int | None = None, id: str | None = None) -> KeyRecord:
        salt = secrets.token_hex(16)
        return cls(
            id=id or f"key_{secrets.token_hex(4)}",
            name=name,
            salt=salt,
            sha256=hash_key(key, salt),
            created_at=_now(),
            rate_per_minute=rate_per_minute,
            burst=burst,
        )

    def matches(self, key: str) -> bool:
        return hmac.compare_digest(hash_key(key, self.salt), self.sha256)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def read_key_file(path: Path) -> list[KeyRecord]:
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or data.get("version") != FILE_VERSION:
        raise ValueError(f"{path} is not a key file of version {FILE_VERSION}")
    return [KeyRecord(**record) for record in data.get("keys", [])]


def write_key_file(path: Path, records: list[KeyRecord]) -> None:
    """Atomic (a temporary file, then a rename) and readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"version": FILE_VERSION, "keys": [asdict(r) for r in records]}, indent=2)
    handle, temp = tempfile.mkstemp(prefix=".keys-", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(payload + "\n")
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def env_records(keys: str) -> list[KeyRecord]:
    records = []
    for index, key in enumerate(k.strip() for k in keys.split(",")):
        if not key:
            continue
        if len(key) < MIN_KEY_CHARS:
            raise ValueError(
                f"FASHION_API_KEYS entry {index} is {len(key)} characters; keys need at least {MIN_KEY_CHARS} (make one with `fashion-studio keys new`)"
            )
        records.append(KeyRecord.create(key, name=f"env-{index}", id=f"env-{index}"))
    return records


@dataclass
class TokenBucket:
    rate_per_s: float
    capacity: float
    tokens: float
    updated: float = field(default_factory=time.monotonic)

    def take(self, now: float) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_s


@dataclass(frozen=True)
class Decision:
    status: Literal[200, 401, 403, 429]
    key_id: str | None = None
    retry_after_s: float = 0.0
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 200


class Keyring:
    """The configured keys plus a token bucket per key; the file is re-read when it changes."""

    def __init__(self, file: Path | None, env_keys: str | None, rate_per_minute: float, burst: int) -> None:
        self.file = file
        self.rate_per_minute = rate_per_minute
        self.burst = burst
        self._env = env_records(env_keys) if env_keys else []
        self._file_records: list[KeyRecord] = []
        self._file_stamp: tuple[float, int] | None = None
        self._checked = 0.0
        self._buckets: dict[str, TokenBucket] = {}
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()
        self._reload(force=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        keys = settings.api_keys.get_secret_value() if settings.api_keys else None
        return cls(settings.api_keys_file, keys, settings.rate_limit_per_minute, settings.rate_limit_burst)

    @property
    def enabled(self) -> bool:
        return bool(self._env) or self.file is not None

    def records(self) -> list[KeyRecord]:
        self._reload()
        return [*self._env, *self._file_records]

    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.file is None or (not force and now - self._checked < RELOAD_INTERVAL_S):
            return
        self._checked = now
        try:
            stat = self.file.stat()
            stamp = (stat.st_mtime, stat.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._file_stamp and not force:
            return
        try:
            self._file_records = read_key_file(self.file)
            self._file_stamp = stamp
            logger.info(
                "API keys: %d from %s (%d revoked), %d from the environment",
                len(self._file_records),
                self.file,
                sum(r.revoked for r in self._file_records),
                len(self._env),
            )
        except (OSError, ValueError, TypeError) as exc:
            # Keep the keys we had: a half-written or broken file must not open or close the door.
            logger.error("API key file %s unreadable, keeping the previous keys: %s", self.file, exc)

    def authorize(self, authorization: str | None) -> Decision:
        """Check an `Authorization` header value and spend one token of its key's bucket."""
        key = _bearer(authorization)
        if key is None:
            return Decision(401, message="send an API key as `Authorization: Bearer KEY`")
        with self._lock:
            record = next((r for r in self.records() if r.matches(key)), None)
            if record is None:
                return Decision(401, message="unknown API key")
            if record.revoked:
                return Decision(403, key_id=record.id, message=f"API key {record.id} was revoked at {record.revoked_at}")
            rate = record.rate_per_minute or self.rate_per_minute
            burst = record.burst or self.burst
            bucket = self._buckets.get(record.id)
            if bucket is None or bucket.rate_per_s != rate / 60.0 or bucket.capacity != burst:
                bucket = self._buckets[record.id] = TokenBucket(rate / 60.0, float(burst), float(burst))
            wait = bucket.take(time.monotonic())
        if wait > 0:
            return Decision(
                429, key_id=record.id, retry_after_s=wait, message=f"API key {record.id} is limited to {rate:g} requests per minute (burst {burst})"
            )
        return Decision(200, key_id=record.id)

    def acquire(self, key_id: str) -> Decision:
        """Take one of the key's in-flight slots (as many as its burst); `release` gives it back."""
        with self._lock:
            bucket = self._buckets.get(key_id)
            limit = int(bucket.capacity) if bucket is not None else self.burst
            held = self._in_flight.get(key_id, 0)
            if held >= limit:
                return Decision(429, key_id=key_id, retry_after_s=1.0, message=f"API key {key_id} may have at most {limit} requests in flight at once")
            self._in_flight[key_id] = held + 1
        return Decision(200, key_id=key_id)

    def release(self, key_id: str) -> None:
        with self._lock:
            held = self._in_flight.get(key_id, 0) - 1
            if held > 0:
                self._in_flight[key_id] = held
            else:
                self._in_flight.pop(key_id, None)

    def in_flight(self, key_id: str) -> int:
        with self._lock:
            return self._in_flight.get(key_id, 0)


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- `fashion-studio keys` ------------------------------------------------------------------------

keys_app = typer.Typer(no_args_is_help=True, help="API keys of the gateway: add, revoke, list (a hash file).")

FileOption = Annotated[
    Optional[Path],
    typer.Option("--file", "-f", help="Key file; defaults to FASHION_API_KEYS_FILE."),
]


def _key_file(file: Path | None) -> Path:
    path = file or get_settings().api_keys_file
    if path is None:
        typer.secho("error: no key file: pass --file or set FASHION_API_KEYS_FILE", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    return path


@keys_app.command("add")
def add_key(
    name: Annotated[str, typer.Argument(help="Who or what uses the key (shown by `keys list`).")],
    file: FileOption = None,
    rate: Annotated[Optional[float], typer.Option(help="Requests per minute for this key (default: FASHION_RATE_LIMIT_PER_MINUTE).")] = None,
    burst: Annotated[Optional[int], typer.Option(help="Bucket size for this key (default: FASHION_RATE_LIMIT_BURST).")] = None,
) -> None:
    """Create a key, store its salted hash, print the key once (it cannot be shown again)."""
    path = _key_file(file)
    records = read_key_file(path)
    key = new_key()
    record = KeyRecord.create(key, name=name, rate_per_minute=rate, burst=burst)
    write_key_file(path, [*records, record])
    typer.echo(f"{record.id} {key}")
    typer.secho(f"stored the hash of {record.id} ({name}) in {path}; keep the key now, it is not stored", err=True)


@keys_app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="Id (or name) of the key, as `keys list` shows it.")],
    file: FileOption = None,
) -> None:
    """Mark a key revoked: the gateway answers 403 for it within a second."""
    path = _key_file(file)
    records = read_key_file(path)
    matches = [r for r in records if r.id == key_id] or [r for r in records if r.name == key_id]
    if len(matches) != 1:
        typer.secho(f"error: {len(matches)} keys match {key_id!r}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    if matches[0].revoked_at is None:
        matches[0].revoked_at = _now()
    write_key_file(path, records)
    typer.echo(f"revoked {matches[0].id} ({matches[0].name})")


@keys_app.command("list")
def list_keys(file: FileOption = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Ids, names, dates and limits of the stored keys (never hashes or keys)."""
    rows: list[dict[str, Any]] = [
        {"id": r.id, "name": r.name, "created_at": r.created_at, "revoked_at": r.revoked_at, "rate_per_minute": r.rate_per_minute, "burst": r.burst}
        for r in read_key_file(_key_file(file))
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        limit = f"{row['rate_per_minute']:g}/min" if row["rate_per_minute"] else "default rate"
        typer.echo(f"{row['id']}  {row['name']:<20} {row['created_at']}  {state:<34} {limit}")


@keys_app.command("new")
def print_new_key() -> None:
    """Print a fresh random key without storing it (for FASHION_API_KEYS in a Secret)."""
    typer.echo(new_key())
