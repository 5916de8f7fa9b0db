"""`/recommend` and `/products/{id}/image` over real HTTP, on the shipped fashion-mini models: a gateway
that starts before its index exists answers 503 saying how to build one, then serves the index built
while it runs; image, image_id and text queries; filters; and the refusals (404, 415, 422)."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from fashion_studio.index import LocalStore, ProductIndex
from fashion_studio.index.demo import render_demo_catalog
from fashion_studio.settings import Settings
from fashion_studio.storage import Storage
from tests.helpers import serving

SHOP = 300


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    root = tmp_path_factory.mktemp("recommend")
    env = {
        "FASHION_STORAGE_URL": str(root / "store"),
        "FASHION_INDEX_URL": str(root / "index"),
        "FASHION_WARMUP": "false",
        "FASHION_RECOMMEND_MAX_K": "20",
    }
    with serving("services.gateway:Studio", env, root / "server.log", timeout=300) as server:
        yield server, root


def _b64(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def test_no_index_then_an_empty_one_is_a_503_that_says_how_to_build_it(gateway):
    server, root = gateway
    reply = httpx.post(f"{server.url}/recommend", json={"text": "a red dress"}, timeout=60)
    assert reply.status_code == 503, reply.text
    assert "no product index" in reply.json()["message"] and "fashion-studio index build" in reply.json()["message"]
    LocalStore(root / "index", create=True).close()
    reply = httpx.post(f"{server.url}/recommend", json={"text": "a red dress"}, timeout=60)
    assert reply.status_code == 503 and "is empty" in reply.json()["message"], reply.text


@pytest.fixture(scope="module")
def shop(gateway):
    """The demo shop, indexed into the running gateway's (empty) index folder by this process."""
    from fashion_studio.scoring import Scorer

    _, root = gateway
    catalog = render_demo_catalog(SHOP, root / "shop", seed=5, workers=2)
    index = ProductIndex.open(Settings(), str(root / "index"), embedder=Scorer.load(Settings(torch_threads=2)), create=True)
    assert index.build(catalog).embedded == SHOP
    return catalog


def test_an_image_finds_its_product_and_text_finds_its_kind(gateway, shop):
    server, _ = gateway
    product = shop.products[7]
    reply = httpx.post(f"{server.url}/recommend", json={"image": _b64(shop.load_image(product))}, timeout=60)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["query"] == "image" and body["k"] == 5 and len(body["products"]) == 5
    assert product.product_id in [p["product_id"] for p in body["products"]]
    scores = [p["score"] for p in body["products"]]
    assert scores == sorted(scores, reverse=True)
    first = body["products"][0]
    assert set(first) >= {"product_id", "name", "product_type", "colour", "pattern", "price", "score", "image_url"}

    shot = httpx.get(f"{server.url}{first['image_url']}", timeout=30)
    assert shot.status_code == 200 and shot.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(shot.content)).size == (64, 64)

    reply = httpx.post(f"{server.url}/recommend", json={"text": "a photo of a blue jacket", "k": 8}, timeout=60)
    assert reply.status_code == 200, reply.text
    found = [(p["product_type"], p["colour"]) for p in reply.json()["products"]]
    assert len(found) == 8 and [t for t, _ in found].count("jacket") >= 4, found
    assert all(t == "jacket" or c == "blue" for t, c in found), found


def test_an_image_query_is_expanded_as_the_settings_say_and_a_text_query_is_not(gateway, shop):
    """The served ranking is `ProductIndex.search` with the settings' expansion for an image (the same
    embedding, in this process), and the plain search for a text."""
    from fashion_studio.scoring import Scorer

    server, root = gateway
    settings = Settings(torch_threads=2)
    assert settings.index_query_expansion > 0
    index = ProductIndex.open(settings, str(root / "index"))
    scorer = Scorer.load(settings)
    outside = render_demo_catalog(4, root / "outside", seed=8, workers=1)
    for image in outside.load_images():
        reply = httpx.post(f"{server.url}/recommend", json={"image": _b64(image), "k": 6}, timeout=60)
        assert reply.status_code == 200, reply.text
        vector = scorer.embed_images([image])[0]
        expanded = [h.product_id for h in index.search(vector, 6, expand=settings.index_query_expansion, expand_weight=settings.index_expansion_weight)]
        assert [p["product_id"] for p in reply.json()["products"]] == expanded
    text = "a photo of a green dress"
    reply = httpx.post(f"{server.url}/recommend", json={"text": text, "k": 6}, timeout=60)
    assert [p["product_id"] for p in reply.json()["products"]] == [h.product_id for h in index.search(scorer.embed_texts([text])[0], 6)]


def test_a_stored_image_by_id_and_jpeg_bytes(gateway, shop):
    server, root = gateway
    product = shop.products[11]
    Storage(str(root / "store")).put("gen-00aa11bb22cc", shop.load_image(product), {"prompt": "test"})
    by_id = httpx.post(f"{server.url}/recommend", json={"image_id": "gen-00aa11bb22cc", "k": 3}, timeout=60)
    assert by_id.status_code == 200, by_id.text
    assert product.product_id in [p["product_id"] for p in by_id.json()["products"]]
    jpeg = httpx.post(f"{server.url}/recommend", json={"image": _b64(shop.load_image(product), "JPEG"), "k": 3}, timeout=60)
    assert jpeg.status_code == 200 and len(jpeg.json()["products"]) == 3


def test_filters_hold_for_every_result(gateway, shop):
    server, _ = gateway
    query = {"image": _b64(shop.load_image(shop.products[0])), "k": 10}
    for filters in (
        {"product_type": "dress"},
        {"colour": "red"},
        {"min_price": 30, "max_price": 60},
        {"product_type": "cap", "colour": "black", "max_price": 25},
    ):
        reply = httpx.post(f"{server.url}/recommend", json={**query, **filters}, timeout=60)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["filters"] == filters
        allowed = [
            p
            for p in shop.products
            if all(
                (getattr(p, f) == v if f in ("product_type", "colour") else (p.price >= v if f == "min_price" else p.price <= v)) for f, v in filters.items()
            )
        ]
        assert len(body["products"]) == min(10, len(allowed))
        for product in body["products"]:
            assert product["product_type"] == filters.get("product_type", product["product_type"])
            assert product["colour"] == filters.get("colour", product["colour"])
            assert filters.get("min_price", 0) <= product["price"] <= filters.get("max_price", 1e9)


def test_refusals_name_the_field(gateway, shop):
    server, _ = gateway
    text = {"text": "a red dress"}

    def post(body: dict) -> httpx.Response:
        return httpx.post(f"{server.url}/recommend", json=body, timeout=60)

    unknown = post({"image_id": "gen-ffffffffffff"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "image_id", unknown.text
    not_image = post({"image": base64.b64encode(b"%PDF-1.4 not an image").decode()})
    assert not_image.status_code == 415 and not_image.json()["field"] == "image", not_image.text
    for body, field in (
        ({**text, "k": 0}, "k"),
        ({**text, "k": 21}, "k"),
        ({**text, "product_type": "kilt"}, "product_type"),
        ({**text, "colour": "mauve"}, "colour"),
        ({**text, "min_price": -1}, "min_price"),
        ({**text, "min_price": 50, "max_price": 10}, "max_price"),
        ({}, "text"),
        ({**text, "image_id": "gen-00aa11bb22cc"}, "text"),
    ):
        reply = post(body)
        assert reply.status_code == 422, (body, reply.text)
        assert reply.json()["field"] == field, (body, reply.json())
    kilt = post({**text, "product_type": "kilt"}).json()
    assert "dress" in kilt["limit"] and "jacket" in kilt["limit"], kilt
    missing = httpx.get(f"{server.url}/products/NOPE-1/image", timeout=30)
    assert missing.status_code == 404 and missing.json()["field"] == "product_id"
    metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert "fashion_index_query_duration_seconds_bucket" in metrics and "fashion_recommend_results_bucket" in metrics
    assert 'method="embed_images"' in metrics or "embed_images" in metrics
