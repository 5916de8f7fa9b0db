"""The combined popularity model applied to images: CLIP embeddings + optional metadata -> scores.

`Predictor` is what the popularity service and the catalog pipeline hold; it reloads the weights when
a retrain replaces them, so a running server follows the shop's newest events without a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from fashion_studio.popularity.models import WEIGHTS_FILE, PopularityModels, metadata_features
from fashion_studio.scoring import Scorer
from fashion_studio.settings import Settings, get_settings

logger = logging.getLogger(__name__)


def model_dir(settings: Settings) -> Path:
    """The popularity models' folder: `popularity_model`, relative ones under `models_dir`."""
    path = Path(settings.popularity_model)
    return path if path.is_absolute() else settings.models_dir / path


@dataclass(frozen=True)
class Prediction:
    scores: list[float]
    percentiles: list[float]


class Predictor:
    def __init__(self, scorer: Scorer, directory: Path) -> None:
        self.scorer = scorer
        self.directory = directory
        self._lock = threading.Lock()
        self._stamp = self._weights_stamp()
        self.models = self._load()

    @classmethod
    def load(cls, settings: Settings, scorer: Scorer | None = None) -> Predictor:
        return cls(scorer or Scorer.load(settings), model_dir(settings))

    def _weights_stamp(self) -> int:
        path = self.directory / WEIGHTS_FILE
        return path.stat().st_mtime_ns if path.is_file() else 0

    def _load(self) -> PopularityModels:
        models = PopularityModels.load(self.directory)
        if models.embed_dim != self.scorer.dim:
            raise ValueError(
                f"popularity models in {self.directory} were fitted on {models.info.get('scorer')} embeddings "
                f"(width {models.embed_dim}); the scorer {self.scorer.ref.ref} gives width {self.scorer.dim}: "
                "retrain with `fashion-studio popularity train`"
            )
        logger.info("popularity models loaded from %s (%s products trained on)", self.directory, models.info.get("train_products"))
        return models

    def refresh(self) -> None:
        """Load the weights again if a retrain replaced them; a broken new set keeps the old one serving."""
        stamp = self._weights_stamp()
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:
                return
            try:
                self.models = self._load()
            except (OSError, ValueError):
                logger.exception("popularity models in %s changed but do not load; still serving the previous ones", self.directory)
            self._stamp = stamp

    def __call__(self, images: Sequence[Image.Image], metadata: Sequence[Mapping[str, Any] | None]) -> Prediction:
        if len(images) != len(metadata):
            raise ValueError(f"predict takes one metadata entry per image: {len(images)} images, {len(metadata)} entries")
        self.refresh()
        models = self.models
        scores = models.combined(metadata_features(metadata), self.scorer.embed_images(images))
        return Prediction([float(s) for s in scores], [float(p) for p in models.percentile(scores)])


_shared: dict[str, Predictor] = {}


def predict(images: Sequence[Image.Image], metadata: Sequence[Mapping[str, Any] | None], settings: Settings | None = None) -> list[float]:
    """Predicted popularity of each image (metadata entries may be None or partial: type, colour, pattern, price)."""
    settings = settings or get_settings()
    key = f"{settings.scorer}|{model_dir(settings)}"
    if key not in _shared:
        _shared[key] = Predictor.load(settings)
    return _shared[key](images, metadata).scores
