"""CLIP embeddings and the image-text CLIP score (100 x cosine, floored at 0, as torchmetrics reports it).

Seed 003 reports scores around 28 for good catalog images with ViT-L/14; the quality gate compares
this number with `clip_threshold`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from fashion_studio import models
from fashion_studio.settings import Settings

logger = logging.getLogger(__name__)


class Scorer:
    def __init__(self, model, processor, ref: models.ModelRef) -> None:
        self.model = model.eval()
        self.processor = processor
        self.ref = ref
        self._lock = threading.Lock()
        self.max_text_tokens = min(processor.tokenizer.model_max_length, model.config.text_config.max_position_embeddings)

    @classmethod
    def load(cls, settings: Settings, ref: str | None = None) -> Scorer:
        from transformers import CLIPModel, CLIPProcessor

        model_ref = models.resolve("scorer", ref or settings.scorer, settings)
        models.limit_threads(settings)
        if settings.runtime == "torch":
            # float32 on any device: the quality gate compares these scores with a threshold, and the
            # index keeps these embeddings; the model is small next to the generator.
            model = CLIPModel.from_pretrained(model_ref.path).to(settings.device)
        else:
            from fashion_studio.runtimes import load_clip_model

            model = load_clip_model(settings, model_ref)
        processor = CLIPProcessor.from_pretrained(model_ref.path)
        logger.info("scorer %s (%s) loaded from %s", model_ref.ref, settings.runtime, model_ref.path)
        return cls(model, processor, model_ref)

    @property
    def device(self) -> Any:
        """Where the model's weights are (the settings' `device` for PyTorch; the CPU for the exported runtimes)."""
        return getattr(self.model, "device", "cpu")

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings, shape (len(texts), dim)."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = self.processor.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_text_tokens, return_tensors="pt")
        with self._lock, torch.inference_mode():
            features = self.model.get_text_features(**{k: v.to(self.device) for k, v in batch.items()})
        return _normalise(features.float().cpu().numpy())

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """L2-normalised image embeddings, shape (len(images), dim)."""
        import torch

        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        pixels = self.processor.image_processor([im.convert("RGB") for im in images], return_tensors="pt")
        with self._lock, torch.inference_mode():
            features = self.model.get_image_features(pixel_values=pixels["pixel_values"].to(self.device))
        return _normalise(features.float().cpu().numpy())

    def score(self, images: Sequence[Image.Image], texts: Sequence[str]) -> list[float]:
        """CLIP score of each (image, text) pair."""
        if len(images) != len(texts):
            raise ValueError(f"score takes pairs: {len(images)} images vs {len(texts)} texts")
        return clip_scores(self.embed_images(images), self.embed_texts(texts))


def clip_scores(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> list[float]:
    cosine = np.sum(image_embeddings * text_embeddings, axis=1)
    return [float(max(100.0 * c, 0.0)) for c in cosine]


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)
