"""All models of one process, loaded from settings: what the CLI and the in-process tests use."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from fashion_studio import models
from fashion_studio.attributes import LexiconExtractor, LLMExtractor
from fashion_studio.catalog import CatalogPipeline, Extractor
from fashion_studio.generation import GenerationRequest, GenerationResult, Generator
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
        return Storage(self.settings.storage_url)

    @cached_property
    def extractor(self) -> Extractor:
        """The lexicon by default; an LLM (seed 003 used Phi-3 mini) when `llm` is set, falling back to the lexicon."""
        if not self.settings.llm:
            return LexiconExtractor()
        ref = models.resolve("llm", self.settings.llm, self.settings)
        return LLMExtractor(ref.path, device=self.settings.device)

    def model_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "generator": {**self.generator.ref.describe(), "family": self.generator.family, "runtime": self.generator.runtime},
            "translator": self.translator.ref.describe(),
            "scorer": self.scorer.ref.describe(),
        }
        if self.settings.llm:
            info["llm"] = self.settings.llm
        if self.generator.loras:
            info["lora"] = [{**ref.describe(), "weight": w} for ref, w in self.generator.loras.values()]
        return info

    @cached_property
    def catalog(self) -> CatalogPipeline:
        return CatalogPipeline(
            translate=self.translator.translate,
            generate=self.generate_checked,
            score=self.scorer.score,
            storage=self.storage,
            settings=self.settings,
            extractor=self.extractor,
            model_info=self.model_info(),
            generator_name=self.generator.name,
        )
