"""fashion-mini/segmenter: a Segment-Anything-shaped model and a clothes parser, trained on the figure
renderer's exact garment masks.

- `sam/`: transformers' `SamModel` (ViT image encoder, prompt encoder, two-way-transformer mask
  decoder, IoU head) at a small size, with its `SamProcessor`, so the service code that runs it runs a
  `facebook/sam-vit-*` checkpoint unchanged. It learns SAM's task: points (foreground/background) or a
  box -> the mask of the garment (or the whole person) they pick, with the mask's predicted IoU. One
  point is ambiguous (a point on a top picks the top, or the whole outfit, or the person), so as in
  SAM a single point trains the three multimask outputs with the best one's loss, and several points
  or a box train the single output.
- `parser/`: transformers' `SegformerForSemanticSegmentation`, the architecture of the clothes parsers
  published for it (`mattmdjaga/segformer_b2_clothes`), with their label names for what the small
  world draws (Upper-clothes, Skirt, Pants, Dress), so a garment category's mask comes without clicks,
  as OOTDiffusion's human parsing gives it.

Figures wearing a held-out (type, colour, pattern) combination (`split.py`) never occur in the
training figures (checked when they are made); the evaluation segments figures wearing exactly those.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fashion_studio.mini.common import Budget, count_parameters, lr_at, seed_everything, set_lr, write_json
from fashion_studio.mini.data import HELDOUT, TRAIN, split_seed
from fashion_studio.mini.figures import FULL_TYPES, LOWER_TYPES, UPPER_TYPES, FigureSpec, dress_figure, random_figure, random_garment, render_figure
from fashion_studio.mini.render import IMAGE_SIZE
from fashion_studio.mini.split import combination, held_out_combinations

logger = logging.getLogger(__name__)

FIGURE_DATA_VERSION = 1
SEGMENTER_RECIPE_VERSION = 2  # the training recipe (prompt mix, position features): part of the stage's key
SAM_FOLDER = "sam"
PARSER_FOLDER = "parser"
# The parser's labels: the names the published SegFormer clothes parsers use for these garments, and
# "Background"/"Body" for the rest (a category's mask is read by label name, so either model serves).
PARSER_LABELS: tuple[str, ...] = ("Background", "Body", "Upper-clothes", "Skirt", "Pants", "Dress")
# Which parser labels make up each garment category's mask (the renderer's masks: "full" is all the
# clothing, a dress or a top with its bottom). Real clothes parsers use the same names.
CATEGORY_LABELS: dict[str, tuple[str, ...]] = {
    "upper": ("Upper-clothes",),
    "lower": ("Skirt", "Pants"),
    "full": ("Upper-clothes", "Skirt", "Pants", "Dress"),
}
PARSER_INPUT = 128  # the parser reads figures at 2x: its logits are a quarter of its input
EVAL_POINTS = 3
POSITION_SCALE = 2.0  # the standard deviation of SAM's positional Fourier frequencies (`new_sam`)
# SAM's training prompts: a box, one point (three candidates), or 2-3 points (one mask), by share of steps.
BOX_SHARE, SINGLE_POINT_SHARE = 0.15, 0.2
BASELINE_FIGURES = 400  # the colour-threshold baseline's threshold is chosen on these training figures
MASK_TARGETS: tuple[str, ...] = ("upper", "lower", "full", "person")


# -- data ---------------------------------------------------------------------------------------------


@dataclass
class FigureSet:
    """Rendered figures: uint8 (n, 64, 64, 3) images, boolean (n, 4, 64, 64) masks in `MASK_TARGETS`
    order, and the specs."""

    images: np.ndarray
    masks: np.ndarray
    specs: list[FigureSpec]


def _wears_held_out(spec: FigureSpec, held: frozenset) -> bool:
    return any(combination(g) in held for g in spec.garments().values())


def make_figures(n: int, seed: int, split: str) -> list[FigureSpec]:
    """`n` random figures. TRAIN: none wears a held-out combination. HELDOUT: each wears at least one
    held-out combination, as its top (or dress) or its bottom; the other garment is random."""
    held = frozenset(held_out_combinations(seed))
    rng = np.random.default_rng([split_seed(seed, split), 2_002])
    wearable = [c for c in sorted(held) if c[0] in UPPER_TYPES + LOWER_TYPES + FULL_TYPES]
    specs: list[FigureSpec] = []
    while len(specs) < n:
        spec = random_figure(rng)
        if split == HELDOUT:
            product_type, colour, pattern = wearable[rng.integers(len(wearable))]
            if product_type == "skirt" and spec.body == "man":
                spec = replace(spec, body="woman", hair="long")
            garment = random_garment(rng, (product_type,), (colour,), (pattern,))
            companion = None
            if product_type not in FULL_TYPES and spec.bottom is None:  # a dress on the figure: a top and a bottom instead
                companion = random_garment(rng, LOWER_TYPES if product_type in UPPER_TYPES else UPPER_TYPES)
            spec = dress_figure(spec, garment, companion)
        elif _wears_held_out(spec, held):
            continue
        specs.append(spec)
    return specs


def check_training_figures(specs: Sequence[FigureSpec], seed: int) -> int:
    """Raise if a training figure wears a held-out combination; returns the garments checked."""
    held = frozenset(held_out_combinations(seed))
    worn = [combination(g) for spec in specs for g in spec.garments().values()]
    leaked = sorted({c for c in worn if c in held})
    if leaked:
        raise ValueError(f"{len(leaked)} held-out combinations in the segmenter's training figures, e.g. {leaked[:3]}")
    return len(worn)


def _render_one(spec: FigureSpec) -> tuple[np.ndarray, np.ndarray]:
    rendered = render_figure(spec)
    return rendered.array(), np.stack([rendered.masks[name] for name in MASK_TARGETS])


def render_figures(specs: Sequence[FigureSpec], workers: int = 2) -> FigureSet:
    if workers > 1 and len(specs) > 64:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            done = list(pool.map(_render_one, specs, chunksize=64))
    else:
        done = [_render_one(s) for s in specs]
    return FigureSet(np.stack([d[0] for d in done]), np.stack([d[1] for d in done]), list(specs))


def figure_set(work: Path, n: int, seed: int, split: str, workers: int = 2) -> FigureSet:
    """Rendered once into the work folder (images, masks and specs), then read back."""
    folder = Path(work) / f"figures-v{FIGURE_DATA_VERSION}-{split}-{n}-{seed}"
    if (folder / "specs.json").is_file():
        data = np.load(folder / "figures.npz")
        specs = [FigureSpec.from_dict(d) for d in json.loads((folder / "specs.json").read_text())]
        return FigureSet(data["images"], data["masks"], specs)
    specs = make_figures(n, seed, split)
    if split == TRAIN:
        check_training_figures(specs, seed)
    rendered = render_figures(specs, workers)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / "figures.npz", images=rendered.images, masks=rendered.masks)
    (folder / "specs.json").write_text(json.dumps([s.to_dict() for s in specs]))
    return rendered


def garment_targets(masks: np.ndarray, specs: Sequence[FigureSpec]) -> list[tuple[int, str]]:
    """(figure, mask name) of every garment worn: upper and lower, or the dress's full mask."""
    return [(i, category) for i, spec in enumerate(specs) for category in spec.garments() if masks[i, MASK_TARGETS.index(category)].any()]


def sample_points(mask: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """`k` distinct pixel centres inside `mask`, as (x, y) in pixels."""
    ys, xs = np.nonzero(mask)
    chosen = rng.choice(len(xs), size=k, replace=len(xs) < k)
    return np.stack([xs[chosen] + 0.5, ys[chosen] + 0.5], axis=1).astype(np.float32)


def _points_for(masks: np.ndarray, target: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """`k` points for a multi-point prompt of `target` (a `MASK_TARGETS` index) on one figure's masks: inside
    the target; for all the clothing of a top and a bottom, on both of them, so that the prompt says so."""
    upper, lower = masks[MASK_TARGETS.index("upper")], masks[MASK_TARGETS.index("lower")]
    if k >= 2 and MASK_TARGETS[target] == "full" and upper.any() and lower.any():
        first = int(rng.integers(1, k))
        return np.concatenate([sample_points(upper, first, rng), sample_points(lower, k - first, rng)])
    return sample_points(masks[target], k, rng)


def mask_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


# -- models -------------------------------------------------------------------------------------------


def sam_config() -> Any:
    from transformers import SamConfig, SamMaskDecoderConfig, SamPromptEncoderConfig, SamVisionConfig

    hidden = 64
    vision = SamVisionConfig(
        hidden_size=96,
        output_channels=hidden,
        num_hidden_layers=4,
        num_attention_heads=4,
        image_size=IMAGE_SIZE,
        patch_size=4,
        window_size=8,
        global_attn_indexes=[1, 3],
        num_pos_feats=hidden // 2,
        mlp_dim=384,
        use_rel_pos=False,  # absolute positions only: attention without a bias runs the fast kernels
        initializer_range=0.02,
    )
    prompt = SamPromptEncoderConfig(hidden_size=hidden, image_size=IMAGE_SIZE, patch_size=4, mask_input_channels=8)
    decoder = SamMaskDecoderConfig(hidden_size=hidden, mlp_dim=256, num_hidden_layers=2, num_attention_heads=4, iou_head_hidden_dim=64)
    return SamConfig(vision_config=vision.to_dict(), prompt_encoder_config=prompt.to_dict(), mask_decoder_config=decoder.to_dict())


def new_sam(seed: int) -> Any:
    """A fresh `SamModel` of `sam_config()`. The random Fourier features that encode positions (shared by
    the prompt encoder's points and the image's dense positional embedding) are drawn at SAM's own
    scale for a small grid, `POSITION_SCALE`: transformers initialises them at hidden_size / 2 (48 here),
    frequencies so high that neighbouring pixels get unrelated codes and a model trained from scratch
    cannot learn where a point is (pretrained checkpoints load theirs, so only a new model needs this)."""
    import torch
    from transformers import SamModel

    model = SamModel(sam_config())
    generator = torch.Generator().manual_seed(seed)
    features = model.shared_image_embedding.positional_embedding
    features.data = POSITION_SCALE * torch.randn(features.shape, generator=generator)
    model.tie_weights()
    return model


def sam_processor() -> Any:
    from transformers import SamImageProcessor, SamProcessor

    size = IMAGE_SIZE
    return SamProcessor(
        SamImageProcessor(
            size={"longest_edge": size},
            pad_size={"height": size, "width": size},
            mask_size={"longest_edge": size // 4},
            mask_pad_size={"height": size // 4, "width": size // 4},
        )
    )


def parser_config() -> Any:
    from transformers import SegformerConfig

    return SegformerConfig(
        num_channels=3,
        num_encoder_blocks=4,
        depths=[1, 1, 2, 1],
        sr_ratios=[8, 4, 2, 1],
        hidden_sizes=[24, 48, 96, 128],
        num_attention_heads=[1, 2, 4, 4],
        mlp_ratios=[4, 4, 4, 4],
        decoder_hidden_size=96,
        num_labels=len(PARSER_LABELS),
        id2label=dict(enumerate(PARSER_LABELS)),
        label2id={name: i for i, name in enumerate(PARSER_LABELS)},
    )


def parser_processor() -> Any:
    from transformers import SegformerImageProcessor

    return SegformerImageProcessor(size={"height": PARSER_INPUT, "width": PARSER_INPUT}, do_reduce_labels=False)


def parser_labels(masks: np.ndarray, specs: Sequence[FigureSpec]) -> np.ndarray:
    """Per-pixel label indices (n, 64, 64) from the renderer's masks."""
    labels = np.zeros(masks.shape[:1] + masks.shape[2:], np.int64)
    index = {name: i for i, name in enumerate(PARSER_LABELS)}
    for i, spec in enumerate(specs):
        person, upper, lower, full = (masks[i, MASK_TARGETS.index(n)] for n in ("person", "upper", "lower", "full"))
        labels[i][person] = index["Body"]
        if spec.bottom is None:
            labels[i][full] = index["Dress"]
        else:
            labels[i][upper] = index["Upper-clothes"]
            labels[i][lower] = index["Skirt" if spec.bottom.product_type == "skirt" else "Pants"]
    return labels


def _pixel_values(processor: Any, images: np.ndarray, batch: int = 512) -> Any:
    import torch

    parts = [processor(images=list(images[s : s + batch]), return_tensors="pt")["pixel_values"] for s in range(0, len(images), batch)]
    return torch.cat(parts)


def _dice_bce(logits: Any, target: Any) -> Any:
    """Per-example BCE + dice on mask logits (..., H, W) against float targets of the same shape."""
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean((-2, -1))
    p = logits.sigmoid()
    dice = 1 - (2 * (p * target).sum((-2, -1)) + 1) / (p.sum((-2, -1)) + target.sum((-2, -1)) + 1)
    return bce + dice


def _step(optimizer: Any, loss: Any, losses: list[float]) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())


def _save(model: Any, processor: Any, folder: Path, budget: Budget, losses: list[float], **extra: Any) -> dict[str, Any]:
    """Save a trained model with its processor (`from_pretrained` layout); its training summary."""
    model.eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    tail = losses[-50:]
    return {**budget.summary(), "final_loss": round(sum(tail) / max(1, len(tail)), 4), "parameters": count_parameters(model), **extra}


def train_sam(
    out: Path, figures: FigureSet, seed: int, steps: int, max_seconds: float, batch_size: int = 12, prompts_per_image: int = 6
) -> tuple[Any, dict[str, Any]]:
    """Prompt -> mask training on the figures. Each step encodes `batch_size` figures once and decodes
    `prompts_per_image` prompts on each (SAM's image embedding is shared by its prompts): a target (a
    garment, all the clothing, or the person) and a prompt drawn for it: 1-3 foreground points
    (sometimes one background point too), or the target's box with a little jitter."""
    import torch

    seed_everything(seed)
    model = new_sam(seed)
    model.train()
    processor = sam_processor()
    pixel_values = _pixel_values(processor.image_processor, figures.images)
    masks = torch.from_numpy(figures.masks)
    present = figures.masks.reshape(len(figures.masks), len(MASK_TARGETS), -1).any(-1)
    garment_present = present.copy()
    garment_present[:, MASK_TARGETS.index("person")] = False
    optimizer = torch.optim.AdamW(model.parameters(), lr=8e-4, weight_decay=1e-4)
    rng = np.random.default_rng([seed, 2_003])
    budget = Budget(steps, max_seconds)
    losses: list[float] = []
    b, p = batch_size, prompts_per_image
    for step in budget:
        set_lr(optimizer, lr_at(step, steps, 8e-4, warmup=min(100, steps // 10)))
        figure = rng.integers(len(figures.images), size=b)
        kind = rng.random()
        single = BOX_SHARE <= kind < BOX_SHARE + SINGLE_POINT_SHARE
        # One point is ambiguous: any mask containing it (garment, all the clothing, the person) is a
        # target, and the three candidates train on the best one's loss. Several points or a box mean
        # a garment (or, with points on both halves of an outfit, all the clothing).
        target_ids = np.stack([rng.choice(np.flatnonzero(present[f] if single else garment_present[f]), size=p) for f in figure])  # (b, p)
        target = masks[torch.from_numpy(figure)[:, None], torch.from_numpy(target_ids)].float()  # (b, p, 64, 64)
        kwargs: dict[str, Any] = {}
        if kind < BOX_SHARE:
            boxes = np.stack([[mask_box(figures.masks[f, m]) for m in row] for f, row in zip(figure, target_ids)])
            boxes += rng.normal(0, 1.0, boxes.shape).astype(np.float32)
            kwargs["input_boxes"] = torch.from_numpy(np.clip(boxes, 0, IMAGE_SIZE))
            multimask = False
        else:
            k = 1 if single else int(rng.integers(2, EVAL_POINTS + 1))
            background = not single and rng.random() < 0.3
            points = np.zeros((b, p, k + background, 2), np.float32)
            labels = np.ones((b, p, k + background), np.int64)
            for row, f in enumerate(figure):
                for col, m in enumerate(target_ids[row]):
                    points[row, col, :k] = _points_for(figures.masks[f], int(m), k, rng)
                    if background:
                        points[row, col, k] = sample_points(~figures.masks[f, m], 1, rng)[0]
                        labels[row, col, k] = 0
            kwargs["input_points"] = torch.from_numpy(points)
            kwargs["input_labels"] = torch.from_numpy(labels)
            multimask = single
        output = model(pixel_values=pixel_values[figure], multimask_output=multimask, **kwargs)
        logits = output.pred_masks  # (b, p, masks, 64, 64)
        per_mask = _dice_bce(logits, target[:, :, None].expand_as(logits))
        loss_mask, _ = per_mask.min(2)
        with torch.no_grad():
            predicted = logits > 0
            truth = target[:, :, None] > 0.5
            iou = (predicted & truth).sum((-2, -1)).float() / (predicted | truth).sum((-2, -1)).float().clamp(min=1)
        loss = loss_mask.mean() + torch.nn.functional.mse_loss(output.iou_scores, iou)
        _step(optimizer, loss, losses)
    info = _save(model, processor, Path(out) / SAM_FOLDER, budget, losses, batch_size=b, prompts_per_image=p, training_figures=len(figures.images), seed=seed)
    return model, info


def train_parser(out: Path, figures: FigureSet, seed: int, steps: int, max_seconds: float, batch_size: int = 32) -> tuple[Any, dict[str, Any]]:
    """Per-pixel labels (`PARSER_LABELS`) from the renderer's masks; cross-entropy at the parser's
    logit resolution on the labels resized to it, as SegFormer trains."""
    import torch
    import torch.nn.functional as F
    from transformers import SegformerForSemanticSegmentation

    seed_everything(seed + 1)
    model = SegformerForSemanticSegmentation(parser_config())
    model.train()
    processor = parser_processor()
    pixel_values = _pixel_values(processor, figures.images)
    labels = torch.from_numpy(parser_labels(figures.masks, figures.specs))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    rng = np.random.default_rng([seed, 2_004])
    budget = Budget(steps, max_seconds)
    losses: list[float] = []
    for step in budget:
        set_lr(optimizer, lr_at(step, steps, 2e-3, warmup=min(50, steps // 10)))
        index = torch.from_numpy(rng.integers(len(labels), size=batch_size))
        logits = model(pixel_values=pixel_values[index]).logits
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(logits, labels[index])
        _step(optimizer, loss, losses)
    info = _save(model, processor, Path(out) / PARSER_FOLDER, budget, losses, batch_size=batch_size, labels=list(PARSER_LABELS), seed=seed)
    return model, info


def train(
    out: Path, work: Path, n_figures: int, seed: int, steps: dict[str, int], max_seconds: float, batch_sizes: dict[str, int], workers: int = 2
) -> dict[str, Any]:
    """The segmenter stage: render the training figures, train SAM, then the parser in what time is left
    (a quarter of the cap is kept for the parser)."""
    import time

    started = time.perf_counter()
    figures = figure_set(work, n_figures, seed, TRAIN, workers)
    render_seconds = time.perf_counter() - started
    left = max_seconds - render_seconds
    _, sam_info = train_sam(out, figures, seed, steps["sam"], left - 0.25 * max_seconds, batch_sizes["sam"])
    left = max_seconds - (time.perf_counter() - started)
    _, parser_info = train_parser(out, figures, seed, steps["parser"], max(left, 0.1 * max_seconds), batch_sizes["parser"])
    info = {
        "figures": n_figures,
        "garments_checked": check_training_figures(figures.specs, seed),
        "figure_rendering_seconds": round(render_seconds, 1),
        "sam": sam_info,
        "parser": parser_info,
        "figure_data_version": FIGURE_DATA_VERSION,
        "stopped_early": sam_info["stopped_early"] or parser_info["stopped_early"],
    }
    write_json(Path(out) / "training.json", info)
    return info


# -- evaluation ---------------------------------------------------------------------------------------


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def colour_threshold_mask(image: np.ndarray, points: np.ndarray, threshold: float) -> np.ndarray:
    """The baseline: pixels within `threshold` (RGB distance) of the colour under any clicked point."""
    pixels = image.astype(np.float32)
    colours = np.stack([pixels[int(y), int(x)] for x, y in points])
    distance = np.linalg.norm(pixels[:, :, None, :] - colours[None, None], axis=-1).min(-1)
    return distance <= threshold


def _clicks(figures: FigureSet, seed: int) -> list[tuple[int, str, np.ndarray]]:
    rng = np.random.default_rng([seed, 2_005])
    return [
        (i, category, sample_points(figures.masks[i, MASK_TARGETS.index(category)], EVAL_POINTS, rng))
        for i, category in garment_targets(figures.masks, figures.specs)
    ]


def best_threshold(figures: FigureSet, seed: int, grid: Sequence[float] = (10, 20, 30, 45, 60, 80, 100)) -> float:
    """The baseline's threshold, chosen on training figures (never on the held-out ones)."""
    clicks = _clicks(figures, seed)
    scores = {t: np.mean([iou(colour_threshold_mask(figures.images[i], p, t), figures.masks[i, MASK_TARGETS.index(c)]) for i, c, p in clicks]) for t in grid}
    return float(max(scores, key=scores.get))


def evaluate(models_dir: Path, work: Path, n_figures: int, seed: int, workers: int = 2, baseline_figures: int = BASELINE_FIGURES) -> dict[str, Any]:
    """Mean IoU on held-out figures: SAM from three random points inside each worn garment, beside the
    colour-threshold baseline from the same points; and the parser's category masks without clicks."""
    from fashion_studio.segmentation import Segmenter

    segmenter = Segmenter.load(Path(models_dir) / "segmenter")
    figures = figure_set(work, n_figures, seed, HELDOUT, workers)
    threshold = best_threshold(figure_set(work, baseline_figures, seed, TRAIN, workers), seed)  # the training figures' first ones
    clicks = _clicks(figures, seed + 1)
    sam, baseline, by_category = [], [], {}
    for i, category, points in clicks:
        truth = figures.masks[i, MASK_TARGETS.index(category)]
        image = figures.images[i]
        (result,) = segmenter.from_points(Image.fromarray(image), points.tolist(), [1] * len(points))
        score = iou(result.mask, truth)
        sam.append(score)
        baseline.append(iou(colour_threshold_mask(image, points, threshold), truth))
        by_category.setdefault(category, []).append(score)
    parsed: dict[str, list[float]] = {}
    for i, spec in enumerate(figures.specs):
        wanted = ["full", *spec.garments()] if spec.bottom is not None else ["full"]
        found = segmenter.by_category(Image.fromarray(figures.images[i]), wanted)
        for category in wanted:
            parsed.setdefault(category, []).append(iou(found[category], figures.masks[i, MASK_TARGETS.index(category)]))
    return {
        "figures": len(figures.images),
        "garments": len(clicks),
        "held_out": "every figure wears a held-out (type, colour, pattern) combination; training figures wear none (checked)",
        "points": EVAL_POINTS,
        "sam_mean_iou": round(float(np.mean(sam)), 4),
        "sam_by_category": {c: round(float(np.mean(v)), 4) for c, v in sorted(by_category.items())},
        "baseline": {
            "method": "pixels within an RGB distance of a clicked pixel's colour",
            "threshold": threshold,
            "chosen_on": f"{baseline_figures} training figures",
            "mean_iou": round(float(np.mean(baseline)), 4),
        },
        "parser_mean_iou": {c: round(float(np.mean(v)), 4) for c, v in sorted(parsed.items())},
    }


# -- records and the model card -----------------------------------------------------------------------

TARGETS = {"segmentation_mean_iou": 0.85}
EVAL_FIGURES = 200


def has_segmenter(models_dir: Path) -> bool:
    return (Path(models_dir) / "segmenter" / SAM_FOLDER / "config.json").is_file()


def evaluate_family(models_dir: Path, work: Path, seed: int, workers: int = 2) -> dict[str, Any] | None:
    """The segmenter's section of eval.json, or None when the family has no segmenter."""
    if not has_segmenter(models_dir):
        return None
    return evaluate(models_dir, work, EVAL_FIGURES, seed, workers)


def summary(results: dict[str, Any]) -> dict[str, float]:
    return {
        "segmentation_mean_iou": results["sam_mean_iou"],
        "segmentation_baseline_mean_iou": results["baseline"]["mean_iou"],
        **{f"parser_{category}_mean_iou": value for category, value in results["parser_mean_iou"].items()},
    }


def record_evaluation(models_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Put the segmenter's figures into an existing eval.json (`eval-mini --segmenter-only`); the other
    models' figures stay as they are."""
    from fashion_studio.mini import cards

    return cards.record_section(models_dir, "segmenter", results, summary(results), TARGETS)


def segmenter_card(training: dict[str, Any], ev: dict[str, Any] | None) -> str:
    """models/fashion-mini/segmenter/README.md from the training and evaluation records."""
    from fashion_studio.mini.cards import _header, _minutes, _stage_line

    info = training.get("stages", {}).get("segmenter", {})
    result = (ev or {}).get("segmenter")
    sam, parser = info.get("sam", {}), info.get("parser", {})
    if result:
        by_category = ", ".join(f"{c} {r:.3f}" for c, r in result["sam_by_category"].items())
        parsed = ", ".join(f"{c} {r:.3f}" for c, r in result["parser_mean_iou"].items())
        evaluation = f"""| Measure (held-out figures) | Mean IoU | Target |
|---|---|---|
| SAM from {result["points"]} random points inside the garment | {result["sam_mean_iou"]:.3f} | {TARGETS["segmentation_mean_iou"]:.2f} |
| Colour-threshold baseline from the same points (threshold {result["baseline"]["threshold"]:g}, chosen on {result["baseline"]["chosen_on"]}) | {result["baseline"]["mean_iou"]:.3f} | |

{result["garments"]} garments on {result["figures"]} figures; {result["held_out"]}. SAM by category: {by_category}.
The parser's category masks without clicks: {parsed}. Measured with `fashion-studio models eval-mini --segmenter-only`
(figures in `eval.json`, `segmenter`); the {TARGETS["segmentation_mean_iou"]:.2f} target is {"met" if result["sam_mean_iou"] >= TARGETS["segmentation_mean_iou"] else "missed"}."""
    else:
        evaluation = "Not evaluated yet: run `fashion-studio models eval-mini --segmenter-only`."
    return f"""{_header("fashion-mini/segmenter", "A Segment-Anything-shaped model (transformers `SamModel`) and a SegFormer clothes parser, trained on the figure renderer's exact garment masks: a garment's mask from a few clicks or a box, and a garment category's mask without clicks.")}
## Use

```python
from fashion_studio.segmentation import Segmenter
segmenter = Segmenter.load("models/fashion-mini/segmenter")  # sam/ and parser/
(mask,) = segmenter.from_points(image, [[30, 20], [34, 26], [28, 24]], [1, 1, 1])
masks = segmenter.by_category(image, ["upper"])
```

`sam/` loads with `SamModel.from_pretrained` and `SamProcessor.from_pretrained`, `parser/` with
`SegformerForSemanticSegmentation` and `SegformerImageProcessor`. They are the defaults of `POST /segment`
(`FASHION_SEGMENTER`, `FASHION_PARSER`); production sets `FASHION_SEGMENTER=facebook/sam-vit-base` and
`FASHION_PARSER=mattmdjaga/segformer_b2_clothes`, whose label names (Upper-clothes, Skirt, Pants, Dress) this
parser uses too.

## Architecture

- `sam/`: `SamModel` with a 4-layer ViT image encoder (hidden 96, patch 4, windows of 8 with two global
  layers, absolute positions) over 64x64 images, SAM's prompt encoder and two-way-transformer mask decoder
  (hidden 64) with its IoU head; {sam.get("parameters", 0) / 1e6:.2f} M parameters. The mask decoder's low-resolution
  masks are 64x64, the image's own size.
- `parser/`: `SegformerForSemanticSegmentation` (4 stages, hidden sizes 24-128) reading figures at
  {PARSER_INPUT}x{PARSER_INPUT}; labels {", ".join(PARSER_LABELS)}; {parser.get("parameters", 0) / 1e6:.2f} M parameters.

## Data

{info.get("figures", "n/a")} figures from `fashion_studio.mini.figures` (women and men, five skin tones, hair,
small pose jitter) wearing a top and a bottom or a dress, with the renderer's exact per-garment masks. No
training figure wears a held-out (type, colour, pattern) combination ({info.get("garments_checked", "n/a")} garments checked).
Each SAM example is a figure, a target (a garment, all the clothing, or the person) and a prompt: one point
(the three candidate masks train on the best one's loss, as in SAM), 2-3 points with sometimes a background
point, or the target's box with a little jitter; BCE + dice on the mask, MSE of the IoU head against the
mask's real IoU. The parser trains with cross-entropy on the per-pixel labels.

## Training

`fashion-studio models train-mini --only segmenter`: {_minutes(info.get("wall_seconds"))} in all, of which
{info.get("figure_rendering_seconds", "n/a")} s rendering the figures (or reading them from the work folder, where an earlier
run left them; rendering 2,000 takes about a minute on 2 cores).

{_stage_line("SAM", {**sam, "wall_seconds": sam.get("seconds")})}
{_stage_line("Parser", {**parser, "wall_seconds": parser.get("seconds")})}

## Evaluation

{evaluation}

## Limits

64x64 front-view figures only; it has never seen a photograph. For real images set `FASHION_SEGMENTER` and
`FASHION_PARSER` to real checkpoints.
"""


def write_card(models_dir: Path) -> Path:
    """Write the segmenter's card alone (`eval-mini --segmenter-only`)."""
    from fashion_studio.mini import cards

    return cards.write_card(models_dir, "segmenter", segmenter_card)
