"""fashion-mini/editor: an InstructPix2Pix-shaped editor trained on renderer pairs.

The UNet takes the source image's VAE latents as 4 extra input channels (8 in), as
`timbrooks/instruct-pix2pix` does; it starts from the fashion-mini generator's UNet with the extra
input channels zero-initialised, so it begins as the generator and learns to read the source from
there. It is conditioned on the instruction through the fashion-mini text encoder and trained on
pairs the renderer draws: one product (the same Spec geometry: type, shape, position, rotation,
shade) before and after an edit of its colour or pattern, with an instruction from templates. As in
InstructPix2Pix, 5% of the examples drop the instruction, 5% the source image and 5% both, so text
guidance and image guidance both work at sampling time.

Held-out (product type, target colour) and (product type, target pattern) combinations never occur in
the training pairs (checked when the pairs are made); `evaluate_editor` edits products into exactly
those combinations and asks the judge what it sees.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fashion_studio.mini.common import Budget, count_parameters, lr_at, seed_everything, set_lr
from fashion_studio.mini.data import HELDOUT, TRAIN, render_images, split_seed
from fashion_studio.mini.render import Spec
from fashion_studio.mini.text import sample_spec
from fashion_studio.mini.vocab import COLOUR_NAMES, PATTERNS, TYPE_NAMES

logger = logging.getLogger(__name__)

EDIT_DATA_VERSION = 2
# InstructPix2Pix's conditioning dropout: instruction alone 5%, image alone 5%, both 5%.
CONDITIONING_DROPOUT = 0.05
# The sampling the evaluation and the service defaults use (FASHION_EDIT_*).
EDIT_STEPS = 20
# The service defaults (settings `edit_guidance`, `edit_image_guidance`) for fashion-mini's editor: the best of
# `GUIDANCE_GRID` on validation pairs of seen combinations (`select_guidance`, recorded in eval.json), never
# on held-out ones. A real InstructPix2Pix runs at its own defaults, 7.5 and 1.5 (the gpu overlay's settings).
EDIT_GUIDANCE = 7.5
EDIT_IMAGE_GUIDANCE = 1.2
GUIDANCE_GRID: tuple[tuple[float, float], ...] = ((5.0, 1.5), (7.5, 1.5), (7.5, 1.2), (10.0, 1.5))
VALIDATION_SEED_OFFSET = 7  # validation pairs: the TRAIN split's generator with another seed (other products)

COLOUR_TEMPLATES: tuple[str, ...] = (
    "make it {value}",
    "change the colour to {value}",
    "change the color to {value}",
    "turn it {value}",
    "make the {product} {value}",
    "recolour it in {value}",
    "I want it in {value}",
    "can I have it in {value}?",
    "{value} instead",
    "dye the {product} {value}",
)
PATTERN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "stripes": ("add stripes", "make it striped", "give it stripes", "put stripes on the {product}", "I want it striped"),
    "dots": ("give it dots", "add polka dots", "make it dotted", "put dots on the {product}", "I want it with dots"),
    "checks": ("add checks", "make it checked", "give it a check pattern", "make the {product} plaid", "I want it checked"),
    "plain": ("make it plain", "remove the pattern", "make it a solid colour", "no pattern on the {product}", "I want it plain"),
}
KINDS = ("colour", "pattern")


@dataclass(frozen=True)
class EditPair:
    """One training or evaluation example: a product before and after one edit, and the instruction."""

    source: Spec
    target: Spec
    kind: str  # "colour" | "pattern"
    value: str  # the target colour or pattern
    instruction: str

    @property
    def combination(self) -> tuple[str, str, str]:
        """The edit: (kind, product type, target value)."""
        return (self.kind, self.source.product_type, self.value)

    def shown(self) -> set[tuple[str, str, str]]:
        """What the edited product shows, in the same terms: its (type, colour) and (type, pattern)."""
        return {("colour", self.target.product_type, self.target.colour), ("pattern", self.target.product_type, self.target.pattern)}

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source.to_dict(), "target": self.target.to_dict(), "kind": self.kind, "value": self.value, "instruction": self.instruction}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EditPair:
        def spec(d: dict[str, Any]) -> Spec:
            return Spec(**{**d, "tint": tuple(d["tint"])})

        return cls(spec(data["source"]), spec(data["target"]), data["kind"], data["value"], data["instruction"])


def heldout_combinations() -> frozenset[tuple[str, str, str]]:
    """(kind, product type, target value) combinations kept out of training: two target colours and
    one target pattern per product type, rotating so that every colour and pattern is held out for
    some types and learnt on the others."""
    held: set[tuple[str, str, str]] = set()
    for i, product in enumerate(TYPE_NAMES):
        held.add(("colour", product, COLOUR_NAMES[(2 * i) % len(COLOUR_NAMES)]))
        held.add(("colour", product, COLOUR_NAMES[(2 * i + 7) % len(COLOUR_NAMES)]))
        held.add(("pattern", product, PATTERNS[i % len(PATTERNS)]))
    return frozenset(held)


def instruction(kind: str, value: str, product_type: str, rng: np.random.Generator) -> str:
    templates = COLOUR_TEMPLATES if kind == "colour" else PATTERN_TEMPLATES[value]
    return templates[rng.integers(len(templates))].format(value=value, product=product_type)


def apply_edit(spec: Spec, kind: str, value: str) -> Spec:
    return replace(spec, colour=value) if kind == "colour" else replace(spec, pattern=value)


def _spec_of_type(rng: np.random.Generator, product_type: str) -> Spec:
    while True:
        spec = sample_spec(rng)
        if spec.product_type == product_type:
            return spec


def make_pairs(n: int, seed: int, split: str = TRAIN) -> list[EditPair]:
    """`n` edit pairs, deterministic per seed. TRAIN: random products and edits whose result never shows
    a held-out combination (no edit into one, and no edit of the other attribute of a product that
    shows one); HELDOUT: edits into the held-out combinations only, round robin over them."""
    rng = np.random.default_rng(split_seed(seed, split) + 900)
    held_set = heldout_combinations()
    held = sorted(held_set)
    pairs: list[EditPair] = []
    while len(pairs) < n:
        if split == TRAIN:
            source = sample_spec(rng)
            kind = KINDS[int(rng.random() < 0.45)]
            values = COLOUR_NAMES if kind == "colour" else PATTERNS
            current = source.colour if kind == "colour" else source.pattern
            options = [v for v in values if v != current and (kind, source.product_type, v) not in held]
            value = options[rng.integers(len(options))]
            if EditPair(source, apply_edit(source, kind, value), kind, value, "").shown() & held_set:
                continue
        else:
            kind, product, value = held[len(pairs) % len(held)]
            source = _spec_of_type(rng, product)
            while (source.colour if kind == "colour" else source.pattern) == value:
                source = _spec_of_type(rng, product)
        pairs.append(EditPair(source, apply_edit(source, kind, value), kind, value, instruction(kind, value, source.product_type, rng)))
    if split == TRAIN:
        check_disjoint(pairs)
    return pairs


def check_disjoint(train_pairs: Sequence[EditPair]) -> None:
    """Raise if any training pair edits into a held-out combination or its result shows one."""
    leaked = sorted(set().union(*({p.combination} | p.shown() for p in train_pairs)) & heldout_combinations()) if train_pairs else []
    if leaked:
        raise ValueError(f"held-out edit combinations occur in the training pairs: {leaked[:5]}")


@dataclass
class PairSet:
    pairs: list[EditPair]
    sources: np.ndarray  # uint8 (n, 64, 64, 3)
    targets: np.ndarray


def pair_set(work: Path, n: int, seed: int, split: str, workers: int = 2) -> PairSet:
    """The rendered pairs for (n, seed, split), from the cache under `work` or rendered now and cached."""
    folder = Path(work) / "editor-data" / f"{split}-{n}-seed{seed}-v{EDIT_DATA_VERSION}"
    if (folder / "pairs.json").is_file() and (folder / "targets.npy").is_file():
        pairs = [EditPair.from_dict(d) for d in json.loads((folder / "pairs.json").read_text())]
        if split == TRAIN:
            check_disjoint(pairs)
        return PairSet(pairs, np.load(folder / "sources.npy"), np.load(folder / "targets.npy"))
    pairs = make_pairs(n, seed, split)
    logger.info("rendering %d %s edit pairs", n, split)
    rendered = render_images([p.source for p in pairs] + [p.target for p in pairs], workers)
    data = PairSet(pairs, rendered[:n], rendered[n:])
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "sources.npy", data.sources)
    np.save(folder / "targets.npy", data.targets)
    (folder / "pairs.json").write_text(json.dumps([p.to_dict() for p in pairs], ensure_ascii=False))
    return data


# ---------------------------------------------------------------------------------------------------
# Model


def editor_unet(generator_unet: Any) -> Any:
    """The generator's UNet with 8 input channels: its weights, plus zero weights for the 4 channels of
    the source image's latents, so that training starts from the generator's behaviour."""
    import torch
    from diffusers import UNet2DConditionModel

    config = dict(generator_unet.config)
    latent_channels = config["in_channels"]
    config["in_channels"] = 2 * latent_channels
    unet = UNet2DConditionModel.from_config(config)
    state = generator_unet.state_dict()
    weight = state["conv_in.weight"]
    extended = torch.zeros(weight.shape[0], 2 * latent_channels, *weight.shape[2:], dtype=weight.dtype)
    extended[:, :latent_channels] = weight
    state["conv_in.weight"] = extended
    unet.load_state_dict(state)
    return unet


def _components(sd_dir: Path) -> tuple[Any, Any, Any, Any]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    vae = AutoencoderKL.from_pretrained(sd_dir / "vae").eval().requires_grad_(False)
    text_encoder = CLIPTextModel.from_pretrained(sd_dir / "text_encoder").eval().requires_grad_(False)
    tokenizer = CLIPTokenizer.from_pretrained(sd_dir / "tokenizer")
    unet = UNet2DConditionModel.from_pretrained(sd_dir / "unet")
    return vae, text_encoder, tokenizer, unet


def _latents(vae: Any, images: np.ndarray, batch_size: int = 256) -> tuple[Any, Any]:
    """Posterior means and standard deviations, unscaled (what the pipeline's `mode()` gives)."""
    import torch

    from fashion_studio.mini.sd import _to_tensor

    means, stds = [], []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            dist = vae.encode(_to_tensor(images[start : start + batch_size])).latent_dist
            means.append(dist.mean)
            stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


def train_editor(
    out: Path,
    sd_dir: Path,
    data: PairSet,
    seed: int,
    steps: int,
    max_seconds: float,
    batch_size: int = 48,
    lr: float = 5e-4,
) -> tuple[Any, dict[str, Any]]:
    """Fine-tune the 8-channel UNet on `data`, then save the whole pipeline (with its own copies of the
    VAE, text encoder and tokenizer) to `out`."""
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler

    from fashion_studio.mini.sd import MIN_SNR_GAMMA, OFFSET_NOISE, SCHEDULER_CONFIG, encode_prompts

    seed_everything(seed)
    vae, text_encoder, tokenizer, generator_unet = _components(Path(sd_dir))
    unet = editor_unet(generator_unet)
    unet.train()
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    scaling = float(vae.config.scaling_factor)
    source_latents, _ = _latents(vae, data.sources)
    target_means, target_stds = _latents(vae, data.targets)
    texts = sorted({p.instruction for p in data.pairs})
    text_index = torch.tensor([texts.index(p.instruction) for p in data.pairs])
    states = encode_prompts(text_encoder, tokenizer, [*texts, ""])
    empty = states[-1]
    noise_scheduler = DDPMScheduler(**SCHEDULER_CONFIG)
    snr = noise_scheduler.alphas_cumprod / (1 - noise_scheduler.alphas_cumprod)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    budget = Budget(steps, max_seconds)
    losses: list[float] = []
    p = CONDITIONING_DROPOUT
    for step in budget:
        idx = torch.from_numpy(rng.integers(0, len(data.pairs), batch_size))
        z0 = (target_means[idx] + target_stds[idx] * torch.randn(target_means[idx].shape, generator=generator)) * scaling
        noise = torch.randn(z0.shape, generator=generator)
        noise += OFFSET_NOISE * torch.randn((batch_size, z0.shape[1], 1, 1), generator=generator)
        t = torch.randint(0, SCHEDULER_CONFIG["num_train_timesteps"], (batch_size,), generator=generator)
        zt = noise_scheduler.add_noise(z0, noise, t)
        draw = torch.rand(batch_size, generator=generator)
        context = states[text_index[idx]].clone()
        context[draw < 2 * p] = empty
        image = source_latents[idx].clone()
        image[(draw >= p) & (draw < 3 * p)] = 0.0
        set_lr(optimizer, lr_at(step, steps, lr, warmup=min(100, steps // 10)))
        prediction = unet(torch.cat([zt, image], dim=1), t, encoder_hidden_states=context).sample
        weight = torch.clamp(snr[t], max=MIN_SNR_GAMMA) / snr[t]
        loss = (weight * F.mse_loss(prediction, noise, reduction="none").mean(dim=(1, 2, 3))).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        decay = min(0.998, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, q in zip(ema.parameters(), unet.parameters()):
                e.mul_(decay).add_(q.detach(), alpha=1 - decay)
        losses.append(loss.item())
    assemble(out, vae, ema, text_encoder, tokenizer)
    tail = losses[-100:]
    return ema, {
        **budget.summary(),
        "batch_size": batch_size,
        "learning_rate": lr,
        "final_loss": round(sum(tail) / max(1, len(tail)), 4),
        "parameters": count_parameters(ema),
        "ema_decay": 0.998,
        "train_pairs": len(data.pairs),
        "instructions": len(texts),
        "conditioning_dropout": p,
        "initialised_from": "fashion-mini/sd unet (extra input channels zero)",
    }


def assemble(out: Path, vae: Any, unet: Any, text_encoder: Any, tokenizer: Any, pipeline_class: Any = None) -> Any:
    """Write the standard diffusers folder of `pipeline_class` (default `StableDiffusionInstructPix2PixPipeline`;
    the inpainter's is `StableDiffusionInpaintPipeline`), no safety checker."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    from fashion_studio.mini.sd import scheduler

    pipe = (pipeline_class or StableDiffusionInstructPix2PixPipeline)(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(out, safe_serialization=True)
    for component in ("vae", "unet", "text_encoder"):  # diffusers and transformers record the folder each came from
        config_path = out / component / "config.json"
        config = json.loads(config_path.read_text())
        config.pop("_name_or_path", None)
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return pipe


# ---------------------------------------------------------------------------------------------------
# Evaluation


def evaluate_editor(
    editor_dir: Path,
    judge: Any,
    heldout: PairSet,
    train_pairs: Sequence[EditPair],
    seed: int = 0,
    steps: int = EDIT_STEPS,
    guidance: float = EDIT_GUIDANCE,
    image_guidance: float = EDIT_IMAGE_GUIDANCE,
    batch: int = 40,
    heldout_only: bool = True,
    editor: Any = None,
) -> dict[str, Any]:
    """Edit held-out products into held-out combinations through the serving library
    (`fashion_studio.editing.Editor`) and let the judge read the results."""
    import time

    from PIL import Image

    from fashion_studio.editing import Editor, EditRequest
    from fashion_studio.settings import Settings

    check_disjoint(train_pairs)
    held = heldout_combinations()
    outside = sorted({p.combination for p in heldout.pairs} - held)
    if heldout_only and outside:
        raise ValueError(f"evaluation pairs outside the held-out combinations: {outside[:5]}")
    editor = editor or Editor.load(Settings(editor=str(editor_dir)))
    requests = [
        editor.prepare(EditRequest(Image.fromarray(source), p.instruction, seed=seed + i, steps=steps, guidance=guidance, image_guidance=image_guidance))
        for i, (p, source) in enumerate(zip(heldout.pairs, heldout.sources))
    ]
    started = time.perf_counter()
    images = [r.image for start in range(0, len(requests), batch) for r in editor.edit(requests[start : start + batch])]
    seconds = time.perf_counter() - started
    verdicts = judge.classify(images)
    renders = judge.classify([Image.fromarray(a) for a in heldout.targets])

    def read(verdict: Any, pair: EditPair) -> bool:
        return (verdict.colour if pair.kind == "colour" else verdict.pattern) == pair.value

    def kept(verdict: Any, pair: EditPair) -> bool:
        """The attribute the edit leaves alone is still there (a colour edit keeps the pattern)."""
        return verdict.pattern == pair.source.pattern if pair.kind == "colour" else verdict.colour == pair.source.colour

    def share(hits: Sequence[bool]) -> float:
        return round(float(np.mean(hits)), 4) if hits else float("nan")

    results: dict[str, Any] = {
        "edits": len(images),
        "instructed": share([read(v, p) for v, p in zip(verdicts, heldout.pairs)]),
        "type_kept": share([v.product_type == p.source.product_type for v, p in zip(verdicts, heldout.pairs)]),
        "other_attribute_kept": share([kept(v, p) for v, p in zip(verdicts, heldout.pairs)]),
        "judge_on_target_renders": share([read(v, p) for v, p in zip(renders, heldout.pairs)]),
    }
    for kind in KINDS:
        chosen = [(v, p) for v, p in zip(verdicts, heldout.pairs) if p.kind == kind]
        results[kind] = {
            "edits": len(chosen),
            "instructed": share([read(v, p) for v, p in chosen]),
            "type_kept": share([v.product_type == p.source.product_type for v, p in chosen]),
            "other_attribute_kept": share([kept(v, p) for v, p in chosen]),
            "instructed_by_value": {value: share([read(v, p) for v, p in chosen if p.value == value]) for value in sorted({p.value for _, p in chosen})},
        }
    results.update(
        steps=steps,
        guidance=guidance,
        image_guidance=image_guidance,
        seconds_per_edit=round(seconds / max(1, len(images)), 4),
        split={
            "heldout_combinations": len(held),
            "heldout_colour_combinations": sum(1 for c in held if c[0] == "colour"),
            "heldout_pattern_combinations": sum(1 for c in held if c[0] == "pattern"),
            "train_pairs_checked": len(train_pairs),
            "train_pairs_in_heldout_combinations": 0,
        },
        examples=[
            {"instruction": p.instruction, "source": f"{p.source.colour} {p.source.pattern} {p.source.product_type}", "judge": asdict(v)}
            for v, p in list(zip(verdicts, heldout.pairs))[:4]
        ],
    )
    return results


TARGETS = {"edit_instructed_accuracy": 0.85, "edit_type_kept": 0.90}
EVAL_PAIRS = 240  # 8 per held-out combination


def has_editor(models_dir: Path) -> bool:
    """Whether the family in `models_dir` has an editor stage."""
    return (Path(models_dir) / "editor" / "model_index.json").is_file()


def evaluate_family(
    models_dir: Path,
    work_dir: Path,
    seed: int = 0,
    judge: Any = None,
    pairs: int = EVAL_PAIRS,
    guidance: float = EDIT_GUIDANCE,
    image_guidance: float = EDIT_IMAGE_GUIDANCE,
) -> dict[str, Any] | None:
    """The editor's figures for `eval-mini` (None when the family has no editor): held-out pairs, checked
    against the training pairs the editor stage made (their count from the training record)."""
    from fashion_studio.mini.common import read_json
    from fashion_studio.mini.judge import Judge

    models_dir = Path(models_dir)
    if not has_editor(models_dir):
        return None
    record_path = models_dir / "training.json"
    record = read_json(record_path) if record_path.is_file() else {}
    train_count = record.get("stages", {}).get("editor", {}).get("train_pairs") or record.get("config", {}).get("edit_pairs", 5000)
    heldout = pair_set(work_dir, pairs, seed, HELDOUT)
    results = evaluate_editor(
        models_dir / "editor",
        judge or Judge.load(models_dir / "judge"),
        heldout,
        make_pairs(train_count, seed, TRAIN),
        seed=seed * 100_000,
        guidance=guidance,
        image_guidance=image_guidance,
    )
    logger.info("editor: %s", {k: v for k, v in results.items() if k in ("instructed", "type_kept", "other_attribute_kept")})
    return results


def select_guidance(
    models_dir: Path, work_dir: Path, seed: int = 0, judge: Any = None, pairs: int = EVAL_PAIRS, grid: Sequence[tuple[float, float]] = GUIDANCE_GRID
) -> dict[str, Any]:
    """Text and image guidance chosen on validation pairs: edits of other products into seen combinations
    only (checked: none is a held-out combination), so that the held-out figures stay unseen by the choice.
    The best setting reads the instructed value most often while keeping the type on >= 90%."""
    from fashion_studio.editing import Editor
    from fashion_studio.mini.judge import Judge
    from fashion_studio.settings import Settings

    models_dir = Path(models_dir)
    validation = pair_set(work_dir, pairs, seed + VALIDATION_SEED_OFFSET, TRAIN)
    check_disjoint(validation.pairs)
    judge = judge or Judge.load(models_dir / "judge")
    editor = Editor.load(Settings(editor=str(models_dir / "editor")))  # once for the whole grid
    rows = []
    for guidance, image_guidance in grid:
        measured = evaluate_editor(
            models_dir / "editor",
            judge,
            validation,
            (),  # the validation pairs themselves were checked above
            seed=seed * 100_000 + 50_000,
            guidance=guidance,
            image_guidance=image_guidance,
            heldout_only=False,
            editor=editor,
        )
        rows.append(
            {
                "guidance": guidance,
                "image_guidance": image_guidance,
                "instructed": measured["instructed"],
                "colour": measured["colour"]["instructed"],
                "pattern": measured["pattern"]["instructed"],
                "type_kept": measured["type_kept"],
            }
        )
        logger.info("validation: %s", rows[-1])
    eligible = [r for r in rows if r["type_kept"] >= TARGETS["edit_type_kept"]] or rows
    best = max(eligible, key=lambda r: r["instructed"])
    return {
        "validation_pairs": len(validation.pairs),
        "validation_seed": seed + VALIDATION_SEED_OFFSET,
        "heldout_combinations_in_validation": 0,
        "grid": rows,
        "chosen": {"guidance": best["guidance"], "image_guidance": best["image_guidance"]},
    }


def summary(results: dict[str, Any]) -> dict[str, float]:
    """The editor's lines of eval.json's summary."""
    return {
        "edit_instructed_accuracy": results["instructed"],
        "edit_colour_accuracy": results["colour"]["instructed"],
        "edit_pattern_accuracy": results["pattern"]["instructed"],
        "edit_type_kept": results["type_kept"],
        "edit_other_attribute_kept": results["other_attribute_kept"],
    }


def record_evaluation(models_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Put the editor's figures into an existing eval.json (`eval-mini --editor-only`); the other
    models' figures stay as they are."""
    from fashion_studio.mini import cards

    return cards.record_section(models_dir, "editor", results, summary(results), TARGETS)


# ---------------------------------------------------------------------------------------------------
# Model card


def _by_value(section: dict[str, Any]) -> str:
    from fashion_studio.mini.cards import _pct

    return ", ".join(f"{value} {_pct(share)}" for value, share in section["instructed_by_value"].items())


def _selection_text(selection: dict[str, Any] | None) -> str:
    if not selection:
        return ""
    from fashion_studio.mini.cards import _pct

    rows = "\n".join(
        f"| {r['guidance']} | {r['image_guidance']} | {_pct(r['instructed'])} | {_pct(r['colour'])} | {_pct(r['pattern'])} | {_pct(r['type_kept'])} |"
        for r in selection["grid"]
    )
    chosen = selection["chosen"]
    return f"""

The guidance was chosen before this measurement, on {selection["validation_pairs"]} validation pairs: edits of other
products (seed {selection["validation_seed"]}) into seen combinations only, none of them held out (checked);
the setting that reads the instructed value most often while keeping the type on >= 90% wins
(`eval-mini --editor-only --select-guidance`):

| text guidance | image guidance | instructed | colour | pattern | type kept |
|---|---|---|---|---|---|
{rows}

Chosen: text guidance {chosen["guidance"]}, image guidance {chosen["image_guidance"]}."""


def editor_card(training: dict[str, Any], ev: dict[str, Any] | None) -> str:
    """models/fashion-mini/editor/README.md from the training and evaluation records."""
    from fashion_studio.mini.cards import EVAL_COMMAND, TRAIN_COMMAND, _header, _pct, _stage_line

    info = training.get("stages", {}).get("editor", {})
    result = (ev or {}).get("editor")
    held = sorted(heldout_combinations())
    colour_held = ", ".join(f"{t} -> {v}" for k, t, v in held if k == "colour")
    pattern_held = ", ".join(f"{t} -> {v}" for k, t, v in held if k == "pattern")
    templates = len(COLOUR_TEMPLATES) + sum(len(v) for v in PATTERN_TEMPLATES.values())
    if result:
        c, p = result["colour"], result["pattern"]
        evaluation = f"""| Measure (judge, held-out combinations) | Value | Target |
|---|---|---|
| Instructed colour or pattern read on the edit | {_pct(result["instructed"])} | {_pct(TARGETS["edit_instructed_accuracy"])} |
| - colour edits ({c["edits"]}) | {_pct(c["instructed"])} | |
| - pattern edits ({p["edits"]}) | {_pct(p["instructed"])} | |
| Original product type kept | {_pct(result["type_kept"])} | {_pct(TARGETS["edit_type_kept"])} |
| The other attribute kept (a colour edit's pattern, a pattern edit's colour) | {_pct(result["other_attribute_kept"])} | |
| Judge on the renders of the intended results (its own ceiling) | {_pct(result["judge_on_target_renders"])} | |

{result["edits"]} edits of held-out renders into the {result["split"]["heldout_combinations"]} held-out combinations, at
{result["steps"]} steps, text guidance {result["guidance"]}, image guidance {result["image_guidance"]}
(the service defaults), {result["seconds_per_edit"]:.3f} s per edit on the CPU, through the serving library
(`fashion_studio.editing.Editor`). Instructed value read, per target: {_by_value(result["colour"])};
{_by_value(result["pattern"])}. Measured with `{EVAL_COMMAND}` (figures in `eval.json`, `editor`).{_selection_text(result.get("guidance_selection"))}"""
    else:
        evaluation = f"Not evaluated yet: run `{EVAL_COMMAND}`."
    size = info.get("parameters", 0) / 1e6
    return f"""{_header("fashion-mini/editor", "An InstructPix2Pix-shaped image editor (`StableDiffusionInstructPix2PixPipeline`, the architecture of `timbrooks/instruct-pix2pix`) trained on rendered garments: it changes a 64x64 product shot's colour or pattern as an instruction in words says, and keeps the product.")}
## Use

```python
from diffusers import StableDiffusionInstructPix2PixPipeline
pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained("models/fashion-mini/editor")
edited = pipe("make it navy", image=image, num_inference_steps={EDIT_STEPS}, guidance_scale={EDIT_GUIDANCE}, image_guidance_scale={EDIT_IMAGE_GUIDANCE}).images[0]
```

It is the default editor of `POST /edit` (`FASHION_EDITOR`); production sets `FASHION_EDITOR=timbrooks/instruct-pix2pix`.
No safety checker (the model only knows garments; the gateway's safety check still runs).

## Architecture

- UNet: `UNet2DConditionModel` in the shape of `fashion-mini/sd`'s, with 8 input channels: 4 for the noisy latents
  and 4 for the source image's VAE latents (the posterior mode, unscaled, as the pipeline encodes it); {size:.2f} M
  parameters. Initialised from `fashion-mini/sd`'s UNet with the extra input channels' weights at zero, as
  InstructPix2Pix initialises from Stable Diffusion.
- VAE, text encoder (CLIP text tower) and tokenizer: copies of `fashion-mini/sd`'s, frozen; the folder is
  complete on its own, so retraining the generator leaves this editor working.
- Scheduler: `DPMSolverMultistepScheduler` (DPM-Solver++ 2M, trained with DDPM, epsilon prediction).

## Data

Pairs drawn by `fashion_studio.mini.render`: one product (type, shape, position, rotation, scale, shade,
pattern layout) before and after one edit of its colour (12 colours) or its pattern (plain, stripes, dots,
checks), {info.get("train_pairs", "n/a")} pairs, with instructions from {templates} templates
("make it navy", "change the colour to green", "add stripes", "make it plain", "give it dots", ...;
{info.get("instructions", "n/a")} distinct instructions).

Held out, never in a training pair (checked when the pairs are made and again by the evaluation):
colour edits {colour_held}; pattern edits {pattern_held}.

## Training

`{TRAIN_COMMAND}` (stage `editor`; seed {training.get("config", {}).get("seed", 0)}): DDPM epsilon objective
with offset noise and min-SNR weights as the generator, EMA of the weights; InstructPix2Pix's conditioning
dropout ({100 * CONDITIONING_DROPOUT:.0f}% of the examples without the instruction, {100 * CONDITIONING_DROPOUT:.0f}% without the source image,
{100 * CONDITIONING_DROPOUT:.0f}% without both), so that text guidance and image guidance work at sampling time.

{_stage_line("Editor", info)} (rendering the pairs: {info.get("pair_rendering_seconds", "n/a")} s of it;
learning rate {info.get("learning_rate", "n/a")})

## Evaluation

{evaluation}

## Limits

64x64 only; it knows the catalog's 10 product types, 12 colours and 4 patterns. Instructions about anything
else (sleeves, length, a belt) were never trained: the edit then stays close to the source. For real
photographs, set `FASHION_EDITOR` to a real InstructPix2Pix model.
"""


def write_card(models_dir: Path) -> Path:
    """Write the editor's card alone (`eval-mini --editor-only`)."""
    from fashion_studio.mini import cards

    return cards.write_card(models_dir, "editor", editor_card)


__all__ = [
    "EditPair",
    "PairSet",
    "apply_edit",
    "assemble",
    "check_disjoint",
    "editor_unet",
    "evaluate_editor",
    "editor_card",
    "evaluate_family",
    "heldout_combinations",
    "make_pairs",
    "pair_set",
    "train_editor",
]
