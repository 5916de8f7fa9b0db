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
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import aiohttp
import bentoml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from PIL import Image
from pydantic import AfterValidator, BaseModel, Field
from starlette.concurrency import run_in_threadpool

from fashion_studio import metrics, models
from fashion_studio.auth import Keyring, retry_after_header
from fashion_studio.catalog import Article, CatalogParams, CatalogPipeline
from fashion_studio.errors import DeadlineExceededError, FashionStudioError, InvalidInputError, OverloadedError, PayloadTooLargeError, UnsupportedMediaError
from fashion_studio.generation import GenerationRequest, GenerationResult, check_prompt
from fashion_studio.images import decode_b64, load_image
from fashion_studio.safety import ClipConceptFilter, ContentBlockedError, SafetyChecker, Verdict, build_checker
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

# --- request and response models -----------------------------------------------------------------

# C0/C1 control characters (tab, newline and carriage return allowed) and lone UTF-16 surrogates,
# which JSON can carry but no tokenizer, log or UTF-8 file should get.
_FORBIDDEN_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# base64 has no ':', so a scheme at the start means the client sent a URL instead of image bytes.
_URL = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]{0,30}:")
_DATA_URL = re.compile(r"^data:image/(png|jpeg|webp);base64,", re.IGNORECASE)


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
Prompt = Annotated[str, Field(min_length=1, max_length=LIMITS.max_prompt_chars), AfterValidator(plain_text)]


class GenerateRequest(BaseModel):
    prompt: Prompt
    negative_prompt: Annotated[str, Field(max_length=LIMITS.max_prompt_chars), AfterValidator(plain_text)] | None = None
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
    article_id: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(plain_text)]
    description: Annotated[str, Field(min_length=1, max_length=LIMITS.max_description_chars), AfterValidator(plain_text)]
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
        list[Annotated[str, Field(max_length=LIMITS.max_description_chars), AfterValidator(plain_text)]],
        Field(min_length=1, max_length=LIMITS.max_texts_per_request),
    ]


class TranslateResponse(BaseModel):
    translations: list[str]


class ScoreRequest(BaseModel):
    image: Annotated[str, Field(description="PNG, JPEG or WebP, base64 (or a data: URL); URLs are not fetched"), AfterValidator(image_bytes_b64)]
    text: Prompt


class ScoreResponse(BaseModel):
    clip_score: float


PUBLIC_PATHS = {"/generate", "/generate_image", "/catalog", "/translate", "/score"}

app = FastAPI(
    title="Fashion Studio",
    description="Fashion product images from prompts and German catalog descriptions, scored by CLIP.",
    version="0.1.0",
)

# --- errors: one mapping from kinds to statuses ----------------------------------------------------


def error_response(status: int, reason: str, endpoint: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    metrics.FAILURES.labels(endpoint=endpoint, reason=reason).inc()
    return JSONResponse({"error": reason, **body}, status_code=status, headers=headers)


def _limit_of(error: dict[str, Any]) -> str:
    message = str(error.get("msg", ""))
    return message.removeprefix("Input should be ").removeprefix("Value error, ")


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        value = error.get("input")
        if isinstance(value, str) and len(value) > 80:
            value = f"{value[:80]}... ({len(value)} chars)"
        elif not isinstance(value, (str, int, float, bool, type(None))):
            value = repr(value)[:80]
        errors.append({"field": ".".join(loc) or "body", "value": value, "limit": _limit_of(error), "message": error.get("msg")})
    first = errors[0] if errors else {"field": "body", "value": None, "limit": "valid JSON"}
    return error_response(422, "invalid_input", request.url.path, {**first, "errors": errors})


@app.exception_handler(FashionStudioError)
async def _domain_error(request: Request, exc: FashionStudioError) -> JSONResponse:
    endpoint = request.url.path
    if isinstance(exc, PayloadTooLargeError):
        return error_response(413, "too_large", endpoint, exc.to_dict())
    if isinstance(exc, UnsupportedMediaError):
        return error_response(415, "unsupported_media", endpoint, exc.to_dict())
    if isinstance(exc, DeadlineExceededError):
        return error_response(504, "timeout", endpoint, {"message": str(exc), "limit": f"request must finish within {SETTINGS.batching.timeout_s} s"})
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


class Guard:
    """Pure ASGI: body-size limit (413), concurrency limit (429 + Retry-After), in-flight gauge,
    request counting. Health and metrics paths are BentoML's and never reach this app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.in_flight = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        endpoint = scope["path"]
        status_holder = {"code": 500}

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_holder["code"] = message["status"]
            await send(message)

        start = time.perf_counter()
        try:
            await self._guarded(scope, receive, send_wrapper, endpoint)
        finally:
            metrics.REQUESTS.labels(endpoint=endpoint, code=str(status_holder["code"])).inc()
            metrics.REQUEST_DURATION.labels(endpoint=endpoint).observe(time.perf_counter() - start)

    async def _guarded(self, scope: dict, receive: Any, send: Any, endpoint: str) -> None:
        limit = LIMITS.max_body_bytes
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            response = error_response(413, "too_large", endpoint, {"field": "body", "value": f"{int(length)} bytes", "limit": f"body must be at most {limit} bytes"})
            return await response(scope, receive, send)
        if self.in_flight >= SETTINGS.batching.max_concurrency:
            response = error_response(
                429, "overloaded", endpoint,
                {"field": "concurrency", "value": self.in_flight, "limit": f"at most {SETTINGS.batching.max_concurrency} requests in flight"},
                {"Retry-After": "1"},
            )
            return await response(scope, receive, send)
        received = 0

        async def bounded_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLargeError("body", f"over {limit} bytes", f"body must be at most {limit} bytes")
            return message

        self.in_flight += 1
        metrics.IN_FLIGHT.labels(service="studio").inc()
        try:
            await asyncio.wait_for(self.app(scope, bounded_receive, send), timeout=SETTINGS.batching.timeout_s)
        except asyncio.TimeoutError:
            response = error_response(504, "timeout", endpoint, {"limit": f"request must finish within {SETTINGS.batching.timeout_s} s"})
            await response(scope, receive, send)
        finally:
            self.in_flight -= 1
            metrics.IN_FLIGHT.labels(service="studio").dec()


app.add_middleware(Guard)

# --- the service ------------------------------------------------------------------------------------


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

    # Sync adapters for the catalog pipeline, which runs in a worker thread.
    def _translate(self, texts: list[str]) -> list[str]:
        return self.translator.translate(texts)

    def _generate_sync(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        items = [GenerateItem(**r.__dict__, enqueued_at=time.time(), deadline=request_deadline()) for r in requests]
        return [to_result(out) for out in self.generator.generate(items)]

    def _score_sync(self, images, texts) -> list[float]:
        return self.scorer.score([ScoreItem(png_b64=png_b64(im), text=t) for im, t in zip(images, texts)])

    async def generate_images(self, body: GenerateRequest) -> tuple[GenerateOutput, list[float]]:
        check_prompt("prompt", body.prompt, LIMITS)
        item = GenerateItem(**body.model_dump(), enqueued_at=time.time(), deadline=request_deadline())
        with metrics.time_stage("generate"):
            output = (await self.generator.to_async.generate([item]))[0]
        raise_item_error(output)
        with metrics.time_stage("score"):
            scores = await self.scorer.to_async.score([ScoreItem(png_b64=im.png_b64, text=body.prompt) for im in output.images])
        for score in scores:
            metrics.CLIP_SCORE.observe(score)
        return output, scores


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


@app.post("/generate", response_model=GenerateResponse)
async def generate(body: GenerateRequest) -> GenerateResponse:
    """Generate 1..4 images for a prompt; each is stored with its metadata and scored by CLIP."""
    service = studio()
    output, scores = await service.generate_images(body)
    created = datetime.now(timezone.utc).isoformat()
    images = []
    with metrics.time_stage("store"):
        for image, score in zip(output.images, scores):
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
    return GenerateResponse(images=images, model=output.model, timings=output.timings)


@app.post("/generate_image", response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def generate_image(body: GenerateRequest) -> Response:
    """The first generated image as `image/png`, for `curl -o`."""
    output, scores = await studio().generate_images(body.model_copy(update={"num_images": 1}))
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
        translations = await studio().translator.to_async.translate(body.texts)
    return TranslateResponse(translations=translations)


@app.post("/score", response_model=ScoreResponse)
async def score(body: ScoreRequest) -> ScoreResponse:
    image = load_image("image", decode_b64("image", body.image, LIMITS), LIMITS)
    check_prompt("text", body.text, LIMITS)
    with metrics.time_stage("score"):
        value = (await studio().scorer.to_async.score([ScoreItem(png_b64=png_b64(image), text=body.text)]))[0]
    metrics.CLIP_SCORE.observe(value)
    return ScoreResponse(clip_score=round(value, 4))
