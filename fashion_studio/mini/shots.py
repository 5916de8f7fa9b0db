"""fashion-mini's model shots: the generator learns to draw a person wearing a described outfit ("a woman
wearing a red striped t-shirt and navy trousers") beside its product shots.

The `shots` stage fine-tunes the product generator (the `vae` and `unet` stages) on a mix of dressed
figures (`figures.render_figure`, captioned by `figures.figure_caption`) and the product shots it was
trained on, so flat-lays keep working: first its VAE, on figures and products, with a figure's garment
pixels weighing more (the product-shot VAE loses the colour of small garments on a figure), then the
UNet on the re-encoded latents, with the generator's own text encoder and a loss weighted, latent pixel by
latent pixel, towards the garments and most towards the bottom (`garment_weights`). The `sd` stage assembles the
pipeline from this stage's VAE and UNet.

Held out: no training figure wears a held-out (type, colour, pattern) combination (`split.py`, checked),
and every evaluation figure wears at least one; no evaluation prompt is a training caption (checked).
The evaluation draws each held-out figure's caption at the service defaults, finds the garments with
the segmenter's clothes parser and reads each one's type, colour and pattern with the figure judge.
The same reading of the exact renders and of their VAE round trips gives the chain's own ceilings.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashion_studio.mini.data import HELDOUT, TRAIN, RenderedSet, split_seed
from fashion_studio.mini.figures import FigureSpec, figure_caption

logger = logging.getLogger(__name__)

SHOTS_RECIPE_VERSION = 3  # the recipe (figure share, captions, loss weights, learning rates): part of the stage's key
FIGURE_SHARE = 0.6  # of the UNet's fine-tuning examples; the rest are the product shots
# The VAE's reconstruction error on a figure's garment pixels weighs this many times more than elsewhere:
# a trouser leg is narrower than one latent pixel, and a uniform loss spends itself on the background.
GARMENT_WEIGHT = 10.0
LOWER_GARMENT_WEIGHT = 20.0  # the bottom's pixels (trouser legs, shorts): the narrowest garment on a figure
# The UNet's denoising error, latent pixel by latent pixel, on a figure: a latent pixel weighs 1 plus these
# (less one) times the share of its 4x4 image pixels that are garment, or bottom; a weighted mean, so each
# example keeps its scale. Unweighted, the background and skin outvote a bottom: 300 steps of fine-tuning
# read its colour right on 51.7% of held-out model shots, 58.5% with these weights (44.9% before either).
UNET_GARMENT_WEIGHT = 4.0
UNET_LOWER_WEIGHT = 13.0
CAPTIONS_PER_FIGURE = 4  # the plain caption and three random phrasings
VAE_SHARE = 0.25  # of the stage's time cap, kept for the VAE
VAE_LR = 3e-4
UNET_LR = 3e-4
EVAL_FIGURES = 200


def figure_captions(specs: Sequence[FigureSpec], seed: int) -> list[tuple[str, ...]]:
    """Each figure's captions: `figure_caption(spec)` and three random phrasings, deduplicated."""
    rng = np.random.default_rng([seed, 3_001])
    out = []
    for spec in specs:
        texts = [figure_caption(spec)] + [figure_caption(spec, rng) for _ in range(CAPTIONS_PER_FIGURE - 1)]
        out.append(tuple(dict.fromkeys(texts)))
    return out


def eval_prompts(specs: Sequence[FigureSpec]) -> list[str]:
    return [figure_caption(spec) for spec in specs]


def check_prompts_unseen(prompts: Sequence[str], training: Sequence[Sequence[str]]) -> int:
    """Raise if an evaluation prompt is a training caption; returns the training captions checked."""
    seen = {text for texts in training for text in texts}
    leaked = sorted(set(prompts) & seen)
    if leaked:
        raise ValueError(f"{len(leaked)} evaluation prompts are training captions, e.g. {leaked[:3]}")
    return len(seen)


def train(
    out: Path,
    vae_dir: Path,
    unet_dir: Path,
    clip_dir: Path,
    products: RenderedSet,
    figures: Any,
    seed: int,
    steps: dict[str, int],
    max_seconds: float,
    scaling_factor: float,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Fine-tune the generator's VAE and UNet on figures and products; save them to `out/vae`, `out/unet`.
    `figures` is a `segmenter.FigureSet` of training figures; `steps` has "vae" and "unet"."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from fashion_studio.mini import sd
    from fashion_studio.mini.inpainter import finetune_vae
    from fashion_studio.mini.segmenter import check_training_figures

    started = time.perf_counter()
    checked = check_training_figures(figures.specs, seed)
    vae = AutoencoderKL.from_pretrained(vae_dir).eval()
    unet = UNet2DConditionModel.from_pretrained(unet_dir)
    text_encoder, tokenizer = sd.text_encoder_from_clip(clip_dir)
    rng = np.random.default_rng([seed, 3_002])
    mix = np.concatenate([figures.images, products.images[rng.choice(len(products.images), len(figures.images), replace=False)]])
    weights = np.ones(mix.shape[:3], np.float32)
    weights[: len(figures.images)] = garment_weights(figures.masks, mix.shape[1], GARMENT_WEIGHT, LOWER_GARMENT_WEIGHT)
    vae_info = finetune_vae(vae, mix, seed, steps["vae"], VAE_SHARE * max_seconds, lr=VAE_LR, pixel_weights=weights)
    vae_info["garment_weight"] = GARMENT_WEIGHT
    vae_info["lower_garment_weight"] = LOWER_GARMENT_WEIGHT
    vae.save_pretrained(out / "vae", safe_serialization=True)
    encode_started = time.perf_counter()
    product_latents = sd.encode_latents(vae, products.images)
    figure_latents = sd.encode_latents(vae, figures.images)
    latents = tuple(np.concatenate([p, f]) for p, f in zip(product_latents, figure_latents))
    encode_seconds = time.perf_counter() - encode_started
    texts = [tuple(c.text for c in item.captions) for item in products.items] + figure_captions(figures.specs, seed)
    n_products, n_figures = len(products.items), len(figures.specs)
    share = np.concatenate([np.full(n_products, (1 - FIGURE_SHARE) / n_products), np.full(n_figures, FIGURE_SHARE / n_figures)])
    loss_maps = np.concatenate(
        [np.ones((n_products, *latents[0].shape[2:]), np.float32), garment_weights(figures.masks, latents[0].shape[2], UNET_GARMENT_WEIGHT, UNET_LOWER_WEIGHT)]
    )
    left = max_seconds - (time.perf_counter() - started)
    _, unet_info = sd.train_unet(  # seeds torch itself
        out / "unet",
        texts,
        latents,
        scaling_factor,
        text_encoder,
        tokenizer,
        seed,
        steps["unet"],
        left,
        batch_size=batch_size,
        lr=UNET_LR,
        unet=unet,
        weights=share,
        loss_maps=loss_maps,
    )
    unet_info["garment_weight"] = UNET_GARMENT_WEIGHT
    unet_info["lower_garment_weight"] = UNET_LOWER_WEIGHT
    return {
        "vae": vae_info,
        "unet": {**unet_info, "latent_encoding_seconds": round(encode_seconds, 1)},
        "figures": n_figures,
        "products": n_products,
        "figure_share": FIGURE_SHARE,
        "captions_per_figure": CAPTIONS_PER_FIGURE,
        "garments_checked": checked,
        "held_out": "no training figure wears a held-out (type, colour, pattern) combination (checked)",
        "seconds": round(time.perf_counter() - started, 1),
    }


def garment_weights(masks: np.ndarray, size: int, garment: float, lower: float) -> np.ndarray:
    """(n, size, size) loss weights from figures' (n, 4, H, W) masks, for the VAE's pixels (size H) or the
    UNet's latent pixels: 1, plus `garment` (less one) times each pixel's share of garment pixels, plus the
    bottom's extra (`lower` less `garment`) times its share of bottom."""
    from fashion_studio.mini.segmenter import MASK_TARGETS

    n, _, height, width = masks.shape

    def share(name: str) -> np.ndarray:
        mask = masks[:, MASK_TARGETS.index(name)].astype(np.float32)
        return mask.reshape(n, size, height // size, size, width // size).mean(axis=(2, 4))

    return 1.0 + (garment - 1.0) * share("full") + (lower - garment) * share("lower")


# -- evaluation ---------------------------------------------------------------------------------------

SLOTS = ("top", "bottom")


def _slots(spec: FigureSpec) -> dict[str, tuple[str, Any]]:
    """slot -> (the parser category whose mask holds it, the garment)."""
    if spec.bottom is None:
        return {"top": ("full", spec.top)}
    return {"top": ("upper", spec.top), "bottom": ("lower", spec.bottom)}


def read_outfits(segmenter: Any, judge: Any, images: Sequence[Any], specs: Sequence[FigureSpec], held: frozenset = frozenset()) -> dict[str, Any]:
    """Find each figure's garments with the clothes parser and read them with the figure judge: per slot
    (top or dress, bottom) the share read right of type, colour and pattern, how often the parser found no
    pixel of a garment (read as wrong), and the colours read wrong ("asked -> read": count);
    the same over the garments of a `held` combination."""
    from PIL import Image

    from fashion_studio.mini.split import combination

    names = ("product_type", "colour", "pattern")
    hits: dict[str, list[dict[str, bool]]] = {slot: [] for slot in SLOTS}
    held_out: dict[str, list[bool]] = {slot: [] for slot in SLOTS}
    empty = {slot: 0 for slot in SLOTS}
    misread: dict[str, Counter[str]] = {slot: Counter() for slot in SLOTS}
    for image, spec in zip(images, specs):
        picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, np.uint8))
        slots = _slots(spec)
        masks = segmenter.by_category(picture, sorted({category for category, _ in slots.values()}))
        for slot, (category, garment) in slots.items():
            mask = masks[category]
            held_out[slot].append(combination(garment) in held)
            if not mask.any():
                empty[slot] += 1
                hits[slot].append(dict.fromkeys(names, False))
                continue
            verdict = judge.read(picture, mask)
            hits[slot].append({name: getattr(verdict, name) == getattr(garment, name) for name in names})
            if verdict.colour != garment.colour:
                misread[slot][f"{garment.colour} -> {verdict.colour}"] += 1

    def accuracy(rows: list[dict[str, bool]]) -> dict[str, float | None]:
        return {f"{name}_accuracy": round(float(np.mean([r[name] for r in rows])), 4) if rows else None for name in names}

    return {
        slot: {
            "garments": len(hits[slot]),
            **accuracy(hits[slot]),
            "parser_found_nothing": empty[slot],
            "colours_read_wrong": dict(sorted(misread[slot].items())),
            "held_out_garments": {
                "garments": sum(held_out[slot]),
                **accuracy([r for r, h in zip(hits[slot], held_out[slot]) if h]),
            },
        }
        for slot in SLOTS
    }


def evaluate(models_dir: Path, work: Path, seed: int, n_figures: int = EVAL_FIGURES, workers: int = 2, training_figures: int | None = None) -> dict[str, Any]:
    """Model shots of held-out figures' captions at `/model_shot`'s defaults (steps, guidance, its negative
    prompt), read garment by garment."""
    from fashion_studio.generation import Generator
    from fashion_studio.mini.evaluate import generate_images, mini_settings
    from fashion_studio.mini.figure_judge import FigureJudge
    from fashion_studio.mini.inpainter import autoencoded
    from fashion_studio.mini.segmenter import figure_set, make_figures
    from fashion_studio.mini.split import held_out_combinations
    from fashion_studio.segmentation import Segmenter

    models_dir = Path(models_dir)
    figures = figure_set(work, n_figures, seed, HELDOUT, workers)
    prompts = eval_prompts(figures.specs)
    trained = figure_captions(make_figures(training_figures, seed, TRAIN), seed) if training_figures else []
    checked = check_prompts_unseen(prompts, trained) if trained else 0
    settings = mini_settings(models_dir)
    generator = Generator.load(settings)
    steps, guidance, negative = settings.default_steps, settings.default_guidance, settings.model_shot_negative_prompt or None
    started = time.perf_counter()
    images = generate_images(generator, prompts, steps, guidance, split_seed(seed, HELDOUT) + 7, negative=negative)
    seconds = (time.perf_counter() - started) / max(1, len(images))
    segmenter = Segmenter.load(models_dir / "segmenter")
    judge = FigureJudge.load(models_dir / "figure-judge")
    held = frozenset(held_out_combinations(seed))
    prompt_check = "no prompt is a training caption (checked)" if checked else "the prompts were not checked against training captions (no training record)"
    return {
        "figures": len(prompts),
        "held_out": f"every figure wears at least one held-out (type, colour, pattern) combination, the other garment is random; no training figure wears one (checked); {prompt_check}",
        "training_captions_checked": checked,
        "example_prompts": prompts[:5],
        "steps": steps,
        "guidance": guidance,
        "negative_prompt": negative,
        "seconds_per_image": round(seconds, 4),
        "generated": read_outfits(segmenter, judge, images, figures.specs, held),
        "exact_renders": read_outfits(segmenter, judge, figures.images, figures.specs, held),
        "autoencoded_renders": read_outfits(segmenter, judge, autoencoded(generator.pipeline.vae, figures.images), figures.specs, held),
    }


# -- records ------------------------------------------------------------------------------------------

TARGETS = {"model_shot_top_colour_accuracy": 0.80, "model_shot_bottom_colour_accuracy": 0.80}


def can_evaluate(models_dir: Path) -> bool:
    """The reading needs the segmenter's parser and the figure judge beside the generator."""
    models_dir = Path(models_dir)
    return (models_dir / "segmenter").is_dir() and (models_dir / "figure-judge" / "config.json").is_file()


def evaluate_family(models_dir: Path, work: Path, seed: int, workers: int = 2) -> dict[str, Any] | None:
    """The model shots' section of eval.json, or None when the family cannot read figures."""
    if not can_evaluate(models_dir):
        return None
    from fashion_studio.mini.common import read_json

    record = Path(models_dir) / "training.json"
    trained = read_json(record).get("stages", {}).get("shots", {}).get("figures") if record.is_file() else None
    return evaluate(models_dir, work, seed, EVAL_FIGURES, workers, training_figures=trained)


def summary(results: dict[str, Any]) -> dict[str, float]:
    """model_shot_{top,bottom}_{colour,type,pattern}_accuracy, and the same `..._held_out_garments`; a
    slot no figure has is left out."""
    out: dict[str, float] = {}
    for slot in SLOTS:
        for name, short in (("colour", "colour"), ("product_type", "type"), ("pattern", "pattern")):
            for suffix, reading in (("", results["generated"][slot]), ("_held_out_garments", results["generated"][slot].get("held_out_garments", {}))):
                if reading.get(f"{name}_accuracy") is not None:
                    out[f"model_shot_{slot}_{short}_accuracy{suffix}"] = reading[f"{name}_accuracy"]
    return out


def record_evaluation(models_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Put the model shots' figures into an existing eval.json (`eval-mini --shots-only`)."""
    from fashion_studio.mini import cards

    figures = summary(results)
    return cards.record_section(models_dir, "model_shots", results, figures, {k: v for k, v in TARGETS.items() if k in figures})
