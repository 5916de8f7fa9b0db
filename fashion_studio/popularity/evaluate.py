"""Measure the popularity models on held-out articles and write the figures: docs and the model card.

Held-out articles are those `is_heldout` picks by id; the code checks that none was trained on. Each
model is scored by Spearman's rank correlation and NDCG@20 against the observed target. With a
simulated event log, the simulator's ceiling (the latent appeal's Spearman against the same target)
stands beside them, and every figure is marked simulated.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from fashion_studio.popularity.events import EventStore
from fashion_studio.popularity.models import HELDOUT_PERCENT, MODEL_NAMES, PopularityModels, is_heldout
from fashion_studio.popularity.simulate import load_appeal
from fashion_studio.popularity.train import dataset, embed_products
from fashion_studio.products import Catalog
from fashion_studio.scoring import Scorer

logger = logging.getLogger(__name__)

NDCG_K = 20
# The bar the combined model is held to: above the metadata-only model, and close to the ceiling.
MIN_GAIN_OVER_LINEAR = 0.1
MIN_SHARE_OF_CEILING = 0.8
DESCRIPTIONS = {
    "baseline": "mean target of the article's product type",
    "linear": "ridge regression on metadata (type, colour, pattern one-hots; log price)",
    "image": "ridge regression on the CLIP image embedding",
    "combined": "MLP on metadata one-hots + CLIP image embedding",
}


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    result = np.empty(len(x), dtype=np.float64)
    start = 0
    while start < len(x):
        end = start
        while end + 1 < len(x) and sorted_x[end + 1] == sorted_x[start]:
            end += 1
        result[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return result


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = ranks(np.asarray(a, dtype=np.float64)), ranks(np.asarray(b, dtype=np.float64))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denominator) if denominator else 0.0


def ndcg(predicted: np.ndarray, relevance: np.ndarray, k: int = NDCG_K) -> float:
    """NDCG@k of the ranking by `predicted`, gains = `relevance` (non-negative)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    top = np.argsort(-predicted, kind="mergesort")[:k]
    ideal = np.sort(relevance)[::-1][:k]
    best = float((ideal * discounts[: len(ideal)]).sum())
    return float((relevance[top] * discounts[: len(top)]).sum()) / best if best > 0 else 0.0


def evaluate(catalog: Catalog, store: EventStore, scorer: Scorer, model_dir: Path) -> dict:
    """Every model's figures on the held-out articles that have events."""
    models = PopularityModels.load(model_dir)
    data = dataset(catalog, store)
    heldout = data.subset([p.product_id for p in data.products if is_heldout(p.product_id)])
    leaked = set(models.info.get("train_ids", [])) & {p.product_id for p in heldout.products}
    if leaked:
        raise ValueError(f"{len(leaked)} held-out articles were trained on (e.g. {sorted(leaked)[:3]}); retrain")
    if len(heldout.products) < NDCG_K:
        raise ValueError(f"only {len(heldout.products)} held-out articles have events; need at least {NDCG_K}")
    embeddings = embed_products(catalog, heldout.products, scorer)
    predictions = models.predict_all([p.metadata() for p in heldout.products], embeddings)
    target = heldout.target.astype(np.float64)
    table = {name: {"spearman": round(spearman(predictions[name], target), 4), "ndcg@20": round(ndcg(predictions[name], target), 4)} for name in MODEL_NAMES}
    appeal = load_appeal(catalog.root)
    results: dict = {
        "simulated": appeal is not None,
        "heldout_products": len(heldout.products),
        "train_products": len(models.info.get("train_ids", [])),
        "events": store.count(),
        "split": f"sha256(product_id) % 100 < {HELDOUT_PERCENT} is held out; no held-out article in train_ids (checked)",
        "target": models.info.get("target"),
        "scorer": models.info.get("scorer"),
        "models": table,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if appeal is not None:
        latent = np.array([appeal[p.product_id] for p in heldout.products])
        ceiling = {"spearman": round(spearman(latent, target), 4), "ndcg@20": round(ndcg(latent, target), 4)}
        results["ceiling"] = ceiling
        for name in MODEL_NAMES:
            table[name]["spearman_vs_latent_appeal"] = round(spearman(predictions[name], latent), 4)
        combined, linear = table["combined"]["spearman"], table["linear"]["spearman"]
        results["checks"] = {
            "combined_minus_linear": round(combined - linear, 4),
            "combined_share_of_ceiling": round(combined / ceiling["spearman"], 4) if ceiling["spearman"] else None,
            "combined_beats_linear_by_0.1": combined >= linear + MIN_GAIN_OVER_LINEAR,
            "combined_reaches_80%_of_ceiling": combined >= MIN_SHARE_OF_CEILING * ceiling["spearman"],
        }
    return results


def report(results: dict, command: str) -> str:
    """The Markdown table of `results`, shared by docs/popularity.md and the model card."""
    simulated = results["simulated"]
    lines = [
        f"Measured by `{command}` on {results['heldout_products']} held-out articles "
        f"({results['split']}); trained on {results['train_products']} articles, {results['events']} events"
        + (" **from simulated shoppers** (`fashion-studio popularity simulate`), not a real shop." if simulated else "."),
        f"Target: {results['target']}. Image embeddings: `{results['scorer']}`.",
        "",
        "| model | what | Spearman | NDCG@20 |" + (" Spearman vs latent appeal |" if simulated else ""),
        "|---|---|---|---|" + ("---|" if simulated else ""),
    ]
    for name in MODEL_NAMES:
        row = results["models"][name]
        lines.append(
            f"| {name} | {DESCRIPTIONS[name]} | {row['spearman']:.3f} | {row['ndcg@20']:.3f} |"
            + (f" {row['spearman_vs_latent_appeal']:.3f} |" if simulated else "")
        )
    if simulated:
        ceiling = results["ceiling"]
        lines.append(
            f"| ceiling (simulated) | the simulator's latent appeal: the best any model can rank | "
            f"{ceiling['spearman']:.3f} | {ceiling['ndcg@20']:.3f} | 1.000 |"
        )
        checks = results["checks"]
        lines += [
            "",
            f"Combined minus metadata-only Spearman: {checks['combined_minus_linear']:+.3f} (bar: +{MIN_GAIN_OVER_LINEAR}); "
            f"combined / ceiling: {100 * checks['combined_share_of_ceiling']:.1f}% (bar: {100 * MIN_SHARE_OF_CEILING:.0f}%).",
        ]
    return "\n".join(lines) + "\n"


def write_docs(results: dict, docs: Path, model_dir: Path, command: str) -> None:
    """docs/popularity.md (whole) with docs/popularity.json beside it, and the model card."""
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    table = report(results, command)
    docs.write_text(DOC_HEAD + "\n## Held-out figures\n\n" + table + DOC_TAIL, encoding="utf-8")
    (model_dir / "README.md").write_text(CARD_HEAD + "\n## Evaluation\n\n" + table + CARD_TAIL, encoding="utf-8")


DOC_HEAD = """# Popularity: how well will a design sell

Seed 004's three popularity models, learned from the shop's own events: a designer ranks candidate
designs before producing them (`/generate` with `"rank_by_popularity": true`), a merchandiser sees the
predicted popularity of every catalog article (`/popularity`, or `fashion_studio.popularity.predict`).

- **Events** (`fashion_studio/popularity/events.py`): an append-only log of views, clicks, likes and
  purchases in SQLite (WAL, each event committed before it is acknowledged) at `FASHION_EVENTS_URL`.
  `/feedback` records views, clicks and likes of catalog articles and generated images; purchases come
  from the order export: `fashion-studio popularity import-purchases FILE.csv`.
- **Target**: per article, log(1 + weighted engagement), weights view 0.1, click 1, like 3, purchase 10.
- **Models** (`fashion_studio/popularity/models.py`): the type's mean (baseline), ridge regression on
  metadata, ridge regression on the CLIP image embedding (`FASHION_SCORER`), and a small MLP on both;
  the MLP is trained with metadata fields hidden at random, so a generated design without metadata is
  scored from its image.
- **Until a shop has events**: `fashion-studio popularity simulate` writes a seeded log from simulated
  shoppers over the demo catalog (`fashion-studio products demo`). Their taste depends on type, colour,
  pattern and price, and on how large the garment is shown in its photo (visible in the image, in no
  metadata field), plus a per-article shock and the chance of each event. The figures below come from
  that simulation, not from a real shop.

```bash
fashion-studio products demo --count 3000            # var/products: PNG shots + products.jsonl/.csv
fashion-studio popularity simulate                   # simulated shoppers -> the event log
fashion-studio popularity train                      # fit the four models -> FASHION_POPULARITY_MODEL
fashion-studio popularity eval                       # held-out figures -> docs/popularity.md/.json, card
```

Served by the gateway (`/popularity` through the batchable `predict_popularity` API of the scorer service, on the CLIP it already holds, `services/scorer.py`):

```bash
curl -s localhost:3000/popularity -H 'content-type: application/json' \\
  -d "{\\"image\\": \\"$(base64 -w0 var/products/images/P-00001.png)\\", \\"type\\": \\"dress\\", \\"colour\\": \\"red\\", \\"price\\": 49.99}"
# -> {"score": ..., "percentile": ...}: percentile among the catalog's predicted scores
curl -s localhost:3000/feedback -H 'content-type: application/json' -d '{"kind": "like", "product_id": "P-00001"}'
```

A retrain replaces the weights in place; the running service loads them on its next batch. The catalog
pipeline calls `fashion_studio.popularity.predict(images, metadata)`.
"""

DOC_TAIL = """
Spearman ranks all held-out articles against their observed target; NDCG@20 asks whether the 20
articles ranked first are the ones that engaged most (gains: the observed target). The ceiling is not a
model: it is the simulator's latent appeal, which misses the observed target only by the simulator's
own noise. The split is by product id, fixed before any event is read.
"""

CARD_HEAD = """# fashion-mini popularity models

Predicts an article's popularity, log(1 + weighted engagement), from its photo and metadata: seed
004's metadata-only linear model, a CLIP image-embedding regression and a combined MLP, with the
product type's mean as a naive baseline. The serving model is the combined one
(`services/scorer.py`, `fashion_studio.popularity.predict`).

- Files: `popularity.safetensors` (weights), `popularity.json` (vocabulary, target scale, the training
  articles' ids, the catalog's predicted scores for percentiles, training settings).
- Image embeddings: the CLIP in `popularity.json` (`scorer`); another CLIP needs a retrain.
- Trained on the demo catalog with events **from simulated shoppers**: these weights know the simulated
  tastes, not a real shop's. Retrain on the shop's own events with `fashion-studio popularity train`.
- Metadata: product type, colour, pattern from the fashion-mini vocabulary, and the price; any may be
  missing.
"""

CARD_TAIL = """
Reproduce: `fashion-studio products demo --count 3000 && fashion-studio popularity simulate &&
fashion-studio popularity train && fashion-studio popularity eval`.
"""
