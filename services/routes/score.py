"""`/score`: the CLIP score of an image against a text."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from fashion_studio import metrics
from fashion_studio.generation import check_prompt
from services.api import LIMITS, SETTINGS, ScoreRequest, ScoreResponse
from services.image_refs import sent_image
from services.model_client import call_model
from services.routes import studio
from services.schemas import ScoreItem, png_b64

router = APIRouter()


@router.post("/score", response_model=ScoreResponse)
async def score(body: ScoreRequest) -> ScoreResponse:
    # decoding and re-encoding an image of up to max_image_pixels blocks: off the event loop
    image_png = await run_in_threadpool(lambda: png_b64(sent_image(body.image).image))
    check_prompt("text", body.text, LIMITS)
    with metrics.time_stage("score"):
        item = ScoreItem(png_b64=image_png, text=body.text)
        value = (await call_model(lambda: studio().scorer.to_async.score([item]), SETTINGS.batching.short_call_timeout_s))[0]
    metrics.CLIP_SCORE.observe(value)
    return ScoreResponse(clip_score=round(value, 4))
