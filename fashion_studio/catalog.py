"""The catalog pipeline (seed 003), served and in batch.

description (de|en) -> translate (with a confidence) -> attributes (the source text's; the translation's
only when it is reliable) -> generation + CLIP prompts -> image -> CLIP score ->
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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from PIL import Image

from fashion_studio import metrics
from fashion_studio.attributes import Attributes, LexiconExtractor, detect_language, validate_description
from fashion_studio.attributes.llm import FALLBACK
from fashion_studio.errors import InvalidInputError
from fashion_studio.generation import MAX_SEED, GenerationRequest, GenerationResult, from_settings
from fashion_studio.prompts import Prompts, build_prompts
from fashion_studio.settings import Settings
from fashion_studio.storage import Storage, safe_key
from fashion_studio.translation import Translation

logger = logging.getLogger(__name__)

Language = Literal["de", "en", "auto"]
STATISTICS_NAME = "_statistics.json"


class Extractor(Protocol):
    name: str

    def extract(self, text: str, language: Language = "auto") -> Attributes: ...

    def extract_traced(self, text: str, language: Language = "auto") -> tuple[Attributes, str]:
        """The attributes and the name of what produced them ("lexicon", "llm", "lexicon_fallback")."""
        ...


@dataclass(frozen=True)
class CatalogParams:
    """Generation parameters of a catalog run; part of each article's record key."""

    steps: int = from_settings("default_steps")
    guidance: float = from_settings("default_guidance")
    width: int = from_settings("default_width")
    height: int = from_settings("default_height")
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


AttributeSource = Literal["source", "translation"]


@dataclass
class CatalogResult:
    """One article's outcome: what the CLI returns, what the gateway answers (`to_dict`), and what the
    stored JSON is written from and read back into (`CatalogPipeline._record`, `_from_record`)."""

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
    translation_confidence: float | None = None
    translation_reliable: bool = False
    attribute_sources: dict[str, dict[str, AttributeSource]] = field(default_factory=dict)
    # What produced the attributes: "lexicon", "llm", or "lexicon_fallback" (the LLM failed on a text).
    extractor: str = "lexicon"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("image")
        return data


def record_key(article: Article, params: CatalogParams, generator_name: str, legacy: bool = False) -> str:
    """Article id plus a hash of what determines its image, so a changed description is redone.

    An id the key cannot spell as it is (other characters than letters, digits, `.`, `_`, `-`, or over 80 of
    them) is hashed too: "Kleid-ä" and "Kleid-ö" share their readable part, and two such variants often
    share their description, yet each is its own article with its own record. `legacy`: the key such an id
    had before (without it), under which records stored then are found."""
    readable = safe_key(article.article_id, 80)
    fields: dict[str, Any] = {"description": article.description, "language": article.language, "params": asdict(params), "model": generator_name}
    if readable != article.article_id and not legacy:
        fields["article_id"] = article.article_id
    payload = json.dumps(fields, sort_keys=True)
    return f"{readable}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


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


def attribute_sources(attributes: Attributes, source: Attributes) -> dict[str, dict[str, AttributeSource]]:
    """Which text each attribute came from: field -> value -> "source" or "translation"."""
    found = source.model_dump()
    sources: dict[str, dict[str, AttributeSource]] = {}
    for name, value in attributes.model_dump().items():
        if name == "language" or value in (None, []):
            continue
        values = value if isinstance(value, list) else [value]
        own = found[name] if isinstance(found[name], list) else [found[name]]
        sources[name] = {str(v): "source" if v in own else "translation" for v in values}
    return sources


def trusted_attributes(source: Attributes, translated: Attributes | None, translation: Translation) -> Attributes:
    """The source text's attributes first; the translation's only when the translation is reliable, so a
    translator that guessed cannot add a colour, pattern or material the description never names."""
    if translated is None or not translation.reliable:
        return source
    return merge_attributes(source, translated)


class _Stopwatch:
    """One clock per stage that feeds both the record's timings and the stage-duration metric."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            with metrics.time_stage(name):
                yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


@dataclass
class _Understanding:
    language: Language
    translation: Translation
    attributes: Attributes
    sources: dict[str, dict[str, AttributeSource]]
    prompts: Prompts
    extractor: str


@dataclass
class _Best:
    score: float
    image: Image.Image
    seed: int
    attempts: list[Attempt]


class CatalogPipeline:
    def __init__(
        self,
        *,
        translate: Callable[[Sequence[str]], Sequence[Translation | Mapping[str, Any] | str]],
        generate: Callable[[Sequence[GenerationRequest]], list[GenerationResult]],
        score: Callable[[Sequence[Image.Image], Sequence[str]], list[float]],
        storage: Storage,
        settings: Settings,
        extractor: Extractor | None = None,
        model_info: dict[str, Any] | None = None,
        generator_name: str = "generator",
    ) -> None:
        """`translate` may answer `Translation`s (or their dicts) or bare strings; a bare string carries no
        confidence, so its attributes never reach the prompt."""
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
        validate_description(article.description, self.settings.limits.max_description_chars)
        if article.language not in ("de", "en", "auto"):
            raise InvalidInputError("language", article.language, "must be one of 'de', 'en', 'auto'")
        return article

    def process(self, article: Article, params: CatalogParams, skip_existing: bool = True) -> CatalogResult:
        """1. check, 2. answer from storage if done, 3. understand (translate, extract, prompt),
        4. generate and gate, 5. store."""
        article = self.check_article(article)
        params.check()
        key = record_key(article, params, self.generator_name)
        if skip_existing and (stored := self._stored_key(article, params, key)) is not None:
            return self._from_record(stored)
        clock = _Stopwatch()
        understood = self._understand(article, clock)
        best = self._generate_and_gate(understood.prompts, params, key, clock)
        return self._store(article, params, key, understood, best, clock)

    def _stored_key(self, article: Article, params: CatalogParams, key: str) -> str | None:
        """The key of this article's stored record: `key`, or the key an older run stored it under before ids
        the key cannot spell were hashed (that record is this article's if it names this very id)."""
        if self.storage.exists(key):
            return key
        legacy = record_key(article, params, self.generator_name, legacy=True)
        if legacy != key and self.storage.exists(legacy) and self.storage.get_metadata(legacy).get("sample_id") == article.article_id:
            return legacy
        return None

    # -- steps -------------------------------------------------------------------------------------

    def _understand(self, article: Article, clock: _Stopwatch) -> _Understanding:
        """Translate (German only), extract from the source and, when reliable, the translation, prompt."""
        language: Language = detect_language(article.description) if article.language == "auto" else article.language
        with clock.stage("translate"):
            translation = self._translation(article.description, language)
        with clock.stage("extract"):
            source, producer = self.extractor.extract_traced(article.description, language)
            producers = [producer]
            translated = None
            if language == "de" and translation.reliable and translation.text.strip():
                translated, producer = self.extractor.extract_traced(translation.text, "en")
                producers.append(producer)
            attributes = trusted_attributes(source, translated, translation)
            prompts = build_prompts(
                attributes,
                self.settings.generation_template,
                self.settings.clip_template,
                fallback_subject=translation.text if translation.reliable else "",
                max_chars=self.settings.limits.max_prompt_chars,
            )
        extractor = FALLBACK if FALLBACK in producers else producers[0]
        metrics.ATTRIBUTE_EXTRACTIONS.labels(extractor=extractor).inc()
        return _Understanding(language, translation, attributes, attribute_sources(attributes, source), prompts, extractor)

    def _translation(self, description: str, language: Language) -> Translation:
        if language != "de":
            return Translation(text=description, reliable=True)
        translation = Translation.of(self.translate([description])[0])
        metrics.CATALOG_TRANSLATIONS.labels(verdict="reliable" if translation.reliable else "unreliable").inc()
        if not translation.reliable:
            logger.info("translation unreliable (confidence %s): prompt from the source text alone", translation.confidence)
        return translation

    def _generate_and_gate(self, prompts: Prompts, params: CatalogParams, key: str, clock: _Stopwatch) -> _Best:
        """Generate and score until an image reaches the threshold or the attempts run out; keep the best."""
        base_seed = params.seed if params.seed is not None else int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
        best: _Best | None = None
        attempts: list[Attempt] = []
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
            started = time.perf_counter()
            with clock.stage("generate"):
                image = self.generate([request])[0].images[0]
            with clock.stage("score"):
                clip_score = float(self.score([image], [prompts.clip])[0])
            attempts.append(Attempt(number + 1, seed, round(clip_score, 4), round(time.perf_counter() - started, 4)))
            if best is None or clip_score > best.score:
                best = _Best(clip_score, image, seed, attempts)
            if clip_score >= params.threshold:
                break
        assert best is not None
        passed = best.score >= params.threshold
        metrics.GATE_OUTCOMES.labels(outcome="failed" if not passed else ("passed_first" if len(attempts) == 1 else "passed_retry")).inc()
        metrics.GATE_ATTEMPTS.observe(len(attempts))
        metrics.CLIP_SCORE.observe(best.score)
        return best

    def _store(self, article: Article, params: CatalogParams, key: str, understood: _Understanding, best: _Best, clock: _Stopwatch) -> CatalogResult:
        result = CatalogResult(
            article_id=article.article_id,
            key=key,
            translation=understood.translation.text,
            attributes=understood.attributes.model_dump(),
            generation_prompt=understood.prompts.generation,
            clip_prompt=understood.prompts.clip,
            clip_score=round(best.score, 4),
            passed=best.score >= params.threshold,
            attempts=best.attempts,
            seed=best.seed,
            image_url="",
            metadata_url="",
            timings=clock.seconds,
            image=best.image,
            translation_confidence=understood.translation.confidence,
            translation_reliable=understood.translation.reliable,
            attribute_sources=understood.sources,
            extractor=understood.extractor,
        )
        metadata = self._record(article, params, understood, result)
        with clock.stage("store"):
            stored = self.storage.put(key, best.image, metadata)
        result.image_url, result.metadata_url = stored.image_url, stored.metadata_url
        return result

    def _record(self, article: Article, params: CatalogParams, understood: _Understanding, result: CatalogResult) -> dict[str, Any]:
        """The stored JSON: seed 003's keys (image_path is added by the storage), then the result's own."""
        return {
            "sample_id": article.article_id,
            "original_description": article.description,
            "generation_prompt": result.generation_prompt,
            "clip_prompt": result.clip_prompt,
            "clip_score": result.clip_score,
            "record_key": result.key,
            "language": understood.language,
            "translation": result.translation,
            "translation_confidence": result.translation_confidence,
            "translation_reliable": result.translation_reliable,
            "attributes": result.attributes,
            "attribute_sources": result.attribute_sources,
            "extractor": result.extractor,
            "negative_prompt": self.settings.negative_prompt,
            "seed": result.seed,
            "passed": result.passed,
            "threshold": params.threshold,
            "attempts": [asdict(a) for a in result.attempts],
            "params": asdict(params),
            "models": self.model_info,
            "timings": {k: round(v, 4) for k, v in result.timings.items()},
            "created_at": datetime.now(UTC).isoformat(),
        }

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
            translation_confidence=record.get("translation_confidence"),
            translation_reliable=record.get("translation_reliable", False),
            extractor=record.get("extractor", "lexicon"),
            attribute_sources=record.get("attribute_sources", {}),
        )


# --- the batch job over a spreadsheet -------------------------------------------------------------


# The most rows (header included) and columns a spreadsheet is read to. A workbook declares its own size,
# and openpyxl pads every row to it: a few kilobytes declaring A1:XFD1048576 would otherwise become
# billions of cells in memory before any check.
MAX_SHEET_ROWS = 1_000_000
MAX_SHEET_COLUMNS = 256


def read_articles(
    path: str | Path,
    id_column: str = "article_id",
    description_column: str = "description",
    language: Language = "auto",
    max_rows: int = MAX_SHEET_ROWS,
) -> list[Article]:
    """Rows of a .csv or .xlsx file as articles; a missing column, an unreadable file or more than
    `max_rows` rows below the header is an input error."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError("file", str(path), "must be an existing .csv or .xlsx file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            rows = _read_csv(path, max_rows)
        elif suffix in (".xlsx", ".xlsm"):
            rows = _read_xlsx(path, max_rows)
        else:
            raise InvalidInputError("file", str(path), "must end in .csv or .xlsx")
    except InvalidInputError:
        raise
    except Exception as exc:
        raise InvalidInputError("file", str(path), f"must be a readable .csv or .xlsx spreadsheet ({type(exc).__name__}: {exc})") from exc
    header, body = rows
    for column, option in ((id_column, "--id-column"), (description_column, "--description-column")):
        if column not in header:
            raise InvalidInputError("column", column, f"must be one of the file's columns {header} (choose another with {option})")
    id_index, text_index = header.index(id_column), header.index(description_column)
    articles = []
    for row in body:
        if not any(cell.strip() for cell in row):
            continue
        row = row + [""] * (len(header) - len(row))
        articles.append(Article(article_id=row[id_index].strip(), description=row[text_index].strip(), language=language))
    return articles


def _bounded(rows: Iterable[Sequence[Any]], path: Path, max_rows: int) -> tuple[list[str], list[list[str]]]:
    """The header and the rows below it, at most `max_rows` of them and MAX_SHEET_COLUMNS cells each."""
    kept: list[list[str]] = []
    for row in rows:
        if len(kept) > max_rows:
            raise InvalidInputError("file", str(path), f"must have at most {max_rows} rows below its header (split the sheet)")
        cells = list(row[:MAX_SHEET_COLUMNS])
        while cells and cells[-1] is None:  # a workbook's rows come padded to the columns asked for
            cells.pop()
        kept.append(["" if v is None else _cell(v) for v in cells])
    if not kept:
        raise InvalidInputError("file", str(path), "must have a header row")
    return [h.strip() for h in kept[0]], kept[1:]


def _read_csv(path: Path, max_rows: int) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        try:
            dialect: Any = csv.Sniffer().sniff(sample.splitlines()[0], delimiters=",;\t")
        except (csv.Error, IndexError):
            dialect = csv.excel
        return _bounded(csv.reader(handle, dialect), path, max_rows)


def _read_xlsx(path: Path, max_rows: int) -> tuple[list[str], list[list[str]]]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = workbook.active
        sheet.reset_dimensions()  # read the cells the sheet has, not the size it declares
        return _bounded(sheet.iter_rows(max_col=MAX_SHEET_COLUMNS, values_only=True), path, max_rows)
    finally:
        workbook.close()


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
    listed under `blocked` in the statistics (a re-run tries it again). So is an article the pipeline
    refuses (an empty or too long description, an id over its limit): listed under `failed` with the
    reason, as the uploaded jobs fail such a row alone, while the other articles go on.
    """
    from tqdm import tqdm

    from fashion_studio.safety import ContentBlockedError

    results: list[CatalogResult] = []
    blocked: list[str] = []
    failed: list[dict[str, str]] = []
    for article in tqdm(articles, desc="catalog", unit="article", disable=not progress):
        try:
            results.append(pipeline.process(article, params))
        except ContentBlockedError as exc:
            logger.warning("article %s: %s", article.article_id, exc)
            blocked.append(article.article_id)
        except InvalidInputError as exc:
            logger.warning("article %s refused: %s", article.article_id, exc)
            failed.append({"article_id": article.article_id, "error": str(exc)})
    stats = catalog_statistics(results, params.threshold)
    stats["skipped"] = sum(r.skipped for r in results)
    stats["blocked"] = blocked
    stats["failed"] = failed
    pipeline.storage.write_bytes(statistics_name, json.dumps(stats, indent=2).encode())
    return results, stats
