"""Catalog batch jobs: an uploaded spreadsheet, processed row by row in the background, resumable.

A job lives in storage under `_jobs/<id>/`: the sheet as uploaded and `job.json`, its state, written
atomically after every row. Rows go through the same `CatalogPipeline` as one `/catalog` request,
which skips articles already stored, so a job resumed after a restart neither loses nor repeats work.
A runner works through jobs one row at a time, oldest job first, holding each by a lease in storage,
so gateway replicas sharing a storage never work on one job together, and a job whose replica died
is taken over once its lease runs out.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty, Queue
from typing import Any, Literal

from fashion_studio.catalog import MAX_SHEET_ROWS, Article, CatalogParams, CatalogPipeline, read_articles
from fashion_studio.errors import FashionStudioError, InvalidInputError, UnsupportedMediaError
from fashion_studio.safety import ContentBlockedError
from fashion_studio.storage import Storage

logger = logging.getLogger(__name__)

JOBS_FOLDER = "_jobs"
STATE_NAME = "job.json"
LEASE_NAME = "lease.json"
# A runner holds a job by a lease it renews after every row; a job whose lease ran out (its runner's
# gateway died) is taken over by the next runner that scans the storage.
LEASE_S = 600.0
RESCAN_S = 30.0
# The most articles one uploaded sheet holds: the job's state is saved after every row. A larger catalog
# runs as several jobs, or as the sharded CLI job (docs/kubernetes.md).
MAX_JOB_ROWS = 10_000
SUFFIXES = (".csv", ".xlsx")
# Pauses before a row that failed for a reason outside the row (a model service restarting, a
# connection lost) is tried again; after the last one the row is reported failed.
RETRY_PAUSES_S = (1.0, 2.0, 5.0, 10.0, 30.0)
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_CLI_HINT = re.compile(r" \(choose another with --[a-z-]+\)$")

RowStatus = Literal["pending", "done", "failed"]
JobStatus = Literal["queued", "running", "done"]
RESULT_COLUMNS = (
    "index",
    "article_id",
    "status",
    "clip_score",
    "passed",
    "skipped",
    "seed",
    "attempts",
    "translation",
    "generation_prompt",
    "image_id",
    "error",
)


class UnknownJobError(FashionStudioError, LookupError):
    """No job has this id (HTTP 404)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"no catalog job {job_id[:80]!r}")


@dataclass
class RowState:
    """One article of a job; `index` counts the sheet's article rows from 1."""

    index: int
    article_id: str
    status: RowStatus = "pending"
    clip_score: float | None = None
    passed: bool | None = None
    skipped: bool = False
    seed: int | None = None
    attempts: int = 0
    translation: str | None = None
    generation_prompt: str | None = None
    image_id: str | None = None
    error: str | None = None


@dataclass
class Job:
    id: str
    filename: str
    sheet: str
    params: dict[str, Any]
    rows: list[RowState]
    created_at: str
    status: JobStatus = "queued"
    updated_at: str | None = None
    finished_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.status == "done"

    def counts(self) -> dict[str, int]:
        done = sum(r.status == "done" for r in self.rows)
        failed = sum(r.status == "failed" for r in self.rows)
        passed = sum(bool(r.passed) for r in self.rows if r.status == "done")
        return {"total": len(self.rows), "done": done, "failed": failed, "pending": len(self.rows) - done - failed, "passed": passed}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["progress"] = self.counts()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        data = {k: v for k, v in data.items() if k != "progress"}
        rows = [RowState(**row) for row in data.pop("rows")]
        return cls(**data, rows=rows)


def now() -> str:
    return datetime.now(UTC).isoformat()


class JobStore:
    """Jobs in storage: the uploaded sheet and the state file of each."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def folder(self, job_id: str) -> str:
        return f"{JOBS_FOLDER}/{job_id}"

    def save(self, job: Job) -> None:
        job.updated_at = now()
        self.storage.write_bytes(f"{self.folder(job.id)}/{STATE_NAME}", json.dumps(job.to_dict(), ensure_ascii=False, indent=1).encode())

    def load(self, job_id: str) -> Job:
        if not _JOB_ID.match(job_id):
            raise UnknownJobError(job_id)
        try:
            return Job.from_dict(json.loads(self.storage.read_bytes(f"{self.folder(job_id)}/{STATE_NAME}")))
        except FileNotFoundError:
            raise UnknownJobError(job_id) from None

    def ids(self) -> list[str]:
        """Ids of accepted jobs: those whose state file exists (the sheet is written before it)."""
        return [name for name in self.storage.names(JOBS_FOLDER) if _JOB_ID.match(name) and STATE_NAME in self.storage.names(self.folder(name))]

    def create(self, filename: str, data: bytes, params: CatalogParams) -> Job:
        """Validate the sheet, store it, then the job's state: from then on the job is accepted."""
        articles = parse_sheet(filename, data, max_rows=MAX_JOB_ROWS)
        job_id = uuid.uuid4().hex
        job = Job(
            id=job_id,
            filename=Path(filename).name[:200],
            sheet=f"sheet{Path(filename).suffix.lower()}",
            params=asdict(params),
            rows=[RowState(index=i + 1, article_id=a.article_id) for i, a in enumerate(articles)],
            created_at=now(),
        )
        self.storage.write_bytes(f"{self.folder(job_id)}/{job.sheet}", data)
        self.save(job)
        logger.info("catalog job %s accepted: %d article(s) from %s", job_id, len(articles), job.filename)
        return job

    def claim(self, job_id: str, owner: str, lease_s: float) -> bool:
        """Take or renew the job's lease for `owner`; False while another runner's lease holds."""
        name = f"{self.folder(job_id)}/{LEASE_NAME}"
        try:
            lease = json.loads(self.storage.read_bytes(name))
        except FileNotFoundError:
            lease = None
        if lease is not None and lease["owner"] != owner and lease["until"] > time.time():
            return False
        self.storage.write_bytes(name, json.dumps({"owner": owner, "until": time.time() + lease_s}).encode())
        return True

    def articles(self, job: Job) -> list[Article]:
        return parse_sheet(job.sheet, self.storage.read_bytes(f"{self.folder(job.id)}/{job.sheet}"))


def check_upload(filename: str, data: bytes) -> str:
    """The sheet's suffix, once the name and the bytes agree that it is a .csv or .xlsx file."""
    suffix = Path(filename or "").suffix.lower()
    if suffix not in SUFFIXES:
        raise UnsupportedMediaError("file", filename, "must be a .csv or .xlsx spreadsheet")
    if suffix == ".xlsx" and not data.startswith(b"PK\x03\x04"):
        raise UnsupportedMediaError("file", filename, "is named .xlsx but is not an Excel workbook (a zip file)")
    if suffix == ".csv":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UnsupportedMediaError("file", filename, f"a .csv file must be UTF-8 text (byte {exc.start} is not)") from None
        if "\x00" in text:
            raise UnsupportedMediaError("file", filename, "a .csv file must be text (it contains NUL bytes)")
    return suffix


def parse_sheet(filename: str, data: bytes, max_rows: int = MAX_SHEET_ROWS) -> list[Article]:
    """Articles of an uploaded sheet, read as the CLI reads a file (`article_id`, `description`, language
    detected), so a sheet run by the CLI and uploaded here shares its records."""
    suffix = check_upload(filename, data)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"sheet{suffix}"
        path.write_bytes(data)
        try:
            articles = read_articles(path, language="auto", max_rows=max_rows)
        except InvalidInputError as exc:
            value = filename if exc.field == "file" else exc.value
            raise InvalidInputError(exc.field, value, _CLI_HINT.sub("", exc.limit).replace(str(path), filename)) from None
    if not articles:
        raise InvalidInputError("file", filename, "must have at least one article row below its header")
    return articles


class JobRunner:
    """Accepts sheets and works through their rows, one job and one row at a time.

    `submit` validates and stores; `resume` queues every unfinished job in storage; `work` runs the
    next queued job, on whichever thread the host gives it (`start` makes one)."""

    def __init__(
        self,
        storage: Storage,
        pipeline: CatalogPipeline,
        params: CatalogParams,
        retry_pauses_s: Sequence[float] = RETRY_PAUSES_S,
        lease_s: float = LEASE_S,
        rescan_s: float = RESCAN_S,
        owner: str | None = None,
    ) -> None:
        self.store = JobStore(storage)
        # The host's name: a gateway restarted on the same host (pod) takes its own jobs back at once.
        self.owner = owner or socket.gethostname()
        self.lease_s = lease_s
        self.rescan_s = rescan_s
        self.scanned_at = time.monotonic()
        self.pipeline = pipeline
        self.params = params
        self.retry_pauses_s = tuple(retry_pauses_s)
        self.queue: Queue[str] = Queue()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def submit(self, filename: str, data: bytes) -> Job:
        """Validate and store the sheet (415, 422), then queue it."""
        job = self.store.create(filename, data, self.params.check())
        self.queue.put(job.id)
        return job

    def get(self, job_id: str) -> Job:
        return self.store.load(job_id)

    def results_csv(self, job_id: str) -> str:
        """One line per article, in sheet order; pending rows say so, so a partial download is honest."""
        job = self.get(job_id)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in job.rows:
            writer.writerow({k: "" if v is None else v for k, v in asdict(row).items()})
        return out.getvalue()

    def unfinished(self) -> list[str]:
        """Ids of the jobs not finished, oldest first. A job whose state cannot be read (a folder removed
        while listing, a state file damaged by hand) is logged and left out: it stops no other job."""
        jobs = []
        for job_id in self.store.ids():
            try:
                jobs.append(self.store.load(job_id))
            except UnknownJobError:
                continue  # removed since the listing
            except (ValueError, KeyError, TypeError, OSError) as exc:
                logger.error("catalog job %s: its state cannot be read (%s); left as it is", job_id, exc)
        return [job.id for job in sorted(jobs, key=lambda j: j.created_at) if not job.finished]

    def resume(self) -> list[str]:
        """Queue every unfinished job in storage, oldest first; returns their ids."""
        self.scanned_at = time.monotonic()
        resumed = self.unfinished()
        for job_id in resumed:
            self.queue.put(job_id)
        if resumed:
            logger.info("resuming %d unfinished catalog job(s)", len(resumed))
        return resumed

    def work(self, timeout_s: float) -> bool:
        """Run the next queued job, waiting up to `timeout_s` for one; whether one ran. A server calls
        this from its own worker threads (BentoML's sync clients need the serving loop's)."""
        try:
            job_id = self.queue.get(timeout=timeout_s)
        except Empty:
            if time.monotonic() - self.scanned_at > self.rescan_s:
                try:
                    self.resume()  # jobs of a runner that died, once their lease runs out
                except Exception:  # storage unreachable for a moment: the next rescan tries again
                    logger.exception("looking for unfinished catalog jobs failed; trying again in %.0f s", self.rescan_s)
            return False
        try:
            self.run(job_id)
        except Exception:
            logger.exception("catalog job %s stopped; the next start resumes it", job_id)
        return True

    def start(self) -> list[str]:
        """Resume, then work on a thread of the runner's own (in-process models: the CLI, tests)."""
        resumed = self.resume()
        self.stopping.clear()
        self.thread = threading.Thread(target=self._work, name="catalog-jobs", daemon=True)
        self.thread.start()
        return resumed

    def stop(self, timeout_s: float = 5.0) -> None:
        """Take no further row; the one in progress finishes (or stays pending for the next start)."""
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout_s)

    def _work(self) -> None:
        while not self.stopping.is_set():
            self.work(0.2)

    def run(self, job_id: str) -> Job:
        """Process the job's pending rows in order, saving its state after each."""
        job = self.get(job_id)
        if job.finished or not self.store.claim(job_id, self.owner, self.lease_s):
            return job
        articles = self.store.articles(job)
        params = CatalogParams(**job.params)
        job.status = "running"
        self.store.save(job)
        for row, article in zip(job.rows, articles):
            if row.status != "pending":
                continue
            if self.stopping.is_set():
                self.store.claim(job_id, self.owner, 0.0)  # released: any runner may go on with it
                return job
            if not self.store.claim(job_id, self.owner, self.lease_s):
                return job
            self._process(row, article, params)
            if not self.store.claim(job_id, self.owner, self.lease_s):
                # The row outlasted the lease and another runner took the job over: its state is the one
                # to keep (a record this row stored is found again and skipped, not made twice).
                logger.warning("catalog job %s was taken over during row %d; leaving it to its new runner", job_id, row.index)
                return job
            self.store.save(job)
        if any(row.status == "pending" for row in job.rows):
            # The last rows were left pending (told to stop during their retries): unfinished, for any runner.
            self.store.claim(job_id, self.owner, 0.0)
            return job
        job.status = "done"
        job.finished_at = now()
        self.store.save(job)
        logger.info("catalog job %s done: %s", job.id, job.counts())
        return job

    def _process(self, row: RowState, article: Article, params: CatalogParams) -> None:
        for pause in (*self.retry_pauses_s, None):
            try:
                result = self.pipeline.process(article, params)
            except InvalidInputError as exc:
                row.status, row.error = "failed", str(exc)
                return
            except ContentBlockedError as exc:
                row.status, row.error = "failed", f"blocked: {exc}"
                return
            except Exception as exc:
                if self.stopping.is_set():
                    return  # left pending: the next start tries it again
                if pause is None:
                    row.status, row.error = "failed", f"{type(exc).__name__}: {exc}"
                    return
                logger.warning("catalog row %s (%s) failed (%s); again in %.0f s", row.index, row.article_id, exc, pause)
                if self.stopping.wait(pause):
                    return
                continue
            row.status = "done"
            row.clip_score, row.passed, row.skipped, row.seed = result.clip_score, result.passed, result.skipped, result.seed
            row.attempts = len(result.attempts)
            row.translation, row.generation_prompt, row.image_id = result.translation, result.generation_prompt, result.key
            return
