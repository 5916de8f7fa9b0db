"""`/recommend`: the catalog's products most like an image (sent or stored) or a text, with optional
filters; and `/products/{id}/image`, each indexed product's shot, so that a page or a conversation can
show what was recommended.

The query's CLIP embedding comes from the scorer service's batchable `embed_images`/`embed_texts`
(concurrent requests share its batches); the search runs in the gateway over the product index that the
settings name (fashion_studio/index). `recommend_products` is the same work as a coroutine, for the
conversation. A missing or empty index is a 503 that says how to build one.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from PIL import Image
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from fashion_studio import metrics
from fashion_studio.errors import InvalidInputError, NotFoundError, UnavailableError
from fashion_studio.images import sniff
from fashion_studio.index import Filters, Hit, IndexMissingError, ProductIndex
from fashion_studio.mini.vocab import COLOUR_NAMES, TYPE_NAMES
from fashion_studio.settings import Settings
from services.api import SETTINGS, Identifier, ImageB64, Prompt
from services.image_refs import resolve_image_async
from services.model_client import call_model
from services.routes import studio
from services.schemas import png_b64

logger = logging.getLogger(__name__)
router = APIRouter()

ENDPOINT = "/recommend"
BUILD_HINT = (
    "build it with `fashion-studio index demo-catalog --out DIR` (a demo shop) and "
    "`fashion-studio index build --catalog DIR --index {url}`, or `make index-demo`"
)
Price = Annotated[float, Field(ge=0, le=1_000_000)]


class RecommendFilters(BaseModel):
    """Metadata every recommended product must have; unset fields leave it open."""

    product_type: Literal[TYPE_NAMES] | None = None  # type: ignore[valid-type]
    colour: Literal[COLOUR_NAMES] | None = None  # type: ignore[valid-type]
    min_price: Price | None = Field(None, description="Inclusive lower bound (EUR).")
    max_price: Price | None = Field(None, description="Inclusive upper bound (EUR); at least min_price.")

    def to_filters(self) -> Filters:
        if self.min_price is not None and self.max_price is not None and self.max_price < self.min_price:
            raise InvalidInputError("max_price", self.max_price, f"must be at least min_price ({self.min_price:g})")
        return Filters(self.product_type, self.colour, self.min_price, self.max_price)


class RecommendRequest(RecommendFilters):
    image: ImageB64 | None = Field(None, description="Find products that look like this image; or give image_id or text.")
    image_id: Identifier | None = Field(None, description="A stored image's id (GET /images lists them).")
    text: Prompt | None = Field(None, description="Find products described like this text.")
    k: Annotated[int, Field(ge=1, le=SETTINGS.recommend_max_k, description="How many products, best first.")] = 5


class RecommendedProduct(BaseModel):
    product_id: str
    name: str
    product_type: str
    colour: str
    pattern: str
    price: float
    score: float = Field(description="Cosine similarity of the query's and the product's CLIP vectors.")
    image_url: str = Field(description="The product shot: GET this path (or the shop's own URL).")


class RecommendResponse(BaseModel):
    products: list[RecommendedProduct]
    query: Literal["image", "text"]
    k: int
    filters: dict[str, Any]
    timings: dict[str, float]


class IndexHandle:
    """The gateway's product index, opened once it exists: a gateway may start before its index is built
    (the first request after `fashion-studio index build` finds it). Opening starts in the background."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._index: ProductIndex | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._warm, name="open-index", daemon=True).start()

    def _warm(self) -> None:
        try:
            self.get()
        except Exception as exc:  # noqa: BLE001 - reported on the first request instead
            logger.info("product index not open yet: %s", exc)

    def get(self) -> ProductIndex:
        with self._lock:
            if self._index is None:
                try:
                    self._index = ProductIndex.open(self.settings)
                except IndexMissingError:
                    raise UnavailableError("index", f"no product index at {self.settings.index_url}: {self.hint()}", retry_after_s=60) from None
                logger.info("product index %s open (%s store, %d products)", self._index.store.url, self._index.store.kind, len(self._index))
            return self._index

    def hint(self) -> str:
        return BUILD_HINT.format(url=self.settings.index_url)


def _handle() -> IndexHandle:
    return studio().product_index


def _search(handle: IndexHandle, vector: np.ndarray, k: int, filters: Filters, expand: bool) -> tuple[list[Hit], float]:
    """Image queries are expanded (`ProductIndex.search`), text queries searched as they are."""
    index = handle.get()
    start = time.perf_counter()
    hits = index.search(vector, k, filters, index.expand if expand else 0, index.expand_weight)
    seconds = time.perf_counter() - start
    metrics.INDEX_QUERY_DURATION.labels(store=index.store.kind, filtered=str(not filters.empty).lower()).observe(seconds)
    if not hits and len(index) == 0:
        raise UnavailableError("index", f"the product index at {index.store.url} is empty: {handle.hint()}", retry_after_s=60)
    return hits, seconds


def _product(hit: Hit) -> RecommendedProduct:
    m = hit.metadata
    image = str(m.get("image", ""))
    url = image if image.startswith(("http://", "https://")) else f"/products/{hit.product_id}/image"
    return RecommendedProduct(
        product_id=hit.product_id,
        name=m.get("name", ""),
        product_type=m.get("product_type", ""),
        colour=m.get("colour", ""),
        pattern=m.get("pattern", ""),
        price=float(m.get("price") or 0.0),
        score=round(hit.score, 4),
        image_url=url,
    )


async def recommend_products(
    *, image: Image.Image | None = None, text: str | None = None, k: int = 5, filters: RecommendFilters | None = None
) -> RecommendResponse:
    """The k catalog products most like `image` or `text` (exactly one), best first, within `filters`."""
    if (image is None) == (text is None):
        raise InvalidInputError("text", "both" if image is not None else "neither", "give exactly one of image, image_id and text")
    if not 1 <= k <= SETTINGS.recommend_max_k:
        raise InvalidInputError("k", k, f"must be between 1 and {SETTINGS.recommend_max_k} (recommend_max_k)")
    conditions = (filters or RecommendFilters()).to_filters()
    handle = _handle()
    await run_in_threadpool(handle.get)  # 503 before any model work when there is no index
    timeout = SETTINGS.batching.short_call_timeout_s
    start = time.perf_counter()
    with metrics.time_stage("embed"):
        if image is not None:
            b64 = png_b64(image.convert("RGB"))
            [vector] = await call_model(lambda: studio().scorer.to_async.embed_images([b64]), timeout)
        else:
            [vector] = await call_model(lambda: studio().scorer.to_async.embed_texts([text]), timeout)
    embed_s = time.perf_counter() - start
    with metrics.time_stage("search"):
        hits, search_s = await run_in_threadpool(_search, handle, np.asarray(vector, np.float32), k, conditions, image is not None)
    query = "image" if image is not None else "text"
    metrics.RECOMMEND_RESULTS.labels(query=query).observe(len(hits))
    return RecommendResponse(
        products=[_product(h) for h in hits],
        query=query,
        k=k,
        filters=conditions.to_dict(),
        timings={"embed": round(embed_s, 4), "search": round(search_s, 5)},
    )


@router.post("/recommend", response_model=RecommendResponse)
async def recommend(body: RecommendRequest) -> RecommendResponse:
    """Top-k catalog products for exactly one of `image` (base64), `image_id` (a stored image) or `text`,
    with optional filters on type, colour and price."""
    given = [name for name in ("image", "image_id", "text") if getattr(body, name) is not None]
    if len(given) != 1:
        raise InvalidInputError(
            given[1] if len(given) > 1 else "text", ", ".join(given) or "neither", "give exactly one of image (base64), image_id (a stored image) and text"
        )
    filters = RecommendFilters(**body.model_dump(include=set(RecommendFilters.model_fields)))
    image = None
    if body.text is None:
        image = (await resolve_image_async(studio().storage, body.image, body.image_id)).image
    return await recommend_products(image=image, text=body.text, k=body.k, filters=filters)


def _read(location: str) -> bytes:
    import fsspec

    with fsspec.open(location, "rb") as handle:
        return handle.read()


async def product_shot(product_id: str, field: str = "product_id") -> tuple[Image.Image, dict[str, Any]]:
    """An indexed product's shot as an image, and its metadata; 404 naming `field` for an unknown id."""
    from fashion_studio.images import load_image

    metadata = await run_in_threadpool(lambda: _handle().get().get(product_id[:128]))
    if metadata is None:
        raise NotFoundError(field, product_id, "must be the id of an indexed product (POST /recommend returns them)")
    try:
        data = await run_in_threadpool(_read, str(metadata.get("image", "")))
    except (FileNotFoundError, OSError) as exc:
        raise NotFoundError(field, product_id, f"its shot is indexed but cannot be read ({type(exc).__name__})") from None
    image = await run_in_threadpool(load_image, field, data, SETTINGS.limits)
    return image.convert("RGB"), metadata


@router.get("/products/{product_id}/image", response_class=Response, responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}}})
async def product_image(product_id: str) -> Response:
    """An indexed product's shot (a redirect where the shop keeps it at an http(s) URL); 404 for an id the index lacks."""
    metadata = await run_in_threadpool(lambda: _handle().get().get(product_id[:128]))
    if metadata is None:
        raise NotFoundError("product_id", product_id, "must be the id of an indexed product (POST /recommend returns them)")
    location = str(metadata.get("image", ""))
    if location.startswith(("http://", "https://")):
        return RedirectResponse(location, status_code=307)
    try:
        data = await run_in_threadpool(_read, location)
    except (FileNotFoundError, OSError) as exc:
        raise NotFoundError("product_id", product_id, f"its shot is indexed but cannot be read ({type(exc).__name__})") from None
    kind = (sniff(data) or "PNG").lower()
    return Response(content=data, media_type=f"image/{kind}", headers={"Cache-Control": "public, max-age=86400"})
