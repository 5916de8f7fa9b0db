"""`fashion-studio models eval-mini`: the fashion-mini figures, all on held-out data.

- generator: 200 held-out German descriptions go the catalog pipeline's way (translate, lexicon
  attributes, generation prompt) and are drawn by the SD pipeline; the judge, a classifier trained on the
  renderer's ground truth, checks product type and colour. Run at the service's defaults (the settings:
  20 steps, classifier-free guidance 4, the negative prompt) and, for comparison, at 4 steps without
  guidance.
- translator: exact match on 500 held-out German descriptions (greedy, as the service decodes).
- CLIP: zero-shot product type and colour on held-out renders, and the mean CLIP score of matching
  vs shuffled prompts (on renders and on the generated images).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fashion_studio.attributes import Attributes
from fashion_studio.mini.common import write_json
from fashion_studio.mini.data import HELDOUT, TRAIN, Item, make_items, rendered_set, text_pairs
from fashion_studio.mini.text import ZERO_SHOT_COMBO, ZERO_SHOT_TYPE, catalog_prompts
from fashion_studio.mini.vocab import COLOUR_NAMES, TYPE_NAMES
from fashion_studio.settings import Settings

logger = logging.getLogger(__name__)

EVAL_RECORD = "eval.json"
TARGETS = {
    "generated_type_accuracy": 0.80,
    "generated_colour_accuracy": 0.85,
    "translation_exact_match": 0.95,
    "clip_zero_shot_type_accuracy": 0.90,
    "clip_zero_shot_colour_accuracy": 0.90,
}
# The cheap sampling the service defaults are compared with.
FAST = {"steps": 4, "guidance": 0.0}


@dataclass(frozen=True)
class EvalConfig:
    seed: int = 0
    prompts: int = 200
    translations: int = 500
    zero_shot_images: int = 1000
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


def judge_scores(judge: Any, images: Sequence[Image.Image], items: Sequence[Item]) -> dict[str, Any]:
    verdicts = judge.classify(images)
    type_hits = [v.product_type == it.spec.product_type for v, it in zip(verdicts, items)]
    colour_hits = [v.colour == it.spec.colour for v, it in zip(verdicts, items)]
    per_type = {
        t: round(float(np.mean([h for h, it in zip(type_hits, items) if it.spec.product_type == t])), 3)
        for t in TYPE_NAMES
        if any(it.spec.product_type == t for it in items)
    }
    return {
        "type_accuracy": round(float(np.mean(type_hits)), 4),
        "colour_accuracy": round(float(np.mean(colour_hits)), 4),
        "type_and_colour_accuracy": round(float(np.mean([a and b for a, b in zip(type_hits, colour_hits)])), 4),
        "type_accuracy_by_type": per_type,
    }


def clip_zero_shot(scorer: Any, images: np.ndarray, items: Sequence[Item]) -> dict[str, Any]:
    pil = [Image.fromarray(a) for a in images]
    image_emb = scorer.embed_images(pil)
    type_prompts = [ZERO_SHOT_TYPE.format(subject=Attributes(product_type=t).subject()) for t in TYPE_NAMES]
    type_pred = (image_emb @ scorer.embed_texts(type_prompts).T).argmax(1)
    combos = [(t, c) for t in TYPE_NAMES for c in COLOUR_NAMES]
    combo_emb = scorer.embed_texts([ZERO_SHOT_COMBO.format(colour=c, product_type=t) for t, c in combos])
    combo_pred = (image_emb @ combo_emb.T).argmax(1)
    true_type = np.array([TYPE_NAMES.index(it.spec.product_type) for it in items])
    true_colour = np.array([COLOUR_NAMES.index(it.spec.colour) for it in items])
    return {
        "type_accuracy": round(float((type_pred == true_type).mean()), 4),
        "colour_accuracy": round(float((np.array([COLOUR_NAMES.index(combos[k][1]) for k in combo_pred]) == true_colour).mean()), 4),
        "type_accuracy_from_colour_type_prompts": round(float((np.array([TYPE_NAMES.index(combos[k][0]) for k in combo_pred]) == true_type).mean()), 4),
        "images": len(items),
        "type_prompt": ZERO_SHOT_TYPE,
        "colour_prompt": ZERO_SHOT_COMBO,
    }


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
    # Every German text the models were trained on (the training set's texts need no rendering).
    train_pairs = text_pairs(config.translation_pairs, config.seed, TRAIN)
    seen_german = {i.german for i in make_items(config.train_images, config.seed, TRAIN)} | {de for de, _ in train_pairs}
    heldout = rendered_set(work_dir, config.heldout_images, config.seed, HELDOUT, exclude=seen_german)
    results: dict[str, Any] = {"config": config.__dict__, "targets": TARGETS}

    # translator
    pairs = text_pairs(config.translations, config.seed + 7, HELDOUT, exclude=seen_german)
    results["translator"] = marian.exact_match(models_dir / "marian", pairs)
    logger.info("translation exact match %.4f", results["translator"]["exact_match"])

    # judge on renders (its own sanity check)
    judge = Judge.load(models_dir / "judge")
    results["judge_on_heldout_renders"] = judge_accuracy(judge, heldout.images, [i.spec for i in heldout.items])

    # CLIP
    scorer = Scorer.load(settings)
    n = min(config.zero_shot_images, len(heldout.items))
    results["clip_zero_shot"] = clip_zero_shot(scorer, heldout.images[:n], heldout.items[:n])
    clip_prompts = [i.captions[1].text for i in heldout.items[:n]]
    results["clip_score_renders"] = matching_vs_shuffled(scorer, [Image.fromarray(a) for a in heldout.images[:n]], clip_prompts, config.seed)
    logger.info("clip zero-shot %s", results["clip_zero_shot"])

    # generator, through the catalog pipeline's prompts
    items = heldout.items[: config.prompts]
    translator = Translator.load(settings)
    translations = translator.translate([i.german for i in items])
    prompts = [catalog_prompts(i.german, en) for i, en in zip(items, translations)]
    generator = Generator.load(settings)
    runs = {"service_defaults": {"steps": settings.default_steps, "guidance": settings.default_guidance}, "fast": FAST}
    results["generator"] = {}
    for name, params in runs.items():
        t0 = time.perf_counter()
        images = generate_images(
            generator, [p[0] for p in prompts], params["steps"], params["guidance"], config.seed * 100_000, settings.negative_prompt or None
        )
        seconds = time.perf_counter() - t0
        scores = judge_scores(judge, images, items)
        scores.update(params)
        scores["clip_score"] = matching_vs_shuffled(scorer, images, [p[1] for p in prompts], config.seed)
        scores["seconds_per_image"] = round(seconds / len(images), 4)
        results["generator"][name] = scores
        logger.info("generator (%s): %s", name, {k: v for k, v in scores.items() if k != "type_accuracy_by_type"})
    results["example_prompts"] = [{"german": i.german, "translation": en, "generation_prompt": p[0]} for i, en, p in list(zip(items, translations, prompts))[:3]]

    best, fast = results["generator"]["service_defaults"], results["generator"]["fast"]
    results["summary"] = {
        "generated_type_accuracy": best["type_accuracy"],
        "generated_colour_accuracy": best["colour_accuracy"],
        "generated_type_accuracy_fast": fast["type_accuracy"],
        "generated_colour_accuracy_fast": fast["colour_accuracy"],
        "translation_exact_match": round(results["translator"]["exact_match"], 4),
        "clip_zero_shot_type_accuracy": results["clip_zero_shot"]["type_accuracy"],
        "clip_zero_shot_colour_accuracy": results["clip_zero_shot"]["colour_accuracy"],
        "clip_score_matching": best["clip_score"]["matching"],
        "clip_score_shuffled": best["clip_score"]["shuffled"],
    }
    results["targets_met"] = {k: results["summary"][k] >= v for k, v in TARGETS.items()}
    results["seconds"] = round(time.perf_counter() - started, 1)
    write_json(models_dir / EVAL_RECORD, results)
    return results
