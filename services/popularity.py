"""Popularity prediction as a batchable BentoML service: CLIP image embeddings + the combined model.

Missing or mismatched popularity weights leave the service not ready, with a log line that says which
folder was read and how to train the weights; the other services keep serving. A retrain that replaces
the weights is picked up on the next batch.
"""

from __future__ import annotations

from typing import Any

import bentoml
from pydantic import BaseModel

from fashion_studio import metrics
from fashion_studio.popularity.predictor import Predictor
from fashion_studio.settings import get_settings
from services.lifecycle import outlive_gateway
from services.loading import BackgroundLoad
from services.schemas import image_from_b64

SETTINGS = get_settings()


class PopularityItem(BaseModel):
    png_b64: str
    metadata: dict[str, Any] | None = None  # product_type, colour, pattern, price: any may be absent


class PopularityOut(BaseModel):
    score: float
    percentile: float


@outlive_gateway
@bentoml.service(
    name="popularity",
    traffic={"timeout": SETTINGS.batching.timeout_s, "max_concurrency": SETTINGS.batching.service_max_concurrency},
    resources={"cpu": "1"},
    workers=1,
)
class Popularity:
    def __init__(self) -> None:
        self.model = BackgroundLoad("popularity", lambda: Predictor.load(SETTINGS), wait_s=SETTINGS.model_wait_s)

    def __is_ready__(self) -> bool:
        return self.model.ready

    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=SETTINGS.batching.max_latency_ms)
    def predict(self, items: list[PopularityItem]) -> list[PopularityOut]:
        metrics.BATCH_SIZE.labels(method="popularity").observe(len(items))
        prediction = self.model.get()([image_from_b64(i.png_b64) for i in items], [i.metadata for i in items])
        metrics.POPULARITY_PREDICTIONS.inc(len(items))
        return [PopularityOut(score=s, percentile=p) for s, p in zip(prediction.scores, prediction.percentiles)]
