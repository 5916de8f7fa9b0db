"""`/inpaint` and `/tryon`: the person side of the studio (seed 002).

`/inpaint` redraws a masked region of an image as a prompt says; `/tryon` dresses a person in a garment
(a product shot sent or stored, or an indexed product) inside a mask. The mask is given as a PNG, comes
from clicked points (the segmenter's Segment Anything), or from a garment category (the segmenter's
clothes parser); a try-on with none of them takes the category of the product's type. Both keep every
pixel outside the mask and store the result with metadata naming its sources.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
from fastapi import APIRouter
from PIL import Image
from starlette.concurrency import run_in_threadpool

from fashion_studio import metrics
from fashion_studio.errors import InvalidInputError
from fashion_studio.images import decode_b64, load_image
from fashion_studio.inpainting import check_mask, mask_from_image, mask_image
from fashion_studio.mini.figures import category_of
from services.api import LIMITS, InpaintRequest, InpaintResponse, MaskSpec, TryOnRequest, TryOnResponse
from services.image_refs import ImageRef, resolve_image_async
from services.model_client import call_model, raise_item_error, request_deadline
from services.routes import studio
from services.schemas import InpaintItem, SegmentItem, image_from_b64, png_b64, png_bytes

router = APIRouter()


@router.post("/inpaint", response_model=InpaintResponse)
async def inpaint(body: InpaintRequest) -> InpaintResponse:
    """Redraw the masked region of `image` (or stored `image_id`) as `prompt` describes the whole
    image. The mask: `mask` (PNG at the image's size), `points` (with `labels`) or `category`. 422 names
    the field for a mask of another size, an empty mask, a point outside the image; 415 for bytes that
    are not an image."""
    source = await resolve_image_async(studio().storage, body.image, body.image_id)
    mask, mask_source = await resolve_mask(body, source.image)
    item = InpaintItem(
        png_b64=png_b64(source.image),
        mask_png_b64=png_b64(mask_image(mask)),
        prompt=body.prompt,
        negative_prompt=body.negative_prompt,
        seed=body.seed,
        steps=body.steps,
        guidance=body.guidance,
        deadline=request_deadline(),
    )
    with metrics.time_stage("inpaint"):
        output = (await call_model(lambda: studio().inpainter.to_async.inpaint([item])))[0]
    raise_item_error(output)
    metadata = {"prompt": body.prompt, "negative_prompt": body.negative_prompt, "source_image_id": source.image_id}
    stored = await _store("inpaint", output, item.mask_png_b64, mask_source, metadata, {"steps": body.steps, "guidance": body.guidance})
    return InpaintResponse(**_answer(stored, output, item.mask_png_b64, mask_source, source.image_id))


@router.post("/tryon", response_model=TryOnResponse)
async def tryon(body: TryOnRequest) -> TryOnResponse:
    """`person` (or stored `person_image_id`) wearing the garment: `garment` (a product shot),
    `garment_image_id` or `garment_product_id` (an indexed product). The mask: `mask`, `points` or
    `category`; with none, the category of the product's type. Done as CatVTON does it (person and
    garment in one input); every pixel outside the mask is the person's."""
    service = studio()
    person = await resolve_image_async(service.storage, body.person, body.person_image_id, names=("person", "person_image_id"))
    garment, product = await _garment(body)
    spec: MaskSpec = body
    if body.mask is None and not body.points and body.category is None:
        product_type = (product or {}).get("product_type") or garment.metadata.get("attributes", {}).get("product_type")
        try:
            spec = MaskSpec(category=category_of(str(product_type)))
        except ValueError:
            raise InvalidInputError("mask", None, "give mask, points or category (the garment's category is not known)") from None
    mask, mask_source = await resolve_mask(spec, person.image)
    item = InpaintItem(
        png_b64=png_b64(person.image),
        mask_png_b64=png_b64(mask_image(mask)),
        garment_png_b64=png_b64(garment.image),
        seed=body.seed,
        steps=body.steps,
        guidance=body.guidance,
        deadline=request_deadline(),
    )
    with metrics.time_stage("tryon"):
        output = (await call_model(lambda: service.inpainter.to_async.tryon([item])))[0]
    raise_item_error(output)
    metadata = {
        "source_image_id": person.image_id,
        "garment_image_id": garment.image_id,
        "garment_product_id": body.garment_product_id,
        "category": spec.category,
    }
    stored = await _store("tryon", output, item.mask_png_b64, mask_source, metadata, {"steps": body.steps, "guidance": body.guidance})
    return TryOnResponse(
        **_answer(stored, output, item.mask_png_b64, mask_source, person.image_id),
        category=spec.category,
        garment_image_id=garment.image_id,
        garment_product_id=body.garment_product_id,
    )


async def resolve_mask(spec: MaskSpec, image: Image.Image) -> tuple[np.ndarray, str]:
    """The boolean mask at the image's size from exactly one of `mask`, `points` and `category`."""
    given = [name for name, present in (("mask", spec.mask is not None), ("points", bool(spec.points)), ("category", spec.category is not None)) if present]
    if len(given) != 1:  # the error names the second of two given, or `mask` when none is
        raise InvalidInputError(given[-1] if given else "mask", given or None, "give exactly one of mask (a PNG), points (clicked on the garment) and category")
    if spec.mask is not None:
        data = decode_b64("mask", spec.mask, LIMITS)
        picture = await run_in_threadpool(load_image, "mask", data, LIMITS)
        return check_mask("mask", mask_from_image(picture), image.size), "mask"
    item = SegmentItem(
        png_b64=png_b64(image),
        points=[tuple(p) for p in spec.points],
        labels=list(spec.labels) if spec.labels is not None else [1] * len(spec.points),
        category=spec.category,
        multimask=False,
        deadline=request_deadline(),
    )
    with metrics.time_stage("segment"):
        output = (await call_model(lambda: studio().segmenter.to_async.segment([item])))[0]
    raise_item_error(output)
    mask = mask_from_image(image_from_b64(output.masks[0].png_b64))
    field = "points" if spec.points else "category"
    if not mask.any():
        raise InvalidInputError(field, spec.points or spec.category, "the segmenter found nothing there: the mask is empty")
    return mask, field


async def _garment(body: TryOnRequest) -> tuple[ImageRef, dict[str, Any] | None]:
    """The garment's shot from exactly one of `garment`, `garment_image_id` and `garment_product_id`."""
    if body.garment_product_id is None or body.garment is not None or body.garment_image_id is not None:
        given = [n for n in ("garment", "garment_image_id", "garment_product_id") if getattr(body, n) is not None]
        if len(given) != 1:
            raise InvalidInputError("garment", given or None, "give exactly one of garment (base64), garment_image_id and garment_product_id")
        return await resolve_image_async(studio().storage, body.garment, body.garment_image_id, names=("garment", "garment_image_id")), None
    from services.routes.recommend import product_shot

    image, product = await product_shot(body.garment_product_id, "garment_product_id")
    return ImageRef(image), product


async def _store(kind: str, output: Any, mask_png: str, mask_source: str, extra: dict[str, Any], params: dict[str, Any]) -> Any:
    key = f"{kind}-{uuid.uuid4().hex}"
    metadata = {
        "sample_id": key,
        "kind": kind,
        **extra,
        "mask_source": mask_source,
        "mask_png_b64": mask_png,
        "changed_pixels": output.changed_pixels,
        "seed": output.seed,
        "params": {**params, "width": output.width, "height": output.height},
        "models": {"inpainter": output.model},
        "timings": output.timings,
        "created_at": datetime.now(UTC).isoformat(),
    }
    with metrics.time_stage("store"):
        return await run_in_threadpool(studio().storage.put, key, png_bytes(output.png_b64), metadata)


def _answer(stored: Any, output: Any, mask_png: str, mask_source: str, source_id: str | None) -> dict[str, Any]:
    return {
        "id": stored.key,
        "url": stored.image_url,
        "seed": output.seed,
        "width": output.width,
        "height": output.height,
        "mask": mask_png,
        "mask_source": mask_source,
        "changed_pixels": output.changed_pixels,
        "source_image_id": source_id,
        "model": output.model,
        "timings": output.timings,
    }
