"""`ProductIndex`: the shop's catalog as CLIP vectors in a vector store, queried by vector with filters.

Each article's vector joins its product shot and its text (title, type, colour, pattern) in CLIP's space:
`(1 - w) * image + w * text`, normalised, with `w` the `index_text_weight` setting. An image query then
finds shots that look alike and a text query finds articles described alike, from one vector per
article (docs/recommend.md measures the weight). Articles are added, replaced and deleted by id, with
no rebuild; `build` embeds a catalog in batches and skips what an earlier run already stored unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from fashion_studio.index.local import IndexMissingError, LocalStore
from fashion_studio.index.records import Entry, Filters, Hit, fingerprint, product_metadata, product_text
from fashion_studio.products import Catalog, Product
from fashion_studio.settings import Settings

logger = logging.getLogger(__name__)

REMOTE_SCHEMES = ("http://", "https://", "qdrant://", "qdrant+local:")


class VectorStore(Protocol):
    kind: str
    url: str

    @property
    def dim(self) -> int | None: ...
    def upsert(self, entries: Sequence[Entry]) -> None: ...
    def delete(self, product_ids: Sequence[str]) -> int: ...
    def search(self, vector: np.ndarray, k: int, filters: Filters | None = None, with_vectors: bool = False) -> list[Hit]: ...
    def get(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...
    def fingerprints(self) -> dict[str, str]: ...
    def count(self) -> int: ...
    def close(self) -> None: ...


class Embedder(Protocol):
    """What embeds articles: `fashion_studio.scoring.Scorer` in-process (the CLI), or a client of the scorer service."""

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def open_store(url: str, settings: Settings | None = None, create: bool = False) -> VectorStore:
    """The store a URL names: a folder (or file://) is the embedded store; http(s):// or qdrant:// a Qdrant
    cluster; qdrant+local:///folder qdrant-client's in-process mode. A missing one raises
    IndexMissingError unless `create`."""
    if url.startswith(REMOTE_SCHEMES):
        from fashion_studio.index.qdrant import QdrantStore

        api_key = settings.index_api_key.get_secret_value() if settings is not None and settings.index_api_key else None
        collection = settings.index_collection if settings is not None else "products"
        return QdrantStore(url, collection, api_key=api_key, create=create)
    threads = settings.index_search_threads if settings is not None else 1
    return LocalStore(Path(url.removeprefix("file://")), create=create, threads=threads)


def fuse(image_vectors: np.ndarray, text_vectors: np.ndarray, text_weight: float) -> np.ndarray:
    mixed = (1.0 - text_weight) * image_vectors + text_weight * text_vectors
    return (mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def embedder_tag(model: str, text_weight: float) -> str:
    return f"clip={model};text_weight={text_weight:g};text=v1"


@dataclass
class BuildReport:
    products: int
    embedded: int
    skipped: int
    deleted: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "seconds": round(self.seconds, 2)}


class ProductIndex:
    def __init__(
        self, store: VectorStore, embedder: Embedder | None = None, model: str = "", text_weight: float = 0.5, expand: int = 0, expand_weight: float = 1.0
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.text_weight = text_weight
        self.expand, self.expand_weight = expand, expand_weight  # for image queries (`search`)
        self.tag = embedder_tag(model, text_weight)

    @classmethod
    def open(cls, settings: Settings, url: str | None = None, embedder: Embedder | None = None, create: bool = False) -> ProductIndex:
        """The index of the settings (`index_url` unless `url`); `embedder` only where articles are added."""
        store = open_store(url or settings.index_url, settings, create=create)
        return cls(
            store,
            embedder,
            model=settings.scorer,
            text_weight=settings.index_text_weight,
            expand=settings.index_query_expansion,
            expand_weight=settings.index_expansion_weight,
        )

    # -- queries ------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.store.count()

    def search(self, vector: np.ndarray, k: int = 5, filters: Filters | None = None, expand: int = 0, expand_weight: float = 1.0) -> list[Hit]:
        """The `k` products nearest `vector` within `filters`. With `expand` > 0, average query expansion
        (Chum et al., ICCV 2007): the query plus `expand_weight` times the mean vector of its first
        `expand` hits, made unit length, is searched again under the same filters. A generated image's
        own vector holds no text, the index's vectors do: its nearest products lend it theirs. Scores
        are then cosines with the expanded query."""
        if expand <= 0:
            return self.store.search(vector, k, filters)
        first = self.store.search(vector, expand, filters, with_vectors=True)
        if not first:
            return first
        query = np.asarray(vector, np.float32) + expand_weight * np.mean([hit.vector for hit in first], axis=0)
        return self.store.search(query / max(float(np.linalg.norm(query)), 1e-12), k, filters)

    def get(self, product_id: str) -> dict[str, Any] | None:
        return self.store.get([product_id]).get(product_id)

    def _embedder(self) -> Embedder:
        if self.embedder is None:
            raise RuntimeError("this ProductIndex was opened without an embedder: it can search, not add")
        return self.embedder

    def search_image(self, image: Image.Image, k: int = 5, filters: Filters | None = None) -> list[Hit]:
        return self.search(self._embedder().embed_images([image])[0], k, filters, self.expand, self.expand_weight)

    def search_text(self, text: str, k: int = 5, filters: Filters | None = None) -> list[Hit]:
        return self.search(self._embedder().embed_texts([text])[0], k, filters)

    # -- updates ------------------------------------------------------------------------------------

    def embed(self, products: Sequence[Product], images: Sequence[Image.Image]) -> np.ndarray:
        embedder = self._embedder()
        return fuse(embedder.embed_images(images), embedder.embed_texts([product_text(p) for p in products]), self.text_weight)

    def entries(self, products: Sequence[Product], images: Sequence[Image.Image], image_refs: Sequence[str], image_bytes: Sequence[bytes]) -> list[Entry]:
        vectors = self.embed(products, images)
        out = []
        for product, vector, ref, data in zip(products, vectors, image_refs, image_bytes):
            metadata = product_metadata(product, ref)
            metadata["fingerprint"] = fingerprint(metadata, data, self.tag)
            out.append(Entry(product.product_id, vector, metadata))
        return out

    def upsert(self, products: Sequence[Product], images: Sequence[Image.Image], image_refs: Sequence[str] | None = None) -> int:
        """Add or replace articles by id (their shots given as images), without a rebuild."""
        refs = list(image_refs) if image_refs is not None else [p.image for p in products]
        data = [im.tobytes() for im in images]
        self.store.upsert(self.entries(products, images, refs, data))
        return len(products)

    def delete(self, product_ids: Sequence[str]) -> int:
        return self.store.delete(product_ids)

    def build(
        self,
        catalog: Catalog,
        batch_size: int = 256,
        prune: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> BuildReport:
        """Embed the catalog's articles into the store in batches. An article already stored from the same
        metadata, image bytes and model is skipped, so an interrupted build resumes where it stopped and a
        second run embeds only what changed; `prune` deletes stored articles the catalog no longer has."""
        started = time.perf_counter()
        stored = self.store.fingerprints()
        todo: list[tuple[Product, str, bytes]] = []
        for product in catalog.products:
            ref = image_ref(catalog, product)
            data = read_image_bytes(catalog, product)
            metadata = product_metadata(product, ref)
            if stored.get(product.product_id) != fingerprint(metadata, data, self.tag):
                todo.append((product, ref, data))
        done = 0
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            images = [decode_image(data) for _, _, data in batch]
            self.store.upsert(self.entries([p for p, _, _ in batch], images, [r for _, r, _ in batch], [d for _, _, d in batch]))
            done += len(batch)
            if progress is not None:
                progress(done, len(todo))
        deleted = 0
        if prune:
            known = {p.product_id for p in catalog.products}
            deleted = self.store.delete([pid for pid in stored if pid not in known])
        report = BuildReport(len(catalog), done, len(catalog) - done, deleted, time.perf_counter() - started)
        logger.info("index %s: %s", self.store.url, report.to_dict())
        return report

    def close(self) -> None:
        self.store.close()


def image_ref(catalog: Catalog, product: Product) -> str:
    """Where an article's shot is, as the index keeps it: a URL as the catalog gives it, else the absolute path."""
    if "://" in product.image:
        return product.image
    return str((catalog.root / product.image).resolve())


def read_image_bytes(catalog: Catalog, product: Product) -> bytes:
    if "://" in product.image:
        import fsspec

        with fsspec.open(product.image, "rb") as handle:
            return handle.read()
    return (catalog.root / product.image).read_bytes()


def decode_image(data: bytes) -> Image.Image:
    import io

    return Image.open(io.BytesIO(data)).convert("RGB")


__all__ = ["BuildReport", "Embedder", "IndexMissingError", "ProductIndex", "VectorStore", "embedder_tag", "fuse", "open_store"]
