"""The diffusion generator as a BentoML service that schedules denoising steps, not batches.

Each item goes to a `StepScheduler` (fashion_studio/scheduling.py): items of one shape (size, steps,
guidance, adapters) share UNet calls, joining and leaving between steps, and items of other shapes
take turns step by step, so a long request never holds a short one for more than a step at a time.
The API is therefore not batchable (adaptive batching would run a batch to its end): each call waits
on its items' futures in a thread of its own, one per call in flight. `cancel` drops a gateway
request's work before its next step (its client went away); an item past the model's cost limits is
refused, and an item that fails fails alone. With `FASHION_GENERATOR_SCORES` (on unless the deployment
runs the scorer apart), each image comes back with its CLIP score against its prompt, scored between
steps on the scheduler's thread, so `/generate` needs no call to the scorer service.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass

import bentoml

from fashion_studio import metrics, models
from fashion_studio.errors import InvalidInputError, ModelNotFoundError
from fashion_studio.generation import GenerationRequest, GenerationResult, Generator, lora_names
from fashion_studio.scheduling import CostLimits, StepScheduler
from fashion_studio.scoring import Scorer
from fashion_studio.settings import Settings, get_settings
from services.lifecycle import outlive_gateway
from services.loading import BackgroundLoad
from services.schemas import GeneratedImage, GenerateOutput, GenerateWork, ItemError, png_b64

logger = logging.getLogger(__name__)
SETTINGS = get_settings()


@dataclass(frozen=True)
class Loaded:
    """The step scheduler, which owns the pipeline, and the cost limits of its model."""

    scheduler: StepScheduler
    cost: CostLimits


def load_and_warm_up() -> Loaded:
    """Load, then run one generation at the default shape before reporting ready, so the first
    request (and the seconds-per-image SLO) does not pay for lazy allocations and kernel selection.
    With `generator_scores`, the scorer's CLIP loads here too and scores on the scheduler's thread."""
    settings = SETTINGS.for_process("generator")
    scorer = load_scorer(settings) if SETTINGS.generator_scores else None
    generator = Generator.load(settings)
    if SETTINGS.warmup:
        with models.one_thread():
            images = generator.generate([GenerationRequest(prompt="warm-up", seed=0)])[0].images
            if scorer is not None:
                scorer.score(images, ["warm-up"])
    # As many images per UNet call as a batch of `max_batch_size` requests could hold before.
    scheduler = StepScheduler(generator, max_batch_images=SETTINGS.batching.max_batch_size * SETTINGS.limits.max_images_per_prompt, scorer=scorer)
    return Loaded(scheduler, CostLimits.for_model(generator.ref.path, SETTINGS))


def load_scorer(settings: Settings) -> Scorer | None:
    """The scorer's CLIP for this process, loaded first: a folder still being filled is waited on
    (`ModelNotFoundError` goes to `BackgroundLoad`) before the generator loads. Any other failure
    leaves the generator serving unscored images, which the gateway sends to the scorer service."""
    try:
        return Scorer.load(settings)
    except ModelNotFoundError:
        raise
    except Exception:
        logger.exception("the generator's process could not load the scorer's CLIP; the scorer service scores its images")
        return None


@outlive_gateway
@bentoml.service(
    name="generator",
    traffic={"timeout": SETTINGS.batching.timeout_s, "max_concurrency": SETTINGS.batching.service_max_concurrency},
    resources={"gpu": 1} if SETTINGS.device.startswith("cuda") else {"cpu": "1"},
    workers=1,
    # A call only waits on the step scheduler's thread, so every call in flight gets a thread.
    threads=SETTINGS.batching.service_max_concurrency,
)
class GeneratorService:
    def __init__(self) -> None:
        self.model = BackgroundLoad("generator", load_and_warm_up, wait_s=SETTINGS.model_wait_s)

    def __is_ready__(self) -> bool:
        return self.model.ready

    @bentoml.api
    def generate(self, work: list[GenerateWork]) -> list[GenerateOutput]:
        loaded = self.model.get()
        submitted = [self._submit(loaded, item) for item in work]
        return [waited if isinstance(waited, GenerateOutput) else self._wait(loaded, item, waited) for item, waited in zip(work, submitted)]

    @bentoml.api
    def cancel(self, request_ids: list[str]) -> int:
        """Drop the unfinished work of these gateway requests, whose clients went away; returns how
        many items were still unfinished."""
        scheduler = self.model.get().scheduler
        return sum(scheduler.cancel(request_id) for request_id in request_ids)

    def _submit(self, loaded: Loaded, item: GenerateWork) -> Future | GenerateOutput:
        """The request's one check, with the settings' limits, the allow-list and the model's cost limits."""
        try:
            request = loaded.cost.check(item.request.check(SETTINGS.limits, lora_names(SETTINGS)))
        except InvalidInputError as exc:
            return GenerateOutput(error=ItemError.of(exc))
        return loaded.scheduler.submit(request, item.request_id, item.deadline, score=item.score)

    def _wait(self, loaded: Loaded, item: GenerateWork, future: Future) -> GenerateOutput:
        try:
            result = future.result()
        except Exception as exc:
            error = ItemError.of(exc)
            if error.kind == "internal":
                logger.exception("generation failed")
            return GenerateOutput(error=error)
        observe(result, item, loaded.scheduler.generator)
        return GenerateOutput(
            images=[
                GeneratedImage(png_b64=png_b64(im), seed=seed, width=im.width, height=im.height, clip_score=score)
                for im, seed, score in zip(result.images, result.seeds, result.scores or [None] * len(result.images))
            ],
            model=result.model,
            timings=result.timings,
            batch_images=result.batch_images,
            lora=result.lora,
        )


def observe(result: GenerationResult, item: GenerateWork, generator: Generator) -> None:
    """Stage latencies, images and seconds per image: the request's share of the UNet calls it was
    in, so the SLO counts compute, not the turns other requests took in between."""
    images = len(result.images)
    if item.enqueued_at:
        metrics.STAGE_DURATION.labels(stage="queue").observe(max(time.time() - item.enqueued_at - result.timings["total"], 0.0))
    for stage in ("encode", "denoise", "decode"):
        metrics.STAGE_DURATION.labels(stage=stage).observe(result.timings[stage])
    per_image = metrics.SECONDS_PER_IMAGE.labels(model=generator.name, runtime=generator.runtime)
    for _ in range(images):  # one observation per image: the SLO counts images, not requests
        per_image.observe(result.timings.get("compute", result.timings["total"]) / images)
    metrics.IMAGES_GENERATED.labels(model=generator.name).inc(images)
