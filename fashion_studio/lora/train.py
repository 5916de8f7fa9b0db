"""LoRA fine-tuning of a diffusion pipeline's denoiser (UNet or transformer) on captioned product images.

The recipe is diffusers' own (`train_text_to_image_lora.py`, `train_text_to_image_lora_sdxl.py`,
`train_dreambooth_lora_flux.py`): a peft `LoraConfig` on the attention projections, frozen VAE and text
encoders, the epsilon / v-prediction objective of the DDPM schedule (flow matching for FLUX), AdamW on
the LoRA weights only, and the result saved with the pipeline's `save_lora_weights`, so that
`load_lora_weights` (and `FASHION_LORA`) read it unchanged.

A killed run resumes: every `checkpoint_every` steps the LoRA weights, the optimizer state and the
losses go to `checkpoint.pt` (written atomically), and the batch and noise of step k are drawn from
generators seeded by (seed, k), so the resumed run takes the same steps as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fashion_studio import models
from fashion_studio.errors import InvalidInputError
from fashion_studio.lora import data as lora_data
from fashion_studio.settings import PROJECT_ROOT, Settings
from fashion_studio.tiny import weights_digest

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
CHECKPOINT_NAME = "checkpoint.pt"
RECORD_NAME = "training.json"
CARD_NAME = "README.md"
# The modules diffusers' LoRA training examples adapt: the attention projections.
TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
MixedPrecision = Literal["no", "fp16", "bf16"]


@dataclass(frozen=True)
class LoraTrainConfig:
    """What a training run does; everything but `device` and `threads` goes into its fingerprint."""

    rank: int = 8
    alpha: float | None = None  # LoRA scale numerator; the rank when unset (scale 1)
    steps: int = 500
    learning_rate: float = 1e-4
    batch_size: int = 8
    resolution: int | None = None  # square side in pixels; the denoiser's native size when unset
    seed: int = 0
    checkpoint_every: int = 100
    mixed_precision: MixedPrecision = "no"
    gradient_checkpointing: bool = False
    target_modules: tuple[str, ...] = TARGET_MODULES
    device: str = "cpu"
    threads: int | None = None

    def check(self) -> LoraTrainConfig:
        for name, low in (("rank", 1), ("steps", 1), ("batch_size", 1), ("checkpoint_every", 1)):
            if getattr(self, name) < low:
                raise InvalidInputError(name, getattr(self, name), f"must be at least {low}")
        if not 0 < self.learning_rate < 1:
            raise InvalidInputError("learning_rate", self.learning_rate, "must be in (0, 1)")
        if self.resolution is not None and (self.resolution < 8 or self.resolution % 8):
            raise InvalidInputError("resolution", self.resolution, "must be a multiple of 8, at least 8")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise InvalidInputError("mixed_precision", self.mixed_precision, "must be one of no, fp16, bf16")
        return self

    def fingerprinted(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("device")
        values.pop("threads")
        values["target_modules"] = list(self.target_modules)
        return values


@dataclass
class _Batchable:
    """The cached inputs of training: latent posteriors and the conditioning of each caption."""

    means: Any  # (n, c, h, w)
    stds: Any
    caption_index: np.ndarray  # image -> caption
    conditioning: dict[str, Any]  # name -> tensor with one row per caption
    extra: dict[str, Any] = field(default_factory=dict)


def train_lora(
    generator: str,
    data_dir: Path,
    out: Path,
    config: LoraTrainConfig,
    settings: Settings | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume, or find finished) a LoRA adapter in `out`; returns the training record."""
    import torch

    config.check()
    settings = settings or Settings()
    out = Path(out)
    items = lora_data.read_folder(Path(data_dir))
    model_ref = models.resolve("generator", generator, settings, settings.revision)
    family = models.diffusion_family(model_ref.path)
    if family not in ("sd", "sdxl", "flux"):
        raise InvalidInputError("generator", generator, f"is a {family} pipeline; LoRA training supports sd, sdxl and flux")
    run_id = _fingerprint(model_ref, lora_data.fingerprint(items), config)
    record_path = out / RECORD_NAME
    if (out / WEIGHTS_NAME).is_file() and record_path.is_file() and json.loads(record_path.read_text()).get("fingerprint") == run_id:
        logger.info("%s already holds this training's adapter (%s); nothing to do", out, run_id)
        return json.loads(record_path.read_text())
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    pipe = _load_pipeline(model_ref.path, config)
    denoiser = pipe.transformer if family == "flux" else pipe.unet
    resolution = config.resolution or _native_resolution(pipe, family)
    images = lora_data.load_images(items, resolution, resolution)
    captions = sorted({item.caption for item in items})
    cached = _prepare(pipe, family, images, [captions.index(item.caption) for item in items], captions, config)
    trainable = _add_lora(denoiser, config)
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=1e-2)
    scaler = torch.amp.GradScaler(enabled=config.mixed_precision == "fp16")
    state = _resume(out / CHECKPOINT_NAME, run_id, denoiser, optimizer, scaler)
    losses: list[float] = state.get("losses", [])
    start = state.get("step", 0)
    prior_seconds = state.get("seconds", 0.0)
    if start:
        logger.info("resumed from step %d of %d (%s)", start, config.steps, out / CHECKPOINT_NAME)
    step_fn = _flow_step if family == "flux" else _ddpm_step
    noise_scheduler = _training_scheduler(pipe, family)
    loop_started = time.perf_counter()
    bar = _progress(config.steps, start, progress)
    denoiser.train()
    for step in range(start, config.steps):
        loss = _train_step(step_fn, pipe, denoiser, noise_scheduler, cached, config, step, optimizer, scaler, trainable)
        losses.append(loss)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        if (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
            seconds = prior_seconds + time.perf_counter() - loop_started
            _save_checkpoint(out / CHECKPOINT_NAME, run_id, step + 1, denoiser, optimizer, scaler, losses, seconds)
    bar.close()
    train_seconds = prior_seconds + time.perf_counter() - loop_started
    _save_weights(pipe, family, denoiser, out)
    record = _record(run_id, model_ref, family, Path(data_dir), items, config, resolution, losses, trainable, train_seconds, started, start, out)
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    (out / CARD_NAME).write_text(card(record))
    (out / CHECKPOINT_NAME).unlink(missing_ok=True)
    logger.info("LoRA adapter written to %s (%d steps, %.0f s)", out, config.steps, train_seconds)
    return record


def _fingerprint(model_ref: models.ModelRef, data_fingerprint: str, config: LoraTrainConfig) -> str:
    payload = json.dumps(
        {"model": model_ref.ref, "revision": model_ref.revision, "weights": _denoiser_digest(model_ref), "data": data_fingerprint, **config.fingerprinted()},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


FULL_DIGEST_BYTES = 1 << 30  # denoiser weights up to this size are hashed whole; larger ones by name, size and time


def _denoiser_digest(model_ref: models.ModelRef) -> str | None:
    """The base's denoiser weights, for a folder without a revision: a retrained folder under the same name
    is another base, and an adapter trained on the old one is not finished work."""
    if model_ref.revision is not None:
        return None
    folders = [Path(model_ref.path) / name for name in ("unet", "transformer")]
    stats = {f: f.stat() for folder in folders for f in sorted(folder.glob("*.safetensors"))}
    if not stats:
        return None
    if sum(stat.st_size for stat in stats.values()) <= FULL_DIGEST_BYTES:
        whole = "".join(weights_digest(folder) for folder in folders if folder.is_dir())
        return hashlib.sha256(whole.encode()).hexdigest()[:16]
    digest = hashlib.sha256()
    for f, stat in stats.items():
        digest.update(f"{f.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _weight_dtype(config: LoraTrainConfig) -> Any:
    import torch

    return {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[config.mixed_precision]


def _load_pipeline(path: str, config: LoraTrainConfig) -> Any:
    """The pipeline with every component frozen, in the mixed-precision dtype (as the examples cast them)."""
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(path, torch_dtype=_weight_dtype(config))
    pipe.to(config.device)
    pipe.set_progress_bar_config(disable=True)
    for name, component in pipe.components.items():
        if hasattr(component, "requires_grad_"):
            component.requires_grad_(False)
            if name != "transformer" and name != "unet":
                component.eval()
    return pipe


def _native_resolution(pipe: Any, family: str) -> int:
    if family == "flux":
        return 1024
    return int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)


def _prepare(pipe: Any, family: str, images: np.ndarray, caption_index: Sequence[int], captions: Sequence[str], config: LoraTrainConfig) -> _Batchable:
    """Encode every image's latent posterior and every caption's conditioning once."""
    import torch

    vae = pipe.vae
    means, stds = [], []
    with torch.no_grad():
        for begin in range(0, len(images), 16):
            chunk = torch.from_numpy(np.ascontiguousarray(images[begin : begin + 16])).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            dist = vae.encode(chunk.to(config.device, vae.dtype)).latent_dist
            means.append(dist.mean.float())
            stds.append(dist.std.float())
        conditioning, extra = _encode_captions(pipe, family, list(captions), images.shape[1], images.shape[2], config)
    return _Batchable(torch.cat(means), torch.cat(stds), np.asarray(caption_index), conditioning, extra)


def _encode_captions(pipe: Any, family: str, captions: list[str], height: int, width: int, config: LoraTrainConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    device = config.device
    if family == "sd":
        embeds, _ = pipe.encode_prompt(captions, device, 1, False)
        return {"encoder_hidden_states": embeds}, {}
    if family == "sdxl":
        embeds, _, pooled, _ = pipe.encode_prompt(prompt=captions, device=device, num_images_per_prompt=1, do_classifier_free_guidance=False)
        # SDXL's micro-conditioning: original size, crop offset, target size (no crop here).
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=embeds.dtype, device=device)
        return {"encoder_hidden_states": embeds, "text_embeds": pooled}, {"time_ids": time_ids}
    max_length = min(256, pipe.tokenizer_2.model_max_length)
    embeds, pooled, text_ids = pipe.encode_prompt(prompt=captions, prompt_2=None, device=device, max_sequence_length=max_length)
    return {"encoder_hidden_states": embeds, "pooled_projections": pooled}, {"txt_ids": text_ids}


def _add_lora(denoiser: Any, config: LoraTrainConfig) -> list[Any]:
    """Attach a fresh LoRA (seeded) and return its parameters, kept in float32 as the examples do."""
    import torch
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig

    torch.manual_seed(config.seed)
    denoiser.add_adapter(
        LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha or config.rank,
            init_lora_weights="gaussian",
            target_modules=list(config.target_modules),
        )
    )
    if config.gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
    cast_training_params(denoiser, dtype=torch.float32)
    return [p for p in denoiser.parameters() if p.requires_grad]


def _training_scheduler(pipe: Any, family: str) -> Any:
    from diffusers import DDPMScheduler

    if family == "flux":
        return None
    return DDPMScheduler.from_config(pipe.scheduler.config)


def _step_generators(seed: int, step: int) -> tuple[np.random.Generator, Any]:
    """The random streams of one step: a function of (seed, step) alone, so a resumed run repeats them."""
    import torch

    return np.random.default_rng([seed, step]), torch.Generator().manual_seed(seed * 1_000_003 + step)


def _train_step(step_fn, pipe, denoiser, noise_scheduler, cached: _Batchable, config: LoraTrainConfig, step: int, optimizer, scaler, trainable) -> float:
    import torch

    rng, generator = _step_generators(config.seed, step)
    index = rng.integers(0, len(cached.means), config.batch_size)
    latents = cached.means[index] + cached.stds[index] * torch.randn(cached.means[index].shape, generator=generator).to(config.device)
    captions = torch.from_numpy(cached.caption_index[index]).to(config.device)
    conditioning = {name: value[captions] for name, value in cached.conditioning.items()}
    autocast = (
        torch.autocast(device_type=torch.device(config.device).type, dtype=_weight_dtype(config))
        if config.mixed_precision != "no"
        else contextlib.nullcontext()
    )
    with autocast:
        loss = step_fn(pipe, denoiser, noise_scheduler, latents, conditioning, cached.extra, generator, config)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def _scaled(pipe: Any, latents: Any) -> Any:
    shift = getattr(pipe.vae.config, "shift_factor", None) or 0.0
    return (latents - shift) * pipe.vae.config.scaling_factor


def _ddpm_step(pipe, denoiser, noise_scheduler, latents, conditioning, extra, generator, config: LoraTrainConfig) -> Any:
    """SD / SDXL: noise at a uniform timestep, predict epsilon (or v, as the scheduler says)."""
    import torch
    import torch.nn.functional as F

    z0 = _scaled(pipe, latents)
    noise = torch.randn(z0.shape, generator=generator).to(z0.device)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(z0),), generator=generator).to(z0.device)
    zt = noise_scheduler.add_noise(z0, noise, t)
    target = noise_scheduler.get_velocity(z0, noise, t) if noise_scheduler.config.prediction_type == "v_prediction" else noise
    kwargs: dict[str, Any] = {"encoder_hidden_states": conditioning["encoder_hidden_states"].to(denoiser.dtype)}
    if "text_embeds" in conditioning:
        kwargs["added_cond_kwargs"] = {"text_embeds": conditioning["text_embeds"], "time_ids": extra["time_ids"].repeat(len(z0), 1)}
    prediction = denoiser(zt.to(denoiser.dtype), t, **kwargs).sample
    return F.mse_loss(prediction.float(), target.float())


def _flow_step(pipe, denoiser, noise_scheduler, latents, conditioning, extra, generator, config: LoraTrainConfig) -> Any:
    """FLUX: rectified flow; interpolate at a logit-normal sigma and predict the velocity noise - x0."""
    import torch
    import torch.nn.functional as F
    from diffusers import FluxPipeline

    z0 = _scaled(pipe, latents)
    n, channels, height, width = z0.shape
    noise = torch.randn(z0.shape, generator=generator).to(z0.device)
    sigmas = torch.sigmoid(torch.randn((n,), generator=generator)).to(z0.device)
    zt = (1.0 - sigmas[:, None, None, None]) * z0 + sigmas[:, None, None, None] * noise
    packed = FluxPipeline._pack_latents(zt, n, channels, height, width)
    image_ids = FluxPipeline._prepare_latent_image_ids(n, height // 2, width // 2, z0.device, denoiser.dtype)
    guidance = torch.ones((n,), device=z0.device) if denoiser.config.guidance_embeds else None
    prediction = denoiser(
        hidden_states=packed.to(denoiser.dtype),
        timestep=sigmas,
        guidance=guidance,
        pooled_projections=conditioning["pooled_projections"],
        encoder_hidden_states=conditioning["encoder_hidden_states"],
        txt_ids=extra["txt_ids"],
        img_ids=image_ids,
        return_dict=False,
    )[0]
    prediction = FluxPipeline._unpack_latents(prediction, height * pipe.vae_scale_factor, width * pipe.vae_scale_factor, pipe.vae_scale_factor)
    return F.mse_loss(prediction.float(), (noise - z0).float())


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="lora train", unit="step", disable=not enabled, dynamic_ncols=True)


def _lora_state(denoiser: Any) -> dict[str, Any]:
    return {name: p.detach().clone() for name, p in denoiser.named_parameters() if p.requires_grad}


def _save_checkpoint(path: Path, run_id: str, step: int, denoiser, optimizer, scaler, losses: list[float], seconds: float) -> None:
    """Write the resumable state beside the output, atomically: a kill mid-write leaves the previous one."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    state = {
        "fingerprint": run_id,
        "step": step,
        "lora": _lora_state(denoiser),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "losses": losses,
        "seconds": seconds,
    }
    torch.save(state, partial)
    os.replace(partial, path)
    logger.debug("checkpoint at step %d: %s", step, path)


def _resume(path: Path, run_id: str, denoiser, optimizer, scaler) -> dict[str, Any]:
    import torch

    if not path.is_file():
        return {}
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("fingerprint") != run_id:
        logger.warning("%s belongs to another training (data, model or options changed); starting over", path)
        return {}
    parameters = dict(denoiser.named_parameters())
    with torch.no_grad():
        for name, value in state["lora"].items():
            parameters[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    return state


def _save_weights(pipe: Any, family: str, denoiser: Any, out: Path) -> None:
    """The diffusers LoRA format, through the pipeline class's own `save_lora_weights`: peft's key names
    (which `load_lora_weights` reads for linear and convolution layers alike) and the adapter's
    `LoraConfig` as metadata, so that a reload gets its alpha and targets, not guessed ones."""
    from peft.utils import get_peft_model_state_dict

    layers = get_peft_model_state_dict(denoiser)
    prefix = "transformer" if family == "flux" else "unet"
    metadata = denoiser.peft_config["default"].to_dict()
    out.mkdir(parents=True, exist_ok=True)
    type(pipe).save_lora_weights(
        out, **{f"{prefix}_lora_layers": layers, f"{prefix}_lora_adapter_metadata": metadata}, weight_name=WEIGHTS_NAME, safe_serialization=True
    )
    (out / WEIGHTS_NAME).chmod(0o644)  # safetensors writes it owner-only; a serving user must read it


def _record(
    run_id,
    model_ref,
    family,
    data_dir: Path,
    items,
    config: LoraTrainConfig,
    resolution: int,
    losses,
    trainable,
    train_seconds: float,
    started: float,
    resumed_from: int,
    out: Path,
) -> dict[str, Any]:
    tail = losses[-max(1, len(losses) // 10) :]
    return {
        "fingerprint": run_id,
        "base_model": model_ref.ref,
        "base_revision": model_ref.revision,
        "family": family,
        "data": {"folder": _shown(data_dir), "images": len(items), "captions": len({i.caption for i in items}), "fingerprint": lora_data.fingerprint(items)},
        "config": {**config.fingerprinted(), "device": config.device},
        "resolution": resolution,
        "trainable_parameters": int(sum(p.numel() for p in trainable)),
        "weights_bytes": (out / WEIGHTS_NAME).stat().st_size,
        "train_seconds": round(train_seconds, 1),
        "wall_seconds_last_run": round(time.perf_counter() - started, 1),
        "resumed_from_step": resumed_from,
        "loss_first": round(float(np.mean(losses[: max(1, len(losses) // 10)])), 5) if losses else None,
        "loss_last": round(float(np.mean(tail)), 5) if losses else None,
    }


def _shown(path: Path) -> str:
    """A path as the card shows it: relative to the project when inside it (no machine's absolute paths)."""
    resolved = path.resolve()
    return str(resolved.relative_to(PROJECT_ROOT)) if resolved.is_relative_to(PROJECT_ROOT) else str(path)


def card(record: dict[str, Any]) -> str:
    """The adapter's model card: front matter as the Hub reads it, then what it was trained on and how."""
    config = record["config"]
    data = record["data"]
    rows = [
        ("base model", f"`{record['base_model']}` ({record['family']})"),
        ("data", f"{data['images']} images, {data['captions']} distinct captions, from `{data['folder']}` (fingerprint `{data['fingerprint']}`)"),
        ("resolution", f"{record['resolution']} x {record['resolution']}"),
        ("LoRA", f"rank {config['rank']}, alpha {config['alpha'] or config['rank']}, on {', '.join(config['target_modules'])}"),
        ("trainable parameters", f"{record['trainable_parameters']:,}"),
        ("steps", f"{config['steps']} at batch size {config['batch_size']}, learning rate {config['learning_rate']}, seed {config['seed']}"),
        (
            "precision",
            f"mixed precision {config['mixed_precision']}, gradient checkpointing {'on' if config['gradient_checkpointing'] else 'off'}, device {config['device']}",
        ),
        ("training time", f"{record['train_seconds']} s" + (f" (resumed from step {record['resumed_from_step']})" if record["resumed_from_step"] else "")),
        ("loss", f"{record['loss_first']} (first tenth of the steps) -> {record['loss_last']} (last tenth)"),
        ("weights", f"`{WEIGHTS_NAME}`, {record['weights_bytes'] / 1024:.0f} KiB"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return f"""---
base_model: {record["base_model"]}
library_name: diffusers
tags:
- lora
- text-to-image
- diffusers
---

# LoRA adapter for `{record["base_model"]}`

Written by `fashion-studio lora train`; the figures come from `{RECORD_NAME}` beside this card.

| | |
|---|---|
{table}

Load it with `pipeline.load_lora_weights("<this folder>")`, or serve it with
`FASHION_LORA=<name>=<this folder>` (chosen per request by `lora: ["<name>"]`).
"""
