"""PyTorch references of the declared components: `forward(*inputs)` returns the declared outputs.

The same module is what `torch.onnx.export` traces (for the `torch` exporter) and what the parity
check runs, so an exported graph is compared with exactly the computation it claims to be.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from export.specs import ComponentSpec


class _Wrapper(nn.Module):
    def __init__(self, model: nn.Module, spec: ComponentSpec) -> None:
        super().__init__()
        self.model = model
        self.spec = spec


class ClipTextEncoder(_Wrapper):
    """CLIPTextModel(WithProjection) as the pipelines call it; the penultimate layer for SDXL."""

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        penultimate = self.spec.extra.get("penultimate", False)
        out = self.model(input_ids, output_hidden_states=penultimate, return_dict=True)
        first = out.text_embeds if self.spec.kind == "clip_text_projection" else None
        values = {
            "text_embeds": first,
            "last_hidden_state": out.last_hidden_state,
            "pooler_output": getattr(out, "pooler_output", None),
            "penultimate_hidden_state": out.hidden_states[-2] if penultimate else None,
        }
        return tuple(values[name] for name in self.spec.output_names)


class T5Encoder(_Wrapper):
    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.model(input_ids, return_dict=True).last_hidden_state,)


class UNet(_Wrapper):
    """A per-item timestep, so that Triton can batch requests at different denoising steps."""

    def forward(self, sample, timestep, encoder_hidden_states, *added: torch.Tensor) -> tuple[torch.Tensor]:
        kwargs: dict[str, Any] = {}
        if added:
            kwargs["added_cond_kwargs"] = {"text_embeds": added[0], "time_ids": added[1]}
        return (self.model(sample, timestep, encoder_hidden_states, return_dict=False, **kwargs)[0],)


class FluxTransformer(_Wrapper):
    """Position ids arrive batched (Triton stacks every input); all items share one grid, so item 0 is used."""

    def forward(self, hidden_states, encoder_hidden_states, pooled_projections, timestep, img_ids, txt_ids, *guidance) -> tuple[torch.Tensor]:
        out = self.model(
            hidden_states=hidden_states,
            encoder_hidden_states=encoder_hidden_states,
            pooled_projections=pooled_projections,
            timestep=timestep,
            img_ids=img_ids[0],
            txt_ids=txt_ids[0],
            guidance=guidance[0] if guidance else None,
            return_dict=False,
        )
        return (out[0],)


class VaeDecoder(_Wrapper):
    def forward(self, latent_sample: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.model.decode(latent_sample, return_dict=False)[0],)


class VaeEncoder(_Wrapper):
    """The posterior's parameters (mean and log-variance), as optimum's VAE encoder exports them."""

    def forward(self, sample: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.model.encode(sample).latent_dist.parameters,)


class ClipTextTower(_Wrapper):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask),)


class ClipVisionTower(_Wrapper):
    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.model.get_image_features(pixel_values=pixel_values),)


class MarianEncoder(_Wrapper):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state,)


class MarianDecoder(_Wrapper):
    """First decoder step: logits and the self- and cross-attention cache it starts."""

    def forward(self, encoder_attention_mask, input_ids, encoder_hidden_states) -> tuple[torch.Tensor, ...]:
        out = self.model(
            attention_mask=encoder_attention_mask,
            decoder_input_ids=input_ids,
            encoder_outputs=(encoder_hidden_states,),
            use_cache=True,
            return_dict=True,
        )
        flat: list[torch.Tensor] = [out.logits]
        for self_k, self_v, cross_k, cross_v in _legacy(out.past_key_values):
            flat += [self_k, self_v, cross_k, cross_v]
        return tuple(flat)


class MarianDecoderWithPast(_Wrapper):
    """A later step: the cross-attention cache replaces the encoder states, which are not inputs."""

    def forward(self, encoder_attention_mask, input_ids, *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from transformers.cache_utils import EncoderDecoderCache

        layers = tuple(tuple(past[i : i + 4]) for i in range(0, len(past), 4))
        cache = EncoderDecoderCache.from_legacy_cache(layers)
        batch, source_length = encoder_attention_mask.shape
        placeholder = torch.zeros(batch, source_length, self.model.config.d_model, dtype=past[0].dtype)
        out = self.model(
            attention_mask=encoder_attention_mask,
            decoder_input_ids=input_ids,
            encoder_outputs=(placeholder,),
            past_key_values=cache,
            use_cache=True,
            return_dict=True,
        )
        flat: list[torch.Tensor] = [out.logits]
        for self_k, self_v, _, _ in _legacy(out.past_key_values):
            flat += [self_k, self_v]
        return tuple(flat)


def _legacy(cache: Any) -> tuple:
    return cache.to_legacy_cache() if hasattr(cache, "to_legacy_cache") else cache


def _diffusers(cls_name: str) -> Callable[[Path, str], nn.Module]:
    def load(model_dir: Path, subfolder: str) -> nn.Module:
        import diffusers

        return getattr(diffusers, cls_name).from_pretrained(model_dir, subfolder=subfolder, torch_dtype=torch.float32)

    return load


def _transformers(cls_name: str) -> Callable[[Path, str], nn.Module]:
    def load(model_dir: Path, subfolder: str) -> nn.Module:
        import transformers

        kwargs = {"subfolder": subfolder} if subfolder else {}
        return getattr(transformers, cls_name).from_pretrained(model_dir, dtype=torch.float32, **kwargs)

    return load


# kind -> (loader of the torch model, wrapper class)
BUILDERS: dict[str, tuple[Callable[[Path, str], nn.Module], type[_Wrapper]]] = {
    "clip_text": (_transformers("CLIPTextModel"), ClipTextEncoder),
    "clip_text_projection": (_transformers("CLIPTextModelWithProjection"), ClipTextEncoder),
    "t5_encoder": (_transformers("T5EncoderModel"), T5Encoder),
    "unet": (_diffusers("UNet2DConditionModel"), UNet),
    "flux_transformer": (_diffusers("FluxTransformer2DModel"), FluxTransformer),
    "vae_decoder": (_diffusers("AutoencoderKL"), VaeDecoder),
    "vae_encoder": (_diffusers("AutoencoderKL"), VaeEncoder),
    "clip_text_tower": (_transformers("CLIPModel"), ClipTextTower),
    "clip_vision_tower": (_transformers("CLIPModel"), ClipVisionTower),
    "marian_encoder": (_transformers("MarianMTModel"), MarianEncoder),
    "marian_decoder": (_transformers("MarianMTModel"), MarianDecoder),
    "marian_decoder_with_past": (_transformers("MarianMTModel"), MarianDecoderWithPast),
}


def reference(spec: ComponentSpec, model_dir: Path, cache: dict[tuple[str, str], nn.Module] | None = None) -> _Wrapper:
    """The torch reference of `spec`, in eval mode, fp32; `cache` shares a loaded model between components."""
    loader, wrapper = BUILDERS[spec.kind]
    key = (loader.__closure__[0].cell_contents if loader.__closure__ else spec.kind, spec.source)  # type: ignore[index]
    model = cache.get(key) if cache is not None else None
    if model is None:
        model = loader(model_dir, spec.source).eval()
        if cache is not None:
            cache[key] = model
    return wrapper(model, spec).eval()


@contextmanager
def export_patches(spec: ComponentSpec) -> Iterator[None]:
    """Optimum's graph-friendly replacements of ops the tracer cannot export (rms_norm, tril, ...),
    and its rotary embedding for Flux, for as long as one trace runs."""
    from optimum.exporters.onnx import model_patcher as mp

    patches = [(p.o, p.name, p.custom_op) for p in mp.UNSUPPORTED_OPS_PATCHING_SPEC if p.op_wrapper is None]
    if spec.kind == "flux_transformer":
        import diffusers.models.transformers.transformer_flux as flux

        patches.append((flux, "apply_rotary_emb", mp.patched_apply_rotary_emb))
    originals = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, op in patches:
            setattr(obj, name, op)
        yield
    finally:
        for obj, name, op in reversed(originals):
            setattr(obj, name, op)
