"""German -> English translation with MarianMT (opus-mt-de-en in production), batched."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from fashion_studio import models
from fashion_studio.settings import Settings

logger = logging.getLogger(__name__)


class Translator:
    def __init__(self, model, tokenizer, ref: models.ModelRef, num_beams: int = 1, max_new_tokens: int = 128) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.ref = ref
        self.num_beams = num_beams
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()

    @classmethod
    def load(cls, settings: Settings, ref: str | None = None) -> Translator:
        from transformers import MarianMTModel, MarianTokenizer

        model_ref = models.resolve("translator", ref or settings.translator, settings)
        tokenizer = MarianTokenizer.from_pretrained(model_ref.path)
        if settings.runtime == "torch":
            model = MarianMTModel.from_pretrained(model_ref.path)
        else:
            from fashion_studio.runtimes import load_translation_model

            model = load_translation_model(settings, model_ref)
        logger.info("translator %s (%s) loaded from %s", model_ref.ref, settings.runtime, model_ref.path)
        return cls(model, tokenizer, model_ref, settings.translation_beams, settings.translation_max_new_tokens)

    def translate(self, texts: Sequence[str]) -> list[str]:
        """Translate a batch; the order of the output follows the input."""
        import torch

        if not texts:
            return []
        limit = min(self.tokenizer.model_max_length, self.model.config.max_position_embeddings)
        batch = self.tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True, max_length=limit)
        with self._lock, torch.inference_mode():
            output = self.model.generate(
                **batch,
                num_beams=self.num_beams,
                do_sample=False,
                max_new_tokens=min(self.max_new_tokens, limit),
            )
        return [text.strip() for text in self.tokenizer.batch_decode(output, skip_special_tokens=True)]
