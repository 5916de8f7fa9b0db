"""Triton model repository from exported components: one `config.pbtxt` per component.

The config is built as Triton's own `ModelConfig` protobuf from the component's declaration (as the
export's manifest records it) and written with `text_format`, so it parses by construction and its
tensor names and dtypes are the ONNX graph's.

- `gpu`: for NVIDIA's Triton container: `tensorrt_plan` where an engine was built for the component,
  else `onnxruntime_onnx` with TensorRT as its execution accelerator.
- `cpu`: Python-backend models running ONNX Runtime (`export/triton_model.py`), which the
  `tritonserver` binary shipped in the nvidia-pytriton wheel serves on a machine without a GPU.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from export.onnx_export import MANIFEST, read_manifest
from export.specs import BATCH, TRITON_DTYPE, TensorSpec

logger = logging.getLogger(__name__)

Target = Literal["cpu", "gpu"]
PYTHON_MODEL = Path(__file__).with_name("triton_model.py")


@dataclass(frozen=True)
class TritonOptions:
    """Scheduling knobs written into every config (settings give the defaults)."""

    max_batch_size: int | None = None  # None: the component's profile maximum
    max_queue_delay_us: int = 2_000
    max_queue_size: int = 64
    queue_timeout_us: int = 30_000_000
    instances: int = 1
    intra_op_threads: int = 0
    trt_precision: str = "FP16"

    @classmethod
    def from_settings(cls, settings: Any, **override: Any) -> TritonOptions:
        values = {
            "max_queue_delay_us": settings.triton_max_queue_delay_us,
            "max_queue_size": settings.triton_max_queue_size,
            "queue_timeout_us": int(settings.triton_queue_timeout_s * 1e6),
            "instances": settings.triton_instances,
        }
        values.update({k: v for k, v in override.items() if v is not None})
        return cls(**values)


@dataclass(frozen=True)
class DeclaredComponent:
    """What a manifest records of one component: enough for a config, without the model's weights."""

    model: str
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    axes: dict[str, tuple[int, int, int]]
    gpu_platform: str
    file: str

    @property
    def triton_name(self) -> str:
        return f"{self.model}_{self.name}"

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], name: str) -> DeclaredComponent:
        entry = manifest["components"][name]

        def tensors(items: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(t["name"], t["dtype"], tuple(t["shape"])) for t in items)

        return cls(
            model=manifest["name"],
            name=name,
            inputs=tensors(entry["inputs"]),
            outputs=tensors(entry["outputs"]),
            axes={k: tuple(v) for k, v in entry["axes"].items()},  # type: ignore[misc]
            gpu_platform=entry["gpu_platform"],
            file=entry["file"],
        )


def components_of(export_dir: Path) -> list[DeclaredComponent]:
    manifest = read_manifest(export_dir)
    if manifest is None:
        raise FileNotFoundError(f"{export_dir} holds no {MANIFEST}: run `python -m export onnx --model DIR --out {export_dir}` first")
    return [DeclaredComponent.from_manifest(manifest, name) for name in manifest["components"]]


def model_config(component: DeclaredComponent, target: Target, options: TritonOptions, platform: str | None = None) -> Any:
    """The component's `ModelConfig` protobuf."""
    from tritonclient.grpc import model_config_pb2 as pb

    config = pb.ModelConfig(name=component.triton_name)
    if target == "cpu":
        config.backend = "python"
    else:
        config.platform = platform or component.gpu_platform
        config.default_model_filename = "model.plan" if config.platform == "tensorrt_plan" else "model.onnx"
    profile_max = component.axes[BATCH][2]
    config.max_batch_size = min(options.max_batch_size or profile_max, profile_max)

    def tensor(message: Any, spec: TensorSpec) -> None:
        message.name = spec.name
        message.data_type = getattr(pb, TRITON_DTYPE[spec.dtype])
        message.dims.extend(spec.triton_dims())
        if len(spec.shape) == 1:  # one value per item: [batch] in the graph, dims [1] for Triton
            message.reshape.SetInParent()

    for spec in component.inputs:
        tensor(config.input.add(), spec)
    for spec in component.outputs:
        tensor(config.output.add(), spec)
    batching = config.dynamic_batching
    batching.max_queue_delay_microseconds = options.max_queue_delay_us
    policy = batching.default_queue_policy
    policy.timeout_action = pb.ModelQueuePolicy.REJECT
    policy.default_timeout_microseconds = options.queue_timeout_us
    policy.allow_timeout_override = True
    policy.max_queue_size = options.max_queue_size
    group = config.instance_group.add()
    group.count = options.instances
    group.kind = pb.ModelInstanceGroup.KIND_CPU if target == "cpu" else pb.ModelInstanceGroup.KIND_GPU
    if target == "cpu":
        config.parameters["onnx_file"].string_value = "model.onnx"
        config.parameters["intra_op_threads"].string_value = str(options.intra_op_threads)
    elif config.platform == "onnxruntime_onnx":
        accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator.add()
        accelerator.name = "tensorrt"
        accelerator.parameters["precision_mode"] = options.trt_precision
        accelerator.parameters["max_workspace_size_bytes"] = str(4 << 30)
    return config


def config_text(config: Any) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(config)


def _place(source: Path, dest: Path) -> None:
    """A hard link where the filesystem allows (large graphs are not copied twice), else a copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def write_repository(
    export_dirs: list[Path],
    repo: Path,
    target: Target,
    options: TritonOptions | None = None,
    engines: Path | None = None,
) -> list[str]:
    """Fill `repo` with one model per exported component; returns the model names written."""
    options = options or TritonOptions()
    repo = Path(repo)
    repo.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for export_dir in export_dirs:
        export_dir = Path(export_dir)
        for component in components_of(export_dir):
            model_dir = repo / component.triton_name
            if model_dir.exists():
                shutil.rmtree(model_dir)
            version = model_dir / "1"
            version.mkdir(parents=True)
            graph = export_dir / component.file
            engine = engines / f"{component.triton_name}.plan" if engines else None
            platform = None
            if target == "gpu" and component.gpu_platform == "tensorrt_plan" and engine is not None and engine.is_file():
                _place(engine, version / "model.plan")
                platform = "tensorrt_plan"
            else:
                if target == "gpu" and component.gpu_platform == "tensorrt_plan":
                    logger.warning("%s: no engine %s; serving the ONNX graph with TensorRT as accelerator", component.triton_name, engine)
                platform = None if target == "cpu" else "onnxruntime_onnx"
                for file in graph.parent.iterdir():
                    if file.name.startswith(graph.name):  # the graph and its external data
                        _place(file, version / file.name)
                if target == "cpu":
                    shutil.copy2(PYTHON_MODEL, version / "model.py")
            config = model_config(component, target, options, platform)
            (model_dir / "config.pbtxt").write_text(config_text(config))
            written.append(component.triton_name)
    logger.info("wrote %d %s models to %s", len(written), target, repo)
    return written
