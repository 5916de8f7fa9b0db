"""CLIP scoring and embeddings as a batchable BentoML service."""

from __future__ import annotations

import bentoml

from fashion_studio import metrics
from fashion_studio.scoring import Scorer as ClipScorer
from fashion_studio.settings import get_settings
from services.lifecycle import outlive_gateway
from services.loading import BackgroundLoad
from services.schemas import ScoreItem, image_from_b64

SETTINGS = get_settings()


@outlive_gateway
@bentoml.service(
    name="scorer",
    traffic={"timeout": SETTINGS.batching.timeout_s, "max_concurrency": SETTINGS.batching.service_max_concurrency},
    resources={"cpu": "1"},
    workers=1,
)
class Scorer:
    def __init__(self) -> None:
        self.model = BackgroundLoad("scorer", lambda: ClipScorer.load(SETTINGS), wait_s=SETTINGS.model_wait_s)

    def __is_ready__(self) -> bool:
        return self.model.ready

    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=SETTINGS.batching.max_latency_ms)
    def score(self, items: list[ScoreItem]) -> list[float]:
        metrics.BATCH_SIZE.labels(method="score").observe(len(items))
        return self.model.get().score([image_from_b64(i.png_b64) for i in items], [i.text for i in items])

    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=SETTINGS.batching.max_latency_ms)
    def embed_texts(self, texts: list[str]) -> list[list[float]]:
        metrics.BATCH_SIZE.labels(method="embed_texts").observe(len(texts))
        return self.model.get().embed_texts(texts).tolist()
