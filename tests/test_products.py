"""The demo catalog: seeded, rendered with the fashion-mini renderer, written as JSONL + CSV + PNG."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
from PIL import Image

from fashion_studio.mini.vocab import COLOUR_NAMES, PATTERNS, TYPE_NAMES
from fashion_studio.products import current_catalog, demo_products, load_catalog, spec_of, write_catalog


def test_same_seed_same_shop_other_seed_other_shop():
    a, b, c = demo_products(50, seed=3), demo_products(50, seed=3), demo_products(50, seed=4)
    assert [p.to_dict() for p in a] == [p.to_dict() for p in b]
    assert [p.to_dict() for p in a] != [p.to_dict() for p in c]
    assert len({p.product_id for p in a}) == 50
    for product in a:
        assert product.product_type in TYPE_NAMES and product.colour in COLOUR_NAMES and product.pattern in PATTERNS
        assert product.price > 0 and product.colour in product.name.lower() and product.product_type in product.name
        assert spec_of(product).product_type == product.product_type


def test_cli_writes_images_and_both_manifests(tmp_path):
    out = tmp_path / "shop"
    result = subprocess.run(
        [sys.executable, "-m", "fashion_studio.cli", "products", "demo", "--count", "40", "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"catalog": str(out), "products": 40}
    catalog = load_catalog(out)
    assert len(catalog) == 40
    rows = list(csv.DictReader((out / "products.csv").open()))
    assert [r["product_id"] for r in rows] == [p.product_id for p in catalog.products]
    first = catalog.products[0]
    image = Image.open(catalog.image_path(first))
    assert image.size == (64, 64) and rows[0]["image"] == first.image
    # the shot shows the article: its colour dominates the non-background pixels
    pixels = np.asarray(image.convert("RGB"), dtype=float).reshape(-1, 3)
    assert (pixels.min(axis=1) < 200).sum() > 200


def test_catalog_is_reread_when_its_manifest_changes(tmp_path):
    write_catalog(demo_products(5, seed=0), tmp_path)
    assert len(current_catalog(tmp_path)) == 5
    write_catalog(demo_products(8, seed=0), tmp_path)
    assert len(current_catalog(tmp_path)) == 8
