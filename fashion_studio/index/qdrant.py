"""The product index in a Qdrant cluster, reached by URL (`http(s)://host:6333` or `qdrant://host:6333`).

A distributed deployment points every gateway at one Qdrant (HNSW, payload indexes on the filter
fields, replicas and shards of its own) instead of the embedded folder. The same code runs against
qdrant-client's in-process local mode (`qdrant+local:///folder`), which is how the tests exercise it;
local mode itself is too slow past a few thousand products to serve (docs/index.md).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from fashion_studio.index.records import Entry, Filters, Hit

logger = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("5b0e4a52-3f7e-4c36-9d55-6a6c0e8f6a10")
_BATCH = 512


def point_id(product_id: str) -> str:
    """Qdrant ids are integers or UUIDs: a product id maps to a stable UUID, and is kept in the payload."""
    return str(uuid.uuid5(_NAMESPACE, product_id))


class QdrantStore:
    kind = "qdrant"

    def __init__(self, url: str, collection: str = "products", api_key: str | None = None, create: bool = False) -> None:
        from qdrant_client import QdrantClient

        from fashion_studio.index.local import IndexMissingError

        self.url = url
        self.collection = collection
        if url.startswith("qdrant+local:"):
            path = url.removeprefix("qdrant+local:").removeprefix("//")
            self.client = QdrantClient(path=path)
        else:
            self.client = QdrantClient(url="http" + url.removeprefix("qdrant") if url.startswith("qdrant://") else url, api_key=api_key)
        if not create and not self.client.collection_exists(collection):
            raise IndexMissingError(f"no collection {collection!r} in the Qdrant at {url}")

    @property
    def dim(self) -> int | None:
        if not self.client.collection_exists(self.collection):
            return None
        return int(self.client.get_collection(self.collection).config.params.vectors.size)

    def _ensure(self, dim: int) -> None:
        from qdrant_client import models

        if self.client.collection_exists(self.collection):
            return
        self.client.create_collection(self.collection, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE))
        if not self.url.startswith("qdrant+local:"):  # local mode has no payload indexes
            for field, schema in (
                ("product_type", models.PayloadSchemaType.KEYWORD),
                ("colour", models.PayloadSchemaType.KEYWORD),
                ("price", models.PayloadSchemaType.FLOAT),
                ("product_id", models.PayloadSchemaType.KEYWORD),
            ):
                self.client.create_payload_index(self.collection, field, field_schema=schema)

    def upsert(self, entries: Sequence[Entry]) -> None:
        from qdrant_client import models

        if not entries:
            return
        self._ensure(len(entries[0].vector))
        for start in range(0, len(entries), _BATCH):
            batch = entries[start : start + _BATCH]
            self.client.upsert(
                self.collection,
                points=[models.PointStruct(id=point_id(e.product_id), vector=np.asarray(e.vector, np.float32).tolist(), payload=e.metadata) for e in batch],
                wait=True,
            )

    def delete(self, product_ids: Sequence[str]) -> int:
        from qdrant_client import models

        present = self.get(product_ids)
        if present:
            self.client.delete(self.collection, points_selector=models.PointIdsList(points=[point_id(p) for p in present]), wait=True)
        return len(present)

    def _filter(self, filters: Filters | None):
        from qdrant_client import models

        if filters is None or filters.empty:
            return None
        must: list[Any] = []
        if filters.product_type is not None:
            must.append(models.FieldCondition(key="product_type", match=models.MatchValue(value=filters.product_type)))
        if filters.colour is not None:
            must.append(models.FieldCondition(key="colour", match=models.MatchValue(value=filters.colour)))
        if filters.min_price is not None or filters.max_price is not None:
            must.append(models.FieldCondition(key="price", range=models.Range(gte=filters.min_price, lte=filters.max_price)))
        return models.Filter(must=must)

    def search(self, vector: np.ndarray, k: int, filters: Filters | None = None, with_vectors: bool = False) -> list[Hit]:
        if not self.client.collection_exists(self.collection):
            return []
        points = self.client.query_points(
            self.collection,
            query=np.asarray(vector, np.float32).tolist(),
            limit=k,
            query_filter=self._filter(filters),
            with_payload=True,
            with_vectors=with_vectors,
        ).points
        return [Hit(p.payload["product_id"], float(p.score), dict(p.payload), np.asarray(p.vector, np.float32) if with_vectors else None) for p in points]

    def get(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not product_ids or not self.client.collection_exists(self.collection):
            return {}
        points = self.client.retrieve(self.collection, ids=[point_id(p) for p in product_ids], with_payload=True)
        return {p.payload["product_id"]: dict(p.payload) for p in points}

    def fingerprints(self) -> dict[str, str]:
        if not self.client.collection_exists(self.collection):
            return {}
        out: dict[str, str] = {}
        offset = None
        while True:
            points, offset = self.client.scroll(self.collection, limit=1024, offset=offset, with_payload=["product_id", "fingerprint"])
            out.update({p.payload["product_id"]: p.payload.get("fingerprint", "") for p in points})
            if offset is None:
                return out

    def count(self) -> int:
        if not self.client.collection_exists(self.collection):
            return 0
        return int(self.client.count(self.collection, exact=True).count)

    def close(self) -> None:
        self.client.close()
