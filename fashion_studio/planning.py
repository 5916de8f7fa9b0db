"""Capacity planning for the GPU fleet, and a replay of load-test traffic through the HPA algorithm.

`plan` turns a traffic profile (requests/s by hour, images per request) and seconds per image per
accelerator type into the GPU pods, GPUs and cost per 1,000 images that meet the seconds-per-image
SLO, with each pod's batching queue: the wait for a place in the batch and the p95 latency. The GPUs
are counted where the manifests put them (Triton's pods in the gpu overlay). `simulate` replays the
arrivals of a Locust `*_stats_history.csv` through the Kubernetes HPA algorithm (sync period,
tolerance, stabilization windows, scaling policies, pod start time) and reports replicas over time and
the minutes the SLO was missed. docs/capacity.md works an example of each by hand.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import json
import logging
import math
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from fashion_studio.errors import FashionStudioError, InvalidInputError

logger = logging.getLogger(__name__)

# --- inputs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrafficProfile:
    """Requests per second for each hour of a day (any number of hours), and images per request."""

    requests_per_second: tuple[float, ...]
    images_per_request: float = 1.0
    name: str = "profile"

    def __post_init__(self) -> None:
        if not self.requests_per_second:
            raise ValueError("requests_per_second must list at least one hour")
        if any(r < 0 for r in self.requests_per_second):
            raise ValueError(f"requests_per_second must be >= 0, got {list(self.requests_per_second)}")
        if self.images_per_request <= 0:
            raise ValueError(f"images_per_request must be > 0, got {self.images_per_request}")

    @property
    def images_per_second(self) -> list[float]:
        return [r * self.images_per_request for r in self.requests_per_second]


@dataclass(frozen=True)
class Accelerator:
    """One way to serve the model: seconds per image alone on one pod (batch 1), and how batches speed it up.

    `batch_speedup` holds (batch, throughput at that batch / throughput at batch 1) pairs, measured
    in-process (`make bench-serving`, docs/benchmarks.md); empty means no gain from batching (the pod
    shares its time between the images of a batch). `pod` names the Deployment whose pods hold the
    GPUs, `gpus_per_replica` how many each pod holds.
    """

    name: str
    seconds_per_image: float
    price_per_gpu_hour: float
    gpus_per_replica: int = 1
    model: str = ""
    source: str = ""
    batch_speedup: tuple[tuple[int, float], ...] = ()
    pod: str = ""

    def __post_init__(self) -> None:
        if self.seconds_per_image <= 0 or self.price_per_gpu_hour < 0 or self.gpus_per_replica < 1:
            raise ValueError(f"{self.name}: seconds_per_image > 0, price_per_gpu_hour >= 0 and gpus_per_replica >= 1 required")
        if isinstance(self.batch_speedup, dict):  # as read from a file: {batch: speedup}
            object.__setattr__(self, "batch_speedup", tuple(sorted((int(b), float(s)) for b, s in self.batch_speedup.items())))

    @property
    def images_per_second(self) -> float:
        """Throughput of one pod with one image at a time."""
        return 1.0 / self.seconds_per_image

    def queue(self, max_batch: int) -> BatchingQueue:
        return BatchingQueue(self.seconds_per_image, max_batch, self.batch_speedup)


# The documented example (docs/capacity.md): a weekday of catalog traffic, 2 images per request.
EXAMPLE_PROFILE = TrafficProfile(
    requests_per_second=(0.5,) * 8 + (2.0,) * 10 + (1.0,) * 6,
    images_per_request=2.0,
    name="example weekday: 0.5 req/s 00-08 h, 2 req/s 08-18 h, 1 req/s 18-24 h",
)
# Published figures (docs/capacity.md cites them); prices are example on-demand rates, not quotes.
# Neither source measured batches, so the example assumes no gain from them. The GPUs sit in the
# Triton pods, one each, as in k8s/overlays/gpu (tests/test_planning.py renders it and compares).
EXAMPLE_ACCELERATORS = (
    Accelerator(
        name="H100-80GB",
        seconds_per_image=0.72,
        price_per_gpu_hour=4.00,
        model="FLUX.1-schnell 1024x1024, 4 steps, fp8 + torch.compile",
        source="Replicate, 'FLUX is fast and it's open source' (2024-10-10): 0.72 s median end to end",
        pod="triton",
    ),
    Accelerator(
        name="A100-80GB",
        seconds_per_image=2.54,
        price_per_gpu_hour=2.50,
        model="SDXL 1024x1024, 30 steps, bf16 + SDPA + torch.compile, batch 1",
        source="Hugging Face diffusers, 'Accelerate inference of text-to-image diffusion models': 2.54 s on an 80GB A100",
        pod="triton",
    ),
)
# Throughput by batch relative to batch 1, measured in-process with fashion-mini's pipeline on 2 CPU
# cores (docs/benchmarks.md: 4.49, 6.14, 9.56 and 13.69 images/s at batches of 1, 2, 4 and 8).
MEASURED_BATCH_SPEEDUP = ((1, 1.0), (2, 1.37), (4, 2.13), (8, 3.05))


def load_profile(path: Path) -> TrafficProfile:
    """YAML/JSON {requests_per_second: [...], images_per_request, name}, or CSV hour,requests_per_second."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "requests_per_second" not in rows[0]:
            raise ValueError(f"{path}: a CSV profile needs the columns hour,requests_per_second")
        rows.sort(key=lambda r: int(r.get("hour", 0)))
        return TrafficProfile(tuple(float(r["requests_per_second"]) for r in rows), name=path.stem)
    data = _load_mapping(path)
    return TrafficProfile(
        requests_per_second=tuple(float(v) for v in data["requests_per_second"]),
        images_per_request=float(data.get("images_per_request", 1.0)),
        name=str(data.get("name", path.stem)),
    )


def load_accelerators(path: Path) -> tuple[Accelerator, ...]:
    """YAML/JSON {accelerators: [{name, seconds_per_image, price_per_gpu_hour, gpus_per_replica, pod, batch_speedup: {batch: speedup}, model, source}]}."""
    data = _load_mapping(path)
    return tuple(Accelerator(**{k: v for k, v in entry.items() if k in Accelerator.__dataclass_fields__}) for entry in data["accelerators"])


def _load_mapping(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix.lower() == ".json":
        return json.loads(text)
    import yaml

    return yaml.safe_load(text)


# --- the batching queue of one pod ------------------------------------------------------------------


@dataclass(frozen=True)
class QueueState:
    """One pod's queue in equilibrium at `rate` images/s (docs/capacity.md, "Batching queues")."""

    rate: float
    utilization: float  # rate / the pod's throughput with a full batch
    wait_s: float  # mean wait for a place in the batch
    latency_s: float  # mean arrival-to-image time: the wait, then the image's time in its batch
    p95_s: float
    in_progress: float  # mean images at the pod, waiting or in the batch (what the HPA's metric counts)
    in_batch: float  # mean images in the running batch
    p_wait: float  # share of images that find the batch full and wait


@dataclass(frozen=True)
class BatchingQueue:
    """One pod that batches step by step, as the generator's step scheduler and Triton's dynamic
    batcher do: an image that arrives joins the running batch at the next step while it holds fewer
    than `max_batch`, and waits first come, first served while it is full. With b images in the batch
    the pod finishes images(b) = speedup(b) / seconds_per_image images/s, shared by the b.

    `at(rate)` solves it as a birth-death process with state-dependent rates (a load-dependent
    server): Poisson arrivals and, with n images at the pod, departures at images(min(n, max_batch)).
    That process has exponential work; an image's work is a fixed number of steps, so the wait for a
    place is scaled by Allen and Cunneen's (1 + work_scv) / 2, work_scv being the squared coefficient
    of variation of an image's work (0: fixed steps; 1: exponential, the plain birth-death result).
    """

    seconds_per_image: float
    max_batch: int = 8
    batch_speedup: tuple[tuple[int, float], ...] = ()
    work_scv: float = 0.0

    def __post_init__(self) -> None:
        if self.seconds_per_image <= 0:
            raise InvalidInputError("seconds_per_image", self.seconds_per_image, "must be > 0")
        if self.max_batch < 1:
            raise InvalidInputError("max_batch", self.max_batch, "must be >= 1")
        if self.work_scv < 0:
            raise InvalidInputError("work_scv", self.work_scv, "must be >= 0")
        points = dict(self.batch_speedup)
        if points.get(1, 1.0) != 1.0:
            raise InvalidInputError("batch_speedup", self.batch_speedup, "batch 1 is the reference: its speedup is 1")
        previous = 1.0
        for batch, speedup in sorted(points.items()):
            if batch < 1 or not previous <= speedup <= batch:
                raise InvalidInputError("batch_speedup", self.batch_speedup, "each batch b >= 1 with a speedup from the previous batch's up to b")
            previous = speedup

    def speedup(self, batch: float) -> float:
        """Measured points joined by straight lines; flat beyond the largest measured batch."""
        points = {1: 1.0, **dict(self.batch_speedup)}
        sizes = sorted(points)
        if batch >= sizes[-1]:
            return points[sizes[-1]]
        upper = bisect.bisect_right(sizes, batch)
        lo, hi = sizes[upper - 1], sizes[upper]
        return points[lo] + (points[hi] - points[lo]) * (batch - lo) / (hi - lo)

    def images_per_second(self, batch: int) -> float:
        return self.speedup(min(batch, self.max_batch)) / self.seconds_per_image

    def batch_seconds(self, batch: int) -> float:
        """Time for every image of a batch of `batch` (each image's time in that batch)."""
        return batch / self.images_per_second(batch)

    @property
    def capacity(self) -> float:
        """Images/s of the pod with full batches; no queue is stable beyond it."""
        return self.images_per_second(self.max_batch)

    def at(self, rate: float) -> QueueState:
        """The queue in equilibrium at `rate` images/s; waits are infinite at or beyond capacity."""
        top = self.max_batch
        alone = self.batch_seconds(1)
        if rate <= 0:
            return QueueState(0.0, 0.0, 0.0, alone, alone, 0.0, 0.0, 0.0)
        full = self.capacity
        rho = rate / full
        if rho >= 1:
            return QueueState(rate, rho, math.inf, math.inf, math.inf, math.inf, float(top), 1.0)
        # pi_n = pi_0 x prod_{k=1..n} rate / images(min(k, top)); beyond `top` a geometric tail of ratio rho.
        weights = [1.0]
        for n in range(1, top + 1):
            weights.append(weights[-1] * rate / self.images_per_second(n))
        total = sum(weights[:top]) + weights[top] / (1 - rho)
        pi = [w / total for w in weights]
        p_wait = pi[top] / (1 - rho)
        in_batch = sum(n * pi[n] for n in range(top)) + top * p_wait
        variability = (1 + self.work_scv) / 2
        wait = variability * pi[top] / (full * (1 - rho) ** 2)
        latency = in_batch / rate + wait
        # An image that finds the batch full waits an exponential time of mean wait / p_wait.
        tail_rate = (full - rate) / variability

        def beyond(t: float) -> float:
            """P(latency > t): an image that finds n < top others spends batch_seconds(n + 1); one that
            finds the batch full waits, then spends batch_seconds(top)."""
            share = sum(pi[n] for n in range(top) if self.batch_seconds(n + 1) > t)
            longest = self.batch_seconds(top)
            return share + (p_wait if t < longest else p_wait * math.exp(-tail_rate * (t - longest)))

        low, high = 0.0, self.batch_seconds(top) + 1.0
        while beyond(high) > 0.05:
            high *= 2
        for _ in range(60):
            middle = (low + high) / 2
            low, high = (middle, high) if beyond(middle) > 0.05 else (low, middle)
        return QueueState(rate, rho, wait, latency, high, rate * latency, in_batch, p_wait)


# --- where the GPUs are -----------------------------------------------------------------------------

GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class GpuPlacement:
    """The Deployment whose pods hold the GPUs, how many each pod holds, and the ones that hold none."""

    deployment: str
    gpus_per_pod: int
    source: str
    without_gpus: tuple[str, ...] = ()
    # Other Deployments that hold GPUs for work of their own (the editor): (name, GPUs per pod), not planned here.
    apart: tuple[tuple[str, int], ...] = ()


def gpu_placement(objects: Iterable[dict[str, Any]], source: str, deployment: str = "triton") -> GpuPlacement:
    """The Deployment of rendered manifests whose containers' limits ask for `nvidia.com/gpu` and that
    serves generation: the only one, or `deployment` where several do (the others are kept apart)."""
    holders: dict[str, int] = {}
    without: list[str] = []
    for doc in objects:
        if not doc or doc.get("kind") != "Deployment":
            continue
        containers = doc["spec"]["template"]["spec"].get("containers", [])
        gpus = sum(int(c.get("resources", {}).get("limits", {}).get(GPU_RESOURCE, 0)) for c in containers)
        if gpus:
            holders[doc["metadata"]["name"]] = gpus
        else:
            without.append(doc["metadata"]["name"])
    if not holders:
        raise InvalidInputError("overlay", source, f"no Deployment's containers ask for {GPU_RESOURCE}: nothing to plan GPUs for")
    if len(holders) == 1:
        deployment = next(iter(holders))
    elif deployment not in holders:
        raise InvalidInputError("overlay", source, f"{sorted(holders)} all hold GPUs and none is {deployment!r}: the plan covers the Deployment that generates")
    apart = tuple(sorted((name, gpus) for name, gpus in holders.items() if name != deployment))
    return GpuPlacement(deployment, holders[deployment], source, tuple(sorted(without)), apart)


def load_placement(path: Path) -> GpuPlacement:
    """From a kustomize folder (rendered with `kubectl kustomize`) or a YAML file of rendered objects."""
    import yaml

    if path.is_dir():
        kubectl = Path(sys.executable).with_name("kubectl")
        found = str(kubectl) if kubectl.is_file() else shutil.which("kubectl")
        if found is None:
            raise InvalidInputError("overlay", str(path), "rendering a kustomize folder needs kubectl; or pass the output of `kubectl kustomize` as a file")
        result = subprocess.run([found, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise InvalidInputError("overlay", str(path), f"kubectl kustomize failed: {result.stderr.strip()[:300]}")
        text = result.stdout
    elif path.is_file():
        text = path.read_text()
    else:
        raise InvalidInputError("overlay", str(path), "must be a kustomize folder or a YAML file of rendered objects")
    return gpu_placement(yaml.safe_load_all(text), str(path))


# --- the capacity plan ------------------------------------------------------------------------------


@dataclass
class Plan:
    accelerator: Accelerator
    feasible: bool
    reason: str
    replicas_by_hour: list[int] = field(default_factory=list)
    peak_replicas: int = 0
    gpu_hours_per_day: float = 0.0
    images_per_day: float = 0.0
    cost_per_day: float = 0.0
    cost_per_1000_images: float = math.inf
    fixed_cost_per_1000_images: float = math.inf
    mean_utilization: float = 0.0
    max_batch: int = 8
    wait_by_hour: list[float] = field(default_factory=list)  # mean wait for a place in the batch, s
    latency_by_hour: list[float] = field(default_factory=list)  # mean latency per image, s
    p95_by_hour: list[float] = field(default_factory=list)

    @property
    def peak_gpus(self) -> int:
        return self.peak_replicas * self.accelerator.gpus_per_replica

    @property
    def worst_wait_s(self) -> float:
        return max(self.wait_by_hour, default=0.0)

    @property
    def worst_p95_s(self) -> float:
        return max(self.p95_by_hour, default=0.0)


def plan_capacity(
    profile: TrafficProfile,
    accelerators: Sequence[Accelerator],
    slo_seconds_per_image: float = 2.0,
    target_utilization: float = 0.75,
    min_replicas: int = 2,
    max_batch: int = 8,
    p95_target_s: float | None = None,
    placement: GpuPlacement | None = None,
) -> list[Plan]:
    """GPU pods per hour = max(min_replicas, ceil(images/s / (a pod's images/s with full batches x target
    utilization))), raised until the p95 latency meets `p95_target_s` when one is given.

    Pods cannot make one image faster: an accelerator whose seconds per image exceeds the SLO target
    is infeasible at any scale. The target utilization leaves headroom for bursts within the hour and
    for the HPA's reaction time (pods take minutes to start on GPU nodes). Each pod's batching queue
    (`BatchingQueue`) gives the wait and latency at its share of the traffic (the Service spreads
    requests over the pods). Cost counts GPU-hours as autoscaled hour by hour, and, for comparison, a
    fleet fixed at the peak all day. `placement` (read from the manifests) says which pods hold the
    GPUs and how many; without it each accelerator's own `pod` and `gpus_per_replica` hold.
    """
    if not 0 < target_utilization <= 1:
        raise ValueError(f"target_utilization must be in (0, 1], got {target_utilization}")
    if p95_target_s is not None and p95_target_s <= 0:
        raise InvalidInputError("p95_target_s", p95_target_s, "must be > 0")
    plans = []
    hours = len(profile.requests_per_second)
    demand = profile.images_per_second
    images_per_day = sum(demand) * 3600
    for accelerator in accelerators:
        if placement is not None:
            accelerator = dataclasses.replace(accelerator, pod=placement.deployment, gpus_per_replica=placement.gpus_per_pod)
        if accelerator.seconds_per_image > slo_seconds_per_image:
            plans.append(
                Plan(
                    accelerator,
                    False,
                    f"{accelerator.seconds_per_image:g} s per image > SLO {slo_seconds_per_image:g} s: no replica count fixes that",
                    max_batch=max_batch,
                )
            )
            continue
        queue = accelerator.queue(max_batch)
        if p95_target_s is not None and p95_target_s <= queue.batch_seconds(1):
            plans.append(
                Plan(
                    accelerator,
                    False,
                    f"p95 target {p95_target_s:g} s <= {queue.batch_seconds(1):g} s, one image alone: no replica count fixes that",
                    max_batch=max_batch,
                )
            )
            continue
        replicas, states = [], []
        for rate in demand:
            count = max(min_replicas, math.ceil(round(rate / (queue.capacity * target_utilization), 9)))
            state = queue.at(rate / count)
            while p95_target_s is not None and state.p95_s > p95_target_s:
                count += 1
                state = queue.at(rate / count)
            replicas.append(count)
            states.append(state)
        gpu_hours = sum(replicas) * accelerator.gpus_per_replica
        cost = gpu_hours * accelerator.price_per_gpu_hour
        peak = max(replicas)
        fixed_cost = peak * hours * accelerator.gpus_per_replica * accelerator.price_per_gpu_hour
        busy = sum(rate / queue.capacity for rate in demand)
        plans.append(
            Plan(
                accelerator=accelerator,
                feasible=True,
                reason="",
                replicas_by_hour=replicas,
                peak_replicas=peak,
                gpu_hours_per_day=gpu_hours,
                images_per_day=images_per_day,
                cost_per_day=cost,
                cost_per_1000_images=1000 * cost / images_per_day if images_per_day else math.inf,
                fixed_cost_per_1000_images=1000 * fixed_cost / images_per_day if images_per_day else math.inf,
                mean_utilization=busy / sum(replicas),
                max_batch=max_batch,
                wait_by_hour=[s.wait_s for s in states],
                latency_by_hour=[s.latency_s for s in states],
                p95_by_hour=[s.p95_s for s in states],
            )
        )
    return plans


# --- the HPA replay ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalingPolicy:
    kind: Literal["Pods", "Percent"]
    value: int
    period_s: int


@dataclass(frozen=True)
class HpaConfig:
    """The HPA's knobs, defaulting to the generator's HPA in k8s/base/generator.yaml."""

    target_per_pod: float = 6.0
    min_replicas: int = 2
    max_replicas: int = 8
    sync_period_s: int = 15
    tolerance: float = 0.1
    scale_up_window_s: int = 0
    scale_down_window_s: int = 300
    scale_up_policies: tuple[ScalingPolicy, ...] = (ScalingPolicy("Percent", 100, 60), ScalingPolicy("Pods", 4, 60))
    scale_up_select: Literal["Max", "Min"] = "Max"
    scale_down_policies: tuple[ScalingPolicy, ...] = (ScalingPolicy("Pods", 1, 60),)
    scale_down_select: Literal["Max", "Min"] = "Max"


@dataclass(frozen=True)
class ServiceModel:
    """How the pods turn traffic into the HPA's metric and into latency.

    Each ready pod is a `BatchingQueue`: seconds_per_image alone, up to `batch_size` images per batch,
    `batch_speedup` as measured. Traffic beyond what the ready pods finish with full batches builds a
    backlog (a fluid queue, drained at their full-batch throughput). Below that, each pod's queue is
    taken in equilibrium at its current share of the traffic (the pointwise stationary approximation),
    capped at a full batch: the images in progress per pod are the batch's (at most `batch_size`) plus
    the pod's share of the backlog, and an image's latency is its time in the batch (at most a full
    batch's) plus the backlog's wait. The HPA's metric counts requests: images / images_per_request.
    The SLO is missed while the mean latency exceeds the target.
    """

    seconds_per_image: float = 0.72
    images_per_request: float = 1.0
    batch_size: int = 8
    pod_start_s: float = 90.0
    slo_seconds_per_image: float = 2.0
    batch_speedup: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        self.queue  # noqa: B018 -- the queue checks the figures

    @property
    def queue(self) -> BatchingQueue:
        return BatchingQueue(self.seconds_per_image, self.batch_size, self.batch_speedup)


@dataclass
class Step:
    t: float
    images_per_second: float
    replicas: int
    ready: int
    metric_per_pod: float
    queue_images: float
    latency_s: float
    slo_met: bool


@dataclass
class Simulation:
    steps: list[Step]
    scale_events: list[tuple[float, int, int]]  # (t, from, to)
    dt: float
    slo_seconds_per_image: float

    @property
    def minutes_slo_missed(self) -> float:
        return sum(self.dt for s in self.steps if not s.slo_met) / 60.0

    @property
    def peak_replicas(self) -> int:
        return max(s.replicas for s in self.steps)

    @property
    def replica_hours(self) -> float:
        return sum(s.replicas for s in self.steps) * self.dt / 3600.0

    @property
    def images(self) -> float:
        return sum(s.images_per_second for s in self.steps) * self.dt

    def replicas_at(self, t: float) -> int:
        return next(s.replicas for s in reversed(self.steps) if s.t <= t)

    def by_minute(self) -> list[dict[str, float]]:
        """One row per minute: mean load, replicas at the end, worst latency, seconds of SLO miss."""
        rows: dict[int, list[Step]] = {}
        for step in self.steps:
            rows.setdefault(int(step.t // 60), []).append(step)
        return [
            {
                "minute": minute,
                "images_per_second": sum(s.images_per_second for s in steps) / len(steps),
                "replicas": steps[-1].replicas,
                "ready": steps[-1].ready,
                "max_latency_s": max(s.latency_s for s in steps),
                "seconds_slo_missed": sum(self.dt for s in steps if not s.slo_met),
            }
            for minute, steps in sorted(rows.items())
        ]


# The requests that reach the generator: the gateway's image endpoints (Locust names them by path).
GENERATION_REQUESTS = ("/generate", "/generate_image", "/catalog")


def read_locust_history(
    path: Path,
    time_scale: float = 1.0,
    rate_scale: float = 1.0,
    names: Sequence[str] = GENERATION_REQUESTS,
) -> list[tuple[float, float]]:
    """(seconds since start, requests/s that arrived) from Locust's `*_stats_history.csv`.

    Locust writes a row per second with cumulative counts, for each request name (with
    `--csv-full-history`) and for all of them together (the Aggregated row), and counts a request when
    its answer comes: a request that waited a minute is counted a minute after it arrived, and an
    overloaded service's answers arrive at its throughput, not at the offered rate. So arrivals are
    rebuilt name by name: the requests answered between two rows ("Total Request Count" grew by n)
    arrived their mean response time earlier (from "Total Average Response Time", cumulative too),
    spread over the same interval moved back by it. Only `names` count: the Aggregated row adds health
    probes, /metrics scrapes, translate and score calls and the locustfile's "SLO" entries, none of
    which the generator sees; shed answers (`<name> [shed 429]`) are left out, since the client
    retries them and the retry counts when it gets through. The series ends where the last rows'
    response times leave later arrivals unknown. `time_scale` stretches time (60: a 10-minute test
    replayed as 10 hours); `rate_scale` multiplies the traffic (projecting a test onto production).
    """
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    grid = sorted({int(float(r["Timestamp"])) for r in rows if r.get("Timestamp")})
    if len(grid) < 2:
        raise InvalidInputError("history", str(path), "needs rows at two timestamps or more of a Locust *_stats_history.csv")
    by_name: dict[str, dict[int, dict[str, str]]] = {}
    for row in rows:
        by_name.setdefault(row.get("Name", ""), {})[int(float(row["Timestamp"]))] = row  # the last row of a second holds its counts
    present = [name for name in names if name in by_name]
    if not present:
        raise InvalidInputError(
            "names",
            list(names),
            f"{path} has no rows for them: run Locust with --csv-full-history (the Aggregated row also counts probes, /metrics and SLO entries)",
        )
    start = grid[0]
    arrived = [0.0] * (len(grid) - 1)  # arrivals within [grid[j], grid[j + 1])
    known_until = float(grid[-1])

    def answered(row: dict[str, str]) -> tuple[float, float]:
        """(requests answered, their summed response time in ms) so far."""
        count = float(row["Total Request Count"])
        return count, float(row.get("Total Average Response Time") or 0.0) * count

    for name in present:
        counts = by_name[name]
        # Answers before the first row are the test's past; a name without a row had no answer yet.
        previous, seen_at = (answered(counts[start]), start) if start in counts else ((0.0, 0.0), None)
        latest_delay = 0.0
        for before, now in zip(grid, grid[1:]):
            row = counts.get(now)
            if row is None:
                continue
            since, seen_at = (before if seen_at is None else seen_at), now
            count, total_ms = answered(row)
            new, new_ms = count - previous[0], total_ms - previous[1]
            if new < 0:  # Locust's statistics were reset: the counts start again from zero
                new, new_ms = count, total_ms
            previous = (count, total_ms)
            if new <= 0:
                continue
            delay = max(new_ms / new / 1000.0, 0.0)
            latest_delay = delay
            _spread(arrived, grid, max(since - delay, start), max(now - delay, start), new)
        known_until = min(known_until, grid[-1] - latest_delay)
    series = []
    for j, (lo, hi) in enumerate(zip(grid, grid[1:])):
        if hi > known_until + 1e-9:
            break
        series.append(((lo - start) * time_scale, arrived[j] / (hi - lo) * rate_scale))
    if not series:
        raise InvalidInputError("history", str(path), "no interval has its arrivals known: the test is shorter than its response times")
    return series


def _spread(bins: list[float], grid: list[int], lo: float, hi: float, amount: float) -> None:
    """Add `amount` spread evenly over [lo, hi) to the grid's intervals (all of it to one, if lo == hi)."""
    first = min(max(bisect.bisect_right(grid, lo) - 1, 0), len(bins) - 1)
    if hi <= lo:
        bins[first] += amount
        return
    for j in range(first, len(bins)):
        if grid[j] >= hi:
            break
        overlap = min(hi, grid[j + 1]) - max(lo, grid[j])
        if overlap > 0:
            bins[j] += amount * overlap / (hi - lo)


def simulate_hpa(load: list[tuple[float, float]], service: ServiceModel, hpa: HpaConfig, dt: float = 1.0, initial_replicas: int | None = None) -> Simulation:
    """Replay requests/s over time through the HPA algorithm of kube-controller-manager.

    Every `sync_period_s`: usage ratio = mean metric of pods that report / target; within the tolerance
    nothing changes; else desired = ceil(ratio x pods). Pods still starting report nothing: on a scale-up
    they count as 0 and on a scale-down as the target (the HPA's rule for missing metrics), and the
    decision is dropped if that flips its direction. Then the stabilization windows (highest
    recommendation of the scale-down window, lowest of the scale-up window), then the scaling policies
    (replicas added or removed within each policy's period), then min/max. New pods are ready after
    `pod_start_s`; removed pods go at once. The pods' queues: `ServiceModel`.
    """
    if not load:
        raise ValueError("no traffic to replay")
    replicas = max(hpa.min_replicas, min(hpa.max_replicas, initial_replicas or hpa.min_replicas))
    ready_at: list[float] = [0.0] * replicas  # the starting fleet is ready
    backlog = 0.0  # images beyond what the ready pods' full batches take
    history: deque[tuple[float, int]] = deque()  # (t, recommendation)
    events: list[tuple[float, int, int]] = []  # (t, change) for the policies; and the report
    report_events: list[tuple[float, int, int]] = []
    steps: list[Step] = []
    end = load[-1][0] + (load[-1][0] - load[-2][0] if len(load) > 1 else dt)
    times = [i * dt for i in range(int(math.ceil(end / dt)))]
    index = 0
    queue = service.queue
    full_batch = queue.batch_seconds(service.batch_size)
    k = service.images_per_request
    for t in times:
        while index + 1 < len(load) and load[index + 1][0] <= t:
            index += 1
        demand = load[index][1] * k  # images/s
        ready = sum(1 for r in ready_at if r <= t)
        capacity = ready * queue.capacity
        # The backlog over [t, t + dt): arrivals minus what the ready pods finish with full batches.
        served = min(demand * dt + backlog, capacity * dt)
        backlog = max(0.0, backlog + demand * dt - capacity * dt)
        if ready:
            state = queue.at(served / dt / ready)
            in_batch = min(state.in_progress, service.batch_size)
            latency = min(state.latency_s, full_batch) + (backlog / capacity)
            per_pod = (in_batch + backlog / ready) / k
        else:
            latency = per_pod = math.inf
        if t > 0 and t % hpa.sync_period_s == 0:
            desired = _desired_replicas(replicas, ready, per_pod, hpa)
            desired = _stabilize(t, replicas, desired, history, hpa)
            desired = _limit(t, replicas, desired, events, hpa)
            if desired != replicas:
                report_events.append((t, replicas, desired))
                events.append((t, desired - replicas))
                if desired > replicas:
                    ready_at += [t + service.pod_start_s] * (desired - replicas)
                else:
                    ready_at.sort(reverse=True)  # starting pods go first
                    del ready_at[: replicas - desired]
                replicas = desired
                ready = sum(1 for r in ready_at if r <= t)
        steps.append(Step(t, demand, replicas, ready, per_pod, backlog, latency, latency <= service.slo_seconds_per_image))
    return Simulation(steps, report_events, dt, service.slo_seconds_per_image)


def _desired_replicas(current: int, ready: int, per_pod: float, hpa: HpaConfig) -> int:
    """replica_calculator.go, calcPlainMetricReplicas: pods still starting are "missing" metrics."""
    if ready == 0:  # no pod reports: the HPA errors out and keeps the scale
        return current
    missing = current - ready
    ratio = per_pod / hpa.target_per_pod

    def within(r: float) -> bool:
        return abs(1.0 - r) <= hpa.tolerance

    if missing == 0:
        return current if within(ratio) else math.ceil(round(ratio * ready, 9))
    fill = hpa.target_per_pod if ratio < 1.0 else 0.0  # scale-down: at target; scale-up: 0
    new_ratio = (per_pod * ready + fill * missing) / current / hpa.target_per_pod
    if within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current
    new = math.ceil(round(new_ratio * current, 9))
    if (new_ratio < 1.0 and new > current) or (new_ratio > 1.0 and new < current):
        return current
    return new


def _stabilize(t: float, current: int, desired: int, history: deque[tuple[float, int]], hpa: HpaConfig) -> int:
    up, down = desired, desired
    for when, recommendation in history:
        if when > t - hpa.scale_up_window_s:
            up = min(up, recommendation)
        if when > t - hpa.scale_down_window_s:
            down = max(down, recommendation)
    history.append((t, desired))
    horizon = max(hpa.scale_up_window_s, hpa.scale_down_window_s)
    while history and history[0][0] <= t - horizon:
        history.popleft()
    recommendation = current
    if recommendation < up:
        recommendation = up
    if recommendation > down:
        recommendation = down
    return recommendation


def _limit(t: float, current: int, desired: int, events: list[tuple[float, int]], hpa: HpaConfig) -> int:
    """horizontal.go, convertDesiredReplicasWithBehaviorRate: the scaling policies, then min/max."""

    def period_start(period_s: int) -> int:
        recent = [change for when, change in events if when > t - period_s]
        added = sum(c for c in recent if c > 0)
        deleted = -sum(c for c in recent if c < 0)
        return current - added + deleted

    if desired > current:
        proposals = []
        for policy in hpa.scale_up_policies:
            start = period_start(policy.period_s)
            proposals.append(start + policy.value if policy.kind == "Pods" else math.ceil(start * (1 + policy.value / 100)))
        limit = max(current, max(proposals) if hpa.scale_up_select == "Max" else min(proposals))
        return min(desired, limit, hpa.max_replicas)
    if desired < current:
        proposals = []
        for policy in hpa.scale_down_policies:
            start = period_start(policy.period_s)
            proposals.append(start - policy.value if policy.kind == "Pods" else int(start * (1 - policy.value / 100)))
        limit = min(current, min(proposals) if hpa.scale_down_select == "Max" else max(proposals))
        return max(desired, limit, hpa.min_replicas)
    return desired


# The documented simulation example (docs/capacity.md): a Locust history with a 6x step in traffic.
def example_history_rows() -> list[dict[str, Any]]:
    """A Locust `--csv-full-history` history: /generate requests arrive at 2 req/s for 2 min, 12 req/s
    for 5 min and 2 req/s for 5 min, each answered 1 s after it arrived; the Aggregated rows add a
    health probe's 6 requests/s (answered in 5 ms), which the replay leaves out."""
    rows, start = [], 1_767_225_600  # 2026-01-01T00:00:00Z
    arrivals = [12 if 120 <= second < 420 else 2 for second in range(12 * 60)]
    answered = 0
    for second in range(len(arrivals) + 2):
        now = arrivals[second - 2] if second >= 2 else 0  # answered in (second - 1, second]: arrived a second earlier
        answered += now
        probes = 6 * second
        users = (12 if 120 <= second < 420 else 2) * 2 + 1
        common = {"Timestamp": start + second, "User Count": users, "Failures/s": "0.000000", "Total Failure Count": 0}
        rows.append(
            {
                **common,
                "Type": "POST",
                "Name": "/generate",
                "Requests/s": f"{now:2f}",
                "Total Request Count": answered,
                "Total Average Response Time": 1000.0 if answered else 0,
            }
        )
        everything = answered + probes
        rows.append(
            {
                **common,
                "Type": "",
                "Name": "Aggregated",
                "Requests/s": f"{now + 6:2f}",
                "Total Request Count": everything,
                "Total Average Response Time": (1000.0 * answered + 5.0 * probes) / everything if everything else 0,
            }
        )
    return rows


def write_locust_history(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = [
        "Timestamp",
        "User Count",
        "Type",
        "Name",
        "Requests/s",
        "Failures/s",
        "50%",
        "66%",
        "75%",
        "80%",
        "90%",
        "95%",
        "98%",
        "99%",
        "99.9%",
        "99.99%",
        "100%",
        "Total Request Count",
        "Total Failure Count",
        "Total Median Response Time",
        "Total Average Response Time",
        "Total Min Response Time",
        "Total Max Response Time",
        "Total Average Content Size",
    ]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="0")
        writer.writeheader()
        writer.writerows(rows)


# --- the CLI: `fashion-studio plan ...` ---------------------------------------------------------------

plan_app = typer.Typer(
    invoke_without_command=True,
    help="Capacity plan (GPU pods, GPUs, queue wait, p95 latency, cost per 1,000 images) for a traffic profile; `simulate` replays a load test through the HPA.",
)


def _money(value: float) -> str:
    return "-" if not math.isfinite(value) else f"${value:,.2f}"


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def parse_batch_speedup(text: str) -> tuple[tuple[int, float], ...]:
    """'2:1.37,4:2.13,8:3.05' -> ((2, 1.37), (4, 2.13), (8, 3.05))."""
    try:
        return tuple(sorted((int(b), float(s)) for b, s in (part.split(":") for part in text.split(",") if part.strip())))
    except ValueError:
        raise InvalidInputError("batch_speedup", text, "batch:speedup pairs separated by commas, e.g. 2:1.37,4:2.13,8:3.05") from None


def _placement_line(plans: list[Plan], placement: GpuPlacement | None) -> str:
    if placement is not None:
        others = f"; {', '.join(placement.without_gpus)} hold none" if placement.without_gpus else ""
        apart = "".join(f"; {name} holds {gpus} GPU per pod of its own, not planned here" for name, gpus in placement.apart)
        return f"GPU pods: {placement.deployment}, {placement.gpus_per_pod} GPU each, read from {placement.source}{others}{apart}"
    held = sorted({(p.accelerator.pod or "replica", p.accelerator.gpus_per_replica) for p in plans})
    return "GPU pods: " + "; ".join(f"{pod}, {gpus} GPU each" for pod, gpus in held) + " (the accelerators' figures; --overlay reads them from the manifests)"


@plan_app.callback()
def plan(
    ctx: typer.Context,
    profile: Annotated[
        Optional[Path],
        typer.Option(
            help="Traffic profile: YAML/JSON {requests_per_second: [per hour], images_per_request} or CSV hour,requests_per_second. Default: the documented example."
        ),
    ] = None,
    accelerators: Annotated[
        Optional[Path],
        typer.Option(
            help="YAML/JSON {accelerators: [{name, seconds_per_image, price_per_gpu_hour, gpus_per_replica, pod, batch_speedup}]}. Default: the documented example."
        ),
    ] = None,
    overlay: Annotated[
        Optional[Path],
        typer.Option(
            help="Kustomize overlay (or a file of rendered objects) whose GPU pods the plan counts, e.g. k8s/overlays/gpu: the Deployment that asks for nvidia.com/gpu, and how many per pod."
        ),
    ] = None,
    images_per_request: Annotated[Optional[float], typer.Option("--images-per-request", help="Override the profile's images per request.")] = None,
    slo_seconds_per_image: Annotated[
        Optional[float], typer.Option("--slo-seconds-per-image", help="SLO target; default FASHION_SLO_SECONDS_PER_IMAGE.")
    ] = None,
    utilization: Annotated[float, typer.Option(help="Target GPU utilization (headroom for bursts and scale-up time).")] = 0.75,
    min_replicas: Annotated[int, typer.Option("--min-replicas", help="Floor for availability (the PDB keeps one while a node drains).")] = 2,
    max_batch: Annotated[
        int, typer.Option("--max-batch", help="Images per batch at most (the engines' largest profile; FASHION_BATCHING__MAX_BATCH_SIZE).")
    ] = 8,
    p95_target: Annotated[Optional[float], typer.Option("--p95-target", help="Add pods until the p95 latency per image is at most this many seconds.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """GPU pods per hour, peak GPUs, queue wait, p95 latency and cost per 1,000 images for each accelerator that can meet the SLO."""
    if ctx.invoked_subcommand is not None:
        return
    from fashion_studio.settings import get_settings

    try:
        traffic = load_profile(profile) if profile else EXAMPLE_PROFILE
        if images_per_request is not None:
            traffic = TrafficProfile(traffic.requests_per_second, images_per_request, traffic.name)
        options = load_accelerators(accelerators) if accelerators else EXAMPLE_ACCELERATORS
        placement = load_placement(overlay) if overlay else None
        slo = slo_seconds_per_image if slo_seconds_per_image is not None else get_settings().slo_seconds_per_image
        plans = plan_capacity(traffic, options, slo, utilization, min_replicas, max_batch, p95_target, placement)
    except FashionStudioError as exc:
        _fail(exc)
    if as_json:
        typer.echo(
            json.dumps(
                [{**asdict(p), "peak_gpus": p.peak_gpus, "worst_wait_s": p.worst_wait_s, "worst_p95_s": p.worst_p95_s} for p in plans], indent=2, default=str
            )
        )
        return
    typer.echo(
        f"profile: {traffic.name}; {traffic.images_per_request:g} images/request; SLO {slo:g} s/image; "
        f"target utilization {utilization:.0%}; batches of up to {max_batch} images" + (f"; p95 target {p95_target:g} s" if p95_target else "")
    )
    typer.echo(_placement_line(plans, placement))
    typer.echo(
        f"{'accelerator':<14}{'s/image':>8}{'peak':>6}{'GPUs':>6}{'GPU-h/day':>11}{'util':>7}{'wait s':>8}{'p95 s':>8}{'$/day':>11}{'$/1k img':>10}{'fixed $/1k':>12}"
    )
    for p in plans:
        a = p.accelerator
        if not p.feasible:
            typer.echo(f"{a.name:<14}{a.seconds_per_image:>8g}  infeasible: {p.reason}")
            continue
        typer.echo(
            f"{a.name:<14}{a.seconds_per_image:>8g}{p.peak_replicas:>6}{p.peak_gpus:>6}{p.gpu_hours_per_day:>11g}{p.mean_utilization:>7.0%}"
            f"{p.worst_wait_s:>8.2f}{p.worst_p95_s:>8.2f}{_money(p.cost_per_day):>11}{_money(p.cost_per_1000_images):>10}{_money(p.fixed_cost_per_1000_images):>12}"
        )
    for p in plans:
        if p.feasible:
            typer.echo(f"{p.accelerator.name} {p.accelerator.pod or 'replica'} pods by hour: {' '.join(map(str, p.replicas_by_hour))}")
    typer.echo("wait s, p95 s: per image, at the hour with the slowest p95 (each pod's batching queue, docs/capacity.md)")


@plan_app.command()
def simulate(
    history: Annotated[Path, typer.Argument(help="Locust `--csv` output with --csv-full-history: the *_stats_history.csv file.")],
    seconds_per_image: Annotated[float, typer.Option("--seconds-per-image", help="One pod's seconds per image, one image alone.")] = 0.72,
    images_per_request: Annotated[float, typer.Option("--images-per-request")] = 1.0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch at most (FASHION_BATCHING__MAX_BATCH_SIZE).")] = 8,
    batch_speedup: Annotated[
        str, typer.Option("--batch-speedup", help="Throughput at a batch / at batch 1, measured: e.g. 2:1.37,4:2.13,8:3.05. Default: no gain.")
    ] = "",
    name: Annotated[
        Optional[list[str]],
        typer.Option("--name", help="Locust request names that reach the generator (repeat). Default: /generate, /generate_image, /catalog."),
    ] = None,
    target: Annotated[float, typer.Option(help="HPA target: requests in progress per pod.")] = HpaConfig.target_per_pod,
    min_replicas: Annotated[int, typer.Option("--min-replicas")] = HpaConfig.min_replicas,
    max_replicas: Annotated[int, typer.Option("--max-replicas")] = HpaConfig.max_replicas,
    sync_period: Annotated[int, typer.Option("--sync-period", help="--horizontal-pod-autoscaler-sync-period, seconds.")] = HpaConfig.sync_period_s,
    tolerance: Annotated[float, typer.Option(help="--horizontal-pod-autoscaler-tolerance.")] = HpaConfig.tolerance,
    scale_down_window: Annotated[
        int, typer.Option("--scale-down-window", help="behavior.scaleDown.stabilizationWindowSeconds.")
    ] = HpaConfig.scale_down_window_s,
    scale_up_pods: Annotated[int, typer.Option("--scale-up-pods", help="scaleUp policy: at most this many pods added per period.")] = 4,
    scale_up_percent: Annotated[
        int, typer.Option("--scale-up-percent", help="scaleUp policy: at most this % added per period (the larger policy wins).")
    ] = 100,
    scale_up_period: Annotated[int, typer.Option("--scale-up-period")] = 60,
    scale_down_pods: Annotated[int, typer.Option("--scale-down-pods")] = 1,
    scale_down_period: Annotated[int, typer.Option("--scale-down-period")] = 60,
    pod_start: Annotated[float, typer.Option("--pod-start", help="Seconds from scale-up to a ready pod (node, image, model load).")] = 90.0,
    time_scale: Annotated[float, typer.Option("--time-scale", help="Stretch the test's time axis (60: minutes become hours).")] = 1.0,
    rate_scale: Annotated[float, typer.Option("--rate-scale", help="Multiply the test's traffic.")] = 1.0,
    slo_seconds_per_image: Annotated[Optional[float], typer.Option("--slo-seconds-per-image")] = None,
    price_per_gpu_hour: Annotated[Optional[float], typer.Option("--price-per-gpu-hour")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replay a Locust history's arrivals through the HPA: replicas over time and minutes the SLO was missed."""
    from fashion_studio.settings import get_settings

    slo = slo_seconds_per_image if slo_seconds_per_image is not None else get_settings().slo_seconds_per_image
    try:
        load = read_locust_history(history, time_scale, rate_scale, tuple(name) if name else GENERATION_REQUESTS)
        service = ServiceModel(seconds_per_image, images_per_request, batch_size, pod_start, slo, parse_batch_speedup(batch_speedup))
    except FashionStudioError as exc:
        _fail(exc)
    hpa = HpaConfig(
        target_per_pod=target,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        sync_period_s=sync_period,
        tolerance=tolerance,
        scale_down_window_s=scale_down_window,
        scale_up_policies=(ScalingPolicy("Percent", scale_up_percent, scale_up_period), ScalingPolicy("Pods", scale_up_pods, scale_up_period)),
        scale_down_policies=(ScalingPolicy("Pods", scale_down_pods, scale_down_period),),
    )
    result = simulate_hpa(load, service, hpa)
    cost = result.replica_hours * price_per_gpu_hour if price_per_gpu_hour is not None else None
    summary = {
        "minutes_slo_missed": round(result.minutes_slo_missed, 2),
        "peak_replicas": result.peak_replicas,
        "replica_hours": round(result.replica_hours, 3),
        "images": round(result.images),
        "cost": cost,
        "cost_per_1000_images": 1000 * cost / result.images if cost is not None and result.images else None,
        "scale_events": [{"t": t, "from": a, "to": b} for t, a, b in result.scale_events],
    }
    if as_json:
        typer.echo(json.dumps({"summary": summary, "minutes": result.by_minute()}, indent=2))
        return
    typer.echo(f"{'minute':>6}{'img/s':>8}{'replicas':>9}{'ready':>7}{'max latency s':>15}{'s missed':>10}")
    for row in result.by_minute():
        typer.echo(
            f"{row['minute']:>6}{row['images_per_second']:>8.2f}{row['replicas']:>9}{row['ready']:>7}{row['max_latency_s']:>15.2f}{row['seconds_slo_missed']:>10g}"
        )
    typer.echo("scale events: " + ", ".join(f"t={t:g}s {a}->{b}" for t, a, b in result.scale_events))
    typer.echo(
        f"SLO ({slo:g} s per image, mean latency: backlog, batch wait and batch) missed for {summary['minutes_slo_missed']} minutes; "
        f"peak {result.peak_replicas} replicas; {summary['replica_hours']} replica-hours"
        + (f"; {_money(cost)} ({_money(summary['cost_per_1000_images'])} per 1,000 images)" if cost is not None else "")
    )


@plan_app.command("queue")
def queue_table(
    rates: Annotated[list[float], typer.Argument(help="Images/s arriving at one pod.")],
    seconds_per_image: Annotated[float, typer.Option("--seconds-per-image", help="One pod's seconds per image, one image alone.")] = 0.72,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Images per batch at most.")] = 8,
    batch_speedup: Annotated[
        str, typer.Option("--batch-speedup", help="Throughput at a batch / at batch 1, measured: e.g. 2:1.37,4:2.13,8:3.05. Default: no gain.")
    ] = "",
) -> None:
    """One pod's batching queue at each rate: utilization, mean wait, mean and p95 latency, images in progress."""
    try:
        queue = BatchingQueue(seconds_per_image, max_batch, parse_batch_speedup(batch_speedup))
    except FashionStudioError as exc:
        _fail(exc)
    typer.echo(
        f"one pod: {seconds_per_image:g} s per image alone, batches of up to {max_batch} taking {queue.batch_seconds(max_batch):.3f} s, "
        f"{queue.capacity:.2f} images/s with full batches"
    )
    typer.echo(f"{'img/s':>7}{'util':>7}{'wait s':>9}{'mean s':>9}{'p95 s':>9}{'in progress':>13}")
    for rate in rates:
        s = queue.at(rate)
        typer.echo(f"{rate:>7g}{s.utilization:>7.0%}{s.wait_s:>9.3f}{s.latency_s:>9.3f}{s.p95_s:>9.3f}{s.in_progress:>13.2f}")


@plan_app.command("example-history")
def example_history(out: Annotated[Path, typer.Argument(help="CSV file to write.")] = Path("example_stats_history.csv")) -> None:
    """Write the documented example Locust history (docs/capacity.md) for `plan simulate`."""
    write_locust_history(out, example_history_rows())
    typer.echo(f"wrote {out}")
