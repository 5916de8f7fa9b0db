"""Capacity planning for the GPU fleet, and a replay of load-test traffic through the HPA algorithm.

`plan` turns a traffic profile (requests/s by hour, images per request) and seconds per image per
accelerator type into the replicas, GPUs and cost per 1,000 images that meet the seconds-per-image
SLO. `simulate` replays a Locust `*_stats_history.csv` through the Kubernetes HPA algorithm (sync
period, tolerance, stabilization windows, scaling policies, pod start time) and reports replicas over
time and the minutes the SLO was missed. docs/capacity.md works an example of each by hand.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

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
    """One way to serve the model: seconds per image on one replica at the served batch size."""

    name: str
    seconds_per_image: float
    price_per_gpu_hour: float
    gpus_per_replica: int = 1
    model: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.seconds_per_image <= 0 or self.price_per_gpu_hour < 0 or self.gpus_per_replica < 1:
            raise ValueError(f"{self.name}: seconds_per_image > 0, price_per_gpu_hour >= 0 and gpus_per_replica >= 1 required")

    @property
    def images_per_second(self) -> float:
        """Throughput of one replica."""
        return 1.0 / self.seconds_per_image


# The documented example (docs/capacity.md): a weekday of catalog traffic, 2 images per request.
EXAMPLE_PROFILE = TrafficProfile(
    requests_per_second=(0.5,) * 8 + (2.0,) * 10 + (1.0,) * 6,
    images_per_request=2.0,
    name="example weekday: 0.5 req/s 00-08 h, 2 req/s 08-18 h, 1 req/s 18-24 h",
)
# Published figures (docs/capacity.md cites them); prices are example on-demand rates, not quotes.
EXAMPLE_ACCELERATORS = (
    Accelerator(
        name="H100-80GB",
        seconds_per_image=0.72,
        price_per_gpu_hour=4.00,
        model="FLUX.1-schnell 1024x1024, 4 steps, fp8 + torch.compile",
        source="Replicate, 'FLUX is fast and it's open source' (2024-10-10): 0.72 s median end to end",
    ),
    Accelerator(
        name="A100-80GB",
        seconds_per_image=2.54,
        price_per_gpu_hour=2.50,
        model="SDXL 1024x1024, 30 steps, bf16 + SDPA + torch.compile, batch 1",
        source="Hugging Face diffusers, 'Accelerate inference of text-to-image diffusion models': 2.54 s on an 80GB A100",
    ),
)


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
    """YAML/JSON {accelerators: [{name, seconds_per_image, price_per_gpu_hour, gpus_per_replica, model, source}]}."""
    data = _load_mapping(path)
    return tuple(Accelerator(**{k: v for k, v in entry.items() if k in Accelerator.__dataclass_fields__}) for entry in data["accelerators"])


def _load_mapping(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix.lower() == ".json":
        return json.loads(text)
    import yaml

    return yaml.safe_load(text)


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

    @property
    def peak_gpus(self) -> int:
        return self.peak_replicas * self.accelerator.gpus_per_replica


def plan_capacity(
    profile: TrafficProfile,
    accelerators: tuple[Accelerator, ...] | list[Accelerator],
    slo_seconds_per_image: float = 2.0,
    target_utilization: float = 0.75,
    min_replicas: int = 2,
) -> list[Plan]:
    """Replicas per hour = max(min_replicas, ceil(images/s x seconds per image / target utilization)).

    Replicas cannot make one image faster: an accelerator whose seconds per image exceeds the SLO target
    is infeasible at any scale. The target utilization leaves headroom for bursts within the hour and
    for the HPA's reaction time (pods take minutes to start on GPU nodes). Cost counts GPU-hours as
    autoscaled hour by hour, and, for comparison, a fleet fixed at the peak all day.
    """
    if not 0 < target_utilization <= 1:
        raise ValueError(f"target_utilization must be in (0, 1], got {target_utilization}")
    plans = []
    hours = len(profile.requests_per_second)
    demand = profile.images_per_second
    images_per_day = sum(demand) * 3600
    for accelerator in accelerators:
        if accelerator.seconds_per_image > slo_seconds_per_image:
            plans.append(Plan(accelerator, False, f"{accelerator.seconds_per_image:g} s per image > SLO {slo_seconds_per_image:g} s: no replica count fixes that"))
            continue
        replicas = [max(min_replicas, math.ceil(round(rate * accelerator.seconds_per_image / target_utilization, 9))) for rate in demand]
        gpu_hours = sum(replicas) * accelerator.gpus_per_replica
        cost = gpu_hours * accelerator.price_per_gpu_hour
        peak = max(replicas)
        fixed_cost = peak * hours * accelerator.gpus_per_replica * accelerator.price_per_gpu_hour
        busy = sum(rate * accelerator.seconds_per_image for rate in demand)
        plans.append(Plan(
            accelerator=accelerator, feasible=True, reason="",
            replicas_by_hour=replicas, peak_replicas=peak, gpu_hours_per_day=gpu_hours,
            images_per_day=images_per_day, cost_per_day=cost,
            cost_per_1000_images=1000 * cost / images_per_day if images_per_day else math.inf,
            fixed_cost_per_1000_images=1000 * fixed_cost / images_per_day if images_per_day else math.inf,
            mean_utilization=busy / sum(replicas),
        ))
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
    """How one replica turns traffic into the HPA's metric and into latency.

    A replica finishes 1 / seconds_per_image images per second. Requests in progress per pod follow
    Little's law for a batching server: a full batch of `batch_size` requests is in progress while the
    replica is busy, so at utilization u a pod holds u x batch_size requests, plus its share of the
    queue. An image's latency is its wait in the queue plus seconds_per_image; the SLO is missed while
    that exceeds the target.
    """

    seconds_per_image: float = 0.72
    images_per_request: float = 1.0
    batch_size: int = 8
    pod_start_s: float = 90.0
    slo_seconds_per_image: float = 2.0


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


def read_locust_history(path: Path, time_scale: float = 1.0, rate_scale: float = 1.0) -> list[tuple[float, float]]:
    """(seconds since start, requests/s) from Locust's `--csv` `*_stats_history.csv` (the Aggregated rows).

    The rate comes from the growth of "Total Request Count" between rows (Locust's own "Requests/s" is a
    moving average); `time_scale` stretches time (60: a 10-minute test replayed as 10 hours) and
    `rate_scale` multiplies the traffic (projecting a test onto production volume).
    """
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
    if len(rows) < 2:
        raise ValueError(f"{path}: needs at least two 'Aggregated' rows of a Locust *_stats_history.csv")
    start = float(rows[0]["Timestamp"])
    series = []
    for previous, row in zip(rows, rows[1:]):
        dt = float(row["Timestamp"]) - float(previous["Timestamp"])
        if dt <= 0:
            continue
        rate = (float(row["Total Request Count"]) - float(previous["Total Request Count"])) / dt
        if rate < 0:  # Locust's stats were reset mid-run
            rate = float(row["Requests/s"])
        series.append(((float(previous["Timestamp"]) - start) * time_scale, max(rate, 0.0) * rate_scale))
    return series


def simulate_hpa(load: list[tuple[float, float]], service: ServiceModel, hpa: HpaConfig, dt: float = 1.0, initial_replicas: int | None = None) -> Simulation:
    """Replay requests/s over time through the HPA algorithm of kube-controller-manager.

    Every `sync_period_s`: usage ratio = mean metric of pods that report / target; within the tolerance
    nothing changes; else desired = ceil(ratio x pods). Pods still starting report nothing: on a scale-up
    they count as 0 and on a scale-down as the target (the HPA's rule for missing metrics), and the
    decision is dropped if that flips its direction. Then the stabilization windows (highest
    recommendation of the scale-down window, lowest of the scale-up window), then the scaling policies
    (replicas added or removed within each policy's period), then min/max. New pods are ready after
    `pod_start_s`; removed pods go at once.
    """
    if not load:
        raise ValueError("no traffic to replay")
    replicas = max(hpa.min_replicas, min(hpa.max_replicas, initial_replicas or hpa.min_replicas))
    ready_at: list[float] = [0.0] * replicas  # the starting fleet is ready
    queue = 0.0  # images waiting
    history: deque[tuple[float, int]] = deque()  # (t, recommendation)
    events: list[tuple[float, int, int]] = []  # (t, change) for the policies; and the report
    report_events: list[tuple[float, int, int]] = []
    steps: list[Step] = []
    end = load[-1][0] + (load[-1][0] - load[-2][0] if len(load) > 1 else dt)
    times = [i * dt for i in range(int(math.ceil(end / dt)))]
    index = 0
    spi = service.seconds_per_image
    k = service.images_per_request
    for t in times:
        while index + 1 < len(load) and load[index + 1][0] <= t:
            index += 1
        demand = load[index][1] * k  # images/s
        ready = sum(1 for r in ready_at if r <= t)
        capacity = ready / spi
        # The queue over [t, t + dt): arrivals minus what the ready pods finish.
        served = min(demand * dt + queue, capacity * dt)
        queue = max(0.0, queue + demand * dt - capacity * dt)
        utilization = min(1.0, (served / dt) / capacity) if capacity else 0.0
        wait = queue / capacity if capacity else math.inf
        latency = wait + spi
        per_pod = (utilization * service.batch_size + (queue / k) / ready) if ready else math.inf
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
        steps.append(Step(t, demand, replicas, ready, per_pod, queue, latency, latency <= service.slo_seconds_per_image))
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
    """A Locust `*_stats_history.csv` (Aggregated rows): 2 req/s for 2 min, 12 req/s for 5 min, 2 req/s for 5 min."""
    rows, total, start = [], 0, 1_767_225_600  # 2026-01-01T00:00:00Z
    for second in range(12 * 60 + 1):
        rate = 12 if 120 <= second < 420 else 2
        rows.append({
            "Timestamp": start + second, "User Count": rate * 2, "Type": "", "Name": "Aggregated",
            "Requests/s": f"{rate:2f}", "Failures/s": "0.000000", "Total Request Count": total, "Total Failure Count": 0,
        })
        total += rate
    return rows


def write_locust_history(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", "50%", "66%", "75%", "80%", "90%", "95%",
               "98%", "99%", "99.9%", "99.99%", "100%", "Total Request Count", "Total Failure Count", "Total Median Response Time",
               "Total Average Response Time", "Total Min Response Time", "Total Max Response Time", "Total Average Content Size"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval="0")
        writer.writeheader()
        writer.writerows(rows)


# --- the CLI: `fashion-studio plan ...` ---------------------------------------------------------------

plan_app = typer.Typer(
    invoke_without_command=True,
    help="Capacity plan (replicas, GPUs, cost per 1,000 images) for a traffic profile; `simulate` replays a load test through the HPA.",
)


def _money(value: float) -> str:
    return "-" if not math.isfinite(value) else f"${value:,.2f}"


@plan_app.callback()
def plan(
    ctx: typer.Context,
    profile: Annotated[Optional[Path], typer.Option(help="Traffic profile: YAML/JSON {requests_per_second: [per hour], images_per_request} or CSV hour,requests_per_second. Default: the documented example.")] = None,
    accelerators: Annotated[Optional[Path], typer.Option(help="YAML/JSON {accelerators: [{name, seconds_per_image, price_per_gpu_hour, gpus_per_replica}]}. Default: the documented example.")] = None,
    images_per_request: Annotated[Optional[float], typer.Option("--images-per-request", help="Override the profile's images per request.")] = None,
    slo_seconds_per_image: Annotated[Optional[float], typer.Option("--slo-seconds-per-image", help="SLO target; default FASHION_SLO_SECONDS_PER_IMAGE.")] = None,
    utilization: Annotated[float, typer.Option(help="Target GPU utilization (headroom for bursts and scale-up time).")] = 0.75,
    min_replicas: Annotated[int, typer.Option("--min-replicas", help="Floor for availability (the PDB keeps one while a node drains).")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Replicas per hour, peak GPUs and cost per 1,000 images for each accelerator that can meet the SLO."""
    if ctx.invoked_subcommand is not None:
        return
    from fashion_studio.settings import get_settings

    traffic = load_profile(profile) if profile else EXAMPLE_PROFILE
    if images_per_request is not None:
        traffic = TrafficProfile(traffic.requests_per_second, images_per_request, traffic.name)
    options = load_accelerators(accelerators) if accelerators else EXAMPLE_ACCELERATORS
    slo = slo_seconds_per_image if slo_seconds_per_image is not None else get_settings().slo_seconds_per_image
    plans = plan_capacity(traffic, options, slo, utilization, min_replicas)
    if as_json:
        typer.echo(json.dumps([{**asdict(p), "peak_gpus": p.peak_gpus} for p in plans], indent=2, default=str))
        return
    typer.echo(f"profile: {traffic.name}; {traffic.images_per_request:g} images/request; SLO {slo:g} s/image; target utilization {utilization:.0%}")
    typer.echo(f"{'accelerator':<14}{'s/image':>8}{'peak':>6}{'GPUs':>6}{'GPU-h/day':>11}{'util':>7}{'$/day':>11}{'$/1k img':>10}{'fixed $/1k':>12}")
    for p in plans:
        a = p.accelerator
        if not p.feasible:
            typer.echo(f"{a.name:<14}{a.seconds_per_image:>8g}  infeasible: {p.reason}")
            continue
        typer.echo(f"{a.name:<14}{a.seconds_per_image:>8g}{p.peak_replicas:>6}{p.peak_gpus:>6}{p.gpu_hours_per_day:>11g}{p.mean_utilization:>7.0%}"
                   f"{_money(p.cost_per_day):>11}{_money(p.cost_per_1000_images):>10}{_money(p.fixed_cost_per_1000_images):>12}")
    for p in plans:
        if p.feasible:
            typer.echo(f"{p.accelerator.name} replicas by hour: {' '.join(map(str, p.replicas_by_hour))}")


@plan_app.command()
def simulate(
    history: Annotated[Path, typer.Argument(help="Locust `--csv` output: the *_stats_history.csv file.")],
    seconds_per_image: Annotated[float, typer.Option("--seconds-per-image", help="One replica's seconds per image at the served batch size.")] = 0.72,
    images_per_request: Annotated[float, typer.Option("--images-per-request")] = 1.0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="FASHION_BATCHING__MAX_BATCH_SIZE.")] = 8,
    target: Annotated[float, typer.Option(help="HPA target: requests in progress per pod.")] = HpaConfig.target_per_pod,
    min_replicas: Annotated[int, typer.Option("--min-replicas")] = HpaConfig.min_replicas,
    max_replicas: Annotated[int, typer.Option("--max-replicas")] = HpaConfig.max_replicas,
    sync_period: Annotated[int, typer.Option("--sync-period", help="--horizontal-pod-autoscaler-sync-period, seconds.")] = HpaConfig.sync_period_s,
    tolerance: Annotated[float, typer.Option(help="--horizontal-pod-autoscaler-tolerance.")] = HpaConfig.tolerance,
    scale_down_window: Annotated[int, typer.Option("--scale-down-window", help="behavior.scaleDown.stabilizationWindowSeconds.")] = HpaConfig.scale_down_window_s,
    scale_up_pods: Annotated[int, typer.Option("--scale-up-pods", help="scaleUp policy: at most this many pods added per period.")] = 4,
    scale_up_percent: Annotated[int, typer.Option("--scale-up-percent", help="scaleUp policy: at most this % added per period (the larger policy wins).")] = 100,
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
    """Replay a Locust history through the HPA: replicas over time and minutes the SLO was missed."""
    from fashion_studio.settings import get_settings

    slo = slo_seconds_per_image if slo_seconds_per_image is not None else get_settings().slo_seconds_per_image
    load = read_locust_history(history, time_scale, rate_scale)
    hpa = HpaConfig(
        target_per_pod=target, min_replicas=min_replicas, max_replicas=max_replicas, sync_period_s=sync_period, tolerance=tolerance,
        scale_down_window_s=scale_down_window,
        scale_up_policies=(ScalingPolicy("Percent", scale_up_percent, scale_up_period), ScalingPolicy("Pods", scale_up_pods, scale_up_period)),
        scale_down_policies=(ScalingPolicy("Pods", scale_down_pods, scale_down_period),),
    )
    service = ServiceModel(seconds_per_image, images_per_request, batch_size, pod_start, slo)
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
        typer.echo(f"{row['minute']:>6}{row['images_per_second']:>8.2f}{row['replicas']:>9}{row['ready']:>7}{row['max_latency_s']:>15.2f}{row['seconds_slo_missed']:>10g}")
    typer.echo("scale events: " + ", ".join(f"t={t:g}s {a}->{b}" for t, a, b in result.scale_events))
    typer.echo(f"SLO ({slo:g} s per image, queue included) missed for {summary['minutes_slo_missed']} minutes; "
               f"peak {result.peak_replicas} replicas; {summary['replica_hours']} replica-hours"
               + (f"; {_money(cost)} ({_money(summary['cost_per_1000_images'])} per 1,000 images)" if cost is not None else ""))


@plan_app.command("example-history")
def example_history(out: Annotated[Path, typer.Argument(help="CSV file to write.")] = Path("example_stats_history.csv")) -> None:
    """Write the documented example Locust history (docs/capacity.md) for `plan simulate`."""
    write_locust_history(out, example_history_rows())
    typer.echo(f"wrote {out}")
