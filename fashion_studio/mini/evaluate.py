"""`fashion-studio models eval-mini`: the fashion-mini figures, on held-out data, for seen and unseen
combinations side by side.

Two held-out sets (`data.heldout_sets`): products of combinations the training data has (new renders and
new German descriptions: "seen"), and products of the held-out (type, colour, pattern) combinations that
no training item or caption of CLIP and the UNet names ("unseen", `split.py`).

- generator: 200 German descriptions of each set go the catalog pipeline's way (translate, lexicon
  attributes, generation prompt) and are drawn by the SD pipeline; the judge, a classifier trained on the
  renderer's ground truth (of every combination: it is the measuring instrument, not a model under test),
  reads product type, colour and pattern. Run at the service's defaults (the settings: 20 steps,
  classifier-free guidance 4, the negative prompt) and, for comparison, at 4 steps without guidance.
  How many generation prompts occur word for word among the training captions is reported beside them.
- translator: exact match on 500 held-out German descriptions (greedy, as the service decodes).
- CLIP: closed-set classification of held-out renders over the 10 types and the 120 type x colour
  pairs, with the training captions' own templates (every such prompt is a training caption) and with
  templates no training caption has; and the mean CLIP score of matching vs shuffled prompts (on renders
  and on the generated images).
- editor: products edited into held-out (type, target colour) and (type, target pattern) combinations
  that no training pair of the editor has (`editor.evaluate_family`); the judge reads the instructed
  colour or pattern and the product type of each edit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fashion_studio.attributes import Attributes
from fashion_studio.mini import editor as mini_editor
from fashion_studio.mini import inpainter as mini_inpainter
from fashion_studio.mini import segmenter as mini_segmenter
from fashion_studio.mini import shots as mini_shots
from fashion_studio.mini.common import write_json
from fashion_studio.mini.data import HELDOUT, Item, heldout_sets, text_pairs, trained_german, training_set
from fashion_studio.mini.split import split_summary
from fashion_studio.mini.text import NEW_ZERO_SHOT_COMBOS, NEW_ZERO_SHOT_TYPES, ZERO_SHOT_COMBO, ZERO_SHOT_TYPE, catalog_prompts
from fashion_studio.mini.vocab import COLOUR_NAMES, PATTERNS, TYPE_NAMES
from fashion_studio.settings import Settings

logger = logging.getLogger(__name__)

EVAL_RECORD = "eval.json"
SPLITS = ("seen", "unseen")
TARGETS = {
    "generated_type_accuracy_seen": 0.80,
    "generated_type_accuracy_unseen": 0.80,
    "generated_colour_accuracy_seen": 0.85,
    "generated_colour_accuracy_unseen": 0.85,
    "translation_exact_match": 0.95,
    "clip_zero_shot_type_accuracy_training_templates": 0.90,
    "clip_zero_shot_colour_accuracy_training_templates": 0.90,
    **mini_editor.TARGETS,
    **mini_segmenter.TARGETS,
    **mini_shots.TARGETS,
    **mini_inpainter.TARGETS,
}
# The cheap sampling the service defaults are compared with.
FAST = {"steps": 4, "guidance": 0.0}


@dataclass(frozen=True)
class EvalConfig:
    seed: int = 0
    prompts: int = 200  # per set (seen, unseen)
    translations: int = 500
    zero_shot_images: int = 1000  # per set
    train_images: int = 24000
    heldout_images: int = 1000
    translation_pairs: int = 40000


def mini_settings(models_dir: Path, **overrides: Any) -> Settings:
    """Settings whose models are the fashion-mini family under `models_dir` (a copy elsewhere, too)."""
    values: dict[str, Any] = {
        "generator": str(models_dir / "sd"),
        "translator": str(models_dir / "marian"),
        "scorer": str(models_dir / "clip"),
    }
    values.update(overrides)
    return Settings(**values)


def shuffled(n: int, seed: int) -> np.ndarray:
    """A permutation without fixed points."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        if n < 2 or not np.any(order == np.arange(n)):
            return order


def generate_images(generator: Any, prompts: Sequence[str], steps: int, guidance: float, seed: int, negative: str | None, batch: int = 50) -> list[Image.Image]:
    from fashion_studio.generation import GenerationRequest

    images: list[Image.Image] = []
    for start in range(0, len(prompts), batch):
        requests = [
            GenerationRequest(prompt=p, negative_prompt=negative, seed=seed + start + i, steps=steps, guidance=guidance)
            for i, p in enumerate(prompts[start : start + batch])
        ]
        images.extend(r.images[0] for r in generator.generate(requests))
    return images


def catalog_prompts_of(translator: Any, items: Sequence[Item]) -> tuple[list[str], list[tuple[str, str]]]:
    """The catalog pipeline's reading of each item's German description: its translation, and the
    (generation prompt, CLIP prompt) made from the description and the translation."""
    translations = translator.translate([i.german for i in items])
    return translations, [catalog_prompts(i.german, en) for i, en in zip(items, translations)]


def drawn_and_judged(
    generator: Any, judge: Any, prompts: Sequence[tuple[str, str]], items: Sequence[Item], steps: int, guidance: float, seed: int, settings: Settings
) -> tuple[list[Image.Image], dict[str, Any]]:
    """Each generation prompt drawn (the catalog's negative prompt; seeds from `seed`, the same for every
    family and setting) and read by the judge against its item."""
    images = generate_images(generator, [p[0] for p in prompts], steps, guidance, seed * 100_000, settings.negative_prompt or None)
    return images, judge_scores(judge, images, items)


def judge_scores(judge: Any, images: Sequence[Image.Image], items: Sequence[Item]) -> dict[str, Any]:
    verdicts = judge.classify(images)
    type_hits = [v.product_type == it.spec.product_type for v, it in zip(verdicts, items)]
    colour_hits = [v.colour == it.spec.colour for v, it in zip(verdicts, items)]
    pattern_hits = [v.pattern == it.spec.pattern for v, it in zip(verdicts, items)]

    def by(name: str, values: Sequence[str], hits: Sequence[bool]) -> dict[str, float]:
        return {
            v: round(float(np.mean([h for h, it in zip(hits, items) if getattr(it.spec, name) == v])), 3)
            for v in values
            if any(getattr(it.spec, name) == v for it in items)
        }

    return {
        "type_accuracy": round(float(np.mean(type_hits)), 4),
        "colour_accuracy": round(float(np.mean(colour_hits)), 4),
        "pattern_accuracy": round(float(np.mean(pattern_hits)), 4),
        "type_and_colour_accuracy": round(float(np.mean([a and b for a, b in zip(type_hits, colour_hits)])), 4),
        "all_three_accuracy": round(float(np.mean([a and b and c for a, b, c in zip(type_hits, colour_hits, pattern_hits)])), 4),
        "type_accuracy_by_type": by("product_type", TYPE_NAMES, type_hits),
        "pattern_accuracy_by_pattern": by("pattern", PATTERNS, pattern_hits),
    }


def type_prompt(template: str, product_type: str) -> str:
    return template.format(subject=Attributes(product_type=product_type).subject(), product_type=product_type)


def combo_prompt(template: str, product_type: str, colour: str) -> str:
    return template.format(colour=colour, product_type=product_type)


def clip_zero_shot(scorer: Any, images: np.ndarray, items: Sequence[Item], type_template: str, combo_template: str) -> dict[str, Any]:
    """Closed-set classification: the type among the 10 type prompts, the colour (and the type) among the
    120 type x colour prompts, by the highest CLIP similarity."""
    image_emb = scorer.embed_images([Image.fromarray(a) for a in images])
    type_pred = (image_emb @ scorer.embed_texts([type_prompt(type_template, t) for t in TYPE_NAMES]).T).argmax(1)
    combos = [(t, c) for t in TYPE_NAMES for c in COLOUR_NAMES]
    combo_pred = (image_emb @ scorer.embed_texts([combo_prompt(combo_template, t, c) for t, c in combos]).T).argmax(1)
    true_type = np.array([TYPE_NAMES.index(it.spec.product_type) for it in items])
    true_colour = np.array([COLOUR_NAMES.index(it.spec.colour) for it in items])
    return {
        "type_accuracy": round(float((type_pred == true_type).mean()), 4),
        "colour_accuracy": round(float((np.array([COLOUR_NAMES.index(combos[k][1]) for k in combo_pred]) == true_colour).mean()), 4),
        "type_accuracy_from_colour_type_prompts": round(float((np.array([TYPE_NAMES.index(combos[k][0]) for k in combo_pred]) == true_type).mean()), 4),
        "images": len(items),
        "type_prompt": type_template,
        "colour_prompt": combo_template,
    }


def template_prompts(type_template: str, combo_template: str) -> list[str]:
    """Every prompt a pair of zero-shot templates makes (10 type prompts, 120 type x colour prompts)."""
    return [type_prompt(type_template, t) for t in TYPE_NAMES] + [combo_prompt(combo_template, t, c) for t in TYPE_NAMES for c in COLOUR_NAMES]


def share_in(prompts: Iterable[str], captions: set[str]) -> float:
    prompts = list(prompts)
    return round(sum(p in captions for p in prompts) / max(1, len(prompts)), 4)


def check_new_templates(captions: set[str]) -> dict[str, Any]:
    """Raise AssertionError if a prompt of the new zero-shot templates is a training caption; return the
    share of the training templates' prompts that are (all of them: closed set with training templates)."""
    for type_template, combo_template in zip(NEW_ZERO_SHOT_TYPES, NEW_ZERO_SHOT_COMBOS):
        found = [p for p in template_prompts(type_template, combo_template) if p in captions]
        if found:
            raise AssertionError(f"zero-shot prompt {found[0]!r} is a training caption: not a new template")
    return {
        "training_templates_prompts_in_training_captions": share_in(template_prompts(ZERO_SHOT_TYPE, ZERO_SHOT_COMBO), captions),
        "new_templates_prompts_in_training_captions": 0.0,
    }


def clip_zero_shot_both(scorer: Any, images: np.ndarray, items: Sequence[Item]) -> dict[str, Any]:
    """Zero-shot with the training templates and with each new template (and their mean)."""
    training = clip_zero_shot(scorer, images, items, ZERO_SHOT_TYPE, ZERO_SHOT_COMBO)
    new = [clip_zero_shot(scorer, images, items, t, c) for t, c in zip(NEW_ZERO_SHOT_TYPES, NEW_ZERO_SHOT_COMBOS)]
    mean = {k: round(float(np.mean([r[k] for r in new])), 4) for k in ("type_accuracy", "colour_accuracy", "type_accuracy_from_colour_type_prompts")}
    return {"training_templates": training, "new_templates": {"mean": mean, "per_template": new}}


def matching_vs_shuffled(scorer: Any, images: Sequence[Image.Image], prompts: Sequence[str], seed: int) -> dict[str, float]:
    order = shuffled(len(prompts), seed)
    matching = scorer.score(images, prompts)
    mismatched = scorer.score(images, [prompts[k] for k in order])
    return {
        "matching": round(float(np.mean(matching)), 2),
        "shuffled": round(float(np.mean(mismatched)), 2),
        "matching_above_shuffled": round(float(np.mean(np.array(matching) > np.array(mismatched))), 4),
    }


def evaluate(models_dir: Path, work_dir: Path, config: EvalConfig | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Every figure, written to `models_dir/eval.json` and returned."""
    from fashion_studio.generation import Generator
    from fashion_studio.mini import marian
    from fashion_studio.mini.judge import Judge
    from fashion_studio.mini.judge import accuracy as judge_accuracy
    from fashion_studio.scoring import Scorer
    from fashion_studio.translation import Translator

    config = config or EvalConfig()
    models_dir = Path(models_dir)
    settings = settings or mini_settings(models_dir)
    started = time.perf_counter()
    # Every German text and English caption the models were trained on (texts only: nothing is rendered).
    train_items = training_set(work_dir, config.train_images, config.seed, render=False).items
    seen_german = trained_german(train_items, config.translation_pairs, config.seed)
    train_captions = {c.text for i in train_items for c in i.captions}
    sets = dict(zip(SPLITS, heldout_sets(work_dir, config.heldout_images, config.seed, seen_german)))
    results: dict[str, Any] = {"config": config.__dict__, "targets": TARGETS, "split": split_summary(config.seed)}

    # translator
    pairs = text_pairs(config.translations, config.seed + 7, HELDOUT, exclude=seen_german)
    results["translator"] = marian.exact_match(models_dir / "marian", pairs)
    logger.info("translation exact match %.4f", results["translator"]["exact_match"])

    # judge on renders (its own sanity check)
    judge = Judge.load(models_dir / "judge")
    results["judge_on_heldout_renders"] = judge_accuracy(judge, sets["seen"].images, [i.spec for i in sets["seen"].items])
    results["judge_on_unseen_renders"] = judge_accuracy(judge, sets["unseen"].images, [i.spec for i in sets["unseen"].items])

    # CLIP
    scorer = Scorer.load(settings)
    results["clip_zero_shot"] = {"prompts": check_new_templates(train_captions)}
    results["clip_score_renders"] = {}
    for split, data in sets.items():
        n = min(config.zero_shot_images, len(data.items))
        results["clip_zero_shot"][split] = clip_zero_shot_both(scorer, data.images[:n], data.items[:n])
        clip_prompts = [i.captions[1].text for i in data.items[:n]]
        results["clip_score_renders"][split] = matching_vs_shuffled(scorer, [Image.fromarray(a) for a in data.images[:n]], clip_prompts, config.seed)
        logger.info("clip zero-shot (%s): %s", split, results["clip_zero_shot"][split])

    # generator, through the catalog pipeline's prompts
    translator = Translator.load(settings)
    generator = Generator.load(settings)
    runs = {"service_defaults": {"steps": settings.default_steps, "guidance": settings.default_guidance}, "fast": FAST}
    results["generator"], results["example_prompts"] = {}, {}
    for split, data in sets.items():
        items = data.items[: config.prompts]
        translations, prompts = catalog_prompts_of(translator, items)
        report: dict[str, Any] = {
            "prompts": len(prompts),
            "combinations": len({(i.spec.product_type, i.spec.colour, i.spec.pattern) for i in items}),
            "generation_prompts_in_training_captions": share_in((p[0] for p in prompts), train_captions),
        }
        for name, params in runs.items():
            t0 = time.perf_counter()
            images, scores = drawn_and_judged(generator, judge, prompts, items, params["steps"], params["guidance"], config.seed, settings)
            seconds = time.perf_counter() - t0
            scores.update(params)
            scores["clip_score"] = matching_vs_shuffled(scorer, images, [p[1] for p in prompts], config.seed)
            scores["seconds_per_image"] = round(seconds / len(images), 4)
            report[name] = scores
            logger.info("generator (%s, %s): %s", split, name, {k: v for k, v in scores.items() if not k.endswith(("_by_type", "_by_pattern"))})
        results["generator"][split] = report
        results["example_prompts"][split] = [
            {"german": i.german, "translation": en, "generation_prompt": p[0]} for i, en, p in list(zip(items, translations, prompts))[:2]
        ]

    summary: dict[str, Any] = {}
    for split in SPLITS:
        best, fast = results["generator"][split]["service_defaults"], results["generator"][split]["fast"]
        for head in ("type", "colour", "pattern"):
            summary[f"generated_{head}_accuracy_{split}"] = best[f"{head}_accuracy"]
            summary[f"generated_{head}_accuracy_fast_{split}"] = fast[f"{head}_accuracy"]
        summary[f"generation_prompts_in_training_captions_{split}"] = results["generator"][split]["generation_prompts_in_training_captions"]
        summary[f"clip_score_matching_{split}"] = best["clip_score"]["matching"]
        summary[f"clip_score_shuffled_{split}"] = best["clip_score"]["shuffled"]
    zero_shot = results["clip_zero_shot"]
    for head in ("type", "colour"):
        summary[f"clip_zero_shot_{head}_accuracy_training_templates"] = zero_shot["seen"]["training_templates"][f"{head}_accuracy"]
        summary[f"clip_zero_shot_{head}_accuracy_training_templates_unseen"] = zero_shot["unseen"]["training_templates"][f"{head}_accuracy"]
        summary[f"clip_zero_shot_{head}_accuracy_new_templates"] = zero_shot["seen"]["new_templates"]["mean"][f"{head}_accuracy"]
        summary[f"clip_zero_shot_{head}_accuracy_new_templates_unseen"] = zero_shot["unseen"]["new_templates"]["mean"][f"{head}_accuracy"]
    summary["translation_exact_match"] = round(results["translator"]["exact_match"], 4)

    # editor: held-out edit combinations (fashion_studio/mini/editor.py), read by the same judge
    results["editor"] = mini_editor.evaluate_family(models_dir, work_dir, config.seed, judge)
    if results["editor"] is not None:
        summary.update(mini_editor.summary(results["editor"]))
    # segmenter: held-out figures (fashion_studio/mini/segmenter.py)
    results["segmenter"] = mini_segmenter.evaluate_family(models_dir, work_dir, config.seed)
    if results["segmenter"] is not None:
        summary.update(mini_segmenter.summary(results["segmenter"]))
    # model shots: held-out figures' captions drawn by the generator, read garment by garment (fashion_studio/mini/shots.py)
    results["model_shots"] = mini_shots.evaluate_family(models_dir, work_dir, config.seed)
    if results["model_shots"] is not None:
        summary.update(mini_shots.summary(results["model_shots"]))
    # inpainter: try-on and inpainting on held-out figures and garments (fashion_studio/mini/inpainter.py)
    results["inpainter"] = mini_inpainter.evaluate_family(models_dir, work_dir, config.seed)
    if results["inpainter"] is not None:
        summary.update(mini_inpainter.summary(results["inpainter"]))
    results["summary"] = summary
    results["targets_met"] = {k: results["summary"][k] >= v for k, v in TARGETS.items() if k in results["summary"]}
    results["seconds"] = round(time.perf_counter() - started, 1)
    write_json(models_dir / EVAL_RECORD, results)
    return results
