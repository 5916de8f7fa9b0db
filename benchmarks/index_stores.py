"""The vector stores `bench_index.py` measures, behind one small interface: build from arrays, search
top-k with the metadata filters of `/recommend`, upsert and delete one article. `local` is the project's
embedded store (fashion_studio/index/local.py); the others are the candidates it was chosen over."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from fashion_studio.index import Entry, Filters, LocalStore


class Candidate:
    name = ""
    note = ""
    max_products: int | None = None  # measured on a smaller shop when building the full one is impractical

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    def build(self, ids: list[str], vectors: np.ndarray, meta: list[dict]) -> None: ...
    def search(self, query: np.ndarray, k: int, filters: Filters) -> list[str]: ...
    def upsert(self, product_id: str, vector: np.ndarray, meta: dict) -> None: ...
    def delete(self, product_id: str) -> None: ...
    def close(self) -> None: ...


class Columns:
    """Filter columns in numpy, for the in-process libraries that hold no metadata of their own."""

    def __init__(self, meta: list[dict]) -> None:
        self.types = np.array([m["product_type"] for m in meta])
        self.colours = np.array([m["colour"] for m in meta])
        self.prices = np.array([m["price"] for m in meta])

    def mask(self, f: Filters) -> np.ndarray:
        mask = np.ones(len(self.types), bool)
        if f.product_type is not None:
            mask &= self.types == f.product_type
        if f.colour is not None:
            mask &= self.colours == f.colour
        if f.min_price is not None:
            mask &= self.prices >= f.min_price
        if f.max_price is not None:
            mask &= self.prices <= f.max_price
        return mask


class Local(Candidate):
    name = "local (SQLite + exact numpy, chosen)"

    def build(self, ids, vectors, meta):
        self.store = LocalStore(self.folder, create=True)
        for start in range(0, len(ids), 5000):
            self.store.upsert([Entry(i, v, m) for i, v, m in zip(ids[start : start + 5000], vectors[start : start + 5000], meta[start : start + 5000])])

    def search(self, query, k, filters):
        return [h.product_id for h in self.store.search(query, k, filters)]

    def upsert(self, product_id, vector, meta):
        self.store.upsert([Entry(product_id, vector, meta)])

    def delete(self, product_id):
        self.store.delete([product_id])

    def close(self):
        self.store.close()


class FaissFlat(Candidate):
    name = "faiss IndexFlatIP (exact)"
    note = "in-process only; metadata and persistence are the caller's"

    def _index(self, dim):
        import faiss

        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def build(self, ids, vectors, meta):
        import faiss

        faiss.omp_set_num_threads(1)
        self.ids, self.columns = list(ids), Columns(meta)
        self.index = self._index(vectors.shape[1])
        self.index.add_with_ids(vectors, np.arange(len(ids), dtype=np.int64))

    def search(self, query, k, filters):
        import faiss

        params = None
        if not filters.empty:
            params = self._params(faiss.IDSelectorBatch(np.flatnonzero(self.columns.mask(filters)).astype(np.int64)))
        _, found = self.index.search(query[None], k, params=params)
        return [self.ids[i] for i in found[0] if i >= 0]

    def _params(self, selector):
        import faiss

        return faiss.SearchParameters(sel=selector)

    def upsert(self, product_id, vector, meta):
        row = self.ids.index(product_id) if product_id in self.ids else None
        if row is not None:
            self.index.remove_ids(np.array([row], np.int64))
        else:
            row = len(self.ids)
            self.ids.append(product_id)
        self.index.add_with_ids(vector[None], np.array([row], np.int64))

    def delete(self, product_id):
        self.index.remove_ids(np.array([self.ids.index(product_id)], np.int64))


class FaissHNSW(FaissFlat):
    name = "faiss IndexHNSWFlat (M=32, efSearch=128)"
    note = "approximate; deletions only mark (IndexIDMap2 over HNSW cannot remove ids)"

    def _index(self, dim):
        import faiss

        inner = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = 80
        inner.hnsw.efSearch = 128
        self.inner = inner
        return faiss.IndexIDMap2(inner)

    def _params(self, selector):
        import faiss

        return faiss.SearchParametersHNSW(sel=selector, efSearch=128)

    def upsert(self, product_id, vector, meta):
        self.ids.append(product_id)
        self.index.add_with_ids(vector[None], np.array([len(self.ids) - 1], np.int64))

    def delete(self, product_id):
        pass  # HNSW in faiss has no removal; a real use would keep a tombstone set


class USearch(Candidate):
    name = "usearch HNSW (filters by a predicate)"
    note = "in-process only; approximate"

    def build(self, ids, vectors, meta):
        from usearch.index import Index

        self.ids, self.columns = list(ids), Columns(meta)
        self.index = Index(ndim=vectors.shape[1], metric="ip", connectivity=32, expansion_add=80, expansion_search=128)
        self.index.add(np.arange(len(ids)), vectors, threads=1)

    def search(self, query, k, filters):
        if filters.empty:
            found = self.index.search(query, k)
            return [self.ids[int(i)] for i in found.keys]
        allowed = self.columns.mask(filters)
        found = self.index.search(query, k * 40)  # over-fetch and filter
        return [self.ids[int(i)] for i in found.keys if int(i) < len(allowed) and allowed[int(i)]][:k]

    def upsert(self, product_id, vector, meta):
        key = self.ids.index(product_id) if product_id in self.ids else len(self.ids)
        if key == len(self.ids):
            self.ids.append(product_id)
        else:
            self.index.remove(key)
        self.index.add(key, vector)

    def delete(self, product_id):
        self.index.remove(self.ids.index(product_id))


class Lance(Candidate):
    name = "lancedb (embedded, flat scan)"
    note = "embedded; a remote LanceDB is its hosted service"

    def build(self, ids, vectors, meta):
        import lancedb
        import pyarrow as pa

        self.db = lancedb.connect(str(self.folder))
        table = pa.table(
            {
                "product_id": ids,
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1]),
                "product_type": [m["product_type"] for m in meta],
                "colour": [m["colour"] for m in meta],
                "price": [m["price"] for m in meta],
            }
        )
        self.table = self.db.create_table("products", table)

    @staticmethod
    def _where(f: Filters) -> str | None:
        parts = []
        if f.product_type is not None:
            parts.append(f"product_type = '{f.product_type}'")
        if f.colour is not None:
            parts.append(f"colour = '{f.colour}'")
        if f.min_price is not None:
            parts.append(f"price >= {f.min_price}")
        if f.max_price is not None:
            parts.append(f"price <= {f.max_price}")
        return " AND ".join(parts) or None

    def search(self, query, k, filters):
        q = self.table.search(query).metric("dot").limit(k).select(["product_id"])
        where = self._where(filters)
        if where:
            q = q.where(where, prefilter=True)
        return [r["product_id"] for r in q.to_list()]

    def upsert(self, product_id, vector, meta):
        import pyarrow as pa

        row = pa.table(
            {
                "product_id": [product_id],
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vector), len(vector)),
                "product_type": [meta["product_type"]],
                "colour": [meta["colour"]],
                "price": [meta["price"]],
            }
        )
        self.table.merge_insert("product_id").when_matched_update_all().when_not_matched_insert_all().execute(row)

    def delete(self, product_id):
        self.table.delete(f"product_id = '{product_id}'")


class Milvus(Candidate):
    name = "pymilvus + milvus-lite (embedded Milvus, FLAT)"
    note = "same client as a Milvus cluster by URL"

    def build(self, ids, vectors, meta):
        from pymilvus import DataType, MilvusClient

        self.client = MilvusClient(str(self.folder / "milvus.db"))
        schema = self.client.create_schema(auto_id=False)
        schema.add_field("product_id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=vectors.shape[1])
        schema.add_field("product_type", DataType.VARCHAR, max_length=32)
        schema.add_field("colour", DataType.VARCHAR, max_length=32)
        schema.add_field("price", DataType.DOUBLE)
        params = self.client.prepare_index_params()
        params.add_index("vector", index_type="FLAT", metric_type="IP")
        self.client.create_collection("products", schema=schema, index_params=params)
        for start in range(0, len(ids), 5000):
            self.client.insert(
                "products",
                [
                    {"product_id": i, "vector": v.tolist(), "product_type": m["product_type"], "colour": m["colour"], "price": m["price"]}
                    for i, v, m in zip(ids[start : start + 5000], vectors[start : start + 5000], meta[start : start + 5000])
                ],
            )
        self.client.flush("products")
        self.client.load_collection("products")

    def search(self, query, k, filters):
        where = Lance._where(filters)
        where = where.replace(" AND ", " and ").replace(" = ", " == ") if where else ""
        hits = self.client.search("products", [query.tolist()], limit=k, filter=where, output_fields=["product_id"])
        return [h["id"] if "id" in h else h["product_id"] for h in hits[0]]

    def upsert(self, product_id, vector, meta):
        self.client.upsert(
            "products",
            [{"product_id": product_id, "vector": vector.tolist(), "product_type": meta["product_type"], "colour": meta["colour"], "price": meta["price"]}],
        )

    def delete(self, product_id):
        self.client.delete("products", ids=[product_id])

    def close(self):
        self.client.close()


class QdrantLocal(Candidate):
    name = "qdrant-client local mode (embedded)"
    note = "same client as a Qdrant cluster by URL; local mode builds and filters in Python"
    max_products = 10_000

    def build(self, ids, vectors, meta):
        from fashion_studio.index.qdrant import QdrantStore

        self.store = QdrantStore(f"qdrant+local://{self.folder}", create=True)
        for start in range(0, len(ids), 2000):
            self.store.upsert([Entry(i, v, m) for i, v, m in zip(ids[start : start + 2000], vectors[start : start + 2000], meta[start : start + 2000])])

    def search(self, query, k, filters):
        return [h.product_id for h in self.store.search(query, k, filters)]

    def upsert(self, product_id, vector, meta):
        self.store.upsert([Entry(product_id, vector, meta)])

    def delete(self, product_id):
        self.store.delete([product_id])

    def close(self):
        self.store.close()


CANDIDATES = {
    "local": Local,
    "faiss-flat": FaissFlat,
    "faiss-hnsw": FaissHNSW,
    "usearch": USearch,
    "lancedb": Lance,
    "milvus-lite": Milvus,
    "qdrant-local": QdrantLocal,
}


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def new_id() -> str:
    return f"BENCH-{uuid.uuid4().hex[:8]}"
