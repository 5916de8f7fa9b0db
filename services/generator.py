"""The diffusion generator as a batchable BentoML service.

Concurrent requests arrive as one list; items of the same shape (size, steps, guidance) run as one
pipeline call, items of other shapes as calls of their own, and an item that fails fails alone.
"""

from __future__ import annotations

import logging
import time

import bentoml

from fashion_studio import metrics
from fashion_studio.errors import DeadlineExceededError, InvalidInputError
from fashion_studio.generation import Generator as DiffusionGenerator
from fashion_studio.generation import GenerationRequest, group_by_shape
from fashion_studio.settings import get_settings
from services.lifecycle import outlive_gateway
from services.loading import BackgroundLoad
from services.schemas import GeneratedImage, GenerateItem, GenerateOutput, png_b64

logger = logging.getLogger(__name__)
SETTINGS = get_settings()


def load_and_warm_up() -> DiffusionGenerator:
    """Load, then run one generation at the default shape before reporting ready, so the first
    request (and the seconds-per-image SLO) does not pay for lazy allocations and kernel selection."""
    generator = DiffusionGenerator.load(SETTINGS)
    if SETTINGS.warmup:
        generator.generate(
            [
                GenerationRequest(
                    prompt="warm-up",
                    seed=0,
                    steps=SETTINGS.default_steps,
                    guidance=SETTINGS.default_guidance,
                    width=SETTINGS.default_width,
                    height=SETTINGS.default_height,
                )
            ]
        )
    return generator


@outlive_gateway
@bentoml.service(
    name="generator",
    traffic={"timeout": SETTINGS.batching.timeout_s, "max_concurrency": SETTINGS.batching.service_max_concurrency},
    resources={"gpu": 1} if SETTINGS.device.startswith("cuda") else {"cpu": "1"},
    workers=1,
)
class Generator:
    def __init__(self) -> None:
        self.model = BackgroundLoad("generator", load_and_warm_up, wait_s=SETTINGS.model_wait_s)

    def __is_ready__(self) -> bool:
        return self.model.ready

    @bentoml.api(batchable=True, max_batch_size=SETTINGS.batching.max_batch_size, max_latency_ms=SETTINGS.batching.max_latency_ms)
    def generate(self, items: list[GenerateItem]) -> list[GenerateOutput]:
        generator = self.model.get()
        started = time.time()
        outputs: list[GenerateOutput | None] = [None] * len(items)
        requests: dict[int, GenerationRequest] = {}
        for index, item in enumerate(items):
            if item.enqueued_at:
                metrics.STAGE_DURATION.labels(stage="queue").observe(max(started - item.enqueued_at, 0.0))
            try:
                requests[index] = GenerationRequest(**item.model_dump(exclude={"enqueued_at", "deadline"})).check(SETTINGS.limits)
            except InvalidInputError as exc:
                outputs[index] = GenerateOutput(error={"kind": "invalid_input", **exc.to_dict()})
        indices = list(requests)
        for group in group_by_shape([requests[i] for i in indices]):
            members = [indices[g] for g in group]
            deadlines = [items[i].deadline for i in members]
            deadline = max(deadlines) if all(d is not None for d in deadlines) else None
            self._run_group(generator, members, requests, outputs, deadline)
        return [o if o is not None else GenerateOutput(error={"kind": "internal", "message": "no result"}) for o in outputs]

    def _run_group(self, generator, group: list[int], requests, outputs, deadline: float | None) -> None:
        try:
            results = generator.generate([requests[i] for i in group], deadline=deadline)
        except DeadlineExceededError as exc:
            for index in group:
                outputs[index] = GenerateOutput(error={"kind": "timeout", "message": str(exc)})
            return
        except Exception as exc:
            if len(group) > 1:  # find the item that fails; the others still get their images
                for index in group:
                    self._run_group(generator, [index], requests, outputs, deadline)
                return
            logger.exception("generation failed")
            outputs[group[0]] = GenerateOutput(error={"kind": "internal", "message": f"{type(exc).__name__}: {exc}"})
            return
        images = results[0].batch_images
        total = results[0].timings["total"]
        metrics.BATCH_SIZE.labels(method="generate").observe(len(group))
        per_image = metrics.SECONDS_PER_IMAGE.labels(model=generator.name, runtime=generator.runtime)
        for _ in range(images):  # one observation per image: the SLO counts images, not batches
            per_image.observe(total / images)
        metrics.IMAGES_GENERATED.labels(model=generator.name).inc(images)
        for stage in ("encode", "denoise", "decode"):
            metrics.STAGE_DURATION.labels(stage=stage).observe(results[0].timings[stage])
        for index, result in zip(group, results):
            outputs[index] = GenerateOutput(
                images=[
                    GeneratedImage(png_b64=png_b64(im), seed=seed, width=im.width, height=im.height)
                    for im, seed in zip(result.images, result.seeds)
                ],
                model=result.model,
                timings={**result.timings, "batch_items": float(len(group))},
                batch_images=images,
            )
