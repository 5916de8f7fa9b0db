"""The fashion-mini Stable Diffusion pipeline: an AutoencoderKL (downsampling 4x, 64x64 -> 16x16x4), a
UNet2DConditionModel conditioned on the fashion-mini CLIP text tower (frozen, reused as the text
encoder), and a diffusers scheduler, saved as a standard `StableDiffusionPipeline` folder.

The VAE trains first (L1 + L2 reconstruction, a small KL term); the UNet then trains on the cached
latents with the DDPM epsilon objective, offset noise, min-SNR loss weights, an EMA of its weights, and 10% of the
captions dropped (half to "", half to the service's negative prompt) for classifier-free guidance.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashion_studio.mini.common import PACED_SCHEDULE, Budget, count_parameters, lr_at, seed_everything, set_lr
from fashion_studio.mini.data import Item
from fashion_studio.mini.render import IMAGE_SIZE
from fashion_studio.mini.tokenizers import CLIP_MAX_LENGTH
from fashion_studio.settings import DEFAULT_NEGATIVE_PROMPT

logger = logging.getLogger(__name__)

LATENT_SIZE = IMAGE_SIZE // 4
VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 3,
    "up_block_types": ("UpDecoderBlock2D",) * 3,
    "block_out_channels": (16, 32, 64),
    "layers_per_block": 1,
    "latent_channels": 4,
    # Few groups: a group norm over one or two channels would erase a flat image's colour.
    "norm_num_groups": 4,
    "sample_size": IMAGE_SIZE,
}
UNET_CONFIG: dict[str, Any] = {
    "sample_size": LATENT_SIZE,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (32, 64, 128),
    "layers_per_block": 1,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "attention_head_dim": 8,
    "norm_num_groups": 8,
    # The text states, attention-pooled, are added to the time embedding (as DeepFloyd IF's UNet does),
    # so that every ResNet block sees the product's colour and type, not only the attention blocks.
    "addition_embed_type": "text",
    "addition_embed_type_num_heads": 4,
}
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "prediction_type": "epsilon",
}
# Offset noise: Stable Diffusion's schedule leaves 7% of the signal at t=999, so a denoiser trained on
# plain Gaussian noise learns to read the image's mean colour off the noise's own low frequencies, which
# at sampling time are random (and then so is the colour). A per-channel offset in the training noise
# makes the text the only reliable source of the colour.
OFFSET_NOISE = 0.1
UNCONDITIONAL_RATE = 0.1
MIN_SNR_GAMMA = 5.0


def _to_tensor(images: np.ndarray) -> Any:
    """uint8 (n, 64, 64, 3) -> float (n, 3, 64, 64) in [-1, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


# ---------------------------------------------------------------------------------------------------
# VAE


def train_vae(
    out: Path,
    images: np.ndarray,
    seed: int,
    steps: int,
    max_seconds: float,
    batch_size: int = 32,
    kl_weight: float = 1e-6,
) -> tuple[Any, dict[str, Any]]:
    import torch
    from diffusers import AutoencoderKL

    seed_everything(seed)
    vae = AutoencoderKL(**VAE_CONFIG)
    vae.train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    budget = Budget(steps, max_seconds)
    losses = fit_vae(vae, optimizer, images, np.random.default_rng(seed), budget, 1e-3, min(100, steps // 10), batch_size, kl_weight)
    vae.eval()
    out.mkdir(parents=True, exist_ok=True)
    vae.save_pretrained(out, safe_serialization=True)
    tail = losses[-50:]
    return vae, {
        **budget.summary(),
        "batch_size": batch_size,
        "final_reconstruction_loss": round(sum(tail) / max(1, len(tail)), 4),
        "parameters": count_parameters(vae),
    }


def fit_vae(
    vae: Any,
    optimizer: Any,
    images: np.ndarray,
    rng: np.random.Generator,
    budget: Budget,
    lr: float,
    warmup: int,
    batch_size: int,
    kl_weight: float,
    pixel_weights: np.ndarray | None = None,
) -> list[float]:
    """The VAE's training loop (`train_vae`, and the fine-tunes of `inpainter.finetune_vae`): L1 + L2
    reconstruction plus a KL term, the learning rate warming up then decaying over the budget's steps (and its
    time, for a paced budget: `Budget.schedule_step`); `pixel_weights` (n, h, w) multiply each image's
    reconstruction error pixel by pixel. The reconstruction losses, one per step."""
    import torch

    losses: list[float] = []
    for step in budget:
        index = rng.integers(0, len(images), batch_size)
        x = _to_tensor(images[index])
        set_lr(optimizer, lr_at(budget.schedule_step(step), budget.steps, lr, warmup=warmup))
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        w = 1.0 if pixel_weights is None else torch.from_numpy(pixel_weights[index]).float()[:, None]
        loss_rec = ((recon - x).abs() * w).mean() + (((recon - x) ** 2) * w).mean()
        loss = loss_rec + kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        losses.append(loss_rec.item())
    return losses


def encode_latents(vae: Any, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and standard deviations of every image, unscaled (n, 4, 16, 16) each."""
    import torch

    means, stds = [], []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            dist = vae.encode(_to_tensor(images[start : start + batch_size])).latent_dist
            means.append(dist.mean.numpy())
            stds.append(dist.std.numpy())
    return np.concatenate(means), np.concatenate(stds)


def reconstruction_error(vae: Any, images: np.ndarray) -> float:
    """Mean absolute error in 0..255 of decoded posterior means."""
    import torch

    with torch.inference_mode():
        x = _to_tensor(images)
        recon = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
    return float((recon - x).abs().mean() * 127.5)


# ---------------------------------------------------------------------------------------------------
# Text conditioning


def text_encoder_from_clip(clip_dir: Path) -> tuple[Any, Any]:
    """The CLIP model's text tower as a `CLIPTextModel`, and the slow CLIP tokenizer with its vocabulary."""
    from transformers import CLIPModel, CLIPTextModel, CLIPTokenizer

    clip = CLIPModel.from_pretrained(clip_dir)
    text_encoder = CLIPTextModel(clip.config.text_config)
    text_encoder.text_model.load_state_dict(clip.text_model.state_dict())
    text_encoder.eval().requires_grad_(False)
    tokenizer = CLIPTokenizer.from_pretrained(clip_dir)
    return text_encoder, tokenizer


def encode_prompts(text_encoder: Any, tokenizer: Any, prompts: Sequence[str]) -> Any:
    """What `StableDiffusionPipeline.encode_prompt` computes: last hidden states of 77 padded tokens."""
    import torch

    ids = tokenizer(list(prompts), padding="max_length", max_length=CLIP_MAX_LENGTH, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        return text_encoder(ids)[0]


# ---------------------------------------------------------------------------------------------------
# UNet


def build_unet(cross_attention_dim: int, seed: int) -> Any:
    from diffusers import UNet2DConditionModel

    seed_everything(seed)
    return UNet2DConditionModel(cross_attention_dim=cross_attention_dim, **UNET_CONFIG)


def train_unet(
    out: Path,
    items: Sequence[Item],
    latents: tuple[np.ndarray, np.ndarray],
    scaling_factor: float,
    text_encoder: Any,
    tokenizer: Any,
    seed: int,
    steps: int,
    max_seconds: float,
    batch_size: int = 64,
    lr: float = 1e-3,
    checkpoint: Path | None = None,
    checkpoint_key: dict[str, Any] | None = None,
    checkpoint_every: int = 100,
    unet: Any | None = None,
    weights: np.ndarray | None = None,
    loss_maps: np.ndarray | None = None,
    paced: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Train the UNet; with `checkpoint`, its whole state (weights, EMA, optimizer, random streams) is
    saved there every `checkpoint_every` steps, and a run ended part-way resumes from it to the same
    weights as an uninterrupted one (when the checkpoint's key is `checkpoint_key`).

    `items` are catalog items (their captions) or each latent's caption texts. `unet` fine-tunes that
    UNet instead of a new one; `weights` (summing to 1) draws the examples with those probabilities.
    `loss_maps` (n, h, w), one per latent, weighs each latent pixel's error (a weighted mean, so an example's
    loss keeps its scale and a map of ones is the plain loss). `paced`: the learning rate decays with the
    time budget where that ends the run first (`Budget.schedule_step`); a paced run resumed from its
    checkpoint is not bit-identical to an uninterrupted one (its schedule read the clock)."""
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler

    seed_everything(seed)
    texts = [tuple(c.text for c in item.captions) if hasattr(item, "captions") else tuple(item) for item in items]
    unet = build_unet(text_encoder.config.hidden_size, seed) if unet is None else unet
    unet.train().requires_grad_(True)
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    noise_scheduler = DDPMScheduler(**SCHEDULER_CONFIG)
    alphas = noise_scheduler.alphas_cumprod
    snr = alphas / (1 - alphas)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.01)
    means, stds = (torch.from_numpy(a) for a in latents)
    maps = None if loss_maps is None else torch.from_numpy(np.asarray(loss_maps, np.float32))
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    unconditional = encode_prompts(text_encoder, tokenizer, ["", DEFAULT_NEGATIVE_PROMPT])
    budget = Budget(steps, max_seconds, paced=paced)
    losses: list[float] = []
    start = 0
    state_path = checkpoint / "state.pt" if checkpoint is not None else None
    if state_path is not None and state_path.is_file():
        state = torch.load(state_path, weights_only=False)
        if state["key"] == checkpoint_key:
            unet.load_state_dict(state["unet"])
            ema.load_state_dict(state["ema"])
            optimizer.load_state_dict(state["optimizer"])
            rng.bit_generator.state = state["rng"]
            generator.set_state(state["generator"])
            losses, start = state["losses"], state["step"]
            logger.info("resuming the UNet at step %d from %s", start, state_path)
    for step in budget:
        if step < start:
            continue
        index = rng.integers(0, len(texts), batch_size) if weights is None else rng.choice(len(texts), batch_size, p=weights)
        prompts = [texts[i][rng.integers(len(texts[i]))] for i in index]
        context = encode_prompts(text_encoder, tokenizer, prompts)
        drop = rng.random(batch_size) < UNCONDITIONAL_RATE
        for k in np.flatnonzero(drop):
            context[k] = unconditional[rng.integers(2)]
        idx = torch.from_numpy(index)
        z0 = (means[idx] + stds[idx] * torch.randn(means[idx].shape, generator=generator)) * scaling_factor
        noise = torch.randn(z0.shape, generator=generator)
        noise += OFFSET_NOISE * torch.randn((batch_size, z0.shape[1], 1, 1), generator=generator)
        t = torch.randint(0, SCHEDULER_CONFIG["num_train_timesteps"], (batch_size,), generator=generator)
        zt = noise_scheduler.add_noise(z0, noise, t)
        set_lr(optimizer, lr_at(budget.schedule_step(step), steps, lr, warmup=min(200, steps // 10)))
        prediction = unet(zt, t, encoder_hidden_states=context).sample
        weight = torch.clamp(snr[t], max=MIN_SNR_GAMMA) / snr[t]
        error = F.mse_loss(prediction, noise, reduction="none")
        if maps is None:
            error = error.mean(dim=(1, 2, 3))
        else:
            pixel = maps[idx].unsqueeze(1)
            error = (error * pixel).mean(dim=(1, 2, 3)) / pixel.mean(dim=(1, 2, 3))
        loss = (weight * error).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), unet.parameters()):
                e.mul_(decay).add_(p.detach(), alpha=1 - decay)
        losses.append(loss.item())
        if (step + 1) % 500 == 0:
            ema.save_pretrained(out, safe_serialization=True)  # a checkpoint to look at while training runs
        if state_path is not None and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            state_path.parent.mkdir(parents=True, exist_ok=True)
            state = {
                "key": checkpoint_key,
                "step": step + 1,
                "unet": unet.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": rng.bit_generator.state,
                "generator": generator.get_state(),
                "losses": losses,
            }
            torch.save(state, state_path.with_suffix(".tmp"))
            state_path.with_suffix(".tmp").replace(state_path)
    trained = budget.summary()  # the training loop's time, before the saving
    out.mkdir(parents=True, exist_ok=True)
    ema.save_pretrained(out, safe_serialization=True)
    tail = losses[-100:]
    if state_path is not None:
        state_path.unlink(missing_ok=True)
    return ema, {
        **trained,
        "resumed_from_step": start,
        "batch_size": batch_size,
        "final_loss": round(sum(tail) / max(1, len(tail)), 4),
        "parameters": count_parameters(unet),
        "ema_decay": 0.999,
        "offset_noise": OFFSET_NOISE,
        **({"learning_rate_schedule": PACED_SCHEDULE} if paced else {}),
    }


# ---------------------------------------------------------------------------------------------------
# The pipeline


def scheduler() -> Any:
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(**SCHEDULER_CONFIG, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=False)


def assemble(out: Path, vae: Any, unet: Any, text_encoder: Any, tokenizer: Any, scaling_factor: float) -> Any:
    """Write the standard diffusers folder (StableDiffusionPipeline, no safety checker)."""
    from diffusers import StableDiffusionPipeline

    vae.register_to_config(scaling_factor=float(scaling_factor))
    pipe = StableDiffusionPipeline(
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
    for component in ("vae", "unet"):  # diffusers records the local folder each was loaded from
        config_path = out / component / "config.json"
        config = json.loads(config_path.read_text())
        config.pop("_name_or_path", None)
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return pipe
