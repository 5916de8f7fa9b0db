"""The capacity planner and the HPA replay, checked against examples worked by hand (docs/capacity.md)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fashion_studio import planning
from fashion_studio.planning import (
    EXAMPLE_ACCELERATORS,
    EXAMPLE_PROFILE,
    Accelerator,
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
# The documented simulation: the example history, 0.5 s per image, pods ready 60 s after scale-up,
# at most 10 replicas; every other knob is the generator HPA's (k8s/base/generator.yaml).
SIMULATE_ARGS = ["--seconds-per-image", "0.5", "--pod-start", "60", "--max-replicas", "10", "--price-per-gpu-hour", "4"]


def test_the_capacity_plan_matches_the_example_worked_by_hand():
    """H100-80GB at 0.72 s per image, 75% target utilization, at least 2 replicas, 2 images per request:
    00-08 h  0.5 req/s = 1 img/s: ceil(1 x 0.72 / 0.75) = ceil(0.96) = 1 -> the floor, 2 replicas
    08-18 h  2 req/s   = 4 img/s: ceil(4 x 0.72 / 0.75) = ceil(3.84) = 4 replicas
    18-24 h  1 req/s   = 2 img/s: ceil(2 x 0.72 / 0.75) = ceil(1.92) = 2 replicas
    GPU-hours = 8 x 2 + 10 x 4 + 6 x 2 = 68; at $4.00 = $272.00 a day.
    Images a day = 3600 x (8 x 1 + 10 x 4 + 6 x 2) = 216,000; $272 / 216 = $1.259 per 1,000 images.
    Fixed at the peak (4 x 24 = 96 GPU-hours, $384): $1.778 per 1,000. Busy GPU-hours 60 x 3600 x 0.72 /
    3600 = 43.2, so 43.2 / 68 = 63.5% utilization. The A100 figure (SDXL, 2.54 s) misses the 2 s target
    at any scale."""
    h100, a100 = plan_capacity(EXAMPLE_PROFILE, EXAMPLE_ACCELERATORS, slo_seconds_per_image=2.0, target_utilization=0.75, min_replicas=2)
    assert h100.feasible and h100.replicas_by_hour == [2] * 8 + [4] * 10 + [2] * 6
    assert (h100.peak_replicas, h100.peak_gpus, h100.gpu_hours_per_day) == (4, 4, 68)
    assert h100.images_per_day == 216_000
    assert h100.cost_per_day == pytest.approx(272.00)
    assert h100.cost_per_1000_images == pytest.approx(272 / 216)
    assert h100.fixed_cost_per_1000_images == pytest.approx(384 / 216)
    assert h100.mean_utilization == pytest.approx(43.2 / 68)
    assert not a100.feasible and "2.54 s per image > SLO 2 s" in a100.reason


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


def test_profiles_and_accelerators_load_from_files(tmp_path):
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump({
        "name": "weekday", "images_per_request": 2,
        "requests_per_second": list(EXAMPLE_PROFILE.requests_per_second),
    }))
    (tmp_path / "profile.csv").write_text("hour,requests_per_second\n" + "".join(f"{h},{r}\n" for h, r in enumerate(EXAMPLE_PROFILE.requests_per_second)))
    (tmp_path / "gpus.json").write_text(json.dumps({"accelerators": [
        {"name": a.name, "seconds_per_image": a.seconds_per_image, "price_per_gpu_hour": a.price_per_gpu_hour, "source": a.source}
        for a in EXAMPLE_ACCELERATORS
    ]}))
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
    """2 replicas of 2 img/s each (0.5 s per image); target 6 requests in progress per pod; a busy pod
    holds a batch of 8. Traffic: 2 req/s, then 12 req/s from t=120 s, then 2 req/s from t=420 s.

    t=0..119   4 img/s capacity, u=0.5: 4 per pod, ratio 0.67 -> ceil(1.33) = 2: no change.
    t=120  queue 8 (12 in, 4 out): 8 + 8/2 = 12 per pod, ratio 2 -> 4. Policies from 2: 100% -> 4,
           +4 pods -> 6, the larger wins: 2 -> 4 (ready at 180).
    t=135  queue 128; 2 pods report 8 + 64 = 72, the 2 starting count 0: (144 / 4) / 6 = 6 -> 24;
           2 were added in the last 60 s, so the period started at 2: limit 6: 4 -> 6 (ready at 195).
    t=150, 165  the limit is still 6 (4 added since t=90/105).
    t=180  2 pods ready (4 ready, 8 img/s): queue 484, 8 + 121 = 129 per pod; (129 x 4 / 6) / 6 =
           14.3 -> 86; added since t=120 (exclusive): 2, start 4: limit 8: 6 -> 8 (ready at 240).
    t=195  6 ready = 12 img/s, queue holds at 540: 98 per pod -> 98; start 6: limit 12, max 10: 8 -> 10.
    t=240  8 ready, the queue drains 4 img/s; t=255 10 ready, 8 img/s: 480 images gone by t=314.
    SLO: latency = queue / capacity + 0.5 s must stay <= 2 s, missed from t=120 (8 / 4 + 0.5 = 2.5)
           until t=310 (32 / 20 + 0.5 = 2.1); t=311 gives 24 / 20 + 0.5 = 1.7: 191 s = 3.18 min.
    Scale-down: the last recommendation above 10 is at t=300 (queue 112): it leaves the 300 s window
           at t=600: 10 -> 9 (1 pod per 60 s), and 9 -> 8 at t=660 (recommendation 8 until t=405).
    Replica-seconds: 2x120 + 4x15 + 6x45 + 8x15 + 10x405 + 9x60 + 8x60 = 5760 = 1.6 replica-hours.
    Images: 2x120 + 12x300 + 2x300 = 4440."""
    load, result = example_simulation(tmp_path)
    assert load[0] == (0.0, 2.0) and load[120] == (120.0, 12.0) and load[420] == (420.0, 2.0) and len(load) == 720
    assert result.scale_events == [(120, 2, 4), (135, 4, 6), (180, 6, 8), (195, 8, 10), (600, 10, 9), (660, 9, 8)]
    steps = {s.t: s for s in result.steps}
    assert (steps[120].queue_images, steps[120].metric_per_pod) == (8, 12)
    assert (steps[135].queue_images, steps[135].metric_per_pod, steps[135].ready) == (128, 72, 2)
    assert (steps[180].queue_images, steps[180].metric_per_pod) == (484, 129)
    assert (steps[195].queue_images, steps[195].metric_per_pod) == (540, 98)
    assert steps[300].queue_images == 112 and steps[314].queue_images == 0
    assert not steps[310].slo_met and steps[311].slo_met and not steps[120].slo_met and steps[119].slo_met
    assert result.minutes_slo_missed == pytest.approx(191 / 60)
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


def test_locust_history_rates_come_from_the_request_counts(tmp_path):
    rows = [
        {"Timestamp": 100, "Name": "Aggregated", "Requests/s": "0", "Total Request Count": 0},
        {"Timestamp": 100, "Name": "/generate", "Requests/s": "99", "Total Request Count": 0},
        {"Timestamp": 102, "Name": "Aggregated", "Requests/s": "1.5", "Total Request Count": 10},
        {"Timestamp": 103, "Name": "Aggregated", "Requests/s": "3.0", "Total Request Count": 16},
    ]
    path = tmp_path / "run_stats_history.csv"
    planning.write_locust_history(path, rows)
    assert read_locust_history(path) == [(0.0, 5.0), (2.0, 6.0)]
    assert read_locust_history(path, time_scale=60, rate_scale=10) == [(0.0, 50.0), (120.0, 60.0)]


def run(*args: str):
    result = CliRunner().invoke(plan_app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_the_cli_and_the_docs_show_the_same_results(tmp_path):
    plan_output = run()
    assert "H100-80GB" in plan_output and "$1.26" in plan_output and "$1.78" in plan_output and "infeasible" in plan_output
    plan_json = json.loads(run("--json"))
    assert plan_json[0]["cost_per_1000_images"] == pytest.approx(272 / 216) and plan_json[0]["peak_gpus"] == 4
    history = tmp_path / "example_stats_history.csv"
    run("example-history", str(history))
    simulate_output = run("simulate", str(history), *SIMULATE_ARGS)
    assert "missed for 3.18 minutes; peak 10 replicas; 1.6 replica-hours; $6.40" in simulate_output
    summary = json.loads(run("simulate", str(history), *SIMULATE_ARGS, "--json"))["summary"]
    assert summary["minutes_slo_missed"] == 3.18 and summary["peak_replicas"] == 10
    # docs/capacity.md quotes both outputs verbatim: a change in either shows here.
    doc = DOC.read_text()
    for output in (plan_output, simulate_output):
        for line in output.strip().splitlines():
            assert line.rstrip() in doc, f"docs/capacity.md lacks the line {line!r}"
    assert " ".join(SIMULATE_ARGS) in doc
    assert re.search(r"fashion-studio plan simulate \S+ " + re.escape(" ".join(SIMULATE_ARGS)), doc)
