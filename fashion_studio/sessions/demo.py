"""`fashion-studio demo conversation`: the README's picture of conversations, drawn by the real service.

Each example is a short conversation held over HTTP with the deployment (one this command serves on
the shipped fashion-mini models with storage and a demo shop of its own, or a running one given by
`--url`): a description, then a change in words. The sheet shows, per example, the image the
description drew and the five products recommended for it, then the edited image and the five
products recommended for that. Nothing is staged: every image comes from the models, every product
from the shop's index.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from PIL import Image, ImageDraw

from fashion_studio.ports import free_port
from fashion_studio.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

demo_app = typer.Typer(no_args_is_help=True, help="Pictures of the features, drawn by the real service.")

DEFAULT_OUT = PROJECT_ROOT / "docs" / "images" / "conversation.png"


@dataclass(frozen=True)
class Example:
    messages: tuple[str, ...]  # a description, then changes
    seed: int


EXAMPLES: tuple[Example, ...] = (
    Example(("a red summer dress", "make it blue"), seed=3),
    Example(("a yellow t-shirt", "add stripes"), seed=5),
    Example(("ein schwarzer Rock", "mach es rot"), seed=7),  # German, through the translator
)
CELL = 128
PAD = 8
CAPTION = 44
LABEL_W = 190


@dataclass
class Step:
    message: str
    turn: dict[str, Any]
    image: Image.Image | None
    products: list[tuple[dict[str, Any], Image.Image | None]]


def converse(url: str, examples: Sequence[Example], products_dir: Path | None, timeout_s: float = 600) -> list[list[Step]]:
    """Hold each example's conversation with the service at `url`; every turn's images and products."""
    import httpx

    conversations = []
    with httpx.Client(base_url=url, timeout=timeout_s) as client:
        for example in examples:
            session = _ok(client.post("/sessions"))["id"]
            steps = []
            for message in example.messages:
                turn = _ok(client.post(f"/sessions/{session}/messages", json={"message": message, "seed": example.seed}))
                logger.info("%s: %s -> %s %s", session[:8], message, turn["action"], turn.get("text"))
                image = _png(_bytes(client.get(turn["images"][0]["url"]))) if turn["images"] else None
                products = [(p, _product_image(client, p, products_dir)) for p in turn["recommendations"]]
                steps.append(Step(message, turn, image, products))
            conversations.append(steps)
    return conversations


def _ok(response: Any) -> dict[str, Any]:
    if response.status_code >= 400:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text[:500]}")
    return response.json()


def _bytes(response: Any) -> bytes:
    if response.status_code >= 400:
        raise RuntimeError(f"GET {response.request.url.path}: {response.status_code} {response.text[:300]}")
    return response.content


def _png(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def _product_image(client: Any, product: dict[str, Any], products_dir: Path | None) -> Image.Image | None:
    """A recommended product's shot: by the URL the answer gives, else from the shop folder."""
    for key in ("image_url", "url"):
        ref = product.get(key)
        if isinstance(ref, str) and ref.startswith("/"):
            response = client.get(ref)
            if response.status_code == 200:
                return _png(response.content)
    ref = product.get("image") or (product.get("metadata") or {}).get("image")
    if isinstance(ref, str) and products_dir is not None and (products_dir / ref).is_file():
        return Image.open(products_dir / ref).convert("RGB")
    return None


def render_sheet(conversations: Sequence[Sequence[Step]], out: Path) -> Path:
    """One block per conversation: a row per turn with an image, its image then its five products."""
    rows = [step for steps in conversations for step in steps]
    columns = 1 + max((len(s.products) for s in rows), default=0)
    width = LABEL_W + columns * (CELL + PAD) + PAD
    block_gap = 14
    height = PAD + len(rows) * (CELL + CAPTION + PAD) + block_gap * max(0, len(conversations) - 1)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    y = PAD
    for index, steps in enumerate(conversations):
        if index:
            draw.line([(PAD, y + block_gap // 2 - PAD // 2), (width - PAD, y + block_gap // 2 - PAD // 2)], fill=(210, 210, 210))
            y += block_gap
        for step in steps:
            turn = step.turn
            lines = [f'"{step.message}"', f"{turn['action']} ({turn['language']})"]
            if turn.get("text") and turn["text"] != step.message:
                lines.append(f"-> {turn['text']}")
            _text(draw, (PAD, y + 4), lines, LABEL_W - 2 * PAD)
            x = LABEL_W
            if step.image is not None:
                sheet.paste(step.image.resize((CELL, CELL), Image.Resampling.NEAREST), (x, y))
                score = turn["images"][0].get("clip_score")
                draw.text((x, y + CELL + 3), "drawn" if turn["action"] == "generate" else "edited", fill=(40, 40, 40))
                if score is not None:
                    draw.text((x, y + CELL + 15), f"CLIP {score:.1f}", fill=(110, 110, 110))
            x += CELL + PAD
            for product, image in step.products:
                if image is not None:
                    sheet.paste(image.resize((CELL, CELL), Image.Resampling.LANCZOS), (x, y))
                else:
                    draw.rectangle([x, y, x + CELL - 1, y + CELL - 1], outline=(200, 200, 200))
                name = str(product.get("name") or product.get("product_id") or "")
                bottom = _text(draw, (x, y + CELL + 3), [name], CELL, max_lines=2)
                score = product.get("score")
                if isinstance(score, (int, float)):
                    draw.text((x, bottom), f"similarity {score:.3f}", fill=(110, 110, 110))
                x += CELL + PAD
            y += CELL + CAPTION + PAD
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)  # a small file for the repository
    return out


def _text(draw: ImageDraw.ImageDraw, at: tuple[int, int], lines: list[str], width: int, max_lines: int = 8) -> int:
    """Lines wrapped at word boundaries to `width` pixels of the default font, at most `max_lines`
    of them; returns the y below the last."""
    x, y = at
    wrapped: list[str] = []
    for line in lines:
        current = ""
        for word in line.split():
            candidate = f"{current} {word}".strip()
            if current and draw.textlength(candidate) > width:
                wrapped.append(current)
                current = word
            else:
                current = candidate
        if current:
            wrapped.append(current)
    for line in wrapped[:max_lines]:
        draw.text((x, y), line, fill=(40, 40, 40))
        y += 12
    return y


# --- serving the deployment for the demo ---------------------------------------------------------------


@contextmanager
def served(env: dict[str, str], log: Path, timeout_s: float = 600) -> Iterator[str]:
    """`bentoml serve services.gateway:Studio` on a free loopback port, waited on until ready, and
    stopped (its whole process group) at the end."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "services.gateway:Studio", "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "BENTOML_DO_NOT_TRACK": "True", "BENTOML_HOME": str(log.parent / "bentoml-home"), **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited with {process.returncode}: {log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the service was not ready within {timeout_s:.0f} s (log: {log})")
            time.sleep(0.5)
        yield url
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def build_shop(work: Path, products: Path | None, count: int = 300) -> tuple[Path, Path]:
    """The shop to recommend from (`products`, or a rendered demo shop) and its index, embedded with
    the scorer's CLIP as `fashion-studio index build` does."""
    from fashion_studio.index import ProductIndex
    from fashion_studio.index.demo import render_demo_catalog
    from fashion_studio.products import load_catalog
    from fashion_studio.scoring import Scorer
    from fashion_studio.settings import Settings

    catalog = load_catalog(products) if products is not None else render_demo_catalog(count, work / "shop", seed=0)
    settings = Settings()
    index = work / "index"
    ProductIndex.open(settings, str(index), embedder=Scorer.load(settings), create=True).build(catalog)
    return catalog.root, index


@demo_app.command("conversation")
def conversation_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = DEFAULT_OUT,
    url: Annotated[Optional[str], typer.Option("--url", help="A running deployment to talk to; default: serve one on the fashion-mini models.")] = None,
    products: Annotated[
        Optional[Path], typer.Option("--products", help="The shop (a catalog folder), indexed for the demo; default: a demo shop of 300 rendered articles.")
    ] = None,
    steps: Annotated[int, typer.Option(help="Denoising steps of generations and edits (served here).")] = 20,
) -> None:
    """Hold a few conversations (describe, change, see products) and draw them into one sheet."""
    with tempfile.TemporaryDirectory(prefix="conversation-demo-") as folder:
        work = Path(folder)
        shop = products
        if url is None:
            shop, index = build_shop(work, products)
            env = {
                "FASHION_STORAGE_URL": str(work / "store"),
                "FASHION_PRODUCTS_DIR": str(shop),
                "FASHION_INDEX_URL": str(index),
                "FASHION_DEFAULT_STEPS": str(steps),
                "FASHION_EDIT_STEPS": str(steps),
            }
            with served(env, work / "server.log") as served_url:
                conversations = converse(served_url, EXAMPLES, shop)
        else:
            conversations = converse(url.rstrip("/"), EXAMPLES, shop)
    path = render_sheet(conversations, out)
    summary = [
        {
            "messages": [s.message for s in steps],
            "actions": [s.turn["action"] for s in steps],
            "recommended": [[p.get("product_id") or p.get("id") for p, _ in s.products] for s in steps],
        }
        for steps in conversations
    ]
    typer.echo(json.dumps({"wrote": str(path), "conversations": summary}, indent=2))
