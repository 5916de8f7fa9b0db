"""The page at /ui, driven in headless Chromium against a live deployment on the fashion-mini models,
with API keys on: a user types a prompt and sees the images, runs a German description through the
catalog, sees the API's own error for a bad value, uploads a sheet and downloads the job's results,
and finds stored images in the gallery; the page asks nothing of any host but the gateway."""

from __future__ import annotations

import csv
import io
import time
from urllib.parse import urlsplit

import httpx
import pytest

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
    "FASHION_MAX_ATTEMPTS": "1",
    "FASHION_RATE_LIMIT_PER_MINUTE": "6000",
    "FASHION_RATE_LIMIT_BURST": "1000",
}
WORK_S = 180_000  # ms: one request's work on two busy cores


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
def server(left_over_job):
    store, _ = left_over_job
    with serving("services.gateway:Studio", {**SERVER_ENV, "FASHION_STORAGE_URL": str(store)}, store.parent / "server.log", timeout=300) as server:
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


def test_views_follow_the_gateways_openapi(page, server):
    paths = httpx.get(f"{server.url}/openapi.json", timeout=10).json()["paths"]
    tabs = page.locator("#tabs button").all_inner_texts()
    expected = ["Generate", "Catalog", "Gallery"] + (["Popularity"] if "/popularity" in paths else [])
    assert tabs == expected
    assert page.locator("#view-popularity").count() == ("/popularity" in paths)


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
