"""One mapping from what went wrong to an HTTP status and a JSON body that says which field, which
value and which limit; every refusal is counted by endpoint and reason."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import aiohttp
import bentoml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fashion_studio import metrics
from fashion_studio.errors import (
    ConflictError,
    DeadlineExceededError,
    FashionStudioError,
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    UnavailableError,
    UnsupportedMediaError,
)
from fashion_studio.safety import ContentBlockedError
from fashion_studio.settings import get_settings

logger = logging.getLogger(__name__)
SETTINGS = get_settings()


def error_response(status: int, reason: str, endpoint: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    metrics.FAILURES.labels(endpoint=endpoint, reason=reason).inc()
    return JSONResponse({"error": reason, **body}, status_code=status, headers=headers)


def _limit_of(error: dict[str, Any]) -> str:
    message = str(error.get("msg", ""))
    return message.removeprefix("Input should be ").removeprefix("Value error, ")


def echo(value: Any) -> Any:
    """A request value as it can be echoed in a JSON error: short, valid UTF-8, finite."""
    if isinstance(value, str):
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return f"{value[:80]}... ({len(value)} chars)" if len(value) > 80 else value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (int, float, bool, type(None))):
        return value
    return echo(repr(value)[:80])


def install(app: FastAPI, endpoint_of: Callable[[Request], str]) -> None:
    """Register the handlers on `app`; `endpoint_of` names a request's endpoint for the metrics (a
    route's path template, so that scanned paths do not each get a label)."""

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for error in exc.errors():
            loc = [str(p) for p in error.get("loc", ()) if p != "body"]
            errors.append(
                {"field": ".".join(loc) or "body", "value": echo(error.get("input")), "limit": echo(_limit_of(error)), "message": echo(error.get("msg"))}
            )
        first = errors[0] if errors else {"field": "body", "value": None, "limit": "valid JSON"}
        return error_response(422, "invalid_input", endpoint_of(request), {**first, "errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """FastAPI's own refusals (an unparsable body, an unknown path or method) in the same shape."""
        if exc.status_code == 400:
            body = {
                "field": "body",
                "value": request.headers.get("content-type"),
                "limit": "a JSON object sent as application/json",
                "message": str(exc.detail),
            }
            return error_response(400, "invalid_input", endpoint_of(request), body)
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
        return error_response(exc.status_code, reason, endpoint_of(request), body, dict(exc.headers or {}))

    @app.exception_handler(FashionStudioError)
    async def _domain_error(request: Request, exc: FashionStudioError) -> JSONResponse:
        endpoint = endpoint_of(request)
        if isinstance(exc, PayloadTooLargeError):
            return error_response(413, "too_large", endpoint, exc.to_dict())
        if isinstance(exc, NotFoundError):
            return error_response(404, "not_found", endpoint, exc.to_dict())
        if isinstance(exc, ConflictError):
            return error_response(409, "conflict", endpoint, exc.to_dict())
        if isinstance(exc, UnsupportedMediaError):
            return error_response(415, "unsupported_media", endpoint, exc.to_dict())
        if isinstance(exc, DeadlineExceededError):
            return error_response(504, "timeout", endpoint, {"message": str(exc), "limit": f"request must finish within {SETTINGS.batching.timeout_s} s"})
        if isinstance(exc, ContentBlockedError):
            return error_response(422, "content_blocked", endpoint, exc.to_dict())
        if isinstance(exc, InvalidInputError):
            return error_response(422, "invalid_input", endpoint, exc.to_dict())
        if isinstance(exc, UnavailableError):
            body = {"message": str(exc), "unavailable": exc.what}
            return error_response(503, "unavailable", endpoint, body, {"Retry-After": str(max(1, round(exc.retry_after_s)))})
        if isinstance(exc, OverloadedError):
            return error_response(429, "overloaded", endpoint, {"message": str(exc)}, {"Retry-After": str(max(1, round(exc.retry_after_s)))})
        logger.exception("unhandled project error")
        return error_response(500, "internal", endpoint, {"message": str(exc)})

    @app.exception_handler(bentoml.exceptions.BentoMLException)
    async def _dependency_error(request: Request, exc: bentoml.exceptions.BentoMLException) -> JSONResponse:
        status = int(exc.error_code)
        if status == 429 or status == 503:
            return error_response(503, "unavailable", endpoint_of(request), {"message": str(exc)}, {"Retry-After": "1"})
        if status == 504:
            return error_response(504, "timeout", endpoint_of(request), {"message": str(exc)})
        logger.error("dependency failed: %s", exc)
        return error_response(502, "dependency_failed", endpoint_of(request), {"message": str(exc)})

    @app.exception_handler(aiohttp.ClientError)
    async def _dependency_unreachable(request: Request, exc: aiohttp.ClientError) -> JSONResponse:
        """A model service that cannot be reached (restarting, gone): the client may retry."""
        logger.error("model service unreachable: %s", exc)
        body = {"message": f"a model service is unreachable ({type(exc).__name__})"}
        return error_response(503, "unavailable", endpoint_of(request), body, {"Retry-After": "1"})
