"""A labelled grid of generated products (one row per product type), for the docs and a quick look; a
framed cell is a (type, colour, pattern) combination held out of training (`split.py`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fashion_studio.attributes import Attributes
from fashion_studio.mini.split import held_out_combinations
from fashion_studio.mini.vocab import PATTERNS, TYPE_NAMES
from fashion_studio.prompts import build_prompts
from fashion_studio.settings import DEFAULT_CLIP_TEMPLATE, DEFAULT_GENERATION_TEMPLATE, Settings

# Columns: (colour, pattern).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("red", "plain"),
    ("blue", "stripes"),
    ("green", "dots"),
    ("yellow", "checks"),
    ("black", "plain"),
    ("white", "stripes"),
    ("pink", "plain"),
    ("navy", "dots"),
    ("orange", "plain"),
    ("purple", "checks"),
    ("brown", "plain"),
    ("grey", "stripes"),
)


def grid_prompt(product_type: str, colour: str, pattern: str) -> str:
    """The catalog pipeline's generation prompt for these attributes."""
    attributes = Attributes(product_type=product_type, colors=[colour], patterns=[] if pattern == "plain" else [pattern])
    return build_prompts(attributes, DEFAULT_GENERATION_TEMPLATE, DEFAULT_CLIP_TEMPLATE).generation


UNSEEN_FRAME = (230, 120, 0)


def render_grid(settings: Settings, out: Path, steps: int, guidance: float, seed: int = 0, zoom: int = 2, family_seed: int = 0) -> Path:
    from fashion_studio.generation import GenerationRequest, Generator

    assert all(p in PATTERNS for _, p in COLUMNS)
    held = set(held_out_combinations(family_seed))
    generator = Generator.load(settings)
    cell = 64 * zoom
    label_w, label_h, pad = 78, 30, 4
    width = label_w + len(COLUMNS) * (cell + pad)
    height = label_h + len(TYPE_NAMES) * (cell + pad)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 3), "framed:", fill=UNSEEN_FRAME)
    draw.text((4, 15), "unseen", fill=UNSEEN_FRAME)
    for j, (colour, pattern) in enumerate(COLUMNS):
        x = label_w + j * (cell + pad)
        draw.text((x + 2, 3), colour, fill=(40, 40, 40))
        draw.text((x + 2, 15), "" if pattern == "plain" else pattern, fill=(110, 110, 110))
    for i, product_type in enumerate(TYPE_NAMES):
        y = label_h + i * (cell + pad)
        draw.text((4, y + cell // 2 - 6), product_type, fill=(40, 40, 40))
        requests = [
            GenerationRequest(
                prompt=grid_prompt(product_type, colour, pattern),
                negative_prompt=settings.negative_prompt or None,
                seed=seed + 100 * i + j,
                steps=steps,
                guidance=guidance,
            )
            for j, (colour, pattern) in enumerate(COLUMNS)
        ]
        for j, result in enumerate(generator.generate(requests)):
            image = result.images[0].resize((cell, cell), Image.Resampling.NEAREST)
            x = label_w + j * (cell + pad)
            sheet.paste(image, (x, y))
            if (product_type, *COLUMNS[j]) in held:
                draw.rectangle((x - 2, y - 2, x + cell + 1, y + cell + 1), outline=UNSEEN_FRAME, width=2)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)  # a small file for the repository
    return out


def renders_grid(out: Path, seed: int = 0, zoom: int = 2) -> Path:
    """The same grid drawn by the renderer (the training data), for comparison."""
    from fashion_studio.mini.render import Spec, random_variation, render

    rng = np.random.default_rng(seed)
    cell = 64 * zoom
    rows = []
    for product_type in TYPE_NAMES:
        rows.append(
            np.concatenate(
                [np.asarray(render(Spec(product_type, c, p, **random_variation(rng))).resize((cell, cell), Image.Resampling.NEAREST)) for c, p in COLUMNS],
                axis=1,
            )
        )
    Image.fromarray(np.concatenate(rows, axis=0)).save(out)
    return out


# Model shots: German and English outfit descriptions as a designer types them (no umlauts: the default
# font has none). The first three are seen in training; in each of the last three one garment is a
# held-out (type, colour, pattern) combination that no training figure wears (labelled "unseen").
SHOT_OUTFITS: tuple[tuple[str, str, str | None], ...] = (
    ("woman", "rotes gestreiftes T-Shirt", "Marineblaue Hose"),
    ("man", "a white shirt", "green shorts"),
    ("woman", "gelbes Kleid mit Punkten", None),
    ("man", "schwarze Jacke", "green trousers"),
    ("woman", "blaues Hemd", "gelber Rock"),
    ("woman", "orange dress with stripes", None),
)


def model_shots_sheet(
    settings: Settings, out: Path, steps: int, guidance: float, seed: int = 0, zoom: int = 2, per_outfit: int = 3, family_seed: int = 0
) -> Path:
    """Model shots of `SHOT_OUTFITS` through `fashion_studio.model_shots` (the service's prompts), a few
    seeds each, one row per outfit with its descriptions and prompt beside it."""
    from fashion_studio.generation import GenerationRequest, Generator
    from fashion_studio.model_shots import Outfit

    held = set(held_out_combinations(family_seed))
    generator = Generator.load(settings)
    cell = 64 * zoom
    label_w, pad = 330, 4
    sheet = Image.new("RGB", (label_w + per_outfit * (cell + pad), len(SHOT_OUTFITS) * (cell + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (body, top, bottom) in enumerate(SHOT_OUTFITS):
        outfit = Outfit.from_descriptions(body, top, bottom)
        y = i * (cell + pad)
        draw.text((4, y + cell // 2 - 22), f"top: {top}", fill=(40, 40, 40))
        draw.text((4, y + cell // 2 - 8), f"bottom: {bottom or '-'}", fill=(40, 40, 40))
        draw.text((4, y + cell // 2 + 8), outfit.prompt(), fill=(110, 110, 110))
        if any((g.product_type, g.colour, g.pattern or "plain") in held for g in outfit.garments):
            draw.text((4, y + cell // 2 + 24), "unseen combination", fill=UNSEEN_FRAME)
        requests = [
            GenerationRequest(
                prompt=outfit.prompt(), negative_prompt=settings.model_shot_negative_prompt or None, seed=seed + 10 * i + j, steps=steps, guidance=guidance
            )
            for j in range(per_outfit)
        ]
        for j, result in enumerate(generator.generate(requests)):
            sheet.paste(result.images[0].resize((cell, cell), Image.Resampling.NEAREST), (label_w + j * (cell + pad), y))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    return out
