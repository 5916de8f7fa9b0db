"""Model cards (README.md) of the fashion-mini family, written from the training and evaluation records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fashion_studio.mini.common import read_json
from fashion_studio.mini.evaluate import EVAL_RECORD, TARGETS
from fashion_studio.mini.train import TRAINING_RECORD
from fashion_studio.mini.vocab import COLOUR_NAMES, PATTERNS, TYPE_NAMES
from fashion_studio.settings import Settings

TRAIN_COMMAND = "fashion-studio models train-mini"
EVAL_COMMAND = "fashion-studio models eval-mini"

_DATA = f"""Rendered by `fashion_studio.mini.render`, a procedural garment renderer: flat-lay product shots at
64x64 on a white studio background, {len(TYPE_NAMES)} product types ({", ".join(TYPE_NAMES)}),
{len(COLOUR_NAMES)} colours ({", ".join(COLOUR_NAMES)}), {len(PATTERNS)} patterns ({", ".join(PATTERNS)}),
with random scale, rotation, position, shade and pattern layout. Each product has a German catalog
description and its English translation from paired templates (`fashion_studio.mini.text`: word order,
synonyms, target groups, materials, closing sentences) and English captions, among them the catalog
pipeline's own generation and CLIP prompts for its description. Held-out data comes from a separate seed
stream, and no held-out German description occurs in the training data. 48 of the 480 (type, colour,
pattern) combinations are held out of CLIP's and the UNet's training data and captions altogether
(`fashion_studio.mini.split`, checked); the judge and the VAE, which read no text, see every combination."""


_STEPS, _GUIDANCE = (Settings.model_fields[name].default for name in ("default_steps", "default_guidance"))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _minutes(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds / 60:.1f} min"


def _stage_line(name: str, info: dict[str, Any] | None) -> str:
    if not info:
        return f"- {name}: not trained yet"
    if "steps" not in info:
        return f"- {name}: {_minutes(info.get('wall_seconds'))}"
    early = " (stopped at its time cap)" if info.get("stopped_early") else ""
    if isinstance(info.get("batch_size"), dict):  # a loop of several tasks: each task's steps and batch
        from fashion_studio.mini.report import steps_text

        return f"- {name}: {steps_text(info)} steps{early}, {_minutes(info.get('wall_seconds'))}"
    return f"- {name}: {info.get('steps')} steps of batch {info.get('batch_size')}{early}, {_minutes(info.get('wall_seconds'))}"


def _summary_table(ev: dict[str, Any] | None) -> str:
    if not ev:
        return f"Not evaluated yet: run `{EVAL_COMMAND}`."
    if "seen" not in ev.get("generator", {}):
        return f"Evaluated by an older `{EVAL_COMMAND}`: run it again."
    s = ev["summary"]
    gen = ev["generator"]
    seen, unseen = gen["seen"], gen["unseen"]

    def both(head: str) -> tuple[str, str]:
        key = f"{head}_accuracy"
        return (
            f"{_pct(seen['service_defaults'][key])} ({_pct(seen['fast'][key])})",
            f"{_pct(unseen['service_defaults'][key])} ({_pct(unseen['fast'][key])})",
        )

    rows = [
        ("Generated images, product type (judge)", *both("type"), "80%"),
        ("Generated images, colour (judge)", *both("colour"), "85%"),
        ("Generated images, pattern (judge)", *both("pattern"), "-"),
        (
            "Generation prompts found word for word among the training captions",
            _pct(s["generation_prompts_in_training_captions_seen"]),
            _pct(s["generation_prompts_in_training_captions_unseen"]),
            "-",
        ),
        (
            "CLIP closed-set zero-shot type, training templates / new templates (held-out renders)",
            f"{_pct(s['clip_zero_shot_type_accuracy_training_templates'])} / {_pct(s['clip_zero_shot_type_accuracy_new_templates'])}",
            f"{_pct(s['clip_zero_shot_type_accuracy_training_templates_unseen'])} / {_pct(s['clip_zero_shot_type_accuracy_new_templates_unseen'])}",
            "90% (training templates)",
        ),
        (
            "CLIP closed-set zero-shot colour, training templates / new templates (held-out renders)",
            f"{_pct(s['clip_zero_shot_colour_accuracy_training_templates'])} / {_pct(s['clip_zero_shot_colour_accuracy_new_templates'])}",
            f"{_pct(s['clip_zero_shot_colour_accuracy_training_templates_unseen'])} / {_pct(s['clip_zero_shot_colour_accuracy_new_templates_unseen'])}",
            "90% (training templates)",
        ),
        (
            "CLIP score, matching vs shuffled prompts (generated)",
            f"{s['clip_score_matching_seen']:.1f} vs {s['clip_score_shuffled_seen']:.1f}",
            f"{s['clip_score_matching_unseen']:.1f} vs {s['clip_score_shuffled_unseen']:.1f}",
            "matching > shuffled",
        ),
        (f"Translation exact match ({ev['translator']['count']} held-out descriptions)", _pct(s["translation_exact_match"]), "", "95%"),
    ]
    lines = ["| Measure | Seen combinations | Unseen combinations | Target |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    note = (
        f"Seen: {seen['prompts']} held-out German descriptions of combinations the training data has; unseen: "
        f"{unseen['prompts']} of the {ev['split']['held_out']} (type, colour, pattern) combinations that no training "
        f"item or caption names. Through the catalog pipeline's translation and prompt, drawn at the service defaults, "
        f"{seen['service_defaults']['steps']} steps with guidance {seen['service_defaults']['guidance']} (in brackets: "
        f"{seen['fast']['steps']} steps without guidance), {seen['service_defaults']['seconds_per_image']:.2f} s per image "
        f"on the CPU. CLIP zero-shot is closed-set over the catalog's classes; its training templates are training "
        f"captions themselves, the new templates are none. Judge accuracy on held-out renders: type "
        f"{_pct(ev['judge_on_heldout_renders']['product_type'])}, colour {_pct(ev['judge_on_heldout_renders']['colour'])}, "
        f"pattern {_pct(ev['judge_on_heldout_renders']['pattern'])}."
    )
    return "\n".join(lines) + "\n\n" + note + f"\n\nMeasured with `{EVAL_COMMAND}` (figures in `eval.json`)."


def _header(title: str, what: str) -> str:
    return f"# {title}\n\n{what}\n"


def write_card(models_dir: Path | str, folder: str, make: Any) -> Path:
    """Write one model folder's card, `make(training, eval)`, from the family's records (the
    `eval-mini --<model>-only` commands rewrite their own card alone)."""
    models_dir = Path(models_dir)
    training = read_json(models_dir / TRAINING_RECORD) if (models_dir / TRAINING_RECORD).is_file() else {}
    ev = read_json(models_dir / EVAL_RECORD) if (models_dir / EVAL_RECORD).is_file() else None
    path = models_dir / folder / "README.md"
    path.write_text(make(training, ev), encoding="utf-8")
    return path


def record_section(models_dir: Path | str, name: str, results: dict[str, Any], summary: dict[str, float], targets: dict[str, float]) -> dict[str, Any]:
    """Put one model's figures into an existing eval.json: its section, its summary lines and targets;
    the other models' figures stay as they are."""
    from fashion_studio.mini.common import write_json

    path = Path(models_dir) / EVAL_RECORD
    record = read_json(path) if path.is_file() else {}
    record[name] = results
    record.setdefault("summary", {}).update(summary)
    record.setdefault("targets", {}).update(targets)
    record.setdefault("targets_met", {}).update({k: record["summary"][k] >= v for k, v in targets.items()})
    write_json(path, record)
    return record


def sd_card(training: dict[str, Any], ev: dict[str, Any] | None) -> str:
    from fashion_studio.mini.sd import SCHEDULER_CONFIG, UNET_CONFIG, VAE_CONFIG

    stages = training.get("stages", {})
    vae, unet, shots = stages.get("vae", {}), stages.get("unet", {}), stages.get("shots", {})
    shots_vae, shots_unet = shots.get("vae", {}), shots.get("unet", {})
    return f"""{_header("fashion-mini/sd", "A Stable-Diffusion-1.x-shaped text-to-image pipeline (`StableDiffusionPipeline`) trained from scratch on rendered garments: it draws 64x64 flat-lay product shots of the product type, colour and pattern a prompt names, and model shots: a person wearing a described outfit.")}
## Use

```python
from diffusers import DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained("models/fashion-mini/sd")
image = pipe("Professional product photography of a women's dress, featuring red, stripes, placed on a clean white background",
             num_inference_steps={_STEPS}, guidance_scale={_GUIDANCE}).images[0]
shot = pipe("a woman wearing a red striped t-shirt and navy trousers", num_inference_steps={_STEPS}, guidance_scale={_GUIDANCE}).images[0]
```

It is the default generator of `make serve` and `fashion-studio generate`; `/model_shot` makes the second kind of prompt from garment descriptions. No safety checker (the model only knows garments).

## Architecture

- VAE: `AutoencoderKL`, blocks {VAE_CONFIG["block_out_channels"]}, {VAE_CONFIG["layers_per_block"]} layer per block, 4 latent channels, downsampling 4x (64x64 -> 16x16), scaling factor {vae.get("scaling_factor", "n/a")}; {vae.get("parameters", 0) / 1e6:.2f} M parameters.
- UNet: `UNet2DConditionModel`, blocks {UNET_CONFIG["block_out_channels"]} ({", ".join(UNET_CONFIG["down_block_types"])}), cross-attention on 128-dim text states, which are also attention-pooled into the time embedding (`addition_embed_type="text"`); {unet.get("parameters", 0) / 1e6:.2f} M parameters.
- Text encoder and tokenizer: the text tower of `fashion-mini/clip` (`CLIPTextModel`, frozen during UNet training), byte-level BPE, 77 tokens.
- Scheduler: `DPMSolverMultistepScheduler` (DPM-Solver++ 2M, trained with DDPM, {SCHEDULER_CONFIG["beta_schedule"]} betas {SCHEDULER_CONFIG["beta_start"]}-{SCHEDULER_CONFIG["beta_end"]}, epsilon prediction).

## Data

{_DATA}

## Training

`{TRAIN_COMMAND}` (stages `vae`, `unet`, `shots`, `sd`; seed {training.get("config", {}).get("seed", 0)}):

{_stage_line("VAE (L1 + L2 reconstruction + 1e-6 KL)", vae)}
{_stage_line("UNet (DDPM epsilon objective with offset noise 0.1, min-SNR-5 weights, EMA 0.999, 10% captions dropped)", unet)}

Model shots (stage `shots`): the VAE and the UNet above, fine-tuned on {shots.get("figures", "n/a")} rendered dressed figures
(`fashion_studio/mini/figures.py`; none wears a held-out combination, checked) captioned like "a woman wearing a
red striped t-shirt and navy trousers", {shots.get("figure_share", 0):.0%} of the UNet's examples beside the product shots, so that flat-lays keep working,
the VAE's error on a figure's garment pixels weighing {shots_vae.get("garment_weight", "n/a")}x (a bottom's {shots_vae.get("lower_garment_weight", shots_vae.get("garment_weight", "n/a"))}x),
and the UNet's denoising error on a latent pixel weighing {shots_unet.get("garment_weight", 1)}x where it is garment and {shots_unet.get("lower_garment_weight", 1)}x where it is the bottom:

{_stage_line("VAE fine-tuning on figures and products", {**shots_vae, "wall_seconds": shots_vae.get("seconds")})}
{_stage_line("UNet fine-tuning on figures and products", {**shots_unet, "wall_seconds": shots_unet.get("seconds")})}

VAE reconstruction error on held-out renders: {vae.get("heldout_reconstruction_mae", "n/a")} (mean absolute, 0-255).

## Evaluation

{_summary_table(ev)}

## Limits

64x64 only, a closed vocabulary of {len(TYPE_NAMES)} product types, {len(COLOUR_NAMES)} colours and {len(PATTERNS)} patterns; other words in a prompt are ignored.
Model shots are one front-view figure; a bottom is a few pixels wide, and its colour is read right far less
often than the top's (eval.json, `model_shots`). For real product images, set `FASHION_GENERATOR` to a real model.
"""


def clip_card(training: dict[str, Any], ev: dict[str, Any] | None) -> str:
    from fashion_studio.mini.clip import TEXT_CONFIG, VISION_CONFIG

    info = training.get("stages", {}).get("clip", {})
    return f"""{_header("fashion-mini/clip", "A CLIP model (ViT image tower and text tower) trained contrastively on rendered garments and their captions; the catalog pipeline's quality gate scores images with it (CLIP score = 100 x cosine).")}
## Use

```python
from transformers import CLIPModel, CLIPProcessor
model, processor = CLIPModel.from_pretrained("models/fashion-mini/clip"), CLIPProcessor.from_pretrained("models/fashion-mini/clip")
```

## Architecture

- Vision: ViT, 64x64 input, patch {VISION_CONFIG["patch_size"]}, {VISION_CONFIG["num_hidden_layers"]} layers, width {VISION_CONFIG["hidden_size"]}.
- Text: {TEXT_CONFIG["num_hidden_layers"]} layers, width {TEXT_CONFIG["hidden_size"]}, 77 tokens, byte-level BPE learned from the captions (vocabulary {info.get("vocab_size", "n/a")}).
- Projection 128; {info.get("parameters", 0) / 1e6:.2f} M parameters; learned temperature (final logit scale {info.get("logit_scale", "n/a")}).

The text tower is also the text encoder of `fashion-mini/sd`.

## Data

{_DATA}

## Training

`{TRAIN_COMMAND}` (stage `clip`): symmetric contrastive loss in which a caption's positives are all images it
describes (a caption such as "Product image of a dress" leaves colour and pattern open), light blur on a
third of the images.

{_stage_line("CLIP", info)}

## Evaluation

{_summary_table(ev)}
"""


def _marian_data(info: dict[str, Any]) -> str:
    """What the translator was trained on, as its training record says."""
    templated = info.get("templated_pairs", info.get("train_pairs", "n/a"))
    text = (
        f"{templated} templated (German, English) description pairs from `fashion_studio.mini.text` (the same\n"
        "templates as the rendered catalog, without images)"
    )
    if info.get("lexicon_pairs"):
        text += (
            f", and {info['lexicon_pairs']} sentences over the attribute lexicon's German\nvocabulary (every product, "
            "colour with its shades, material, pattern and target group the prompts can\nname, in sentence shapes of their own)"
        )
    return text + ". The language is the catalog's."


def marian_card(training: dict[str, Any], ev: dict[str, Any] | None) -> str:
    from fashion_studio.mini.marian import CONFIG

    info = training.get("stages", {}).get("marian", {})
    misses = (ev or {}).get("translator", {}).get("examples_of_misses", [])[:3]
    miss_text = "\n".join(f"- `{m['german']}` -> `{m['translation']}` (reference `{m['reference']}`)" for m in misses) or "- none"
    return f"""{_header("fashion-mini/marian", "A MarianMT translation model, German to English, trained from scratch on catalog descriptions, in the Opus-MT layout (`MarianMTModel`, `MarianTokenizer` with a sentencepiece model per language and one shared vocabulary).")}
## Use

```python
from transformers import MarianMTModel, MarianTokenizer
tokenizer = MarianTokenizer.from_pretrained("models/fashion-mini/marian")
model = MarianMTModel.from_pretrained("models/fashion-mini/marian")
batch = tokenizer(["Rotes Damenkleid mit Streifen aus Baumwolle."], return_tensors="pt")
print(tokenizer.batch_decode(model.generate(**batch), skip_special_tokens=True))
```

## Architecture

Encoder-decoder transformer, {CONFIG["encoder_layers"]}+{CONFIG["decoder_layers"]} layers, width {CONFIG["d_model"]}, {CONFIG["encoder_attention_heads"]} heads, feed-forward {CONFIG["encoder_ffn_dim"]}, shared embeddings, sinusoidal positions (128), vocabulary {info.get("vocab_size", "n/a")}; {info.get("parameters", 0) / 1e6:.2f} M parameters.

## Data

{_marian_data(info)} Other German is out of its reach: the translator says
so with a low confidence (the probability of the least likely token it wrote), and the catalog then builds
its prompt from the German description's attributes alone (`docs/catalog-eval.md`).

## Training

`{TRAIN_COMMAND}` (stage `marian`): label cross-entropy, AdamW, warm-up and cosine decay.

{_stage_line("Marian", info)}

## Evaluation

{_summary_table(ev)}

Some misses:

{miss_text}
"""


def judge_card(training: dict[str, Any], ev: dict[str, Any] | None) -> str:
    info = training.get("stages", {}).get("judge", {})
    acc = info.get("heldout_accuracy", {})
    return f"""{_header("fashion-mini/judge", "A small CNN that names a 64x64 product shot's type, colour and pattern. It is the independent judge of `fashion-studio models eval-mini` and of the tests: trained on the renderer's ground truth only, never on generated images and never from the CLIP it helps evaluate.")}
## Use

```python
from fashion_studio.mini.judge import Judge
verdict = Judge.load("models/fashion-mini/judge").classify([image])[0]  # .product_type, .colour, .pattern
```

## Architecture

Six 3x3 convolutions with batch norm (widths 24-48-96, stride 2 every other layer), global average pooling,
three linear heads ({len(TYPE_NAMES)} types, {len(COLOUR_NAMES)} colours, {len(PATTERNS)} patterns);
{info.get("parameters", 0) / 1e3:.0f} k parameters, `model.safetensors` + `config.json`.

## Data

{_DATA}

Augmentation: random blur, brightness and noise, so that softer generated images are read like renders.

## Training

`{TRAIN_COMMAND}` (stage `judge`): cross-entropy on the three heads.

{_stage_line("Judge", info)}

## Evaluation

Held-out renders: type {_pct(acc.get("product_type"))}, colour {_pct(acc.get("colour"))}, pattern {_pct(acc.get("pattern"))}.
"""


def overview(training: dict[str, Any], ev: dict[str, Any] | None, size_bytes: int = 0) -> str:
    stages = training.get("stages", {})
    lines = "\n".join(
        _stage_line(name, stages.get(name))
        for name in ("data", "judge", "marian", "clip", "vae", "unet", "shots", "sd", "editor", "segmenter", "inpainter", "figure-judge")
        if name in stages
    )
    return f"""# fashion-mini

Small models trained on a garment catalog that the project renders itself, in the production
architectures, so that the default service draws real garments on a laptop without a GPU or a download.

| Folder | What | Setting |
|---|---|---|
| `sd/` | Stable Diffusion pipeline (VAE, UNet, CLIP text encoder, DPM-Solver++): product shots and model shots | `FASHION_GENERATOR=fashion-mini/sd` |
| `clip/` | CLIP (ViT + text tower), the quality gate's scorer | `FASHION_SCORER=fashion-mini/clip` |
| `marian/` | MarianMT German -> English | `FASHION_TRANSLATOR=fashion-mini/marian` |
| `editor/` | InstructPix2Pix editor (8-channel UNet from the generator's, its own VAE and text encoder) | `FASHION_EDITOR=fashion-mini/editor` |
| `segmenter/` | Segment Anything (`SamModel`) and a SegFormer clothes parser, trained on dressed figures' masks | `FASHION_SEGMENTER=fashion-mini/segmenter` |
| `inpainter/` | Stable Diffusion inpainting (9-channel UNet from the generator's): masked re-generation and CatVTON-style try-on | `FASHION_INPAINTER=fashion-mini/inpainter` |
| `judge/` | CNN classifier of type, colour, pattern (evaluation only) | - |
| `figure-judge/` | CNN reading a worn garment's type, colour, pattern inside its mask (evaluation only) | - |

{size_bytes / 1e6:.1f} MB in all (safetensors weights, tokenizers, configs, these cards).

Trained with `{TRAIN_COMMAND}` in {_minutes(training.get("total_training_seconds"))} of wall time on a CPU
({training.get("config", {}).get("threads", 2)} torch threads on a 2-core machine):

{lines}

Evaluated with `{EVAL_COMMAND}`:

{_summary_table(ev)}

`training.json` and `eval.json` hold every figure. See docs/fashion-mini.md.
"""


def write_cards(models_dir: Path | str) -> list[Path]:
    """README.md in the family folder and in each model folder."""
    models_dir = Path(models_dir)
    training = read_json(models_dir / TRAINING_RECORD) if (models_dir / TRAINING_RECORD).is_file() else {}
    ev = read_json(models_dir / EVAL_RECORD) if (models_dir / EVAL_RECORD).is_file() else None
    written = []
    from fashion_studio.mini.editor import editor_card
    from fashion_studio.mini.inpainter import inpainter_card
    from fashion_studio.mini.segmenter import segmenter_card

    cards = (
        ("sd", sd_card),
        ("clip", clip_card),
        ("marian", marian_card),
        ("judge", judge_card),
        ("editor", editor_card),
        ("segmenter", segmenter_card),
        ("inpainter", inpainter_card),
    )
    for folder, make in cards:
        if (models_dir / folder).is_dir():
            path = models_dir / folder / "README.md"
            path.write_text(make(training, ev), encoding="utf-8")
            written.append(path)
    path = models_dir / "README.md"
    path.write_text(overview(training, ev), encoding="utf-8")  # once, so that the size counts it
    size = sum(p.stat().st_size for p in models_dir.rglob("*") if p.is_file())
    path.write_text(overview(training, ev, size), encoding="utf-8")
    written.append(path)
    return written


__all__ = ["TARGETS", "write_cards"]
