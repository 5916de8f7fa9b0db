"""The catalog pipeline (seed 003), served and in batch.

description (de|en) -> translate -> attributes -> generation + CLIP prompts -> image -> CLIP score ->
quality gate (under the threshold: regenerate with a new seed, up to N attempts, keep the best, record
every attempt) -> PNG + JSON metadata.

Components come in as plain callables, so the same code runs on in-process models (CLI, batch job)
and on remote BentoML services (the gateway).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Protocol

from PIL import Image

from fashion_studio import metrics
from fashion_studio.attributes import Attributes, LexiconExtractor, detect_language
from fashion_studio.errors import InvalidInputError
from fashion_studio.generation import MAX_SEED, GenerationRequest, GenerationResult
from fashion_studio.prompts import build_prompts
from fashion_studio.settings import Settings
from fashion_studio.storage import Storage, safe_key

logger = logging.getLogger(__name__)

Language = Literal["de", "en", "auto"]
STATISTICS_NAME = "_statistics.json"


class Extractor(Protocol):
    def extract(self, text: str, language: Language = "auto") -> Attributes: ...


@dataclass(frozen=True)
class CatalogParams:
    """Generation parameters of a catalog run; part of each article's record key."""

    steps: int = 4
    guidance: float = 0.0
    width: int = 64
    height: int = 64
    seed: int | None = None
    threshold: float = 25.0
    max_attempts: int = 3

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> CatalogParams:
        values = dict(
            steps=settings.default_steps,
            guidance=settings.default_guidance,
            width=settings.default_width,
            height=settings.default_height,
            threshold=settings.clip_threshold,
            max_attempts=settings.max_attempts,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def check(self) -> CatalogParams:
        if not 1 <= self.max_attempts <= 10:
            raise InvalidInputError("max_attempts", self.max_attempts, "must be in [1, 10]")
        if not 0.0 <= self.threshold <= 100.0:
            raise InvalidInputError("threshold", self.threshold, "must be in [0, 100]")
        return self


@dataclass(frozen=True)
class Article:
    article_id: str
    description: str
    language: Language = "auto"


@dataclass
class Attempt:
    attempt: int
    seed: int
    clip_score: float
    seconds: float


@dataclass
class CatalogResult:
    article_id: str
    key: str
    translation: str
    attributes: dict[str, Any]
    generation_prompt: str
    clip_prompt: str
    clip_score: float
    passed: bool
    attempts: list[Attempt]
    seed: int
    image_url: str
    metadata_url: str
    skipped: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    image: Image.Image | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("image")
        return data


def record_key(article: Article, params: CatalogParams, generator_name: str) -> str:
    """Article id plus a hash of what determines its image, so a changed description is redone."""
    payload = json.dumps(
        {"description": article.description, "language": article.language, "params": asdict(params), "model": generator_name},
        sort_keys=True,
    )
    return f"{safe_key(article.article_id, 80)}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def attempt_seed(base_seed: int, attempt: int) -> int:
    return (base_seed + attempt * 7919) % (MAX_SEED + 1)


def merge_attributes(primary: Attributes, secondary: Attributes) -> Attributes:
    """Attributes of the source text, completed from those of its translation."""
    data = primary.model_dump()
    for name, value in secondary.model_dump().items():
        if name == "language":
            continue
        if isinstance(value, list):
            data[name] = list(dict.fromkeys([*data[name], *value]))
        elif data.get(name) is None:
            data[name] = value
    return Attributes.model_validate(data)


class CatalogPipeline:
    def __init__(
        self,
        *,
        translate: Callable[[Sequence[str]], list[str]],
        generate: Callable[[Sequence[GenerationRequest]], list[GenerationResult]],
        score: Callable[[Sequence[Image.Image], Sequence[str]], list[float]],
        storage: Storage,
        settings: Settings,
        extractor: Extractor | None = None,
        model_info: dict[str, Any] | None = None,
        generator_name: str = "generator",
    ) -> None:
        self.translate = translate
        self.generate = generate
        self.score = score
        self.storage = storage
        self.settings = settings
        self.extractor = extractor or LexiconExtractor()
        self.model_info = model_info or {}
        self.generator_name = generator_name

    def check_article(self, article: Article) -> Article:
        if not isinstance(article.article_id, str) or not article.article_id.strip():
            raise InvalidInputError("article_id", article.article_id, "must be a non-empty string")
        if len(article.article_id) > 128:
            raise InvalidInputError("article_id", article.article_id, "must be at most 128 characters")
        limit = self.settings.limits.max_description_chars
        if not isinstance(article.description, str) or not article.description.strip():
            raise InvalidInputError("description", article.description, "must not be empty")
        if len(article.description) > limit:
            raise InvalidInputError("description", article.description, f"must be at most {limit} characters")
        if article.language not in ("de", "en", "auto"):
            raise InvalidInputError("language", article.language, "must be one of 'de', 'en', 'auto'")
        return article

    def process(self, article: Article, params: CatalogParams, skip_existing: bool = True) -> CatalogResult:
        article = self.check_article(article)
        params.check()
        key = record_key(article, params, self.generator_name)
        if skip_existing and self.storage.exists(key):
            return self._from_record(key)
        timings: dict[str, float] = {}
        language = detect_language(article.description) if article.language == "auto" else article.language

        start = time.perf_counter()
        with metrics.time_stage("translate"):
            translation = self.translate([article.description])[0] if language == "de" else article.description
        timings["translate"] = time.perf_counter() - start

        start = time.perf_counter()
        with metrics.time_stage("extract"):
            attributes = self.extractor.extract(article.description, language)
            if language == "de" and translation.strip():
                attributes = merge_attributes(attributes, self.extractor.extract(translation, "en"))
            prompts = build_prompts(
                attributes,
                self.settings.generation_template,
                self.settings.clip_template,
                fallback_subject=translation,
                max_chars=self.settings.limits.max_prompt_chars,
            )
        timings["extract"] = time.perf_counter() - start

        base_seed = params.seed if params.seed is not None else int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
        attempts: list[Attempt] = []
        best: tuple[float, Image.Image, int] | None = None
        generate_s = score_s = 0.0
        for number in range(params.max_attempts):
            seed = attempt_seed(base_seed, number)
            request = GenerationRequest(
                prompt=prompts.generation,
                negative_prompt=self.settings.negative_prompt or None,
                seed=seed,
                steps=params.steps,
                guidance=params.guidance,
                width=params.width,
                height=params.height,
            ).check(self.settings.limits)
            t0 = time.perf_counter()
            with metrics.time_stage("generate"):
                image = self.generate([request])[0].images[0]
            t1 = time.perf_counter()
            with metrics.time_stage("score"):
                clip_score = float(self.score([image], [prompts.clip])[0])
            t2 = time.perf_counter()
            generate_s += t1 - t0
            score_s += t2 - t1
            attempts.append(Attempt(attempt=number + 1, seed=seed, clip_score=round(clip_score, 4), seconds=round(t2 - t0, 4)))
            if best is None or clip_score > best[0]:
                best = (clip_score, image, seed)
            if clip_score >= params.threshold:
                break
        assert best is not None
        best_score, best_image, best_seed = best
        passed = best_score >= params.threshold
        metrics.GATE_OUTCOMES.labels(
            outcome="failed" if not passed else ("passed_first" if len(attempts) == 1 else "passed_retry")
        ).inc()
        metrics.GATE_ATTEMPTS.observe(len(attempts))
        metrics.CLIP_SCORE.observe(best_score)
        timings["generate"] = generate_s
        timings["score"] = score_s

        metadata = {
            # seed 003's keys, unchanged
            "sample_id": article.article_id,
            "original_description": article.description,
            "generation_prompt": prompts.generation,
            "clip_prompt": prompts.clip,
            "clip_score": round(best_score, 4),
            # ours
            "record_key": key,
            "language": language,
            "translation": translation,
            "attributes": attributes.model_dump(),
            "negative_prompt": self.settings.negative_prompt,
            "seed": best_seed,
            "passed": passed,
            "threshold": params.threshold,
            "attempts": [asdict(a) for a in attempts],
            "params": asdict(params),
            "models": self.model_info,
            "timings": {k: round(v, 4) for k, v in timings.items()},
            "created_at": datetime.now(timezone.utc).isoformat(),
        }
        start = time.perf_counter()
        with metrics.time_stage("store"):
            stored = self.storage.put(key, best_image, metadata)
        timings["store"] = time.perf_counter() - start
        return CatalogResult(
            article_id=article.article_id,
            key=key,
            translation=translation,
            attributes=attributes.model_dump(),
            generation_prompt=prompts.generation,
            clip_prompt=prompts.clip,
            clip_score=round(best_score, 4),
            passed=passed,
            attempts=attempts,
            seed=best_seed,
            image_url=stored.image_url,
            metadata_url=stored.metadata_url,
            timings=timings,
            image=best_image,
        )

    def _from_record(self, key: str) -> CatalogResult:
        record = self.storage.get_metadata(key)
        return CatalogResult(
            article_id=record["sample_id"],
            key=key,
            translation=record["translation"],
            attributes=record["attributes"],
            generation_prompt=record["generation_prompt"],
            clip_prompt=record["clip_prompt"],
            clip_score=record["clip_score"],
            passed=record["passed"],
            attempts=[Attempt(**a) for a in record["attempts"]],
            seed=record["seed"],
            image_url=record["image_url"],
            metadata_url=self.storage.url_of(f"{key}.json"),
            skipped=True,
            timings=record.get("timings", {}),
        )


# --- the batch job over a spreadsheet -------------------------------------------------------------


def read_articles(
    path: str | Path, id_column: str = "article_id", description_column: str = "description", language: Language = "auto"
) -> list[Article]:
    """Rows of a .csv or .xlsx file as articles; a missing column or an unreadable file is an input error."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError("file", str(path), "must be an existing .csv or .xlsx file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            rows = _read_csv(path)
        elif suffix in (".xlsx", ".xlsm"):
            rows = _read_xlsx(path)
        else:
            raise InvalidInputError("file", str(path), "must end in .csv or .xlsx")
    except InvalidInputError:
        raise
    except Exception as exc:
        raise InvalidInputError("file", str(path), f"must be a readable .csv or .xlsx spreadsheet ({type(exc).__name__}: {exc})") from exc
    header, body = rows
    for column, option in ((id_column, "--id-column"), (description_column, "--description-column")):
        if column not in header:
            raise InvalidInputError(
                "column", column, f"must be one of the file's columns {header} (choose another with {option})"
            )
    id_index, text_index = header.index(id_column), header.index(description_column)
    articles = []
    for row in body:
        if not any(cell.strip() for cell in row):
            continue
        row = row + [""] * (len(header) - len(row))
        articles.append(Article(article_id=row[id_index].strip(), description=row[text_index].strip(), language=language))
    return articles


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        try:
            dialect: Any = csv.Sniffer().sniff(sample.splitlines()[0], delimiters=",;\t")
        except (csv.Error, IndexError):
            dialect = csv.excel
        rows = [list(r) for r in csv.reader(handle, dialect)]
    if not rows:
        raise InvalidInputError("file", str(path), "must have a header row")
    return [h.strip() for h in rows[0]], rows[1:]


def _read_xlsx(path: Path) -> tuple[list[str], list[list[str]]]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = workbook.active
        rows = [["" if v is None else _cell(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()
    if not rows:
        raise InvalidInputError("file", str(path), "must have a header row")
    return [h.strip() for h in rows[0]], rows[1:]


def _cell(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def catalog_statistics(results: Iterable[CatalogResult], threshold: float) -> dict[str, Any]:
    """Seed 003's statistics (count, mean, median, std, min, max CLIP score) plus the gate's pass rate."""
    scores = [r.clip_score for r in results]
    passed = [s >= threshold for s in scores]
    if not scores:
        return {"count": 0, "mean": None, "median": None, "std": None, "min": None, "max": None, "pass_rate": None, "threshold": threshold}
    return {
        "count": len(scores),
        "mean": statistics.fmean(scores),
        "median": statistics.median(scores),
        "std": statistics.pstdev(scores),
        "min": min(scores),
        "max": max(scores),
        "pass_rate": sum(passed) / len(scores),
        "threshold": threshold,
    }


def run_catalog(
    pipeline: CatalogPipeline,
    articles: Sequence[Article],
    params: CatalogParams,
    progress: bool = True,
    statistics_name: str = STATISTICS_NAME,
) -> tuple[list[CatalogResult], dict[str, Any]]:
    """Process every article, skipping those already stored, then write the statistics file.

    An article whose images the safety check blocks is not stored and does not stop the job: it is
    listed under `blocked` in the statistics (a re-run tries it again).
    """
    from tqdm import tqdm

    from fashion_studio.safety import ContentBlockedError

    results: list[CatalogResult] = []
    blocked: list[str] = []
    for article in tqdm(articles, desc="catalog", unit="article", disable=not progress):
        try:
            results.append(pipeline.process(article, params))
        except ContentBlockedError as exc:
            logger.warning("article %s: %s", article.article_id, exc)
            blocked.append(article.article_id)
    stats = catalog_statistics(results, params.threshold)
    stats["skipped"] = sum(r.skipped for r in results)
    stats["blocked"] = blocked
    pipeline.storage.write_bytes(statistics_name, json.dumps(stats, indent=2).encode())
    return results, stats
