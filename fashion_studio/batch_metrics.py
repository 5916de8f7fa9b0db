"""A batch run's metrics, pushed to a Prometheus Pushgateway: a Job's pod ends before Prometheus could scrape it.

`pushed_metrics(url, shard=...)` pushes this process's `fashion_` series (the catalog pipeline's
quality gate, translations, stage durations, seconds per image) and the run's own gauges to one
Pushgateway group: when the run starts, every `interval_s` while it runs, and when it ends. The run's
gauges follow Prometheus' advice for batch jobs: when it started, when it last succeeded, when it last
finished (succeeded or failed) and how long it took. The group is the Pushgateway's own URL path,
`http://HOST:9091/metrics/job/NAME[/LABEL/VALUE...]`, plus the labels the caller adds (the catalog's
shard). Each push is a POST, which replaces the pushed metric names in the group and keeps the others:
a failed run leaves the last success of an earlier run in place. A Pushgateway that cannot be reached
costs a warning, not the run. Prometheus scrapes the Pushgateway with `honor_labels`, so the series
keep the job, namespace and shard they were pushed with.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, pushadd_to_gateway
from prometheus_client.registry import Collector

from fashion_studio.errors import InvalidInputError
from fashion_studio.metrics import PREFIX

logger = logging.getLogger(__name__)

GROUP_PATH = re.compile(r"^(?P<prefix>.*?)/metrics/job/(?P<job>[^/]+)(?P<labels>(?:/[^/]+/[^/]+)*)/?$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def parse_group(url: str) -> tuple[str, str, dict[str, str]]:
    """'http://pushgateway:9091/metrics/job/catalog/namespace/ns' -> ('http://pushgateway:9091', 'catalog', {'namespace': 'ns'})."""
    parts = urlsplit(url)
    match = GROUP_PATH.match(parts.path)
    if parts.scheme not in ("http", "https") or not parts.netloc or match is None:
        raise InvalidInputError("pushgateway", url, "must be a Pushgateway group URL: http://HOST:PORT/metrics/job/NAME[/LABEL/VALUE...]")
    segments = match["labels"].strip("/").split("/") if match["labels"] else []
    labels = {unquote(name): unquote(value) for name, value in zip(segments[::2], segments[1::2])}
    for name in labels:
        if not LABEL_NAME.match(name) or name.endswith("@base64"):
            raise InvalidInputError("pushgateway", url, f"label {name!r} must be a plain Prometheus label name")
    return f"{parts.scheme}://{parts.netloc}{match['prefix']}", unquote(match["job"]), labels


class ProjectMetrics(Collector):
    """This process's project series (the `fashion_` prefix), without the process and platform collectors."""

    def __init__(self, source: CollectorRegistry = REGISTRY, prefix: str = f"{PREFIX}_") -> None:
        self.source = source
        self.prefix = prefix

    def collect(self):  # noqa: ANN201 -- prometheus_client's Collector protocol
        return [family for family in self.source.collect() if family.name.startswith(self.prefix)]


STARTED = f"{PREFIX}_batch_started_timestamp_seconds"
DURATION = f"{PREFIX}_batch_duration_seconds"
LAST_COMPLETION = f"{PREFIX}_batch_last_completion_timestamp_seconds"
LAST_SUCCESS = f"{PREFIX}_batch_last_success_timestamp_seconds"


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self):  # noqa: ANN201 -- prometheus_client's Collector protocol
        return list(self.registry.collect())


class MetricsPusher:
    """Pushes one run's metrics to one Pushgateway group: at the start, every `interval_s` from a
    thread, and at the end, with the end's gauges (the last success only when it succeeded)."""

    def __init__(self, url: str, labels: dict[str, str] | None = None, interval_s: float = 30.0, timeout_s: float = 10.0) -> None:
        self.gateway, self.job, group = parse_group(url)
        self.group = {**group, **(labels or {})}
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ProjectMetrics())
        self.started = Gauge(STARTED, "When this batch run started.", registry=self.registry)
        self.duration = Gauge(DURATION, "How long this batch run has taken (so far, while it runs).", registry=self.registry)
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._failing = False
        self._thread: threading.Thread | None = None

    def push(self, registry: CollectorRegistry | None = None) -> bool:
        """One push of the run's metrics (or of `registry`); False when it did not get through."""
        with self._lock:
            self.duration.set(time.monotonic() - self._start)
            try:
                pushadd_to_gateway(self.gateway, self.job, registry or self.registry, grouping_key=self.group, timeout=self.timeout_s)
            except OSError as exc:  # refused, unreachable, timed out, or an HTTP error status
                (logger.debug if self._failing else logger.warning)("metrics push to %s failed (%s); the run goes on", self.gateway, exc)
                self._failing = True
                return False
            if self._failing:
                logger.info("metrics push to %s works again", self.gateway)
            self._failing = False
            return True

    def start(self) -> None:
        self.started.set(time.time())
        self.push()
        self._thread = threading.Thread(target=self._loop, name="metrics-push", daemon=True)
        self._thread.start()

    def finish(self, success: bool) -> bool:
        """Stop the periodic pushes; push the end: its time, and the last success if it succeeded."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 5)
        end = CollectorRegistry(auto_describe=False)
        end.register(_Forward(self.registry))
        now = time.time()
        Gauge(LAST_COMPLETION, "When a batch run last finished, succeeded or failed.", registry=end).set(now)
        if success:
            Gauge(LAST_SUCCESS, "When a batch run last succeeded.", registry=end).set(now)
        return self.push(end)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.push()


@contextmanager
def pushed_metrics(url: str | None, interval_s: float = 30.0, **labels: str) -> Iterator[MetricsPusher | None]:
    """Push the run's metrics to the Pushgateway group `url` (nothing when it is empty), `labels` added."""
    if not url:
        yield None
        return
    pusher = MetricsPusher(url, labels, interval_s)
    pusher.start()
    try:
        yield pusher
    except BaseException:
        pusher.finish(success=False)
        raise
    pusher.finish(success=True)
