"""Calls from the gateway to the model services: deadlines, retries of calls that were never served,
cancellation of work whose client went away, and the conversion of a model service's per-item
answer back into the library's types and errors."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
import bentoml

from fashion_studio.generation import GenerationRequest, GenerationResult
from fashion_studio.settings import get_settings
from services.schemas import GenerateOutput, GenerateWork, ItemOutput, image_from_b64

logger = logging.getLogger(__name__)
SETTINGS = get_settings()
T = TypeVar("T")
# Pauses before the retries of a model-service call that failed before it was served.
RETRY_PAUSES_S = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5)


def keep_calls_across_session_refresh() -> None:
    """Let BentoML's client replace its session without stranding the calls still on the old one.

    The client (`_bentoml_impl.client.proxy2.SessionManager`) replaces its aiohttp session every
    `runner_connection.max_requests` calls or `max_age` seconds, which spreads the gateway's
    connections over new model-service replicas, and closes the old session at once. A call whose
    answer was still being read on that session then waits for its timeout instead of failing (one
    `/generate_image` answered 504 after 300 s in `make bench-serving`, the generator having answered
    in 1.2 s; `tests/test_model_client.py` reproduces it). Here the old session is closed only after the
    client's own timeout, when every call on it has ended, or when the client itself closes; new calls
    get the new session at once.
    Idempotent; the pinned BentoML's attributes are checked by the test."""
    from _bentoml_impl.client.proxy2 import SessionManager

    if getattr(SessionManager, "_closes_old_sessions_late", False):
        return
    replace, close_current = SessionManager.get_session, SessionManager.close

    def replaced(manager: SessionManager) -> dict[aiohttp.ClientSession, asyncio.Task]:
        """The replaced sessions still open, each with the task that closes it (held here, so that
        the event loop's weak reference is not the only one)."""
        if "_replaced" not in manager.__dict__:
            manager._replaced = {}
        return manager._replaced

    async def close_after(manager: SessionManager, session: aiohttp.ClientSession, delay: float) -> None:
        await asyncio.sleep(delay)
        replaced(manager).pop(session, None)
        await session.close()

    async def get_session(self: SessionManager) -> aiohttp.ClientSession:
        old = self._session
        if old is not None and self._should_refresh():
            self._session = None  # the original makes a new one without closing this
            delay = self._timeout.total or SETTINGS.batching.timeout_s
            replaced(self)[old] = asyncio.get_running_loop().create_task(close_after(self, old, delay))
        return await replace(self)

    async def close(self: SessionManager) -> None:
        """The client's own close, and the replaced sessions' closes that have not come yet."""
        for session, task in list(replaced(self).items()):
            task.cancel()
            replaced(self).pop(session, None)
            await session.close()
        await close_current(self)

    SessionManager.get_session = get_session
    SessionManager.close = close
    SessionManager._closes_old_sessions_late = True


keep_calls_across_session_refresh()


def request_deadline() -> float:
    """Work for a request is worthless past its timeout; the generator stops there."""
    return time.time() + SETTINGS.batching.timeout_s


class AttemptTimeoutError(Exception):
    """One attempt of a short model call got no answer within its bound."""


def retryable(exc: BaseException) -> bool:
    """Failures that say nothing about the request: a model service at its concurrency limit for a
    moment (429/503), or a connection that BentoML's client lost under us (a pooled connection the
    server had closed, or the client session it replaces every 100 calls or 300 s closed with calls
    still in it). Model calls have no side effects, so calling again is safe (a generation made again
    joins the first, see `generate_work`); a call that timed out is not called again, unless it was
    one attempt of a short call that got no answer within its bound."""
    if isinstance(exc, AttemptTimeoutError):
        return True
    if isinstance(exc, asyncio.TimeoutError):
        return False
    if isinstance(exc, aiohttp.ClientConnectionError):
        return True
    if isinstance(exc, RuntimeError) and "Session is closed" in str(exc):
        return True
    return isinstance(exc, bentoml.exceptions.BentoMLException) and int(exc.error_code) in (429, 503)


async def call_model(call: Callable[[], Awaitable[T]], attempt_timeout_s: float | None = None) -> T:
    """Call a model service, again after a failure that says nothing about the request. With
    `attempt_timeout_s` (for short, side-effect-free calls such as scoring), an attempt that gets no
    answer in time is abandoned and made again: a call lost in a connection pool must not hold its
    request until the request's own timeout."""
    for pause in (*RETRY_PAUSES_S, None):
        try:
            if attempt_timeout_s is None:
                return await call()
            try:
                return await asyncio.wait_for(call(), timeout=attempt_timeout_s)
            except TimeoutError:
                raise AttemptTimeoutError(f"no answer within {attempt_timeout_s:g} s") from None
        except Exception as exc:
            if pause is None or not retryable(exc):
                raise
            if isinstance(exc, AttemptTimeoutError):
                logger.warning("model call got %s; calling again", exc)
            logger.debug("model call failed (%s: %s); again in %.2f s", type(exc).__name__, exc, pause)
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")


def call_model_sync(call: Callable[[], T]) -> T:
    for pause in (*RETRY_PAUSES_S, None):
        try:
            return call()
        except Exception as exc:
            if pause is None or not retryable(exc):
                raise
            time.sleep(pause)
    raise AssertionError("unreachable")


async def cancel_work(request_id: str) -> None:
    """Tell the generator that nobody awaits a gateway request's work any more (its client went away),
    so that the work stops before its next denoising step instead of at its deadline."""
    if not request_id:
        return
    try:
        dropped = await asyncio.wait_for(bentoml.get_current_service().generator.to_async.cancel([request_id]), timeout=5.0)
        logger.info("request %s: %d generation item(s) cancelled", request_id, dropped)
    except Exception as exc:  # the work still stops at its deadline
        logger.warning("cancelling request %s in the generator failed: %s: %s", request_id, type(exc).__name__, exc)


def generate_work(request: GenerationRequest, score: bool = False) -> GenerateWork:
    """The generator's work for one request: enqueued now, due at the request's deadline, tagged with
    the gateway request it serves (for `cancel`), its seed drawn here, so that a call made again after
    a lost connection is the same work and joins the first instead of running twice. `score` asks the
    generator's process for each image's CLIP score against the prompt, where it scores."""
    return GenerateWork(request=request.with_seed(), enqueued_at=time.time(), deadline=request_deadline(), score=score)


def raise_item_error(output: ItemOutput) -> None:
    """Raise the error a model service answered for one item (of any batchable call), as the library
    raised it there, so the gateway's one error mapping answers it."""
    if output.error is not None:
        raise output.error.exception()


def to_result(output: GenerateOutput) -> GenerationResult:
    raise_item_error(output)
    return GenerationResult(
        images=[image_from_b64(im.png_b64) for im in output.images],
        seeds=[im.seed for im in output.images],
        timings=output.timings,
        batch_images=output.batch_images,
        model=output.model,
    )
