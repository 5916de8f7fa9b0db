"""Error kinds shared by the library, the CLI and the services.

Each error names the field, the value and the limit, so a caller can fix the request without reading
the code. The gateway maps the kinds to HTTP statuses in one place (its exception handlers in
`services/gateway.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    if len(text) > limit:
        return f"{text[:limit]}... ({len(str(value))} chars)"
    return text


class FashionStudioError(Exception):
    """Base of every error the project raises on purpose."""


class InvalidInputError(FashionStudioError, ValueError):
    """A request value is out of bounds or malformed (HTTP 422)."""

    def __init__(self, field: str, value: Any, limit: str) -> None:
        self.field = field
        self.value = value
        self.limit = limit
        super().__init__(f"{field}={_short(value)} is invalid: {limit}")

    def to_dict(self) -> dict[str, Any]:
        value = self.value if isinstance(self.value, (int, float, bool)) or self.value is None else _short(self.value)
        return {"field": self.field, "value": value, "limit": self.limit, "message": str(self)}


class PayloadTooLargeError(InvalidInputError):
    """A body, an image or a text is larger than its limit (HTTP 413)."""


class UnsupportedMediaError(InvalidInputError):
    """An image is not one of the accepted formats (HTTP 415)."""


class NotFoundError(InvalidInputError):
    """A request names a stored thing (an image, a session, a product) that does not exist (HTTP 404)."""


class ConflictError(InvalidInputError):
    """A valid request that the current state of what it names does not allow, such as editing in a
    conversation that has no image yet (HTTP 409)."""


class ModelNotFoundError(FashionStudioError, FileNotFoundError):
    """A model reference resolves to nothing on this machine and cannot be downloaded."""


class DeadlineExceededError(FashionStudioError, TimeoutError):
    """The work did not finish before its deadline and was stopped (HTTP 504)."""


class RequestCancelledError(FashionStudioError):
    """The request was cancelled (its client went away) before it finished; nothing awaits it."""


class UnavailableError(FashionStudioError):
    """A backing store or a part of the deployment cannot be reached or is not installed (HTTP 503);
    the client may retry after `retry_after_s`."""

    def __init__(self, what: str, message: str, retry_after_s: float = 1.0) -> None:
        self.what = what
        self.retry_after_s = retry_after_s
        super().__init__(message)


class OverloadedError(FashionStudioError):
    """More work than the configured concurrency (HTTP 429)."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


def without_password(url: str) -> str:
    """A store URL fit for an error message or a log: its password (`//user:secret@`) masked."""
    return re.sub(r"//[^@/]*@", "//***@", url)


@contextmanager
def redis_reachable(what: str, store: str, url: str) -> Iterator[None]:
    """Turn redis-py's errors that mean the server cannot take a command now (not that the command is
    wrong) into UnavailableError `what` naming `store` (503 with Retry-After), not a 500: unreachable, timed
    out, out of memory under `noeviction`, loading its data, a read-only replica."""
    import redis

    e = redis.exceptions
    try:
        yield
    except (e.ConnectionError, e.TimeoutError, e.OutOfMemoryError, e.BusyLoadingError, e.ReadOnlyError) as exc:
        raise UnavailableError(what, f"the {store} {without_password(url)} cannot be reached: {exc}") from exc
