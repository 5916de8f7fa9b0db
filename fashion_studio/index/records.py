"""What the product index stores and answers: one entry per catalog article (its vector and metadata),
the metadata filters a query may carry, and the hits it returns."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from fashion_studio.products import Product

# The metadata kept beside each vector: what a recommendation shows and what a query may filter on.
METADATA_FIELDS = ("product_id", "name", "product_type", "colour", "pattern", "price", "image")


@dataclass(frozen=True)
class Filters:
    """Metadata conditions a hit must meet; None leaves a field open, the price bounds are inclusive."""

    product_type: str | None = None
    colour: str | None = None
    min_price: float | None = None
    max_price: float | None = None

    @property
    def empty(self) -> bool:
        return all(v is None for v in asdict(self).values())

    def matches(self, metadata: dict[str, Any]) -> bool:
        price = metadata.get("price")
        return (
            (self.product_type is None or metadata.get("product_type") == self.product_type)
            and (self.colour is None or metadata.get("colour") == self.colour)
            and (self.min_price is None or (price is not None and price >= self.min_price))
            and (self.max_price is None or (price is not None and price <= self.max_price))
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Hit:
    product_id: str
    score: float  # cosine similarity of the query and the product's vector
    metadata: dict[str, Any]
    vector: Any = field(default=None, repr=False, compare=False)  # the product's vector, when asked for


@dataclass(frozen=True)
class Entry:
    """One article as the store holds it: its id, unit vector and metadata (with the fingerprint of what
    it was embedded from, so that a rebuild skips what has not changed)."""

    product_id: str
    vector: Any  # np.ndarray (dim,), float32, unit length
    metadata: dict[str, Any]


def product_text(product: Product) -> str:
    """The text embedded beside the image: the shop title, then type, colour and pattern spelled out."""
    pattern = "" if product.pattern == "plain" else f" with {product.pattern}"
    return f"{product.name}. A {product.colour} {product.product_type}{pattern}."


def product_metadata(product: Product, image_ref: str) -> dict[str, Any]:
    return {
        "product_id": product.product_id,
        "name": product.name,
        "product_type": product.product_type,
        "colour": product.colour,
        "pattern": product.pattern,
        "price": float(product.price),
        "image": image_ref,
    }


def fingerprint(metadata: dict[str, Any], image_bytes: bytes, embedder: str) -> str:
    """What an entry was made from: its metadata, its image's bytes and the embedding model and recipe."""
    digest = hashlib.sha256()
    digest.update(json.dumps(metadata, sort_keys=True).encode())
    digest.update(hashlib.sha256(image_bytes).digest())
    digest.update(embedder.encode())
    return digest.hexdigest()[:32]
