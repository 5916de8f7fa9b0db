"""Text -> image through a diffusers pipeline of any supported family, batched by shape.

Requests that share the shape that matters to the denoiser (size, steps, guidance) and the LoRA
adapters they name run as one pipeline call: each image gets its own `torch.Generator`, so an image
depends only on its seed and parameters, never on its batch neighbours. Timings are split into
encode, denoise and decode.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from fashion_studio import models
from fashion_studio.errors import DeadlineExceededError, InvalidInputError
from fashion_studio.settings import Limits, Settings, get_settings

logger = logging.getLogger(__name__)

MAX_SEED = 2**32 - 1


def from_settings(name: str) -> Any:
    """A dataclass field whose default is the settings' value (`FASHION_DEFAULT_*`) when a request is
    made: the library, the wire between services and the public API share this one set of defaults."""
    return field(default_factory=lambda: getattr(get_settings(), name))


@dataclass(frozen=True)
class GenerationRequest:
    """One text -> image request, from the public API through the generator service to the pipeline;
    `check(limits)` raises on any out-of-bounds value (the one set of rules, with the settings' limits)."""

    prompt: str
    negative_prompt: str | None = None
    seed: int | None = None
    steps: int = from_settings("default_steps")
    guidance: float = from_settings("default_guidance")
    width: int = from_settings("default_width")
    height: int = from_settings("default_height")
    num_images: int = 1
    lora: tuple[str, ...] = ()  # named adapters to apply, from the allow-list (`lora_names`)

    def __post_init__(self) -> None:
        # A list from JSON becomes a tuple: the adapters are part of the (hashable) batching key.
        object.__setattr__(self, "lora", tuple(self.lora))

    def check(self, limits: Limits, lora_allowed: Sequence[str] = ()) -> GenerationRequest:
        check_lora(self.lora, lora_allowed)
        check_prompt("prompt", self.prompt, limits)
        if self.negative_prompt:
            check_prompt("negative_prompt", self.negative_prompt, limits, allow_empty=True)
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or not limits.min_size <= value <= limits.max_size:
                raise InvalidInputError(name, value, f"must be an integer in [{limits.min_size}, {limits.max_size}]")
            if value % limits.size_multiple:
                raise InvalidInputError(name, value, f"must be a multiple of {limits.size_multiple}")
        if not isinstance(self.steps, int) or not 1 <= self.steps <= limits.max_steps:
            raise InvalidInputError("steps", self.steps, f"must be an integer in [1, {limits.max_steps}]")
        if not 0.0 <= float(self.guidance) <= limits.max_guidance:
            raise InvalidInputError("guidance", self.guidance, f"must be in [0, {limits.max_guidance}]")
        if not isinstance(self.num_images, int) or not 1 <= self.num_images <= limits.max_images_per_prompt:
            raise InvalidInputError("num_images", self.num_images, f"must be an integer in [1, {limits.max_images_per_prompt}]")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise InvalidInputError("seed", self.seed, f"must be in [0, {MAX_SEED}]")
        return self

    def shape_key(self) -> tuple[int, int, int, float, tuple[str, ...]]:
        """Requests with equal keys may share a pipeline call: one shape, and one set of adapters."""
        return (self.width, self.height, self.steps, float(self.guidance), self.lora)

    def with_seed(self) -> GenerationRequest:
        if self.seed is not None:
            return self
        return dataclasses.replace(self, seed=random.randint(0, MAX_SEED - 8))


def check_lora(names: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    """Adapter names must be on the allow-list, each at most once."""
    allowed_text = ", ".join(allowed) if allowed else "none (no named adapters configured in FASHION_LORA)"
    unknown = [name for name in names if name not in allowed]
    if unknown or len(set(names)) != len(names):
        raise InvalidInputError("lora", list(names), f"must name distinct adapters from the allow-list: {allowed_text}")
    return tuple(names)


def parse_lora_spec(spec: str) -> tuple[str | None, str, float]:
    """`[name=]path-or-hub-id[@weight]` -> (name or None, reference, weight).

    A named adapter is loaded but applied only to requests that name it; an unnamed one applies to
    every request (the deployment's fixed style).
    """
    name, sep, rest = spec.partition("=")
    if not sep:
        name, rest = "", spec
    ref, _, weight = rest.rpartition("@") if "@" in rest else (rest, "", "")
    name = name.strip()
    if sep and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise InvalidInputError("lora", spec, "an adapter name is 1-64 letters, digits, '_', '.' or '-'")
    return (name or None), ref.strip(), float(weight) if weight else 1.0


def lora_names(settings: Settings) -> tuple[str, ...]:
    """The allow-list: names of the adapters in FASHION_LORA that requests may choose."""
    return tuple(name for name, _, _ in map(parse_lora_spec, settings.lora) if name)


def check_prompt(field_name: str, text: Any, limits: Limits, allow_empty: bool = False) -> str:
    if not isinstance(text, str):
        raise InvalidInputError(field_name, text, "must be a string")
    if not allow_empty and not text.strip():
        raise InvalidInputError(field_name, text, "must not be empty")
    if len(text) > limits.max_prompt_chars:
        raise InvalidInputError(field_name, text, f"must be at most {limits.max_prompt_chars} characters")
    if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in text):
        raise InvalidInputError(field_name, text, "must not contain control characters")
    return text


@dataclass
class GenerationResult:
    images: list[Image.Image]
    seeds: list[int]
    timings: dict[str, float]
    batch_images: int
    model: str
    lora: dict[str, float] = field(default_factory=dict)  # the adapters applied, name -> weight
    scores: list[float] | None = None  # CLIP score of each image against the prompt, where the generator's process scores


def stop_at_deadline(deadline: float, steps: int, what: str) -> Callable[..., dict]:
    """A diffusers `callback_on_step_end` that raises `DeadlineExceededError` at the first step past
    `deadline`; raising there skips the remaining steps and the decode."""

    def stop_past_deadline(pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        if time.time() > deadline:
            raise DeadlineExceededError(f"{what} stopped at its deadline, after step {step + 1} of {steps}")
        return callback_kwargs

    return stop_past_deadline


@dataclass
class _StageClock:
    """Times the pipeline's own encode and decode calls; denoise is the rest of the call."""

    encode: float = 0.0
    decode: float = 0.0

    def wrap(self, fn: Callable[..., Any], stage: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                setattr(self, stage, getattr(self, stage) + time.perf_counter() - start)

        timed.__wrapped__ = fn  # type: ignore[attr-defined]
        return timed

    def reset(self) -> None:
        self.encode = 0.0
        self.decode = 0.0


class Generator:
    """A loaded diffusion pipeline plus what it needs to serve batches of requests."""

    def __init__(self, pipeline: Any, family: models.Family, ref: models.ModelRef, runtime: str = "torch") -> None:
        self.pipeline = pipeline
        self.family = family
        self.ref = ref
        self.runtime = runtime
        self.name = short_name(ref.ref)
        self._lock = threading.Lock()
        self._clock = _StageClock()
        self.loras: dict[str, tuple[models.ModelRef, float]] = {}
        self.selectable: tuple[str, ...] = ()  # adapters a request may name; the others always apply
        self._active: tuple[str, ...] | None = None
        pipeline.set_progress_bar_config(disable=True)
        pipeline.encode_prompt = self._clock.wrap(pipeline.encode_prompt, "encode")
        pipeline.vae.decode = self._clock.wrap(pipeline.vae.decode, "decode")

    @classmethod
    def load(cls, settings: Settings, ref: str | None = None) -> Generator:
        from diffusers import DiffusionPipeline

        model_ref = models.resolve("generator", ref or settings.generator, settings, settings.revision)
        family = models.diffusion_family(model_ref.path)
        models.limit_threads(settings)
        if settings.runtime != "torch":
            from fashion_studio.runtimes import load_pipeline

            pipeline = load_pipeline(settings, model_ref, family)
        else:
            pipeline = DiffusionPipeline.from_pretrained(model_ref.path, torch_dtype=models.torch_dtype(settings.dtype))
            pipeline.to(settings.device)
        generator = cls(pipeline, family, model_ref, runtime=settings.runtime)
        for spec in settings.lora:
            generator.load_lora(spec, settings)
        logger.info("generator %s (%s, %s) loaded from %s", model_ref.ref, family, settings.runtime, model_ref.path)
        return generator

    def load_lora(self, spec: str, settings: Settings) -> None:
        """Load a LoRA adapter given as `[name=]path-or-hub-id[@weight]` (seed 003: a fashion LoRA on
        FLUX.1-schnell). A named one waits for requests that name it; an unnamed one always applies."""
        given_name, ref, weight = parse_lora_spec(spec)
        lora = models.resolve("lora", ref, settings)
        name = given_name or f"lora_{len(self.loras)}"
        if name in self.loras:
            raise InvalidInputError("lora", spec, f"adapter name {name!r} is used twice")
        weights = sorted(Path(lora.path).glob("*.safetensors")) if Path(lora.path).is_dir() else []
        weight_name = "pytorch_lora_weights.safetensors" if len(weights) != 1 else weights[0].name
        self.pipeline.load_lora_weights(lora.path, adapter_name=name, weight_name=weight_name)
        self.loras[name] = (lora, weight)
        if given_name:
            self.selectable += (name,)
        self._active = None
        self.use_adapters(())
        logger.info("LoRA %s loaded as %s with weight %s", ref, name, weight)

    def adapters_for(self, names: Sequence[str]) -> dict[str, float]:
        """The adapters a request naming `names` runs with: the always-on ones, then those it names."""
        check_lora(names, self.selectable)
        chosen = [n for n in self.loras if n not in self.selectable] + list(names)
        return {n: self.loras[n][1] for n in chosen}

    def use_adapters(self, names: Sequence[str]) -> dict[str, float]:
        """Switch the pipeline to the adapters of a request naming `names` (diffusers' `set_adapters`,
        or `disable_lora` for none); cheap when they are already active. Call with the pipeline's lock."""
        adapters = self.adapters_for(names)
        key = tuple(adapters)
        if key != self._active and self.loras:
            if adapters:
                self.pipeline.enable_lora()
                self.pipeline.set_adapters(list(adapters), list(adapters.values()))
            else:
                self.pipeline.disable_lora()
            self._active = key
        return adapters

    def generate(self, requests: Sequence[GenerationRequest], deadline: float | None = None) -> list[GenerationResult]:
        """Run requests of one shape as one pipeline call; results in request order.

        With a `deadline` (wall-clock seconds), the denoising loop stops at the first step past it and
        the call raises `DeadlineExceededError`, so no accelerator time goes to answers nobody awaits.
        """
        import torch

        if not requests:
            return []
        keys = {r.shape_key() for r in requests}
        if len(keys) != 1:
            raise ValueError(f"one call takes requests of one shape; got {sorted(keys)}")
        requests = [r.with_seed() for r in requests]
        first = requests[0]
        prompts: list[str] = []
        negatives: list[str] = []
        seeds: list[int] = []
        for r in requests:
            for i in range(r.num_images):
                prompts.append(r.prompt)
                negatives.append(r.negative_prompt or "")
                seeds.append((r.seed + i) % (MAX_SEED + 1))
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        kwargs: dict[str, Any] = dict(
            prompt=prompts,
            num_inference_steps=first.steps,
            guidance_scale=first.guidance,
            width=first.width,
            height=first.height,
            generator=generators,
            output_type="pil",
        )
        if self.family == "flux":
            kwargs["max_sequence_length"] = min(256, self.pipeline.tokenizer_2.model_max_length)
        elif any(negatives):
            kwargs["negative_prompt"] = negatives
        if deadline is not None:
            kwargs["callback_on_step_end"] = stop_at_deadline(deadline, first.steps, "generation")
        with self._lock, torch.inference_mode():
            if deadline is not None and time.time() > deadline:
                raise DeadlineExceededError("the request's deadline passed while it waited for the generator")
            adapters = self.use_adapters(first.lora)
            self._clock.reset()
            start = time.perf_counter()
            images = self.pipeline(**kwargs).images
            total = time.perf_counter() - start
            timings = {
                "encode": self._clock.encode,
                "denoise": max(total - self._clock.encode - self._clock.decode, 0.0),
                "decode": self._clock.decode,
                "total": total,
            }
        results = []
        offset = 0
        for r in requests:
            results.append(
                GenerationResult(
                    images=images[offset : offset + r.num_images],
                    seeds=seeds[offset : offset + r.num_images],
                    timings=timings,
                    batch_images=len(images),
                    model=self.name,
                    lora=adapters,
                )
            )
            offset += r.num_images
        return results

    def __call__(self, request: GenerationRequest) -> GenerationResult:
        return self.generate([request])[0]


def short_name(ref: str) -> str:
    """A metric-label-friendly model name: a hub id as is, a folder as its last two parts."""
    parts = [p for p in ref.replace("\\", "/").split("/") if p]
    return "/".join(parts[-2:]) if parts else ref


def group_by_shape(requests: Sequence[GenerationRequest]) -> list[list[int]]:
    """Indices of requests grouped by shape and adapters, in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(request.shape_key(), []).append(index)
    return list(groups.values())
