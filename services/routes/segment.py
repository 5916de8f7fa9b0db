"""`/segment`: garment masks from clicks, a box, or a garment category.

An image (sent, or stored) and a prompt: points with foreground/background labels (Segment Anything),
a box, or a category ("upper", "lower", "full") read by the clothes parser with no clicks. The answer
is the mask(s) as one-channel PNGs at the image's size, best first, each with SAM's predicted IoU.
"""

from __future__ import annotations

from fastapi import APIRouter

from fashion_studio import metrics
from fashion_studio.segmentation import prompt_kind
from services.api import SegmentRequest, SegmentResponse
from services.image_refs import resolve_image_async
from services.model_client import call_model, raise_item_error, request_deadline
from services.routes import studio
from services.schemas import SegmentItem, png_b64

router = APIRouter()


@router.post("/segment", response_model=SegmentResponse)
async def segment(body: SegmentRequest) -> SegmentResponse:
    """Masks for one image: give exactly one of `image` (base64) and `image_id` (a stored image), and
    `points` (with `labels`), a `box`, or a `category`. One point answers SAM's three candidate masks
    (the garment, the outfit, the person), best first; several points or a box answer one. 422 names
    the field for a point outside the image, a box past its edge, labels that do not match the points."""
    source = await resolve_image_async(studio().storage, body.image, body.image_id)
    item = SegmentItem(
        png_b64=png_b64(source.image),
        points=[tuple(p) for p in body.points],
        labels=list(body.labels) if body.labels is not None else [1] * len(body.points),
        box=tuple(body.box) if body.box is not None else None,
        category=body.category,
        multimask=body.multimask,
        deadline=request_deadline(),
    )
    with metrics.time_stage("segment"):
        output = (await call_model(lambda: studio().segmenter.to_async.segment([item])))[0]
    raise_item_error(output)
    return SegmentResponse(
        width=source.image.width,
        height=source.image.height,
        prompt=prompt_kind(body.category, body.box),
        image_id=source.image_id,
        masks=output.masks,
        model=output.model,
        timings=output.timings,
    )
