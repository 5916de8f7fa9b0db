"""Seed 004's popularity models, side by side, plus a naive baseline, all predicting the same target.

- baseline: the mean target of the article's product type;
- linear: ridge regression on the metadata (one-hot type, colour, pattern; log price);
- image: ridge regression on the CLIP image embedding;
- combined: a small MLP on the metadata one-hots and the CLIP embedding. It is trained with each
  metadata field hidden now and then, so that an image without metadata (a generated design) still
  gets a score from what the image shows.

Weights live in `popularity.safetensors`, everything else (vocabulary, target scale, the catalog's
predicted scores for percentiles, the CLIP model they were fitted on) in `popularity.json`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fashion_studio.errors import InvalidInputError
from fashion_studio.mini.vocab import COLOUR_NAMES, PATTERNS, TYPE_NAMES

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "popularity.safetensors"
CONFIG_FILE = "popularity.json"
MODEL_NAMES = ("baseline", "linear", "image", "combined")
FIELDS: dict[str, tuple[str, ...]] = {"product_type": TYPE_NAMES, "colour": COLOUR_NAMES, "pattern": PATTERNS}
META_DIM = sum(len(v) for v in FIELDS.values()) + 2  # + log price, price missing
PRICE_REFERENCE = 40.0
HELDOUT_PERCENT = 20


def is_heldout(product_id: str) -> bool:
    """Whether an article belongs to the evaluation split: fixed by its id alone, never by its events."""
    return int(hashlib.sha256(product_id.encode()).hexdigest()[:8], 16) % 100 < HELDOUT_PERCENT


def split_ids(ids: Sequence[str]) -> tuple[list[str], list[str]]:
    train = [i for i in ids if not is_heldout(i)]
    heldout = [i for i in ids if is_heldout(i)]
    if set(train) & set(heldout) or len(train) + len(heldout) != len(set(ids)):
        raise ValueError("the split by product id is not a partition of the products")
    return train, heldout


def metadata_features(metadata: Sequence[Mapping[str, Any] | None]) -> np.ndarray:
    """One row per article: one-hots of type, colour, pattern (all zero when unknown), log price, price missing."""
    rows = np.zeros((len(metadata), META_DIM), dtype=np.float32)
    for i, item in enumerate(metadata):
        item = item or {}
        offset = 0
        for name, vocabulary in FIELDS.items():
            value = item.get(name)
            if value is not None:
                if value not in vocabulary:
                    raise InvalidInputError(name, value, f"must be one of {', '.join(vocabulary)}")
                rows[i, offset + vocabulary.index(value)] = 1.0
            offset += len(vocabulary)
        price = item.get("price")
        if price is None:
            rows[i, offset + 1] = 1.0
        elif not float(price) > 0:
            raise InvalidInputError("price", price, "must be > 0")
        else:
            rows[i, offset] = float(np.log(float(price) / PRICE_REFERENCE))
    return rows


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Closed-form ridge with an unpenalised intercept (the last weight)."""
    design = np.c_[x, np.ones(len(x))].astype(np.float64)
    penalty = alpha * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0
    return np.linalg.solve(design.T @ design + penalty, design.T @ y).astype(np.float32)


def _apply(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    return x @ weights[:-1] + weights[-1]


class CombinedNet(torch.nn.Module):
    def __init__(self, meta_dim: int, embed_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(meta_dim + embed_dim, hidden), torch.nn.GELU(), torch.nn.Dropout(0.1), torch.nn.Linear(hidden, 1))

    def forward(self, meta: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([meta, embedding], dim=1)).squeeze(1)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    ridge_alpha: float = 1.0
    epochs: int = 100
    batch_size: int = 256
    learning_rate: float = 5e-3
    weight_decay: float = 1e-4
    hidden: int = 64
    hide_field_p: float = 0.15  # chance to hide each metadata field of a training article


@dataclass
class PopularityModels:
    baseline: dict[str, float]
    global_mean: float
    linear: np.ndarray
    image: np.ndarray
    embed_mean: np.ndarray
    embed_std: np.ndarray
    net: CombinedNet
    target_mean: float
    target_std: float
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(cls, metadata: Sequence[Mapping[str, Any]], embeddings: np.ndarray, target: np.ndarray, config: TrainConfig = TrainConfig()) -> PopularityModels:
        meta = metadata_features(metadata)
        types = [m["product_type"] for m in metadata]
        baseline = {t: float(target[[x == t for x in types]].mean()) for t in sorted(set(types))}
        embed_mean, embed_std = embeddings.mean(0), embeddings.std(0) + 1e-6
        t_mean, t_std = float(target.mean()), float(target.std() + 1e-6)
        net = _fit_net(meta, (embeddings - embed_mean) / embed_std, (target - t_mean) / t_std, config)
        return cls(
            baseline,
            float(target.mean()),
            _ridge(meta, target, config.ridge_alpha),
            _ridge(embeddings, target, config.ridge_alpha * 0.01),
            embed_mean.astype(np.float32),
            embed_std.astype(np.float32),
            net,
            t_mean,
            t_std,
            {"train_config": config.__dict__},
        )

    @property
    def embed_dim(self) -> int:
        return int(self.embed_mean.shape[0])

    def predict_all(self, metadata: Sequence[Mapping[str, Any]], embeddings: np.ndarray) -> dict[str, np.ndarray]:
        """Every model's prediction (the target's scale) for articles with full metadata."""
        meta = metadata_features(metadata)
        return {
            "baseline": np.array([self.baseline.get(m.get("product_type"), self.global_mean) for m in metadata], dtype=np.float32),
            "linear": _apply(self.linear, meta),
            "image": _apply(self.image, embeddings),
            "combined": self.combined(meta, embeddings),
        }

    def combined(self, meta: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        self.check_embeddings(embeddings)
        with torch.inference_mode():
            z = self.net.eval()(torch.from_numpy(meta), torch.from_numpy(((embeddings - self.embed_mean) / self.embed_std).astype(np.float32)))
        return z.numpy() * self.target_std + self.target_mean

    def check_embeddings(self, embeddings: np.ndarray) -> None:
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embed_dim:
            raise ValueError(
                f"image embeddings of width {embeddings.shape[-1]} do not fit popularity models fitted on width "
                f"{self.embed_dim} ({self.info.get('scorer')}); retrain with `fashion-studio popularity train`"
            )

    def percentile(self, scores: np.ndarray) -> np.ndarray:
        """Share of the catalog's articles (in %) predicted at or under each score."""
        catalog = np.asarray(self.info.get("catalog_scores", []), dtype=np.float32)
        if not len(catalog):
            return np.full(len(scores), float("nan"))
        return 100.0 * np.searchsorted(catalog, scores, side="right") / len(catalog)

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        tensors = {f"combined.{k}": v.detach().contiguous() for k, v in self.net.state_dict().items()}
        for name in ("linear", "image", "embed_mean", "embed_std"):
            tensors[name] = torch.from_numpy(np.ascontiguousarray(getattr(self, name)))
        config = {
            "baseline": self.baseline,
            "global_mean": self.global_mean,
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "meta_fields": {k: list(v) for k, v in FIELDS.items()},
            "price_reference": PRICE_REFERENCE,
            "hidden": self.net.net[0].out_features,
            **self.info,
        }
        # The JSON first, the weights last: a server reloads when the weights change and then finds both.
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=1), encoding="utf-8")
        temp = directory / f".{WEIGHTS_FILE}.tmp"
        save_file(tensors, str(temp))
        temp.replace(directory / WEIGHTS_FILE)

    @classmethod
    def load(cls, directory: Path) -> PopularityModels:
        from safetensors.torch import load_file

        weights_path, config_path = directory / WEIGHTS_FILE, directory / CONFIG_FILE
        if not weights_path.is_file() or not config_path.is_file():
            raise FileNotFoundError(
                f"no popularity models in {directory} (need {WEIGHTS_FILE} and {CONFIG_FILE}); "
                "train them with `fashion-studio popularity simulate` and `fashion-studio popularity train`"
            )
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if config.get("meta_fields") != {k: list(v) for k, v in FIELDS.items()}:
            raise ValueError(f"{config_path} was fitted on another vocabulary; retrain with `fashion-studio popularity train`")
        tensors = load_file(str(weights_path))
        embed_mean = tensors["embed_mean"].numpy()
        net = CombinedNet(META_DIM, embed_mean.shape[0], config["hidden"])
        net.load_state_dict({k[len("combined.") :]: v for k, v in tensors.items() if k.startswith("combined.")})
        known = {"baseline", "global_mean", "target_mean", "target_std", "meta_fields", "price_reference", "hidden"}
        return cls(
            config["baseline"],
            config["global_mean"],
            tensors["linear"].numpy(),
            tensors["image"].numpy(),
            embed_mean,
            tensors["embed_std"].numpy(),
            net.eval(),
            config["target_mean"],
            config["target_std"],
            {k: v for k, v in config.items() if k not in known},
        )


def _fit_net(meta: np.ndarray, embeddings: np.ndarray, target: np.ndarray, config: TrainConfig) -> CombinedNet:
    """Adam on mean squared error; metadata fields hidden at random so image-only inputs stay meaningful."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    net = CombinedNet(meta.shape[1], embeddings.shape[1], config.hidden)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.epochs)
    x_meta, x_embed, y = torch.from_numpy(meta), torch.from_numpy(embeddings.astype(np.float32)), torch.from_numpy(target.astype(np.float32))
    # Column -> field (type, colour, pattern, price); hiding the price zeroes it and sets "price missing".
    field_of = torch.tensor([i for i, v in enumerate(FIELDS.values()) for _ in v] + [len(FIELDS), len(FIELDS)])
    price_missing = torch.zeros(meta.shape[1], dtype=torch.bool)
    price_missing[-1] = True
    net.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), config.batch_size):
            batch = order[start : start + config.batch_size]
            hidden = (torch.rand(len(batch), len(FIELDS) + 1, generator=generator) < config.hide_field_p)[:, field_of]
            m = torch.where(hidden, price_missing.float().expand_as(hidden), x_meta[batch])
            loss = torch.nn.functional.mse_loss(net(m, x_embed[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        schedule.step()
    return net.eval()
