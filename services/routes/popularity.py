"""`/feedback` and `/popularity`: shoppers' events in, predicted popularity out.

`/feedback` appends a view, click or like of a catalog article or a generated image to the event log;
the answer comes after the event is committed, so an acknowledged event is never lost. `/popularity`
scores an image (sent, or stored by `/generate`) with optional metadata through the popularity service.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from fashion_studio import metrics
from fashion_studio.errors import InvalidInputError, NotFoundError
from fashion_studio.mini.vocab import COLOUR_NAMES, PATTERNS, TYPE_NAMES
from fashion_studio.popularity.events import Event, EventStore, check_event, iso, open_store
from fashion_studio.products import current_catalog
from services.api import SETTINGS, Identifier, ImageB64
from services.image_refs import sent_image
from services.model_client import call_model
from services.routes import studio
from services.schemas import PopularityItem, png_b64

router = APIRouter()

_IMAGE_KEY = re.compile(r"^gen-[0-9a-f]{8,64}$")
IMAGE_KEY_LIMIT = "gen-<hex>: the key of an image stored by /generate"


class FeedbackRequest(BaseModel):
    kind: Literal["view", "click", "like"] = Field(description="Purchases come from `fashion-studio popularity import-purchases`.")
    product_id: Identifier | None = Field(None, description="A catalog article; or give image_id.")
    image_id: Identifier | None = Field(None, description="A generated image's key (gen-<hex>); or give product_id.")
    timestamp: datetime | None = Field(None, description="When it happened (ISO 8601 or epoch seconds); default: now. Not in the future.")
    user: Identifier | None = None


class FeedbackResponse(BaseModel):
    event_id: int
    kind: str
    subject_type: str
    subject_id: str
    timestamp: str


class PopularityRequest(BaseModel):
    image: ImageB64 | None = Field(None, description="The image to score; or give image_id.")
    image_id: Identifier | None = Field(None, description="A generated image's key (gen-<hex>).")
    type: Literal[TYPE_NAMES] | None = None  # type: ignore[valid-type]
    colour: Literal[COLOUR_NAMES] | None = None  # type: ignore[valid-type]
    pattern: Literal[PATTERNS] | None = None  # type: ignore[valid-type]
    price: Annotated[float, Field(ge=0.01, le=1_000_000)] | None = None


class PopularityResponse(BaseModel):
    score: float = Field(description="Predicted log(1 + weighted engagement).")
    percentile: float = Field(description="Share of the catalog's articles (in %) predicted at or under this score.")


@lru_cache(maxsize=1)
def event_store() -> EventStore:
    return open_store(SETTINGS.events_url)


def _check_product(product_id: str) -> None:
    try:
        known = current_catalog(SETTINGS.products_dir).by_id()
    except FileNotFoundError:
        known = {}
    if product_id not in known:  # 404, as every route answers an id it does not know
        raise NotFoundError("product_id", product_id, f"must be an article of the catalog ({len(known)} articles)")


def _check_image(field: str, key: str) -> None:
    if not _IMAGE_KEY.match(key):
        raise InvalidInputError(field, key, f"must look like {IMAGE_KEY_LIMIT}")
    if not studio().storage.exists(key):
        raise NotFoundError(field, key, f"must be {IMAGE_KEY_LIMIT}; no such image is stored")


def _one_of(product_id: str | None, image_id: str | None, names: tuple[str, str]) -> None:
    if (product_id is None) == (image_id is None):
        raise InvalidInputError(names[0], product_id, f"give exactly one of {names[0]} and {names[1]}")


@router.post("/feedback", response_model=FeedbackResponse)
async def feedback(body: FeedbackRequest) -> FeedbackResponse:
    """Record a view, click or like; answered once the event is committed to the log."""
    _one_of(body.product_id, body.image_id, ("product_id", "image_id"))
    if body.product_id is not None:
        subject_type, subject_id = "product", body.product_id
        await run_in_threadpool(_check_product, subject_id)
    else:
        subject_type, subject_id = "image", str(body.image_id)
        await run_in_threadpool(_check_image, "image_id", subject_id)
    ts = _epoch(body.timestamp) if body.timestamp is not None else time.time()
    event = check_event(Event(body.kind, subject_type, subject_id, ts, body.user))
    event_id = await run_in_threadpool(event_store().append, event)
    metrics.FEEDBACK_EVENTS.labels(kind=event.kind, source=event.source).inc()
    return FeedbackResponse(event_id=event_id, kind=event.kind, subject_type=subject_type, subject_id=subject_id, timestamp=iso(ts))


@router.post("/popularity", response_model=PopularityResponse)
async def popularity(body: PopularityRequest) -> PopularityResponse:
    """Predicted popularity of an image, with whatever metadata is known, and its catalog percentile."""
    _one_of(body.image, body.image_id, ("image", "image_id"))
    if body.image is not None:
        image = (await run_in_threadpool(sent_image, body.image)).image
    else:
        await run_in_threadpool(_check_image, "image_id", str(body.image_id))
        image = await run_in_threadpool(studio().storage.get_image, str(body.image_id))
    metadata = {"product_type": body.type, "colour": body.colour, "pattern": body.pattern, "price": body.price}
    item = PopularityItem(png_b64=await run_in_threadpool(png_b64, image), metadata=metadata)
    [out] = await call_model(lambda: studio().scorer.to_async.predict_popularity([item]))
    return PopularityResponse(score=round(out.score, 4), percentile=round(out.percentile, 2))


async def popularity_scores(pngs_b64: list[str]) -> list[float]:
    """Predicted popularity of generated candidates (no metadata), for `/generate`'s ranking."""
    items = [PopularityItem(png_b64=b64) for b64 in pngs_b64]
    return [out.score for out in await call_model(lambda: studio().scorer.to_async.predict_popularity(items), SETTINGS.batching.short_call_timeout_s)]


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
