"""fashion-mini families side by side on larger held-out sets than `eval-mini`'s, each share with its 95%
interval: a retrained candidate against the shipped family before it lands.

`eval-mini` reads 200 examples per measure, which moves a 60% share about 7 points either way; a recipe change
worth a few points needs more. `fashion-studio models compare-mini A B --products 1000 --figures 600` draws,
for each family, the held-out products of seen and of unseen combinations through the catalog pipeline's
prompts (as `eval-mini` does) and the model shots of held-out figures' captions (as `eval-mini --shots-only`
does), at the service defaults, and reads them with each family's judge, clothes parser and figure judge.
Every family draws the same prompts with the same seeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fashion_studio.mini.data import HELDOUT, TRAIN, heldout_sets, split_seed, text_pairs, training_set

logger = logging.getLogger(__name__)

HEADS = (("type", "product_type"), ("colour", "colour"), ("pattern", "pattern"))  # (the row's word, the judge's field)


def _share(hits: int, n: int) -> dict[str, Any]:
    from fashion_studio.mini.report import interval

    low, high = interval(hits / n, n) if n else (None, None)
    return {"share": round(hits / n, 4) if n else None, "n": n, "interval_95": [round(low, 4), round(high, 4)] if n else None}


def _products(models_dir: Path, settings: Any, generator: Any, sets: dict[str, Any], seed: int) -> dict[str, Any]:
    from fashion_studio.mini.evaluate import generate_images
    from fashion_studio.mini.judge import Judge
    from fashion_studio.mini.text import catalog_prompts
    from fashion_studio.translation import Translator

    translator, judge = Translator.load(settings), Judge.load(models_dir / "judge")
    out = {}
    for split, data in sets.items():
        items = data.items
        english = translator.translate([i.german for i in items])
        prompts = [catalog_prompts(i.german, en)[0] for i, en in zip(items, english)]
        images = generate_images(generator, prompts, settings.default_steps, settings.default_guidance, seed * 100_000, settings.negative_prompt or None)
        verdicts = judge.classify(images)
        out[split] = {head: _share(sum(getattr(v, name) == getattr(i.spec, name) for v, i in zip(verdicts, items)), len(items)) for head, name in HEADS}
    return out


def _shots(models_dir: Path, settings: Any, generator: Any, figures: Any, prompts: Sequence[str], seed: int) -> dict[str, Any]:
    from fashion_studio.mini.evaluate import generate_images
    from fashion_studio.mini.figure_judge import FigureJudge
    from fashion_studio.mini.shots import read_outfits
    from fashion_studio.segmentation import Segmenter

    images = generate_images(
        generator, prompts, settings.default_steps, settings.default_guidance, split_seed(seed, HELDOUT) + 7, negative=settings.negative_prompt or None
    )
    read = read_outfits(Segmenter.load(models_dir / "segmenter"), FigureJudge.load(models_dir / "figure-judge"), images, figures.specs)
    out = {}
    for slot, reading in read.items():
        n = reading["garments"]
        out[slot] = {
            head: _share(round(reading[f"{name}_accuracy"] * n) if n else 0, n) for head, name in HEADS
        }  # shares of 4 decimals: exact counts below 5,000
    return out


def compare(families: Sequence[Path], work: Path, seed: int = 0, products: int = 1000, figures: int = 600, workers: int = 2) -> dict[str, Any]:
    """Each family's products (`products` per split) and model shots (`figures`) read right, with intervals."""
    from fashion_studio.generation import Generator
    from fashion_studio.mini.evaluate import EvalConfig, mini_settings
    from fashion_studio.mini.segmenter import figure_set
    from fashion_studio.mini.shots import can_evaluate, eval_prompts

    started = time.perf_counter()
    sizes = EvalConfig()  # the training set and translation pairs whose German texts are excluded, as eval-mini's
    train_german = {i.german for i in training_set(work, sizes.train_images, seed, render=False).items}
    train_german |= {de for de, _ in text_pairs(sizes.translation_pairs, seed, TRAIN)}
    sets = dict(zip(("seen", "unseen"), heldout_sets(work, products, seed, train_german, workers))) if products else {}
    shots = figure_set(work, figures, seed, HELDOUT, workers) if figures else None
    results: dict[str, Any] = {}
    for family in map(Path, families):
        logger.info("comparing %s", family)
        settings = mini_settings(family)
        generator = Generator.load(settings)
        results[str(family)] = {
            "products": _products(family, settings, generator, sets, seed) if sets else None,
            "model_shots": _shots(family, settings, generator, shots, eval_prompts(shots.specs), seed) if shots is not None and can_evaluate(family) else None,
        }
    return {
        "seed": seed,
        "products_per_split": products,
        "figures": figures,
        "held_out": "products of seen and of unseen combinations with no German description a model trained on; figures each wearing a held-out combination",
        "families": results,
        "seconds": round(time.perf_counter() - started, 1),
    }


def table(result: dict[str, Any]) -> str:
    """A markdown table: one row per measure, one column per family, each share with its 95% interval."""
    families = list(result["families"])
    rows: list[tuple[str, list[dict[str, Any] | None]]] = []
    for split in ("seen", "unseen"):
        for head, _ in HEADS:
            rows.append((f"products ({split}), {head}", [(r["products"] or {}).get(split, {}).get(head) for r in result["families"].values()]))
    for slot in ("top", "bottom"):
        for head, _ in HEADS:
            rows.append((f"model shots, {slot} {head}", [(r["model_shots"] or {}).get(slot, {}).get(head) for r in result["families"].values()]))

    def cell(value: dict[str, Any] | None) -> str:
        if not value or value["share"] is None:
            return "-"
        low, high = value["interval_95"]
        return f"{100 * value['share']:.1f}% ({100 * low:.1f}-{100 * high:.1f}, n={value['n']})"

    lines = ["| measure | " + " | ".join(families) + " |", "|---" * (len(families) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cell(v) for v in values) + " |" for name, values in rows if any(values)]
    return "\n".join(lines)
