"""Every Prometheus metric of the project, in one place.

Names carry the `fashion_` prefix and unit suffixes. Labels are low-cardinality (endpoint, stage,
model, reason); prompt text never goes into a label. The seconds-per-image histogram has a bucket
boundary exactly at the SLO target so that `le="<target>"` answers "what share met the SLO".

Gauges use `livesum` so that they add up across worker processes when prometheus-client runs in
multiprocess mode (as it does under BentoML).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

from fashion_studio.settings import get_settings

PREFIX = "fashion"

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


def seconds_per_image_buckets(slo_seconds: float) -> tuple[float, ...]:
    """Buckets spanning fast CPU toys to slow GPU models, with one boundary at the SLO target."""
    base = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0}
    base.add(float(slo_seconds))
    base.add(float(slo_seconds) / 2)
    base.add(float(slo_seconds) * 2)
    return tuple(sorted(base))


SLO_SECONDS_PER_IMAGE = get_settings().slo_seconds_per_image

SECONDS_PER_IMAGE = Histogram(
    f"{PREFIX}_seconds_per_image",
    "Batch compute time divided by the images in the batch.",
    ["model", "runtime"],
    buckets=seconds_per_image_buckets(SLO_SECONDS_PER_IMAGE),
)
SLO_TARGET = Gauge(
    f"{PREFIX}_slo_seconds_per_image_target",
    "The seconds-per-image SLO target this process was configured with.",
    multiprocess_mode="max",
)
SLO_TARGET.set(SLO_SECONDS_PER_IMAGE)

REQUEST_DURATION = Histogram(
    f"{PREFIX}_request_duration_seconds",
    "End-to-end latency of a public request.",
    ["endpoint"],
    buckets=_LATENCY_BUCKETS,
)
REQUESTS = Counter(
    f"{PREFIX}_requests_total",
    "Public requests by endpoint and HTTP status code.",
    ["endpoint", "code"],
)
STAGE_DURATION = Histogram(
    f"{PREFIX}_stage_duration_seconds",
    "Latency of one stage of a request: queue, translate, extract, generate, encode, denoise, decode, edit, edit_queue, score, store.",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
IMAGES_GENERATED = Counter(
    f"{PREFIX}_images_generated_total",
    "Images produced by the generator.",
    ["model"],
)
EDITS = Counter(
    f"{PREFIX}_edits_total",
    "Images produced by the instruction-based editor.",
    ["model"],
)
SECONDS_PER_EDIT = Histogram(
    f"{PREFIX}_seconds_per_edit",
    "Editor pipeline-call time divided by the edits in the call.",
    ["model", "runtime"],
    buckets=seconds_per_image_buckets(SLO_SECONDS_PER_IMAGE),
)
SEGMENTATIONS = Counter(
    f"{PREFIX}_segmentations_total",
    "Masks requests answered by the segmenter, by prompt: points, box or category.",
    ["prompt"],
)
INPAINTS = Counter(
    f"{PREFIX}_inpaints_total",
    "Images the inpainter answered, by kind: inpaint (a masked region redrawn from a prompt) or tryon.",
    ["kind"],
)
BATCH_SIZE = Histogram(
    f"{PREFIX}_batch_size",
    "Items per call of a batchable method.",
    ["method"],
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64),
)
CLIP_SCORE = Histogram(
    f"{PREFIX}_clip_score",
    "CLIP image-text score (100 x cosine similarity) of returned images.",
    buckets=(0, 5, 10, 15, 20, 22, 24, 25, 26, 27, 28, 29, 30, 32, 35, 40, 50, 100),
)
GATE_OUTCOMES = Counter(
    f"{PREFIX}_quality_gate_total",
    "Quality-gate decisions per catalog article: passed on the first try, passed after retries, failed.",
    ["outcome"],
)
GATE_ATTEMPTS = Histogram(
    f"{PREFIX}_quality_gate_attempts",
    "Generation attempts a catalog article needed.",
    buckets=(1, 2, 3, 4, 5, 8),
)
FAILURES = Counter(
    f"{PREFIX}_failures_total",
    "Failed requests by endpoint and reason (invalid_input, too_large, unsupported_media, overloaded, timeout, internal, ...).",
    ["endpoint", "reason"],
)
IN_FLIGHT = Gauge(
    f"{PREFIX}_in_flight_requests",
    "Requests accepted and not yet answered; the autoscaling signal.",
    ["service"],
    multiprocess_mode="livesum",
)
QUEUED = Gauge(
    f"{PREFIX}_queued_requests",
    "Requests waiting for a slot because max_concurrency are in flight; past max_queued they are shed with 429.",
    ["service"],
    multiprocess_mode="livesum",
)
GENERATION_CANCELLATIONS = Counter(
    f"{PREFIX}_generation_cancellations_total",
    "Generation requests dropped before they finished: reason client (gone) or deadline (passed); stage queued or running.",
    ["reason", "stage"],
)
DENOISING_STEPS_SKIPPED = Counter(
    f"{PREFIX}_denoising_steps_skipped_total",
    "Denoising steps (per image) that dropped requests no longer needed and were never run.",
    ["reason"],
)
DENOISING_STEPS = Counter(
    f"{PREFIX}_denoising_steps_total",
    "Denoising steps run by the step scheduler, per image.",
)
STEP_BATCH_IMAGES = Histogram(
    f"{PREFIX}_step_batch_images",
    "Images per denoiser call of the step scheduler (its batch, whatever step each member is at).",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64),
)
ATTRIBUTE_EXTRACTIONS = Counter(
    f"{PREFIX}_attribute_extractions_total",
    "Catalog articles by what produced their attributes: lexicon, llm, or lexicon_fallback (the LLM failed on the description or its translation, and the lexicon answered).",
    ["extractor"],
)
CATALOG_TRANSLATIONS = Counter(
    f"{PREFIX}_catalog_translations_total",
    "Catalog descriptions translated, by verdict: reliable, or unreliable (the prompt then uses the source text's attributes alone).",
    ["verdict"],
)
POPULARITY_PREDICTIONS = Counter(
    f"{PREFIX}_popularity_predictions_total",
    "Images scored by the popularity model.",
)
FEEDBACK_EVENTS = Counter(
    f"{PREFIX}_feedback_events_total",
    "Events stored in the event log, by kind and source (api, import, simulated).",
    ["kind", "source"],
)
INDEX_QUERY_DURATION = Histogram(
    f"{PREFIX}_index_query_duration_seconds",
    "Latency of one product-index search (the vector store alone), by store kind and whether metadata filters applied.",
    ["store", "filtered"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)
RECOMMEND_RESULTS = Histogram(
    f"{PREFIX}_recommend_results",
    "Products in one /recommend answer (fewer than k when the filters leave fewer), by query kind (image, text).",
    ["query"],
    buckets=(0, 1, 2, 3, 5, 10, 20, 50, 100),
)
SESSION_TURNS = Counter(
    f"{PREFIX}_session_turns_total",
    "Conversation turns stored, by action (generate, edit, recommend), language (en, de) and how the action was chosen (named, or understood from the words).",
    ["action", "language", "understood"],
)


@contextmanager
def time_stage(stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        STAGE_DURATION.labels(stage=stage).observe(time.perf_counter() - start)


@contextmanager
def in_flight(service: str) -> Iterator[None]:
    gauge = IN_FLIGHT.labels(service=service)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()
