"""The fashion-mini CLIP: a ViT image tower and a text tower trained contrastively on rendered products
and their captions.

A caption may leave colour and pattern open ("Product image of a dress"); the contrastive targets treat
every image it describes as a positive (uniform over them), so such captions do not teach the model to
tell apart images they do not tell apart. Its text tower is also the Stable Diffusion text encoder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashion_studio.builders import OPENAI_CLIP_MEAN as _OPENAI_CLIP_MEAN
from fashion_studio.builders import OPENAI_CLIP_STD as _OPENAI_CLIP_STD
from fashion_studio.mini.common import Budget, count_parameters, lr_at, seed_everything, set_lr
from fashion_studio.mini.data import Item
from fashion_studio.mini.render import IMAGE_SIZE
from fashion_studio.mini.text import Caption
from fashion_studio.mini.tokenizers import CLIP_MAX_LENGTH, clip_tokenizer

logger = logging.getLogger(__name__)

HIDDEN = 128
TEXT_CONFIG = {"hidden_size": HIDDEN, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4}
VISION_CONFIG = {"hidden_size": HIDDEN, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4, "patch_size": 16}


def text_config(tokenizer: Any) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=CLIP_MAX_LENGTH,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        projection_dim=HIDDEN,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TEXT_CONFIG,
    )


def build_model(tokenizer: Any, seed: int) -> Any:
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig

    vision = CLIPVisionConfig(image_size=IMAGE_SIZE, num_channels=3, projection_dim=HIDDEN, hidden_act="quick_gelu", layer_norm_eps=1e-5, **VISION_CONFIG)
    config = CLIPConfig(text_config=text_config(tokenizer).to_dict(), vision_config=vision.to_dict(), projection_dim=HIDDEN)
    seed_everything(seed)
    return CLIPModel(config)


def image_processor() -> Any:
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        do_resize=True,
        size={"shortest_edge": IMAGE_SIZE},
        resample=3,
        do_center_crop=True,
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_rescale=True,
        do_normalize=True,
        image_mean=_OPENAI_CLIP_MEAN,
        image_std=_OPENAI_CLIP_STD,
        do_convert_rgb=True,
    )


def pixel_values(images: np.ndarray) -> Any:
    """uint8 (n, 64, 64, 3) -> normalised (n, 3, 64, 64), as the image processor does at 64x64."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(_OPENAI_CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_OPENAI_CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def consistent(images: Sequence[Caption], texts: Sequence[Caption]) -> np.ndarray:
    """m[i, j]: caption j describes image i (images[i] names all of its attributes)."""

    def codes(captions: Sequence[Caption], name: str) -> np.ndarray:
        return np.array([hash(getattr(c, name)) if getattr(c, name) is not None else 0 for c in captions])

    m = np.ones((len(images), len(texts)), dtype=bool)
    for name in ("product_type", "colour", "pattern"):
        image_codes, text_codes = codes(images, name), codes(texts, name)
        m &= (image_codes[:, None] == text_codes[None, :]) | (text_codes[None, :] == 0)
    return m.astype(np.float32)


def _blur(x: Any, generator: Any) -> Any:
    """A light random blur on about a third of the batch, so generated (softer) images score like renders."""
    import torch
    import torch.nn.functional as F

    kernel = torch.tensor([1.0, 2.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :]) / 16.0
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel.expand(3, 1, 3, 3).contiguous(), groups=3)
    pick = (torch.rand(x.shape[0], 1, 1, 1, generator=generator) < 0.35).float()
    return pick * blurred + (1 - pick) * x


def train(out: Path, items: Sequence[Item], images: np.ndarray, seed: int, steps: int, max_seconds: float, batch_size: int = 128) -> dict[str, Any]:
    """Train on rendered images and their captions; save a CLIPModel and its processor to `out`."""
    import torch
    import torch.nn.functional as F
    from transformers import CLIPProcessor

    seed_everything(seed)
    all_captions = [c for item in items for c in item.captions]
    tokenizer = clip_tokenizer([c.text for c in all_captions], fast=True)
    model = build_model(tokenizer, seed)
    model.train()
    encoded = tokenizer([c.text for c in all_captions], truncation=True, max_length=CLIP_MAX_LENGTH)["input_ids"]
    offsets = np.cumsum([0] + [len(item.captions) for item in items])
    full = [Caption("", item.spec.product_type, item.spec.colour, item.spec.pattern) for item in items]  # the truth
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.1, betas=(0.9, 0.98))
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    budget = Budget(steps, max_seconds)
    losses: list[float] = []
    pad = tokenizer.pad_token_id
    for step in budget:
        index = rng.integers(0, len(items), batch_size)
        choice = [int(offsets[i] + rng.integers(0, len(items[i].captions))) for i in index]
        rows = [encoded[k] for k in choice]
        width = max(len(r) for r in rows)
        input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        target = torch.from_numpy(consistent([full[i] for i in index], [all_captions[k] for k in choice]))
        pixels = _blur(pixel_values(images[index]), generator)
        set_lr(optimizer, lr_at(step, steps, 5e-4, warmup=min(200, steps // 10)))
        output = model(input_ids=input_ids, attention_mask=attention, pixel_values=pixels)
        logits = output.logits_per_image  # (images, texts), scaled
        loss_i = -(F.log_softmax(logits, dim=1) * (target / target.sum(1, keepdim=True))).sum(1).mean()
        loss_t = -(F.log_softmax(logits.T, dim=1) * (target.T / target.T.sum(1, keepdim=True))).sum(1).mean()
        loss = 0.5 * (loss_i + loss_t)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100.0))
        losses.append(loss.item())
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    CLIPProcessor(image_processor=image_processor(), tokenizer=tokenizer).save_pretrained(out)
    tail = losses[-50:]
    return {
        **budget.summary(),
        "batch_size": batch_size,
        "train_images": len(items),
        "final_loss": round(sum(tail) / max(1, len(tail)), 4),
        "logit_scale": round(float(model.logit_scale.exp()), 2),
        "parameters": count_parameters(model),
        "vocab_size": len(tokenizer),
    }
