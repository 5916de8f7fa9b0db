"""Popularity: how well an article or a candidate design will sell, learned from the shop's own events.

`events` is the append-only event log, `simulate` writes one from simulated shoppers until a shop has
its own, `models`/`train`/`evaluate` fit and measure seed 004's models, `predictor.predict` scores images
with optional metadata for the catalog pipeline and the services. See docs/popularity.md.
"""

from __future__ import annotations

from fashion_studio.popularity.predictor import Predictor, predict

__all__ = ["Predictor", "predict"]
