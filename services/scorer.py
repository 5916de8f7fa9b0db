"""CLIP scoring, embeddings and popularity as a batchable BentoML service.

Popularity (fashion_studio/popularity) is a small head on CLIP's image embedding, so it runs here on
the CLIP this service already holds rather than in a process and pod of its own. Its weights load
apart: missing ones make `/popularity` answer 503 with the folder read and how to train them, while
scoring goes on; a retrain that replaces them is picked up on the next batch.
"""

from __future__ import annotations

import bentoml

from fashion_studio import metrics
from fashion_studio.popularity.predictor import Predictor
from fashion_studio.scoring import Scorer
from fashion_studio.settings import get_settings
from services.lifecycle import outlive_gateway
from services.loading import BackgroundLoad
from services.schemas import PopularityItem, PopularityOut, ScoreItem, image_from_b64

SETTINGS = get_settings()


@outlive_gateway
@bentoml.service(
    name="scorer",
    traffic={"timeout": SETTINGS.batching.timeout_s, "max_concurrency": SETTINGS.batching.service_max_concurrency},
    resources={"cpu": "1"},
    workers=1,
)
class ScorerService:
    def __init__(self) -> None:
        self.model = BackgroundLoad("scorer", lambda: Scorer.load(SETTINGS.for_process("scorer")), wait_s=SETTINGS.model_wait_s)
        self.popularity = BackgroundLoad("popularity", self._load_popularity)

    def _load_popularity(self) -> Predictor:
        return Predictor.load(SETTINGS, scorer=self.model.wait())

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

    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=SETTINGS.batching.max_latency_ms)
    def embed_images(self, pngs_b64: list[str]) -> list[list[float]]:
        """L2-normalised CLIP image embeddings of PNGs (base64): `/recommend`'s query vectors."""
        metrics.BATCH_SIZE.labels(method="embed_images").observe(len(pngs_b64))
        return self.model.get().embed_images([image_from_b64(b64) for b64 in pngs_b64]).tolist()

    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=SETTINGS.batching.max_latency_ms)
    def predict_popularity(self, items: list[PopularityItem]) -> list[PopularityOut]:
        metrics.BATCH_SIZE.labels(method="popularity").observe(len(items))
        prediction = self.popularity.get()([image_from_b64(i.png_b64) for i in items], [i.metadata for i in items])
        metrics.POPULARITY_PREDICTIONS.inc(len(items))
        return [PopularityOut(score=s, percentile=p) for s, p in zip(prediction.scores, prediction.percentiles)]
