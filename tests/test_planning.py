"""The capacity planner and the HPA replay, checked against examples worked by hand (docs/capacity.md)."""

from __future__ import annotations

import csv
import json
import math
import random
import re
import subprocess
import sys
import textwrap
from collections import deque
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fashion_studio import planning
from fashion_studio.errors import InvalidInputError
from fashion_studio.planning import (
    EXAMPLE_ACCELERATORS,
    EXAMPLE_PROFILE,
    MEASURED_BATCH_SPEEDUP,
    Accelerator,
    BatchingQueue,
    HpaConfig,
    ScalingPolicy,
    ServiceModel,
    TrafficProfile,
    plan_app,
    plan_capacity,
    read_locust_history,
    simulate_hpa,
)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "capacity.md"
GPU_OVERLAY = ROOT / "k8s" / "overlays" / "gpu"
# The documented simulation: the example history, 0.5 s per image, pods ready 60 s after scale-up,
# at most 10 replicas; every other knob is the generator HPA's (k8s/base/generator.yaml).
SIMULATE_ARGS = ["--seconds-per-image", "0.5", "--pod-start", "60", "--max-replicas", "10", "--price-per-gpu-hour", "4"]
# The documented queue table: a fashion-mini pod as measured in-process (docs/benchmarks.md: 4.49 images/s
# alone, so 0.2227 s per image, and the measured gains of batches of 2, 4 and 8); the p95 target example.
QUEUE_ARGS = ["1", "4", "8", "12", "13", "14", "--seconds-per-image", "0.2227", "--batch-speedup", "2:1.37,4:2.13,8:3.05"]
P95_ARGS = ["--p95-target", "4"]


def test_the_capacity_plan_matches_the_example_worked_by_hand():
    """H100-80GB at 0.72 s per image, 75% target utilization, at least 2 pods, 2 images per request, no
    gain from batching (so a pod's full-batch throughput is 1 / 0.72 = 1.389 images/s):
    00-08 h  0.5 req/s = 1 img/s: ceil(1 x 0.72 / 0.75) = ceil(0.96) = 1 -> the floor, 2 pods
    08-18 h  2 req/s   = 4 img/s: ceil(4 x 0.72 / 0.75) = ceil(3.84) = 4 pods
    18-24 h  1 req/s   = 2 img/s: ceil(2 x 0.72 / 0.75) = ceil(1.92) = 2 pods
    GPU-hours = 8 x 2 + 10 x 4 + 6 x 2 = 68; at $4.00 = $272.00 a day.
    Images a day = 3600 x (8 x 1 + 10 x 4 + 6 x 2) = 216,000; $272 / 216 = $1.259 per 1,000 images.
    Fixed at the peak (4 x 24 = 96 GPU-hours, $384): $1.778 per 1,000. Busy GPU-hours 60 x 3600 x 0.72 /
    3600 = 43.2, so 43.2 / 68 = 63.5% utilization. The A100 figure (SDXL, 2.54 s) misses the 2 s target
    at any scale.
    The queue: with a constant departure rate mu = 1.389/s the birth-death chain is M/M/1's, pi_n =
    (1 - rho) rho^n, and fixed steps halve its wait (Allen-Cunneen, (1 + 0) / 2). By day each pod takes
    1 img/s, rho = 0.72: an image finds the batch of 8 full with probability rho^8 = 0.0722; its wait
    for a place 0.5 x rho^8 / ((1 - rho) mu) = 0.5 x 0.0722 / 0.389 = 0.093 s; mean latency M/M/1's
    1 / (mu - lambda) = 2.571 s less the other half of that wait = 2.479 s; p95: a full batch takes
    8 x 0.72 = 5.76 s after an exponential wait at rate 2 x 0.389, so p95 = 5.76 + ln(0.0722 / 0.05) /
    0.778 = 6.23 s. At night 0.5 img/s per pod, rho = 0.36: an image joins n others with probability
    0.64 x 0.36^n and spends (n + 1) x 0.72 s: P(> 1.44 s) = 0.36^2 = 0.13, P(> 2.16 s) = 0.36^3 = 0.047,
    so p95 = 2.16 s."""
    h100, a100 = plan_capacity(EXAMPLE_PROFILE, EXAMPLE_ACCELERATORS, slo_seconds_per_image=2.0, target_utilization=0.75, min_replicas=2)
    assert h100.feasible and h100.replicas_by_hour == [2] * 8 + [4] * 10 + [2] * 6
    assert (h100.peak_replicas, h100.peak_gpus, h100.gpu_hours_per_day) == (4, 4, 68)
    assert h100.images_per_day == 216_000
    assert h100.cost_per_day == pytest.approx(272.00)
    assert h100.cost_per_1000_images == pytest.approx(272 / 216)
    assert h100.fixed_cost_per_1000_images == pytest.approx(384 / 216)
    assert h100.mean_utilization == pytest.approx(43.2 / 68)
    assert not a100.feasible and "2.54 s per image > SLO 2 s" in a100.reason
    mu, rho = 1 / 0.72, 0.72
    day, night = 9, 0
    wait = 0.5 * rho**8 / ((1 - rho) * mu)
    assert h100.wait_by_hour[day] == pytest.approx(wait)
    assert h100.latency_by_hour[day] == pytest.approx(1 / (mu - 1) - wait)
    assert h100.p95_by_hour[day] == pytest.approx(8 * 0.72 + math.log(rho**8 / 0.05) / (2 * (mu - 1)), rel=1e-6)
    assert h100.p95_by_hour[night] == pytest.approx(3 * 0.72, rel=1e-6)
    assert (round(h100.worst_wait_s, 2), round(h100.worst_p95_s, 2)) == (0.09, 6.23)


def test_the_plan_counts_gpus_per_replica_and_a_looser_slo():
    wide = Accelerator("2xA100", seconds_per_image=1.27, price_per_gpu_hour=2.5, gpus_per_replica=2)
    (plan,) = plan_capacity(TrafficProfile((10.0,), 1.0), [wide], slo_seconds_per_image=2.0, target_utilization=0.5, min_replicas=1)
    # 10 img/s x 1.27 s / 0.5 = 25.4 -> 26 replicas of 2 GPUs for the one hour.
    assert (plan.peak_replicas, plan.peak_gpus, plan.gpu_hours_per_day) == (26, 52, 52)
    assert plan.cost_per_1000_images == pytest.approx(1000 * 52 * 2.5 / 36_000)
    (relaxed,) = plan_capacity(EXAMPLE_PROFILE, EXAMPLE_ACCELERATORS[1:], slo_seconds_per_image=3.0)
    assert relaxed.feasible and relaxed.peak_replicas == math.ceil(4 * 2.54 / 0.75)
    with pytest.raises(ValueError, match="requests_per_second must be >= 0"):
        TrafficProfile((1.0, -1.0))


# --- the batching queue, against a discrete-event simulation ---------------------------------------


def simulate_pod(queue: BatchingQueue, rate: float, arrivals: int = 20_000, steps: int = 20, seed: int = 0) -> list[float]:
    """One pod that batches step by step, event by event, as the generator's step scheduler does:
    Poisson arrivals; each image needs `steps` denoising steps; one step of a batch of b images takes
    batch_seconds(b) / steps; between steps finished images leave and waiting ones join, first come
    first served, up to max_batch. Each image's latency, arrival to done, the first tenth left out."""
    rng = random.Random(seed)
    clock, times = 0.0, []
    for _ in range(arrivals):
        clock += rng.expovariate(rate)
        times.append(clock)
    waiting: deque[float] = deque()
    running: list[list[float]] = []  # [steps left, arrival]
    latencies: list[float] = []
    now, i = 0.0, 0
    while i < len(times) or waiting or running:
        if not running and not waiting:
            now = max(now, times[i])
        while i < len(times) and times[i] <= now:
            waiting.append(times[i])
            i += 1
        while waiting and len(running) < queue.max_batch:
            running.append([steps, waiting.popleft()])
        now += queue.batch_seconds(len(running)) / steps
        for item in running:
            item[0] -= 1
        latencies += [now - arrived for left, arrived in running if left == 0]
        running = [item for item in running if item[0] > 0]
    return latencies[arrivals // 10 :]


def mean_and_p95(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return sum(ordered) / len(ordered), ordered[int(0.95 * len(ordered))]


@pytest.mark.parametrize(
    ("speedup", "max_batch"),
    [
        (MEASURED_BATCH_SPEEDUP, 8),  # the generator's batch of 8, fashion-mini's measured gains
        ((), 8),  # no gain from batching: the images of a batch share the pod
        (MEASURED_BATCH_SPEEDUP, 2),
        ((), 1),  # no batching: M/D/1, where the formula is exact (Pollaczek-Khinchine)
    ],
)
def test_the_batching_queue_formula_holds_against_a_discrete_event_simulation(speedup, max_batch):
    """From 30% to 85% utilization the formula's mean latency is within 5% of the simulation's and its
    p95 within -5% .. +12%; the plain birth-death result (exponential work) would overstate both."""
    queue = BatchingQueue(0.5, max_batch, speedup)
    plain = BatchingQueue(0.5, max_batch, speedup, work_scv=1.0)
    simulated_means = []
    for utilization in (0.3, 0.6, 0.85):
        rate = utilization * queue.capacity
        mean, p95 = mean_and_p95(simulate_pod(queue, rate))
        state = queue.at(rate)
        assert state.latency_s == pytest.approx(mean, rel=0.05), (utilization, state.latency_s, mean)
        assert 0.95 * p95 <= state.p95_s <= 1.12 * p95, (utilization, state.p95_s, p95)
        simulated_means.append(mean)
    assert simulated_means == sorted(simulated_means)  # the simulation too: more load, longer latency
    assert plain.at(0.85 * queue.capacity).latency_s > 1.1 * simulated_means[-1]


def test_waits_grow_with_load_and_without_bound_as_utilization_nears_one():
    queue = BatchingQueue(0.5, 8, MEASURED_BATCH_SPEEDUP)
    utilizations = (0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999)
    states = [queue.at(u * queue.capacity) for u in utilizations]
    for lighter, heavier in zip(states, states[1:]):
        assert heavier.wait_s > lighter.wait_s and heavier.latency_s > lighter.latency_s
        assert heavier.p95_s >= lighter.p95_s and heavier.in_progress > lighter.in_progress and heavier.p_wait > lighter.p_wait
    # Near capacity the wait grows as 1 / (1 - utilization): ten times closer, about ten times longer.
    assert 8 < states[-1].wait_s / states[-2].wait_s < 11
    assert states[-1].wait_s > 50 * queue.batch_seconds(8)  # a minute and more, for batches of 1.3 s
    for beyond in (queue.capacity, 2 * queue.capacity):
        state = queue.at(beyond)
        assert math.isinf(state.wait_s) and math.isinf(state.latency_s) and math.isinf(state.p95_s)
    idle = queue.at(0.0)
    assert idle.wait_s == 0 and idle.latency_s == idle.p95_s == queue.batch_seconds(1) == 0.5
    # The HPA's metric follows Little's law: images in progress = rate x mean latency.
    assert states[3].in_progress == pytest.approx(states[3].rate * states[3].latency_s)


def test_a_larger_batch_buys_throughput_with_each_images_time_in_the_batch():
    """Batches of 2, 4, 8 at fashion-mini's measured gains: each step up carries more images per pod,
    and each image spends longer in a full batch; at the same (light) utilization the larger batch's
    images take longer, in the formula and in the simulation alike."""
    queues = [BatchingQueue(0.5, batch, MEASURED_BATCH_SPEEDUP) for batch in (1, 2, 4, 8)]
    capacities = [q.capacity for q in queues]
    full = [q.batch_seconds(q.max_batch) for q in queues]
    assert capacities == sorted(set(capacities)) and capacities[-1] == pytest.approx(3.05 / 0.5)
    assert full == sorted(set(full)) and full[-1] == pytest.approx(8 * 0.5 / 3.05)
    beyond_one = 1.5 * capacities[0]  # what a pod without batching cannot carry at all
    assert math.isinf(queues[0].at(beyond_one).latency_s) and math.isfinite(queues[3].at(beyond_one).latency_s)
    light = [q.at(0.2 * q.capacity) for q in queues[1:]]
    assert [s.latency_s for s in light] == sorted(s.latency_s for s in light)
    assert [s.p95_s for s in light] == sorted(s.p95_s for s in light)
    small, large = (mean_and_p95(simulate_pod(q, 0.2 * q.capacity))[0] for q in (queues[1], queues[3]))
    assert large > small


def test_batch_gains_are_checked_and_read_from_files(tmp_path):
    with pytest.raises(InvalidInputError, match="batch_speedup"):
        BatchingQueue(0.5, 8, ((2, 2.5),))  # two images cannot go 2.5 times as fast as one
    with pytest.raises(InvalidInputError, match="batch_speedup"):
        BatchingQueue(0.5, 8, ((2, 1.5), (4, 1.2)))
    queue = BatchingQueue(0.5, 8, MEASURED_BATCH_SPEEDUP)
    assert queue.speedup(3) == pytest.approx((1.37 + 2.13) / 2) and queue.speedup(16) == 3.05
    assert BatchingQueue(0.5, 4, MEASURED_BATCH_SPEEDUP).capacity == pytest.approx(2.13 / 0.5)
    (tmp_path / "gpus.yaml").write_text(
        yaml.safe_dump(
            {
                "accelerators": [
                    {"name": "measured", "seconds_per_image": 0.5, "price_per_gpu_hour": 1, "pod": "triton", "batch_speedup": {2: 1.37, 4: 2.13, 8: 3.05}},
                ]
            }
        )
    )
    (accelerator,) = planning.load_accelerators(tmp_path / "gpus.yaml")
    assert accelerator.batch_speedup == MEASURED_BATCH_SPEEDUP[1:] and accelerator.queue(8).capacity == pytest.approx(6.1)
    assert planning.parse_batch_speedup("2:1.37,4:2.13,8:3.05") == MEASURED_BATCH_SPEEDUP[1:]


def test_a_p95_target_adds_pods_until_each_hour_meets_it():
    (plain,) = plan_capacity(EXAMPLE_PROFILE, EXAMPLE_ACCELERATORS[:1])
    (held,) = plan_capacity(EXAMPLE_PROFILE, EXAMPLE_ACCELERATORS[:1], p95_target_s=4.0)
    assert held.replicas_by_hour == [2] * 8 + [6] * 10 + [3] * 6 and plain.replicas_by_hour == [2] * 8 + [4] * 10 + [2] * 6
    assert max(held.p95_by_hour) <= 4.0 < max(plain.p95_by_hour)
    queue = EXAMPLE_ACCELERATORS[0].queue(8)
    assert queue.at(4 / 5).p95_s > 4.0 >= queue.at(4 / 6).p95_s  # by day 5 pods miss it, 6 meet it
    assert queue.at(2 / 2).p95_s > 4.0 >= queue.at(2 / 3).p95_s  # in the evening 2 miss it, 3 meet it
    assert held.gpu_hours_per_day == 8 * 2 + 10 * 6 + 6 * 3
    (impossible,) = plan_capacity(EXAMPLE_PROFILE, EXAMPLE_ACCELERATORS[:1], p95_target_s=0.5)
    assert not impossible.feasible and "0.72 s, one image alone" in impossible.reason


# --- where the GPUs are ------------------------------------------------------------------------------


def rendered(overlay: Path, tmp_path: Path) -> Path:
    kubectl = Path(sys.executable).with_name("kubectl")
    result = subprocess.run([str(kubectl), "kustomize", str(overlay)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    path = tmp_path / f"{overlay.name}.yaml"
    path.write_text(result.stdout)
    return path


def test_the_plan_counts_the_gpus_of_the_pods_that_hold_them(tmp_path):
    """In the gpu overlay Triton's pods hold the GPUs (one each) and the generator's hold none: the plan
    counts Triton pods, and its GPUs follow what the manifests ask for."""
    placement = planning.load_placement(GPU_OVERLAY)  # the kustomize folder, rendered by kubectl
    assert (placement.deployment, placement.gpus_per_pod, placement.source) == ("triton", 1, str(GPU_OVERLAY))
    assert {"generator", "studio", "translator", "scorer"} <= set(placement.without_gpus)
    assert placement.apart == (("editor", 1), ("inpainter", 1), ("segmenter", 1))  # their GPUs serve edits, inpainting and masks, not generation
    assert all((a.pod, a.gpus_per_replica) == ("triton", 1) for a in EXAMPLE_ACCELERATORS)  # the example's figures agree
    h100, _ = plan_capacity(EXAMPLE_PROFILE, EXAMPLE_ACCELERATORS, placement=placement)
    assert (h100.accelerator.pod, h100.peak_replicas, h100.peak_gpus) == ("triton", 4, 4)
    # Two GPUs per Triton pod in the manifests: the same pods hold twice the GPUs and GPU-hours.
    docs = list(yaml.safe_load_all(rendered(GPU_OVERLAY, tmp_path).read_text()))
    for doc in docs:
        if doc and doc["kind"] == "Deployment" and doc["metadata"]["name"] == "triton":
            for section in ("requests", "limits"):
                doc["spec"]["template"]["spec"]["containers"][0]["resources"][section][planning.GPU_RESOURCE] = "2"
    doubled_file = tmp_path / "two-gpus.yaml"
    doubled_file.write_text(yaml.safe_dump_all(docs))
    doubled = planning.load_placement(doubled_file)
    two, _ = plan_capacity(EXAMPLE_PROFILE, EXAMPLE_ACCELERATORS, placement=doubled)
    assert (doubled.gpus_per_pod, two.peak_replicas, two.peak_gpus, two.gpu_hours_per_day) == (2, 4, 8, 136)
    assert two.cost_per_day == pytest.approx(2 * h100.cost_per_day)
    with pytest.raises(InvalidInputError, match="nvidia.com/gpu"):
        planning.load_placement(rendered(ROOT / "k8s" / "overlays" / "cpu", tmp_path))
    output = run("--overlay", str(doubled_file))
    assert f"GPU pods: triton, 2 GPU each, read from {doubled_file}; generator, " in output
    assert re.search(r"H100-80GB\s+0\.72\s+4\s+8\s+136\s", output) and "H100-80GB triton pods by hour" in output
    failed = CliRunner().invoke(plan_app, ["--overlay", str(tmp_path / "cpu.yaml")])
    assert failed.exit_code == 2 and "nvidia.com/gpu" in failed.output


def test_profiles_and_accelerators_load_from_files(tmp_path):
    (tmp_path / "profile.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "weekday",
                "images_per_request": 2,
                "requests_per_second": list(EXAMPLE_PROFILE.requests_per_second),
            }
        )
    )
    (tmp_path / "profile.csv").write_text("hour,requests_per_second\n" + "".join(f"{h},{r}\n" for h, r in enumerate(EXAMPLE_PROFILE.requests_per_second)))
    (tmp_path / "gpus.json").write_text(
        json.dumps(
            {
                "accelerators": [
                    {"name": a.name, "seconds_per_image": a.seconds_per_image, "price_per_gpu_hour": a.price_per_gpu_hour, "source": a.source}
                    for a in EXAMPLE_ACCELERATORS
                ]
            }
        )
    )
    from_yaml = planning.load_profile(tmp_path / "profile.yaml")
    assert from_yaml.images_per_second == EXAMPLE_PROFILE.images_per_second
    from_csv = planning.load_profile(tmp_path / "profile.csv")
    assert from_csv.requests_per_second == EXAMPLE_PROFILE.requests_per_second and from_csv.images_per_request == 1
    assert [a.seconds_per_image for a in planning.load_accelerators(tmp_path / "gpus.json")] == [0.72, 2.54]


def example_simulation(tmp_path: Path):
    history = tmp_path / "example_stats_history.csv"
    planning.write_locust_history(history, planning.example_history_rows())
    load = read_locust_history(history)
    service = ServiceModel(seconds_per_image=0.5, images_per_request=1, batch_size=8, pod_start_s=60, slo_seconds_per_image=2.0)
    return load, simulate_hpa(load, service, HpaConfig(max_replicas=10))


def test_the_hpa_replay_matches_the_example_worked_by_hand(tmp_path):
    """2 pods of 2 img/s each (0.5 s per image, no gain from batching, batches of up to 8); target 6
    requests in progress per pod. Arrivals: 2 req/s, then 12 req/s from t=120 s, then 2 req/s from
    t=420 s (Locust answered each a second after it arrived).

    t=0..119   1 img/s per pod, rho = 0.5; with a constant departure rate the queue is M/M/1's, its
           wait halved for fixed steps: latency 1 / (2 - 1) - 0.5 x 0.5^8 / (0.5 x 2) = 0.998 s, in
           progress 1 x 0.998 per pod, ratio 0.17 -> ceil(0.33) = 1 -> the floor, 2.
    t=120  backlog 8 (12 in, 4 out); the pods run full batches: 8 + 8/2 = 12 per pod, ratio 2 -> 4.
           Policies from 2: 100% -> 4, +4 pods -> 6, the larger wins: 2 -> 4 (ready at 180).
    t=135  backlog 128; 2 pods report 8 + 64 = 72, the 2 starting count 0: (144 / 4) / 6 = 6 -> 24;
           2 were added in the last 60 s, so the period started at 2: limit 6: 4 -> 6 (ready at 195).
    t=150, 165  the limit is still 6 (4 added since t=90/105).
    t=180  2 pods ready (4 ready, 8 img/s): backlog 484, 8 + 121 = 129 per pod; (129 x 4 / 6) / 6 =
           14.3 -> 86; added since t=120 (exclusive): 2, start 4: limit 8: 6 -> 8 (ready at 240).
    t=195  6 ready = 12 img/s, the backlog holds at 540: 98 per pod -> 98; start 6: limit 12, max 10: 8 -> 10.
    t=240  8 ready, the backlog drains 4 img/s; t=255 10 ready, 8 img/s: 480 images gone by t=314.
    SLO: the mean latency must stay <= 2 s. With a backlog, a full batch's 8 x 0.5 = 4 s plus the
           backlog's wait: missed from t=120 (8 / 4 + 4 = 6 s) through t=314, the second the last 8
           images and 12 new ones fill the 20 img/s of the pods; from t=315 each pod takes 1.2 img/s,
           rho = 0.6, latency 1 / 0.8 - 0.5 x 0.6^8 / 0.8 = 1.24 s: 195 s = 3.25 min.
    Scale-down: the last recommendation above 10 is at t=300 (backlog 112): it leaves the 300 s window
           at t=600: 10 -> 9 (1 pod per 60 s), and 9 -> 8 at t=660 (1.49 in progress per pod from t=315
           recommends 3, 0.11 from t=420 the floor).
    Replica-seconds: 2x120 + 4x15 + 6x45 + 8x15 + 10x405 + 9x60 + 8x60 = 5760 = 1.6 replica-hours.
    Images: 2x120 + 12x300 + 2x300 = 4440."""
    load, result = example_simulation(tmp_path)
    assert load[0] == (0.0, 2.0) and load[120] == (120.0, 12.0) and load[420] == (420.0, 2.0) and len(load) == 720
    assert result.scale_events == [(120, 2, 4), (135, 4, 6), (180, 6, 8), (195, 8, 10), (600, 10, 9), (660, 9, 8)]
    steps = {s.t: s for s in result.steps}
    assert steps[0].metric_per_pod == steps[0].latency_s == pytest.approx(1 - 0.5 * 0.5**8 / (0.5 * 2))
    assert (steps[120].queue_images, steps[120].metric_per_pod, steps[120].latency_s) == (8, 12, 6)
    assert (steps[135].queue_images, steps[135].metric_per_pod, steps[135].ready) == (128, 72, 2)
    assert (steps[180].queue_images, steps[180].metric_per_pod) == (484, 129)
    assert (steps[195].queue_images, steps[195].metric_per_pod) == (540, 98)
    assert steps[300].queue_images == 112 and steps[314].queue_images == 0
    assert steps[315].latency_s == pytest.approx(1 / 0.8 - 0.5 * 0.6**8 / 0.8) and steps[315].metric_per_pod == pytest.approx(1.2 * steps[315].latency_s)
    assert not steps[314].slo_met and steps[315].slo_met and not steps[120].slo_met and steps[119].slo_met
    assert result.minutes_slo_missed == pytest.approx(195 / 60)
    assert result.peak_replicas == 10
    assert result.replica_hours == pytest.approx(1.6)
    assert result.images == pytest.approx(4440)
    assert [row["replicas"] for row in result.by_minute()] == [2, 2, 6, 10, 10, 10, 10, 10, 10, 10, 9, 8]


def test_the_hpa_rules_follow_kube_controller_manager():
    hpa = HpaConfig(target_per_pod=10, min_replicas=1, max_replicas=100)
    desired = planning._desired_replicas
    assert desired(4, 4, 10.9, hpa) == 4  # within the 0.1 tolerance
    assert desired(4, 4, 11.1, hpa) == 5  # ceil(1.11 x 4)
    assert desired(4, 4, 2.0, hpa) == 1
    # Pods still starting report nothing: 0 on a scale-up, the target on a scale-down.
    assert desired(4, 2, 30.0, hpa) == 6  # (60 + 0) / 4 / 10 = 1.5 -> 6
    assert desired(4, 2, 12.0, hpa) == 4  # (24 + 0) / 4 / 10 = 0.6 would scale down: direction flips, keep
    assert desired(4, 2, 5.0, hpa) == 3  # (10 + 20) / 4 / 10 = 0.75 -> ceil(3.0)
    assert desired(4, 2, 5.0, HpaConfig(target_per_pod=10, tolerance=0.3)) == 4  # 0.75 within 0.3
    # Policies: the period starts before the changes made within it; Percent rounds up on the way up
    # and down on the way down; selectPolicy Max takes the larger change.
    limit = planning._limit
    assert limit(100, 2, 50, [], hpa) == 6  # max(100% of 2 = 4, 2 + 4 = 6)
    assert limit(100, 6, 50, [(60, 4)], hpa) == 6  # 4 added in (40, 100]: start 2, limit 6
    assert limit(121, 6, 50, [(60, 4)], hpa) == 12  # the event left the period: start 6, 100% -> 12
    down = HpaConfig(min_replicas=1, scale_down_policies=(ScalingPolicy("Percent", 50, 60), ScalingPolicy("Pods", 1, 60)))
    assert limit(100, 5, 1, [], down) == 2  # Max: the larger change, int(5 x 0.5) = 2 beats 5 - 1 = 4
    assert limit(100, 5, 1, [], HpaConfig(min_replicas=3)) == 4
    # Stabilization: the highest recommendation of the scale-down window holds the scale.
    from collections import deque

    history = deque([(0.0, 9), (200.0, 3)])
    assert planning._stabilize(299.0, 9, 2, history, HpaConfig()) == 9
    assert planning._stabilize(300.0, 9, 2, deque([(0.0, 9), (200.0, 3)]), HpaConfig()) == 3


def test_the_simulator_defaults_are_the_generator_hpa():
    docs = list(yaml.safe_load_all((ROOT / "k8s" / "base" / "generator.yaml").read_text()))
    (hpa,) = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    spec, config = hpa["spec"], HpaConfig()
    assert float(spec["metrics"][0]["pods"]["target"]["averageValue"]) == config.target_per_pod
    assert (spec["minReplicas"], spec["maxReplicas"]) == (config.min_replicas, config.max_replicas)
    up, down = spec["behavior"]["scaleUp"], spec["behavior"]["scaleDown"]
    assert (up["stabilizationWindowSeconds"], down["stabilizationWindowSeconds"]) == (config.scale_up_window_s, config.scale_down_window_s)
    assert {(p["type"], p["value"], p["periodSeconds"]) for p in up["policies"]} == {(p.kind, p.value, p.period_s) for p in config.scale_up_policies}
    assert {(p["type"], p["value"], p["periodSeconds"]) for p in down["policies"]} == {(p.kind, p.value, p.period_s) for p in config.scale_down_policies}
    assert (up["selectPolicy"], down["selectPolicy"]) == (config.scale_up_select, config.scale_down_select)


LOCUST_WRITER = textwrap.dedent("""
    # Answers fed to Locust's own statistics and CSV writer, a row a second, as `locust --csv PREFIX
    # --csv-full-history` writes them.
    import json, sys
    from locust.env import Environment
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

    plan = json.load(open(sys.argv[1]))
    env = Environment()
    writer = StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, sys.argv[2], full_history=True)
    writer.stats_history_csv_writer.writerow(writer.stats_history_csv_columns)
    answers = {}
    for second, method, name, milliseconds in plan["answers"]:
        answers.setdefault(second, []).append((method, name, milliseconds))
    for second in range(plan["seconds"] + 1):
        if second == plan["reset_at"]:
            env.stats.reset_all()  # as --reset-stats does once the users are spawned
        for method, name, milliseconds in answers.get(second, []):
            env.stats.log_request(method, name, milliseconds, 0)
        writer._stats_history_data_rows(writer.stats_history_csv_writer, plan["start"] + second + 0.5)
    writer.close_files()
""")


def test_arrivals_are_rebuilt_from_the_history_locust_writes(tmp_path):
    """/generate requests arrive at 2/s, 10/s from t=60 s and 2/s from t=120 s at a server that answers
    5/s first come, first served; Locust counts each when its answer comes, so its counts grow at 5/s
    while 10/s arrive, and answers go on at 5/s after the arrivals have dropped back to 2/s. A health
    probe (6/s), translations, shed answers and the locustfile's SLO entries share the Aggregated row,
    and the statistics are reset at t=30 s. The replay must see the arrivals, 2, 10 and 2 per second."""
    arrivals = [i / 2 for i in range(120)] + [60 + i / 10 for i in range(600)] + [120 + i / 2 for i in range(360)]
    answers, free_at = [], 0.0
    for arrived in arrivals:  # first come, first served, 0.2 s each
        free_at = max(free_at, arrived) + 0.2
        second = math.ceil(free_at)  # counted in the row of the second it was answered in
        answers += [[second, "POST", "/generate", 1000 * (free_at - arrived)], [second, "SLO", "seconds per image", 1000 * (free_at - arrived)]]
    for second in range(1, 301):
        answers += [[second, "GET", "/readyz", 5]] * 6 + [[second, "POST", "/translate", 50]]
        if 60 < second <= 120:
            answers += [[second, "POST", "/generate [shed 429]", 10]] * 3
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({"start": 1_767_225_600, "seconds": 300, "reset_at": 30, "answers": answers}))
    result = subprocess.run([sys.executable, "-c", LOCUST_WRITER, str(plan_file), str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    history = tmp_path / "run_stats_history.csv"

    load = dict(read_locust_history(history))

    def mean_rate(lo: int, hi: int) -> float:
        return sum(load[float(t)] for t in range(lo, hi)) / (hi - lo)

    assert mean_rate(5, 55) == pytest.approx(2, rel=0.03)
    assert mean_rate(65, 115) == pytest.approx(10, rel=0.03)
    assert mean_rate(125, 280) == pytest.approx(2, rel=0.03)
    assert sum(load.values()) == pytest.approx(len(arrivals), rel=0.01)  # the reset at 30 s loses nothing: rows are differenced
    # What Locust's own counts say over the same seconds: answers at 5/s, and far more in the Aggregated row.
    with history.open(newline="") as f:
        rows = [r for r in csv.DictReader(f)]

    def growth(name: str, lo: int, hi: int) -> float:
        counts = {int(r["Timestamp"]) - 1_767_225_600: int(r["Total Request Count"]) for r in rows if r["Name"] == name}
        return (counts[hi] - counts[lo]) / (hi - lo)

    assert growth("/generate", 65, 115) == pytest.approx(5, rel=0.03)
    assert growth("/generate", 130, 200) == pytest.approx(5, rel=0.03)  # still answering the backlog
    assert growth("Aggregated", 65, 115) == pytest.approx(5 + 5 + 6 + 1 + 3, rel=0.03)


def test_history_rows_are_read_name_by_name_and_checked(tmp_path):
    """Every request answered exactly 2 s after it arrived: the arrivals come back second by second."""
    arrivals = [1, 3, 3, 0, 5, 2, 2, 4]
    rows, answered = [], 0
    for second in range(len(arrivals) + 3):
        answered += arrivals[second - 3] if second >= 3 else 0  # answered in (second - 1, second]: arrived in (second - 3, second - 2]
        rows.append(
            {"Timestamp": 100 + second, "Name": "/generate_image", "Total Request Count": answered, "Total Average Response Time": 2000.0 if answered else 0}
        )
        rows.append({"Timestamp": 100 + second, "Name": "Aggregated", "Total Request Count": answered + 10 * second, "Total Average Response Time": 1})
        if second == 4:  # a second row in the same second (a slow writer): the later counts hold
            rows.insert(-2, {"Timestamp": 104, "Name": "/generate_image", "Total Request Count": answered - 1, "Total Average Response Time": 2000.0})
    path = tmp_path / "run_stats_history.csv"
    planning.write_locust_history(path, rows)
    assert read_locust_history(path) == [(float(t), float(n)) for t, n in enumerate(arrivals)]
    # A name Locust lists only from its first answer on: 4 /catalog requests answered in (105, 106] after 2 s.
    rows += [{"Timestamp": 100 + second, "Name": "/catalog", "Total Request Count": 4, "Total Average Response Time": 2000.0} for second in range(6, 11)]
    planning.write_locust_history(path, rows)
    assert read_locust_history(path) == [(float(t), float(n + (4 if t == 3 else 0))) for t, n in enumerate(arrivals)]
    assert read_locust_history(path, time_scale=60, rate_scale=10)[:2] == [(0.0, 10.0), (60.0, 30.0)]
    assert read_locust_history(path, names=("Aggregated",))[0] == (0.0, pytest.approx(10, abs=0.1))  # the probes too, when asked for by name
    only_totals = tmp_path / "totals_stats_history.csv"
    planning.write_locust_history(only_totals, [r for r in rows if r["Name"] == "Aggregated"])
    with pytest.raises(InvalidInputError, match="--csv-full-history"):
        read_locust_history(only_totals)


def run(*args: str):
    result = CliRunner().invoke(plan_app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_the_cli_and_the_docs_show_the_same_results(tmp_path):
    plan_output = run()
    assert "H100-80GB" in plan_output and "$1.26" in plan_output and "$1.78" in plan_output and "infeasible" in plan_output
    assert "GPU pods: triton, 1 GPU each" in plan_output and "6.23" in plan_output
    plan_json = json.loads(run("--json"))
    assert plan_json[0]["cost_per_1000_images"] == pytest.approx(272 / 216) and plan_json[0]["peak_gpus"] == 4
    assert plan_json[0]["worst_p95_s"] == pytest.approx(6.2328, abs=1e-3) and len(plan_json[0]["p95_by_hour"]) == 24
    held_output = run(*P95_ARGS)
    assert "triton pods by hour: " + " ".join(["2"] * 8 + ["6"] * 10 + ["3"] * 6) in held_output
    queue_output = run("queue", *QUEUE_ARGS)
    assert "13.70 images/s with full batches" in queue_output
    history = tmp_path / "example_stats_history.csv"
    run("example-history", str(history))
    simulate_output = run("simulate", str(history), *SIMULATE_ARGS)
    assert "missed for 3.25 minutes; peak 10 replicas; 1.6 replica-hours; $6.40" in simulate_output
    summary = json.loads(run("simulate", str(history), *SIMULATE_ARGS, "--json"))["summary"]
    assert summary["minutes_slo_missed"] == 3.25 and summary["peak_replicas"] == 10
    # docs/capacity.md quotes every output verbatim: a change in either shows here.
    doc = DOC.read_text()
    for output in (plan_output, held_output, queue_output, simulate_output):
        for line in output.strip().splitlines():
            assert line.rstrip() in doc, f"docs/capacity.md lacks the line {line!r}"
    assert " ".join(SIMULATE_ARGS) in doc
    assert re.search(r"fashion-studio plan simulate \S+ " + re.escape(" ".join(SIMULATE_ARGS)), doc)
    assert f"fashion-studio plan {' '.join(P95_ARGS)}" in doc and f"fashion-studio plan queue {' '.join(QUEUE_ARGS)}" in doc
