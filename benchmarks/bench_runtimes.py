"""ONNX Runtime vs PyTorch eager per component, and images/s of the PyTorch, ONNX Runtime and Triton runtimes.

One run on this machine, on the small models with the production architectures: the ratios mean
something here, the absolute numbers only for this CPU. Prints a markdown table and writes it to --out.

    python benchmarks/bench_runtimes.py --models models/tiny --out docs/benchmarks-runtimes.md [--repeats 15] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

COMPONENTS = {"sd": ["text_encoder", "unet", "vae_decoder", "vae_encoder"], "clip": ["text", "vision"], "marian": ["encoder"]}


def paired_seconds(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each function, measured in turns (a, b, a, b, ...) so that a slow moment of
    the machine falls on both alike; `warmup` calls each first."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def spread(samples: list[float]) -> str:
    """Median with the interquartile range, in milliseconds."""
    q1, median, q3 = statistics.quantiles(samples, n=4) if len(samples) > 1 else (samples[0],) * 3
    return f"{median * 1e3:.2f} ({q1 * 1e3:.2f}-{q3 * 1e3:.2f})"


def pin_threads(threads: int) -> None:
    """The same intra-op threads for PyTorch and ONNX Runtime, and no inter-op parallelism."""
    import torch

    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Spinning threads would keep a core busy after each run and slow the PyTorch run measured next.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def bench_components(models: Path, onnx_root: Path, repeats: int, threads: int) -> list[dict]:
    import torch

    from export.onnx_export import export_model
    from export.specs import BATCH, specs_for
    from export.wrappers import reference

    rows = []
    for family, names in COMPONENTS.items():
        out = export_model(models / family, onnx_root / family).out_dir
        cache: dict = {}
        for spec in specs_for(models / family):
            if spec.name not in names:
                continue
            session = ort_session(out / spec.name / "model.onnx", threads)
            module = reference(spec, models / family, cache)
            for batch in (1, 8):
                arrays = spec.random_inputs(spec.sizes("opt", **{BATCH: batch}), seed=batch)
                tensors = [torch.from_numpy(arrays[n]) for n in spec.input_names]

                def run_torch(module: Any = module, tensors: list = tensors) -> object:
                    with torch.inference_mode():
                        return module(*tensors)

                times = paired_seconds({"torch": run_torch, "ort": lambda session=session, arrays=arrays: session.run(None, arrays)}, repeats)
                shape = "x".join(str(d) for d in arrays[spec.input_names[0]].shape)
                row = {"component": spec.triton_name, "batch": batch, "input": shape, "torch_s": times["torch"], "ort_s": times["ort"]}
                rows.append(row)
                print(f"  {spec.triton_name:<18} batch {batch}: torch {spread(times['torch'])} ms  onnxruntime {spread(times['ort'])} ms", flush=True)
    return rows


def bench_pipelines(models: Path, onnx_root: Path, repeats: int, steps: int, size: int, threads: int) -> list[dict]:
    """PyTorch and ONNX Runtime in turns in this process; then Triton, with its server running (its
    processes would otherwise share the cores with the in-process runs)."""
    from export.triton_repo import TritonOptions, write_repository
    from export.tritonserver import TritonServer, triton_env
    from fashion_studio.generation import GenerationRequest, Generator
    from fashion_studio.settings import Settings

    base = Settings(generator=str(models / "sd"), onnx_dir=onnx_root, onnx_cache_dir=onnx_root, torch_threads=threads)

    def batches(generator: Generator) -> dict[int, Callable[[], object]]:
        def call(batch: int) -> Callable[[], object]:
            requests = [GenerationRequest(prompt=f"a red dress, look {i}", seed=i, steps=steps, width=size, height=size) for i in range(batch)]
            return lambda: generator.generate(requests)

        return {batch: call(batch) for batch in (1, 8)}

    rows = []

    def record(runtime: str, batch: int, samples: list[float]) -> None:
        rows.append({"runtime": runtime, "batch": batch, "seconds": samples, "images_per_s": batch / statistics.median(samples)})
        print(f"  sd pipeline {runtime:<7} batch {batch}: {spread(samples)} ms per call", flush=True)

    in_process = {runtime: batches(Generator.load(base.model_copy(update={"runtime": runtime}))) for runtime in ("torch", "onnx")}
    for batch in (1, 8):
        times = paired_seconds({runtime: calls[batch] for runtime, calls in in_process.items()}, repeats)
        for runtime, samples in times.items():
            record(runtime, batch, samples)
    del in_process
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "model_repository"
        write_repository([onnx_root / "sd"], repo, "cpu", TritonOptions())
        with TritonServer(repo, env=triton_env()) as server:
            calls = batches(Generator.load(base.model_copy(update={"runtime": "triton", "triton_url": server.grpc_url})))
            for batch, samples in paired_seconds(calls, repeats).items():
                record("triton", batch, samples)
    order = {"torch": 0, "onnx": 1, "triton": 2}
    return sorted(rows, key=lambda r: (order[r["runtime"]], r["batch"]))


def markdown(components: list[dict], pipelines: list[dict], steps: int, size: int, repeats: int, threads: int) -> str:
    cores = os.cpu_count()
    lines = [
        "# Runtime benchmarks: PyTorch eager, ONNX Runtime, Triton (CPU)",
        "",
        f"Written by `make bench-runtimes` in one run: {platform.processor() or platform.machine()}, {cores} cores, no GPU; the small "
        f"models with the production architectures (`fashion_studio.tiny`), fp32; raw figures in `docs/benchmarks-runtimes.json`. "
        f"Both runtimes on {threads} intra-op thread(s), ONNX Runtime without spinning threads; each figure is the median of {repeats} "
        "calls after 2 warm-up calls, with the interquartile range in brackets, and the runtimes compared are called in turns, "
        "so that a slow moment of the machine falls on both. Absolute numbers hold for this CPU only; compare ratios.",
        "",
        "## Components (inputs at the profile's optimum: 64x64 images, 77 text tokens)",
        "",
        "| component | batch | first input | PyTorch eager ms | ONNX Runtime ms | speed-up |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in components:
        ratio = statistics.median(r["torch_s"]) / statistics.median(r["ort_s"])
        lines.append(f"| {r['component']} | {r['batch']} | {r['input']} | {spread(r['torch_s'])} | {spread(r['ort_s'])} | {ratio:.2f}x |")
    lines += [
        "",
        f"## Whole pipeline (tiny SD, {size}x{size}, {steps} steps, guidance 0; Triton: the cpu repository, Python backend running "
        "ONNX Runtime, over gRPC on loopback, measured while no in-process model runs)",
        "",
        "| runtime | batch | ms per call | images/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in pipelines:
        lines.append(f"| {r['runtime']} | {r['batch']} | {spread(r['seconds'])} | {r['images_per_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT / "models" / "tiny")
    parser.add_argument("--onnx", type=Path, default=ROOT / "var" / "onnx")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks-runtimes.md")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="intra-op threads of both runtimes")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    from fashion_studio.tiny import build_all

    pin_threads(args.threads)
    build_all(args.models, seed=0, only=["sd", "clip", "marian"])
    print("components:", flush=True)
    components = bench_components(args.models, args.onnx, args.repeats, args.threads)
    print("pipelines:", flush=True)
    pipelines = bench_pipelines(args.models, args.onnx, args.repeats, args.steps, args.size, args.threads)
    table = markdown(components, pipelines, args.steps, args.size, args.repeats, args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    raw = {"threads": args.threads, "repeats": args.repeats, "steps": args.steps, "size": args.size, "components": components, "pipelines": pipelines}
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=2) + "\n")
    print()
    print(table)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
