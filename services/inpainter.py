"""Masked re-generation and try-on (one diffusers inpainting pipeline) as a batchable BentoML service.

Adaptive batching hands `inpaint` and `tryon` lists of items; items of one shape (working size,
steps, guidance) run as one model call (`fashion_studio.inpainting`). An item whose mask does not fit
its image (another size, nothing set) or whose garment is not an image fails alone with the field
named; an item past its deadline is not run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import bentoml

from fashion_studio import metrics
from fashion_studio.errors import DeadlineExceededError, InvalidInputError, UnsupportedMediaError
from fashion_studio.inpainting import Inpainter, InpaintRequest, TryOnRequest, mask_from_image
from fashion_studio.settings import get_settings
from services.lifecycle import outlive_gateway
from services.loading import BackgroundLoad
from services.schemas import InpaintItem, InpaintOutput, ItemError, image_from_b64, png_b64

logger = logging.getLogger(__name__)
SETTINGS = get_settings()


def _image(b64: str, field: str):
    try:
        return image_from_b64(b64)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the sender's bytes
        raise UnsupportedMediaError(field, f"{len(b64)} base64 chars", f"must be a PNG, JPEG or WebP image ({type(exc).__name__})") from None


@outlive_gateway
@bentoml.service(
    name="inpainter",
    traffic={"timeout": SETTINGS.batching.timeout_s, "max_concurrency": SETTINGS.batching.service_max_concurrency},
    resources={"gpu": 1} if SETTINGS.device.startswith("cuda") else {"cpu": "1"},
    workers=1,
)
class InpainterService:
    def __init__(self) -> None:
        self.model = BackgroundLoad("inpainter", lambda: Inpainter.load(SETTINGS.for_process("inpainter")), wait_s=SETTINGS.model_wait_s)

    def __is_ready__(self) -> bool:
        return self.model.ready

    @bentoml.api(batchable=True, max_batch_size=SETTINGS.batching.max_batch_size, max_latency_ms=SETTINGS.batching.max_latency_ms)
    def inpaint(self, items: list[InpaintItem]) -> list[InpaintOutput]:
        """Each item's image redrawn inside its mask as its prompt says."""

        def request(item: InpaintItem) -> InpaintRequest:
            if item.prompt is None:
                raise InvalidInputError("prompt", None, "an inpainting needs a prompt")
            image = _image(item.png_b64, "image")
            mask = mask_from_image(_image(item.mask_png_b64, "mask"))
            return InpaintRequest(image, mask, item.prompt, item.negative_prompt, item.seed, item.steps, item.guidance)

        return self._run("inpaint", items, request)

    @bentoml.api(batchable=True, max_batch_size=SETTINGS.batching.max_batch_size, max_latency_ms=SETTINGS.batching.max_latency_ms)
    def tryon(self, items: list[InpaintItem]) -> list[InpaintOutput]:
        """Each item's person wearing its garment inside its mask."""

        def request(item: InpaintItem) -> TryOnRequest:
            if item.garment_png_b64 is None:
                raise InvalidInputError("garment", None, "a try-on needs a garment image")
            person = _image(item.png_b64, "person")
            garment = _image(item.garment_png_b64, "garment")
            mask = mask_from_image(_image(item.mask_png_b64, "mask"))
            return TryOnRequest(person, garment, mask, item.seed, item.steps, item.guidance)

        return self._run("tryon", items, request)

    def _run(self, kind: str, items: list[InpaintItem], make: Callable[[InpaintItem], InpaintRequest | TryOnRequest]) -> list[InpaintOutput]:
        inpainter = self.model.get()
        metrics.BATCH_SIZE.labels(method=kind).observe(len(items))
        outputs: list[InpaintOutput | None] = [None] * len(items)
        ready: dict[int, InpaintRequest | TryOnRequest] = {}
        for index, item in enumerate(items):
            try:
                if item.deadline is not None and time.time() > item.deadline:
                    raise DeadlineExceededError("the request's deadline passed while it waited for the inpainter")
                ready[index] = make(item).check(SETTINGS.limits)
            except (InvalidInputError, DeadlineExceededError) as exc:
                outputs[index] = InpaintOutput(error=ItemError.of(exc))
        indices = list(ready)
        try:
            results = inpainter.run([ready[i] for i in indices])
        except Exception as exc:
            logger.exception("%s failed", kind)
            results = [exc] * len(indices)  # type: ignore[list-item]
        for index, result in zip(indices, results):
            if isinstance(result, Exception):
                outputs[index] = InpaintOutput(error=ItemError.of(result))
                continue
            metrics.INPAINTS.labels(kind=kind).inc()
            outputs[index] = InpaintOutput(
                png_b64=png_b64(result.image),
                seed=result.seed,
                width=result.image.width,
                height=result.image.height,
                changed_pixels=result.changed_pixels,
                model=result.model,
                timings=result.timings,
                batch_images=result.batch_images,
            )
        return [output if output is not None else InpaintOutput(error=ItemError.of(RuntimeError("no answer"))) for output in outputs]
