"""The product catalog: articles with an id, a name, attributes, a price and a product shot.

A catalog is a folder holding `products.jsonl` (one article a line; the source of truth), the same
rows as `products.csv` for spreadsheet users, and the images under `images/`. `fashion-studio products
demo` renders a seeded shop with the fashion-mini renderer, so every feature that needs a catalog
(popularity, search) has one on a laptop; a real shop writes the same manifest with its own image URLs.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer
from PIL import Image

from fashion_studio.mini.render import Spec, random_variation, render
from fashion_studio.mini.vocab import COLOURS, PATTERN_ENGLISH, PATTERNS, PRODUCT_TYPES, TARGET_ENGLISH_POSSESSIVE

logger = logging.getLogger(__name__)

MANIFEST = "products.jsonl"
MANIFEST_CSV = "products.csv"
IMAGES_DIR = "images"
CSV_FIELDS = ("product_id", "name", "product_type", "colour", "pattern", "price", "target_group", "material", "image")

# Typical shelf prices (EUR) per product type; an article's price spreads around it.
BASE_PRICE = {
    "t-shirt": 19.0,
    "shirt": 39.0,
    "trousers": 49.0,
    "shorts": 29.0,
    "skirt": 39.0,
    "dress": 59.0,
    "jacket": 89.0,
    "sneakers": 79.0,
    "handbag": 69.0,
    "cap": 19.0,
}
# How much of the frame the garment fills: shop photos are framed more loosely or tightly than the
# renderer's training shots, so the demo shop spreads the scale wider.
SCALE_RANGE = (0.6, 1.05)


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    product_type: str
    colour: str
    pattern: str
    price: float
    image: str  # path relative to the catalog folder, or a URL
    target_group: str | None = None
    material: str | None = None
    render: dict[str, Any] = field(default_factory=dict)  # the renderer's Spec of a demo article

    def metadata(self) -> dict[str, Any]:
        """The attributes a model may read: what a shop knows about an article besides its photo."""
        return {"product_type": self.product_type, "colour": self.colour, "pattern": self.pattern, "price": self.price}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Catalog:
    root: Path
    products: tuple[Product, ...]

    def __len__(self) -> int:
        return len(self.products)

    def by_id(self) -> dict[str, Product]:
        return {p.product_id: p for p in self.products}

    def image_path(self, product: Product) -> Path:
        return self.root / product.image

    def load_image(self, product: Product) -> Image.Image:
        return Image.open(self.image_path(product)).convert("RGB")

    def load_images(self, products: Sequence[Product] | None = None) -> list[Image.Image]:
        return [self.load_image(p) for p in (self.products if products is None else products)]


def product_name(spec: Spec) -> str:
    """An English shop title such as "Red striped women's dress"."""
    words = [spec.colour]
    if spec.pattern != "plain":
        words.append(PATTERN_ENGLISH[spec.pattern]["adjective"])
    if spec.target_group:
        words.append(TARGET_ENGLISH_POSSESSIVE[spec.target_group])
    words.append(spec.product_type)
    if spec.material:
        words += ["in", spec.material]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def demo_products(count: int, seed: int = 0) -> list[Product]:
    """`count` articles, uniform over types, colours and patterns; the same seed gives the same shop."""
    rng = np.random.default_rng(seed)
    width = max(5, len(str(count)))
    products = []
    for i in range(count):
        kind = PRODUCT_TYPES[rng.integers(len(PRODUCT_TYPES))]
        colour = COLOURS[rng.integers(len(COLOURS))].name
        pattern = PATTERNS[rng.integers(len(PATTERNS))]
        target = kind.targets[rng.integers(len(kind.targets))]
        material = kind.materials[rng.integers(len(kind.materials))] if rng.random() < 0.7 else None
        variation = random_variation(rng, target)
        variation["scale"] = float(rng.uniform(*SCALE_RANGE))
        spec = Spec(kind.name, colour, pattern, target, material, **variation)
        price = round(BASE_PRICE[kind.name] * float(np.exp(rng.normal(0.0, 0.35))), 2) - 0.01
        product_id = f"P-{i + 1:0{width}d}"
        products.append(
            Product(
                product_id,
                product_name(spec),
                kind.name,
                colour,
                pattern,
                round(max(price, 4.99), 2),
                f"{IMAGES_DIR}/{product_id}.png",
                target,
                material,
                spec.to_dict(),
            )
        )
    return products


def spec_of(product: Product) -> Spec:
    values = dict(product.render)
    values["tint"] = tuple(values.get("tint", (0.0, 0.0, 0.0)))
    return Spec(**values)


def write_catalog(products: Iterable[Product], out: Path) -> Catalog:
    """Render each article's shot (kept when already there) and write both manifests, the JSONL last."""
    out.mkdir(parents=True, exist_ok=True)
    (out / IMAGES_DIR).mkdir(exist_ok=True)
    products = tuple(products)
    for product in products:
        path = out / product.image
        if not path.is_file():
            render(spec_of(product)).save(path)
    with (out / MANIFEST_CSV).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(p.to_dict() for p in products)
    temp = out / f".{MANIFEST}.tmp"
    temp.write_text("".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in products), encoding="utf-8")
    os.replace(temp, out / MANIFEST)
    logger.info("catalog of %d products in %s", len(products), out)
    return Catalog(out, products)


def load_catalog(root: Path | str) -> Catalog:
    """The catalog in `root`; a missing manifest says how to make one."""
    root = Path(root)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"no product catalog at {manifest}; write one with `fashion-studio products demo --out {root}`")
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    return Catalog(root, tuple(Product(**row) for row in rows))


@lru_cache(maxsize=4)
def _cached(manifest: str, mtime_ns: int) -> Catalog:
    return load_catalog(Path(manifest).parent)


def current_catalog(root: Path | str) -> Catalog:
    """`load_catalog`, read again only when the manifest changes (a server answers from memory)."""
    manifest = Path(root) / MANIFEST
    return _cached(str(manifest), manifest.stat().st_mtime_ns if manifest.exists() else 0)


products_app = typer.Typer(no_args_is_help=True, help="The product catalog.")


@products_app.command("demo")
def demo(
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="How many articles.")] = 3000,
    out: Annotated[Optional[Path], typer.Option("--out", help="Catalog folder (default: the products_dir setting).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Render a seeded demo shop: PNG shots, products.jsonl and products.csv."""
    from fashion_studio.settings import get_settings

    catalog = write_catalog(demo_products(count, seed), out or get_settings().products_dir)
    typer.echo(json.dumps({"catalog": str(catalog.root), "products": len(catalog)}))
