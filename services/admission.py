"""Who gets in: `Guard` sits in front of every API route of the gateway.

In this order: draining (503), API key (401/403) and its rate (429), body size (413), concurrency
(429 + Retry-After), then the request under the timeout (504); plus the in-flight gauge and the request
metrics, labelled by the route's path template. Health and metrics paths are BentoML's and never reach
this app; the OpenAPI schema, its docs and static files are not guarded.

With API keys on, a key may have at most its burst of requests in flight (429 `key_busy`), so one
client's burst of long requests does not starve the others. A client that disconnects before its
answer has its request cancelled, and with it the model work started for it (`client_gone`): each
request gets an id that its generate items carry, and the generator drops that id's work.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route, compile_path

from fashion_studio import metrics
from fashion_studio.auth import Keyring, retry_after_header
from fashion_studio.settings import get_settings
from services.errors import error_response
from services.lifecycle import TRAFFIC
from services.model_client import cancel_work
from services.schemas import REQUEST_ID

logger = logging.getLogger(__name__)
SETTINGS = get_settings()
LIMITS = SETTINGS.limits
KEYS = Keyring.from_settings(SETTINGS)


class Shedding:
    """The Retry-After of a request turned away at capacity: about when a slot will be free for it.

    A constant 1 s has every waiting client knock once a second: at four times capacity the gateway
    answers three 429s for every request it admits, and on a small machine that work is taken from
    the models. Clients waiting W (the sheds of the last seconds, each counted for the Retry-After it
    was given) with slots freeing at the admission rate A wait about W / A. With a queue in front of
    the slots (`Traffic.take_slot`) they are told all of it: the queued requests keep the slots busy
    meanwhile. Without one, half (`share` 0.5), so that retries arrive faster than slots free and no
    slot stands idle. At most `most_s`, at least 1 s.
    """

    def __init__(self, window_s: float = 5.0, most_s: int = 10, share: float = 1.0) -> None:
        self.window_s = window_s
        self.most_s = most_s
        self.share = share
        self.admitted = 0.0  # admissions in the last `window_s`, decayed exponentially
        self.waiting = 0.0  # sum of the Retry-After given in the last `window_s`, likewise
        self.last = time.monotonic()

    def _decay(self) -> None:
        now = time.monotonic()
        keep = math.exp(-(now - self.last) / self.window_s)
        self.admitted *= keep
        self.waiting *= keep
        self.last = now

    def admit(self) -> None:
        self._decay()
        self.admitted += 1.0

    def retry_after_s(self) -> int:
        self._decay()
        waiting_clients = self.waiting / self.window_s
        admitted_per_s = self.admitted / self.window_s
        seconds = self.share * waiting_clients / admitted_per_s if admitted_per_s > 0 else 1.0
        value = max(1, min(self.most_s, math.ceil(seconds)))
        self.waiting += value
        return value


SHEDDING = Shedding(share=1.0 if SETTINGS.batching.queue_length and SETTINGS.batching.queue_wait_s else 0.5)


@dataclass(frozen=True)
class _Route:
    template: str
    regex: re.Pattern[str]
    api: bool


def _walk(routes: list[Any], prefix: str = "") -> Iterator[_Route]:
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:  # a router included with `include_router`, under its prefix
            yield from _walk(included.routes, prefix + getattr(getattr(route, "include_context", None), "prefix", ""))
        elif isinstance(route, (APIRoute, Route)):
            template = prefix + route.path
            yield _Route(template, compile_path(template)[0], isinstance(route, APIRoute))
        elif isinstance(route, Mount):
            template = prefix + route.path
            yield _Route(template + "/{path}", re.compile("^" + re.escape(template) + "(/.*)?$"), False)


@lru_cache(maxsize=8)
def _routes(api: FastAPI, version: int) -> tuple[_Route, ...]:
    return tuple(_walk(api.router.routes))


def route_of(api: FastAPI, scope: dict) -> tuple[str, bool]:
    """The path template of the route that serves `scope` ("other" when none does, so that scanned
    paths do not each get a metric label), and whether it is an API route, which the guard admits,
    rather than the schema, its docs or static files."""
    path = scope.get("path", "")
    for route in _routes(api, len(api.router.routes)):
        if route.regex.match(path):
            return route.template, route.api
    return "other", False


class Guard:
    def __init__(self, app: Any, api: FastAPI) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint, guarded = route_of(self.api, scope)
        if not guarded:
            return await self.app(scope, receive, send)
        status_holder = {"code": 500, "started": False}

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_holder["code"] = message["status"]
                status_holder["started"] = True
            await send(message)

        start = time.perf_counter()
        try:
            await self._guarded(scope, receive, send_wrapper, endpoint, status_holder)
        finally:
            metrics.REQUESTS.labels(endpoint=endpoint, code=str(status_holder["code"])).inc()
            metrics.REQUEST_DURATION.labels(endpoint=endpoint).observe(time.perf_counter() - start)

    async def _guarded(self, scope: dict, receive: Any, send: Any, endpoint: str, status: dict) -> None:
        if TRAFFIC.draining:
            return await _shutting_down(endpoint)(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if KEYS.enabled:
            authorization = headers.get(b"authorization")
            decision = KEYS.authorize(authorization.decode("latin-1") if authorization else None)
            if not decision.allowed:
                reason, extra = {
                    401: ("unauthorized", {"WWW-Authenticate": 'Bearer realm="fashion-studio"'}),
                    403: ("forbidden", {}),
                    429: ("rate_limited", {"Retry-After": retry_after_header(decision.retry_after_s)}),
                }[decision.status]
                body = {"field": "authorization", "value": decision.key_id, "limit": decision.message}
                return await error_response(decision.status, reason, endpoint, body, extra)(scope, receive, send)
            assert decision.key_id is not None
            held = KEYS.acquire(decision.key_id)
            if not held.allowed:
                body = {"field": "authorization", "value": held.key_id, "limit": held.message}
                return await error_response(429, "key_busy", endpoint, body, {"Retry-After": retry_after_header(held.retry_after_s)})(scope, receive, send)
            try:
                return await self._admitted(scope, receive, send, endpoint, status, headers)
            finally:
                KEYS.release(decision.key_id)
        return await self._admitted(scope, receive, send, endpoint, status, headers)

    async def _admitted(self, scope: dict, receive: Any, send: Any, endpoint: str, status: dict, headers: dict) -> None:
        limit = LIMITS.max_body_bytes
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            response = error_response(
                413, "too_large", endpoint, {"field": "body", "value": f"{int(length)} bytes", "limit": f"body must be at most {limit} bytes"}
            )
            return await response(scope, receive, send)
        batching = SETTINGS.batching
        if not await TRAFFIC.take_slot(batching.max_concurrency, batching.queue_length, batching.queue_wait_s):
            if TRAFFIC.draining:  # it waited for a slot when the drain began
                return await _shutting_down(endpoint)(scope, receive, send)
            limit = f"at most {batching.max_concurrency} requests in flight and {batching.queue_length} waiting up to {batching.queue_wait_s:g} s for a slot"
            response = error_response(
                429,
                "overloaded",
                endpoint,
                {"field": "concurrency", "value": TRAFFIC.in_flight + len(TRAFFIC.waiting), "limit": limit},
                {"Retry-After": str(SHEDDING.retry_after_s())},
            )
            return await response(scope, receive, send)
        SHEDDING.admit()
        metrics.IN_FLIGHT.labels(service="studio").inc()
        slot = {"held": True}

        def release() -> None:
            if slot["held"]:
                slot["held"] = False
                TRAFFIC.free_slot()
                metrics.IN_FLIGHT.labels(service="studio").dec()

        try:
            await self._in_slot(scope, receive, send, endpoint, status, length, release)
        finally:
            release()

    async def _in_slot(self, scope: dict, receive: Any, send: Any, endpoint: str, status: dict, length: bytes | None, release: Callable[[], None]) -> None:
        limit = LIMITS.max_body_bytes
        if length is None and scope.get("method") not in ("GET", "HEAD"):
            # No Content-Length (chunked): read the body here, up to the limit, so the limit answers 413.
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > limit:
                    response = error_response(
                        413, "too_large", endpoint, {"field": "body", "value": f"over {limit} bytes", "limit": f"body must be at most {limit} bytes"}
                    )
                    return await response(scope, receive, send)
                if not message.get("more_body", False):
                    break
            receive = _replay(b"".join(chunks), receive)

        task = asyncio.current_task()
        if task is not None:
            TRAFFIC.tasks.add(task)
        REQUEST_ID.set(uuid.uuid4().hex)
        inner_send = send

        async def send(message: dict) -> None:
            # The slot frees before the answer's last bytes go out: a client that sends its next
            # request the moment it has this answer must not find its own finished request in flight.
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                release()
            await inner_send(message)

        try:
            await asyncio.wait_for(self._until_disconnect(scope, receive, send, endpoint, status), timeout=SETTINGS.batching.timeout_s)
        except TimeoutError:
            if not status["started"]:
                response = error_response(504, "timeout", endpoint, {"limit": f"request must finish within {SETTINGS.batching.timeout_s} s"})
                await response(scope, receive, send)
        except asyncio.CancelledError:
            if not TRAFFIC.cut or task is None:
                raise
            task.uncancel()  # cut by the drain at the end of the grace period: answer, then let it go
            if not status["started"]:
                response = error_response(
                    503,
                    "shutting_down",
                    endpoint,
                    {"message": f"cut at the end of the {SETTINGS.shutdown_grace_s:g} s shutdown grace period"},
                    {"Retry-After": "1", "Connection": "close"},
                )
                await response(scope, receive, send)
        finally:
            TRAFFIC.tasks.discard(task)  # type: ignore[arg-type]

    async def _until_disconnect(self, scope: dict, receive: Any, send: Any, endpoint: str, status: dict) -> None:
        """Run the route; when its client disconnects first, cancel it and the model work it started."""
        watch = _DisconnectWatch(receive)
        route = asyncio.ensure_future(self.app(scope, watch.receive, send))
        gone = asyncio.ensure_future(watch.listen())
        try:
            await asyncio.wait({route, gone}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # this request is cut (timeout, drain): the route goes with it
            gone.cancel()
            route.cancel()
            await asyncio.wait({route})
            raise
        gone.cancel()
        if route.done():
            return route.result()
        route.cancel()
        status["code"] = 499  # nginx's "client closed request": nobody reads an answer
        metrics.FAILURES.labels(endpoint=endpoint, reason="client_gone").inc()
        logger.info("client of %s %s went away; cancelling its work", scope.get("method"), endpoint)
        await cancel_work(REQUEST_ID.get())
        try:
            await route
        except (asyncio.CancelledError, Exception) as exc:  # nobody reads its answer
            logger.debug("cancelled route ended with %s", type(exc).__name__)


def _shutting_down(endpoint: str) -> Any:
    return error_response(
        503, "shutting_down", endpoint, {"message": "this instance is shutting down; retry on another"}, {"Retry-After": "1", "Connection": "close"}
    )


class _DisconnectWatch:
    """Hands the route its request body, then listens for the client going away. Only this listener
    reads the connection after the body; the route's later reads see the disconnect it heard."""

    def __init__(self, receive: Any) -> None:
        self._receive = receive
        self._body_read = asyncio.Event()
        self._gone = asyncio.Event()

    async def receive(self) -> dict:
        if self._body_read.is_set():
            await self._gone.wait()
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self._gone.set()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            self._body_read.set()
        return message

    async def listen(self) -> None:
        await self._body_read.wait()
        while not self._gone.is_set():
            if (await self._receive())["type"] == "http.disconnect":
                self._gone.set()


def _replay(body: bytes, receive: Any) -> Any:
    """An ASGI `receive` that hands out an already-read body, then defers to the connection."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> dict:
        return pending.pop() if pending else await receive()

    return replayed
