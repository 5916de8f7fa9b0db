"""A demo shop for the index: `products.demo_products` rendered in worker processes (100,000 shots take
minutes, not the better part of an hour), written with `products.write_catalog`."""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path

from fashion_studio.products import IMAGES_DIR, Catalog, Product, demo_products, spec_of, write_catalog
from fashion_studio.settings import available_cores

logger = logging.getLogger(__name__)


def _render_to(job: tuple[dict, str]) -> None:
    from fashion_studio.mini.render import render
    from fashion_studio.products import Product

    product_dict, path = job
    render(spec_of(Product(**product_dict))).save(path)


def render_demo_catalog(count: int, out: Path, seed: int = 0, workers: int | None = None) -> Catalog:
    """`count` seeded articles with ids, names, prices and shots in `out`; shots already there are kept."""
    return render_products(demo_products(count, seed), out, workers)


def render_products(products: list[Product], out: Path, workers: int | None = None) -> Catalog:
    """The shots of `products` that `out` lacks, rendered in `workers` processes, and the catalog's manifests."""
    out = Path(out)
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    jobs = [(p.to_dict(), str(out / p.image)) for p in products if not (out / p.image).is_file()]
    workers = workers or available_cores()
    if jobs:
        logger.info("rendering %d of %d shots with %d workers", len(jobs), len(products), workers)
        if workers > 1 and len(jobs) > 64:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                pool.map(_render_to, jobs, chunksize=64)
        else:
            for job in jobs:
                _render_to(job)
    return write_catalog(products, out)
