"""All models of one process, loaded from settings (what the CLI and the in-process tests use), and the
one builder of the catalog pipeline that the CLI and the gateway share."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from PIL import Image

from fashion_studio import models
from fashion_studio.attributes import LexiconExtractor, LLMExtractor
from fashion_studio.catalog import CatalogPipeline, Extractor
from fashion_studio.errors import ModelNotFoundError
from fashion_studio.generation import GenerationRequest, GenerationResult, Generator, short_name
from fashion_studio.safety import SafetyChecker, build_checker, check_results
from fashion_studio.scoring import Scorer
from fashion_studio.settings import Settings
from fashion_studio.storage import Storage
from fashion_studio.translation import Translator

logger = logging.getLogger(__name__)


@dataclass
class Studio:
    settings: Settings

    @cached_property
    def generator(self) -> Generator:
        return Generator.load(self.settings)

    @cached_property
    def translator(self) -> Translator:
        return Translator.load(self.settings)

    @cached_property
    def scorer(self) -> Scorer:
        return Scorer.load(self.settings)

    @cached_property
    def safety(self) -> SafetyChecker | None:
        """The safety check of `safety_check` (None: off), as the gateway runs it."""
        checker = build_checker(self.settings, self.generator.ref.path, score_pairs=self.scorer.score)
        logger.info("safety check: %s", checker.name if checker else "off")
        return checker

    def generate_checked(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Generate, then the safety check: a blocked image raises ContentBlockedError and is never stored."""
        results = self.generator.generate(requests)
        check_results(self.safety, requests, results)
        return results

    @cached_property
    def storage(self) -> Storage:
        return Storage.from_settings(self.settings)

    @cached_property
    def extractor(self) -> Extractor:
        return build_extractor(self.settings)

    @cached_property
    def catalog(self) -> CatalogPipeline:
        return build_catalog(
            self.settings,
            translate=self.translator.translate_scored,
            generate=self.generate_checked,
            score=self.scorer.score,
            storage=self.storage,
            extractor=self.extractor,
        )


def build_extractor(settings: Settings) -> Extractor:
    """The lexicon by default; an LLM (seed 003 used Phi-3 mini) when `llm` is set, falling back to the lexicon."""
    if not settings.llm:
        return LexiconExtractor()
    ref = models.resolve("llm", settings.llm, settings)
    return LLMExtractor(ref.path, device=settings.device)


def _describe(kind: str, ref: str, settings: Settings, revision: str | None = None) -> dict[str, Any]:
    """What a model reference resolves to; a process without the weights (a gateway pod) names the reference."""
    try:
        return models.resolve(kind, ref, settings, revision).describe()
    except ModelNotFoundError:
        return {"ref": ref, "path": None, "revision": revision}


def describe_models(settings: Settings) -> dict[str, Any]:
    """The models of a deployment as stored in each record's metadata, from the settings alone, so the
    command line and the gateway write the same description."""
    generator = _describe("generator", settings.generator, settings, settings.revision)
    try:
        family: str | None = models.diffusion_family(generator["path"]) if generator["path"] else None
    except ModelNotFoundError:
        family = None
    info: dict[str, Any] = {
        "generator": {**generator, "family": family, "runtime": settings.runtime},
        "translator": _describe("translator", settings.translator, settings),
        "scorer": _describe("scorer", settings.scorer, settings),
    }
    if settings.llm:
        info["llm"] = settings.llm
    if settings.lora:
        info["lora"] = [
            {**_describe("lora", ref, settings), "weight": float(weight) if weight else 1.0}
            for ref, _, weight in (spec.partition("@") for spec in settings.lora)
        ]
    return info


def build_catalog(
    settings: Settings,
    *,
    translate: Callable[[list[str]], Sequence[Any]],
    generate: Callable[[list[GenerationRequest]], list[GenerationResult]],
    score: Callable[[Sequence[Image.Image], Sequence[str]], list[float]],
    storage: Storage,
    extractor: Extractor | None = None,
) -> CatalogPipeline:
    """The catalog pipeline of these settings, over whatever runs the models (in-process or remote): the
    same extractor, model description and record keys everywhere, so an article done by the batch job
    is found done over HTTP."""
    return CatalogPipeline(
        translate=translate,
        generate=generate,
        score=score,
        storage=storage,
        settings=settings,
        extractor=extractor or build_extractor(settings),
        model_info=describe_models(settings),
        generator_name=short_name(settings.generator),
    )
