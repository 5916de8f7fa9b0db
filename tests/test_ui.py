"""The page at /ui, driven in headless Chromium against a live deployment on the fashion-mini models,
with API keys on: a user types a prompt and sees the images, runs a German description through the
catalog, draws a model shot of a described outfit, sees the API's own error for a bad value, uploads a sheet and downloads the job's results,
finds stored images in the gallery, edits one of them in words, finds the products of a small demo
shop that look like an uploaded shot or a text, holds a conversation that survives a reload, clicks
on a garment (or names its category) for its masks, and dresses a person in a garment shot inside the mask
clicked (or redraws it as a prompt says); the page asks nothing of any host but the gateway."""

from __future__ import annotations

import base64
import csv
import io
import time
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from fashion_studio.mini import MINI_DIR
from tests.helpers import Server, serving
from tools.ui_screenshots import CHROMIUM, launch

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent: apt-get install -y chromium"),
    pytest.mark.skipif(not (MINI_DIR / "sd" / "model_index.json").is_file(), reason="fashion-mini weights are not in models/fashion-mini"),
]

KEY = "ui-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
# Few denoising steps and one gate attempt: the test is about the page, not the pictures.
SERVER_ENV = {
    "FASHION_API_KEYS": KEY,
    "FASHION_DEFAULT_STEPS": "4",
    "FASHION_EDIT_STEPS": "4",
    "FASHION_INPAINT_STEPS": "4",
    "FASHION_MAX_ATTEMPTS": "1",
    "FASHION_RATE_LIMIT_PER_MINUTE": "6000",
    "FASHION_RATE_LIMIT_BURST": "1000",
}
WORK_S = 180_000  # ms: one request's work on two busy cores
SHOP = 40  # demo articles in the product index


@pytest.fixture(scope="module")
def left_over_job(tmp_path_factory):
    """A job accepted by an earlier run of the gateway on this storage and never worked on."""
    from fashion_studio.catalog import CatalogParams
    from fashion_studio.jobs import JobStore
    from fashion_studio.storage import Storage

    store = tmp_path_factory.mktemp("ui") / "store"
    sheet = "article_id,description\nUI-R1,Schwarze Handtasche für Damen.\n".encode()
    job = JobStore(Storage(str(store))).create("left-over.csv", sheet, CatalogParams(steps=4, guidance=4.0, max_attempts=1))
    return store, job.id


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A demo shop, indexed by the scorer's CLIP for `/recommend` and the conversation: (catalog, index folder)."""
    from fashion_studio.index import ProductIndex
    from fashion_studio.index.demo import render_demo_catalog
    from fashion_studio.scoring import Scorer
    from fashion_studio.settings import Settings

    root = tmp_path_factory.mktemp("shop")
    catalog = render_demo_catalog(SHOP, root / "shop", seed=5, workers=1)
    settings = Settings(torch_threads=1)
    index = ProductIndex.open(settings, str(root / "index"), embedder=Scorer.load(settings), create=True)
    assert index.build(catalog).embedded == SHOP
    index.close()
    return catalog, root / "index"


@pytest.fixture(scope="module")
def server(left_over_job, shop):
    store, _ = left_over_job
    env = {**SERVER_ENV, "FASHION_STORAGE_URL": str(store), "FASHION_INDEX_URL": str(shop[1])}
    with serving("services.gateway:Studio", env, store.parent / "server.log", timeout=300) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture()
def requests_seen():
    return []


@pytest.fixture()
def page(browser, server, requests_seen):
    """A fresh tab on /ui/ with the key already given (as after the key form), recording every request."""
    context = browser.new_context(accept_downloads=True, bypass_csp=True)  # for wait_for_function; requests are checked below
    context.on("request", lambda request: requests_seen.append(request.url))
    page = context.new_page()
    page.add_init_script(f"sessionStorage.setItem('fashion-studio-api-key', {KEY!r})")
    page.goto(f"{server.url}/ui/")
    page.wait_for_selector("body[data-ready=true]")
    yield page
    context.close()
    assert_only_gateway(server, requests_seen)


def assert_only_gateway(server: Server, urls: list[str]) -> None:
    gateway = urlsplit(server.url).netloc
    elsewhere = [u for u in urls if urlsplit(u).scheme not in ("blob", "data") and urlsplit(u).netloc != gateway]
    assert urls and not elsewhere, elsewhere


def generate(page, prompt: str, **fields: str) -> None:
    page.click("#tabs button[data-view=generate]")
    page.fill("#generate-form [name=prompt]", prompt)
    for name, value in fields.items():
        page.fill(f"#generate-form [name={name}]", value)
    page.click("#generate-form button[type=submit]")


def test_a_prompt_shows_its_images_after_the_page_asks_for_the_key(browser, server, requests_seen):
    context = browser.new_context(bypass_csp=True)
    context.on("request", lambda request: requests_seen.append(request.url))
    page = context.new_page()
    page.goto(f"{server.url}/ui")  # redirected to /ui/
    page.wait_for_selector("body[data-ready=true]")
    generate(page, "a red dress with dots", num_images="2", seed="3")
    page.wait_for_selector("#key-form:not([hidden])")
    assert "key" in page.inner_text("#key-message").lower()
    page.fill("#key-input", KEY)
    page.click("#key-form button[type=submit]")

    page.wait_for_function("document.querySelectorAll('#generate-results img[src^=blob]').length == 2", timeout=WORK_S)
    page.wait_for_function("[...document.querySelectorAll('#generate-results img')].every(i => i.complete && i.naturalWidth == 64)")
    captions = page.locator("#generate-results figcaption").all_inner_texts()
    assert len(captions) == 2 and all("CLIP" in c for c in captions)
    assert {c.split("seed ")[1].split()[0] for c in captions} == {"3", "4"}, captions  # seed, seed + 1
    assert page.evaluate("sessionStorage.getItem('fashion-studio-api-key')") == KEY
    assert page.evaluate("localStorage.length") == 0 and "ui-test-key" not in page.evaluate("document.cookie")
    context.close()
    assert_only_gateway(server, requests_seen)


def test_a_german_description_runs_through_the_catalog_view(page):
    page.click("#tabs button[data-view=catalog]")
    page.fill("#catalog-form [name=article_id]", "UI-1")
    page.fill("#catalog-form [name=description]", "Gelbe Sneaker für Kinder aus Canvas. Leicht und bequem.")
    page.click("#catalog-form button[type=submit]")
    page.wait_for_selector("#catalog-result img[src^=blob]", timeout=WORK_S)
    result = page.inner_text("#catalog-result")
    assert "sneakers" in page.inner_text("#catalog-result .translation").lower()
    assert "sneakers" in page.locator("#catalog-result .attributes tr", has_text="product type").inner_text()
    assert "yellow" in page.locator("#catalog-result .attributes tr", has_text="colors").inner_text()
    assert page.locator("#catalog-result .attempts tbody tr").count() == 1
    assert "Product image of" in result


def test_an_invalid_value_shows_the_apis_own_error(page, server):
    generate(page, "a navy jacket", width="30")
    alert = page.locator("#generate-form .error")
    alert.wait_for(state="visible", timeout=WORK_S)
    expected = httpx.post(f"{server.url}/generate", json={"prompt": "a navy jacket", "width": 30, "num_images": 1}, headers=AUTH, timeout=60).json()
    assert expected["field"] == "width"
    shown = alert.inner_text()
    assert shown.startswith("width = 30") and expected["limit"] in shown, (shown, expected)
    assert page.locator("#generate-form button[type=submit]").is_enabled()


def test_a_described_outfit_is_drawn_as_a_model_shot_and_a_misfit_names_its_field(page):
    page.click("#tabs button[data-view=model-shot]")
    page.fill("#model-shot-form [name=top]", "rotes gestreiftes T-Shirt")
    page.fill("#model-shot-form [name=bottom]", "Marineblaue Hose")
    page.fill("#model-shot-form [name=seed]", "5")
    page.click("#model-shot-form button[type=submit]")
    page.wait_for_selector("#model-shot-results img[src^=blob]", timeout=WORK_S)
    assert page.inner_text("#model-shot-prompt") == "Prompt: a woman wearing a red striped t-shirt and navy trousers"
    assert "seed 5" in page.inner_text("#model-shot-results figcaption")
    page.fill("#model-shot-form [name=top]", "gelbes Kleid")  # a dress takes no bottom
    page.click("#model-shot-form button[type=submit]")
    alert = page.locator("#model-shot-form .error")
    alert.wait_for(state="visible", timeout=WORK_S)
    assert alert.inner_text().startswith("bottom = "), alert.inner_text()
    assert "needs no bottom" in alert.inner_text()


def test_an_uploaded_sheet_runs_to_the_end_and_its_results_download(page, tmp_path):
    sheet = tmp_path / "articles.csv"
    sheet.write_text("article_id,description\nUI-J1,Rotes Damenkleid aus Baumwolle.\nUI-J2,Gestreiftes Herren-Hemd in Blau.\n", encoding="utf-8")
    page.click("#tabs button[data-view=catalog]")
    page.set_input_files("#job-form [name=file]", str(sheet))
    page.click("#job-form button[type=submit]")
    page.wait_for_selector("#job-progress[data-status=done]", timeout=2 * WORK_S)
    assert page.eval_on_selector("#job-bar", "bar => [bar.value, bar.max]") == [2, 2]
    assert "2 done, 0 failed" in page.inner_text("#job-counts")
    with page.expect_download() as download:
        page.click("#job-download")
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text(encoding="utf-8"))))
    assert [(r["article_id"], r["status"]) for r in rows] == [("UI-J1", "done"), ("UI-J2", "done")]
    assert all(r["image_id"] and float(r["clip_score"]) > 0 for r in rows)


def test_a_bad_upload_shows_which_column_is_missing(page, tmp_path):
    sheet = tmp_path / "articles.csv"
    sheet.write_text("article_id,text\nUI-X,Rotes Kleid\n", encoding="utf-8")
    page.click("#tabs button[data-view=catalog]")
    page.set_input_files("#job-form [name=file]", str(sheet))
    page.click("#job-form button[type=submit]")
    alert = page.locator("#job-form .error")
    alert.wait_for(state="visible", timeout=30_000)
    shown = alert.inner_text()
    assert shown.startswith("column = 'description': ") and "['article_id', 'text']" in shown, shown


def test_the_gallery_shows_a_stored_image_with_its_metadata(page, server):
    stored = httpx.post(f"{server.url}/generate", json={"prompt": "a green wool jacket", "seed": 11}, headers=AUTH, timeout=120)
    assert stored.status_code == 200, stored.text
    image_id = stored.json()["images"][0]["url"].rsplit("/", 1)[-1].removesuffix(".png")
    page.click("#tabs button[data-view=gallery]")
    card = page.locator(f"#gallery-items figure[data-image-id='{image_id}']")
    card.wait_for(timeout=30_000)
    page.wait_for_function(f"document.querySelector(\"figure[data-image-id='{image_id}'] img\").naturalWidth == 64")
    assert "a green wool jacket" in card.inner_text() and "seed 11" in card.inner_text()
    assert page.locator("#gallery-items figure").first.get_attribute("data-image-id") == image_id  # newest first


def stored_image(server: Server, prompt: str, seed: int) -> str:
    """The id of an image generated and stored through the API, as another client would."""
    reply = httpx.post(f"{server.url}/generate", json={"prompt": prompt, "seed": seed}, headers=AUTH, timeout=WORK_S / 1000)
    assert reply.status_code == 200, reply.text
    return reply.json()["images"][0]["id"]


def wait_for_images(page, selector: str, count: int) -> None:
    """`count` images under `selector`, each fetched (as a blob) and decoded at the models' 64 px."""
    page.wait_for_function(
        f"(() => {{ const images = [...document.querySelectorAll({selector!r})];"
        f" return images.length == {count} && images.every(i => i.src.startsWith('blob:') && i.complete && i.naturalWidth == 64); }})()",
        timeout=WORK_S,
    )


def test_an_image_from_the_gallery_is_edited_in_words_and_shown_beside_its_source(page, server):
    source = stored_image(server, "a red dress", seed=5)
    page.click("#tabs button[data-view=gallery]")
    page.locator(f"#gallery-items figure[data-image-id='{source}'] button[data-use=edit]").click()
    assert page.locator("#view-edit").is_visible() and page.input_value("#edit-form [name=image_id]") == source
    wait_for_images(page, "#edit-source img", 1)  # the source, before any edit
    assert page.locator("#edit-source figure").get_attribute("data-image-id") == source
    assert page.input_value("#edit-form [name=steps]") == "4"  # the schema's default (FASHION_EDIT_STEPS)

    page.fill("#edit-form [name=instruction]", "make it navy")
    page.fill("#edit-form [name=seed]", "7")
    page.click("#edit-form button[type=submit]")
    page.wait_for_selector("#edit-output figure[data-image-id^=edit-]", timeout=WORK_S)
    wait_for_images(page, "#edit-result img", 2)
    edited = page.locator("#edit-output figure").get_attribute("data-image-id")
    assert page.locator("#edit-source figure").get_attribute("data-image-id") == source
    record = next(r for r in httpx.get(f"{server.url}/images", headers=AUTH, timeout=10).json()["images"] if r["id"] == edited)
    meta = record["metadata"]
    assert (meta["source_image_id"], meta["instruction"], meta["seed"]) == (source, "make it navy", 7)
    shown = page.inner_text("#edit-output")
    assert "make it navy" in shown and meta["edited_description"] in shown and "seed 7" in shown, shown
    assert abs(float(shown.split("CLIP ")[1].split()[0]) - meta["clip_score"]) <= 0.005, shown
    assert "navy" in meta["edited_description"]

    page.click("#edit-output button[data-use=edit]")  # the edit, taken as the next source
    assert page.input_value("#edit-form [name=image_id]") == edited
    assert page.locator("#edit-source figure").get_attribute("data-image-id") == edited
    assert page.locator("#edit-output figure").count() == 0


def test_an_uploaded_shot_finds_k_similar_products_and_words_find_filtered_ones(page, shop, tmp_path):
    catalog, _ = shop
    product = catalog.products[7]
    shot = tmp_path / "shot.png"
    catalog.load_image(product).save(shot)
    page.click("#tabs button[data-view=recommend]")
    assert page.input_value("#recommend-form [name=k]") == "5"  # the schema's default
    page.fill("#recommend-form [name=image_id]", "not-used")
    page.set_input_files("#recommend-form [name=file]", str(shot))
    assert page.input_value("#recommend-form [name=image_id]") == ""  # one source at a time
    page.fill("#recommend-form [name=k]", "4")
    page.click("#recommend-form button[type=submit]")
    wait_for_images(page, "#recommend-results figure.product img", 4)
    cards = page.locator("#recommend-results figure.product")
    ids = [cards.nth(i).get_attribute("data-product-id") for i in range(4)]
    assert product.product_id in ids, ids
    card = cards.nth(ids.index(product.product_id)).inner_text()
    for fact in (product.name, f"{product.product_type} · {product.colour} · {product.pattern}", f"{product.price:.2f} EUR", "similarity"):
        assert fact in card, (fact, card)
    assert "4 of 4 products like the image" in page.inner_text("#recommend-summary")

    page.fill("#recommend-form [name=text]", "a photo of a blue jacket")
    assert page.eval_on_selector("#recommend-form [name=file]", "f => f.files.length") == 0
    page.fill("#recommend-form [name=product_type]", "jacket")
    page.fill("#recommend-form [name=k]", "3")
    page.click("#recommend-form button[type=submit]")
    page.wait_for_function("document.querySelector('#recommend-summary').textContent.includes('like the words')", timeout=WORK_S)
    jackets = [p.product_id for p in catalog.products if p.product_type == "jacket"]
    assert len(jackets) >= 3, jackets  # the demo shop's seed
    wait_for_images(page, "#recommend-results figure.product img", 3)
    captions = page.locator("#recommend-results figcaption").all_inner_texts()
    assert all("jacket ·" in c for c in captions), captions
    assert "product type jacket" in page.inner_text("#recommend-summary")


def test_a_conversation_draws_then_edits_and_its_history_survives_a_reload(page):
    page.click("#tabs button[data-view=conversation]")
    assert "no conversation yet" in page.inner_text("#conversation-id")
    page.fill("#message-form [name=message]", "a red summer dress")
    page.fill("#message-form [name=seed]", "11")
    page.click("#message-form button[type=submit]")
    first = page.locator("#conversation-turns li.turn[data-seq='1']")
    first.wait_for(timeout=WORK_S)
    wait_for_images(page, "#conversation-turns li[data-seq='1'] .turn-images img", 1)
    wait_for_images(page, "#conversation-turns li[data-seq='1'] .products img", 5)
    session = page.evaluate("sessionStorage.getItem('fashion-studio-session')")
    assert session and session in page.inner_text("#conversation-id")
    assert first.get_attribute("data-action") == "generate"
    assert "a red summer dress" in first.locator(".bubble.user").inner_text()
    assert "generate" in first.locator(".understood").inner_text() and "a red summer dress" in first.locator(".understood strong").inner_text()
    drawn = first.locator(".turn-images figure").get_attribute("data-image-id")

    page.fill("#message-form [name=seed]", "12")
    page.fill("#message-form [name=message]", "make it blue")
    page.press("#message-form [name=message]", "Enter")  # Enter sends, as in any chat
    second = page.locator("#conversation-turns li.turn[data-seq='2']")
    second.wait_for(timeout=WORK_S)
    wait_for_images(page, "#conversation-turns li[data-seq='2'] .turn-images img", 1)
    assert second.get_attribute("data-action") == "edit" and "make it blue" in second.locator(".understood strong").inner_text()
    edited = second.locator(".turn-images figure").get_attribute("data-image-id")
    assert edited != drawn and f"edited from {drawn}" in second.inner_text()
    assert page.input_value("#message-form [name=message]") == ""
    before = page.locator("#conversation-turns li.turn").all_inner_texts()

    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#view-conversation").is_visible()  # the view kept in the address
    page.wait_for_selector("#conversation-turns li.turn[data-seq='2']", timeout=30_000)
    wait_for_images(page, "#conversation-turns .turn-images img", 2)
    assert page.evaluate("sessionStorage.getItem('fashion-studio-session')") == session
    assert page.locator("#conversation-turns li.turn").all_inner_texts() == before
    assert [page.locator(f"li[data-seq='{n}'] .turn-images figure").get_attribute("data-image-id") for n in (1, 2)] == [drawn, edited]


def test_refusals_of_the_new_views_show_the_field_the_api_names(page, server):
    def expected(path: str, body: dict) -> dict:
        reply = httpx.post(f"{server.url}{path}", json=body, headers=AUTH, timeout=60)
        assert reply.status_code in (409, 422), reply.text
        return reply.json()

    page.click("#tabs button[data-view=edit]")
    page.fill("#edit-form [name=instruction]", "make it navy")
    page.click("#edit-form button[type=submit]")
    alert = page.locator("#edit-form .error")
    alert.wait_for(state="visible", timeout=30_000)
    refusal = expected("/edit", {"instruction": "make it navy"})
    assert refusal["field"] == "image"
    assert alert.inner_text().startswith(f"image = {refusal['value']}: {refusal['limit']}"), alert.inner_text()

    page.click("#tabs button[data-view=recommend]")
    page.fill("#recommend-form [name=text]", "a dress")
    page.fill("#recommend-form [name=min_price]", "50")
    page.fill("#recommend-form [name=max_price]", "10")
    page.click("#recommend-form button[type=submit]")
    alert = page.locator("#recommend-form .error")
    alert.wait_for(state="visible", timeout=30_000)
    refusal = expected("/recommend", {"text": "a dress", "min_price": 50, "max_price": 10})
    assert refusal["field"] == "max_price"
    assert alert.inner_text().startswith("max_price = 10") and refusal["limit"] in alert.inner_text(), alert.inner_text()
    assert page.locator("#recommend-results figure").count() == 0

    page.click("#tabs button[data-view=conversation]")
    page.fill("#message-form [name=message]", "make it blue")  # nothing to change yet
    page.click("#message-form button[type=submit]")
    alert = page.locator("#message-form .error")
    alert.wait_for(state="visible", timeout=30_000)
    assert alert.inner_text().startswith("action = 'edit': ") and "describe an outfit first" in alert.inner_text(), alert.inner_text()
    assert page.locator("#conversation-turns li.turn").count() == 0  # the refused message left no turn
    assert page.input_value("#message-form [name=message]") == "make it blue"


def test_views_follow_the_gateways_openapi(page, server):
    paths = httpx.get(f"{server.url}/openapi.json", timeout=10).json()["paths"]
    tabs = page.locator("#tabs button").all_inner_texts()
    optional = [
        ("Popularity", ["/popularity"]),
        ("Edit", ["/edit"]),
        ("Masks", ["/segment"]),
        ("Try-on", ["/tryon"]),
        ("Similar products", ["/recommend"]),
        ("Conversation", ["/sessions", "/sessions/{session_id}", "/sessions/{session_id}/messages"]),
    ]
    expected = ["Generate", "Model shot", "Catalog", "Gallery"] + [label for label, needs in optional if all(p in paths for p in needs)]
    assert tabs == expected
    assert page.locator("#view-popularity").count() == ("/popularity" in paths)
    assert {"Edit", "Masks", "Try-on", "Similar products", "Conversation"} <= set(tabs)  # this gateway serves them all
    assert page.locator("#view-segment").count() == ("/segment" in paths)
    assert page.locator("#view-tryon").count() == ("/tryon" in paths)
    assert page.locator("#tryon-inpaint").count() == ("/inpaint" in paths)  # the Inpaint button of the Try-on view


# --- Masks: clicks on a garment, or its category ---------------------------------------------------------


@pytest.fixture(scope="module")
def figure():
    """A held-out figure of the segmenter's evaluation wearing a top and a bottom, with its exact masks."""
    from fashion_studio.mini.data import HELDOUT
    from fashion_studio.mini.figures import render_figure
    from fashion_studio.mini.segmenter import make_figures

    return next(f for f in map(render_figure, make_figures(12, 0, HELDOUT)) if f.spec.bottom is not None)


def is_segment(response) -> bool:
    return urlsplit(response.url).path.endswith("/segment")


def open_masks_with_upload(page, figure, tmp_path):
    """The Masks view with `figure` uploaded and shown enlarged; its scale (screen px per image pixel)."""
    path = tmp_path / "figure.png"
    figure.image.save(path)
    page.click("#tabs button[data-view=segment]")
    page.set_input_files("#segment-form [name=file]", str(path))
    wait_for_images(page, "#segment-stage img", 1)
    box = page.locator("#segment-stage svg.markers").bounding_box()
    assert abs(box["width"] - box["height"]) < 1 and box["width"] >= 4 * 64, box  # the 64 px image, enlarged
    return box["width"] / 64


def click_pixels(page, points, scale: float, shift: bool = False, stage: str = "#segment-stage") -> None:
    """Clicks on the image shown in `stage` where the image's pixels `points` (x, y) are."""
    stage = page.locator(f"{stage} svg.markers")
    for x, y in points:
        stage.click(position={"x": x * scale, "y": y * scale}, modifiers=["Shift"] if shift else None)


def mask_of(png_b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(png_b64)))) > 127


def shown_mask(page, selector: str) -> np.ndarray:
    """The pixels a mask canvas colours in, as the page drew it."""
    canvas = page.locator(selector)
    width, height, alpha = canvas.evaluate(
        "c => [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data.filter((_, i) => i % 4 == 3))]"
    )
    return np.asarray(alpha).reshape(height, width) > 0


def test_three_clicks_on_an_uploaded_garment_send_its_pixels_and_show_its_mask(page, figure, tmp_path):
    from fashion_studio.mini.segmenter import iou, sample_points

    scale = open_masks_with_upload(page, figure, tmp_path)
    points = sample_points(figure.masks["upper"], 3, np.random.default_rng(4)).tolist()  # pixel centres
    click_pixels(page, points, scale)
    listed = page.locator("#segment-points li[data-label]")
    assert [[float(listed.nth(i).get_attribute(a)) for a in ("data-x", "data-y")] for i in range(3)] == points
    assert page.locator("#segment-stage circle.point.on").count() == 3

    with page.expect_response(is_segment, timeout=WORK_S) as answered:
        page.click("#segment-form button[type=submit]")
    sent = answered.value.request.post_data_json
    assert (sent["points"], sent["labels"]) == (points, [1, 1, 1]) and "image_id" not in sent
    assert Image.open(io.BytesIO(base64.b64decode(sent["image"]))).size == (64, 64)
    answer = answered.value.json()
    assert answered.value.status == 200, answer
    (mask,) = answer["masks"]  # several points: one mask

    card = page.locator("#segment-results figure.mask-card")
    card.wait_for(timeout=WORK_S)
    assert float(card.get_attribute("data-score")) == mask["score"] and int(card.get_attribute("data-area")) == mask["area"]
    caption = card.locator("figcaption").inner_text()
    assert f"score {mask['score']:.3f}" in caption and f"area {mask['area']} px" in caption, caption
    assert (shown_mask(page, "#segment-results figure.mask-card canvas.mask") == mask_of(mask["png_b64"])).all()
    assert iou(mask_of(mask["png_b64"]), figure.masks["upper"]) >= 0.5
    assert "3 points (3 on the garment, 0 background)" in page.inner_text("#segment-summary")
    page.wait_for_selector("#segment-stage canvas.mask")  # the best mask over the image clicked on
    assert page.locator("#segment-results figure.mask-card circle.point").count() == 3

    page.click("#segment-clear")
    assert page.locator("#segment-points li[data-label]").count() == 0 and page.locator("#segment-stage circle").count() == 0
    assert page.locator("#segment-results figure").count() == 0 and page.locator("#segment-stage canvas.mask").count() == 0


def test_a_generated_image_goes_to_masks_and_a_category_button_shows_its_mask(page):
    generate(page, "a red summer dress", num_images="1", seed="5")
    wait_for_images(page, "#generate-results img", 1)
    image_id = page.locator("#generate-results figure").get_attribute("data-image-id")
    page.click("#generate-results figure button[data-use=segment]")
    assert page.locator("#view-segment").is_visible() and page.input_value("#segment-form [name=image_id]") == image_id
    wait_for_images(page, "#segment-stage img", 1)
    assert image_id in page.inner_text("#segment-stage")
    categories = page.locator("#segment-categories button")
    assert [categories.nth(i).get_attribute("data-category") for i in range(categories.count())] == ["upper", "lower", "full"]

    with page.expect_response(is_segment, timeout=WORK_S) as answered:
        page.click("#segment-categories button[data-category=full]")
    assert answered.value.request.post_data_json == {"image_id": image_id, "category": "full"}
    answer = answered.value.json()
    assert answered.value.status == 200 and (answer["prompt"], answer["image_id"]) == ("category", image_id), answer
    (mask,) = answer["masks"]
    card = page.locator("#segment-results figure.mask-card")
    card.wait_for(timeout=WORK_S)
    assert f"score {mask['score']:.3f}" in card.inner_text() and f"area {mask['area']} px" in card.inner_text()
    assert (shown_mask(page, "#segment-results figure.mask-card canvas.mask") == mask_of(mask["png_b64"])).all()
    summary = page.inner_text("#segment-summary")
    assert "the category “full”" in summary and f"stored image {image_id}" in summary, summary
    assert page.locator("#segment-categories button:disabled").count() == 0


def test_refusals_of_the_masks_view_show_the_field_the_api_names(page, server, figure, tmp_path):
    def expected(body: dict, status: int) -> dict:
        reply = httpx.post(f"{server.url}/segment", json=body, headers=AUTH, timeout=60)
        assert reply.status_code == status, reply.text
        return reply.json()

    scale = open_masks_with_upload(page, figure, tmp_path)
    click_pixels(page, [(10.5, 10.5)], scale, shift=True)  # a background point only
    assert page.locator("#segment-stage circle.point.off").count() == 1
    with page.expect_response(is_segment, timeout=WORK_S) as answered:
        page.click("#segment-form button[type=submit]")
    assert answered.value.request.post_data_json["labels"] == [0]
    alert = page.locator("#segment-form .error")
    alert.wait_for(state="visible", timeout=30_000)
    refusal = expected({"image": answered.value.request.post_data_json["image"], "points": [[10.5, 10.5]], "labels": [0]}, 422)
    assert refusal["field"] == "labels"
    assert refusal["value"] == "[0]" and alert.inner_text().startswith(f"labels = [0]: {refusal['limit']}"), alert.inner_text()
    assert page.locator("#segment-results figure").count() == 0

    missing = "gen-00000000ffff"
    page.fill("#segment-form [name=image_id]", missing)
    assert page.eval_on_selector("#segment-form [name=file]", "f => f.files.length") == 0  # one source at a time
    with page.expect_response(is_segment, timeout=WORK_S) as answered:
        page.click("#segment-categories button[data-category=upper]")
    assert answered.value.status == 404
    refusal = expected({"image_id": missing, "category": "upper"}, 404)
    assert refusal["field"] == "image_id"
    page.wait_for_function("document.querySelector('#segment-form .error').textContent.startsWith('image_id = ')")
    assert alert.inner_text().startswith(f"image_id = {refusal['value']}: {refusal['limit']}"), alert.inner_text()
    page.locator("#segment-image-error").wait_for(state="visible")  # nor could the image be shown
    assert page.inner_text("#segment-image-error").startswith("image_id"), page.inner_text("#segment-image-error")
    assert page.locator("#segment-stage img").count() == 0


# --- Try-on: a person clicked on (or a category), a garment shot, the result -----------------------------


@pytest.fixture(scope="module")
def outfit(tmp_path_factory):
    """A held-out person whose upper garment is to be replaced, a held-out garment shot for it, and the
    person's true mask of that garment: (person, garment, mask) as uint8 64x64x3, 64x64x3 and bool 64x64."""
    from fashion_studio.mini.data import HELDOUT
    from fashion_studio.mini.inpainter import example_set

    data = example_set(tmp_path_factory.mktemp("tryon"), 8, 0, HELDOUT, workers=1)
    i = next(k for k, e in enumerate(data.examples) if e.category == "upper")
    return data.persons[i], data.garments[i], data.masks[i]


def answer_to(suffix: str):
    return lambda response: urlsplit(response.url).path.endswith(suffix) and response.request.method == "POST"


def pixels_of(png_b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(png_b64))).convert("RGB"))


def open_tryon_with_uploads(page, outfit, tmp_path, garment: bytes | None = None) -> float:
    """The Try-on view with the person and the garment shot (or `garment`'s bytes) uploaded; the scale of
    the person shown (screen px per image pixel)."""
    person, shot, _ = outfit
    Image.fromarray(person).save(tmp_path / "person.png")
    if garment is None:
        Image.fromarray(shot).save(tmp_path / "garment.png")
    else:
        (tmp_path / "garment.png").write_bytes(garment)
    page.click("#tabs button[data-view=tryon]")
    page.set_input_files("#tryon-form [name=file]", str(tmp_path / "person.png"))
    page.set_input_files("#tryon-form [name=garment_file]", str(tmp_path / "garment.png"))
    wait_for_images(page, "#tryon-stage img", 1)
    box = page.locator("#tryon-stage svg.markers").bounding_box()
    assert abs(box["width"] - box["height"]) < 1 and box["width"] >= 4 * 64, box
    return box["width"] / 64


def test_three_clicks_on_a_persons_top_and_a_garment_shot_show_the_try_on_over_its_mask(page, outfit, tmp_path, requests_seen):
    from fashion_studio.mini.segmenter import iou, sample_points

    person, shot, truth = outfit
    scale = open_tryon_with_uploads(page, outfit, tmp_path)
    wait_for_images(page, "#tryon-results figure.garment-card img", 1)  # the shot, before any try-on
    points = sample_points(truth, 3, np.random.default_rng(4)).tolist()
    click_pixels(page, points, scale, stage="#tryon-stage")
    listed = page.locator("#tryon-points li[data-label]")
    assert [[float(listed.nth(i).get_attribute(a)) for a in ("data-x", "data-y")] for i in range(3)] == points
    assert page.locator("#tryon-stage circle.point.on").count() == 3

    with page.expect_response(answer_to("/tryon"), timeout=WORK_S) as answered:
        page.click("#tryon-form button[type=submit]")
    sent = answered.value.request.post_data_json
    assert (sent["points"], sent["labels"]) == (points, [1, 1, 1]), sent.keys()
    assert not {"category", "mask", "person_image_id", "garment_image_id", "image"} & sent.keys(), sent.keys()
    assert np.array_equal(pixels_of(sent["person"]), person) and np.array_equal(pixels_of(sent["garment"]), shot)
    answer = answered.value.json()
    assert answered.value.status == 200, answer
    assert answer["mask_source"] == "points" and (answer["width"], answer["height"]) == (64, 64)

    result = page.locator("#tryon-results figure.result-card")
    result.wait_for(timeout=WORK_S)
    wait_for_images(page, "#tryon-results figure.result-card img", 1)
    assert result.get_attribute("data-image-id") == answer["id"] and result.get_attribute("data-kind") == "tryon"
    assert any(urlsplit(u).path.endswith(f"/images/{answer['id']}") for u in requests_seen)  # the stored result
    assert f"seed {answer['seed']}" in result.inner_text()
    wait_for_images(page, "#tryon-results figure.garment-card img", 1)  # the garment beside it
    mask = mask_of(answer["mask"])
    assert iou(mask, truth) >= 0.5
    assert (shown_mask(page, "#tryon-results figure.mask-card canvas.mask") == mask).all()
    page.wait_for_selector("#tryon-stage canvas.mask")  # and over the person clicked on
    assert (shown_mask(page, "#tryon-stage canvas.mask") == mask).all()
    assert page.locator("#tryon-results figure.mask-card circle.point").count() == 3
    caption = page.inner_text("#tryon-results figure.mask-card figcaption")
    assert "3 points (3 on the garment, 0 background)" in caption and f"{answer['changed_pixels']} px redrawn" in caption, caption
    assert answer["id"] in page.inner_text("#tryon-summary")
    assert page.locator("#tryon-form .error").is_hidden()

    page.click("#tryon-results figure.result-card button[data-use=tryon]")  # the result, as the next person
    assert page.input_value("#tryon-form [name=image_id]") == answer["id"]
    assert page.eval_on_selector("#tryon-form [name=file]", "f => f.files.length") == 0
    page.wait_for_function(f"document.querySelector('#tryon-stage').textContent.includes({answer['id']!r})")
    assert page.locator("#tryon-points li[data-label]").count() == 0 and page.locator("#tryon-results figure.result-card").count() == 0


def test_a_category_button_chooses_the_mask_and_inpaint_redraws_it_as_the_prompt_says(page, outfit, tmp_path):
    person, _, truth = outfit
    scale = open_tryon_with_uploads(page, outfit, tmp_path)
    categories = page.locator("#tryon-categories button")
    assert [categories.nth(i).get_attribute("data-category") for i in range(categories.count())] == ["upper", "lower", "full"]
    click_pixels(page, [(10.5, 10.5)], scale, stage="#tryon-stage")
    page.click("#tryon-categories button[data-category=upper]")
    assert page.get_attribute("#tryon-categories button[data-category=upper]", "aria-pressed") == "true"
    assert page.locator("#tryon-points li[data-label]").count() == 0  # a category replaces the points

    page.fill("#tryon-form [name=prompt]", "a woman wearing a red striped t-shirt")
    page.fill("#tryon-form [name=seed]", "3")
    with page.expect_response(answer_to("/inpaint"), timeout=WORK_S) as answered:
        page.click("#tryon-inpaint")
    sent = answered.value.request.post_data_json
    # steps: the schema's default (FASHION_INPAINT_STEPS, the same for both endpoints); guidance, whose
    # defaults differ, is left to the endpoint.
    assert {k: v for k, v in sent.items() if k != "image"} == {"category": "upper", "prompt": "a woman wearing a red striped t-shirt", "seed": 3, "steps": 4}
    assert np.array_equal(pixels_of(sent["image"]), person)
    answer = answered.value.json()
    assert answered.value.status == 200 and answer["mask_source"] == "category" and answer["seed"] == 3, answer
    result = page.locator("#tryon-results figure.result-card[data-kind=inpaint]")
    result.wait_for(timeout=WORK_S)
    wait_for_images(page, "#tryon-results figure.result-card img", 1)
    assert result.get_attribute("data-image-id") == answer["id"] and "red striped t-shirt" in result.inner_text()
    assert page.locator("#tryon-results figure.garment-card").count() == 0  # an inpainting takes no garment
    assert (shown_mask(page, "#tryon-results figure.mask-card canvas.mask") == mask_of(answer["mask"])).all()
    assert "the category “upper”" in page.inner_text("#tryon-results figure.mask-card")
    assert page.locator("#tryon-categories button:disabled, #tryon-inpaint:disabled").count() == 0

    click_pixels(page, [(32.5, 30.5)], scale, stage="#tryon-stage")  # a click takes the mask back to points
    assert page.get_attribute("#tryon-categories button[data-category=upper]", "aria-pressed") == "false"
    assert page.locator("#tryon-points li[data-label]").count() == 1


def test_refusals_of_the_try_on_view_show_the_field_the_api_names(page, server, outfit, tmp_path):
    def expected(path: str, body: dict, status: int) -> dict:
        reply = httpx.post(f"{server.url}{path}", json=body, headers=AUTH, timeout=60)
        assert reply.status_code == status, reply.text
        return reply.json()

    open_tryon_with_uploads(page, outfit, tmp_path, garment=b"not an image, just words")
    page.locator("#tryon-garment-error").wait_for(state="visible")  # the page could not show it either
    assert "garment.png could not be read as an image" in page.inner_text("#tryon-garment-error")
    page.click("#tryon-categories button[data-category=upper]")
    with page.expect_response(answer_to("/tryon"), timeout=WORK_S) as answered:
        page.click("#tryon-form button[type=submit]")
    sent = answered.value.request.post_data_json
    assert answered.value.status == 415 and sent["category"] == "upper"
    alert = page.locator("#tryon-form .error")
    alert.wait_for(state="visible", timeout=30_000)
    refusal = expected("/tryon", sent, 415)
    assert refusal["field"] == "garment"
    assert alert.inner_text().startswith(f"garment = {refusal['value']}: {refusal['limit']}"), alert.inner_text()
    assert alert.get_attribute("role") == "alert"
    assert page.locator("#tryon-results figure.result-card").count() == 0
    assert page.locator("#tryon-form button[type=submit]").is_enabled()

    with page.expect_response(answer_to("/inpaint"), timeout=WORK_S) as answered:
        page.click("#tryon-inpaint")  # no prompt
    assert answered.value.status == 422 and answered.value.request.post_data_json["prompt"] == ""
    page.wait_for_function("document.querySelector('#tryon-form .error').textContent.startsWith('prompt')")
    refusal = expected("/inpaint", answered.value.request.post_data_json, 422)
    assert refusal["field"].removeprefix("body.") == "prompt", refusal
    assert refusal["limit"] in alert.inner_text(), (refusal, alert.inner_text())


# --- the endpoints the page uses, as any client sees them ----------------------------------------------


def test_the_gateway_resumes_a_job_left_unfinished_on_start(server, left_over_job):
    _, job_id = left_over_job
    deadline = time.monotonic() + WORK_S / 1000
    while (job := httpx.get(f"{server.url}/catalog/jobs/{job_id}", headers=AUTH, timeout=10).json())["status"] != "done":
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["progress"] == {"total": 1, "done": 1, "failed": 0, "pending": 0, "passed": job["progress"]["passed"]}
    image = httpx.get(f"{server.url}/images/{job['rows'][0]['image_id']}", headers=AUTH, timeout=10)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


def test_upload_refusals_name_the_field(server):
    def upload(name: str, data: bytes) -> httpx.Response:
        return httpx.post(f"{server.url}/catalog/jobs", files={"file": (name, data)}, headers=AUTH, timeout=30)

    wrong_type = upload("photo.png", b"\x89PNG\r\n\x1a\n")
    assert wrong_type.status_code == 415 and wrong_type.json()["field"] == "file", wrong_type.text
    missing = upload("articles.csv", b"article_id,text\nA,Kleid\n")
    assert missing.status_code == 422, missing.text
    assert (missing.json()["field"], missing.json()["value"]) == ("column", "'description'")
    assert httpx.post(f"{server.url}/catalog/jobs", headers=AUTH, timeout=30).status_code == 422
    assert upload("articles.csv", b"article_id,description\nA,Kleid\n").status_code != 401
    assert httpx.post(f"{server.url}/catalog/jobs", files={"file": ("a.csv", b"x")}, timeout=30).status_code == 401


def test_unknown_ids_are_404_naming_them(server):
    for path, field in (
        ("/catalog/jobs/" + "0" * 32, "job_id"),
        ("/catalog/jobs/nope/results", "job_id"),
        ("/images/nope", "image_id"),
        ("/images/.hidden", "image_id"),
    ):
        reply = httpx.get(f"{server.url}{path}", headers=AUTH, timeout=10)
        assert reply.status_code == 404 and reply.json()["field"] == field, (path, reply.text)
    assert httpx.get(f"{server.url}/images/..%2F..%2Fserver.log", headers=AUTH, timeout=10).status_code == 404
    assert httpx.get(f"{server.url}/images", params={"limit": 0}, headers=AUTH, timeout=10).json()["field"] == "query.limit"
    assert httpx.get(f"{server.url}/ui/secrets.txt", timeout=10).status_code == 404
