"""TensorRT engines from the exported ONNX graphs, one optimization profile per declaration.

Engines are not portable: they are keyed by GPU architecture (compute capability) and TensorRT
version, in `engines/<sm_XY>-trt<version>/<model>_<component>.plan`, which `python -m export triton
--target gpu --engines DIR` places as `tensorrt_plan` models. `tensorrt` (and `nvidia-modelopt` for
fp8) are imported only when an engine is built, so planning (`--dry-run`) needs neither nor a GPU.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.onnx_export import read_manifest
from export.triton_repo import DeclaredComponent

logger = logging.getLogger(__name__)

TRT_PRECISIONS = ("fp16", "bf16", "fp8")


@dataclass(frozen=True)
class EnginePlan:
    component: DeclaredComponent
    onnx: Path
    engine: Path
    precision: str
    profile: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]
    workspace_gb: float

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.component.triton_name,
            "onnx": str(self.onnx),
            "engine": str(self.engine),
            "precision": self.precision,
            "workspace_gb": self.workspace_gb,
            "profile": {name: {"min": list(s[0]), "opt": list(s[1]), "max": list(s[2])} for name, s in self.profile.items()},
            "axes": {k: list(v) for k, v in self.component.axes.items()},
        }


def profile_shapes(component: DeclaredComponent) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """Input name -> (min, opt, max) shapes from the declaration's axis ranges."""
    shapes = {}
    for tensor in component.inputs:
        triple = tuple(tuple(component.axes[d][i] if isinstance(d, str) else int(d) for d in tensor.shape) for i in range(3))
        shapes[tensor.name] = triple
    return shapes  # type: ignore[return-value]


def engine_folder(root: Path, arch: str, trt_version: str) -> Path:
    return Path(root) / f"{arch}-trt{trt_version}"


def plan_engines(
    export_dirs: list[Path],
    engines_root: Path,
    precision: str,
    arch: str = "<gpu-arch>",
    trt_version: str = "<trt-version>",
    workspace_gb: float = 8.0,
    only: list[str] | None = None,
) -> list[EnginePlan]:
    if precision not in TRT_PRECISIONS:
        raise ValueError(f"TensorRT precision {precision!r}: one of {TRT_PRECISIONS}")
    folder = engine_folder(engines_root, arch, trt_version)
    plans = []
    for export_dir in export_dirs:
        manifest = read_manifest(Path(export_dir))
        if manifest is None:
            raise FileNotFoundError(f"{export_dir} holds no manifest.json: export it with `python -m export onnx` first")
        for name, entry in manifest["components"].items():
            component = DeclaredComponent.from_manifest(manifest, name)
            if entry["gpu_platform"] != "tensorrt_plan" or (only and component.triton_name not in only and name not in only):
                continue
            plans.append(
                EnginePlan(
                    component=component,
                    onnx=Path(export_dir) / entry["file"],
                    engine=folder / f"{component.triton_name}.plan",
                    precision=precision,
                    profile=profile_shapes(component),
                    workspace_gb=workspace_gb,
                )
            )
    return plans


def format_plan(plans: list[EnginePlan]) -> str:
    lines = []
    for plan in plans:
        lines.append(f"{plan.component.triton_name}: {plan.onnx} -> {plan.engine} [{plan.precision}, workspace {plan.workspace_gb:g} GiB]")
        for name, (lo, opt, hi) in plan.profile.items():
            lines.append(f"  {name:<28} min {list(lo)}  opt {list(opt)}  max {list(hi)}")
    return "\n".join(lines)


def gpu_identity() -> tuple[str, str]:
    """(architecture, TensorRT version) of this machine, e.g. ('sm_90', '10.3.0')."""
    import tensorrt as trt  # noqa: F401  (fails here first when TensorRT is absent)
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("building TensorRT engines needs a CUDA GPU; use --dry-run to print the plan")
    major, minor = torch.cuda.get_device_capability()
    return f"sm_{major}{minor}", trt.__version__


def build_engine(plan: EnginePlan, force: bool = False) -> Path:
    """Build one engine with the `tensorrt` Python API (strongly typed from the fp8 ONNX for fp8)."""
    import tensorrt as trt

    if plan.engine.is_file() and not force:
        logger.info("%s exists; skipped", plan.engine)
        return plan.engine
    onnx_path = quantize_fp8(plan) if plan.precision == "fp8" else plan.onnx
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.precision == "fp8" else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(plan.workspace_gb * (1 << 30)))
    if plan.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif plan.precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in plan.profile.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build {plan.engine}")
    plan.engine.parent.mkdir(parents=True, exist_ok=True)
    tmp = plan.engine.with_suffix(".plan.partial")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(plan.engine)
    plan.engine.with_suffix(".json").write_text(json.dumps(plan.describe(), indent=2) + "\n")
    logger.info("built %s", plan.engine)
    return plan.engine


def quantize_fp8(plan: EnginePlan) -> Path:
    """FP8 (E4M3) Q/DQ nodes through nvidia-modelopt's ONNX quantizer, calibrated on random inputs."""
    from modelopt.onnx.quantization import quantize  # nvidia-modelopt, optional

    out = plan.engine.with_suffix(".fp8.onnx")
    quantize(onnx_path=str(plan.onnx), quantize_mode="fp8", output_path=str(out))
    return out
