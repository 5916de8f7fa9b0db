"""Served vs in-process throughput of the generator, measured side by side in one run.

In-process: the pipeline called directly at batch sizes 1..8 (images/s, best batch size).
Served: `bentoml serve services.gateway:Studio` on 127.0.0.1, `/generate_image` from 1, 4 and 8
concurrent clients (images/s, p50 and p95 latency, mean pipeline batch size from /metrics).
Medians over repeats; the table goes to stdout and to docs/benchmarks.md.

    python -m benchmarks.bench_serving [--model DIR] [--size 64] [--steps 4] [--requests 48]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import Server  # noqa: E402


def in_process(model: str, size: int, steps: int, repeats: int) -> dict[int, float]:
    from fashion_studio.generation import Generator, GenerationRequest
    from fashion_studio.settings import Settings

    generator = Generator.load(Settings(generator=model))
    rates = {}
    for batch in (1, 2, 4, 8):
        requests = [GenerationRequest(prompt=f"a red dress {i}", seed=i, steps=steps, guidance=0.0, width=size, height=size) for i in range(batch)]
        generator.generate(requests)  # warm-up at this shape
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            generator.generate(requests)
            samples.append(batch / (time.perf_counter() - start))
        rates[batch] = statistics.median(samples)
    return rates


def batch_metric(url: str) -> tuple[float, float]:
    total = count = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith('fashion_batch_size_sum{method="generate"}'):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith('fashion_batch_size_count{method="generate"}'):
            count = float(line.rsplit(" ", 1)[1])
    return total, count


def served(url: str, clients: int, requests: int, size: int, steps: int) -> dict[str, float]:
    def one(i: int) -> float:
        start = time.perf_counter()
        response = httpx.post(
            f"{url}/generate_image",
            json={"prompt": f"a red dress {i}", "seed": i, "steps": steps, "guidance": 0.0, "width": size, "height": size},
            timeout=600,
        )
        response.raise_for_status()
        return time.perf_counter() - start

    one(10_000)  # warm-up
    before = batch_metric(url)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        latencies = sorted(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - start
    after = batch_metric(url)
    calls = after[1] - before[1]
    return {
        "images_per_s": requests / elapsed,
        "p50_s": statistics.median(latencies),
        "p95_s": latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))],
        "mean_batch": (after[0] - before[0]) / calls if calls else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / "tiny" / "sd"))
    parser.add_argument("--translator", default=str(ROOT / "models" / "tiny" / "marian"))
    parser.add_argument("--scorer", default=str(ROOT / "models" / "tiny" / "clip"))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)

    rates = in_process(args.model, args.size, args.steps, args.repeats)
    best_batch = max(rates, key=rates.get)
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    env = {
        "FASHION_GENERATOR": args.model,
        "FASHION_TRANSLATOR": args.translator,
        "FASHION_SCORER": args.scorer,
        "FASHION_STORAGE_URL": str(workdir / "store"),
        "FASHION_BATCHING__MAX_BATCH_SIZE": "8",
        "FASHION_DEFAULT_STEPS": str(args.steps),  # the warm-up's shape
        "FASHION_DEFAULT_GUIDANCE": "0",
    }
    server = Server("services.gateway:Studio", env, workdir / "server.log")
    results = {}
    try:
        server.wait_ready()
        for clients in (1, 4, 8):
            results[clients] = served(server.url, clients, args.requests, args.size, args.steps)
    finally:
        server.stop()

    lines = [
        f"### Serving benchmark ({args.size}x{args.size}, {args.steps} steps, {Path(args.model).name}, {os.cpu_count()} CPU cores, {platform.machine()})",
        "",
        "`make bench-serving` (`python -m benchmarks.bench_serving`); medians over repeats, one run.",
        "",
        "| mode | clients | images/s | p50 s | p95 s | mean batch |",
        "|---|---|---|---|---|---|",
    ]
    for batch, rate in rates.items():
        lines.append(f"| in-process, batch {batch} | - | {rate:.2f} | | | {batch} |")
    for clients, r in results.items():
        lines.append(f"| served /generate_image | {clients} | {r['images_per_s']:.2f} | {r['p50_s']:.3f} | {r['p95_s']:.3f} | {r['mean_batch']:.2f} |")
    best = rates[best_batch]
    ratio_inproc = results[8]["images_per_s"] / best
    ratio_one = results[8]["images_per_s"] / results[1]["images_per_s"]
    lines += [
        "",
        f"- served at 8 clients / in-process at its best batch ({best_batch}): **{ratio_inproc:.2f}x** (target >= 0.8x)",
        f"- served at 8 clients / served at 1 client: **{ratio_one:.2f}x** (target >= 2x)",
        "",
        "The served path also CLIP-scores every image (a second model service) and moves each PNG through two HTTP hops.",
    ]
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = out.read_text() if out.exists() else "# Benchmarks\n"
    marker = "### Serving benchmark"
    head = existing.split(marker)[0].rstrip() + "\n\n"
    tail = ""
    if marker in existing:
        rest = existing.split(marker, 1)[1]
        tail = rest[rest.find("\n### ") :] if "\n### " in rest else ""
    out.write_text(head + table + "\n" + tail)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
