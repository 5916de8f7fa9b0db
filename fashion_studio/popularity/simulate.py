"""Simulated shoppers, for a shop that has no events yet: a seeded event log over the demo catalog.

Each article has a latent appeal: tastes for its type, colour and pattern, a price sensitivity, and a
taste for how the photo is framed (shoppers click articles shown large, filling the frame: the
renderer's `Spec.scale`), which is visible in the image but in no metadata field, as photos differ in
real shops. A per-article shock nobody can see and the chance of every view, click, like and purchase
add noise, so even the latent appeal ranks the observed engagement imperfectly: that Spearman, the
simulator's ceiling, is reported beside the models. Every figure from here is marked simulated.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from fashion_studio.mini.vocab import COLOUR_NAMES, PATTERNS, TYPE_NAMES
from fashion_studio.popularity.events import Event, EventStore
from fashion_studio.products import BASE_PRICE, Catalog

logger = logging.getLogger(__name__)

SIMULATION_FILE = "simulation.json"
# Simulated time ends here, a fixed past day, so the same seed writes the same log on any day.
END = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
DAYS = 30


@dataclass(frozen=True)
class ShopperConfig:
    seed: int = 0
    views_per_product: float = 40.0
    shoppers: int = 2000
    taste_sd: float = 0.5  # spread of the type and colour tastes
    pattern_sd: float = 0.4
    price_elasticity: float = 1.0  # appeal lost per log-unit of price above the type's usual price
    framing_weight: float = 0.8  # appeal per standard deviation of the garment's size in the photo
    shock_sd: float = 0.3  # per-article appeal that nothing observable explains


@dataclass(frozen=True)
class Simulation:
    config: ShopperConfig
    appeal: dict[str, float]  # the latent appeal of every article
    events: int

    def save(self, catalog_dir: Path) -> Path:
        path = catalog_dir / SIMULATION_FILE
        record = {"simulated": True, "config": asdict(self.config), "events": self.events, "appeal": self.appeal}
        path.write_text(json.dumps(record, indent=1), encoding="utf-8")
        return path


def load_appeal(catalog_dir: Path) -> dict[str, float] | None:
    """The latent appeal a simulation wrote for this catalog, or None for a shop with real events."""
    path = Path(catalog_dir) / SIMULATION_FILE
    return json.loads(path.read_text(encoding="utf-8"))["appeal"] if path.is_file() else None


def latent_appeal(catalog: Catalog, config: ShopperConfig) -> np.ndarray:
    """The systematic appeal of each article: metadata tastes plus the image-only framing taste."""
    rng = np.random.default_rng(config.seed)
    type_taste = dict(zip(TYPE_NAMES, rng.normal(0.0, config.taste_sd, len(TYPE_NAMES))))
    colour_taste = dict(zip(COLOUR_NAMES, rng.normal(0.0, config.taste_sd, len(COLOUR_NAMES))))
    pattern_taste = dict(zip(PATTERNS, rng.normal(0.0, config.pattern_sd, len(PATTERNS))))
    scale = np.array([float(p.render.get("scale", 1.0)) for p in catalog.products])
    framing = (scale - scale.mean()) / max(float(scale.std()), 1e-6)
    return (
        np.array(
            [
                type_taste[p.product_type]
                + colour_taste[p.colour]
                + pattern_taste[p.pattern]
                - config.price_elasticity * np.log(p.price / BASE_PRICE[p.product_type])
                for p in catalog.products
            ]
        )
        + config.framing_weight * framing
    )


def simulate(catalog: Catalog, store: EventStore, config: ShopperConfig = ShopperConfig()) -> Simulation:
    """Write the shoppers' events into `store` (one transaction) and return the appeal they followed."""
    appeal = latent_appeal(catalog, config)
    rng = np.random.default_rng(config.seed + 1)
    shock = rng.normal(0.0, config.shock_sd, len(appeal))
    felt = appeal + shock
    views = rng.poisson(config.views_per_product, len(felt))
    clicks = rng.binomial(views, _sigmoid(felt - 2.0))
    likes = rng.binomial(clicks, _sigmoid(felt - 1.0))
    purchases = rng.binomial(clicks, _sigmoid(felt - 2.5))
    events: list[Event] = []
    for product, counts in zip(catalog.products, zip(views, clicks, likes, purchases)):
        for kind, n in zip(("view", "click", "like", "purchase"), counts):
            times = END - rng.uniform(0.0, DAYS * 86400.0, int(n))
            users = rng.integers(config.shoppers, size=int(n))
            events += [Event(kind, "product", product.product_id, float(t), f"sim-{u}", 1, "simulated") for t, u in zip(times, users)]
    events.sort(key=lambda e: e.ts)
    store.append_many(events)
    logger.info("simulated %d events over %d products", len(events), len(catalog))
    return Simulation(config, {p.product_id: round(float(a), 5) for p, a in zip(catalog.products, appeal)}, len(events))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
