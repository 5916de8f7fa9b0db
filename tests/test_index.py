"""The product index as a library: real CLIP embeddings (the shipped fashion-mini CLIP) of a rendered demo
shop; adds, replacements and deletions seen by another process's handle without a rebuild; filters;
search against exact numpy search; resumable builds; the Qdrant adapter through qdrant-client's local
mode; and the `fashion-studio index` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fashion_studio.index import Filters, LocalStore, ProductIndex, fuse, open_store, product_text
from fashion_studio.index.demo import render_demo_catalog
from fashion_studio.index.local import IndexMissingError
from fashion_studio.products import load_catalog, write_catalog
from fashion_studio.settings import Settings

SHOP = 2000


@pytest.fixture(scope="module")
def scorer():
    from fashion_studio.scoring import Scorer

    return Scorer.load(Settings(torch_threads=2))


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return render_demo_catalog(SHOP, tmp_path_factory.mktemp("shop"), seed=3, workers=2)


@pytest.fixture(scope="module")
def built(shop, scorer, tmp_path_factory):
    """The shop indexed into an embedded store, with the image and text embeddings it was made from."""
    folder = tmp_path_factory.mktemp("index")
    index = ProductIndex.open(Settings(), str(folder), embedder=scorer, create=True)
    report = index.build(shop, batch_size=500)
    images = scorer.embed_images(shop.load_images())
    texts = scorer.embed_texts([product_text(p) for p in shop.products])
    return index, folder, report, images, texts


def _exact(vectors: np.ndarray, query: np.ndarray, allowed: np.ndarray, k: int) -> list[int]:
    scores = np.where(allowed, vectors @ query, -np.inf)
    order = np.argsort(-scores, kind="stable")[:k]
    return [int(i) for i in order if np.isfinite(scores[i])]


def test_search_equals_exact_search_with_and_without_filters(built, shop):
    """Image and text queries of products outside the shop, under every kind of filter: the top 5 are the
    exact top 5 (recall 1.0) and every hit meets the filter."""
    index, _, report, images, texts = built
    assert report.embedded == SHOP and len(index) == SHOP
    vectors = fuse(images, texts, index.text_weight)
    products = shop.products
    rng = np.random.default_rng(0)
    queries = np.concatenate([images[rng.integers(SHOP, size=20)], texts[rng.integers(SHOP, size=20)]])
    queries = queries + rng.normal(0, 0.05, queries.shape).astype(np.float32)
    filters = [
        Filters(),
        Filters(product_type="dress"),
        Filters(colour="red"),
        Filters(product_type="jacket", colour="blue"),
        Filters(min_price=20.0, max_price=60.0),
        Filters(product_type="sneakers", max_price=70.0),
    ]
    found = expected = 0
    for condition in filters:
        allowed = np.array([condition.matches(p.__dict__) for p in products])
        for query in queries:
            hits = index.search(query, 5, condition)
            truth = [products[i].product_id for i in _exact(vectors, query, allowed, 5)]
            assert all(condition.matches(h.metadata) for h in hits)
            found += len({h.product_id for h in hits} & set(truth))
            expected += len(truth)
            assert [round(h.score, 4) for h in hits] == sorted((round(h.score, 4) for h in hits), reverse=True)
    assert found / expected == 1.0
    assert index.search(queries[0], 5, Filters(product_type="no-such-type")) == []


def test_a_product_shot_finds_its_own_product_and_a_text_its_kind(built, shop):
    index, *_ = built
    for product in shop.products[:20]:
        hits = index.search_image(shop.load_image(product), 5)
        assert product.product_id in [h.product_id for h in hits]
    hits = index.search_text("a photo of a red dress", 5)
    assert [h.metadata["product_type"] for h in hits].count("dress") >= 4


def test_add_replace_and_delete_without_rebuild_reach_another_handle(built, shop, scorer):
    """A second handle on the same folder (as the gateway holds one while the CLI writes) sees each change
    at its next query, from the changed rows alone."""
    index, folder, *_ = built
    reader = LocalStore(folder)
    first, other = shop.products[0], shop.products[1]
    image = shop.load_image(first)
    assert reader.search(index.embed([first], [image])[0], 1)[0].product_id == first.product_id
    seq = reader._seq

    # replace: the first article now shows another shot and a new price
    changed = type(first)(**{**first.to_dict(), "price": 1.99})
    index.upsert([changed], [shop.load_image(other)], [str(shop.image_path(other))])
    vector = index.embed([changed], [shop.load_image(other)])[0]
    hit = reader.search(vector, 1)[0]
    assert hit.product_id == first.product_id and hit.metadata["price"] == 1.99 and hit.score == pytest.approx(1.0, abs=1e-4)
    assert reader._seq == seq + 1 and reader.count() == SHOP

    # add a new article, then delete it and the first one
    new = type(first)(**{**other.to_dict(), "product_id": "NEW-1", "name": "New arrival"})
    index.upsert([new], [shop.load_image(other)])
    assert reader.count() == SHOP + 1 and reader.get(["NEW-1"])["NEW-1"]["name"] == "New arrival"
    assert index.delete(["NEW-1", first.product_id, "never-there"]) == 2
    assert reader.count() == SHOP - 1
    ids = [h.product_id for h in reader.search(vector, 50)]
    assert "NEW-1" not in ids and first.product_id not in ids and reader.get([first.product_id]) == {}

    # restore the first article as the catalog has it (the build replaces it; everything else is skipped)
    report = index.build(shop)
    assert (report.embedded, report.skipped) == (1, SHOP - 1) and reader.count() == SHOP


def test_build_resumes_and_prunes_by_product_id(shop, scorer, tmp_path):
    index = ProductIndex.open(Settings(), str(tmp_path / "index"), embedder=scorer, create=True)
    # an interrupted first build stored only the first 25 articles
    partial = write_catalog(shop.products[:25], tmp_path / "shop")
    assert index.build(partial, batch_size=10).embedded == 25
    small = write_catalog(shop.products[:60], tmp_path / "shop")
    report = index.build(small, batch_size=10)
    assert (report.embedded, report.skipped) == (35, 25)
    assert index.build(small).embedded == 0
    # a price change in the catalog re-embeds that article; a removed article goes with --prune
    rows = [json.loads(line) for line in (small.root / "products.jsonl").read_text().splitlines()]
    rows[3]["price"] = 999.0
    (small.root / "products.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:-1]))
    report = index.build(load_catalog(small.root), prune=True)
    assert (report.embedded, report.deleted) == (1, 1) and len(index) == 59
    assert index.get(rows[3]["product_id"])["price"] == 999.0


def test_missing_index_and_dimension_mismatch_are_clear(tmp_path, built):
    with pytest.raises(IndexMissingError):
        open_store(str(tmp_path / "nothing"))
    _, folder, *_ = built
    with pytest.raises(ValueError, match="dimension"):
        LocalStore(folder).search(np.ones(7, np.float32), 5)


def test_the_qdrant_adapter_answers_as_the_embedded_store(built, shop, tmp_path):
    """The code that talks to a Qdrant cluster, run against qdrant-client's in-process mode: the same hits
    as the embedded store on the same vectors, and the same add/replace/delete behaviour."""
    index, folder, *_ = built
    ids, vectors = LocalStore(folder).vectors()
    local = LocalStore(tmp_path / "local", create=True)
    qdrant = open_store(f"qdrant+local://{tmp_path / 'qdrant'}", create=True)
    metadata = LocalStore(folder).get(ids[:400])
    from fashion_studio.index import Entry

    entries = [Entry(pid, vector, metadata[pid]) for pid, vector in zip(ids[:400], vectors[:400])]
    for store in (local, qdrant):
        store.upsert(entries)
        assert store.count() == 400
    rng = np.random.default_rng(1)
    for query in vectors[rng.integers(400, size=10)] + rng.normal(0, 0.05, (10, vectors.shape[1])).astype(np.float32):
        for condition in (Filters(), Filters(product_type="shirt"), Filters(colour="black", min_price=10.0, max_price=80.0)):
            a = [h.product_id for h in local.search(query, 5, condition)]
            b = [h.product_id for h in qdrant.search(query, 5, condition)]
            assert a == b, condition
            expanded = [[h.product_id for h in ProductIndex(store).search(query, 5, condition, expand=2)] for store in (local, qdrant)]
            assert expanded[0] == expanded[1], condition
    assert qdrant.delete([ids[0], "never-there"]) == 1 and qdrant.count() == 399
    assert set(qdrant.fingerprints()) == set(ids[1:400])
    qdrant.upsert([Entry(ids[1], vectors[2], {**metadata[ids[1]], "price": 3.5})])
    assert qdrant.get([ids[1]])[ids[1]]["price"] == 3.5 and qdrant.count() == 399
    qdrant.close()


def test_an_expanded_image_query_is_the_exact_search_of_the_query_plus_its_neighbours(built, shop):
    """Average query expansion: the first N hits' mean vector joins the query at its weight, the unit sum
    is searched exactly under the same filter; N = 0 is the plain search."""
    index, _, _, images, texts = built
    vectors = fuse(images, texts, index.text_weight)
    row = {p.product_id: i for i, p in enumerate(shop.products)}
    types = np.array([p.product_type for p in shop.products])
    outside = render_demo_catalog(6, shop.root.parent / "expansion-queries", seed=77, workers=1)
    from fashion_studio.scoring import Scorer

    queries = Scorer.load(Settings(torch_threads=2)).embed_images(outside.load_images())
    changed = 0
    for query in queries:
        for condition, allowed in ((Filters(), np.ones(SHOP, bool)), (Filters(product_type="dress"), types == "dress")):
            plain = [row[h.product_id] for h in index.search(query, 5, condition)]
            assert [row[h.product_id] for h in index.search(query, 5, condition, expand=0)] == plain
            for expand, weight in ((1, 1.0), (3, 0.5)):
                first = _exact(vectors, query, allowed, expand)
                expanded = query + weight * vectors[first].mean(0)
                expected = _exact(vectors, expanded / np.linalg.norm(expanded), allowed, 5)
                hits = index.search(query, 5, condition, expand=expand, expand_weight=weight)
                assert [row[h.product_id] for h in hits] == expected, (condition, expand)
                assert all(condition.matches(h.metadata) for h in hits)
                changed += expected != plain
    assert changed, "no expansion changed any ranking: the test does not tell the two apart"


def test_index_commands(tmp_path):
    """demo-catalog, build (again: nothing to do), delete, add and info, as a shell runs them."""
    env_index = str(tmp_path / "index")

    def cli(*args: str) -> dict:
        result = subprocess.run([sys.executable, "-m", "fashion_studio.cli", "index", *args], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    shop = str(tmp_path / "shop")
    assert cli("demo-catalog", "--count", "40", "--out", shop) == {"catalog": shop, "products": 40}
    assert cli("build", "--catalog", shop, "--index", env_index, "--threads", "1")["embedded"] == 40
    assert cli("build", "--catalog", shop, "--index", env_index, "--threads", "1")["embedded"] == 0
    assert cli("delete", "P-00001", "P-00002", "--index", env_index) == {"deleted": 2, "indexed": 38}
    assert cli("add", "P-00001", "--catalog", shop, "--index", env_index, "--threads", "1") == {"added": 1, "indexed": 39}
    assert cli("info", "--index", env_index) == {"index": env_index, "store": "local", "products": 39, "dim": 128}
    missing = subprocess.run(
        [sys.executable, "-m", "fashion_studio.cli", "index", "info", "--index", str(tmp_path / "none")], capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == 2 and "no product index" in missing.stderr
    assert Path(shop, "products.csv").is_file()
