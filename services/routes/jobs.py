"""`/catalog/jobs`: a spreadsheet of articles, uploaded, processed in the background, resumed on start.

The runner (fashion_studio/jobs.py) keeps the sheet and the job's state in storage and sends each row
through the gateway's own catalog pipeline, so the jobs a previous run of the gateway left unfinished
are picked up where they stopped when this one starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from fastapi import APIRouter, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from fashion_studio.catalog import CatalogParams
from fashion_studio.jobs import JobRunner, UnknownJobError
from services.api import SETTINGS
from services.routes import studio

logger = logging.getLogger(__name__)
T = TypeVar("T")
# How long shutdown waits for the row in progress; an unfinished row is redone on the next start.
STOP_WAIT_S = 5.0


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Resume unfinished jobs once the gateway service exists (BentoML creates it before this app's
    lifespan) and work on them until shutdown, when the row in progress finishes or stays pending.
    Rows run in the serving loop's worker threads, where the model services' sync clients work."""
    service = studio()
    runner = JobRunner(service.storage, service.catalog, CatalogParams.from_settings(SETTINGS))
    app.state.catalog_jobs = runner
    try:
        await run_in_threadpool(runner.resume)
    except Exception:  # storage unreachable at start: the gateway serves, and the worker's rescan tries again
        logger.exception("looking for unfinished catalog jobs failed; the worker tries again in %.0f s", runner.rescan_s)
    worker = asyncio.create_task(_work(runner))
    try:
        yield
    finally:
        runner.stop()
        try:
            await asyncio.wait_for(worker, STOP_WAIT_S)
        except TimeoutError:
            logger.warning("a catalog job row still running at shutdown stays pending for the next start")


async def _work(runner: JobRunner) -> None:
    await _wait_for_models(runner)
    while not runner.stopping.is_set():
        await run_in_threadpool(runner.work, 1.0)


async def _wait_for_models(runner: JobRunner) -> None:
    """Rows need every model service, and those load after the gateway starts: a resumed job waits
    for them rather than spending its retries on a deployment still loading."""
    service = studio()
    proxies = [service.translator, service.generator, service.scorer]
    while not runner.stopping.is_set():
        try:
            if service.__is_ready__() and all(await asyncio.gather(*(proxy.is_ready(timeout=5) for proxy in proxies))):
                return
        except Exception as exc:  # a model service not listening yet
            logger.debug("waiting for the model services: %s", exc)
        await asyncio.sleep(1.0)


router = APIRouter(lifespan=lifespan)


class RowOut(BaseModel):
    index: int
    article_id: str
    status: str
    clip_score: float | None
    passed: bool | None
    skipped: bool
    seed: int | None
    attempts: int
    translation: str | None
    generation_prompt: str | None
    image_id: str | None
    error: str | None


class JobOut(BaseModel):
    id: str
    filename: str
    status: str
    created_at: str
    updated_at: str | None
    finished_at: str | None
    progress: dict[str, int]
    rows: list[RowOut]


def runner_of(request: Request) -> JobRunner:
    return request.app.state.catalog_jobs


async def _known(call: Callable[[str], T], job_id: str) -> T:
    """`call(job_id)` in a worker thread; an unknown id is a 404 naming it."""
    try:
        return await run_in_threadpool(call, job_id)
    except UnknownJobError as exc:
        raise HTTPException(404, {"field": "job_id", "value": job_id[:80], "limit": "must be the id of a catalog job", "message": str(exc)}) from None


@router.post("/catalog/jobs", response_model=JobOut, status_code=202)
async def submit_job(request: Request, file: UploadFile = File(..., description=".xlsx or .csv with article_id and description columns")) -> JobOut:
    """Accept a sheet: 415 when it is not a .csv or .xlsx spreadsheet, 422 naming a missing column.
    Once answered, the job is stored and will run to the end, across gateway restarts."""
    data = await file.read()
    job = await run_in_threadpool(runner_of(request).submit, file.filename or "", data)
    return JobOut(**job.to_dict())


@router.get("/catalog/jobs/{job_id}", response_model=JobOut)
async def job_status(request: Request, job_id: str) -> JobOut:
    """Progress (`progress`: total, done, failed, pending, passed) and every row's status."""
    job = await _known(runner_of(request).get, job_id)
    return JobOut(**job.to_dict())


@router.get("/catalog/jobs/{job_id}/results", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def job_results(request: Request, job_id: str) -> Response:
    """One CSV line per article in sheet order; rows still pending say so."""
    text = await _known(runner_of(request).results_csv, job_id)
    headers = {"Content-Disposition": f'attachment; filename="catalog-job-{job_id}.csv"'}
    return Response(content=text, media_type="text/csv; charset=utf-8", headers=headers)
