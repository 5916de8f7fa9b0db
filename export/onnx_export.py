"""ONNX export with a parity check against PyTorch, a manifest, and skip-if-done.

`export_model(model_dir, out_dir)` writes `out_dir/<component>/model.onnx` (plus `model.onnx_data`
for graphs over the protobuf limit) for every declared component, checks every output of every
component against its PyTorch reference on fresh random inputs, and writes `out_dir/manifest.json`.
The manifest's key hashes the source weights, precision, opset, profile and declarations: a later
run with the same key and intact files returns at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.specs import BATCH, ONNX_ELEM_TYPE, TOLERANCES, ComponentSpec, ExportProfile, detect_model, specs_for

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TWO_GB = 2 * 1024**3
DEFAULT_OPSET = 18
EXTERNAL_DATA_SUFFIX = "_data"
_PARTIAL_HASH_LIMIT = 64 * 1024**2
_PARTIAL_HASH_CHUNK = 8 * 1024**2


class ParityError(AssertionError):
    """An exported output differs from PyTorch by more than the precision's tolerance."""


class DeclarationMismatch(AssertionError):
    """An exported graph's tensor names or dtypes differ from its declaration."""


@dataclass
class ExportResult:
    out_dir: Path
    manifest: dict[str, Any]
    skipped: bool

    @property
    def key(self) -> str:
        return self.manifest["key"]


# ---------------------------------------------------------------------------------------------------
# Keys


def fingerprint(model_dir: Path) -> str:
    """A content hash of a model folder: whole small files, head and tail of large ones, and every size."""
    digest = hashlib.sha256()
    for file in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        rel = file.relative_to(model_dir).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        size = file.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        with file.open("rb") as fh:
            if size <= _PARTIAL_HASH_LIMIT:
                digest.update(hashlib.sha256(fh.read()).digest())
            else:
                digest.update(fh.read(_PARTIAL_HASH_CHUNK))
                fh.seek(size - _PARTIAL_HASH_CHUNK)
                digest.update(fh.read(_PARTIAL_HASH_CHUNK))
    return digest.hexdigest()


def export_key(model_fingerprint: str, precision: str, opset: int, profile: ExportProfile, specs: list[ComponentSpec]) -> str:
    payload = {
        "format": FORMAT_VERSION,
        "source": model_fingerprint,
        "precision": precision,
        "opset": opset,
        "profile": profile.describe(),
        "components": {s.name: s.describe() for s in specs},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(out_dir) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def intact(out_dir: Path, manifest: dict[str, Any]) -> bool:
    """Every file the manifest lists is there with its recorded size and hash."""
    for component in manifest.get("components", {}).values():
        for rel, info in component.get("files", {}).items():
            path = out_dir / rel
            if not path.is_file() or path.stat().st_size != info["bytes"] or sha256_file(path) != info["sha256"]:
                return False
    return True


# ---------------------------------------------------------------------------------------------------
# Export


def export_model(
    model_dir: Path | str,
    out_dir: Path | str,
    *,
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    profile: ExportProfile | None = None,
    name: str | None = None,
    source_ref: str | None = None,
    revision: str | None = None,
    force: bool = False,
    check: bool = True,
    external_data_threshold: int = TWO_GB,
) -> ExportResult:
    model_dir, out_dir = Path(model_dir).resolve(), Path(out_dir)
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"ONNX precision {precision!r}: fp32 or fp16 (bf16 and fp8 are TensorRT build options)")
    profile = profile or ExportProfile()
    specs = [s.with_precision(precision) for s in specs_for(model_dir, profile, name)]
    if precision != "fp32" and any(s.exporter == "optimum" for s in specs):
        raise ValueError(f"{model_dir}: optimum exports this model in fp32 only on CPU; export fp32 and reduce precision in TensorRT")
    model_fp = fingerprint(model_dir)
    key = export_key(model_fp, precision, opset, profile, specs)
    existing = read_manifest(out_dir)
    if not force and existing and existing.get("key") == key and intact(out_dir, existing):
        logger.info("%s: ONNX export %s is up to date in %s; skipped", model_dir, key, out_dir)
        return ExportResult(out_dir, existing, skipped=True)

    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    components: dict[str, Any] = {}
    torch_specs = [s for s in specs if s.exporter == "torch"]
    optimum_specs = [s for s in specs if s.exporter == "optimum"]
    references: dict = {}
    for spec in torch_specs:
        t0 = time.perf_counter()
        _export_torch(spec, model_dir, out_dir, opset, precision, external_data_threshold, references)
        components[spec.name] = {"export_s": round(time.perf_counter() - t0, 3)}
    if optimum_specs:
        t0 = time.perf_counter()
        _export_optimum(optimum_specs, model_dir, out_dir, opset, external_data_threshold)
        for spec in optimum_specs:
            components[spec.name] = {"export_s": round((time.perf_counter() - t0) / len(optimum_specs), 3)}
    for spec in specs:
        path = component_path(out_dir, spec)
        verify_graph(spec, path)
        entry = components[spec.name]
        entry.update(spec.describe())
        entry["file"] = path.relative_to(out_dir).as_posix()
        entry["files"] = {
            f.relative_to(out_dir).as_posix(): {"bytes": f.stat().st_size, "sha256": sha256_file(f)} for f in sorted(path.parent.iterdir()) if f.is_file()
        }
        if check:
            entry["parity"] = check_parity(spec, model_dir, path, precision, references)
    manifest = {
        "format": FORMAT_VERSION,
        "key": key,
        "name": specs[0].model,
        "model_type": detect_model(model_dir),
        "source": {"ref": source_ref or str(model_dir), "path": str(model_dir), "revision": revision, "fingerprint": model_fp},
        "precision": precision,
        "opset": opset,
        "profile": profile.describe(),
        "versions": _versions(),
        "export_s": round(time.perf_counter() - started, 3),
        "components": components,
    }
    tmp = out_dir / f".{MANIFEST}.{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(out_dir / MANIFEST)
    logger.info("%s: exported %d components to %s in %.1f s", model_dir, len(specs), out_dir, manifest["export_s"])
    return ExportResult(out_dir, manifest, skipped=False)


def component_path(out_dir: Path, spec: ComponentSpec) -> Path:
    return Path(out_dir) / spec.name / "model.onnx"


@contextmanager
def _quiet() -> Iterator[None]:
    """The tracer's warnings about Python control flow are expected for these graphs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _export_torch(spec: ComponentSpec, model_dir: Path, out_dir: Path, opset: int, precision: str, threshold: int, references: dict) -> None:
    import torch

    from export.wrappers import export_patches, reference

    module = reference(spec, model_dir, references)
    if precision == "fp16":
        module = module.half()
    # Trace at a batch of 2 and off-square sizes, so no dynamic axis is specialised to a traced 1.
    sizes = spec.sizes("opt", **{BATCH: min(2, spec.max_batch)})
    arrays = spec.random_inputs(sizes, seed=0)
    args = tuple(torch.from_numpy(arrays[name]) for name in spec.input_names)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        traced = Path(tmp) / "model.onnx"
        with _quiet(), export_patches(spec), torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(
                module,
                args,
                str(traced),
                input_names=spec.input_names,
                output_names=spec.output_names,
                dynamic_axes=spec.dynamic_axes(),
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        _store(traced, component_path(out_dir, spec), threshold)


def _export_optimum(specs: list[ComponentSpec], model_dir: Path, out_dir: Path, opset: int, threshold: int) -> None:
    """Marian through optimum's seq2seq exporter: encoder, decoder, decoder with past, kept apart."""
    from optimum.exporters.onnx import main_export

    files = {"encoder": "encoder_model.onnx", "decoder": "decoder_model.onnx", "decoder_with_past": "decoder_with_past_model.onnx"}
    unknown = [s.name for s in specs if s.name not in files]
    if unknown:
        raise ValueError(f"no optimum export for components {unknown}")
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp, _quiet():
        main_export(
            str(model_dir),
            output=tmp,
            task="text2text-generation-with-past",
            opset=opset,
            device="cpu",
            no_post_process=True,
            do_validation=False,
        )
        for spec in specs:
            _store(Path(tmp) / files[spec.name], component_path(out_dir, spec), threshold)
        # Config, generation config and tokenizer beside the graphs: the folder loads on its own.
        for extra in Path(tmp).iterdir():
            if extra.is_file() and not extra.name.endswith((".onnx", ".onnx_data")):
                shutil.copy2(extra, out_dir / extra.name)


def _store(source: Path, dest: Path, threshold: int) -> None:
    """Save `source` (and any external data beside it) as `dest`, external data in one file above `threshold` bytes."""
    import onnx

    model = onnx.load(str(source), load_external_data=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for old in dest.parent.iterdir():
        if old.is_file():
            old.unlink()
    size = sum(t.ByteSize() for t in model.graph.initializer)
    if size > threshold:
        onnx.save_model(
            model,
            str(dest),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=dest.name + EXTERNAL_DATA_SUFFIX,
            size_threshold=1024,
        )
    else:
        onnx.save_model(model, str(dest))


def verify_graph(spec: ComponentSpec, path: Path) -> None:
    """The graph's inputs and outputs are the declaration's, by name, order and dtype."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    found_in = [(v.name, v.type.tensor_type.elem_type) for v in graph.input]
    found_out = [(v.name, v.type.tensor_type.elem_type) for v in graph.output]
    want_in = [(t.name, ONNX_ELEM_TYPE[t.dtype]) for t in spec.inputs]
    want_out = [(t.name, ONNX_ELEM_TYPE[t.dtype]) for t in spec.outputs]
    if found_in != want_in or found_out != want_out:
        raise DeclarationMismatch(f"{spec.triton_name}: {path} has inputs {found_in} and outputs {found_out}; declared {want_in} and {want_out}")


# ---------------------------------------------------------------------------------------------------
# Parity


def parity_points(spec: ComponentSpec) -> list[dict[str, int]]:
    """Two shapes inside the profile: the optimum at batch 1, and the minimum at a batch of 2."""
    points = [spec.sizes("opt", **{BATCH: 1})]
    small = spec.sizes("min", **{BATCH: min(2, spec.max_batch)})
    if small != points[0]:
        points.append(small)
    return points


def compare(name: str, got: np.ndarray, want: np.ndarray, atol: float, rtol: float) -> dict[str, Any]:
    got64, want64 = got.astype(np.float64), want.astype(np.float64)
    if got64.shape != want64.shape:
        raise ParityError(f"{name}: shape {got64.shape}, PyTorch {want64.shape}")
    diff = np.abs(got64 - want64)
    max_abs = float(diff.max(initial=0.0))
    scale = float(np.abs(want64).max(initial=0.0))
    excess = diff - (atol + rtol * np.abs(want64))
    return {
        "max_abs": max_abs,
        "max_rel": max_abs / scale if scale > 0 else max_abs,
        "worst_excess": float(excess.max(initial=-np.inf)),
        "ok": bool(np.all(np.isfinite(got64)) and (excess <= 0).all()),
    }


def check_parity(
    spec: ComponentSpec, model_dir: Path, onnx_path: Path, precision: str, references: dict | None = None, seed: int | None = None
) -> dict[str, Any]:
    """Every output against PyTorch (fp32) on fresh random inputs; raises `ParityError` past the tolerance."""
    import onnxruntime as ort
    import torch

    from export.wrappers import reference

    atol, rtol = TOLERANCES[precision]
    atol *= spec.parity_atol_scale
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    # The reference runs in fp32 whatever the export's precision: the tolerance covers the difference.
    module = reference(spec, model_dir, references if references is not None else {}).float()
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    report: dict[str, Any] = {"atol": atol, "rtol": rtol, "seed": seed, "points": [], "outputs": {}}
    for index, sizes in enumerate(parity_points(spec)):
        arrays = spec.random_inputs(sizes, seed=seed + index)
        got = session.run(spec.output_names, arrays)
        with torch.inference_mode():
            want = module(
                *(torch.from_numpy(np.asarray(arrays[n], dtype=np.float32) if arrays[n].dtype == np.float16 else arrays[n]) for n in spec.input_names)
            )
        report["points"].append(sizes)
        for name, g, w in zip(spec.output_names, got, want):
            result = compare(f"{spec.triton_name}.{name}", g, w.float().numpy(), atol, rtol)
            previous = report["outputs"].get(name)
            if previous is None or result["max_abs"] > previous["max_abs"]:
                report["outputs"][name] = result
            if not result["ok"]:
                raise ParityError(
                    f"{spec.triton_name}.{name} at {sizes}: max abs error {result['max_abs']:.3g}, max rel {result['max_rel']:.3g} "
                    f"exceed the {precision} tolerance (atol {atol:g}, rtol {rtol:g})"
                )
    report["max_abs"] = max(o["max_abs"] for o in report["outputs"].values())
    report["max_rel"] = max(o["max_rel"] for o in report["outputs"].values())
    logger.info("%s parity: max abs %.2e, max rel %.2e (%s)", spec.triton_name, report["max_abs"], report["max_rel"], precision)
    return report


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("torch", "onnx", "onnxruntime", "optimum-onnx", "diffusers", "transformers"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


# ---------------------------------------------------------------------------------------------------
# Finding artifacts


def find_export(
    root: Path | str,
    model_dir: Path | str,
    *,
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    profile: ExportProfile | None = None,
    name: str | None = None,
    any_profile: bool = False,
) -> Path | None:
    """A folder under `root` (or `root` itself) whose manifest matches this model, precision and profile.

    With `any_profile`, an export of the same weights and precision made for another profile will do
    when no exact match is there (ONNX Runtime runs any shape; profiles matter to TensorRT and Triton).
    """
    root, model_dir = Path(root), Path(model_dir).resolve()
    profile = profile or ExportProfile()
    specs = [s.with_precision(precision) for s in specs_for(model_dir, profile, name)]
    model_fp = fingerprint(model_dir)
    key = export_key(model_fp, precision, opset, profile, specs)
    fallback = None
    for candidate in [root, *sorted(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []:
        manifest = read_manifest(candidate)
        if not manifest:
            continue
        if manifest.get("key") == key and intact(candidate, manifest):
            return candidate
        same = manifest.get("source", {}).get("fingerprint") == model_fp and manifest.get("precision") == precision
        if any_profile and fallback is None and same and intact(candidate, manifest):
            fallback = candidate
    return fallback


def export_folder_name(model_dir: Path, name: str | None, key: str) -> str:
    return f"{name or detect_model(model_dir)}-{key}"


def find_or_export(
    root: Path | str,
    model_dir: Path | str,
    *,
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    profile: ExportProfile | None = None,
    name: str | None = None,
    source_ref: str | None = None,
    revision: str | None = None,
) -> Path:
    """The exported folder for this model: found under `root`, else exported into `root/<name>-<key>`."""
    root, model_dir = Path(root), Path(model_dir).resolve()
    profile = profile or ExportProfile()
    found = find_export(root, model_dir, precision=precision, opset=opset, profile=profile, name=name)
    if found is not None:
        return found
    specs = [s.with_precision(precision) for s in specs_for(model_dir, profile, name)]
    key = export_key(fingerprint(model_dir), precision, opset, profile, specs)
    out = root / export_folder_name(model_dir, name, key)
    logger.info("no ONNX export of %s under %s; exporting into %s", model_dir, root, out)
    export_model(model_dir, out, precision=precision, opset=opset, profile=profile, name=name, source_ref=source_ref, revision=revision)
    return out
