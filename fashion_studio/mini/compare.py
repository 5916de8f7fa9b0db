"""fashion-mini families side by side on larger held-out sets than `eval-mini`'s, each share with its 95%
interval: a retrained candidate against the shipped family before it lands.

`eval-mini` reads 200 examples per measure, which moves a 60% share about 7 points either way; a recipe change
worth a few points needs more. `fashion-studio models compare-mini A B --products 1000 --figures 600` draws,
for each family, the held-out products of seen and of unseen combinations through the catalog pipeline's
prompts (as `eval-mini` does) and the model shots of held-out figures' captions (as `eval-mini --shots-only`
does), at the service defaults, and reads them with each family's judge, clothes parser and figure judge;
`--tryon 600` also dresses held-out figures in held-out garments through each family's inpainter (as
`eval-mini --inpainter-only` does) and reads the garment inside the mask. Every family draws the same
prompts and examples with the same seeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fashion_studio.mini.data import HELDOUT, heldout_sets, trained_german, training_set

logger = logging.getLogger(__name__)

HEADS = ("type", "colour", "pattern")
JUDGE_FIELDS = {"type": "product_type", "colour": "colour", "pattern": "pattern"}  # the names read_outfits and read_examples give


def _share(share: float | None, n: int) -> dict[str, Any]:
    from fashion_studio.mini.report import interval

    if share is None or n <= 0:
        return {"share": None, "n": n, "interval_95": None}
    low, high = interval(share, n)
    return {"share": share, "n": n, "interval_95": [round(low, 4), round(high, 4)]}


def _products(models_dir: Path, sets: dict[str, Any], seed: int) -> dict[str, Any]:
    """As eval-mini's generator figures: German description -> translation -> the catalog prompt -> the judge."""
    from fashion_studio.generation import Generator
    from fashion_studio.mini.evaluate import catalog_prompts_of, drawn_and_judged, mini_settings
    from fashion_studio.mini.judge import Judge
    from fashion_studio.translation import Translator

    settings = mini_settings(models_dir)
    translator, generator, judge = Translator.load(settings), Generator.load(settings), Judge.load(models_dir / "judge")
    out = {}
    for split, data in sets.items():
        _, prompts = catalog_prompts_of(translator, data.items)
        _, scores = drawn_and_judged(generator, judge, prompts, data.items, settings.default_steps, settings.default_guidance, seed, settings)
        out[split] = {head: _share(scores[f"{head}_accuracy"], len(data.items)) for head in HEADS}
    return out


def _tryon(models_dir: Path, data: Any) -> dict[str, Any]:
    """As eval-mini's try-on figures: each example through the family's inpainter, read inside the mask by its figure judge."""
    from fashion_studio.mini import inpainter
    from fashion_studio.mini.figure_judge import FigureJudge

    images = inpainter.run_examples(inpainter.load_inpainter(models_dir / "inpainter"), data, "tryon")
    read = inpainter.read_examples(FigureJudge.load(models_dir / "figure-judge"), images, data)
    return {head: _share(read[JUDGE_FIELDS[head]], len(data.examples)) for head in HEADS}


def compare(
    families: Sequence[Path], work: Path, seed: int = 0, products: int = 1000, figures: int = 600, tryon: int = 600, workers: int = 2
) -> dict[str, Any]:
    """Each family's products (`products` per split), model shots (`figures`, read as `eval-mini
    --shots-only` reads them) and try-ons (`tryon` examples, as `eval-mini --inpainter-only`) read right,
    with intervals."""
    from fashion_studio.mini import inpainter, shots
    from fashion_studio.mini.evaluate import EvalConfig

    started = time.perf_counter()
    sizes = EvalConfig()  # the training set and translation pairs whose German texts are left out, as eval-mini's
    trained = trained_german(training_set(work, sizes.train_images, seed, render=False).items, sizes.translation_pairs, seed)
    sets = dict(zip(("seen", "unseen"), heldout_sets(work, products, seed, trained, workers))) if products else {}
    examples = inpainter.example_set(work, tryon, seed, HELDOUT, workers) if tryon else None
    results: dict[str, Any] = {}
    for family in map(Path, families):
        logger.info("comparing %s", family)
        read = shots.evaluate(family, work, seed, figures, workers)["generated"] if figures and shots.can_evaluate(family) else None
        results[str(family)] = {
            "products": _products(family, sets, seed) if sets else None,
            "model_shots": {slot: {head: _share(r[f"{JUDGE_FIELDS[head]}_accuracy"], r["garments"]) for head in HEADS} for slot, r in read.items()}
            if read
            else None,
            "tryon": _tryon(family, examples) if examples is not None and inpainter.has_inpainter(family) else None,
        }
    return {
        "seed": seed,
        "products_per_split": products,
        "figures": figures,
        "tryon_examples": tryon,
        "held_out": "products of seen and of unseen combinations with no German description a model trained on; figures each wearing a held-out combination; try-ons of held-out figures in garments of another held-out combination",
        "families": results,
        "seconds": round(time.perf_counter() - started, 1),
    }


def table(result: dict[str, Any]) -> str:
    """A markdown table: one row per measure, one column per family, each share with its 95% interval."""
    families = list(result["families"])
    rows: list[tuple[str, list[dict[str, Any] | None]]] = []
    for split in ("seen", "unseen"):
        for head in HEADS:
            rows.append((f"products ({split}), {head}", [(r["products"] or {}).get(split, {}).get(head) for r in result["families"].values()]))
    for slot in ("top", "bottom"):
        for head in HEADS:
            rows.append((f"model shots, {slot} {head}", [(r["model_shots"] or {}).get(slot, {}).get(head) for r in result["families"].values()]))
    for head in HEADS:
        rows.append((f"try-on, {head}", [(r.get("tryon") or {}).get(head) for r in result["families"].values()]))

    def cell(value: dict[str, Any] | None) -> str:
        if not value or value["share"] is None:
            return "-"
        low, high = value["interval_95"]
        return f"{100 * value['share']:.1f}% ({100 * low:.1f}-{100 * high:.1f}, n={value['n']})"

    lines = ["| measure | " + " | ".join(families) + " |", "|---" * (len(families) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cell(v) for v in values) + " |" for name, values in rows if any(values)]
    return "\n".join(lines)
