"""Image + instruction -> edited image through diffusers' `StableDiffusionInstructPix2PixPipeline`
(seed 001 edits the drawn outfit with `timbrooks/instruct-pix2pix`), batched by shape.

Requests that share the shape that matters to the denoiser (working size, steps, text guidance, image
guidance) run as one pipeline call; each image gets its own `torch.Generator`, so an edit depends only
on its source, instruction, seed and parameters, never on its batch neighbours. A source of any size
is resized to the model's working size first: its own size when it fits in the model's native area,
else scaled down to that area (aspect kept), sides a multiple of 8.

The text side of an edit lives here too: `parse_instruction` reads the colour or pattern an
instruction asks for, and `edited_description` applies it to the source's description, so that an
edit is scored against what it should now show.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from PIL import Image

from fashion_studio import models
from fashion_studio.errors import DeadlineExceededError, InvalidInputError, ModelNotFoundError
from fashion_studio.generation import MAX_SEED, _StageClock, check_prompt, short_name, stop_at_deadline
from fashion_studio.settings import Limits, Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EditRequest:
    """One image + instruction -> edited image request; `check(limits)` raises on any out-of-bounds value."""

    image: Image.Image
    instruction: str
    seed: int | None = None
    steps: int = 20
    guidance: float = 5.0  # text guidance: how strongly the instruction is followed
    image_guidance: float = 1.5  # how closely the source is kept

    def check(self, limits: Limits) -> EditRequest:
        check_instruction(self.instruction, limits)
        if not isinstance(self.steps, int) or not 1 <= self.steps <= limits.max_steps:
            raise InvalidInputError("steps", self.steps, f"must be an integer in [1, {limits.max_steps}]")
        for name in ("guidance", "image_guidance"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= limits.max_guidance:
                raise InvalidInputError(name, value, f"must be in [0, {limits.max_guidance}]")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise InvalidInputError("seed", self.seed, f"must be in [0, {MAX_SEED}]")
        return self

    def shape_key(self) -> tuple[int, int, int, float, float]:
        """Requests with equal keys may share a pipeline call."""
        return (self.image.width, self.image.height, self.steps, float(self.guidance), float(self.image_guidance))

    def with_seed(self) -> EditRequest:
        return self if self.seed is not None else replace(self, seed=random.randint(0, MAX_SEED))


def check_instruction(text: Any, limits: Limits) -> str:
    """An instruction is a prompt bounded by `max_instruction_chars`; the error names `instruction`."""
    check_prompt("instruction", text, limits)
    if len(text) > limits.max_instruction_chars:
        raise InvalidInputError("instruction", text, f"must be at most {limits.max_instruction_chars} characters")
    return text


@dataclass
class EditResult:
    image: Image.Image
    seed: int
    timings: dict[str, float]
    batch_images: int
    model: str


def working_size(width: int, height: int, native: tuple[int, int], multiple: int = 8) -> tuple[int, int]:
    """The size an edit runs at: the source's, scaled down to the model's native area when larger
    (aspect ratio kept), each side a multiple of `multiple` and at least one multiple."""
    area = native[0] * native[1]
    scale = min(1.0, math.sqrt(area / max(1, width * height)))

    def side(value: int) -> int:
        return max(multiple, int(round(value * scale / multiple)) * multiple)

    w, h = side(width), side(height)
    while w * h > area and max(w, h) > multiple:  # rounding up may overshoot the area by a row
        if w >= h:
            w -= multiple
        else:
            h -= multiple
    return w, h


class Editor:
    """A loaded InstructPix2Pix pipeline plus what it needs to serve batches of requests."""

    def __init__(self, pipeline: Any, ref: models.ModelRef, runtime: str = "torch") -> None:
        self.pipeline = pipeline
        self.ref = ref
        self.runtime = runtime
        self.name = short_name(ref.ref)
        self._lock = threading.Lock()
        self._clock = _StageClock()
        pipeline.set_progress_bar_config(disable=True)
        # Encoding is the instruction's text encoder and the source's VAE encoder; decoding the VAE decoder.
        pipeline._encode_prompt = self._clock.wrap(pipeline._encode_prompt, "encode")
        pipeline.vae.encode = self._clock.wrap(pipeline.vae.encode, "encode")
        pipeline.vae.decode = self._clock.wrap(pipeline.vae.decode, "decode")

    @classmethod
    def load(cls, settings: Settings, ref: str | None = None) -> Editor:
        from diffusers import StableDiffusionInstructPix2PixPipeline

        model_ref = models.resolve("editor", ref or settings.editor, settings)
        family = models.diffusion_family(model_ref.path)
        if family != "pix2pix":
            raise ModelNotFoundError(
                f"editor model {model_ref.ref!r} is a {family} pipeline; FASHION_EDITOR must name a "
                "StableDiffusionInstructPix2PixPipeline folder or hub id (e.g. timbrooks/instruct-pix2pix)"
            )
        models.limit_threads(settings)
        if settings.runtime != "torch":
            logger.warning("editor: runtime %s has no InstructPix2Pix pipeline; the editor runs on PyTorch", settings.runtime)
        pipeline = StableDiffusionInstructPix2PixPipeline.from_pretrained(model_ref.path, torch_dtype=models.torch_dtype(settings.dtype))
        pipeline.to(settings.device)
        logger.info("editor %s loaded from %s", model_ref.ref, model_ref.path)
        return cls(pipeline, model_ref)

    @property
    def native_size(self) -> tuple[int, int]:
        """The width and height the model was trained at (UNet sample size x VAE scale factor)."""
        size = self.pipeline.unet.config.sample_size
        width, height = (size, size) if isinstance(size, int) else (size[1], size[0])
        return width * self.pipeline.vae_scale_factor, height * self.pipeline.vae_scale_factor

    @property
    def in_channels(self) -> int:
        return int(self.pipeline.unet.config.in_channels)

    def prepare(self, request: EditRequest) -> EditRequest:
        """The request with its source as RGB at the working size."""
        image = request.image.convert("RGB")
        size = working_size(image.width, image.height, self.native_size)
        if image.size != size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        return replace(request, image=image)

    def edit(self, requests: Sequence[EditRequest], deadline: float | None = None) -> list[EditResult]:
        """Run prepared requests of one shape as one pipeline call; results in request order.

        With a `deadline` (wall-clock seconds), the denoising loop stops at the first step past it and
        the call raises `DeadlineExceededError`.
        """
        import torch

        if not requests:
            return []
        keys = {r.shape_key() for r in requests}
        if len(keys) != 1:
            raise ValueError(f"one call takes requests of one shape; got {sorted(keys)}")
        requests = [r.with_seed() for r in requests]
        first = requests[0]
        seeds = [int(r.seed) for r in requests]  # type: ignore[arg-type]
        kwargs: dict[str, Any] = dict(
            prompt=[r.instruction for r in requests],
            image=[r.image for r in requests],
            num_inference_steps=first.steps,
            guidance_scale=first.guidance,
            image_guidance_scale=first.image_guidance,
            generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
            output_type="pil",
        )
        if deadline is not None:
            kwargs["callback_on_step_end"] = stop_at_deadline(deadline, first.steps, "edit")
        with self._lock, torch.inference_mode():
            if deadline is not None and time.time() > deadline:
                raise DeadlineExceededError("the request's deadline passed while it waited for the editor")
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
        return [EditResult(image, seed, timings, len(images), self.name) for image, seed in zip(images, seeds)]

    def __call__(self, request: EditRequest) -> EditResult:
        return self.edit([self.prepare(request)])[0]


def group_by_shape(requests: Sequence[EditRequest]) -> list[list[int]]:
    """Indices of requests grouped by shape, in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(request.shape_key(), []).append(index)
    return list(groups.values())


# --- what an instruction asks for, and the description it leaves ------------------------------------------

PLAIN_PHRASES = (
    "no pattern",
    "without pattern",
    "without a pattern",
    "remove the pattern",
    "remove pattern",
    "solid colour",
    "solid color",
    "plain",
    "solid",
    "unpatterned",
)
# Adjective forms of a pattern ("a striped dress"); the rest of the lexicon's pattern words are nouns.
PATTERN_ADJECTIVES = {"stripes": "striped", "dots": "dotted", "checks": "checked", "plain": "plain"}
_NEGATED = re.compile(r"(?:from|instead of|not|no longer|rather than)\s+$")


@dataclass(frozen=True)
class InstructedChange:
    """The colour and pattern (canonical lexicon words) an instruction asks for; None: not named."""

    colour: str | None = None
    pattern: str | None = None

    def __bool__(self) -> bool:
        return self.colour is not None or self.pattern is not None


@lru_cache(maxsize=1)
def _vocabulary() -> tuple[dict[str, str], dict[str, str], re.Pattern, re.Pattern]:
    from fashion_studio.attributes import lexicon

    colours = {**lexicon.COLOURS["both"], **lexicon.COLOURS["en"]}
    patterns = {**lexicon.PATTERNS["both"], **lexicon.PATTERNS["en"], **{p: "plain" for p in PLAIN_PHRASES}}

    def alternation(words: Sequence[str]) -> re.Pattern:
        ordered = sorted(words, key=len, reverse=True)  # "navy blue" before "navy" and "blue"
        return re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in ordered) + r")(?![\w-])", re.IGNORECASE)

    return colours, patterns, alternation(list(colours)), alternation(list(patterns))


def parse_instruction(instruction: str) -> InstructedChange:
    """The colour and pattern an instruction asks for: the last one named that is not negated
    ("make it blue instead of red" asks for blue; "remove the stripes" for plain)."""
    colours, patterns, colour_re, pattern_re = _vocabulary()
    text = instruction.lower()

    def last(pattern: re.Pattern, table: dict[str, str]) -> str | None:
        found = [m for m in pattern.finditer(text) if not _NEGATED.search(text[: m.start()])]
        return table[found[-1].group(1).lower()] if found else None

    colour = last(colour_re, colours)
    pattern = last(pattern_re, patterns)
    if re.search(r"\b(remove|without|take off|no)\b[^.]*\b(stripes?|dots|checks|pattern|print)\b", text):
        pattern = "plain"
    return InstructedChange(colour, pattern)


def edited_description(description: str | None, instruction: str) -> str:
    """The source's description with the instruction applied: colour words replaced by the colour it
    asks for, pattern words by its pattern (a missing one added). With no description, or an
    instruction that names no colour or pattern, the description says what is known."""
    change = parse_instruction(instruction)
    if not description:
        return instruction
    if not change:
        return f"{description}, {instruction}"
    colours, patterns, colour_re, pattern_re = _vocabulary()
    text = description
    if change.colour is not None:
        replaced = 0

        def recolour(match: re.Match) -> str:
            nonlocal replaced
            if re.match(r"\s+background", match.string[match.end() :]):  # the studio's, not the product's colour
                return match.group(0)
            replaced += 1
            return change.colour

        text = colour_re.sub(recolour, text)
        if not replaced:
            text = f"{text}, in {change.colour}"
    if change.pattern is not None:
        adjective = PATTERN_ADJECTIVES.get(change.pattern, change.pattern)

        def swap(match: re.Match) -> str:
            word = match.group(1).lower()
            return adjective if word in PATTERN_ADJECTIVES.values() or word.endswith("ed") else change.pattern if change.pattern != "plain" else "plain"

        text, count = pattern_re.subn(swap, text)
        text = re.sub(r"\bwith plain\b", "plain", text)
        if count == 0 and change.pattern != "plain":
            text = f"{text}, with {change.pattern}"
    return text


def source_description(metadata: dict[str, Any]) -> str | None:
    """What a stored image shows, from its metadata: an edit's description, else the short CLIP prompt,
    else the generation prompt or the catalog description."""
    for key in ("edited_description", "clip_prompt", "generation_prompt", "prompt", "original_description", "description"):
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None
