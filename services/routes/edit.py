"""`/edit`: an image (sent, or stored) + an instruction in words -> an edited image, CLIP-scored against
what it should now show, safety-checked and stored with metadata that links it to its source.

`edit_image` is the reusable coroutine behind the route: the conversation's edit turns call it with a
stored image.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from fashion_studio import metrics
from fashion_studio.editing import check_instruction, edited_description, source_description
from fashion_studio.safety import ContentBlockedError, Verdict
from services.api import LIMITS, SETTINGS, EditRequest, EditResponse
from services.image_refs import ImageRef, resolve_image_async
from services.model_client import call_model, raise_item_error, request_deadline
from services.routes import studio
from services.schemas import EditItem, ScoreItem, image_from_b64, png_b64, png_bytes

router = APIRouter()


@router.post("/edit", response_model=EditResponse)
async def edit(body: EditRequest) -> EditResponse:
    """Change an image as the instruction says ("make it navy", "add stripes"): give exactly one of
    `image` (base64) and `image_id` (a stored image). The edit is stored; its metadata names the source
    image, the instruction and the edited description it was CLIP-scored against. 404 for an unknown
    `image_id`, 415 for bytes that are not an image, 422 `content_blocked` when it fails the safety check."""
    source = await resolve_image_async(studio().storage, body.image, body.image_id)
    return await edit_image(source, body.instruction, seed=body.seed, steps=body.steps, guidance=body.guidance, image_guidance=body.image_guidance)


async def edit_image(
    source: ImageRef,
    instruction: str,
    *,
    seed: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    image_guidance: float | None = None,
) -> EditResponse:
    """Edit `source` as `instruction` says, with the settings' defaults for what is not given; score,
    safety-check and store the result."""
    service = studio()
    check_instruction(instruction, LIMITS)
    item = EditItem(
        png_b64=png_b64(source.image),
        instruction=instruction,
        seed=seed,
        steps=SETTINGS.edit_steps if steps is None else steps,
        guidance=SETTINGS.edit_guidance if guidance is None else guidance,
        image_guidance=SETTINGS.edit_image_guidance if image_guidance is None else image_guidance,
        enqueued_at=time.time(),
        deadline=request_deadline(),
    )
    with metrics.time_stage("edit"):
        output = (await call_model(lambda: service.editor.to_async.edit([item])))[0]
    raise_item_error(output)
    description = edited_description(source_description(source.metadata), instruction)
    score, verdict = await _score_and_check(output.png_b64, description)
    if verdict.blocked:
        checker = service.safety.get().checker
        raise ContentBlockedError(instruction, checker.name if checker else "safety", 1, field="instruction")
    metrics.CLIP_SCORE.observe(score)
    key = f"edit-{uuid.uuid4().hex}"
    metadata = {
        "sample_id": key,
        "source_image_id": source.image_id,
        "instruction": instruction,
        "edited_description": description,
        "original_description": source.metadata.get("original_description"),
        "generation_prompt": None,
        "clip_prompt": description,
        "clip_score": round(score, 4),
        "seed": output.seed,
        "params": {"steps": item.steps, "guidance": item.guidance, "image_guidance": item.image_guidance, "width": output.width, "height": output.height},
        "models": {"editor": output.model},
        "timings": output.timings,
        "created_at": datetime.now(UTC).isoformat(),
    }
    with metrics.time_stage("store"):
        stored = await run_in_threadpool(service.storage.put, key, png_bytes(output.png_b64), metadata)
    return EditResponse(
        id=stored.key,
        url=stored.image_url,
        seed=output.seed,
        width=output.width,
        height=output.height,
        clip_score=round(score, 4),
        source_image_id=source.image_id,
        instruction=instruction,
        edited_description=description,
        model=output.model,
        timings=output.timings,
    )


async def _score_and_check(image_b64: str, description: str) -> tuple[float, Verdict]:
    """The CLIP score against the edited description and the safety verdict; the CLIP safety filter's
    (image, concept) pairs ride in the same scorer call."""
    service = studio()
    safety = service.safety.get()
    concepts = safety.concepts
    items = [ScoreItem(png_b64=image_b64, text=description)]
    if concepts is not None:
        items += [ScoreItem(png_b64=image_b64, text=concept) for concept in concepts.concepts]
    with metrics.time_stage("score"):
        scores = await call_model(lambda: service.scorer.to_async.score(items), SETTINGS.batching.short_call_timeout_s)
    if concepts is not None:
        verdict = concepts.verdicts(scores[1:], 1)[0]
    elif safety.checker is not None:
        with metrics.time_stage("safety"):
            verdict = (await run_in_threadpool(safety.checker.check, [image_from_b64(image_b64)]))[0]
    else:
        verdict = Verdict(False)
    return scores[0], verdict
