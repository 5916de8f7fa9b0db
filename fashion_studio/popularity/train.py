"""Fit the popularity models from the event log and the catalog, on the training split of the articles."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fashion_studio.popularity.events import EventStore, engagement_score
from fashion_studio.popularity.models import PopularityModels, TrainConfig, split_ids
from fashion_studio.products import Catalog, Product
from fashion_studio.scoring import Scorer
from fashion_studio.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

EMBED_BATCH = 64


@dataclass(frozen=True)
class Dataset:
    products: tuple[Product, ...]  # articles with at least one event, in catalog order
    target: np.ndarray  # log(1 + weighted engagement)

    def subset(self, ids: Sequence[str]) -> Dataset:
        wanted = set(ids)
        keep = [i for i, p in enumerate(self.products) if p.product_id in wanted]
        return Dataset(tuple(self.products[i] for i in keep), self.target[keep])


def dataset(catalog: Catalog, store: EventStore) -> Dataset:
    """The target of every catalog article the shop has events for; articles nobody saw are left out."""
    counts = store.engagement("product")
    products = tuple(p for p in catalog.products if p.product_id in counts)
    if not products:
        raise ValueError("the event log has no events for products of this catalog; run `fashion-studio popularity simulate` or import purchases")
    target = np.array([np.log1p(engagement_score(counts[p.product_id])) for p in products], dtype=np.float32)
    return Dataset(products, target)


def embed_products(catalog: Catalog, products: Sequence[Product], scorer: Scorer) -> np.ndarray:
    """CLIP image embeddings of the articles' shots, in batches."""
    chunks = [scorer.embed_images(catalog.load_images(products[i : i + EMBED_BATCH])) for i in range(0, len(products), EMBED_BATCH)]
    return np.concatenate(chunks) if chunks else np.zeros((0, scorer.dim), dtype=np.float32)


def train(catalog: Catalog, store: EventStore, scorer: Scorer, out: Path, config: TrainConfig = TrainConfig()) -> dict:
    """Fit the four models on the training articles, predict the whole catalog for percentiles, save."""
    start = time.perf_counter()
    data = dataset(catalog, store)
    train_ids, heldout_ids = split_ids([p.product_id for p in data.products])
    fit_on = data.subset(train_ids)
    if len(fit_on.products) < 10:
        raise ValueError(f"only {len(fit_on.products)} training articles have events; at least 10 are needed")
    embeddings = embed_products(catalog, catalog.products, scorer)
    index = {p.product_id: i for i, p in enumerate(catalog.products)}
    models = PopularityModels.fit([p.metadata() for p in fit_on.products], embeddings[[index[p.product_id] for p in fit_on.products]], fit_on.target, config)
    catalog_scores = models.predict_all([p.metadata() for p in catalog.products], embeddings)["combined"]
    models.info.update(
        {
            "scorer": scorer.ref.ref,
            "target": "log(1 + weighted engagement): view 0.1, click 1, like 3, purchase 10",
            "catalog": _shown(catalog.root),
            "catalog_products": len(catalog),
            "events": store.count(),
            "train_products": len(fit_on.products),
            "heldout_products": len(heldout_ids),
            "train_ids": sorted(train_ids),
            "catalog_scores": [round(float(s), 4) for s in np.sort(catalog_scores)],
            "train_seconds": round(time.perf_counter() - start, 2),
            "train_config": asdict(config),
        }
    )
    models.save(out)
    logger.info("popularity models fitted on %d articles in %.1f s -> %s", len(fit_on.products), time.perf_counter() - start, out)
    return {key: models.info[key] for key in ("train_products", "heldout_products", "events", "train_seconds")} | {"models": str(out)}


def _shown(path: Path) -> str:
    """A path as the card shows it: relative to the project when inside it, so no machine's layout leaks."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)
