"""Screenshots of the page's views for the README: `make ui-screenshots` -> docs/images/ui-*.png.

Serves the deployment on the shipped fashion-mini models with a storage of its own and a demo shop's
product index, drives the page in Debian's Chromium like a user (a prompt, a German description, a
spreadsheet upload, an edit in words, a click on a garment for its masks, a search for similar products,
a conversation) and photographs each view once its work is done. Nothing is staged: every image is
drawn by the models, every product shot is the demo shop's own.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path
from typing import Any

from tests.helpers import ROOT, serving

logger = logging.getLogger(__name__)

CHROMIUM = Path("/usr/bin/chromium")
# Nothing fetched in the background (updates, sync, safe browsing): every request is the page's own.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
# Fewer denoising steps than the service default: the screenshots show the page, not the model's best.
SERVER_ENV = {"FASHION_DEFAULT_STEPS": "8", "FASHION_EDIT_STEPS": "10", "FASHION_MAX_ATTEMPTS": "2"}
SHOP = 120  # demo articles in the product index behind Similar products and the conversation
SHEET = (
    "article_id,description\n"
    "S-101,Rotes Damenkleid aus Baumwolle mit Punkten.\n"
    "S-102,Gestreiftes Herren-Hemd in Blau.\n"
    "S-103,Gelbe Sneaker für Kinder aus Canvas.\n"
    "S-104,Schwarze Handtasche für Damen.\n"
)


def launch(playwright: Any) -> Any:
    """Debian's Chromium (never a downloaded browser build)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def open_page(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1200, "height": 860}, bypass_csp=True)  # for wait_for_function
    page.goto(f"{url}/ui/")
    page.wait_for_selector("body[data-ready=true]")
    return page


def build_index(work: Path) -> Path:
    """A demo shop rendered and indexed by the scorer's CLIP under `work`; the index folder."""
    from fashion_studio.index import ProductIndex
    from fashion_studio.index.demo import render_demo_catalog
    from fashion_studio.scoring import Scorer
    from fashion_studio.settings import Settings

    shop = render_demo_catalog(SHOP, work / "shop", seed=5, workers=1)
    settings = Settings(torch_threads=1)
    index = ProductIndex.open(settings, str(work / "index"), embedder=Scorer.load(settings), create=True)
    index.build(shop)
    index.close()
    return work / "index"


def images_loaded(page: Any, selector: str, timeout: float = 300_000) -> None:
    """Every image under `selector` (at least one) fetched and decoded."""
    page.wait_for_function(
        f"(() => {{ const images = [...document.querySelectorAll({selector!r})];"
        " return images.length > 0 && images.every(i => i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0); })()",
        timeout=timeout,
    )


def shoot(url: str, out: Path, work: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, url)

        page.fill("#generate-form [name=prompt]", "a red dress with dots")
        page.fill("#generate-form [name=num_images]", "4")
        page.fill("#generate-form [name=seed]", "3")
        page.click("#generate-form button[type=submit]")
        page.wait_for_function("document.querySelectorAll('#generate-results img[src^=blob]').length == 4", timeout=300_000)
        shots.append(out / "ui-generate.png")
        page.screenshot(path=shots[-1], full_page=True)

        page.click("#tabs button[data-view=catalog]")
        page.fill("#catalog-form [name=article_id]", "A-1001")
        page.fill("#catalog-form [name=description]", "Gestreiftes Damen-Sommerkleid in Rot aus Viskose. Bequeme Passform.")
        page.click("#catalog-form button[type=submit]")
        page.wait_for_selector("#catalog-result img[src^=blob]", timeout=300_000)
        sheet = work / "articles.csv"
        sheet.write_text(SHEET, encoding="utf-8")
        page.set_input_files("#job-form [name=file]", str(sheet))
        page.click("#job-form button[type=submit]")
        page.wait_for_selector("#job-progress[data-status=done]", timeout=600_000)
        page.wait_for_function("[...document.querySelectorAll('#job-rows img')].every(i => i.src.startsWith('blob:'))")
        shots.append(out / "ui-catalog.png")
        page.screenshot(path=shots[-1], full_page=True)

        page.click("#tabs button[data-view=gallery]")
        page.wait_for_function(
            "document.querySelectorAll('#gallery-items img').length > 0 && "
            "[...document.querySelectorAll('#gallery-items img')].every(i => i.complete && i.src.startsWith('blob:'))"
        )
        shots.append(out / "ui-gallery.png")
        page.screenshot(path=shots[-1], full_page=True)

        if page.query_selector("#tabs button[data-view=popularity]"):
            page.click("#tabs button[data-view=popularity]")
            generated = page.eval_on_selector("#gallery-items figure[data-image-id^=gen-]", "f => f.dataset.imageId")
            page.fill("#popularity-form [name=image_id]", generated)
            page.click("#popularity-form button[type=submit]")
            page.wait_for_selector("#popularity-result p, #popularity-form .error:not([hidden])", timeout=120_000)
            shots.append(out / "ui-popularity.png")
            page.screenshot(path=shots[-1], full_page=True)

        if page.query_selector("#tabs button[data-view=edit]"):
            page.click("#tabs button[data-view=gallery]")
            page.click("#gallery-items figure[data-image-id^=gen-] button[data-use=edit]")
            page.fill("#edit-form [name=instruction]", "make it navy")
            page.fill("#edit-form [name=seed]", "7")
            page.click("#edit-form button[type=submit]")
            page.wait_for_selector("#edit-output figure, #edit-form .error:not([hidden])", timeout=300_000)
            images_loaded(page, "#edit-result img")
            shots.append(out / "ui-edit.png")
            page.screenshot(path=shots[-1], full_page=True)

        if page.query_selector("#tabs button[data-view=segment]"):
            page.click("#tabs button[data-view=gallery]")
            page.click("#gallery-items figure[data-image-id^=gen-] button[data-use=segment]")
            images_loaded(page, "#segment-stage img")
            stage = page.locator("#segment-stage svg.markers")
            box = stage.bounding_box()
            stage.click(position={"x": box["width"] / 2, "y": box["height"] / 2})  # one click: three candidate masks
            page.click("#segment-form button[type=submit]")
            page.wait_for_selector("#segment-stage canvas.mask, #segment-form .error:not([hidden])", timeout=120_000)
            shots.append(out / "ui-segment.png")
            page.screenshot(path=shots[-1], full_page=True)

        if page.query_selector("#tabs button[data-view=recommend]"):
            page.click("#tabs button[data-view=recommend]")
            page.fill("#recommend-form [name=text]", "a blue striped shirt")
            page.fill("#recommend-form [name=k]", "10")
            page.click("#recommend-form button[type=submit]")
            page.wait_for_selector("#recommend-results figure, #recommend-form .error:not([hidden])", timeout=120_000)
            images_loaded(page, "#recommend-results img")
            shots.append(out / "ui-recommend.png")
            page.screenshot(path=shots[-1], full_page=True)

        if page.query_selector("#tabs button[data-view=conversation]"):
            page.click("#tabs button[data-view=conversation]")
            for seq, (message, seed) in enumerate((("a red summer dress", "11"), ("make it blue", "12")), start=1):
                page.fill("#message-form [name=message]", message)
                page.fill("#message-form [name=seed]", seed)
                page.click("#message-form button[type=submit]")
                page.wait_for_selector(f"#conversation-turns li[data-seq='{seq}'], #message-form .error:not([hidden])", timeout=300_000)
            images_loaded(page, "#conversation-turns img")
            shots.append(out / "ui-conversation.png")
            page.screenshot(path=shots[-1], full_page=True)
        browser.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not every readiness poll
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        env = {**SERVER_ENV, "FASHION_STORAGE_URL": str(work / "store"), "FASHION_INDEX_URL": str(build_index(work))}
        with serving("services.gateway:Studio", env, work / "server.log", timeout=600) as server:
            for path in shoot(server.url, args.out, work):
                logger.info("wrote %s", path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
