"""Masked re-generation and virtual try-on over one diffusers inpainting pipeline (a UNet whose input is
the noisy latents, the mask and the masked image's latents: 9 channels).

- `Inpainter.inpaint`: image + mask + prompt -> the masked region redrawn, through
  `StableDiffusionInpaintPipeline` (seed 002 redraws a clicked garment region).
- `Inpainter.try_on`: person + garment + mask -> the person wearing the garment, as CatVTON does it: the
  masked person and the garment are encoded by the VAE and concatenated along the height into one
  latent canvas (person above, garment below), the mask covers the person half only, the prompt is
  empty, and classifier-free guidance drops the garment half. The denoised person half is decoded.
  No garment encoder, no pose or parsing input: the UNet's self-attention carries the garment over.

Both keep every pixel outside the mask: the result is the input image there, exactly (the decoded
image is pasted into the mask at the input's own size). Requests of one shape (working size, steps,
guidance) share one batch; each image has its own `torch.Generator`, so a result depends only on its
inputs and seed. An input of any size runs at the model's native area (aspect kept, sides a multiple
of 8), and the answer comes back at the input's size.

Real weights: `FASHION_INPAINTER` may name any `StableDiffusionInpaintPipeline` folder or hub id
(stable-diffusion-v1-5/stable-diffusion-inpainting); CatVTON's released try-on weights are
self-attention weights over such a base, loaded into a copy of its UNet for try-on only
(`FASHION_TRYON_ATTENTION`, `fashion_studio.catvton`); fashion-mini's inpainter is trained for both tasks.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from fashion_studio import models
from fashion_studio.editing import working_size
from fashion_studio.errors import DeadlineExceededError, InvalidInputError, ModelNotFoundError
from fashion_studio.generation import MAX_SEED, check_prompt, short_name, stop_at_deadline
from fashion_studio.settings import Limits, Settings

logger = logging.getLogger(__name__)

KINDS = ("inpaint", "tryon")


def check_mask(field: str, mask: Any, size: tuple[int, int]) -> np.ndarray:
    """A boolean (height, width) mask of the image's size with at least one pixel set; errors name `field`."""
    mask = np.asarray(mask)
    width, height = size
    if mask.ndim != 2 or mask.shape != (height, width):
        got = f"{mask.shape[1]}x{mask.shape[0]}" if mask.ndim == 2 else f"shape {mask.shape}"
        raise InvalidInputError(field, got, f"must be the image's size, {width}x{height} (width x height)")
    mask = mask.astype(bool)
    if not mask.any():
        raise InvalidInputError(field, "empty", "must cover at least one pixel (white = redraw)")
    return mask


def mask_from_image(image: Image.Image) -> np.ndarray:
    """A mask image (white = redraw; grey levels from 128 up count) as a boolean array."""
    return np.asarray(image.convert("L")) >= 128


def mask_image(mask: np.ndarray) -> Image.Image:
    return Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), "L")


def _check_common(request: Any, limits: Limits) -> None:
    if not isinstance(request.steps, int) or not 1 <= request.steps <= limits.max_steps:
        raise InvalidInputError("steps", request.steps, f"must be an integer in [1, {limits.max_steps}]")
    if not 0.0 <= float(request.guidance) <= limits.max_guidance:
        raise InvalidInputError("guidance", request.guidance, f"must be in [0, {limits.max_guidance}]")
    if request.seed is not None and not 0 <= request.seed <= MAX_SEED:
        raise InvalidInputError("seed", request.seed, f"must be in [0, {MAX_SEED}]")


@dataclass(frozen=True)
class InpaintRequest:
    """Redraw `image` inside `mask` (boolean, the image's size) as `prompt` describes."""

    image: Image.Image
    mask: np.ndarray
    prompt: str
    negative_prompt: str | None = None
    seed: int | None = None
    steps: int = 20
    guidance: float = 5.0

    def check(self, limits: Limits) -> InpaintRequest:
        check_prompt("prompt", self.prompt, limits)
        if self.negative_prompt is not None:
            check_prompt("negative_prompt", self.negative_prompt, limits, allow_empty=True)
        _check_common(self, limits)
        return replace(self, mask=check_mask("mask", self.mask, self.image.size))

    def shape_key(self) -> tuple[Any, ...]:
        """Requests with equal keys may share a pipeline call (after `Inpainter.prepare`)."""
        return ("inpaint", self.image.width, self.image.height, self.steps, float(self.guidance))

    def with_seed(self) -> InpaintRequest:
        return self if self.seed is not None else replace(self, seed=random.randint(0, MAX_SEED))


@dataclass(frozen=True)
class TryOnRequest:
    """Dress `person` in `garment` inside `mask` (boolean, the person image's size)."""

    person: Image.Image
    garment: Image.Image
    mask: np.ndarray
    seed: int | None = None
    steps: int = 20
    guidance: float = 2.5

    def check(self, limits: Limits) -> TryOnRequest:
        _check_common(self, limits)
        return replace(self, mask=check_mask("mask", self.mask, self.person.size))

    def shape_key(self) -> tuple[Any, ...]:
        return ("tryon", self.person.width, self.person.height, self.steps, float(self.guidance))

    def with_seed(self) -> TryOnRequest:
        return self if self.seed is not None else replace(self, seed=random.randint(0, MAX_SEED))


@dataclass
class InpaintResult:
    image: Image.Image
    seed: int
    timings: dict[str, float]
    batch_images: int
    model: str
    changed_pixels: int  # pixels inside the mask, at the input's size (every other pixel is the input's)


def paste(original: Image.Image, drawn: Image.Image, mask: np.ndarray) -> Image.Image:
    """`drawn` (any size) inside `mask`, `original` everywhere else, at the original's size."""
    original = original.convert("RGB")
    if drawn.size != original.size:
        drawn = drawn.resize(original.size, Image.Resampling.LANCZOS)
    out = np.where(mask[..., None], np.asarray(drawn.convert("RGB")), np.asarray(original))
    return Image.fromarray(out.astype(np.uint8), "RGB")


def fit_garment(garment: Image.Image, size: tuple[int, int], fill: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """The garment scaled to fit `size` with its aspect kept, padded with `fill` (CatVTON's resize_and_padding)."""
    garment = garment.convert("RGB")
    scale = min(size[0] / garment.width, size[1] / garment.height)
    fitted = garment.resize((max(1, round(garment.width * scale)), max(1, round(garment.height * scale))), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", size, fill)
    canvas.paste(fitted, ((size[0] - fitted.width) // 2, (size[1] - fitted.height) // 2))
    return canvas


def group_by_shape(requests: Sequence[Any]) -> list[list[int]]:
    """Indices of requests that may share one call (equal `shape_key`), in first-seen order."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, request in enumerate(requests):
        groups.setdefault(request.shape_key(), []).append(i)
    return list(groups.values())


class Inpainter:
    """A loaded inpainting pipeline plus what it needs to serve batches of inpaint and try-on requests."""

    def __init__(self, pipeline: Any, ref: models.ModelRef, tryon_unet: Any = None, tryon_vae: Any = None, tryon_ref: str | None = None) -> None:
        """`tryon_unet` and `tryon_vae`, when given, run `/tryon` in place of the pipeline's own (CatVTON's
        weights: `fashion_studio.catvton`); `tryon_ref` names them in results."""
        self.pipeline = pipeline
        self.ref = ref
        self.name = short_name(ref.ref)
        self.tryon_unet = tryon_unet if tryon_unet is not None else pipeline.unet
        self.tryon_vae = tryon_vae if tryon_vae is not None else pipeline.vae
        self.tryon_name = f"{self.name}+{short_name(tryon_ref)}" if tryon_ref else self.name
        self._lock = threading.Lock()
        pipeline.set_progress_bar_config(disable=True)
        if int(pipeline.unet.config.in_channels) != 9:
            raise ModelNotFoundError(f"inpainter {ref.ref!r}: its UNet takes {pipeline.unet.config.in_channels} input channels; an inpainting UNet takes 9")

    @classmethod
    def load(cls, settings: Settings, ref: str | None = None) -> Inpainter:
        from diffusers import StableDiffusionInpaintPipeline

        model_ref = models.resolve("inpainter", ref or settings.inpainter, settings)
        family = models.diffusion_family(model_ref.path)
        if family != "inpaint":
            raise ModelNotFoundError(
                f"inpainter model {model_ref.ref!r} is a {family} pipeline; FASHION_INPAINTER must name a "
                "StableDiffusionInpaintPipeline folder or hub id (e.g. stable-diffusion-v1-5/stable-diffusion-inpainting)"
            )
        models.limit_threads(settings)
        pipeline = StableDiffusionInpaintPipeline.from_pretrained(model_ref.path, torch_dtype=models.torch_dtype(settings.dtype))
        pipeline.to(settings.device)
        logger.info("inpainter %s loaded from %s", model_ref.ref, model_ref.path)
        tryon_unet = tryon_vae = None
        if settings.tryon_attention:
            import copy

            from fashion_studio import catvton

            tryon_unet = catvton.apply(copy.deepcopy(pipeline.unet), catvton.resolve(settings.tryon_attention, settings))
        if settings.tryon_vae:
            from diffusers import AutoencoderKL

            vae_ref = models.resolve("tryon_vae", settings.tryon_vae, settings)
            tryon_vae = AutoencoderKL.from_pretrained(vae_ref.path, torch_dtype=pipeline.vae.dtype).to(settings.device)
            if tryon_vae.config.latent_channels != pipeline.vae.config.latent_channels:
                raise ModelNotFoundError(
                    f"FASHION_TRYON_VAE {settings.tryon_vae!r} makes {tryon_vae.config.latent_channels} latent channels; the inpainter's UNet reads {pipeline.vae.config.latent_channels}"
                )
        return cls(pipeline, model_ref, tryon_unet, tryon_vae, settings.tryon_attention)

    @property
    def native_size(self) -> tuple[int, int]:
        """The width and height the model was trained at (UNet sample size x VAE scale factor)."""
        size = self.pipeline.unet.config.sample_size
        width, height = (size, size) if isinstance(size, int) else (size[1], size[0])
        return width * self.pipeline.vae_scale_factor, height * self.pipeline.vae_scale_factor

    def working_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return working_size(size[0], size[1], self.native_size)

    def prepare(self, request: InpaintRequest | TryOnRequest) -> InpaintRequest | TryOnRequest:
        """The request with its image at the working size (its mask stays at the input's size for the
        paste; the model reads it resized). A try-on's working size is the person's."""
        if isinstance(request, InpaintRequest):
            image = request.image.convert("RGB")
            size = self.working_size(image.size)
            return replace(request, image=image if image.size == size else image.resize(size, Image.Resampling.LANCZOS))
        person = request.person.convert("RGB")
        size = self.working_size(person.size)
        return replace(
            request,
            person=person if person.size == size else person.resize(size, Image.Resampling.LANCZOS),
            garment=fit_garment(request.garment, size),
        )

    # -- the two tasks -----------------------------------------------------------------------------

    def inpaint(
        self, requests: Sequence[InpaintRequest], originals: Sequence[Image.Image], negative_prompt: str | None = None, deadline: float | None = None
    ) -> list[InpaintResult]:
        """Prepared requests of one shape as one `StableDiffusionInpaintPipeline` call; `originals` are
        the images at their own size (the masks' size), pasted around the drawn region."""
        import torch

        if not requests:
            return []
        self._one_shape(requests)
        requests = [r.with_seed() for r in requests]
        first = requests[0]
        seeds = [int(r.seed) for r in requests]  # type: ignore[arg-type]
        width, height = first.image.size
        masks = [mask_image(r.mask).resize((width, height), Image.Resampling.NEAREST) for r in requests]
        negatives = [r.negative_prompt if r.negative_prompt is not None else (negative_prompt or "") for r in requests]
        kwargs: dict[str, Any] = dict(
            prompt=[r.prompt for r in requests],
            negative_prompt=negatives,
            image=[r.image for r in requests],
            mask_image=masks,
            width=width,
            height=height,
            strength=1.0,
            num_inference_steps=first.steps,
            guidance_scale=first.guidance,
            generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
            output_type="pil",
        )
        if deadline is not None:
            kwargs["callback_on_step_end"] = stop_at_deadline(deadline, first.steps, "inpainting")
        with self._lock, torch.inference_mode():
            self._check_deadline(deadline)
            start = time.perf_counter()
            drawn = self.pipeline(**kwargs).images
            total = time.perf_counter() - start
        timings = {"total": total}
        return [
            InpaintResult(paste(original, image, r.mask), seed, timings, len(requests), self.name, int(r.mask.sum()))
            for r, original, image, seed in zip(requests, originals, drawn, seeds)
        ]

    def try_on(self, requests: Sequence[TryOnRequest], originals: Sequence[Image.Image], deadline: float | None = None) -> list[InpaintResult]:
        """Prepared try-on requests of one shape in one batch, CatVTON's way (see the module's doc);
        `originals` are the person images at their own size (the masks' size)."""
        import torch

        if not requests:
            return []
        self._one_shape(requests)
        requests = [r.with_seed() for r in requests]
        first = requests[0]
        seeds = [int(r.seed) for r in requests]  # type: ignore[arg-type]
        pipe = self.pipeline
        width, height = first.person.size
        factor = pipe.vae_scale_factor
        latent_hw = (height // factor, width // factor)
        guided = first.guidance > 1.0
        unet, vae = self.tryon_unet, self.tryon_vae
        device, dtype = unet.device, unet.dtype
        with self._lock, torch.inference_mode():
            self._check_deadline(deadline)
            start = time.perf_counter()
            scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
            persons = pipe.image_processor.preprocess([r.person for r in requests], height=height, width=width).to(device, dtype)
            garments = pipe.image_processor.preprocess([r.garment for r in requests], height=height, width=width).to(device, dtype)
            masks = torch.stack([torch.from_numpy(np.asarray(mask_image(r.mask).resize((width, height), Image.Resampling.NEAREST)) >= 128) for r in requests])[
                :, None
            ].to(device, dtype)
            scaling = vae.config.scaling_factor
            masked = vae.encode(persons * (masks < 0.5)).latent_dist.mode() * scaling
            garment_latents = vae.encode(garments).latent_dist.mode() * scaling
            mask_latents = torch.nn.functional.interpolate(masks, size=latent_hw)
            condition = torch.cat([masked, garment_latents], dim=-2)
            mask_canvas = torch.cat([mask_latents, torch.zeros_like(mask_latents)], dim=-2)
            if guided:
                condition = torch.cat([torch.cat([masked, torch.zeros_like(garment_latents)], dim=-2), condition])
                mask_canvas = torch.cat([mask_canvas, mask_canvas])
            context, _ = pipe.encode_prompt("", device, len(condition), False)
            shape = (unet.config.out_channels, 2 * latent_hw[0], latent_hw[1])
            noise = torch.stack([torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s)) for s in seeds]).to(device, dtype)
            scheduler.set_timesteps(first.steps, device=device)
            latents = noise * scheduler.init_noise_sigma
            encoded = time.perf_counter()
            for step, t in enumerate(scheduler.timesteps):
                if deadline is not None and time.time() > deadline:
                    raise DeadlineExceededError(f"try-on stopped at its deadline, after step {step} of {first.steps}")
                model_input = torch.cat([latents, latents]) if guided else latents
                model_input = scheduler.scale_model_input(model_input, t)
                prediction = unet(torch.cat([model_input, mask_canvas, condition], dim=1), t, encoder_hidden_states=context).sample
                if guided:
                    unconditional, conditional = prediction.chunk(2)
                    prediction = unconditional + first.guidance * (conditional - unconditional)
                latents = scheduler.step(prediction, t, latents).prev_sample
            denoised = time.perf_counter()
            decoded = vae.decode(latents[..., : latent_hw[0], :] / scaling).sample
            drawn = pipe.image_processor.postprocess(decoded, output_type="pil")
            end = time.perf_counter()
        timings = {"encode": encoded - start, "denoise": denoised - encoded, "decode": end - denoised, "total": end - start}
        return [
            InpaintResult(paste(original, image, r.mask), seed, timings, len(requests), self.tryon_name, int(r.mask.sum()))
            for r, original, image, seed in zip(requests, originals, drawn, seeds)
        ]

    def run(self, requests: Sequence[InpaintRequest | TryOnRequest], negative_prompt: str | None = None) -> list[InpaintResult]:
        """Checked requests of any shapes and both kinds: prepared, grouped by shape, results in order."""
        prepared = [self.prepare(r) for r in requests]
        results: list[InpaintResult | None] = [None] * len(requests)
        for group in group_by_shape(prepared):
            batch = [prepared[i] for i in group]
            if isinstance(batch[0], InpaintRequest):
                done = self.inpaint(batch, [requests[i].image for i in group], negative_prompt)  # type: ignore[union-attr,arg-type]
            else:
                done = self.try_on(batch, [requests[i].person for i in group])  # type: ignore[union-attr,arg-type]
            for i, result in zip(group, done):
                results[i] = result
        return results  # type: ignore[return-value]

    @staticmethod
    def _one_shape(requests: Sequence[Any]) -> None:
        keys = {r.shape_key() for r in requests}
        if len(keys) != 1:
            raise ValueError(f"one call takes requests of one shape; got {sorted(keys)}")

    @staticmethod
    def _check_deadline(deadline: float | None) -> None:
        if deadline is not None and time.time() > deadline:
            raise DeadlineExceededError("the request's deadline passed while it waited for the inpainter")
