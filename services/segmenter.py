"""Garment masks (Segment Anything and a clothes parser) as a batchable BentoML service.

Adaptive batching hands `segment` a list of items; items with the same prompt shape (points, a box,
points with a box, one point with SAM's three candidates, a category) run as one model call. An item
whose prompt does not fit its image (a point outside it, a box past its edge, an unknown category)
fails alone with the field named; an item past its deadline is not run.
"""

from __future__ import annotations

import logging
import time

import bentoml

from fashion_studio import metrics
from fashion_studio.errors import DeadlineExceededError, InvalidInputError
from fashion_studio.segmentation import Segmenter, SegmentRequest
from fashion_studio.settings import get_settings
from services.lifecycle import outlive_gateway
from services.loading import BackgroundLoad
from services.schemas import ItemError, MaskOut, SegmentItem, SegmentOutput, image_from_b64, png_b64

logger = logging.getLogger(__name__)
SETTINGS = get_settings()


@outlive_gateway
@bentoml.service(
    name="segmenter",
    traffic={"timeout": SETTINGS.batching.timeout_s, "max_concurrency": SETTINGS.batching.service_max_concurrency},
    resources={"gpu": 1} if SETTINGS.device.startswith("cuda") else {"cpu": "1"},
    workers=1,
)
class SegmenterService:
    def __init__(self) -> None:
        self.model = BackgroundLoad("segmenter", lambda: Segmenter.from_settings(SETTINGS.for_process("segmenter")), wait_s=SETTINGS.model_wait_s)

    def __is_ready__(self) -> bool:
        return self.model.ready

    @bentoml.api(batchable=True, max_batch_size=SETTINGS.batching.max_batch_size, max_latency_ms=SETTINGS.batching.max_latency_ms)
    def segment(self, items: list[SegmentItem]) -> list[SegmentOutput]:
        segmenter = self.model.get()
        metrics.BATCH_SIZE.labels(method="segment").observe(len(items))
        outputs: list[SegmentOutput | None] = [None] * len(items)
        ready: dict[int, SegmentRequest] = {}
        for index, item in enumerate(items):
            try:
                if item.deadline is not None and time.time() > item.deadline:
                    raise DeadlineExceededError("the request's deadline passed while it waited for the segmenter")
                ready[index] = segmenter.check(
                    SegmentRequest(
                        image_from_b64(item.png_b64),
                        tuple(map(tuple, item.points)),
                        tuple(item.labels),
                        tuple(item.box) if item.box is not None else None,
                        item.category,
                        item.multimask,
                    )
                )
            except (InvalidInputError, DeadlineExceededError) as exc:
                outputs[index] = SegmentOutput(error=ItemError.of(exc))
        indices = list(ready)
        try:
            results = segmenter.segment([ready[i] for i in indices])
        except Exception as exc:
            logger.exception("segmentation failed")
            results = [exc] * len(indices)  # type: ignore[list-item]
        for index, result in zip(indices, results):
            if isinstance(result, Exception):
                outputs[index] = SegmentOutput(error=ItemError.of(result))
                continue
            metrics.SEGMENTATIONS.labels(prompt=ready[index].prompt).inc()
            outputs[index] = SegmentOutput(
                masks=[MaskOut(png_b64=png_b64(m.image()), score=round(m.score, 4), area=m.area) for m in result.masks],
                model=result.model,
                timings=result.timings,
                batch_images=result.batch_images,
            )
        return [output if output is not None else SegmentOutput(error=ItemError.of(RuntimeError("no answer"))) for output in outputs]
