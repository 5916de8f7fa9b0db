"""The judge: a small CNN that names a product shot's type, colour and pattern.

It is trained on the renderer's ground truth only (never on generated images, never on the CLIP it
helps evaluate), with blur, noise and brightness augmentation so that softer generated images are read
like renders. It scores the generator in `fashion-studio models eval-mini` and in the tests.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fashion_studio.mini.common import Budget, count_parameters, lr_at, seed_everything, set_lr
from fashion_studio.mini.render import IMAGE_SIZE
from fashion_studio.mini.vocab import COLOUR_NAMES, PATTERNS, TYPE_NAMES

logger = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
HEADS: dict[str, tuple[str, ...]] = {"product_type": TYPE_NAMES, "colour": COLOUR_NAMES, "pattern": PATTERNS}


def _network(width: int = 32) -> Any:
    import torch.nn as nn

    def block(cin: int, cout: int, stride: int) -> list[Any]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    class JudgeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                *block(3, width, 2),  # 32x32
                *block(width, width, 1),
                *block(width, 2 * width, 2),  # 16x16
                *block(2 * width, 2 * width, 1),
                *block(2 * width, 4 * width, 2),  # 8x8
                *block(4 * width, 4 * width, 1),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
            )
            self.heads = nn.ModuleDict({name: nn.Linear(4 * width, len(labels)) for name, labels in HEADS.items()})

        def forward(self, x: Any) -> dict[str, Any]:
            h = self.features(x)
            return {name: head(h) for name, head in self.heads.items()}

    return JudgeNet()


def image_tensor(images: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def augment(x: Any, generator: Any) -> Any:
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :]) / 256.0
    blurred = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), kernel.expand(3, 1, 5, 5).contiguous(), groups=3)
    strength = torch.rand(n, 1, 1, 1, generator=generator) * (torch.rand(n, 1, 1, 1, generator=generator) < 0.5)
    x = x + strength * (blurred - x)
    x = x * (1 + 0.08 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5))
    x = x + 0.06 * torch.rand(n, 1, 1, 1, generator=generator) * torch.randn(x.shape, generator=generator)
    return x.clamp(-1, 1)


@dataclass
class Verdict:
    product_type: str
    colour: str
    pattern: str
    confidence: dict[str, float]


class Judge:
    def __init__(self, model: Any) -> None:
        self.model = model.eval()

    @classmethod
    def load(cls, folder: Path | str) -> Judge:
        from safetensors.torch import load_file

        folder = Path(folder)
        config = json.loads((folder / CONFIG).read_text())
        if {k: tuple(v) for k, v in config["heads"].items()} != HEADS:
            raise ValueError(f"{folder} was trained for other labels: {config['heads']}")
        model = _network(config["width"])
        model.load_state_dict(load_file(folder / WEIGHTS))
        return cls(model)

    def save(self, folder: Path, info: dict[str, Any], width: int) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, folder / WEIGHTS)
        config = {"architecture": "JudgeNet (fashion_studio.mini.judge)", "width": width, "image_size": IMAGE_SIZE, "heads": HEADS, **info}
        (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    def predict_arrays(self, images: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Predicted label indices per head for uint8 (n, 64, 64, 3)."""
        import torch

        out: dict[str, list[np.ndarray]] = {name: [] for name in HEADS}
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                logits = self.model(image_tensor(images[start : start + batch_size]))
                for name in HEADS:
                    out[name].append(logits[name].argmax(1).numpy())
        return {name: np.concatenate(v) if v else np.zeros(0, int) for name, v in out.items()}

    def classify(self, images: Sequence[Image.Image]) -> list[Verdict]:
        import torch

        arrays = np.stack([np.asarray(im.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)) for im in images])
        with torch.inference_mode():
            logits = self.model(image_tensor(arrays))
        verdicts = []
        for i in range(len(images)):
            labels, confidence = {}, {}
            for name, names in HEADS.items():
                p = logits[name][i].softmax(0)
                labels[name] = names[int(p.argmax())]
                confidence[name] = round(float(p.max()), 4)
            verdicts.append(Verdict(labels["product_type"], labels["colour"], labels["pattern"], confidence))
        return verdicts


def labels_of(specs: Sequence[Any]) -> dict[str, np.ndarray]:
    return {
        "product_type": np.array([TYPE_NAMES.index(s.product_type) for s in specs]),
        "colour": np.array([COLOUR_NAMES.index(s.colour) for s in specs]),
        "pattern": np.array([PATTERNS.index(s.pattern) for s in specs]),
    }


def train(
    out: Path, images: np.ndarray, specs: Sequence[Any], seed: int, steps: int, max_seconds: float, batch_size: int = 64, width: int = 24
) -> tuple[Judge, dict[str, Any]]:
    import torch
    import torch.nn.functional as F

    seed_everything(seed)
    model = _network(width)
    model.train()
    labels = {k: torch.from_numpy(v) for k, v in labels_of(specs).items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    budget = Budget(steps, max_seconds)
    losses: list[float] = []
    for step in budget:
        index = rng.integers(0, len(images), batch_size)
        x = augment(image_tensor(images[index]), generator)
        set_lr(optimizer, lr_at(step, steps, 3e-3, warmup=min(100, steps // 10)))
        logits = model(x)
        idx = torch.from_numpy(index)
        loss = sum(F.cross_entropy(logits[name], labels[name][idx]) for name in HEADS)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    judge = Judge(model)
    tail = losses[-50:]
    info = {
        **budget.summary(),
        "batch_size": batch_size,
        "final_loss": round(sum(tail) / max(1, len(tail)), 4),
        "parameters": count_parameters(model),
        "seed": seed,
    }
    judge.save(out, info, width)
    return judge, info


def accuracy(judge: Judge, images: np.ndarray, specs: Sequence[Any]) -> dict[str, float]:
    predicted = judge.predict_arrays(images)
    truth = labels_of(specs)
    return {name: float((predicted[name] == truth[name]).mean()) for name in HEADS}
