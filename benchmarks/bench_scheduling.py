"""Step-level scheduling against batch-at-a-time dispatch, on one generator, measured in one run.

Batch-at-a-time is the dispatch the generator service had: whatever is queued when the generator is
free forms one batch (up to `--max-batch` requests), its requests are grouped by shape, and each group
runs as one pipeline call to its end. Step-level is `fashion_studio.scheduling.StepScheduler`.

- latency of a short request (the deployment's default request) alone, and submitted just after a
  long one (the most expensive request the cost limits admit at native size);
- throughput (images/s) of a burst of mixed shapes, and of a burst of one shape, all submitted at once.

Medians over `--repeats`; the document goes to docs/scheduling.md, the raw figures to docs/scheduling.json.

    python -m benchmarks.bench_scheduling [--model DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import statistics
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fashion_studio.generation import GenerationRequest, Generator, group_by_shape  # noqa: E402
from fashion_studio.scheduling import CostLimits, StepScheduler  # noqa: E402
from fashion_studio.settings import Settings  # noqa: E402


class BatchAtATime:
    """The former dispatch: a batch runs to its end before the next one forms."""

    def __init__(self, generator: Generator, max_batch: int) -> None:
        self.generator = generator
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[GenerationRequest, Future]] = queue.Queue()
        threading.Thread(target=self._loop, daemon=True).start()

    def submit(self, request: GenerationRequest) -> Future:
        future: Future = Future()
        self._queue.put((request, future))
        return future

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get())
            requests = [request for request, _ in batch]
            for group in group_by_shape(requests):
                results = self.generator.generate([requests[i] for i in group])
                for index, result in zip(group, results):
                    batch[index][1].set_result(result)


def short_request(settings: Settings, seed: int) -> GenerationRequest:
    return GenerationRequest(
        prompt=f"a red striped summer dress {seed}",
        seed=seed,
        steps=settings.default_steps,
        guidance=settings.default_guidance,
        width=settings.default_width,
        height=settings.default_height,
    )


def long_request(settings: Settings) -> GenerationRequest:
    return GenerationRequest(
        prompt="a navy wool coat with checks",
        seed=99,
        steps=settings.limits.max_steps,
        guidance=settings.default_guidance,
        width=settings.default_width,
        height=settings.default_height,
        num_images=settings.limits.max_images_per_prompt,
    )


def timed(submit: Any, request: GenerationRequest) -> float:
    start = time.perf_counter()
    submit(request).result()
    return time.perf_counter() - start


def short_behind_long(submit: Any, settings: Settings, seed: int) -> dict[str, float]:
    start = time.perf_counter()
    long = submit(long_request(settings))
    short = submit(short_request(settings, seed))
    short.result()
    short_s = time.perf_counter() - start
    long.result()
    return {"short_s": short_s, "long_s": time.perf_counter() - start}


def mixed_burst(settings: Settings) -> list[GenerationRequest]:
    """Twelve requests of four shapes, arriving at once."""
    shapes = [
        (settings.default_width, settings.default_steps),
        (settings.default_width, 10),
        (settings.default_width // 2, settings.default_steps),
        (settings.default_width, 40),
    ]
    return [
        GenerationRequest(prompt=f"a green jacket {i}", seed=i, steps=steps, guidance=settings.default_guidance, width=size, height=size, num_images=1 + i % 2)
        for i, (size, steps) in enumerate(shapes * 3)
    ]


def throughput(submit: Any, requests: list[GenerationRequest]) -> float:
    start = time.perf_counter()
    futures = [submit(r) for r in requests]
    images = sum(len(f.result().images) for f in futures)
    return images / (time.perf_counter() - start)


def measure(generator: Generator, settings: Settings, repeats: int, max_batch: int) -> dict[str, Any]:
    """Each repeat measures both modes, one after the other, so that a neighbour's load falls on both."""
    steps = StepScheduler(generator, max_batch_images=max_batch)
    batches = BatchAtATime(generator, max_batch)
    modes = {"step-level": steps.submit, "batch-at-a-time": batches.submit}
    same_shape = [short_request(settings, 100 + i) for i in range(max_batch)]
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in modes}
    for submit in modes.values():
        submit(short_request(settings, 0)).result()  # warm-up
    for repeat in range(repeats):
        for name, submit in modes.items():
            behind = short_behind_long(submit, settings, repeat)
            figures = {
                "short_alone_s": timed(submit, short_request(settings, repeat)),
                "short_behind_long_s": behind["short_s"],
                "long_s": behind["long_s"],
                "mixed_images_per_s": throughput(submit, mixed_burst(settings)),
                "same_shape_images_per_s": throughput(submit, same_shape),
            }
            for key, value in figures.items():
                samples[name].setdefault(key, []).append(value)
    steps.close()
    return {name: {key: statistics.median(values) for key, values in figures.items()} for name, figures in samples.items()}


def write(figures: dict[str, Any], meta: dict[str, Any], out: Path) -> str:
    step, batch = figures["step-level"], figures["batch-at-a-time"]
    short, long = meta["short"], meta["long"]
    lines = [
        "# Step-level scheduling",
        "",
        f"Written by `{meta['command']}` in one run ({meta['model']}, {meta['cpus']} CPU cores, {meta['machine']}, "
        f"medians over {meta['repeats']} repeats); raw figures in `docs/scheduling.json`.",
        "",
        f"- short request: {short}",
        f"- long request: {long} (the most the cost limits admit at native size)",
        f"- mixed burst: 12 requests of 4 shapes (sizes, steps) at once; same-shape burst: {meta['max_batch']} short requests at once",
        "",
        "| | step-level | batch-at-a-time | step / batch |",
        "|---|---|---|---|",
    ]
    rows = [
        ("short request alone, s", "short_alone_s"),
        ("short request behind a long one, s", "short_behind_long_s"),
        ("long request, s", "long_s"),
        ("mixed burst, images/s", "mixed_images_per_s"),
        ("same-shape burst, images/s", "same_shape_images_per_s"),
    ]
    for label, key in rows:
        lines.append(f"| {label} | {step[key]:.2f} | {batch[key]:.2f} | {step[key] / batch[key]:.2f}x |")
    lines += [
        "",
        f"Behind a long request, a short one waits {step['short_behind_long_s'] / step['short_alone_s']:.1f}x its unloaded latency with "
        f"step-level scheduling and {batch['short_behind_long_s'] / batch['short_alone_s']:.1f}x with batch-at-a-time dispatch, where it "
        "waits for all of the long request's steps. Groups of different shapes take turns one UNet call each, so a short request "
        "is slowed by at most one step of every other group per step of its own, and requests of one shape share UNet calls "
        "whenever they overlap, not only when they arrive together.",
        "",
    ]
    document = "\n".join(lines)
    out.write_text(document)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "figures": figures}, indent=2) + "\n")
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="diffusers folder (default: the settings' generator, fashion-mini)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--out", default=str(ROOT / "docs" / "scheduling.md"))
    args = parser.parse_args(argv)

    settings = Settings(**({"generator": args.model} if args.model else {}))
    generator = Generator.load(settings)
    limits = CostLimits.for_native_size(settings.default_width, settings.default_height, settings)
    short, long = short_request(settings, 0), long_request(settings)
    limits.check(long)
    meta = {
        "command": " ".join(["python -m benchmarks.bench_scheduling", *(sys.argv[1:] if argv is None else argv)]),
        "model": generator.name,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "repeats": args.repeats,
        "max_batch": args.max_batch,
        "short": f"{short.width}x{short.height}, {short.steps} steps, 1 image, guidance {short.guidance:g}",
        "long": f"{long.width}x{long.height}, {long.steps} steps, {long.num_images} images, guidance {long.guidance:g}",
    }
    print(write(measure(generator, settings, args.repeats, args.max_batch), meta, Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
