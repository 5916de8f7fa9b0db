"""A detector of one pattern (the demonstration's zigzag) in 64x64 product shots: a small CNN.

It is the fashion-mini judge's network (`fashion_studio.mini.judge`: strided 3x3 convolutions, batch
norm, global pooling) with one binary head, trained on renders of the pattern against renders of the
catalog's four patterns, with the judge's augmentation (blur, contrast, noise), so that it reads the
softer edges of generated images as well as a renderer's crisp ones. The demonstration hands it half of
its renders as the generator's VAE gives them back, and validates it on fresh renders it was not
fitted on before it judges generated images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image


def _network(width: int) -> Any:
    import torch.nn as nn

    def block(cin: int, cout: int, stride: int) -> list[Any]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(3, width, 2),  # 32x32
        *block(width, width, 1),
        *block(width, 2 * width, 2),  # 16x16
        *block(2 * width, 2 * width, 1),
        *block(2 * width, 4 * width, 2),  # 8x8
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * width, 1),
    )


def _arrays(images: Sequence[Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(im.convert("RGB").resize((64, 64)), dtype=np.uint8) for im in images])


@dataclass
class Detector:
    """`probability` > 0.5 means the pattern is there."""

    model: Any

    @classmethod
    def fit(cls, positives: Sequence[Image.Image], negatives: Sequence[Image.Image], steps: int = 600, seed: int = 0, width: int = 16) -> Detector:
        import torch
        import torch.nn.functional as F

        from fashion_studio.mini.judge import augment, image_tensor

        torch.manual_seed(seed)
        images = np.concatenate([_arrays(positives), _arrays(negatives)])
        labels = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))])
        model = _network(width)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
        rng = np.random.default_rng(seed)
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(steps):
            index = rng.integers(0, len(images), 64)
            logits = model(augment(image_tensor(images[index]), generator)).squeeze(1)
            loss = F.binary_cross_entropy_with_logits(logits, labels[torch.from_numpy(index)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        return cls(model)

    def probability(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        from fashion_studio.mini.judge import image_tensor

        if not len(images):
            return np.zeros(0)
        with torch.inference_mode():
            return torch.sigmoid(self.model(image_tensor(_arrays(images))).squeeze(1)).numpy()

    def detects(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.probability(images) > 0.5
