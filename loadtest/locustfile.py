"""Load test of the Fashion Studio gateway: the real traffic mix, content checks, a staged shape and
an SLO gate that fails the run (exit code 1) when the service misses its targets.

    locust -f loadtest/locustfile.py --headless --host http://127.0.0.1:3000 \
        --csv loadtest/reports/run --html loadtest/reports/run.html

Users: designers generating interactively (`/generate`, `/generate_image`), a catalog job posting the
articles of a spreadsheet (`/catalog`, `--articles`), lighter `/translate` and `/score` calls, and
one probe polling `/readyz`, `/livez` and `/metrics` all along, so an overload that stalls them fails
the run. Every answer's content is checked: PNGs decode and have the asked size, JSON has its fields.

Beyond capacity the service sheds with 429 or 503 and `Retry-After`. Shed answers are the service
working as designed: they are reported as "<name> [shed <status>]", not as failures, and the user waits the
`Retry-After` before its next request, as a well-behaved client does. Anything else counts as a
failure: another status, wrong content, a timeout, a dropped connection.

The gate, evaluated when the run ends: the 95th percentile of seconds per image of interactive
generation (latency divided by the images returned, one observation per image) must be at most FASHION_SLO_SECONDS_PER_IMAGE,
and failures over requests at most FASHION_SLO_ERROR_RATIO (both settings, or the flags below). The
verdict goes to the log and, with `--csv PREFIX`, to `PREFIX_slo.json`.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import logging
import os
import random
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gevent
from locust import HttpUser, LoadTestShape, between, constant, events, task
from locust.runners import WorkerRunner
from PIL import Image

from fashion_studio.catalog import read_articles
from fashion_studio.settings import get_settings

logger = logging.getLogger("loadtest")
HERE = Path(__file__).resolve().parent
SETTINGS = get_settings()

SLO_TYPE = "SLO"
SLO_NAME = "seconds per image"
SHED_STATUSES = (429, 503)
MAX_RETRY_AFTER_S = 10.0

PROMPTS = [
    "Professional product photography of a red women's summer dress, white background",
    "a navy men's hoodie laid flat, studio lighting",
    "a pair of white leather sneakers, product shot",
    "a beige trench coat on a clean white background",
    "a green knitted wool sweater, folded, top view",
    "a black denim jacket with silver buttons, centered",
]


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--stages", default="ramp:10:4,steady:20:4,spike:10:16,recover:10:4", help="name:seconds:users,... (ramp spawns gradually, later stages at once)"
    )
    parser.add_argument("--articles", default=str(HERE / "articles.csv"), help="Spreadsheet (.csv/.xlsx) with article_id and description columns")
    parser.add_argument("--size", type=int, default=SETTINGS.default_width, help="Width and height of generated images")
    parser.add_argument("--steps", type=int, default=SETTINGS.default_steps, help="Denoising steps per image")
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=float(SETTINGS.batching.timeout_s + 30),
        help="Client timeout; a request still open then is a failure (a hung request)",
    )
    parser.add_argument("--health-max-seconds", type=float, default=2.0, help="Slowest acceptable /readyz, /livez or /metrics answer")
    parser.add_argument("--api-key", default=os.environ.get("FASHION_API_KEY", ""), is_secret=True, help="Sent as Authorization: Bearer (env FASHION_API_KEY)")
    parser.add_argument("--slo-seconds-per-image", type=float, default=SETTINGS.slo_seconds_per_image)
    parser.add_argument("--slo-error-ratio", type=float, default=SETTINGS.slo_error_ratio)


# --- the shape: ramp, steady, spike, recover ----------------------------------------------------


@dataclass(frozen=True)
class Stage:
    name: str
    seconds: float
    users: int


def parse_stages(text: str) -> list[Stage]:
    stages = []
    for part in text.split(","):
        name, seconds, users = part.strip().split(":")
        stages.append(Stage(name, float(seconds), int(users)))
    if not stages:
        raise ValueError("--stages needs at least one name:seconds:users")
    return stages


class StagedShape(LoadTestShape):
    """Ramp up gradually, hold, surge at once to the spike, drop back; the probe user rides along."""

    def tick(self) -> tuple[int, float] | None:
        stages = parse_stages(self.runner.environment.parsed_options.stages)
        run_time = self.get_run_time()
        end = 0.0
        previous_users = 0
        for index, stage in enumerate(stages):
            end += stage.seconds
            if run_time < end:
                rate = max(stage.users - previous_users, 1) / stage.seconds if index == 0 else 100.0
                return stage.users + HealthProbe.fixed_count, rate
            previous_users = stage.users
        return None


# --- users --------------------------------------------------------------------------------------


class StudioUser(HttpUser):
    abstract = True

    def on_start(self) -> None:
        options = self.environment.parsed_options
        if options.api_key:
            self.client.headers["Authorization"] = f"Bearer {options.api_key}"
        self.size = options.size
        self.steps = options.steps
        self.timeout = options.request_timeout

    def call(self, name: str, path: str, body: dict, check) -> float | None:
        """POST, check the answer; return the latency in seconds when it passed, None otherwise."""
        start = time.perf_counter()
        retry_after = None
        with self.client.post(path, json=body, name=name, timeout=self.timeout, catch_response=True) as response:
            elapsed = time.perf_counter() - start
            if response.status_code in SHED_STATUSES and "retry-after" in response.headers:
                response.request_meta["name"] = f"{name} [shed {response.status_code}]"
                response.success()
                retry_after = min(float(response.headers["retry-after"]), MAX_RETRY_AFTER_S)
            elif response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or str(response.error))[:200]}")
                return None
            else:
                try:
                    check(response)
                except Exception as exc:  # any check that does not hold fails this request
                    response.failure(f"bad content: {type(exc).__name__}: {exc}")
                    return None
                response.success()
                return elapsed
        if retry_after is not None:  # back off as the service asked, as a well-behaved client does
            gevent.sleep(retry_after)
        return None

    def seconds_per_image(self, seconds: float, images: int) -> None:
        """One observation per image returned, each the request's latency over its image count: the SLO
        counts images, as the generator's `fashion_seconds_per_image` histogram does, not requests."""
        for _ in range(images):
            self.environment.events.request.fire(
                request_type=SLO_TYPE,
                name=SLO_NAME,
                response_time=1000.0 * seconds / images,
                response_length=0,
                exception=None,
                context={},
            )


class Designer(StudioUser):
    """Interactive generation: a prompt, a look at the result, another prompt."""

    weight = 5
    wait_time = between(0.5, 2.0)

    @task(3)
    def generate(self) -> None:
        count = random.choice((1, 1, 2))
        body = {"prompt": random.choice(PROMPTS), "num_images": count, "steps": self.steps, "width": self.size, "height": self.size}
        returned: list[int] = []

        def check(response: Any) -> None:
            data = response.json()
            assert len(data["images"]) + data.get("blocked", 0) == count, f"{len(data['images'])} images for {count}"
            assert data["images"], "every image was blocked"
            returned.append(len(data["images"]))
            for image in data["images"]:
                assert (image["width"], image["height"]) == (self.size, self.size), image
                assert isinstance(image["seed"], int) and 0.0 <= image["clip_score"] <= 100.0, image
                assert isinstance(image["url"], str) and image["url"], image
                if os.path.isfile(image["url"]):  # a local service: the stored file is there too
                    assert Image.open(image["url"]).size == (self.size, self.size)
            assert {"encode", "denoise", "decode"} <= set(data["timings"]), data["timings"]

        seconds = self.call("/generate", "/generate", body, check)
        if seconds is not None:
            self.seconds_per_image(seconds, returned[0])

    @task(1)
    def generate_image(self) -> None:
        body = {"prompt": random.choice(PROMPTS), "steps": self.steps, "width": self.size, "height": self.size}

        def check(response: Any) -> None:
            assert response.headers.get("content-type") == "image/png", response.headers.get("content-type")
            image = Image.open(io.BytesIO(response.content))
            image.load()
            assert image.format == "PNG" and image.size == (self.size, self.size), (image.format, image.size)
            int(response.headers["x-seed"])

        seconds = self.call("/generate_image", "/generate_image", body, check)
        if seconds is not None:
            self.seconds_per_image(seconds, 1)


_ARTICLES: list | None = None
_ARTICLES_LOCK = threading.Lock()
_RUN = uuid.uuid4().hex[:6]


def articles(path: str) -> itertools.cycle:
    global _ARTICLES
    with _ARTICLES_LOCK:
        if _ARTICLES is None:
            _ARTICLES = read_articles(path, language="auto")
            if not _ARTICLES:
                raise ValueError(f"{path} has no articles")
    return itertools.cycle(random.sample(_ARTICLES, len(_ARTICLES)))


class CatalogJob(StudioUser):
    """The catalog spreadsheet, article by article; each id gets a run suffix so every one is generated."""

    weight = 1
    wait_time = constant(0.2)

    def on_start(self) -> None:
        super().on_start()
        self.articles = articles(self.environment.parsed_options.articles)
        self.number = 0

    @task
    def catalog(self) -> None:
        article = next(self.articles)
        self.number += 1
        article_id = f"{article.article_id}-{_RUN}-{id(self) % 10_000}-{self.number}"
        body = {"article_id": article_id, "description": article.description, "language": article.language}

        def check(response: Any) -> None:
            data = response.json()
            assert data["article_id"] == article_id, data["article_id"]
            assert isinstance(data["translation"], str) and isinstance(data["passed"], bool)
            assert 0.0 <= data["clip_score"] <= 100.0 and data["attempts"], data
            assert data["generation_prompt"] and data["url"] and data["metadata_url"], data
            if os.path.isfile(data["metadata_url"]):
                assert json.loads(Path(data["metadata_url"]).read_text())["sample_id"] == article_id

        self.call("/catalog", "/catalog", body, check)


class Tools(StudioUser):
    """Translation of a few descriptions and CLIP scoring of an uploaded image."""

    weight = 2
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        super().on_start()
        self.articles = articles(self.environment.parsed_options.articles)

    @task
    def translate(self) -> None:
        texts = [next(self.articles).description for _ in range(random.randint(1, 3))]

        def check(response: Any) -> None:
            translations = response.json()["translations"]
            assert len(translations) == len(texts) and all(isinstance(t, str) for t in translations), translations

        self.call("/translate", "/translate", {"texts": texts}, check)

    @task
    def score(self) -> None:
        buffer = io.BytesIO()
        Image.new("RGB", (self.size, self.size), tuple(random.randrange(256) for _ in range(3))).save(buffer, format="PNG")
        body = {"image": base64.b64encode(buffer.getvalue()).decode(), "text": random.choice(PROMPTS)}

        def check(response: Any) -> None:
            assert 0.0 <= response.json()["clip_score"] <= 100.0, response.text

        self.call("/score", "/score", body, check)


class HealthProbe(HttpUser):
    """Health and metrics must answer, and fast, whatever the load."""

    fixed_count = 1
    wait_time = constant(0.5)

    @task
    def probe(self) -> None:
        limit = self.environment.parsed_options.health_max_seconds
        for path in ("/readyz", "/livez", "/metrics"):
            start = time.perf_counter()
            with self.client.get(path, name=path, timeout=limit + 5, catch_response=True) as response:
                elapsed = time.perf_counter() - start
                if response.status_code != 200:
                    response.failure(f"HTTP {response.status_code}")
                elif elapsed > limit:
                    response.failure(f"answered in {elapsed:.2f} s, over {limit} s")
                elif path == "/metrics" and "fashion_slo_seconds_per_image_target" not in response.text:
                    response.failure("no fashion_ metrics in /metrics")
                else:
                    response.success()


# --- the SLO gate --------------------------------------------------------------------------------


@dataclass
class Verdict:
    passed: bool
    requests: int
    failures: int
    shed: int
    served: int
    served_per_s: float
    error_ratio: float
    error_ratio_target: float
    p95_seconds_per_image: float | None
    seconds_per_image_target: float
    images_timed: int
    requests_per_s: float
    requests_by_endpoint: dict[str, int]
    failures_by_endpoint: dict[str, int]
    p95_seconds_by_endpoint: dict[str, float]
    max_seconds_by_endpoint: dict[str, float]
    reasons: list[str]


def evaluate(stats: Any, seconds_per_image_target: float, error_ratio_target: float) -> Verdict:
    """The gate over Locust's `RequestStats`: p95 seconds per image and failures over requests."""
    entries = [e for (name, method), e in stats.entries.items() if method != SLO_TYPE]
    requests = sum(e.num_requests for e in entries)
    failures = sum(e.num_failures for e in entries)
    shed = sum(e.num_requests for e in entries if "[shed" in e.name)
    served = sum(e.num_requests - e.num_failures for e in entries if e.method == "POST" and "[shed" not in e.name)
    per_image = stats.entries.get((SLO_NAME, SLO_TYPE))
    p95 = per_image.get_response_time_percentile(0.95) / 1000.0 if per_image and per_image.num_requests else None
    ratio = failures / requests if requests else 1.0
    reasons = []
    if not requests:
        reasons.append("no requests were made")
    if ratio > error_ratio_target:
        reasons.append(f"error ratio {ratio:.4f} > {error_ratio_target}")
    if p95 is None:
        reasons.append("no image was generated")
    elif p95 > seconds_per_image_target:
        reasons.append(f"p95 seconds per image {p95:.3f} > {seconds_per_image_target}")
    duration = max(stats.total.last_request_timestamp - stats.total.start_time, 1e-9) if stats.total.last_request_timestamp else 0.0
    return Verdict(
        passed=not reasons,
        requests=requests,
        failures=failures,
        shed=shed,
        served=served,
        served_per_s=round(served / duration, 3) if duration else 0.0,
        error_ratio=round(ratio, 6),
        error_ratio_target=error_ratio_target,
        p95_seconds_per_image=p95,
        seconds_per_image_target=seconds_per_image_target,
        images_timed=per_image.num_requests if per_image else 0,
        requests_per_s=round(requests / duration, 3) if duration else 0.0,
        requests_by_endpoint={e.name: e.num_requests for e in sorted(entries, key=lambda e: e.name)},
        failures_by_endpoint={e.name: e.num_failures for e in sorted(entries, key=lambda e: e.name) if e.num_failures},
        p95_seconds_by_endpoint={e.name: e.get_response_time_percentile(0.95) / 1000.0 for e in sorted(entries, key=lambda e: e.name) if e.num_requests},
        max_seconds_by_endpoint={e.name: round(e.max_response_time / 1000.0, 3) for e in sorted(entries, key=lambda e: e.name) if e.num_requests},
        reasons=reasons,
    )


@events.quitting.add_listener
def _gate(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # the master decides
    options = environment.parsed_options
    verdict = evaluate(environment.stats, options.slo_seconds_per_image, options.slo_error_ratio)
    environment.process_exit_code = 0 if verdict.passed else 1
    p95 = "n/a" if verdict.p95_seconds_per_image is None else f"{verdict.p95_seconds_per_image:.3f}"
    logger.info(
        "SLO gate %s: %d requests (%.2f/s; %d served, %.2f/s), %d failures (ratio %.4f, target %s), %d shed, p95 %s s per image (target %s)%s",
        "PASSED" if verdict.passed else "FAILED",
        verdict.requests,
        verdict.requests_per_s,
        verdict.served,
        verdict.served_per_s,
        verdict.failures,
        verdict.error_ratio,
        verdict.error_ratio_target,
        verdict.shed,
        p95,
        verdict.seconds_per_image_target,
        "" if verdict.passed else ": " + "; ".join(verdict.reasons),
    )
    if getattr(options, "csv_prefix", None):
        path = Path(f"{options.csv_prefix}_slo.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"stages": options.stages, **asdict(verdict)}, indent=2) + "\n")
