"""`Studio`, the public gateway: a thin FastAPI app mounted in a BentoML service.

It composes the batchable model services, which `bentoml.depends` lets scale on their own. The rooms:
`api.py` the public request and response models, `errors.py` one error-to-status mapping, `admission.py`
who gets in (drain, keys, rates, size, concurrency, timeout), `lifecycle.py` readiness and drain,
`model_client.py` calls to the model services, `routes/` one module per feature.
"""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass

import bentoml
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from fashion_studio import metrics, models
from fashion_studio.generation import GenerationRequest, GenerationResult
from fashion_studio.safety import ClipConceptFilter, ContentBlockedError, SafetyChecker, Verdict, build_checker, check_results
from fashion_studio.settings import get_settings
from fashion_studio.storage import Storage
from fashion_studio.studio import build_catalog
from services import errors, ui
from services.admission import Guard, route_of
from services.api import GenerateRequest
from services.editor import EditorService
from services.generator import GeneratorService
from services.inpainter import InpainterService
from services.lifecycle import GATEWAY_NAME, TRAFFIC, drain_gateway, on_sigterm
from services.loading import BackgroundLoad
from services.model_client import call_model, call_model_sync, generate_work, raise_item_error, to_result
from services.routes import catalog, edit, gallery, generation, inpaint, jobs, popularity, recommend, score, segment, sessions, translate
from services.schemas import GenerateOutput, ScoreItem, image_from_b64, png_b64
from services.scorer import ScorerService
from services.segmenter import SegmenterService
from services.translator import TranslatorService

logger = logging.getLogger(__name__)
SETTINGS = get_settings()
LIMITS = SETTINGS.limits

# The model services listen on loopback TCP rather than unix sockets: `bentoml serve` deletes its
# unix-socket folder the moment it is asked to stop, which would cut the gateway off its model
# services in the middle of a graceful drain. `bentoml serve` imports this module before it creates
# the sockets, so this takes effect for every way of starting the deployment.
os.environ.setdefault("BENTOML_NO_UDS", "1")


@asynccontextmanager
async def lifespan(_: FastAPI):
    on_sigterm(asyncio.get_running_loop(), drain_gateway, exit_within_s=10.0)
    yield


app = FastAPI(
    title="Fashion Studio",
    description="Fashion product images from prompts and German catalog descriptions, scored by CLIP.",
    version="0.1.0",
    lifespan=lifespan,
)
for _router in (generation.router, catalog.router, translate.router, score.router, popularity.router):
    app.include_router(_router)
app.include_router(edit.router)
app.include_router(gallery.router)
app.include_router(jobs.router)
app.include_router(sessions.router)
app.include_router(recommend.router)
app.include_router(segment.router)
app.include_router(inpaint.router)
app.include_router(ui.router)


def _endpoint_of(request: Request) -> str:
    return route_of(app, request.scope)[0]


errors.install(app, _endpoint_of)
app.add_middleware(Guard, api=app)


@dataclass(frozen=True)
class Safety:
    """The safety checker the settings ask for (None: off)."""

    checker: SafetyChecker | None

    @property
    def concepts(self) -> ClipConceptFilter | None:
        return self.checker if isinstance(self.checker, ClipConceptFilter) else None


@bentoml.service(
    name=GATEWAY_NAME,
    traffic={"timeout": SETTINGS.batching.timeout_s + 30},
    workers=1,
)
@bentoml.asgi_app(app, path="/")
class Studio:
    generator = bentoml.depends(GeneratorService)
    translator = bentoml.depends(TranslatorService)
    scorer = bentoml.depends(ScorerService)
    editor = bentoml.depends(EditorService)
    segmenter = bentoml.depends(SegmenterService)
    inpainter = bentoml.depends(InpainterService)

    def __init__(self) -> None:
        self.storage = Storage.from_settings(SETTINGS)
        self.product_index = recommend.IndexHandle(SETTINGS)
        self.catalog = build_catalog(SETTINGS, translate=self._translate, generate=self._generate_sync, score=self._score_sync, storage=self.storage)
        self.safety = BackgroundLoad("safety", self._load_safety, wait_s=SETTINGS.model_wait_s)

    def __is_ready__(self) -> bool:
        return self.safety.ready and not TRAFFIC.draining

    def _load_safety(self) -> Safety:
        folder = None
        if SETTINGS.safety_check in ("auto", "diffusers"):
            folder = models.resolve("generator", SETTINGS.generator, SETTINGS, SETTINGS.revision).path
        checker = build_checker(SETTINGS, folder, self._score_sync)
        logger.info("safety check: %s", checker.name if checker else "off")
        return Safety(checker)

    # Sync adapters for the catalog pipeline, which runs in a worker thread.
    def _translate(self, texts: list[str]) -> list[dict]:
        return call_model_sync(lambda: self.translator.to_sync.translate(texts))

    def _generate_sync(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        work = [generate_work(request) for request in requests]
        results = [to_result(out) for out in call_model_sync(lambda: self.generator.to_sync.generate(work))]
        check_results(self.safety.get().checker, requests, results)
        return results

    def _score_sync(self, images, texts) -> list[float]:
        items = [ScoreItem(png_b64=png_b64(im), text=t) for im, t in zip(images, texts)]
        return call_model_sync(lambda: self.scorer.to_sync.score(items))

    async def generate_images(self, body: GenerateRequest) -> tuple[GenerateOutput, list[float], list[Verdict]]:
        """Generate, score against the prompt and run the safety check; the CLIP safety filter's
        (image, concept) pairs ride in the same scorer call as the prompt's. Scores the generator's
        process already gave (FASHION_GENERATOR_SCORES) are used as they are, unless concepts need
        the scorer anyway."""
        safety = self.safety.get()
        concepts = safety.concepts
        # with the concept filter, the prompt's pair rides in the scorer call the concepts make anyway
        work = generate_work(body.to_request(), score=concepts is None)
        with metrics.time_stage("generate"):
            output = (await call_model(lambda: self.generator.to_async.generate([work])))[0]
        raise_item_error(output)
        items = [ScoreItem(png_b64=im.png_b64, text=body.prompt) for im in output.images]
        if concepts is not None:  # image-major, as `verdicts` reads them
            items += [ScoreItem(png_b64=im.png_b64, text=concept) for im in output.images for concept in concepts.concepts]
        given = [im.clip_score for im in output.images]
        if concepts is None and None not in given:
            all_scores = [float(score) for score in given if score is not None]
        else:
            with metrics.time_stage("score"):
                all_scores = await call_model(lambda: self.scorer.to_async.score(items), SETTINGS.batching.short_call_timeout_s)
        count = len(output.images)
        scores = all_scores[:count]
        if concepts is not None:
            verdicts = concepts.verdicts(all_scores[count:], count)
        elif safety.checker is not None:
            with metrics.time_stage("safety"):
                verdicts = await run_in_threadpool(safety.checker.check, [image_from_b64(im.png_b64) for im in output.images])
        else:
            verdicts = [Verdict(False)] * count
        for score_value, verdict in zip(scores, verdicts):
            if verdict.blocked:
                logger.warning("safety check blocked an image: %s", verdict.reason)
            else:
                metrics.CLIP_SCORE.observe(score_value)
        if all(v.blocked for v in verdicts):
            raise ContentBlockedError(body.prompt, safety.checker.name if safety.checker else "safety", count)
        return output, scores, verdicts
