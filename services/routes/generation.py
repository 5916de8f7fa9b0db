"""`/generate` and `/generate_image`: a prompt -> images, scored by CLIP, safety-checked, stored; and
`/model_shot`: the same for a person wearing a described outfit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fashion_studio import metrics
from fashion_studio.model_shots import Garment, Outfit
from services.api import SETTINGS, GenerateRequest, GenerateResponse, GenerationParams, ImageOut, ModelShotRequest, ModelShotResponse, OutfitGarment
from services.routes import studio
from services.routes.popularity import popularity_scores
from services.schemas import png_bytes

router = APIRouter()


@router.post("/generate", response_model=GenerateResponse)
async def generate(body: GenerateRequest) -> GenerateResponse:
    """Generate 1..4 images for a prompt; each is scored by CLIP, safety-checked and stored with its
    metadata. Blocked images are left out (`blocked` counts them); none left is 422 `content_blocked`."""
    return await _generate_and_store(body, {})


@router.post("/model_shot", response_model=ModelShotResponse)
async def model_shot(body: ModelShotRequest) -> ModelShotResponse:
    """A person wearing the described top (or dress) and bottom: each description's attributes (German
    or English, no translation needed), the generation prompt made from them, then as `/generate`.
    422 names the field when a description names no garment, or one that does not fit its slot."""
    outfit = Outfit.from_descriptions(body.body, body.top, body.bottom, body.language)
    request = model_shot_request(outfit, body)
    garments = {"top": _garment_out(body.top, outfit.top)}
    garments["bottom"] = _garment_out(body.bottom, outfit.bottom) if outfit.bottom else None
    extra = {"model_shot": {"body": body.body, **{slot: g.model_dump() if g else None for slot, g in garments.items()}}}
    generated = await _generate_and_store(request, extra)
    return ModelShotResponse(**dict(generated), prompt=request.prompt, **garments)


def model_shot_request(outfit: Outfit, body: ModelShotRequest) -> GenerateRequest:
    """What `/generate` is asked for a model shot: the outfit's prompt, the request's parameters, and its
    negative prompt or else the deployment's model-shot one (never the catalog's, which avoids people)."""
    request = GenerateRequest(prompt=outfit.prompt(), **body.model_dump(include=set(GenerationParams.model_fields)))
    if request.negative_prompt is None:
        request.negative_prompt = SETTINGS.model_shot_negative_prompt or None
    return request


def _garment_out(description: str, garment: Garment) -> OutfitGarment:
    return OutfitGarment(description=description, product_type=garment.product_type, colour=garment.colour, pattern=garment.pattern)


async def _generate_and_store(body: GenerateRequest, extra: dict[str, Any]) -> GenerateResponse:
    """Generate, score, check and (ranked by predicted popularity when asked) store each image that
    passed the safety check, with its metadata and `extra`."""
    service = studio()
    output, scores, verdicts = await service.generate_images(body)
    popularity: list[float | None] = [None] * len(output.images)
    if body.rank_by_popularity and output.images:
        popularity = list(await popularity_scores([im.png_b64 for im in output.images]))
        order = sorted(range(len(popularity)), key=lambda i: -popularity[i])
        output.images = [output.images[i] for i in order]
        scores, verdicts, popularity = [scores[i] for i in order], [verdicts[i] for i in order], [popularity[i] for i in order]
    created = datetime.now(UTC).isoformat()
    images = []
    with metrics.time_stage("store"):
        for image, score, verdict, predicted in zip(output.images, scores, verdicts, popularity):
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
                "lora": output.lora,
                "timings": output.timings,
                "created_at": created,
                **extra,
            }
            if predicted is not None:
                metadata["popularity"] = round(predicted, 4)
            stored = await run_in_threadpool(service.storage.put, key, png_bytes(image.png_b64), metadata)  # the PNG as generated
            images.append(
                ImageOut(
                    id=stored.key,
                    url=stored.image_url,
                    seed=image.seed,
                    width=image.width,
                    height=image.height,
                    clip_score=round(score, 4),
                    popularity=None if predicted is None else round(predicted, 4),
                )
            )
    return GenerateResponse(images=images, model=output.model, timings=output.timings, blocked=sum(v.blocked for v in verdicts))


@router.post("/generate_image", response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def generate_image(body: GenerateRequest) -> Response:
    """The first generated image as `image/png`, for `curl -o`; 422 `content_blocked` when it failed the safety check."""
    output, scores, _ = await studio().generate_images(body.model_copy(update={"num_images": 1}))
    image = output.images[0]
    headers = {"X-Seed": str(image.seed), "X-Clip-Score": f"{scores[0]:.4f}", "X-Model": output.model}
    return Response(content=png_bytes(image.png_b64), media_type="image/png", headers=headers)
