"""`/generate` and `/generate_image`: a prompt -> images, scored by CLIP, safety-checked, stored."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fashion_studio import metrics
from services.api import GenerateRequest, GenerateResponse, ImageOut
from services.routes import studio
from services.routes.popularity import popularity_scores
from services.schemas import png_bytes

router = APIRouter()


@router.post("/generate", response_model=GenerateResponse)
async def generate(body: GenerateRequest) -> GenerateResponse:
    """Generate 1..4 images for a prompt; each is scored by CLIP, safety-checked and stored with its
    metadata. Blocked images are left out (`blocked` counts them); none left is 422 `content_blocked`."""
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
