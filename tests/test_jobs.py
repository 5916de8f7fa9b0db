"""Catalog batch jobs on the tiny models: a sheet's rows through the catalog pipeline, resumed after a
restart without losing or repeating an article, bad uploads refused with the field and the limit."""

from __future__ import annotations

import csv
import io
import os
import time

import pytest

from fashion_studio.catalog import Article, CatalogParams
from fashion_studio.errors import InvalidInputError, UnsupportedMediaError
from fashion_studio.jobs import JobRunner, UnknownJobError
from fashion_studio.storage import Storage

SHEET = (
    "article_id,description\nJ-1,Rotes Damenkleid aus Baumwolle.\nJ-2,Gestreiftes Herren-Hemd in Blau.\n\nJ-3,Gelbe Sneaker für Kinder aus Canvas.\n"
).encode()


@pytest.fixture(scope="module")
def models(tiny_models, tmp_path_factory):
    """The tiny models, loaded once for the module."""
    from fashion_studio.settings import Settings
    from fashion_studio.studio import Studio

    settings = Settings(
        generator=str(tiny_models["sd"]),
        translator=str(tiny_models["marian"]),
        scorer=str(tiny_models["clip"]),
        storage_url=str(tmp_path_factory.mktemp("unused")),
        default_steps=2,
        default_guidance=0.0,
        default_width=32,
        default_height=32,
    )
    studio = Studio(settings)
    studio.catalog  # noqa: B018 - load every model now
    return studio


@pytest.fixture()
def studio(models, tmp_path):
    """The loaded models over a storage of this test's own."""
    from fashion_studio.studio import Studio

    studio = Studio(models.settings.model_copy(update={"storage_url": str(tmp_path / "store")}))
    for name in ("generator", "translator", "scorer", "safety", "extractor"):
        studio.__dict__[name] = getattr(models, name)
    return studio


def runner_for(studio) -> JobRunner:
    """A runner as the gateway builds one, on a fresh Storage object (as after a restart)."""
    params = CatalogParams.from_settings(studio.settings, max_attempts=1)
    return JobRunner(Storage(studio.settings.storage_url), studio.catalog, params)


def wait_finished(runner: JobRunner, job_id: str, timeout_s: float = 120):
    deadline = time.monotonic() + timeout_s
    while not (job := runner.get(job_id)).finished:
        assert runner.thread is not None and runner.thread.is_alive(), "the worker died"
        assert time.monotonic() < deadline, f"job not finished after {timeout_s} s: {job.counts()}"
        time.sleep(0.1)
    return job


def test_a_sheet_runs_row_by_row_into_stored_records(studio):
    runner = runner_for(studio)
    job = runner.submit("articles.csv", SHEET)
    assert job.counts() == {"total": 3, "done": 0, "failed": 0, "pending": 3, "passed": 0}
    runner.start()
    try:
        job = wait_finished(runner, job.id)
    finally:
        runner.stop()
    assert [r.status for r in job.rows] == ["done"] * 3
    assert [r.article_id for r in job.rows] == ["J-1", "J-2", "J-3"]
    assert all(studio.storage.exists(r.image_id) for r in job.rows)
    assert job.rows[0].translation and job.rows[0].translation != "Rotes Damenkleid aus Baumwolle."
    rows = list(csv.DictReader(io.StringIO(runner.results_csv(job.id))))
    assert [(r["article_id"], r["status"], r["image_id"]) for r in rows] == [(r.article_id, "done", r.image_id) for r in job.rows]
    assert float(rows[0]["clip_score"]) == job.rows[0].clip_score


def test_a_restarted_runner_resumes_without_losing_or_repeating_work(studio):
    """The worst moment to die: row 1's record stored, the job state not yet saved. The next start
    finds the job unfinished, skips the stored article and does the rest."""
    first = runner_for(studio)
    job = first.submit("articles.csv", SHEET)
    studio.catalog.process(Article("J-1", "Rotes Damenkleid aus Baumwolle."), CatalogParams(**job.params))
    stored_before = set(studio.storage.keys())

    second = runner_for(studio)
    assert second.start() == [job.id]
    try:
        job = wait_finished(second, job.id)
    finally:
        second.stop()
    assert [(r.status, r.skipped) for r in job.rows] == [("done", True), ("done", False), ("done", False)]
    assert stored_before <= set(studio.storage.keys())
    assert len(studio.storage.keys()) == 3, studio.storage.keys()
    assert runner_for(studio).unfinished() == []


def test_a_job_is_worked_on_by_one_runner_at_a_time(studio):
    """Two gateway replicas on one storage: the second leaves a job alone while the first's lease
    holds, and takes it over once that lease has run out (its replica died)."""
    first = JobRunner(
        Storage(studio.settings.storage_url), studio.catalog, CatalogParams.from_settings(studio.settings, max_attempts=1), owner="a", lease_s=0.5
    )
    second = JobRunner(Storage(studio.settings.storage_url), studio.catalog, CatalogParams.from_settings(studio.settings, max_attempts=1), owner="b")
    job = first.submit("articles.csv", "article_id,description\nL-1,Blaue Jeans für Herren.\n".encode())
    assert first.store.claim(job.id, "a", 0.5)
    assert second.run(job.id).counts()["pending"] == 1
    time.sleep(0.6)  # the lease's length, not a wait on work
    assert second.run(job.id).counts()["done"] == 1
    assert not first.store.claim(job.id, "a", 0.5) and second.store.claim(job.id, "b", 0.0)


def test_a_bad_row_fails_alone_and_says_why(studio):
    runner = runner_for(studio)
    job = runner.submit("articles.csv", "article_id;description\nK-1;Blaue Jeans für Herren.\nK-2;\n".encode())
    job = runner.run(job.id)
    assert [r.status for r in job.rows] == ["done", "failed"]
    assert "description" in job.rows[1].error and "must not be empty" in job.rows[1].error
    assert job.counts()["failed"] == 1 and job.finished


class HeldPipeline:
    """The real catalog pipeline behind a gate the test opens, or one that fails as an unreachable model
    service does (`fail`); `entered` is set when a row reaches it."""

    def __init__(self, pipeline, fail: bool = False) -> None:
        import threading

        self.pipeline, self.fail = pipeline, fail
        self.entered, self.gate = threading.Event(), threading.Event()
        self.calls = 0

    def process(self, article, params):
        self.calls += 1
        self.entered.set()
        if self.fail:
            raise ConnectionError("the generator service is not reachable")
        assert self.gate.wait(60), "the test never opened the gate"
        return self.pipeline.process(article, params)


ONE_ROW = "article_id,description\nS-1,Blaue Jeans für Herren.\n".encode()


def test_a_runner_stopped_while_retrying_the_last_row_leaves_the_job_unfinished(studio):
    """Told to stop during the last row's retries (a gateway shut down while a model service restarts),
    the runner leaves that row pending and the job unfinished for the next start, which does it."""
    failing = HeldPipeline(studio.catalog, fail=True)
    params = CatalogParams.from_settings(studio.settings, max_attempts=1)
    runner = JobRunner(Storage(studio.settings.storage_url), failing, params, retry_pauses_s=(60,))
    job = runner.submit("articles.csv", ONE_ROW)
    runner.start()
    assert failing.entered.wait(60)
    runner.stop(timeout_s=30)
    assert runner.thread is not None and not runner.thread.is_alive()
    job = runner.get(job.id)
    assert not job.finished and [r.status for r in job.rows] == ["pending"], job
    assert runner_for(studio).unfinished() == [job.id]
    assert runner_for(studio).run(job.id).counts()["done"] == 1


def test_an_unreadable_job_stops_no_other(studio):
    """A job whose state file was damaged (emptied by hand, cut off by a full disk) is logged and left as
    it is; the rescan that finds it does not end the worker, and other jobs still run."""
    runner = runner_for(studio)
    runner.rescan_s = 0.0
    damaged = "f" * 32
    runner.store.storage.write_bytes(f"{runner.store.folder(damaged)}/job.json", b"")
    assert runner.unfinished() == []
    assert runner.work(0.01) is False  # rescanned: the damaged job is skipped, nothing raised
    job = runner.submit("articles.csv", ONE_ROW)
    runner.start()
    try:
        assert wait_finished(runner, job.id).counts()["done"] == 1
    finally:
        runner.stop()


def test_the_row_limit_is_an_uploads_not_a_stored_jobs(studio):
    """A sheet over the upload limit is refused; a job accepted before that limit existed still reads its
    whole sheet (else it would be taken up and dropped again on every rescan, forever)."""
    big = b"article_id,description\n" + b"".join(b"B-%d,Rotes Kleid\n" % i for i in range(10_001))
    runner = runner_for(studio)
    with pytest.raises(InvalidInputError):
        runner.submit("articles.csv", big)
    job = runner.submit("articles.csv", ONE_ROW)
    runner.store.storage.write_bytes(f"{runner.store.folder(job.id)}/{job.sheet}", big)  # as an older gateway stored it
    assert len(runner.store.articles(runner.get(job.id))) == 10_001


def test_a_runner_whose_lease_ran_out_during_a_row_does_not_undo_the_new_runners_work(studio):
    """A row that outlasts its runner's lease: another runner takes the job over and finishes it; the
    first, when its row returns, sees that it no longer holds the job and saves nothing over it."""
    import threading

    held = HeldPipeline(studio.catalog)
    params = CatalogParams.from_settings(studio.settings, max_attempts=1)
    slow = JobRunner(Storage(studio.settings.storage_url), held, params, owner="slow", lease_s=0.0)  # its lease ends at once
    job = slow.submit("articles.csv", ONE_ROW)
    thread = threading.Thread(target=slow.run, args=(job.id,))
    thread.start()
    assert held.entered.wait(60)
    other = JobRunner(Storage(studio.settings.storage_url), studio.catalog, params, owner="other")
    assert other.run(job.id).finished
    held.gate.set()
    thread.join(60)
    assert not thread.is_alive()
    job = other.get(job.id)
    # the row as the new runner made it (the first runner's late pass found the record and skipped it)
    assert job.finished and [(r.status, r.error, r.skipped) for r in job.rows] == [("done", None, False)], job
    stored = studio.storage.keys()
    assert len([k for k in stored if k.startswith("S-1-")]) == 1, stored


def test_an_xlsx_sheet_is_read_like_the_cli_reads_it(studio, tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["article_id", "description", "price"])
    book.active.append([4711, "Schwarze Handtasche für Damen.", 19.9])
    book.save(tmp_path / "sheet.xlsx")
    job = runner_for(studio).submit("sheet.xlsx", (tmp_path / "sheet.xlsx").read_bytes())
    assert [(r.index, r.article_id) for r in job.rows] == [(1, "4711")]


@pytest.mark.parametrize(
    ("filename", "data", "error", "field", "says"),
    [
        ("notes.txt", b"article_id,description\n", UnsupportedMediaError, "file", ".csv or .xlsx"),
        ("photo.xlsx", b"\x89PNG\r\n\x1a\n", UnsupportedMediaError, "file", "not an Excel workbook"),
        ("latin1.csv", "article_id,description\nA,Kleid für Damen\n".encode("latin-1"), UnsupportedMediaError, "file", "UTF-8"),
        ("articles.csv", b"article_id,text\nA,Rotes Kleid\n", InvalidInputError, "column", "['article_id', 'text']"),
        ("articles.csv", b"article_id,description\n", InvalidInputError, "file", "at least one article row"),
        ("articles.csv", b"", InvalidInputError, "file", "header row"),
        ("articles.csv", b"article_id,description\n" + b"A,Rotes Kleid\n" * 10_001, InvalidInputError, "file", "at most 10000 rows"),
    ],
)
def test_bad_uploads_are_refused_naming_the_field(studio, filename, data, error, field, says):
    runner = runner_for(studio)
    with pytest.raises(error) as caught:
        runner.submit(filename, data)
    assert caught.type is error
    assert caught.value.field == field and says in caught.value.limit, caught.value.to_dict()
    assert "--" not in caught.value.limit  # no command-line hints in an API answer
    assert runner.store.ids() == []


@pytest.mark.parametrize("job_id", ["0" * 32, "../../etc/passwd", "x"])
def test_an_unknown_job_is_a_lookup_error(studio, job_id):
    with pytest.raises(UnknownJobError):
        runner_for(studio).get(job_id)


def test_recent_lists_records_newest_first(tmp_path):
    from PIL import Image

    storage = Storage(str(tmp_path / "store"))
    for number in (0, 2, 1):
        storage.put(f"rec-{number}", Image.new("RGB", (8, 8)), {"n": number})
        os.utime(tmp_path / "store" / f"rec-{number}.json", (1e9 + number, 1e9 + number))
    storage.write_bytes("_statistics.json", b"{}")
    total, page = storage.recent(limit=2)
    assert total == 3 and [r["key"] for r in page] == ["rec-2", "rec-1"]
    assert [r["key"] for r in storage.recent(limit=2, offset=2)[1]] == ["rec-0"]
