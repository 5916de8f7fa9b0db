"""`fashion-studio demo tryon`: try-on as pictures, drawn by the real service.

Held-out figures (each wears a held-out combination), three clicks inside the garment to replace, and a
product shot of a held-out combination: `POST /tryon` with the clicks answers the mask the segmenter made
from them and the person wearing the garment. One row per example: person with the clicks, mask, garment,
result.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer
from PIL import Image, ImageDraw

from fashion_studio.sessions.demo import demo_app, served
from fashion_studio.settings import PROJECT_ROOT

DEFAULT_OUT = PROJECT_ROOT / "docs" / "images" / "tryon.png"
COLUMNS = ("person and clicks", "mask (from the clicks)", "garment", "try-on")
SCALE = 3


def _b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _image(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")


def try_on(url: str, rows: int, seed: int = 0, timeout_s: float = 600) -> list[dict[str, Any]]:
    """`rows` held-out try-ons through `url`'s `/tryon`, the mask from three clicks."""
    import httpx

    from fashion_studio.mini.data import HELDOUT
    from fashion_studio.mini.figures import render_figure
    from fashion_studio.mini.inpainter import make_examples
    from fashion_studio.mini.render import render
    from fashion_studio.mini.segmenter import sample_points

    rng = np.random.default_rng(seed)
    done = []
    for example in make_examples(rows, seed, HELDOUT):
        person = render_figure(example.person)
        garment = render(example.garment)
        points = sample_points(person.masks[example.category], 3, rng).tolist()
        reply = httpx.post(f"{url}/tryon", json={"person": _b64(person.image), "garment": _b64(garment), "points": points, "seed": seed}, timeout=timeout_s)
        if reply.status_code != 200:
            raise RuntimeError(f"/tryon answered {reply.status_code}: {reply.text}")
        body = reply.json()
        done.append(
            {
                "person": person.image,
                "points": points,
                "mask": _image(body["mask"]),
                "garment": garment,
                "result": Image.open(body["url"]).convert("RGB") if Path(body["url"]).is_file() else _image_from(url, body["url"]),
                "garment_name": f"{example.garment.colour} {example.garment.pattern} {example.garment.product_type}",
                "id": body["id"],
            }
        )
    return done


def _image_from(url: str, location: str) -> Image.Image:
    import httpx

    return Image.open(io.BytesIO(httpx.get(location if "://" in location else f"{url}{location}", timeout=60).content)).convert("RGB")


def render_sheet(rows: list[dict[str, Any]], out: Path) -> Path:
    cell, pad, head = 64 * SCALE, 8, 22
    sheet = Image.new("RGB", (len(COLUMNS) * (cell + pad) + pad, head + len(rows) * (cell + pad + 14) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(COLUMNS):
        draw.text((pad + c * (cell + pad), 6), title, fill="black")
    for r, row in enumerate(rows):
        y = head + r * (cell + pad + 14)
        person = row["person"].resize((cell, cell), Image.Resampling.NEAREST)
        marks = ImageDraw.Draw(person)
        for x, py in row["points"]:
            cx, cy = (x + 0.5) * SCALE, (py + 0.5) * SCALE
            marks.ellipse((cx - 5, cy - 5, cx + 5, cy + 5), outline=(255, 0, 255), width=2)
        for c, picture in enumerate((person, row["mask"], row["garment"], row["result"])):
            sheet.paste(picture.resize((cell, cell), Image.Resampling.NEAREST), (pad + c * (cell + pad), y))
        draw.text((pad + 2 * (cell + pad), y + cell + 1), row["garment_name"], fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


@demo_app.command("tryon")
def tryon_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = DEFAULT_OUT,
    url: Annotated[Optional[str], typer.Option("--url", help="A running deployment; default: serve one on the fashion-mini models.")] = None,
    rows: Annotated[int, typer.Option(help="Examples, one per row.")] = 4,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Try garments on held-out figures through `/tryon` (masks from three clicks) and draw the sheet."""
    if url is None:
        with (
            tempfile.TemporaryDirectory(prefix="tryon-demo-") as folder,
            served({"FASHION_STORAGE_URL": f"{folder}/store"}, Path(folder) / "server.log") as served_url,
        ):
            done = try_on(served_url, rows, seed)
            path = render_sheet(done, out)
    else:
        done = try_on(url.rstrip("/"), rows, seed)
        path = render_sheet(done, out)
    typer.echo(json.dumps({"wrote": str(path), "rows": [{"garment": d["garment_name"], "clicks": d["points"], "id": d["id"]} for d in done]}, indent=2))
