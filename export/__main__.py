"""`python -m export onnx | tensorrt | triton | serve`: see export/README.md."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

logger = logging.getLogger("export")


def _profile(args: argparse.Namespace):
    from export.specs import ExportProfile
    from fashion_studio.settings import Settings

    settings = Settings()
    overrides = {
        k: v for k, v in {"export_max_batch": args.max_batch, "export_min_size": args.min_size, "export_max_size": args.max_size}.items() if v is not None
    }
    return ExportProfile.from_settings(settings.model_copy(update=overrides)), settings


def cmd_onnx(args: argparse.Namespace) -> int:
    from export.onnx_export import export_model
    from export.specs import detect_model

    profile, settings = _profile(args)
    out = Path(args.out)
    for model in args.model:
        model_dir = Path(model)
        target = out if len(args.model) == 1 else out / (args.name or detect_model(model_dir))
        result = export_model(
            model_dir,
            target,
            precision=args.precision or settings.onnx_precision,
            opset=args.opset or settings.onnx_opset,
            profile=profile,
            name=args.name,
            revision=args.revision,
            force=args.force,
            check=not args.no_check,
            external_data_threshold=args.external_data_threshold,
        )
        manifest = result.manifest
        state = "up to date" if result.skipped else f"exported in {manifest['export_s']:.1f} s"
        print(f"{model_dir} -> {target} [{manifest['precision']}, opset {manifest['opset']}, key {manifest['key']}]: {state}")
        for name, entry in manifest["components"].items():
            parity = entry.get("parity")
            check = (
                f"max abs {parity['max_abs']:.2e}, max rel {parity['max_rel']:.2e} (atol {parity['atol']:g}, rtol {parity['rtol']:g})"
                if parity
                else "not checked"
            )
            print(f"  {manifest['name']}_{name:<22} {check}")
    return 0


def cmd_tensorrt(args: argparse.Namespace) -> int:
    from export.tensorrt_build import build_engine, format_plan, gpu_identity, plan_engines

    dirs = [Path(d) for d in args.onnx]
    if args.dry_run:
        plans = plan_engines(dirs, Path(args.engines), args.precision, workspace_gb=args.workspace_gb, only=args.only)
        if args.json:
            print(json.dumps([p.describe() for p in plans], indent=2))
        else:
            print(f"TensorRT build plan ({len(plans)} engines, {args.precision}); dry run: nothing built")
            print(format_plan(plans))
        return 0
    arch, version = gpu_identity()
    plans = plan_engines(dirs, Path(args.engines), args.precision, arch=arch, trt_version=version, workspace_gb=args.workspace_gb, only=args.only)
    print(format_plan(plans))
    for plan in plans:
        build_engine(plan, force=args.force)
    return 0


def cmd_triton(args: argparse.Namespace) -> int:
    from export.triton_repo import TritonOptions, write_repository
    from fashion_studio.settings import Settings

    options = TritonOptions.from_settings(
        Settings(),
        max_batch_size=args.max_batch_size,
        max_queue_delay_us=args.max_queue_delay_us,
        max_queue_size=args.max_queue_size,
        instances=args.instances,
    )
    engines = Path(args.engines) if args.engines else None
    names = write_repository([Path(d) for d in args.onnx], Path(args.repo), args.target, options, engines)
    print(f"{args.repo}: {len(names)} {args.target} models: {', '.join(names)}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from export.tritonserver import TritonServer

    server = TritonServer(args.repo, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port)
    print(f"tritonserver: HTTP {server.http_url}, gRPC {server.grpc_url}, metrics {server.metrics_url} (Ctrl-C stops)", flush=True)
    server.exec_foreground()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export", description="Export models to ONNX, TensorRT engines and a Triton model repository.")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    onnx = sub.add_parser("onnx", help="export to ONNX, check parity against PyTorch, write a manifest (skips what is up to date)")
    onnx.add_argument("--model", action="append", required=True, help="model folder in Hugging Face layout (repeatable)")
    onnx.add_argument("--out", required=True, help="output folder (with several --model: a folder per model under it)")
    onnx.add_argument("--precision", choices=["fp32", "fp16"], default=None)
    onnx.add_argument("--opset", type=int, default=None)
    onnx.add_argument("--name", help="model name, the Triton prefix (default: the family: sd, sdxl, flux, clip, marian)")
    onnx.add_argument("--revision", help="source revision recorded in the manifest")
    onnx.add_argument("--force", action="store_true", help="export even when the manifest says up to date")
    onnx.add_argument("--no-check", action="store_true", help="skip the parity check")
    onnx.add_argument("--external-data-threshold", type=int, default=2 * 1024**3, help="weights above this many bytes go to model.onnx_data")
    for p in (onnx,):
        p.add_argument("--max-batch", type=int, default=None)
        p.add_argument("--min-size", type=int, default=None, help="smallest image side in pixels the profile covers")
        p.add_argument("--max-size", type=int, default=None, help="largest image side in pixels the profile covers")
    onnx.set_defaults(func=cmd_onnx)

    trt = sub.add_parser("tensorrt", help="build TensorRT engines from the exports' profiles (GPU), or print the plan (--dry-run)")
    trt.add_argument("--onnx", nargs="+", required=True, help="exported folders (with manifest.json)")
    trt.add_argument("--engines", default="var/engines", help="engines root; engines go to <root>/<sm_XY>-trt<version>/")
    trt.add_argument("--precision", choices=["fp16", "bf16", "fp8"], default="fp16")
    trt.add_argument("--workspace-gb", type=float, default=8.0)
    trt.add_argument("--only", nargs="*", help="component or Triton model names to build")
    trt.add_argument("--dry-run", action="store_true", help="print profiles and the build plan; needs no GPU or tensorrt")
    trt.add_argument("--json", action="store_true", help="with --dry-run: the plan as JSON")
    trt.add_argument("--force", action="store_true")
    trt.set_defaults(func=cmd_tensorrt)

    triton = sub.add_parser("triton", help="write a Triton model repository (config.pbtxt per component)")
    triton.add_argument("--target", choices=["cpu", "gpu"], required=True)
    triton.add_argument("--onnx", nargs="+", required=True, help="exported folders (with manifest.json)")
    triton.add_argument("--repo", default="model_repository")
    triton.add_argument("--engines", help="gpu: folder of <model>_<component>.plan engines for this GPU")
    triton.add_argument("--max-batch-size", type=int, default=None)
    triton.add_argument("--max-queue-delay-us", type=int, default=None)
    triton.add_argument("--max-queue-size", type=int, default=None)
    triton.add_argument("--instances", type=int, default=None)
    triton.set_defaults(func=cmd_triton)

    serve = sub.add_parser("serve", help="run tritonserver (from .venv-triton) on a cpu repository in the foreground")
    serve.add_argument("--repo", default="model_repository")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--http-port", type=int, default=8000)
    serve.add_argument("--grpc-port", type=int, default=8001)
    serve.add_argument("--metrics-port", type=int, default=8002)
    serve.set_defaults(func=cmd_serve)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
