"""MarianMT translation as a batchable BentoML service; each translation comes with the model's
confidence in it and whether it clears `translation_min_confidence`."""

from __future__ import annotations

import bentoml
from pydantic import BaseModel

from fashion_studio import metrics
from fashion_studio.settings import get_settings
from fashion_studio.translation import Translator
from services.lifecycle import outlive_gateway
from services.loading import BackgroundLoad


class TranslationOut(BaseModel):
    text: str
    confidence: float | None = None
    reliable: bool = False
    unknown_share: float = 0.0


SETTINGS = get_settings()


@outlive_gateway
@bentoml.service(
    name="translator",
    traffic={"timeout": SETTINGS.batching.timeout_s, "max_concurrency": SETTINGS.batching.service_max_concurrency},
    resources={"cpu": "1"},
    workers=1,
)
class TranslatorService:
    def __init__(self) -> None:
        self.model = BackgroundLoad("translator", lambda: Translator.load(SETTINGS.for_process("translator")), wait_s=SETTINGS.model_wait_s)

    def __is_ready__(self) -> bool:
        return self.model.ready

    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=SETTINGS.batching.max_latency_ms)
    def translate(self, texts: list[str]) -> list[TranslationOut]:
        metrics.BATCH_SIZE.labels(method="translate").observe(len(texts))
        return [TranslationOut(**t.to_dict()) for t in self.model.get().translate_scored(texts)]
