"""`Studio`, the public gateway: a thin FastAPI app mounted in a BentoML service.

It validates requests (422 naming field, value and limit; 413; 415), sheds load beyond
`max_concurrency` with 429 and `Retry-After`, bounds every request by the timeout (504), and composes
the batchable model services, which `bentoml.depends` lets scale on their own.

When API keys are configured it requires `Authorization: Bearer KEY` (401, 403 revoked, 429 per-key
rate). Generated images pass the safety check before they are stored. On SIGTERM it drains: new work
gets 503 and `/readyz` turns 503 at once, accepted requests finish (their model services keep serving
until the gateway is gone), and past `shutdown_grace_s` whatever still runs is cut with 503.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, TypeVar

import aiohttp
import bentoml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from fashion_studio import metrics, models
from fashion_studio.auth import Keyring, retry_after_header
from fashion_studio.catalog import Article, CatalogParams, CatalogPipeline
from fashion_studio.errors import DeadlineExceededError, FashionStudioError, InvalidInputError, OverloadedError, PayloadTooLargeError, UnsupportedMediaError
from fashion_studio.generation import GenerationRequest, GenerationResult, check_prompt
from fashion_studio.images import decode_b64, load_image
from fashion_studio.safety import ClipConceptFilter, ContentBlockedError, SafetyChecker, Verdict, build_checker, check_results
from fashion_studio.settings import get_settings
from fashion_studio.storage import Storage
from services.loading import BackgroundLoad
from services.generator import Generator
from services.schemas import GenerateItem, GenerateOutput, ScoreItem, image_from_b64, png_b64, png_bytes
from services.scorer import Scorer
from services.translator import Translator

logger = logging.getLogger(__name__)
SETTINGS = get_settings()
LIMITS = SETTINGS.limits
KEYS = Keyring.from_settings(SETTINGS)

# The model services listen on loopback TCP rather than unix sockets: `bentoml serve` deletes its
# unix-socket folder the moment it is asked to stop, which would cut the gateway off its model
# services in the middle of a graceful drain. `bentoml serve` imports this module before it creates
# the sockets, so this takes effect for every way of starting the deployment.
os.environ.setdefault("BENTOML_NO_UDS", "1")

# --- request and response models -----------------------------------------------------------------

# C0/C1 control characters (tab, newline and carriage return allowed) and lone UTF-16 surrogates,
# which JSON can carry but no tokenizer, log or UTF-8 file should get.
_FORBIDDEN_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# base64 has no ':', so a scheme at the start means the client sent a URL instead of image bytes.
_URL = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]{0,30}:")
_DATA_URL = re.compile(r"^data:image/(png|jpeg|webp);base64,", re.IGNORECASE)
# The same rules, stated in the OpenAPI schema for clients and schema-driven fuzzers; the validators
# below enforce them with errors that name the character.
TEXT_SCHEMA = {"pattern": "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"}
IMAGE_SCHEMA = {"pattern": "^(data:image/(png|jpeg|webp);base64,)?[A-Za-z0-9+/]*={0,2}$"}


def plain_text(value: str) -> str:
    if found := _FORBIDDEN_CHARS.search(value):
        raise ValueError(f"must not contain control characters or lone surrogates (found U+{ord(found.group()):04X} at {found.start()})")
    return value


def image_bytes_b64(value: str) -> str:
    """Image bytes as base64, or a `data:image/...;base64,` URL of them; other URLs are never fetched."""
    if match := _DATA_URL.match(value):
        return value[match.end():]
    if _URL.match(value):
        raise ValueError("URLs are not fetched: send the image itself as base64 (PNG, JPEG or WebP)")
    return value


Size = Annotated[int, Field(ge=LIMITS.min_size, le=LIMITS.max_size, multiple_of=LIMITS.size_multiple)]
Prompt = Annotated[str, Field(min_length=1, max_length=LIMITS.max_prompt_chars, json_schema_extra=TEXT_SCHEMA), AfterValidator(plain_text)]


class GenerateRequest(BaseModel):
    prompt: Prompt
    negative_prompt: Annotated[str, Field(max_length=LIMITS.max_prompt_chars, json_schema_extra=TEXT_SCHEMA), AfterValidator(plain_text)] | None = None
    num_images: Annotated[int, Field(ge=1, le=LIMITS.max_images_per_prompt)] = 1
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    steps: Annotated[int, Field(ge=1, le=LIMITS.max_steps)] = SETTINGS.default_steps
    guidance: Annotated[float, Field(ge=0.0, le=LIMITS.max_guidance)] = SETTINGS.default_guidance
    width: Size = SETTINGS.default_width
    height: Size = SETTINGS.default_height


class ImageOut(BaseModel):
    url: str
    seed: int
    width: int
    height: int
    clip_score: float


class GenerateResponse(BaseModel):
    images: list[ImageOut]
    model: str
    timings: dict[str, float]
    blocked: int = Field(0, description="Images the safety check removed from this answer (never stored).")


class CatalogRequest(BaseModel):
    article_id: Annotated[str, Field(min_length=1, max_length=128, json_schema_extra=TEXT_SCHEMA), AfterValidator(plain_text)]
    description: Annotated[str, Field(min_length=1, max_length=LIMITS.max_description_chars, json_schema_extra=TEXT_SCHEMA), AfterValidator(plain_text)]
    language: Literal["de", "en", "auto"] = "de"


class AttemptOut(BaseModel):
    attempt: int
    seed: int
    clip_score: float
    seconds: float


class CatalogResponse(BaseModel):
    article_id: str
    translation: str
    attributes: dict[str, Any]
    generation_prompt: str
    clip_prompt: str
    clip_score: float
    passed: bool
    attempts: list[AttemptOut]
    seed: int
    url: str
    metadata_url: str
    skipped: bool


class TranslateRequest(BaseModel):
    texts: Annotated[
        list[Annotated[str, Field(max_length=LIMITS.max_description_chars, json_schema_extra=TEXT_SCHEMA), AfterValidator(plain_text)]],
        Field(min_length=1, max_length=LIMITS.max_texts_per_request),
    ]


class TranslateResponse(BaseModel):
    translations: list[str]


class ScoreRequest(BaseModel):
    image: Annotated[
        str, Field(description="PNG, JPEG or WebP, base64 (or a data: URL); URLs are not fetched", json_schema_extra=IMAGE_SCHEMA), AfterValidator(image_bytes_b64)
    ]
    text: Prompt


class ScoreResponse(BaseModel):
    clip_score: float


PUBLIC_PATHS = {"/generate", "/generate_image", "/catalog", "/translate", "/score"}


@dataclass
class Traffic:
    """What the gateway is doing: requests in flight and, after SIGTERM, draining."""

    in_flight: int = 0
    draining: bool = False
    cut: bool = False
    tasks: set[asyncio.Task] = field(default_factory=set)


TRAFFIC = Traffic()


@asynccontextmanager
async def lifespan(_: FastAPI):
    on_sigterm(asyncio.get_running_loop(), drain_gateway, exit_within_s=10.0)
    yield


app = FastAPI(
    title="Fashion Studio",
    description="Fashion product images from prompts and German catalog descriptions, scored by CLIP.",
    version="0.1.0",
    lifespan=lifespan,
)

# --- errors: one mapping from kinds to statuses ----------------------------------------------------


def error_response(status: int, reason: str, endpoint: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    metrics.FAILURES.labels(endpoint=endpoint, reason=reason).inc()
    return JSONResponse({"error": reason, **body}, status_code=status, headers=headers)


def _limit_of(error: dict[str, Any]) -> str:
    message = str(error.get("msg", ""))
    return message.removeprefix("Input should be ").removeprefix("Value error, ")


def _echo(value: Any) -> Any:
    """A request value as it can be echoed in a JSON error: short, valid UTF-8, finite."""
    if isinstance(value, str):
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return f"{value[:80]}... ({len(value)} chars)" if len(value) > 80 else value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (int, float, bool, type(None))):
        return value
    return _echo(repr(value)[:80])


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        errors.append({"field": ".".join(loc) or "body", "value": _echo(error.get("input")), "limit": _echo(_limit_of(error)), "message": _echo(error.get("msg"))})
    first = errors[0] if errors else {"field": "body", "value": None, "limit": "valid JSON"}
    return error_response(422, "invalid_input", request.url.path, {**first, "errors": errors})


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's own refusals (an unparsable body, an unknown path or method) in the same shape."""
    if exc.status_code == 400:
        body = {"field": "body", "value": request.headers.get("content-type"), "limit": "a JSON object sent as application/json", "message": str(exc.detail)}
        return error_response(400, "invalid_input", request.url.path, body)
    reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    endpoint = request.url.path if request.url.path in PUBLIC_PATHS else "other"  # no label per scanned path
    return error_response(exc.status_code, reason, endpoint, {"message": str(exc.detail)}, dict(exc.headers or {}))


@app.exception_handler(FashionStudioError)
async def _domain_error(request: Request, exc: FashionStudioError) -> JSONResponse:
    endpoint = request.url.path
    if isinstance(exc, PayloadTooLargeError):
        return error_response(413, "too_large", endpoint, exc.to_dict())
    if isinstance(exc, UnsupportedMediaError):
        return error_response(415, "unsupported_media", endpoint, exc.to_dict())
    if isinstance(exc, DeadlineExceededError):
        return error_response(504, "timeout", endpoint, {"message": str(exc), "limit": f"request must finish within {SETTINGS.batching.timeout_s} s"})
    if isinstance(exc, ContentBlockedError):
        return error_response(422, "content_blocked", endpoint, exc.to_dict())
    if isinstance(exc, InvalidInputError):
        return error_response(422, "invalid_input", endpoint, exc.to_dict())
    if isinstance(exc, OverloadedError):
        return error_response(429, "overloaded", endpoint, {"message": str(exc)}, {"Retry-After": str(max(1, round(exc.retry_after_s)))})
    logger.exception("unhandled project error")
    return error_response(500, "internal", endpoint, {"message": str(exc)})


@app.exception_handler(bentoml.exceptions.BentoMLException)
async def _dependency_error(request: Request, exc: bentoml.exceptions.BentoMLException) -> JSONResponse:
    status = int(exc.error_code)
    if status == 429 or status == 503:
        return error_response(503, "unavailable", request.url.path, {"message": str(exc)}, {"Retry-After": "1"})
    if status == 504:
        return error_response(504, "timeout", request.url.path, {"message": str(exc)})
    logger.error("dependency failed: %s", exc)
    return error_response(502, "dependency_failed", request.url.path, {"message": str(exc)})


@app.exception_handler(aiohttp.ClientError)
async def _dependency_unreachable(request: Request, exc: aiohttp.ClientError) -> JSONResponse:
    """A model service that cannot be reached (restarting, gone): the client may retry."""
    logger.error("model service unreachable: %s", exc)
    return error_response(503, "unavailable", request.url.path, {"message": f"a model service is unreachable ({type(exc).__name__})"}, {"Retry-After": "1"})


class Guard:
    """Pure ASGI, in this order: draining (503), API key (401/403) and its rate (429), body size (413),
    concurrency (429 + Retry-After), then the request under the timeout (504); plus the in-flight gauge
    and request metrics. Health and metrics paths are BentoML's and never reach this app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        endpoint = scope["path"]
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
            response = error_response(
                503, "shutting_down", endpoint, {"message": "this instance is shutting down; retry on another"}, {"Retry-After": "1", "Connection": "close"}
            )
            return await response(scope, receive, send)
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
        limit = LIMITS.max_body_bytes
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            response = error_response(413, "too_large", endpoint, {"field": "body", "value": f"{int(length)} bytes", "limit": f"body must be at most {limit} bytes"})
            return await response(scope, receive, send)
        if TRAFFIC.in_flight >= SETTINGS.batching.max_concurrency:
            response = error_response(
                429, "overloaded", endpoint,
                {"field": "concurrency", "value": TRAFFIC.in_flight, "limit": f"at most {SETTINGS.batching.max_concurrency} requests in flight"},
                {"Retry-After": "1"},
            )
            return await response(scope, receive, send)
        if length is None:
            # No Content-Length (chunked): read the body here, up to the limit, so the limit answers 413.
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > limit:
                    response = error_response(413, "too_large", endpoint, {"field": "body", "value": f"over {limit} bytes", "limit": f"body must be at most {limit} bytes"})
                    return await response(scope, receive, send)
                if not message.get("more_body", False):
                    break
            receive = _replay(b"".join(chunks), receive)

        task = asyncio.current_task()
        TRAFFIC.in_flight += 1
        if task is not None:
            TRAFFIC.tasks.add(task)
        metrics.IN_FLIGHT.labels(service="studio").inc()
        try:
            await asyncio.wait_for(self.app(scope, receive, send), timeout=SETTINGS.batching.timeout_s)
        except asyncio.TimeoutError:
            if not status["started"]:
                response = error_response(504, "timeout", endpoint, {"limit": f"request must finish within {SETTINGS.batching.timeout_s} s"})
                await response(scope, receive, send)
        except asyncio.CancelledError:
            if not TRAFFIC.cut or task is None:
                raise
            task.uncancel()  # cut by the drain at the end of the grace period: answer, then let it go
            if not status["started"]:
                response = error_response(
                    503, "shutting_down", endpoint,
                    {"message": f"cut at the end of the {SETTINGS.shutdown_grace_s:g} s shutdown grace period"}, {"Retry-After": "1", "Connection": "close"},
                )
                await response(scope, receive, send)
        finally:
            TRAFFIC.in_flight -= 1
            TRAFFIC.tasks.discard(task)  # type: ignore[arg-type]
            metrics.IN_FLIGHT.labels(service="studio").dec()


def _replay(body: bytes, receive: Any) -> Any:
    """An ASGI `receive` that hands out an already-read body, then defers to the connection."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> dict:
        return pending.pop() if pending else await receive()

    return replayed


app.add_middleware(Guard)

# --- shutdown: drain the gateway, keep the model services up while it drains ----------------------


def on_sigterm(loop: asyncio.AbstractEventLoop, drain: Callable[[Any], Any], exit_within_s: float) -> None:
    """Run `drain(hand_over)` on SIGTERM instead of shutting down at once; `hand_over()` then gives the
    signal to whoever had it before (uvicorn, which closes its listeners, waits for what still runs,
    and exits), and ends the process itself if that takes longer than `exit_within_s`: by then nobody
    awaits that work. Call from the serving loop's thread, after uvicorn set its handlers (an ASGI
    lifespan startup is such a place)."""
    previous = signal.getsignal(signal.SIGTERM)
    started = False

    def force_exit() -> None:
        logger.error("still running %.0f s after the drain; exiting", exit_within_s)
        logging.shutdown()
        os._exit(0)

    def hand_over() -> None:
        loop.call_later(exit_within_s, force_exit)
        if callable(previous):
            previous(signal.SIGTERM, None)
        else:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        nonlocal started
        if started:
            return
        started = True
        loop.call_soon_threadsafe(lambda: loop.create_task(drain(hand_over)))

    signal.signal(signal.SIGTERM, handler)


async def drain_gateway(hand_over: Callable[[], None]) -> None:
    TRAFFIC.draining = True
    grace = SETTINGS.shutdown_grace_s
    deadline = time.monotonic() + grace
    logger.info("SIGTERM: taking no new work; %d request(s) in flight get up to %.0f s", TRAFFIC.in_flight, grace)
    while TRAFFIC.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if TRAFFIC.in_flight:
        logger.error("shutdown grace period over: cutting %d request(s)", TRAFFIC.in_flight)
        TRAFFIC.cut = True
        for task in list(TRAFFIC.tasks):
            task.cancel()
        cut_deadline = time.monotonic() + 5.0
        while TRAFFIC.in_flight and time.monotonic() < cut_deadline:
            await asyncio.sleep(0.05)
    logger.info("drained; shutting down")
    hand_over()


def gateway_workers(entry: str) -> list[int]:
    """Pids of this deployment's gateway workers: siblings started with `--service-name <entry>`."""
    import psutil

    pids = []
    try:
        siblings = psutil.Process(os.getppid()).children()
    except psutil.Error:
        return []
    for process in siblings:
        try:
            argv = process.cmdline()
        except psutil.Error:
            continue
        if process.pid != os.getpid() and any(a == "--service-name" and b == entry for a, b in zip(argv, argv[1:])):
            pids.append(process.pid)
    return pids


class OutliveGateway:
    """Pure ASGI, on each model service: SIGTERM reaches every process of the deployment at once, yet a
    request the gateway accepted may still need a model call (generate, then score). So a model
    service keeps serving until no gateway worker is left, or `grace_s` has passed, then shuts down as
    usual, giving work that nobody awaits any more 5 s. Served on its own (no gateway beside it), it
    shuts down at once."""

    def __init__(self, app: Any, entry: str, grace_s: float) -> None:
        self.app = app
        self.entry = entry
        self.grace_s = grace_s
        self.installed = False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" and not self.installed:
            self.installed = True
            on_sigterm(asyncio.get_running_loop(), self.wait_for_gateway, exit_within_s=5.0)
        await self.app(scope, receive, send)

    async def wait_for_gateway(self, hand_over: Callable[[], None]) -> None:
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline and await asyncio.to_thread(gateway_workers, self.entry):
            await asyncio.sleep(0.1)
        hand_over()


# --- calls to the model services ------------------------------------------------------------------

T = TypeVar("T")
# Pauses before the retries of a model-service call that failed before it was served.
RETRY_PAUSES_S = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5)


def retryable(exc: BaseException) -> bool:
    """Failures that say nothing about the request: a model service at its concurrency limit for a
    moment (429/503), or a connection that BentoML's client lost under us (a pooled connection the
    server had closed, or the client session it replaces every 100 calls closed with calls still in
    it). Model calls have no side effects, so calling again is safe; a call that timed out is not
    called again."""
    if isinstance(exc, asyncio.TimeoutError):
        return False
    if isinstance(exc, aiohttp.ClientConnectionError):
        return True
    if isinstance(exc, RuntimeError) and "Session is closed" in str(exc):
        return True
    return isinstance(exc, bentoml.exceptions.BentoMLException) and int(exc.error_code) in (429, 503)


async def call_model(call: Callable[[], Awaitable[T]]) -> T:
    for pause in (*RETRY_PAUSES_S, None):
        try:
            return await call()
        except Exception as exc:
            if pause is None or not retryable(exc):
                raise
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


# --- the service ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Safety:
    """The safety checker the settings ask for (None: off)."""

    checker: SafetyChecker | None

    @property
    def concepts(self) -> ClipConceptFilter | None:
        return self.checker if isinstance(self.checker, ClipConceptFilter) else None


@bentoml.service(
    name="studio",
    traffic={"timeout": SETTINGS.batching.timeout_s + 30},
    workers=1,
)
@bentoml.asgi_app(app, path="/")
class Studio:
    generator = bentoml.depends(Generator)
    translator = bentoml.depends(Translator)
    scorer = bentoml.depends(Scorer)

    def __init__(self) -> None:
        self.storage = Storage(SETTINGS.storage_url)
        self.catalog = CatalogPipeline(
            translate=self._translate,
            generate=self._generate_sync,
            score=self._score_sync,
            storage=self.storage,
            settings=SETTINGS,
            model_info={"generator": SETTINGS.generator, "translator": SETTINGS.translator, "scorer": SETTINGS.scorer, "lora": SETTINGS.lora},
            generator_name=SETTINGS.generator,
        )
        self.safety = BackgroundLoad("safety", self._load_safety, wait_s=SETTINGS.model_wait_s)

    def __is_ready__(self) -> bool:
        return self.safety.ready and not TRAFFIC.draining

    def _load_safety(self) -> Safety:
        folder = None
        if SETTINGS.safety_check in ("auto", "diffusers"):
            folder = models.resolve("generator", SETTINGS.generator, SETTINGS, SETTINGS.revision).path
        checker = build_checker(SETTINGS, folder, self._score_sync)
        logger.info("safety check: %s", checker.name if checker else "off")
        return Safety(checker)

    # Sync adapters for the catalog pipeline, which runs in a worker thread.
    def _translate(self, texts: list[str]) -> list[str]:
        return call_model_sync(lambda: self.translator.translate(texts))

    def _generate_sync(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        items = [GenerateItem(**r.__dict__, enqueued_at=time.time(), deadline=request_deadline()) for r in requests]
        results = [to_result(out) for out in call_model_sync(lambda: self.generator.generate(items))]
        check_results(self.safety.get().checker, requests, results)
        return results

    def _score_sync(self, images, texts) -> list[float]:
        items = [ScoreItem(png_b64=png_b64(im), text=t) for im, t in zip(images, texts)]
        return call_model_sync(lambda: self.scorer.score(items))

    async def generate_images(self, body: GenerateRequest) -> tuple[GenerateOutput, list[float], list[Verdict]]:
        """Generate, score against the prompt and run the safety check; the CLIP safety filter's
        (image, concept) pairs ride in the same scorer call as the prompt's."""
        check_prompt("prompt", body.prompt, LIMITS)
        item = GenerateItem(**body.model_dump(), enqueued_at=time.time(), deadline=request_deadline())
        with metrics.time_stage("generate"):
            output = (await call_model(lambda: self.generator.to_async.generate([item])))[0]
        raise_item_error(output)
        safety = self.safety.get()
        concepts = safety.concepts
        items = [ScoreItem(png_b64=im.png_b64, text=body.prompt) for im in output.images]
        if concepts is not None:  # image-major, as `verdicts` reads them
            items += [ScoreItem(png_b64=im.png_b64, text=concept) for im in output.images for concept in concepts.concepts]
        with metrics.time_stage("score"):
            all_scores = await call_model(lambda: self.scorer.to_async.score(items))
        count = len(output.images)
        scores = all_scores[:count]
        if concepts is not None:
            verdicts = concepts.verdicts(all_scores[count:], count)
        elif safety.checker is not None:
            with metrics.time_stage("safety"):
                verdicts = await run_in_threadpool(safety.checker.check, [image_from_b64(im.png_b64) for im in output.images])
        else:
            verdicts = [Verdict(False)] * count
        for score, verdict in zip(scores, verdicts):
            if verdict.blocked:
                logger.warning("safety check blocked an image: %s", verdict.reason)
            else:
                metrics.CLIP_SCORE.observe(score)
        if all(v.blocked for v in verdicts):
            raise ContentBlockedError(body.prompt, safety.checker.name if safety.checker else "safety", count)
        return output, scores, verdicts


def request_deadline() -> float:
    """Work for a request is worthless past its timeout; the generator stops there."""
    return time.time() + SETTINGS.batching.timeout_s


def to_result(output: GenerateOutput) -> GenerationResult:
    raise_item_error(output)
    return GenerationResult(
        images=[image_from_b64(im.png_b64) for im in output.images],
        seeds=[im.seed for im in output.images],
        timings=output.timings,
        batch_images=output.batch_images,
        model=output.model,
    )


def raise_item_error(output: GenerateOutput) -> None:
    if output.error is None:
        return
    if output.error.get("kind") == "timeout":
        raise DeadlineExceededError(output.error.get("message", "deadline exceeded"))
    if output.error.get("kind") == "invalid_input":
        raise InvalidInputError(output.error["field"], output.error.get("value"), output.error["limit"])
    raise RuntimeError(output.error.get("message", "generation failed"))


def studio() -> Studio:
    return bentoml.get_current_service()


# Every model service of this deployment outlives the gateway's drain (see OutliveGateway).
for _model_service in (Generator, Translator, Scorer):
    _model_service.add_asgi_middleware(OutliveGateway, entry=Studio.name, grace_s=SETTINGS.shutdown_grace_s + 10)


@app.post("/generate", response_model=GenerateResponse)
async def generate(body: GenerateRequest) -> GenerateResponse:
    """Generate 1..4 images for a prompt; each is scored by CLIP, safety-checked and stored with its
    metadata. Blocked images are left out (`blocked` counts them); none left is 422 `content_blocked`."""
    service = studio()
    output, scores, verdicts = await service.generate_images(body)
    created = datetime.now(timezone.utc).isoformat()
    images = []
    with metrics.time_stage("store"):
        for image, score, verdict in zip(output.images, scores, verdicts):
            if verdict.blocked:
                continue
            key = f"gen-{uuid.uuid4().hex}"
            metadata = {
                "sample_id": key,
                "original_description": None,
                "generation_prompt": body.prompt,
                "clip_prompt": body.prompt,
                "clip_score": round(score, 4),
                "negative_prompt": body.negative_prompt,
                "seed": image.seed,
                "params": body.model_dump(exclude={"prompt", "negative_prompt", "seed"}),
                "models": {"generator": output.model},
                "timings": output.timings,
                "created_at": created,
            }
            stored = await run_in_threadpool(service.storage.put, key, image_from_b64(image.png_b64), metadata)
            images.append(ImageOut(url=stored.image_url, seed=image.seed, width=image.width, height=image.height, clip_score=round(score, 4)))
    return GenerateResponse(images=images, model=output.model, timings=output.timings, blocked=sum(v.blocked for v in verdicts))


@app.post("/generate_image", response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def generate_image(body: GenerateRequest) -> Response:
    """The first generated image as `image/png`, for `curl -o`; 422 `content_blocked` when it failed the safety check."""
    output, scores, _ = await studio().generate_images(body.model_copy(update={"num_images": 1}))
    image = output.images[0]
    headers = {"X-Seed": str(image.seed), "X-Clip-Score": f"{scores[0]:.4f}", "X-Model": output.model}
    return Response(content=png_bytes(image.png_b64), media_type="image/png", headers=headers)


@app.post("/catalog", response_model=CatalogResponse)
async def catalog(body: CatalogRequest) -> CatalogResponse:
    """Seed 003's pipeline for one article: translate, extract, prompt, generate, score and gate, store."""
    service = studio()
    params = CatalogParams.from_settings(SETTINGS)
    result = await run_in_threadpool(service.catalog.process, Article(body.article_id, body.description, body.language), params)
    return CatalogResponse(
        **{k: v for k, v in result.to_dict().items() if k in CatalogResponse.model_fields},
        url=result.image_url,
    )


@app.post("/translate", response_model=TranslateResponse)
async def translate(body: TranslateRequest) -> TranslateResponse:
    with metrics.time_stage("translate"):
        translations = await call_model(lambda: studio().translator.to_async.translate(body.texts))
    return TranslateResponse(translations=translations)


@app.post("/score", response_model=ScoreResponse)
async def score(body: ScoreRequest) -> ScoreResponse:
    image = load_image("image", decode_b64("image", body.image, LIMITS), LIMITS)
    check_prompt("text", body.text, LIMITS)
    with metrics.time_stage("score"):
        item = ScoreItem(png_b64=png_b64(image), text=body.text)
        value = (await call_model(lambda: studio().scorer.to_async.score([item])))[0]
    metrics.CLIP_SCORE.observe(value)
    return ScoreResponse(clip_score=round(value, 4))
