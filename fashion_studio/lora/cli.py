"""`fashion-studio lora`: train an adapter on a folder of captioned product images, and run the demonstration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from fashion_studio.errors import FashionStudioError

lora_app = typer.Typer(no_args_is_help=True, help="Train LoRA adapters on the shop's own images.")


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@lora_app.command("train")
def train(
    data: Annotated[Path, typer.Argument(help="Folder of images with captions: metadata.csv (file_name,text) or one .txt per image.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Adapter folder: pytorch_lora_weights.safetensors, README.md, training.json.")],
    generator: Annotated[Optional[str], typer.Option(help="Base pipeline folder or hub id (default FASHION_GENERATOR).")] = None,
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 8,
    alpha: Annotated[Optional[float], typer.Option(help="LoRA alpha (default: the rank).")] = None,
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 500,
    learning_rate: Annotated[float, typer.Option("--learning-rate", "--lr")] = 1e-4,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 8,
    resolution: Annotated[Optional[int], typer.Option(help="Square training size in pixels (default: the model's native size).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", help="Steps between resumable checkpoints.")] = 100,
    mixed_precision: Annotated[str, typer.Option("--mixed-precision", help="no | fp16 | bf16 (GPU).")] = "no",
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing/--no-gradient-checkpointing")] = False,
    target_module: Annotated[Optional[list[str]], typer.Option("--target-module", help="Module to adapt (repeat); default to_q, to_k, to_v, to_out.0.")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, ... (default FASHION_DEVICE).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Fine-tune a LoRA on the generator's UNet or transformer; a killed run resumes when rerun."""
    from fashion_studio.lora.train import TARGET_MODULES, LoraTrainConfig, train_lora
    from fashion_studio.settings import Settings

    settings = Settings()
    config = LoraTrainConfig(
        rank=rank,
        alpha=alpha,
        steps=steps,
        learning_rate=learning_rate,
        batch_size=batch_size,
        resolution=resolution,
        seed=seed,
        checkpoint_every=checkpoint_every,
        mixed_precision=mixed_precision,  # type: ignore[arg-type]
        gradient_checkpointing=gradient_checkpointing,
        target_modules=tuple(target_module) if target_module else TARGET_MODULES,
        device=device or settings.device,
        threads=threads,
    )
    try:
        record = train_lora(generator or settings.generator, data, out, config, settings, progress=progress)
    except FashionStudioError as exc:
        _fail(exc)
    typer.echo(json.dumps({"adapter": str(out), **{k: record[k] for k in ("train_seconds", "loss_first", "loss_last", "weights_bytes")}}))


@lora_app.command("demo")
def demo(
    steps: Annotated[Optional[int], typer.Option(help="Training steps (default: the documented run's).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Teach fashion-mini the zigzag pattern with a LoRA, measure it on held-out prompts, write docs/lora.md."""
    from dataclasses import replace

    from fashion_studio.lora.demo import DemoConfig, run_demo

    config = DemoConfig() if steps is None else replace(DemoConfig(), steps=steps)
    report = run_demo(config, progress=progress)
    typer.echo(json.dumps({"detected_share": report["results"]["detected_share"], "detector": report["detector"]["balanced_accuracy"]}))
