"""ONNX Runtime vs PyTorch eager per component, and images/s of the PyTorch, ONNX Runtime and Triton runtimes.

One run on this machine, on the small models with the production architectures: the ratios mean
something here, the absolute numbers only for this CPU. Prints a markdown table and writes it to --out.

    python benchmarks/bench_runtimes.py --models models/tiny --out docs/benchmarks-runtimes.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

COMPONENTS = {"sd": ["text_encoder", "unet", "vae_decoder", "vae_encoder"], "clip": ["text", "vision"], "marian": ["encoder"]}


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_components(models: Path, onnx_root: Path, repeats: int) -> list[dict]:
    import onnxruntime as ort
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
            session = ort.InferenceSession(str(out / spec.name / "model.onnx"), providers=["CPUExecutionProvider"])
            module = reference(spec, models / family, cache)
            for batch in (1, 8):
                arrays = spec.random_inputs(spec.sizes("opt", **{BATCH: batch}), seed=batch)
                tensors = [torch.from_numpy(arrays[n]) for n in spec.input_names]

                def run_torch() -> object:
                    with torch.inference_mode():
                        return module(*tensors)

                torch_s = median_seconds(run_torch, repeats)
                ort_s = median_seconds(lambda: session.run(None, arrays), repeats)
                shape = "x".join(str(d) for d in arrays[spec.input_names[0]].shape)
                rows.append({"component": spec.triton_name, "batch": batch, "input": shape, "torch_ms": torch_s * 1e3, "ort_ms": ort_s * 1e3})
                print(f"  {spec.triton_name:<18} batch {batch}: torch {torch_s * 1e3:8.2f} ms  onnxruntime {ort_s * 1e3:8.2f} ms", flush=True)
    return rows


def bench_pipelines(models: Path, onnx_root: Path, repeats: int, steps: int, size: int) -> list[dict]:
    from export.triton_repo import TritonOptions, write_repository
    from export.tritonserver import TritonServer, triton_env
    from fashion_studio.generation import GenerationRequest, Generator
    from fashion_studio.settings import Settings

    base = Settings(generator=str(models / "sd"), onnx_dir=onnx_root, onnx_cache_dir=onnx_root)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "model_repository"
        write_repository([onnx_root / "sd"], repo, "cpu", TritonOptions())
        with TritonServer(repo, env=triton_env()) as server:
            for runtime in ("torch", "onnx", "triton"):
                generator = Generator.load(base.model_copy(update={"runtime": runtime, "triton_url": server.grpc_url}))
                for batch in (1, 8):
                    requests = [GenerationRequest(prompt=f"a red dress, look {i}", seed=i, steps=steps, width=size, height=size) for i in range(batch)]
                    seconds = median_seconds(lambda: generator.generate(requests), repeats)
                    rows.append({"runtime": runtime, "batch": batch, "seconds": seconds, "images_per_s": batch / seconds})
                    print(f"  sd pipeline {runtime:<7} batch {batch}: {batch / seconds:7.2f} images/s", flush=True)
    return rows


def markdown(components: list[dict], pipelines: list[dict], steps: int, size: int, repeats: int) -> str:
    cores = os.cpu_count()
    lines = [
        "# Runtime benchmarks: PyTorch eager, ONNX Runtime, Triton (CPU)",
        "",
        f"Measured by `make bench-runtimes` on {datetime.now(timezone.utc):%Y-%m-%d}: {platform.processor() or platform.machine()}, "
        f"{cores} cores, no GPU; the small models with the production architectures (`fashion_studio.tiny`), fp32. "
        f"Median of {repeats} runs after a warm-up. Absolute numbers hold for this CPU only; compare ratios.",
        "",
        "## Components (inputs at the profile's optimum: 64x64 images, 77 text tokens)",
        "",
        "| component | batch | first input | PyTorch eager ms | ONNX Runtime ms | speed-up |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in components:
        lines.append(f"| {r['component']} | {r['batch']} | {r['input']} | {r['torch_ms']:.2f} | {r['ort_ms']:.2f} | {r['torch_ms'] / r['ort_ms']:.2f}x |")
    lines += [
        "",
        f"## Whole pipeline (tiny SD, {size}x{size}, {steps} steps, guidance 0; Triton: the cpu repository, Python backend running ONNX Runtime, over gRPC on loopback)",
        "",
        "| runtime | batch | s per call | images/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in pipelines:
        lines.append(f"| {r['runtime']} | {r['batch']} | {r['seconds']:.3f} | {r['images_per_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT / "models" / "tiny")
    parser.add_argument("--onnx", type=Path, default=ROOT / "var" / "onnx")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks-runtimes.md")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    from fashion_studio.tiny import build_all

    build_all(args.models, seed=0, only=["sd", "clip", "marian"])
    print("components:", flush=True)
    components = bench_components(args.models, args.onnx, args.repeats)
    print("pipelines:", flush=True)
    pipelines = bench_pipelines(args.models, args.onnx, args.repeats, args.steps, args.size)
    table = markdown(components, pipelines, args.steps, args.size, args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print()
    print(table)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
