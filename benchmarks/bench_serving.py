"""Served against in-process, doing the same work, in one run: a scaling curve, open-loop latency and cold start.

The work per image is the same on both sides: generate the deployment's default request (the
default models, size, steps and guidance), CLIP-score the image against its prompt, PNG-encode it.

- In-process: `Generator.generate` at batch 1, 2, 4 and 8, then `Scorer.score` and a PNG encode of
  each image, in the benchmark's own process; images/s.
- Cold start: `bentoml serve services.gateway:Studio`, as `make serve` starts it, until `/readyz`
  answers 200.
- Closed loop: 1, 2, 4, 8, 16 and 32 clients, each sending `/generate_image` (generate, score,
  PNG answer) back to back for `--seconds`. The gateway admits `--capacity` requests at once
  (`FASHION_BATCHING__MAX_CONCURRENCY`), queues as many again for a slot (`__MAX_QUEUED`,
  `__QUEUE_WAIT_S`) and sheds the rest with 429 + Retry-After, which a client honours before it
  tries again. Images/s counts answered images; p50/p95 are answered requests'
  latencies; the mean batch is images per denoiser call, from the generator's own histogram.
- Open loop: Poisson arrivals at 50, 70, 100 and 150% of the saturation rate (the best closed-loop
  images/s), for `--open-seconds` each, in `--open-rounds` rounds (every load in turn, new arrivals
  each round); latency of answered requests (medians over the rounds), and how many were shed.
- Queueing alone: what a step-level batcher with no overhead at all would answer at the same arrival
  rates (`fashion_studio.planning.BatchingQueue`, docs/capacity.md), from the in-process batch curve
  and from the served closed-loop curve, beside the measured p95.

In-process and closed-loop runs go in rounds, each configuration in turn, while the server idles
between its runs; the figures are medians over the rounds.

Writes docs/benchmarks.md and its raw figures docs/benchmarks.json, whole.

    python -m benchmarks.bench_serving [--seconds 16] [--rounds 3] [--open-seconds 30] [--open-rounds 3] [--capacity 8]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import Server  # noqa: E402

CLIENTS = (1, 2, 4, 8, 16, 32)
LOADS = (0.5, 0.7, 1.0, 1.5)
BATCHES = (1, 2, 4, 8)
PROMPTS = ("a red striped summer dress", "a navy wool coat", "a green plain skirt", "a white dotted blouse", "black checked trousers", "a yellow cap")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class InProcess:
    """Generate + CLIP score + PNG encode in this process, at a given batch size."""

    def __init__(self, settings: Any) -> None:
        from fashion_studio.generation import Generator
        from fashion_studio.scoring import Scorer

        self.settings = settings
        self.generator = Generator.load(settings)
        self.scorer = Scorer.load(settings)
        self.seed = 0

    def work(self, batch: int) -> None:
        from fashion_studio.generation import GenerationRequest

        settings = self.settings
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
        self.seed += batch
        requests = [
            GenerationRequest(
                prompt=p,
                seed=self.seed + i,
                steps=settings.default_steps,
                guidance=settings.default_guidance,
                width=settings.default_width,
                height=settings.default_height,
            )
            for i, p in enumerate(prompts)
        ]
        images = [im for result in self.generator.generate(requests) for im in result.images]
        self.scorer.score(images, prompts)
        for image in images:
            image.save(io.BytesIO(), format="PNG")

    def images_per_s(self, batch: int, seconds: float) -> float:
        """Calls at this batch size for at least `seconds` (and two calls): images per second."""
        start, images = time.perf_counter(), 0
        while images < 2 * batch or time.perf_counter() - start < seconds:
            self.work(batch)
            images += batch
        return images / (time.perf_counter() - start)


def histogram(url: str, name: str) -> tuple[float, float]:
    """(sum, count) of a histogram summed over every service's samples, from the gateway's /metrics."""
    total = count = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(f"{name}_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{name}_count"):
            count += float(line.rsplit(" ", 1)[1])
    return total, count


class Tally:
    """Answers of one run: latencies of 200s, and counts by status."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.lock = threading.Lock()

    def post(self, client: httpx.Client, url: str, seed: int) -> httpx.Response | None:
        body = {"prompt": PROMPTS[seed % len(PROMPTS)], "seed": seed}
        start = time.perf_counter()
        try:
            response = client.post(f"{url}/generate_image", json=body, timeout=300)
        except httpx.HTTPError:
            with self.lock:
                self.statuses[0] += 1  # no answer
            return None
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code == 200:
                self.latencies.append(time.perf_counter() - start)
        return response

    def summary(self, elapsed: float, batch: tuple[float, float]) -> dict[str, Any]:
        answered = self.statuses.get(200, 0)
        return {
            "images_per_s": answered / elapsed,
            "answered": answered,
            "shed_429": self.statuses.get(429, 0),
            "server_errors": sum(n for status, n in self.statuses.items() if status >= 500),
            "no_answer": self.statuses.get(0, 0),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "p50_s": percentile(self.latencies, 0.5),
            "p95_s": percentile(self.latencies, 0.95),
            "mean_batch": batch[0] / batch[1] if batch[1] else float("nan"),
            "seconds": elapsed,
        }


def closed_loop(url: str, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` clients, each sending its next request when the last one is answered (or, after a
    429, when its Retry-After has passed), for `seconds`."""
    tally = Tally()
    stop = time.perf_counter() + seconds
    before = histogram(url, "fashion_step_batch_images")

    def client(index: int) -> None:
        seed = index * 100_000
        with httpx.Client() as http:
            while time.perf_counter() < stop:
                seed += 1
                response = tally.post(http, url, seed)
                if response is not None and response.status_code in (429, 503):
                    time.sleep(min(float(response.headers.get("retry-after", "1")), max(0.0, stop - time.perf_counter())))

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    elapsed = time.perf_counter() - start
    after = histogram(url, "fashion_step_batch_images")
    return tally.summary(elapsed, (after[0] - before[0], after[1] - before[1]))


def open_loop(url: str, rate: float, seconds: float, seed: int) -> dict[str, Any]:
    """Poisson arrivals at `rate` requests/s for `seconds`, each sent once (a shed one is not retried)."""
    tally = Tally()
    rng = random.Random(seed)
    before = histogram(url, "fashion_step_batch_images")
    pool = ThreadPoolExecutor(256)
    local = threading.local()

    def send(index: int) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client()
        tally.post(local.client, url, 1_000_000 + index)

    start = time.perf_counter()
    at, index = 0.0, 0
    while True:
        at += rng.expovariate(rate)
        if at >= seconds:
            break
        delay = start + at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        pool.submit(send, index)
        index += 1
    pool.shutdown(wait=True)
    elapsed = time.perf_counter() - start
    after = histogram(url, "fashion_step_batch_images")
    return {"rate": rate, "sent": index, **tally.summary(elapsed, (after[0] - before[0], after[1] - before[1]))}


def serve(settings: Any, capacity: int, workdir: Path, **extra_env: str) -> tuple[Server, float]:
    env = {
        **extra_env,
        "FASHION_GENERATOR": settings.generator,
        "FASHION_TRANSLATOR": settings.translator,
        "FASHION_SCORER": settings.scorer,
        "FASHION_STORAGE_URL": str(workdir / "store"),
        "FASHION_BATCHING__MAX_CONCURRENCY": str(capacity),
    }
    start = time.perf_counter()
    server = Server("services.gateway:Studio", env, workdir / "server.log")
    try:
        server.wait_ready(timeout=300)
    except BaseException:
        server.stop()  # a server that never got ready is not left running
        raise
    return server, time.perf_counter() - start


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Cold start, then rounds: in each, every in-process batch size and every client count in turn,
    so that the machine's slow and fast moments fall on all of them alike; then the open loop."""
    from fashion_studio.settings import Settings

    settings = Settings()
    report: dict[str, Any] = {
        "command": "make bench-serving",
        "machine": {"cpus": os.cpu_count(), "arch": platform.machine()},
        "request": {
            "model": settings.generator,
            "width": settings.default_width,
            "height": settings.default_height,
            "steps": settings.default_steps,
            "guidance": settings.default_guidance,
            "scorer": settings.scorer,
            "generator_scores": settings.generator_scores,
        },
        "capacity": args.capacity,
        "queue": {"length": settings.batching.model_copy(update={"max_concurrency": args.capacity}).queue_length, "wait_s": settings.batching.queue_wait_s},
        "seconds": args.seconds,
        "rounds": args.rounds,
    }
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    server, cold = serve(settings, args.capacity, workdir)
    report["cold_start_s"] = cold
    try:
        local = InProcess(settings)
        for batch in BATCHES:
            local.work(batch)  # warm-up at each shape
        closed_loop(server.url, 1, 2.0)
        with httpx.Client() as http:  # the unloaded latency: one request at a time
            tally = Tally()
            for seed in range(9):
                tally.post(http, server.url, 50_000 + seed)
            report["unloaded_s"] = statistics.median(tally.latencies)
        inproc: dict[int, list[float]] = {b: [] for b in BATCHES}
        served: dict[int, list[dict[str, Any]]] = {c: [] for c in CLIENTS}
        for round_ in range(args.rounds):
            for batch in BATCHES:
                inproc[batch].append(local.images_per_s(batch, args.seconds / 2))
            for clients in CLIENTS:
                served[clients].append(closed_loop(server.url, clients, args.seconds))
            print(f"round {round_ + 1}/{args.rounds}: in-process b8 {inproc[8][-1]:.2f}, served c8 {served[8][-1]['images_per_s']:.2f} images/s", flush=True)
        del local
        report["in_process"] = {str(b): {"images_per_s": statistics.median(v), "runs": v} for b, v in inproc.items()}
        report["closed_loop"] = {str(c): median_run(runs) for c, runs in served.items()}
        saturation = max(r["images_per_s"] for r in report["closed_loop"].values())
        report["saturation_images_per_s"] = saturation
        report["open_seconds"], report["open_rounds"] = args.open_seconds, args.open_rounds
        arrivals: dict[float, list[dict[str, Any]]] = {load: [] for load in LOADS}
        for round_ in range(args.open_rounds):  # every load in turn, each round its own arrivals
            for load in LOADS:
                arrivals[load].append(open_loop(server.url, load * saturation, args.open_seconds, seed=1000 * round_ + int(load * 100)))
            print(f"open loop round {round_ + 1}/{args.open_rounds}: 70% p95 {arrivals[0.7][-1]['p95_s']:.3f} s", flush=True)
        report["open_loop"] = {
            f"{load:.0%}": {"rate": load * saturation, "sent": sum(r["sent"] for r in runs), **median_run(runs)} for load, runs in arrivals.items()
        }
    finally:
        server.stop()
    report["ratios"] = ratios(report)
    try:  # derived from the figures above; a curve it cannot model does not lose the run
        report["queueing"] = queueing(report)
    except (ArithmeticError, KeyError, ValueError) as exc:
        print(f"queueing model skipped: {exc!r}", flush=True)
    return report


def batch_queue(images_per_s: dict[int, float]) -> Any:
    """A step-level batcher with no overhead whose images/s at each batch size are these (batch 1
    among them); a measured speedup below the previous batch's (noise) counts as the previous one."""
    from fashion_studio.planning import BatchingQueue

    alone = images_per_s[1]
    points, previous = [], 1.0
    for batch in sorted(b for b in images_per_s if b > 1):
        previous = min(float(batch), max(previous, images_per_s[batch] / alone))
        points.append((batch, previous))
    return BatchingQueue(1 / alone, max_batch=max(images_per_s), batch_speedup=tuple(points))


def queueing(report: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """At each open-loop arrival rate, the p95 that Poisson arrivals alone cause in a step-level batcher
    with no overhead: on the in-process batch curve, and on the served closed-loop curve (c clients
    keep c images in the batch), each over that curve's own latency alone."""
    curves = {
        "in_process": {int(b): v["images_per_s"] for b, v in report["in_process"].items()},
        "served_curve": {int(c): v["images_per_s"] for c, v in report["closed_loop"].items() if int(c) <= report["capacity"]},
    }
    queues = {name: batch_queue(curve) for name, curve in curves.items()}
    table = {}
    for load, measured in report["open_loop"].items():
        row = {}
        for name, queue in queues.items():
            # Unbounded at or beyond the curve's capacity (null in the JSON); the saturation rate is one
            # curve's own full-batch rate, where rounding leaves a wait of 10^15 s rather than infinity.
            p95 = queue.at(measured["rate"]).p95_s if measured["rate"] < queue.capacity * (1 - 1e-6) else math.inf
            row[f"{name}_p95_s"], row[f"{name}_ratio"] = (p95, p95 / queue.batch_seconds(1)) if math.isfinite(p95) else (None, None)
        table[load] = row
    return table


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure, the median over the rounds; totals summed; every round kept."""
    merged: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in ("images_per_s", "p50_s", "p95_s", "mean_batch")}
    merged.update({k: sum(r[k] for r in runs) for k in ("answered", "shed_429", "server_errors", "no_answer")})
    merged["runs"] = runs
    return merged


def closed_loop_ratios(inproc: dict[int, float], served: dict[int, float]) -> dict[str, float]:
    """The targets' ratios of in-process images/s by batch and served images/s by client count."""
    return {
        "served8_over_inprocess8": served[8] / inproc[8],
        "served_scaling_8_over_1": served[8] / served[1],
        "inprocess_scaling_8_over_1": inproc[8] / inproc[1],
        "scaling_ratio": (served[8] / served[1]) / (inproc[8] / inproc[1]),
        "served16_over_served8": served[16] / served[8],
        "served32_over_served8": served[32] / served[8],
    }


def ratios(report: dict[str, Any]) -> dict[str, float]:
    """The ratios of the medians over the rounds, and the open loop's."""
    inproc = {int(b): v["images_per_s"] for b, v in report["in_process"].items()}
    served = {int(c): v["images_per_s"] for c, v in report["closed_loop"].items()}
    return {**closed_loop_ratios(inproc, served), "open70_p95_over_unloaded": report["open_loop"]["70%"]["p95_s"] / report["unloaded_s"]}


def round_ratios(report: dict[str, Any]) -> dict[str, list[float]]:
    """The closed-loop ratios round by round: the configurations of one round ran minutes apart at
    most, so the spread over the rounds is the machine's noise on each ratio."""
    inproc = {int(b): v["runs"] for b, v in report["in_process"].items()}
    served = {int(c): [run["images_per_s"] for run in v["runs"]] for c, v in report["closed_loop"].items()}
    rounds = range(min(len(runs) for runs in (*inproc.values(), *served.values())))
    per_round = [closed_loop_ratios({b: v[i] for b, v in inproc.items()}, {c: v[i] for c, v in served.items()}) for i in rounds]
    return {name: [r[name] for r in per_round] for name in per_round[0]} if per_round else {}


def spread(values: list[float]) -> str:
    return f" (rounds {min(values):.2f}-{max(values):.2f})" if len(values) > 1 else ""


def verdict(value: float, target: float, at_most: bool = False) -> str:
    ok = value <= target if at_most else value >= target
    shown = f"{value:.2f}" if float(f"{value:.2f}") != target else f"{value:.4f}"  # 0.7996 is not shown as 0.80 next to "misses"
    return f"**{shown}** ({'meets' if ok else 'misses'} {'<=' if at_most else '>='} {target:g})"


def open_spread(report: dict[str, Any]) -> str:
    runs = report["open_loop"]["70%"].get("runs", [])
    if len(runs) < 2:
        return " (one run)"
    per_round = [run["p95_s"] / report["unloaded_s"] for run in runs]
    return f" (median of {len(runs)} rounds; rounds {min(per_round):.2f}-{max(per_round):.2f})"


def scored_where(request: dict[str, Any]) -> str:
    if request.get("generator_scores"):
        return "the gateway and the generator's process, whose step scheduler also CLIP-scores each image between steps (`FASHION_GENERATOR_SCORES`)"
    return "the gateway, the generator's step scheduler and the scorer's batcher, each in its own process"


def open_rounds(report: dict[str, Any]) -> str:
    if report.get("open_rounds", 1) < 2:
        return ""
    return f"; {report['open_rounds']} rounds of {report['open_seconds']:g} s at each load, every load in turn: medians of the rounds, counts summed"


def overhead_free(report: dict[str, Any]) -> str:
    ratio = report.get("queueing", {}).get("70%", {}).get("in_process_ratio")
    return f"; a batcher with no overhead and this run's in-process batch gains: {ratio:.2f}" if ratio else ""


def measured_at(report: dict[str, Any], load: str) -> float:
    return report["open_loop"][load]["p95_s"] / report["unloaded_s"]


def seconds_cell(value: float | None) -> str:
    return "∞" if value is None else f"{value:.3f}"


def ratio_cell(value: float | None) -> str:
    return "∞" if value is None else f"{value:.2f}"


def queued(report: dict[str, Any]) -> str:
    queue = report.get("queue")
    return f", queues up to {queue['length']} more for at most {queue['wait_s']:g} s each," if queue else ""


def document(report: dict[str, Any]) -> str:
    request = report["request"]
    r = report["ratios"]
    rounds = round_ratios(report)
    lines = [
        "# Serving benchmark",
        "",
        f"Written by `{report['command']}` (`python -m benchmarks.bench_serving --seconds {report['seconds']:g} --rounds {report['rounds']} "
        f"--capacity {report['capacity']}`) in one run on {report['machine']['cpus']} CPU cores ({report['machine']['arch']}); "
        "raw figures in `docs/benchmarks.json`. The in-process and served configurations are measured in turns, "
        f"{report['rounds']} rounds of each, and the tables give medians over the rounds, so that the machine's slow and fast "
        "moments fall on all of them alike.",
        "",
        f"Work per image on both sides: generate `{request['model']}` at {request['width']}x{request['height']}, {request['steps']} steps, "
        f"guidance {request['guidance']:g} (the deployment's default request), CLIP-score it with `{request['scorer']}`, PNG-encode it. "
        f"Served: `/generate_image` through {scored_where(request)}; the gateway admits {report['capacity']} requests at once{queued(report)} and sheds the rest with 429.",
        "",
        f"- cold start, `bentoml serve` to `/readyz` 200: **{report['cold_start_s']:.1f} s** (target <= 20 s)",
        "- unloaded latency of one request: " + f"{report['unloaded_s']:.3f} s (median of 9)",
        "",
        "## In-process",
        "",
        "| batch | images/s (median) | min - max |",
        "|---|---|---|",
    ]
    for batch, v in report["in_process"].items():
        lines.append(f"| {batch} | {v['images_per_s']:.2f} | {min(v['runs']):.2f} - {max(v['runs']):.2f} |")
    lines += [
        "",
        f"## Served, closed loop ({report['seconds']:g} s per run; medians of the rounds, counts summed)",
        "",
        "| clients | images/s | p50 s | p95 s | images per denoiser call | answered | shed (429) | 5xx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for clients, v in report["closed_loop"].items():
        lines.append(
            f"| {clients} | {v['images_per_s']:.2f} | {v['p50_s']:.3f} | {v['p95_s']:.3f} | {v['mean_batch']:.2f} | "
            f"{v['answered']} | {v['shed_429']} | {v['server_errors']} |"
        )
    lines += [
        "",
        f"## Served, open loop (Poisson arrivals; saturation {report['saturation_images_per_s']:.2f} images/s, the best closed-loop row{open_rounds(report)})",
        "",
        "| load | arrivals/s | sent | answered | p50 s | p95 s | p95 / unloaded | shed (429) | 5xx |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for load, v in report["open_loop"].items():
        lines.append(
            f"| {load} | {v['rate']:.2f} | {v['sent']} | {v['answered']} | {v['p50_s']:.3f} | {v['p95_s']:.3f} | "
            f"{v['p95_s'] / report['unloaded_s']:.2f} | {v['shed_429']} | {v['server_errors']} |"
        )
    model = report.get("queueing")
    if model:
        lines += [
            "",
            "## Queueing alone",
            "",
            "What Poisson arrivals at the same rates cost a step-level batcher with no overhead at all (images join the running batch "
            f"at the next step, up to {report['capacity']}; `fashion_studio.planning.BatchingQueue`, checked against a discrete-event simulation in "
            "docs/capacity.md), from this run's own batch curves: the in-process one, and the served closed-loop one (c clients "
            "keep c images in the batch). Each ratio is that model's p95 over its own latency alone; ∞ where the rate is at or "
            "beyond the curve's full-batch throughput.",
            "",
            "| load | measured p95 / unloaded | model on the in-process curve | model on the served curve | measured p95 s | in-process model's p95 s |",
            "|---|---|---|---|---|---|",
        ]
        for load, row in model.items():
            lines.append(
                f"| {load} | {measured_at(report, load):.2f} | {ratio_cell(row['in_process_ratio'])} | {ratio_cell(row['served_curve_ratio'])} | "
                f"{report['open_loop'][load]['p95_s']:.3f} | {seconds_cell(row['in_process_p95_s'])} |"
            )
        lines += [
            "",
            "The model on the in-process curve is what the arrivals' bursts alone cost a server that has the generator's "
            "in-process batch gains and does no other work. The served curve is measured in closed loop, where each client's turn "
            "also holds the gateway's and the network's time, which the generator does not wait on when arrivals are independent: "
            "that column bounds the served path from the pessimistic side rather than measuring it. "
            f"At 70%, the measured p95 ratio is {measured_at(report, '70%') / model['70%']['in_process_ratio']:.2f}x the in-process model's, "
            f"and the measured p95 {report['open_loop']['70%']['p95_s'] / model['70%']['in_process_p95_s']:.2f}x the model's p95 in seconds: "
            "the ratios divide by different latencies alone (the served request's, median of 9, against in-process batch 1's)."
            if model["70%"]["in_process_ratio"]
            else "",
        ]
    errors = sum(v["server_errors"] + v["no_answer"] for part in ("closed_loop", "open_loop") for v in report[part].values())
    lines += [
        "",
        "## Against the targets",
        "",
        "Each ratio is of the medians over the rounds; in brackets, the same ratio in each round alone.",
        "",
        f"- served at 8 clients / in-process at batch 8: {verdict(r['served8_over_inprocess8'], 0.8)}{spread(rounds['served8_over_inprocess8'])}",
        f"- served 8 / 1 clients ({r['served_scaling_8_over_1']:.2f}x) over in-process batch 8 / 1 ({r['inprocess_scaling_8_over_1']:.2f}x): "
        f"{verdict(r['scaling_ratio'], 0.8)}{spread(rounds['scaling_ratio'])}",
        f"- served at 16 clients / 8 clients: {verdict(r['served16_over_served8'], 0.9)}{spread(rounds['served16_over_served8'])}; "
        f"at 32 / 8: {verdict(r['served32_over_served8'], 0.9)}{spread(rounds['served32_over_served8'])}",
        f"- open loop at 70% of saturation, p95 / unloaded latency: {verdict(r['open70_p95_over_unloaded'], 3, at_most=True)}{open_spread(report)}"
        + overhead_free(report),
        f"- cold start: {verdict(report['cold_start_s'], 20, at_most=True)} s",
        f"- server errors or unanswered requests over the whole run: **{errors}**",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=16.0, help="length of each closed-loop run (in-process: half of it)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every in-process and closed-loop configuration, in turns")
    parser.add_argument("--open-seconds", type=float, default=30.0, help="length of each open-loop run")
    parser.add_argument("--open-rounds", type=int, default=3, help="rounds of the open-loop runs, every load in turn")
    parser.add_argument("--capacity", type=int, default=8, help="requests the gateway admits at once")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--render", action="store_true", help="write --out again from the JSON beside it, measuring nothing")
    args = parser.parse_args(argv)
    if args.render:
        report = json.loads(args.out.with_suffix(".json").read_text())
        if "queueing" in report:  # derived from the raw figures beside it: recomputed, never measured again
            report["queueing"] = queueing(report)
            args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        args.out.write_text(document(report))
        return 0
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    text = document(report)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
