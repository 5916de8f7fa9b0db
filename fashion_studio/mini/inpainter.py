"""fashion-mini's inpainter: one 9-channel inpainting UNet (diffusers' standard inpainting layout: noisy
latents, the mask, the masked image's latents) that serves two tasks.

- Masked re-generation (`/inpaint`): a dressed figure, a garment's mask and a caption of the outfit
  wanted -> the masked region redrawn as described, as `StableDiffusionInpaintPipeline` runs it.
- Try-on (`/tryon`), as CatVTON does it: the person (the garment region masked out) and the garment's
  product shot are concatenated along the height in latent space into one canvas, the mask covers the
  person half only, the prompt is empty; the denoised person half is the person wearing the garment.
  No extra encoder: the garment reaches the person through the UNet's own self-attention.

The material is exact: `figures.dress_figure` dresses the same person in another garment and changes no
pixel outside the old and the new garment's masks, so a try-on target is that dressed figure inside the
old garment's mask and the person everywhere else. The training persons never wear a held-out (type,
colour, pattern) combination and the garments tried on never are one (checked); the evaluation dresses
held-out figures in held-out combinations, read by the figure judge (`figure_judge`, trained on renders
only).

The stage starts from the generator's UNet (extra input channels zero) and fine-tunes its own copy of
the generator's VAE on figures and product shots first: the product-shot VAE alone shifts figure colours.
After the UNet, that VAE's decoder alone is fine-tuned on the try-on targets (the encoder, and with it every
latent the UNet learnt, stays as it was)."""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fashion_studio.mini.common import PACED_SCHEDULE, Budget, count_parameters, lr_at, seed_everything, set_lr, write_json
from fashion_studio.mini.data import HELDOUT, TRAIN, split_seed
from fashion_studio.mini.figures import FULL_TYPES, LOWER_TYPES, UPPER_TYPES, FigureSpec, dress_figure, figure_caption, random_garment, render_figure
from fashion_studio.mini.render import Spec, render_array
from fashion_studio.mini.split import combination, held_out_combinations

logger = logging.getLogger(__name__)

INPAINT_DATA_VERSION = 1
INPAINTER_RECIPE_VERSION = 7  # the training recipe (task mix, mask jitter, loss weights, VAE fine-tuning): part of the stage's key
TYPES_BY_CATEGORY: dict[str, tuple[str, ...]] = {"upper": UPPER_TYPES, "lower": LOWER_TYPES, "full": FULL_TYPES}
TRYON_SHARE = 0.85  # of the training steps; the rest are masked re-generation from captions (each at twice the batch)
# The loss inside the mask weighs this many times more than outside it: what lies outside is given to
# the UNet (the masked image, the garment half) and is learnt at once; the garment region is the task.
# Yet the garment half's loss is needed: without it try-on reads 40.0 / 36.5% (colour / pattern, 3,200 steps,
# on 400 new try-ons: `make_examples(400, 101, TRAIN)`, new figures and garments, 46 of the garments of
# combinations the family holds out), with a uniform loss 73.8 / 44.5%, with this weight 84.8 / 49.0%. More
# weight on the garment half does not help either: weighing it 3 (the person outside the mask 1, inside 5)
# read 76.3 / 45.0% on the same 400 (3,200 steps, seed 5; the shipped UNet read 84.8 / 49.0% there again).
MASK_LOSS_WEIGHT = 4.0
CONDITION_DROPOUT = 0.1  # the garment half (try-on) or the caption (inpainting) dropped, for guidance
# CatVTON's default. On the 400 new try-ons above (colour / pattern): guidance 1.5, 2.5, 4 at 20
# steps read 82.0 / 47.0%, 84.8 / 49.0%, 75.0 / 48.8%; 40 steps at 2.5 read 84.0 / 47.5%.
TRYON_GUIDANCE = 2.5
INPAINT_GUIDANCE = 5.0
SAMPLING_STEPS = 20
# The VAE fine-tune: the garment region's reconstruction error weighs this many times more (it is what a
# try-on or an inpainting is judged on, and a few pixels wide on a figure), as in the shots stage.
VAE_GARMENT_WEIGHT = 10.0
VAE_LR = 3e-4
VAE_SHARE = 0.2  # of the stage's time cap, kept for the VAE fine-tune
# After the UNet, the VAE's decoder alone is fine-tuned further on the try-on targets and the persons (the
# garment region weighing VAE_GARMENT_WEIGHT): the encoder is frozen, so every latent the UNet learnt stays
# what it was, and the decoder draws the garment it is given more exactly. On 600 new examples of seen
# combinations (beyond the 3,000 training ones), recipe 7 against 6 (the same UNet steps, seeds and examples):
# the autoencoder's ceiling 90.0 / 73.7% (colour / pattern) -> 93.0 / 77.5%, try-on 80.8 / 47.0% -> 82.7 / 50.5%,
# inpainting 48.2 / 27.7% -> 48.7 / 28.3%.
DECODER_SHARE = 0.24  # of the stage's time cap, kept for the decoder fine-tune


# -- data ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One try-on / inpainting example: `person` takes off its garment of `category` and wears `garment`."""

    person: FigureSpec
    category: str
    garment: Spec

    def dressed(self) -> FigureSpec:
        return dress_figure(self.person, self.garment)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"person": self.person.to_dict(), "category": self.category, "garment": asdict(self.garment)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Example:
        return cls(FigureSpec.from_dict(data["person"]), data["category"], Spec(**{**data["garment"], "tint": tuple(data["garment"]["tint"])}).check())


def make_examples(n: int, seed: int, split: str) -> list[Example]:
    """`n` examples. TRAIN: persons from the segmenter's training figures (no held-out combination worn)
    and garments of no held-out combination. HELDOUT: held-out figures, each dressed in a garment of a
    held-out combination of the category it takes off."""
    from fashion_studio.mini.segmenter import make_figures

    held = frozenset(held_out_combinations(seed))
    persons = make_figures(n, seed, split)
    rng = np.random.default_rng([split_seed(seed, split), 2_012])
    held_by_category = {c: [h for h in sorted(held) if h[0] in types] for c, types in TYPES_BY_CATEGORY.items()}
    examples = []
    for person in persons:
        categories = list(person.garments())
        category = categories[rng.integers(len(categories))]
        if split == HELDOUT:
            product_type, colour, pattern = held_by_category[category][rng.integers(len(held_by_category[category]))]
            garment = random_garment(rng, (product_type,), (colour,), (pattern,))
        else:
            while True:
                garment = random_garment(rng, TYPES_BY_CATEGORY[category])
                if combination(garment) not in held:
                    break
        examples.append(Example(person, category, garment))
    return examples


def check_training_examples(examples: Sequence[Example], seed: int) -> int:
    """Raise if a training person or garment is a held-out combination; returns the garments checked."""
    held = frozenset(held_out_combinations(seed))
    worn = [combination(g) for e in examples for g in (*e.person.garments().values(), e.garment)]
    leaked = sorted({c for c in worn if c in held})
    if leaked:
        raise ValueError(f"{len(leaked)} held-out combinations in the inpainter's training examples, e.g. {leaked[:3]}")
    return len(worn)


@dataclass
class ExampleSet:
    """Rendered examples, uint8 (n, 64, 64, 3) each: the person, the garment's product shot, the target
    (the dressed figure inside the mask, the person outside); boolean (n, 64, 64) masks (the person's
    garment of the category); the target outfit's caption."""

    examples: list[Example]
    persons: np.ndarray
    garments: np.ndarray
    targets: np.ndarray
    masks: np.ndarray
    captions: list[str]


def render_example(example: Example) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    person = render_figure(example.person)
    dressed = render_figure(example.dressed())
    mask = person.masks[example.category]
    target = np.where(mask[..., None], dressed.array(), person.array())
    return person.array(), render_array(example.garment), target, mask


def _render_all(examples: Sequence[Example], workers: int) -> list[tuple[np.ndarray, ...]]:
    if workers > 1 and len(examples) > 64:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(render_example, examples, chunksize=64))
    return [render_example(e) for e in examples]


def example_set(work: Path, n: int, seed: int, split: str, workers: int = 2) -> ExampleSet:
    """Rendered once into the work folder, then read back."""
    folder = Path(work) / f"inpainter-v{INPAINT_DATA_VERSION}-{split}-{n}-{seed}"
    if (folder / "examples.json").is_file():
        data = np.load(folder / "examples.npz")
        saved = json.loads((folder / "examples.json").read_text())
        examples = [Example.from_dict(d) for d in saved["examples"]]
        return ExampleSet(examples, data["persons"], data["garments"], data["targets"], data["masks"], saved["captions"])
    examples = make_examples(n, seed, split)
    if split == TRAIN:
        check_training_examples(examples, seed)
    done = _render_all(examples, workers)
    rng = np.random.default_rng([split_seed(seed, split), 2_013])
    captions = [figure_caption(e.dressed(), rng) for e in examples]
    data = ExampleSet(examples, *(np.stack([d[i] for d in done]) for i in range(4)), captions)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / "examples.npz", persons=data.persons, garments=data.garments, targets=data.targets, masks=data.masks)
    (folder / "examples.json").write_text(json.dumps({"examples": [e.to_dict() for e in examples], "captions": captions}))
    return data


# -- model --------------------------------------------------------------------------------------------


def inpainting_unet(generator_unet: Any) -> Any:
    """The generator's UNet with diffusers' 9 inpainting input channels (latents, mask, masked image
    latents): its weights for the latents, zero for the mask, and half its latent weights for the masked
    image's latents, so that the UNet reads the kept pixels (and a try-on's garment) from the first step.

    Attention at the latents' own resolution (the first down block a `CrossAttnDownBlock2D`, its output
    projection zero so that it starts as the identity) was tried for the pattern: a step took 0.34 s against
    0.22 s, the stage's cap stopped it at 2,294 of 3,200 steps, and on 600 held-out try-ons (compare-mini)
    it read colour 80.7% and pattern 51.8% against 85.5% and 55.3% without it."""
    import torch
    from diffusers import UNet2DConditionModel

    config = dict(generator_unet.config)
    latent_channels = config["in_channels"]
    config["in_channels"] = 2 * latent_channels + 1
    unet = UNet2DConditionModel.from_config(config)
    state = generator_unet.state_dict()
    weight = state["conv_in.weight"]
    extended = torch.zeros(weight.shape[0], config["in_channels"], *weight.shape[2:], dtype=weight.dtype)
    extended[:, :latent_channels] = weight
    extended[:, latent_channels + 1 :] = 0.5 * weight
    state["conv_in.weight"] = extended
    unet.load_state_dict(state)
    return unet


def masked_pixels(images: Any, masks: Any) -> Any:
    """What diffusers' inpainting pipeline and CatVTON feed the VAE: the image, zero (grey) in the mask.
    `images` float (n, 3, h, w) in [-1, 1], `masks` float (n, 1, h, w) in {0, 1}."""
    return images * (masks < 0.5)


def latent_mask(masks: Any, latent_size: tuple[int, int]) -> Any:
    """The mask at latent resolution, as `StableDiffusionInpaintPipeline.prepare_mask_latents` makes it."""
    import torch.nn.functional as F

    return F.interpolate(masks, size=latent_size)


def _jitter_masks(masks: Any, generator: Any) -> Any:
    """A third of the masks grown by one or two pixels (masks from clicks or a parser are coarse)."""
    import torch
    import torch.nn.functional as F

    n = masks.shape[0]
    grow = torch.randint(0, 3, (n,), generator=generator) * (torch.rand(n, generator=generator) < 1 / 3)
    out = masks.clone()
    for r in (1, 2):
        chosen = grow == r
        if chosen.any():
            out[chosen] = F.max_pool2d(masks[chosen], 2 * r + 1, stride=1, padding=r)
    return out


def finetune_vae(
    vae: Any,
    images: np.ndarray,
    seed: int,
    steps: int,
    max_seconds: float,
    batch_size: int = 12,
    lr: float = 2e-4,
    pixel_weights: np.ndarray | None = None,
    paced: bool = False,
    decoder_only: bool = False,
) -> dict[str, Any]:
    """Fine-tune the generator's VAE (in place) on figures and product shots, with `sd.train_vae`'s loop
    (`sd.fit_vae`). `pixel_weights` (n, 64, 64) weighs each image's reconstruction error pixel by pixel (mean 1 per image
    is not required: they multiply the error as given). `paced`: the learning rate decays with the time
    budget where that ends the run first (`Budget.schedule_step`). `decoder_only`: the encoder stays as it
    is (and with it every latent), only the decoder learns."""
    import torch

    from fashion_studio.mini.sd import fit_vae, reconstruction_error

    seed_everything(seed)
    probe = images[np.random.default_rng(seed + 1).choice(len(images), 128, replace=False)]
    vae.eval()
    before = reconstruction_error(vae, probe)
    vae.train().requires_grad_(not decoder_only)
    trained = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()] if decoder_only else list(vae.parameters())
    for parameter in trained:
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(trained, lr=lr, weight_decay=0.0)
    budget = Budget(steps, max_seconds, paced=paced)
    losses = fit_vae(vae, optimizer, images, np.random.default_rng(seed), budget, lr, min(50, steps // 10), batch_size, 1e-6, pixel_weights)
    vae.eval().requires_grad_(False)
    tail = losses[-50:]
    return {
        **budget.summary(),
        **({"learning_rate_schedule": PACED_SCHEDULE} if paced else {}),
        "batch_size": batch_size,
        **({"trained": "decoder (encoder frozen)"} if decoder_only else {}),
        "final_reconstruction_loss": round(sum(tail) / max(1, len(tail)), 4),
        "training_image_mae_before": round(before, 2),
        "training_image_mae_after": round(reconstruction_error(vae, probe), 2),
    }


def _encode(vae: Any, images: Any, batch_size: int = 256) -> Any:
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            out.append(vae.encode(images[start : start + batch_size]).latent_dist.mean)
    return torch.cat(out)


def train_inpainter(
    out: Path,
    sd_dir: Path,
    data: ExampleSet,
    seed: int,
    steps: dict[str, int],
    max_seconds: float,
    batch_size: int = 8,
    lr: float = 1e-3,
) -> tuple[Any, dict[str, Any]]:
    """Fine-tune the VAE, then the 9-channel UNet on both tasks, then the VAE's decoder alone; save a
    `StableDiffusionInpaintPipeline` folder to `out`. `steps` has "vae", "unet" and "decoder" (none: no decoder fine-tune); VAE_SHARE of
    `max_seconds` is kept for the VAE and DECODER_SHARE for the decoder.
    Try-on batches hold `batch_size` canvases (person over garment), inpainting batches twice as many
    single images (the same number of latent pixels)."""
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler

    from fashion_studio.mini.editor import _components
    from fashion_studio.mini.sd import MIN_SNR_GAMMA, OFFSET_NOISE, SCHEDULER_CONFIG, _to_tensor, encode_prompts

    started = time.perf_counter()
    seed_everything(seed)
    vae, text_encoder, tokenizer, generator_unet = _components(Path(sd_dir))
    half = len(data.targets) // 2
    garment_weight = 1.0 + (VAE_GARMENT_WEIGHT - 1.0) * data.masks.astype(np.float32)
    vae_info = finetune_vae(
        vae,
        np.concatenate([data.persons, data.targets[:half], data.garments[: len(data.garments) // 2]]),
        seed,
        steps["vae"],
        VAE_SHARE * max_seconds,
        lr=VAE_LR,
        pixel_weights=np.concatenate([garment_weight, garment_weight[:half], np.ones((len(data.garments) // 2, *data.masks.shape[1:]), np.float32)]),
        paced=True,
    )
    scaling = float(vae.config.scaling_factor)
    pixel_masks = torch.from_numpy(data.masks[:, None].astype(np.float32))
    persons = _to_tensor(data.persons)
    with torch.inference_mode():
        targets = _encode(vae, _to_tensor(data.targets)) * scaling
        garments = _encode(vae, _to_tensor(data.garments)) * scaling
    texts = sorted(set(data.captions))
    text_index = torch.tensor([texts.index(c) for c in data.captions])
    states = encode_prompts(text_encoder, tokenizer, [*texts, ""])
    empty = states[-1]
    latent_hw = tuple(targets.shape[-2:])

    unet = inpainting_unet(generator_unet)
    unet.train()
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    noise_scheduler = DDPMScheduler(**SCHEDULER_CONFIG)
    snr = noise_scheduler.alphas_cumprod / (1 - noise_scheduler.alphas_cumprod)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    budget = Budget(steps["unet"], (1 - DECODER_SHARE) * max_seconds - (time.perf_counter() - started), paced=True)
    losses: dict[str, list[float]] = {"tryon": [], "inpaint": []}
    n = len(data.examples)
    for step in budget:
        task = "tryon" if rng.random() < TRYON_SHARE else "inpaint"
        size = batch_size if task == "tryon" else 2 * batch_size
        idx = torch.from_numpy(rng.integers(0, n, size))
        masks = _jitter_masks(pixel_masks[idx], generator)
        # Where a grown mask leaves the old garment, the target is the person there: the target latents
        # stay those of the exact garment region, which the grown mask contains.
        with torch.no_grad():
            masked = _encode(vae, masked_pixels(persons[idx], masks)) * scaling
        mask_latents = latent_mask(masks, latent_hw)
        drop = torch.rand(size, generator=generator) < CONDITION_DROPOUT
        if task == "tryon":
            garment = garments[idx].clone()
            garment[drop] = 0.0
            z0 = torch.cat([targets[idx], garments[idx]], dim=-2)
            condition = torch.cat([masked, garment], dim=-2)
            mask_latents = torch.cat([mask_latents, torch.zeros_like(mask_latents)], dim=-2)
            context = empty.expand(size, *empty.shape)
        else:
            z0 = targets[idx]
            condition = masked
            context = states[text_index[idx]].clone()
            context[drop] = empty
        noise = torch.randn(z0.shape, generator=generator)
        noise += OFFSET_NOISE * torch.randn((size, z0.shape[1], 1, 1), generator=generator)
        t = torch.randint(0, SCHEDULER_CONFIG["num_train_timesteps"], (size,), generator=generator)
        zt = noise_scheduler.add_noise(z0, noise, t)
        set_lr(optimizer, lr_at(budget.schedule_step(step), steps["unet"], lr, warmup=min(100, steps["unet"] // 10)))
        prediction = unet(torch.cat([zt, mask_latents, condition], dim=1), t, encoder_hidden_states=context).sample
        weight = torch.clamp(snr[t], max=MIN_SNR_GAMMA) / snr[t]
        where = 1.0 + MASK_LOSS_WEIGHT * mask_latents
        error = (where * F.mse_loss(prediction, noise, reduction="none")).mean(dim=(1, 2, 3)) / where.mean(dim=(1, 2, 3))
        loss = (weight * error).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        decay = min(0.998, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, q in zip(ema.parameters(), unet.parameters()):
                e.mul_(decay).add_(q.detach(), alpha=1 - decay)
        losses[task].append(loss.item())
    trained = budget.summary()  # the training loop's time, before the saving
    decoder_info = None
    if steps.get("decoder"):
        decoder_info = finetune_vae(
            vae,
            np.concatenate([data.targets, data.persons]),
            seed + 1,
            steps["decoder"],
            max_seconds - (time.perf_counter() - started),
            lr=VAE_LR,
            pixel_weights=np.concatenate([garment_weight, garment_weight]),
            paced=True,
            decoder_only=True,
        )
    assemble(out, vae, ema, text_encoder, tokenizer)

    def tail(values: list[float]) -> float:
        return round(sum(values[-60:]) / max(1, len(values[-60:])), 4)

    return ema, {
        "vae": vae_info,
        **({"decoder": decoder_info} if decoder_info else {}),
        "unet": {
            **trained,
            "batch_size": {"tryon": batch_size, "inpaint": 2 * batch_size},
            "learning_rate": lr,
            "learning_rate_schedule": PACED_SCHEDULE,
            "final_loss": {task: tail(values) for task, values in losses.items()},
            "steps_by_task": {task: len(values) for task, values in losses.items()},
            "parameters": count_parameters(ema),
            "ema_decay": 0.998,
            "condition_dropout": CONDITION_DROPOUT,
            "tryon_share": TRYON_SHARE,
            "mask_loss_weight": MASK_LOSS_WEIGHT,
            "initialised_from": "fashion-mini/sd unet (mask channel zero, masked-image channels half the latent weights)",
        },
        "train_examples": n,
        "captions": len(texts),
    }


def assemble(out: Path, vae: Any, unet: Any, text_encoder: Any, tokenizer: Any) -> Any:
    """Write the standard diffusers folder (`StableDiffusionInpaintPipeline`, no safety checker)."""
    from diffusers import StableDiffusionInpaintPipeline

    from fashion_studio.mini import editor

    return editor.assemble(out, vae, unet, text_encoder, tokenizer, StableDiffusionInpaintPipeline)


def train(
    out: Path, work: Path, sd_dir: Path, n_examples: int, seed: int, steps: dict[str, int], max_seconds: float, batch_size: int, workers: int = 2
) -> dict[str, Any]:
    """The inpainter stage: render the training examples, then train (`train_inpainter`)."""
    started = time.perf_counter()
    data = example_set(work, n_examples, seed, TRAIN, workers)
    render_seconds = time.perf_counter() - started
    _, info = train_inpainter(out, sd_dir, data, seed, steps, max_seconds - render_seconds, batch_size)
    info.update(
        {
            "garments_checked": check_training_examples(data.examples, seed),
            "example_rendering_seconds": round(render_seconds, 1),
            "data_version": INPAINT_DATA_VERSION,
            "recipe_version": INPAINTER_RECIPE_VERSION,
            "stopped_early": info["unet"]["stopped_early"] or info["vae"]["stopped_early"] or info.get("decoder", {}).get("stopped_early", False),
        }
    )
    write_json(Path(out) / "training.json", info)
    return info


# -- evaluation ---------------------------------------------------------------------------------------

PACED_NOTE = """
Both learning rates warm up, then decay along a cosine to a tenth of their peak, paced (`Budget.schedule_step`):
a run on an even pace to finish its planned steps within its time budget follows its steps; one behind that
pace stands where the share of the budget spent puts it, so a run its budget stops ends decayed.
"""
TARGETS = {"tryon_colour_accuracy": 0.85, "tryon_pattern_accuracy": 0.75}
EVAL_EXAMPLES = 200
EVAL_BATCH = 16


def has_inpainter(models_dir: Path) -> bool:
    return (Path(models_dir) / "inpainter" / "model_index.json").is_file()


def load_inpainter(folder: Path) -> Any:
    """fashion-mini's inpainter folder as the service's runtime (`fashion_studio.inpainting.Inpainter`)."""
    from diffusers import StableDiffusionInpaintPipeline

    from fashion_studio.inpainting import Inpainter
    from fashion_studio.models import ModelRef

    pipeline = StableDiffusionInpaintPipeline.from_pretrained(folder)
    return Inpainter(pipeline, ModelRef("inpainter", str(folder), str(folder)))


def run_examples(inpainter: Any, data: ExampleSet, kind: str) -> np.ndarray:
    """Every example through the runtime the service runs, in batches; uint8 (n, 64, 64, 3)."""
    from PIL import Image

    from fashion_studio.inpainting import InpaintRequest, TryOnRequest

    out = []
    for start in range(0, len(data.examples), EVAL_BATCH):
        requests = []
        for i in range(start, min(start + EVAL_BATCH, len(data.examples))):
            person = Image.fromarray(data.persons[i])
            if kind == "tryon":
                requests.append(TryOnRequest(person, Image.fromarray(data.garments[i]), data.masks[i], seed=i, steps=SAMPLING_STEPS, guidance=TRYON_GUIDANCE))
            else:
                requests.append(InpaintRequest(person, data.masks[i], data.captions[i], seed=i, steps=SAMPLING_STEPS, guidance=INPAINT_GUIDANCE))
        out.extend(np.asarray(r.image) for r in inpainter.run(requests))
    return np.stack(out)


def read_examples(judge: Any, images: np.ndarray, data: ExampleSet) -> dict[str, float]:
    """The share of examples whose garment the figure judge reads right inside the mask, per head."""
    read = judge.predict_arrays(images, data.masks)
    return {
        head: round(float(np.mean([getattr(e.garment, head) == value for e, value in zip(data.examples, read[head])])), 4)
        for head in ("colour", "pattern", "product_type")
    }


def autoencoded(vae: Any, images: np.ndarray) -> np.ndarray:
    """`images` through the VAE and back (posterior means), uint8: the best any latent the UNet makes can
    decode to."""
    import torch

    from fashion_studio.mini.sd import _to_tensor

    with torch.inference_mode():
        decoded = torch.cat([vae.decode(vae.encode(x).latent_dist.mean).sample for x in _to_tensor(images).split(64)])
    return ((decoded.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def evaluate(models_dir: Path, work: Path, n: int, seed: int, workers: int = 2) -> dict[str, Any]:
    """Try-on and inpainting on held-out figures dressed in held-out combinations, read inside the mask by
    the figure judge; what changed outside the mask; and the judge's own reading of the exact targets, of
    the exact targets through the inpainter's VAE and back (pasted into the person as a result is: the
    ceiling the autoencoder leaves the UNet) and of the undressed persons (what reading the old garment
    scores)."""
    from fashion_studio.mini.figure_judge import FigureJudge

    models_dir = Path(models_dir)
    data = example_set(work, n, seed, HELDOUT, workers)
    judge = FigureJudge.load(models_dir / "figure-judge")
    inpainter = load_inpainter(models_dir / "inpainter")
    results: dict[str, Any] = {
        "examples": n,
        "held_out": "held-out figures (each wears a held-out (type, colour, pattern) combination), each dressed in a garment of another held-out combination of the category it takes off",
        "steps": SAMPLING_STEPS,
        "guidance": {"tryon": TRYON_GUIDANCE, "inpaint": INPAINT_GUIDANCE},
        "judge_on_exact_targets": read_examples(judge, data.targets, data),
        "judge_on_autoencoded_targets": read_examples(
            judge, np.where(data.masks[..., None], autoencoded(inpainter.pipeline.vae, data.targets), data.persons), data
        ),
        "judge_on_unchanged_persons": read_examples(judge, data.persons, data),
    }
    for kind in ("tryon", "inpaint"):
        started = time.perf_counter()
        images = run_examples(inpainter, data, kind)
        seconds = time.perf_counter() - started
        outside = ~data.masks
        difference = np.abs(images.astype(int) - data.persons.astype(int)).max(axis=-1)
        results[kind] = {
            **read_examples(judge, images, data),
            "outside_mask_max_abs_difference": int(difference[outside].max()),
            "outside_mask_pixels": int(outside.sum()),
            "seconds_per_image": round(seconds / n, 4),
        }
        logger.info("inpainter %s: %s", kind, results[kind])
    return results


def evaluate_family(models_dir: Path, work: Path, seed: int, workers: int = 2) -> dict[str, Any] | None:
    """The inpainter's section of eval.json, or None when the family has no inpainter (or no figure judge)."""
    if not has_inpainter(models_dir) or not (Path(models_dir) / "figure-judge" / "config.json").is_file():
        return None
    return evaluate(models_dir, work, EVAL_EXAMPLES, seed, workers)


def summary(results: dict[str, Any]) -> dict[str, float]:
    return {
        "tryon_colour_accuracy": results["tryon"]["colour"],
        "tryon_pattern_accuracy": results["tryon"]["pattern"],
        "tryon_outside_mask_max_abs_difference": results["tryon"]["outside_mask_max_abs_difference"],
        "inpaint_colour_accuracy": results["inpaint"]["colour"],
        "inpaint_pattern_accuracy": results["inpaint"]["pattern"],
    }


def record_evaluation(models_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Put the inpainter's figures into an existing eval.json (`eval-mini --inpainter-only`); the other
    models' figures stay as they are."""
    from fashion_studio.mini import cards

    return cards.record_section(models_dir, "inpainter", results, summary(results), TARGETS)


def inpainter_card(training: dict[str, Any], ev: dict[str, Any] | None) -> str:
    """models/fashion-mini/inpainter/README.md from the training and evaluation records."""
    from fashion_studio.mini.cards import _header, _minutes, _stage_line

    info = training.get("stages", {}).get("inpainter", {})
    unet, vae, decoder = info.get("unet", {}), info.get("vae", {}), info.get("decoder")
    result = (ev or {}).get("inpainter")
    if result:
        t, p, exact, unchanged = result["tryon"], result["inpaint"], result["judge_on_exact_targets"], result["judge_on_unchanged_persons"]
        coded = result.get("judge_on_autoencoded_targets")
        coded_row = (
            f"| The exact targets through the VAE and back, pasted (the autoencoder's ceiling) | {coded['colour']:.3f} | {coded['pattern']:.3f} | {coded['product_type']:.3f} | |\n"
            if coded
            else ""
        )
        met = all(t[k.split("_")[1]] >= v for k, v in TARGETS.items())
        evaluation = f"""| Read inside the mask by the figure judge (held-out) | Colour | Pattern | Type | Target |
|---|---|---|---|---|
| Try-on results | {t["colour"]:.3f} | {t["pattern"]:.3f} | {t["product_type"]:.3f} | colour {TARGETS["tryon_colour_accuracy"]:.2f}, pattern {TARGETS["tryon_pattern_accuracy"]:.2f} |
| Inpainting results (prompt: the dressed figure's caption) | {p["colour"]:.3f} | {p["pattern"]:.3f} | {p["product_type"]:.3f} | |
| The exact targets (the judge's own ceiling) | {exact["colour"]:.3f} | {exact["pattern"]:.3f} | {exact["product_type"]:.3f} | |
{coded_row}| The persons unchanged (reading the old garment) | {unchanged["colour"]:.3f} | {unchanged["pattern"]:.3f} | {unchanged["product_type"]:.3f} | |

{result["examples"]} examples: {result["held_out"]}. {result["steps"]} steps, guidance {result["guidance"]["tryon"]:g} (try-on) and
{result["guidance"]["inpaint"]:g} (inpainting). Outside the mask the result equals the input person: the largest
difference of any channel of any pixel outside the mask is {t["outside_mask_max_abs_difference"]} (try-on) and
{p["outside_mask_max_abs_difference"]} (inpainting) over {t["outside_mask_pixels"]} pixels, tolerance 0 (the drawn region is pasted
into the input at its own size). {t["seconds_per_image"]:.3f} s per try-on on this machine. The try-on targets are
{"met" if met else "**not met**"}. Measured with `fashion-studio models eval-mini --inpainter-only` (`eval.json`, `inpainter`)."""
    else:
        evaluation = "Not evaluated yet: run `fashion-studio models eval-mini --inpainter-only`."
    decoder_text = (
        f", then its decoder alone (encoder frozen: the UNet's latents unchanged) on the try-on targets and persons, the garment region weighing {VAE_GARMENT_WEIGHT:g}x "
        f"({decoder.get('training_image_mae_before', 'n/a')} -> {decoder.get('training_image_mae_after', 'n/a')})"
        if decoder
        else ""
    )
    return f"""{_header("fashion-mini/inpainter", "A Stable Diffusion inpainting pipeline (9-channel UNet) trained for masked re-generation from a caption and for CatVTON-style virtual try-on (person and garment concatenated in one input), on the figure renderer's exact try-on triples.")}
## Use

```python
from fashion_studio.inpainting import Inpainter, InpaintRequest, TryOnRequest
from fashion_studio.settings import Settings
inpainter = Inpainter.load(Settings(inpainter="fashion-mini/inpainter"))
limits = Settings().limits
[dressed] = inpainter.run([TryOnRequest(person, garment_shot, mask, seed=0).check(limits)])
[redrawn] = inpainter.run([InpaintRequest(person, mask, "a woman wearing a red t-shirt and navy trousers").check(limits)])
```

The folder loads with `StableDiffusionInpaintPipeline.from_pretrained`. It is the default of `POST /inpaint`
and `POST /tryon` (`FASHION_INPAINTER`); production sets an inpainting checkpoint such as
`stable-diffusion-v1-5/stable-diffusion-inpainting`.

## Architecture

The generator's UNet (fashion-mini/sd) with diffusers' inpainting input: 4 latent channels, the mask, and
4 channels of the masked image's latents; {unet.get("parameters", 0) / 1e6:.2f} M parameters; the generator's
text encoder; its own copy of the generator's VAE, fine-tuned on figures and product shots (mean absolute
error on training images {vae.get("training_image_mae_before", "n/a")} before, {vae.get("training_image_mae_after", "n/a")} after){decoder_text}.
Try-on: the masked person's latents over the garment shot's latents (concatenated along the height, as
CatVTON does), the mask over the person half only, the empty prompt; guidance drops the garment half.

## Data

{info.get("train_examples", "n/a")} rendered examples: a figure from `fashion_studio.mini.figures`, one of its garments (the
category it takes off), and a new garment of that category with its product shot; the target is the same
figure wearing the new garment (`dress_figure`) inside the old garment's mask and the figure itself
outside it. No training figure wears, and no garment tried on is, a held-out (type, colour, pattern)
combination ({info.get("garments_checked", "n/a")} garments checked). Masks are grown by 1-2 pixels a third of the
time. {TRYON_SHARE:.0%} of the steps are try-on batches, the rest inpainting batches whose prompt is the dressed
figure's caption; the loss inside the mask weighs {MASK_LOSS_WEIGHT:g}x more than outside it; {CONDITION_DROPOUT:.0%} of the garments or
captions are dropped for guidance.

## Training

`fashion-studio models train-mini --only inpainter`: {_minutes(info.get("wall_seconds"))} in all, of which
{info.get("example_rendering_seconds", "n/a")} s rendering the examples (or reading them from the work folder).

{_stage_line("VAE fine-tuning", {**vae, "wall_seconds": vae.get("seconds")})}
{_stage_line("UNet", {**unet, "wall_seconds": unet.get("seconds")})}
{_stage_line("Decoder fine-tuning", {**decoder, "wall_seconds": decoder.get("seconds")}) if decoder else ""}
{PACED_NOTE if unet.get("learning_rate_schedule") else ""}
## Evaluation

{evaluation}

## Limits

64x64 front-view figures and product shots only. Real try-on weights: CatVTON's released attention weights
over an SD 1.5 inpainting base (`FASHION_TRYON_ATTENTION`, `fashion_studio/catvton.py`); with a plain
inpainting checkpoint alone `/tryon` runs the same concatenated input, but that model was never trained for it.
"""


def write_card(models_dir: Path) -> Path:
    """Write the inpainter's card alone (`eval-mini --inpainter-only`)."""
    from fashion_studio.mini import cards

    return cards.write_card(models_dir, "inpainter", inpainter_card)
