"""Safety checking of generated images, before anything is stored or returned.

Two checkers, chosen by `safety_check`:
- "diffusers": the `StableDiffusionSafetyChecker` that a model folder ships (`safety_checker/` and
  `feature_extractor/`, named in `model_index.json`); "auto" picks it when it is there, so the model
  families that ship one are checked by default, and nothing is checked otherwise.
- "clip": the CLIP score of each image against `safety_concepts`; an image is blocked when any
  concept reaches `safety_threshold`. It needs no extra weights (the scorer's CLIP does the work),
  and its threshold must be calibrated for the scorer model (100 x cosine; ViT-L/14 puts matching
  pairs near 30 and unrelated ones under 20).

A blocked image is never stored. The gateway drops it from a `/generate` answer (the answer says how
many were blocked) and answers 422 `content_blocked` when no image is left, or for `/generate_image`
and `/catalog`. An image that a pipeline's own checker already blacked out counts as blocked too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from fashion_studio.errors import InvalidInputError
from fashion_studio.settings import Settings

logger = logging.getLogger(__name__)

ScorePairs = Callable[[Sequence[Image.Image], Sequence[str]], list[float]]


class ContentBlockedError(InvalidInputError):
    """Every image a request produced failed the safety check (HTTP 422, reason `content_blocked`)."""

    def __init__(self, prompt: str, checker: str, blocked: int, field: str = "prompt") -> None:
        super().__init__(field, prompt, f"generated images must pass the {checker} safety check; {blocked} blocked, none stored")


@dataclass(frozen=True)
class Verdict:
    blocked: bool
    reason: str = ""
    score: float | None = None


class SafetyChecker(Protocol):
    name: str

    def check(self, images: Sequence[Image.Image]) -> list[Verdict]: ...


def blanked(image: Image.Image) -> bool:
    """True for an all-black image: what a diffusers pipeline returns in place of a flagged one."""
    return all(high == 0 for _, high in _extrema(image.convert("RGB")))


def _extrema(image: Image.Image) -> list[tuple[int, int]]:
    extrema: Any = image.getextrema()
    return list(extrema)


def ships_safety_checker(folder: str | Path) -> bool:
    """Whether a diffusers folder names and contains a safety checker with its feature extractor."""
    folder = Path(folder)
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    entry = index.get("safety_checker")
    named = isinstance(entry, list) and len(entry) == 2 and all(entry)
    return named and (folder / "safety_checker").is_dir() and (folder / "feature_extractor").is_dir()


class DiffusersSafetyChecker:
    name = "diffusers"

    def __init__(self, model: Any, processor: Any) -> None:
        self.model = model.eval()
        self.processor = processor

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> DiffusersSafetyChecker:
        from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
        from transformers import CLIPImageProcessor

        folder = Path(folder)
        model = StableDiffusionSafetyChecker.from_pretrained(folder / "safety_checker").to(device)
        processor = CLIPImageProcessor.from_pretrained(folder / "feature_extractor")
        logger.info("safety checker loaded from %s", folder)
        return cls(model, processor)

    def check(self, images: Sequence[Image.Image]) -> list[Verdict]:
        import numpy as np
        import torch

        if not images:
            return []
        rgb = [im.convert("RGB") for im in images]
        pixels = self.processor(rgb, return_tensors="pt").pixel_values.to(self.model.device, self.model.dtype)
        # The checker blacks out what it flags in `images`; hand it placeholders, keep the verdicts.
        placeholders = [np.zeros((1, 1, 3), dtype=np.float32) for _ in rgb]
        with torch.inference_mode():
            _, flags = self.model(clip_input=pixels, images=placeholders)
        verdicts = []
        for image, flagged in zip(rgb, flags):
            if flagged:
                verdicts.append(Verdict(True, "flagged by the diffusers safety checker"))
            elif blanked(image):
                verdicts.append(Verdict(True, "blacked out by the pipeline's safety checker"))
            else:
                verdicts.append(Verdict(False))
        return verdicts


class ClipConceptFilter:
    """Blocks an image whose CLIP score against any unsafe concept reaches the threshold."""

    name = "clip"

    def __init__(self, score_pairs: ScorePairs | None, concepts: Sequence[str], threshold: float) -> None:
        if not concepts:
            raise ValueError("the CLIP safety filter needs at least one concept (FASHION_SAFETY_CONCEPTS)")
        self.score_pairs = score_pairs
        self.concepts = list(concepts)
        self.threshold = threshold

    def pairs(self, images: Sequence[Image.Image]) -> tuple[list[Image.Image], list[str]]:
        """The (image, concept) pairs to score, image-major; lets a caller batch them with its own."""
        return [im for im in images for _ in self.concepts], [c for _ in images for c in self.concepts]

    def verdicts(self, scores: Sequence[float], count: int) -> list[Verdict]:
        if len(scores) != count * len(self.concepts):
            raise ValueError(f"expected {count * len(self.concepts)} scores, got {len(scores)}")
        verdicts = []
        for i in range(count):
            row = scores[i * len(self.concepts) : (i + 1) * len(self.concepts)]
            best = max(range(len(row)), key=row.__getitem__)
            if row[best] >= self.threshold:
                verdicts.append(Verdict(True, f"matches {self.concepts[best]!r} (CLIP {row[best]:.1f} >= {self.threshold:g})", row[best]))
            else:
                verdicts.append(Verdict(False, score=row[best]))
        return verdicts

    def check(self, images: Sequence[Image.Image]) -> list[Verdict]:
        if not images:
            return []
        if self.score_pairs is None:
            raise RuntimeError("this CLIP safety filter was built without a scorer")
        pair_images, texts = self.pairs(images)
        return self.verdicts(self.score_pairs(pair_images, texts), len(images))


def resolve_mode(settings: Settings, generator_folder: str | Path | None) -> str:
    """What `safety_check` means for this generator: "diffusers", "clip" or "off"."""
    mode = settings.safety_check
    shipped = generator_folder is not None and ships_safety_checker(generator_folder)
    if mode == "auto":
        return "diffusers" if shipped else "off"
    if mode == "diffusers" and not shipped:
        raise ValueError(f"FASHION_SAFETY_CHECK=diffusers, but {generator_folder} ships no safety_checker/ and feature_extractor/")
    return mode


def build_checker(settings: Settings, generator_folder: str | Path | None, score_pairs: ScorePairs | None = None) -> SafetyChecker | None:
    """The checker the settings ask for, or None when checking is off."""
    mode = resolve_mode(settings, generator_folder)
    if mode == "diffusers":
        assert generator_folder is not None
        return DiffusersSafetyChecker.load(generator_folder, device=settings.device)
    if mode == "clip":
        return ClipConceptFilter(score_pairs, settings.safety_concepts, settings.safety_threshold)
    return None


def check_results(checker: SafetyChecker | None, requests: Sequence[Any], results: Sequence[Any]) -> None:
    """Raise ContentBlockedError for the first request whose images the checker blocks (None: no check)."""
    if checker is None:
        return
    for request, result in zip(requests, results):
        blocked = sum(v.blocked for v in checker.check(result.images))
        if blocked:
            logger.warning("safety check (%s) blocked %d image(s) of prompt %r", checker.name, blocked, request.prompt[:80])
            raise ContentBlockedError(request.prompt, checker.name, blocked)
