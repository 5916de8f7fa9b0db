"""Screenshots of the page's views for the README: `make ui-screenshots` -> docs/images/ui-*.png.

Serves the deployment on the shipped fashion-mini models with a storage of its own and a demo shop's
product index, drives the page in Debian's Chromium like a user (a prompt, a German description, a
spreadsheet upload, an edit in words, a click on a garment for its masks, three clicks on a person's top
and a garment shot for a try-on, a search for similar products, a conversation) and photographs each
view once its work is done. Nothing is staged: every image is drawn by the models, every product shot is
the demo shop's own, the try-on's person and garment are held-out renders of the fashion-mini data.
`--views tryon segment` photographs only those views (and does only the work they need).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from tests.helpers import ROOT, serving

logger = logging.getLogger(__name__)

CHROMIUM = Path("/usr/bin/chromium")
# Nothing fetched in the background (updates, sync, safe browsing): every request is the page's own.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
# Fewer denoising steps than the service default: the screenshots show the page, not the model's best.
SERVER_ENV = {"FASHION_DEFAULT_STEPS": "8", "FASHION_EDIT_STEPS": "10", "FASHION_MAX_ATTEMPTS": "2"}
SHOP = 120  # demo articles in the product index behind Similar products and the conversation
VIEWS = ("generate", "model-shot", "catalog", "gallery", "popularity", "edit", "segment", "tryon", "recommend", "conversation")
# The views that start from an image generated first (taken from the gallery).
FROM_GENERATED = {"generate", "gallery", "popularity", "edit", "segment"}
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


def tryon_example(work: Path) -> tuple[Path, Path, list[list[float]]]:
    """A held-out person and a held-out garment shot for its upper garment, saved under `work`, and three
    points inside that garment (pixel centres)."""
    from PIL import Image

    from fashion_studio.mini.data import HELDOUT
    from fashion_studio.mini.inpainter import example_set
    from fashion_studio.mini.segmenter import sample_points

    data = example_set(work / "tryon", 8, 0, HELDOUT, workers=1)
    i = next(k for k, e in enumerate(data.examples) if e.category == "upper")
    Image.fromarray(data.persons[i]).save(work / "person.png")
    Image.fromarray(data.garments[i]).save(work / "garment.png")
    return work / "person.png", work / "garment.png", sample_points(data.masks[i], 3, np.random.default_rng(4)).tolist()


def shoot(url: str, out: Path, work: Path, views: Collection[str] = VIEWS) -> list[Path]:
    from playwright.sync_api import sync_playwright

    views = set(views)
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, url)

        def snap(view: str) -> None:
            shots.append(out / f"ui-{view}.png")
            page.screenshot(path=shots[-1], full_page=True)

        if views & FROM_GENERATED:
            page.fill("#generate-form [name=prompt]", "a red dress with dots")
            page.fill("#generate-form [name=num_images]", "4")
            page.fill("#generate-form [name=seed]", "3")
            page.click("#generate-form button[type=submit]")
            page.wait_for_function("document.querySelectorAll('#generate-results img[src^=blob]').length == 4", timeout=300_000)
            if "generate" in views:
                snap("generate")

        if "model-shot" in views:
            page.click("#tabs button[data-view=model-shot]")
            page.fill("#model-shot-form [name=top]", "rotes gestreiftes T-Shirt")
            page.fill("#model-shot-form [name=bottom]", "Marineblaue Hose")
            page.fill("#model-shot-form [name=num_images]", "4")
            page.fill("#model-shot-form [name=seed]", "3")
            page.click("#model-shot-form button[type=submit]")
            page.wait_for_function("document.querySelectorAll('#model-shot-results img[src^=blob]').length == 4", timeout=300_000)
            snap("model-shot")

        if "catalog" in views:
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
            snap("catalog")

        if views & FROM_GENERATED - {"generate"}:
            page.click("#tabs button[data-view=gallery]")
            page.wait_for_function(
                "document.querySelectorAll('#gallery-items img').length > 0 && "
                "[...document.querySelectorAll('#gallery-items img')].every(i => i.complete && i.src.startsWith('blob:'))"
            )
            if "gallery" in views:
                snap("gallery")

        if "popularity" in views and page.query_selector("#tabs button[data-view=popularity]"):
            page.click("#tabs button[data-view=popularity]")
            generated = page.eval_on_selector("#gallery-items figure[data-image-id^=gen-]", "f => f.dataset.imageId")
            page.fill("#popularity-form [name=image_id]", generated)
            page.click("#popularity-form button[type=submit]")
            page.wait_for_selector("#popularity-result p, #popularity-form .error:not([hidden])", timeout=120_000)
            snap("popularity")

        if "edit" in views and page.query_selector("#tabs button[data-view=edit]"):
            page.click("#tabs button[data-view=gallery]")
            page.click("#gallery-items figure[data-image-id^=gen-] button[data-use=edit]")
            page.fill("#edit-form [name=instruction]", "make it navy")
            page.fill("#edit-form [name=seed]", "7")
            page.click("#edit-form button[type=submit]")
            page.wait_for_selector("#edit-output figure, #edit-form .error:not([hidden])", timeout=300_000)
            images_loaded(page, "#edit-result img")
            snap("edit")

        if "segment" in views and page.query_selector("#tabs button[data-view=segment]"):
            page.click("#tabs button[data-view=gallery]")
            page.click("#gallery-items figure[data-image-id^=gen-] button[data-use=segment]")
            images_loaded(page, "#segment-stage img")
            stage = page.locator("#segment-stage svg.markers")
            box = stage.bounding_box()
            stage.click(position={"x": box["width"] / 2, "y": box["height"] / 2})  # one click: three candidate masks
            page.click("#segment-form button[type=submit]")
            page.wait_for_selector("#segment-stage canvas.mask, #segment-form .error:not([hidden])", timeout=120_000)
            snap("segment")

        if "tryon" in views and page.query_selector("#tabs button[data-view=tryon]"):
            person, garment, points = tryon_example(work)
            page.click("#tabs button[data-view=tryon]")
            page.set_input_files("#tryon-form [name=file]", str(person))
            page.set_input_files("#tryon-form [name=garment_file]", str(garment))
            images_loaded(page, "#tryon-stage img")
            stage = page.locator("#tryon-stage svg.markers")
            scale = stage.bounding_box()["width"] / 64  # the held-out renders are 64 px
            for x, y in points:  # three clicks on the person's top
                stage.click(position={"x": x * scale, "y": y * scale})
            page.fill("#tryon-form [name=seed]", "1")
            page.click("#tryon-form button[type=submit]")
            page.wait_for_selector("#tryon-results figure.result-card, #tryon-form .error:not([hidden])", timeout=300_000)
            images_loaded(page, "#tryon-results img")
            snap("tryon")

        if "recommend" in views and page.query_selector("#tabs button[data-view=recommend]"):
            page.click("#tabs button[data-view=recommend]")
            page.fill("#recommend-form [name=text]", "a blue striped shirt")
            page.fill("#recommend-form [name=k]", "10")
            page.click("#recommend-form button[type=submit]")
            page.wait_for_selector("#recommend-results figure, #recommend-form .error:not([hidden])", timeout=120_000)
            images_loaded(page, "#recommend-results img")
            snap("recommend")

        if "conversation" in views and page.query_selector("#tabs button[data-view=conversation]"):
            page.click("#tabs button[data-view=conversation]")
            for seq, (message, seed) in enumerate((("a red summer dress", "11"), ("make it blue", "12")), start=1):
                page.fill("#message-form [name=message]", message)
                page.fill("#message-form [name=seed]", seed)
                page.click("#message-form button[type=submit]")
                page.wait_for_selector(f"#conversation-turns li[data-seq='{seq}'], #message-form .error:not([hidden])", timeout=300_000)
            images_loaded(page, "#conversation-turns img")
            snap("conversation")
        browser.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--views", nargs="+", choices=VIEWS, default=list(VIEWS), help="photograph only these views (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not every readiness poll
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        env = {**SERVER_ENV, "FASHION_STORAGE_URL": str(work / "store")}
        if {"recommend", "conversation"} & set(args.views):  # the views that search the demo shop
            env["FASHION_INDEX_URL"] = str(build_index(work))
        with serving("services.gateway:Studio", env, work / "server.log", timeout=600) as server:
            for path in shoot(server.url, args.out, work, args.views):
                logger.info("wrote %s", path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
