"""The demonstration: a LoRA teaches fashion-mini a pattern it never saw, and a detector measures it.

fashion-mini's catalog has four patterns (plain, stripes, dots, checks); its tokenizer spells "zigzag"
letter by letter and its data never drew one. The renderer draws zigzags on request
(`render.EXTRA_PATTERNS`). The adapter trains on rendered zigzag products, plus a quarter of catalog
products so that it leaves other prompts alone, over 100 of the 120 product type x colour combinations;
the other 20 are held out of every training caption. Images generated for held-out zigzag prompts,
with and without the adapter, go to the detector (`detect.py`, a small CNN), itself validated on fresh
renders.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fashion_studio.lora import detect
from fashion_studio.lora.data import write_folder
from fashion_studio.mini.render import Spec, random_variation, render
from fashion_studio.mini.vocab import COLOUR_NAMES, PATTERN_ENGLISH, PATTERNS, TYPE_NAMES
from fashion_studio.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

PATTERN = "zigzag"
BASE_MODEL = "fashion-mini/sd"
ADAPTER_DIR = PROJECT_ROOT / "models" / "fashion-mini" / "lora-zigzag"
WORK_DIR = PROJECT_ROOT / "var" / "lora-demo"
DOC_PATH = PROJECT_ROOT / "docs" / "lora.md"
JSON_PATH = PROJECT_ROOT / "docs" / "lora.json"
IMAGE_PATH = PROJECT_ROOT / "docs" / "images" / "lora-demo.png"
COMMAND = "make lora-demo"
# Caption forms: the short ones fashion-mini was trained on, with the new pattern's words.
ZIGZAG_TEMPLATES = ("{colour} zigzag {product}", "a photo of a {colour} {product} with zigzags")


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    zigzag_images: int = 240
    catalog_images: int = 80  # products of the known patterns, so the adapter leaves them be
    steps: int = 1500
    rank: int = 16
    # fashion-mini's UNet attends only at 8x8 and 4x4 latents, too coarse for a zigzag's teeth (about
    # 5 latents wide): the adapter also takes the ResNet convolutions, which run at every resolution.
    target_modules: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2")
    learning_rate: float = 3e-3
    batch_size: int = 16
    prompts: int = 40  # generated per arm (held-out combinations x seeds)
    sample_steps: int = 20
    guidance: float = 4.0
    detector_renders: int = 400  # per class, to fit the detector and as many to validate it


def held_out_combinations() -> list[tuple[str, str]]:
    """20 (product type, colour) pairs, two per type and every colour at most twice: never in training."""
    return [(t, COLOUR_NAMES[(5 * i + k * 7) % len(COLOUR_NAMES)]) for i, t in enumerate(TYPE_NAMES) for k in (0, 1)]


def training_combinations() -> list[tuple[str, str]]:
    held = set(held_out_combinations())
    return [(t, c) for t in TYPE_NAMES for c in COLOUR_NAMES if (t, c) not in held]


def zigzag_caption(product: str, colour: str, rng: np.random.Generator) -> str:
    return ZIGZAG_TEMPLATES[rng.integers(len(ZIGZAG_TEMPLATES))].format(colour=colour, product=product)


def catalog_caption(product: str, colour: str, pattern: str, rng: np.random.Generator) -> str:
    if pattern == "plain":
        return f"{colour} {product}" if rng.random() < 0.5 else f"a photo of a {colour} {product}"
    words = PATTERN_ENGLISH[pattern]
    return f"{colour} {words['adjective']} {product}" if rng.random() < 0.5 else f"a photo of a {colour} {product} with {words['with']}"


def training_plan(config: DemoConfig) -> list[tuple[Spec, str]]:
    """What the adapter's training folder holds, (spec, caption) per image; the same config, the same plan."""
    rng = np.random.default_rng([config.seed, 1])
    combos = training_combinations()
    plan = []
    for index in range(config.zigzag_images + config.catalog_images):
        product, colour = combos[rng.integers(len(combos))]
        if index < config.zigzag_images:
            pattern, caption = PATTERN, zigzag_caption(product, colour, rng)
        else:
            pattern = PATTERNS[rng.integers(len(PATTERNS))]
            caption = catalog_caption(product, colour, pattern, rng)
        plan.append((Spec(product, colour, pattern, **random_variation(rng)), caption))
    return plan


def build_training_set(folder: Path, config: DemoConfig) -> dict[str, Any]:
    """Render the adapter's training folder (metadata.csv layout)."""
    plan = training_plan(config)
    write_folder(folder, [render(spec) for spec, _ in plan], [caption for _, caption in plan])
    return {"images": len(plan), "zigzag": config.zigzag_images, "catalog": config.catalog_images, "captions": [c for _, c in plan]}


def check_held_out(captions: list[str]) -> list[tuple[str, str]]:
    """The held-out pairs, after checking that no training caption names one of them."""
    held = held_out_combinations()
    for caption in captions:
        words = caption.split()
        for product, colour in held:
            if product in words and colour in words:
                raise AssertionError(f"training caption {caption!r} names held-out pair {product}/{colour}")
    return held


def train_adapter(
    config: DemoConfig, work_dir: Path = WORK_DIR, adapter_dir: Path = ADAPTER_DIR, progress: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Render the training folder and train (or resume, or find) the adapter; returns (data, training record)."""
    from fashion_studio.lora.train import LoraTrainConfig, train_lora
    from fashion_studio.settings import Settings

    data = build_training_set(work_dir / "data", config)
    settings = Settings(generator=BASE_MODEL)
    train_config = LoraTrainConfig(
        rank=config.rank,
        steps=config.steps,
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        seed=config.seed,
        checkpoint_every=25,
        threads=1,
        target_modules=config.target_modules,
    )
    record = train_lora(settings.generator, work_dir / "data", adapter_dir, train_config, settings, progress=progress)
    return data, record


def _renders(rng: np.random.Generator, patterns: tuple[str, ...], n: int) -> list[Any]:
    images = []
    for _ in range(n):
        product, colour = TYPE_NAMES[rng.integers(len(TYPE_NAMES))], COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
        pattern = patterns[rng.integers(len(patterns))]
        images.append(render(Spec(product, colour, pattern, **random_variation(rng))))
    return images


def through_vae(images: list[Any], folder: Path) -> list[Any]:
    """Renders as the generator's VAE gives them back (encode, decode): the softness of a generated
    image, with the pattern a perfect denoiser would have drawn."""
    import torch
    from diffusers import AutoencoderKL
    from PIL import Image

    vae = AutoencoderKL.from_pretrained(folder / "vae").eval()
    out = []
    with torch.inference_mode():
        for begin in range(0, len(images), 32):
            chunk = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images[begin : begin + 32]])
            x = torch.from_numpy(chunk).permute(0, 3, 1, 2) / 127.5 - 1.0
            y = vae.decode(vae.encode(x).latent_dist.mode()).sample
            pixels = ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
            out.extend(Image.fromarray(p) for p in pixels)
    return out


def fit_detector(per_class: int, seed: int = 0, vae_folder: Path | None = None) -> tuple[detect.Detector, dict[str, Any]]:
    """Fit the detector on renders (zigzag vs the catalog's patterns), half of them as the generator's
    VAE gives them back when `vae_folder` is given, and validate it on fresh ones treated alike."""
    fit_rng, check_rng = np.random.default_rng([seed, 2]), np.random.default_rng([seed, 3])

    def renders(rng: np.random.Generator, patterns: tuple[str, ...], n: int) -> list[Any]:
        images = _renders(rng, patterns, n)
        if vae_folder is None:
            return images
        return images[: n // 2] + through_vae(images[n // 2 :], vae_folder)

    detector = detect.Detector.fit(renders(fit_rng, (PATTERN,), per_class), renders(fit_rng, PATTERNS, per_class))
    found = {pattern: float(detector.detects(renders(check_rng, (pattern,), per_class // 4)).mean()) for pattern in PATTERNS}
    found[PATTERN] = float(detector.detects(renders(check_rng, (PATTERN,), per_class)).mean())
    negatives = float(np.mean([found[p] for p in PATTERNS]))
    return detector, {
        "fitted_on": {"zigzag": per_class, "catalog_patterns": per_class, "through_vae": "half" if vae_folder is not None else "none"},
        "validated_on": {"zigzag": per_class, **{p: per_class // 4 for p in PATTERNS}},
        "detected_share": {k: round(v, 4) for k, v in found.items()},
        "balanced_accuracy": round((found[PATTERN] + 1.0 - negatives) / 2, 4),
    }


def held_out_prompts(seeds: int) -> list[tuple[str, int]]:
    """(prompt, seed) for every held-out pair in the short caption form, `seeds` seeds each."""
    return [(ZIGZAG_TEMPLATES[0].format(colour=c, product=t), 1000 + s) for t, c in held_out_combinations() for s in range(seeds)]


def control_prompts(seeds: int) -> list[tuple[str, int]]:
    """Held-out pairs with the catalog's own patterns: an adapter should leave these alone."""
    out = []
    for index, (product, colour) in enumerate(held_out_combinations()):
        pattern = PATTERNS[index % len(PATTERNS)]
        adjective = "" if pattern == "plain" else PATTERN_ENGLISH[pattern]["adjective"] + " "
        out.extend((f"{colour} {adjective}{product}", 2000 + s) for s in range(seeds))
    return out


def generate(generator: Any, prompts: list[tuple[str, int]], lora: tuple[str, ...], steps: int, guidance: float, batch: int = 8) -> list[Any]:
    """Images for (prompt, seed) pairs with the named adapters, in batches of one shape."""
    from fashion_studio.generation import GenerationRequest

    images = []
    for begin in range(0, len(prompts), batch):
        requests = [GenerationRequest(prompt=p, seed=s, steps=steps, guidance=guidance, lora=lora) for p, s in prompts[begin : begin + batch]]
        images.extend(im for result in generator.generate(requests) for im in result.images)
    return images


def load_generator(adapter_dir: Path) -> Any:
    """fashion-mini with the adapter allowed under the name "zigzag" (not applied unless named)."""
    from fashion_studio.generation import Generator
    from fashion_studio.settings import Settings

    return Generator.load(Settings(generator=BASE_MODEL, lora=[f"{PATTERN}={adapter_dir}"]))


def measure(generator: Any, detector: detect.Detector, prompts_per_pair: int, steps: int, guidance: float) -> dict[str, Any]:
    """Detected share of zigzag in held-out prompts with and without the adapter, and in control prompts."""
    held = held_out_prompts(prompts_per_pair)
    control = control_prompts(prompts_per_pair)
    arms = {
        "with_adapter": generate(generator, held, (PATTERN,), steps, guidance),
        "without_adapter": generate(generator, held, (), steps, guidance),
        "control_with_adapter": generate(generator, control, (PATTERN,), steps, guidance),
    }
    found = {name: detector.detects(images) for name, images in arms.items()}
    return {
        "prompts": {"held_out": len(held), "control": len(control)},
        "detected_share": {name: round(float(hits.mean()), 4) for name, hits in found.items()},
        "per_prompt": [
            {"prompt": p, "seed": s, "with_adapter": bool(a), "without_adapter": bool(b)}
            for (p, s), a, b in zip(held, found["with_adapter"], found["without_adapter"])
        ],
        "images": arms,
    }


def run_demo(config: DemoConfig = DemoConfig(), adapter_dir: Path = ADAPTER_DIR, work_dir: Path = WORK_DIR, progress: bool = True) -> dict[str, Any]:
    """Train (or find) the adapter, validate the detector, measure both arms, write docs/lora.md + .json + picture."""
    started = time.perf_counter()
    data, record = train_adapter(config, work_dir, adapter_dir, progress)
    held = check_held_out(data["captions"])
    from fashion_studio import models
    from fashion_studio.settings import Settings

    settings = Settings(generator=BASE_MODEL)
    base = Path(models.resolve("generator", settings.generator, settings).path)
    detector, validation = fit_detector(config.detector_renders, config.seed, vae_folder=base)
    generator = load_generator(adapter_dir)
    results = measure(generator, detector, config.prompts // len(held), config.sample_steps, config.guidance)
    picture(results["images"], held_out_prompts(1), IMAGE_PATH)
    report = {
        "command": COMMAND,
        "config": asdict(config),
        "pattern": PATTERN,
        "base_model": BASE_MODEL,
        "adapter": str(adapter_dir.relative_to(PROJECT_ROOT)) if adapter_dir.is_relative_to(PROJECT_ROOT) else str(adapter_dir),
        "data": {k: v for k, v in data.items() if k != "captions"},
        "held_out_pairs": [f"{c} {t}" for t, c in held],
        "training": record,
        "detector": validation,
        "results": {k: v for k, v in results.items() if k != "images"},
        "seconds": round(time.perf_counter() - started, 1),
    }
    JSON_PATH.write_text(json.dumps(report, indent=2) + "\n")
    DOC_PATH.write_text(document(report))
    logger.info("wrote %s, %s and %s", DOC_PATH, JSON_PATH, IMAGE_PATH)
    return report


def picture(arms: dict[str, list[Any]], prompts: list[tuple[str, int]], path: Path, columns: int = 10) -> Path:
    """Two rows per block: without the adapter above, with it below, one held-out prompt per column."""
    from PIL import Image

    count = min(columns * 2, len(prompts))
    step = len(arms["with_adapter"]) // len(prompts)  # images per pair in the measured arms
    size = arms["with_adapter"][0].width
    blocks = (count + columns - 1) // columns
    sheet = Image.new("RGB", (columns * size, blocks * 2 * size), "white")
    for index in range(count):
        x, y = (index % columns) * size, (index // columns) * 2 * size
        sheet.paste(arms["without_adapter"][index * step], (x, y))
        sheet.paste(arms["with_adapter"][index * step], (x, y + size))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.resize((sheet.width * 2, sheet.height * 2), Image.Resampling.NEAREST).save(path)
    return path


def document(report: dict[str, Any]) -> str:
    training, detector, results = report["training"], report["detector"], report["results"]
    shares = results["detected_share"]
    found = detector["detected_share"]
    pairs = ", ".join(report["held_out_pairs"])
    return f"""# LoRA adapters: training on the shop's own images, chosen per request

Written by `{report["command"]}` ({report["seconds"]:.0f} s on this machine); the raw figures are in
[`lora.json`](lora.json). Do not edit the figures by hand: rerun the command.

## What the demonstration shows

fashion-mini draws four patterns (plain, stripes, dots, checks). Its tokenizer spells "zigzag" letter
by letter and its training data never drew one. The renderer draws zigzags on request, so a LoRA
adapter can be taught the pattern from {report["data"]["zigzag"]} rendered zigzag products (plus
{report["data"]["catalog"]} catalog products, so that it leaves other prompts alone), captioned like
`red zigzag dress`. Twenty product type x colour pairs are held out of every training caption (checked
by code): {pairs}.

| | detected zigzag |
|---|---|
| held-out zigzag prompts, **with** the adapter | **{shares["with_adapter"]:.0%}** of {results["prompts"]["held_out"]} |
| held-out zigzag prompts, without the adapter | {shares["without_adapter"]:.0%} of {results["prompts"]["held_out"]} |
| held-out catalog-pattern prompts, with the adapter | {shares["control_with_adapter"]:.0%} of {results["prompts"]["control"]} |

![held-out prompts: without the adapter (upper rows) and with it (lower rows)](images/lora-demo.png)

Upper row of each pair: without the adapter; lower row: with it, same prompt and seed
({report["config"]["sample_steps"]} steps, guidance {report["config"]["guidance"]}).

## The measurement

`fashion_studio/lora/detect.py` is a small CNN (the fashion-mini judge's network with one binary
head), fitted on {detector["fitted_on"]["zigzag"]} zigzag and {detector["fitted_on"]["catalog_patterns"]}
catalog-pattern renders, half of them as fashion-mini's VAE gives them back (the softness of a
generated image), with the judge's blur, contrast and noise augmentation. On fresh renders, treated
alike, it finds the zigzag in {found["zigzag"]:.0%} of zigzag products and in {found["plain"]:.0%} /
{found["stripes"]:.0%} / {found["dots"]:.0%} / {found["checks"]:.0%} of plain / striped / dotted /
checked ones (balanced accuracy {detector["balanced_accuracy"]:.0%}).

The third row of the table is the adapter's cost: applied to a prompt that names a catalog pattern
("red striped dress"), it still draws zigzags in some images. An adapter is applied only to requests
that name it, so other requests are unaffected; a shop that wants one adapter for everything should
train it with more of its other products beside the new pattern.

## The adapter

`{report["adapter"]}` ({training["weights_bytes"] / 1024:.0f} KiB, its card beside it): rank
{training["config"]["rank"]} on the UNet's {", ".join(f"`{m}`" for m in training["config"]["target_modules"])}
(fashion-mini's UNet attends only at 8x8 and 4x4 latents, too coarse for a zigzag's teeth, so the
adapter also takes the ResNet convolutions; `--target-module` does the same for any training),
{training["trainable_parameters"]:,} trainable parameters, {training["config"]["steps"]} steps at batch
size {training["config"]["batch_size"]} and learning rate {training["config"]["learning_rate"]},
{training["train_seconds"]:.0f} s of training on this CPU (loss {training["loss_first"]} in the first
tenth of the steps, {training["loss_last"]} in the last).

## Train one on your own images

```bash
# a folder of images with metadata.csv (file_name,text) or one .txt caption per image
.venv/bin/fashion-studio lora train shop-images/ --out models/my-lora --rank 8 --steps 500 --lr 1e-4
# on a GPU with real weights (SD 1.5, SDXL, FLUX.1): the field's memory options
.venv/bin/fashion-studio lora train shop-images/ --out models/my-lora --generator /models/sdxl \\
  --device cuda --mixed-precision bf16 --gradient-checkpointing --resolution 1024 --batch-size 4
```

It shows a progress bar with an ETA, writes `checkpoint.pt` every `--checkpoint-every` steps, and
rerun after a kill it resumes from there: each step's batch and noise come from (seed, step), so the
resumed run ends with the weights an uninterrupted one would (tested on CPU). The result is
`pytorch_lora_weights.safetensors` in diffusers' LoRA format (what `save_lora_weights` writes, what
`load_lora_weights` reads), `training.json` and a card (`README.md`). SD 1.x/2.x, SDXL and FLUX
pipelines train through the same loop; only SD has been trained here (fashion-mini and the tiny
models), SDXL and FLUX on the tiny random models; **none of it has run on a GPU yet**, and the
mixed-precision and gradient-checkpointing options are written against diffusers' and PyTorch's
documented APIs, untested.

## Serve adapters per request

`FASHION_LORA` lists adapters, comma-separated, as `[name=]path-or-hub-id[@weight]`. An entry
without a name applies to every request (the deployment's fixed style); a named one is loaded once and
applied only to requests that name it:

```bash
FASHION_LORA="zigzag=fashion-mini/lora-zigzag" make serve
curl -s localhost:3000/generate -H 'content-type: application/json' \\
  -d '{{"prompt": "navy zigzag cap", "seed": 1, "lora": ["zigzag"]}}'
```

The named adapters are the allow-list: the OpenAPI schema lists them as the `lora` enum, a request
naming another gets 422 naming the field, the value and the allowed names, and the stored metadata
records the adapters (and weights) each image was made with. Requests are batched only with requests
that name the same adapters; each batch switches the pipeline with diffusers' `set_adapters` (or
`disable_lora`).
"""
