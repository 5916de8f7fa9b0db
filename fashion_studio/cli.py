"""`fashion-studio`: generate one image, run the catalog over a spreadsheet, build the small models."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from fashion_studio.errors import FashionStudioError
from fashion_studio.settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
models_app = typer.Typer(no_args_is_help=True, help="Build and inspect models.")
app.add_typer(models_app, name="models")

logger = logging.getLogger("fashion_studio")


def _settings(**overrides: object) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write (image i>0 gets a -i suffix).")] = Path("out.png"),
    seed: Annotated[Optional[int], typer.Option(help="Same seed and parameters give the same image.")] = None,
    steps: Annotated[Optional[int], typer.Option()] = None,
    guidance: Annotated[Optional[float], typer.Option()] = None,
    width: Annotated[Optional[int], typer.Option()] = None,
    height: Annotated[Optional[int], typer.Option()] = None,
    num_images: Annotated[int, typer.Option("--num-images", "-n")] = 1,
    negative_prompt: Annotated[Optional[str], typer.Option("--negative-prompt")] = None,
    generator: Annotated[Optional[str], typer.Option(help="Model folder or hub id (overrides FASHION_GENERATOR).")] = None,
    runtime: Annotated[Optional[str], typer.Option(help="torch | onnx | triton")] = None,
) -> None:
    """Generate images for a prompt and write them as PNG."""
    from fashion_studio.generation import Generator, GenerationRequest

    settings = _settings(generator=generator, runtime=runtime)
    try:
        request = GenerationRequest(
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=seed,
            steps=steps or settings.default_steps,
            guidance=settings.default_guidance if guidance is None else guidance,
            width=width or settings.default_width,
            height=height or settings.default_height,
            num_images=num_images,
        ).check(settings.limits)
        result = Generator.load(settings)(request)
    except FashionStudioError as exc:
        _fail(exc)
    output.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (image, image_seed) in enumerate(zip(result.images, result.seeds)):
        path = output if i == 0 else output.with_name(f"{output.stem}-{i}{output.suffix}")
        image.save(path)
        paths.append(str(path))
        typer.echo(f"wrote {path} (seed {image_seed}, {image.width}x{image.height})")
    typer.echo(json.dumps({"timings": {k: round(v, 3) for k, v in result.timings.items()}, "files": paths}))


@app.command()
def catalog(
    file: Annotated[Path, typer.Argument(help="Spreadsheet (.xlsx or .csv) with one article per row.")],
    out: Annotated[Optional[str], typer.Option("--out", help="Storage URL (folder, s3://...).")] = None,
    id_column: Annotated[str, typer.Option("--id-column")] = "article_id",
    description_column: Annotated[str, typer.Option("--description-column")] = "description",
    language: Annotated[str, typer.Option(help="de | en | auto")] = "auto",
    steps: Annotated[Optional[int], typer.Option()] = None,
    width: Annotated[Optional[int], typer.Option()] = None,
    height: Annotated[Optional[int], typer.Option()] = None,
    seed: Annotated[Optional[int], typer.Option(help="Base seed; by default derived from each article.")] = None,
    threshold: Annotated[Optional[float], typer.Option(help="CLIP score under which an image is regenerated.")] = None,
    max_attempts: Annotated[Optional[int], typer.Option("--max-attempts")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Seed 003's batch: every article of a spreadsheet to a stored PNG + JSON; re-runs resume."""
    from fashion_studio.catalog import CatalogParams, read_articles, run_catalog
    from fashion_studio.studio import Studio

    settings = _settings(storage_url=out)
    try:
        if language not in ("de", "en", "auto"):
            from fashion_studio.errors import InvalidInputError

            raise InvalidInputError("language", language, "must be one of de, en, auto")
        articles = read_articles(file, id_column, description_column, language)  # type: ignore[arg-type]
        params = CatalogParams.from_settings(
            settings, steps=steps, width=width, height=height, seed=seed, threshold=threshold, max_attempts=max_attempts
        ).check()
        studio = Studio(settings)
        results, stats = run_catalog(studio.catalog, articles, params, progress=progress)
    except FashionStudioError as exc:
        _fail(exc)
    typer.echo(json.dumps({"storage": settings.storage_url, **stats}, indent=2))


@models_app.command("build-tiny")
def build_tiny(
    directory: Annotated[Path, typer.Argument(help="Folder to build into (one subfolder per model).")] = Path("models/tiny"),
    seed: Annotated[int, typer.Option()] = 0,
    only: Annotated[Optional[list[str]], typer.Option(help="Build only these families.")] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even when complete.")] = False,
) -> None:
    """Small models with the production architectures and random weights (no download)."""
    from fashion_studio.tiny import build_all

    built = build_all(directory, seed=seed, only=only, force=force)
    for name, path in built.items():
        typer.echo(f"{name}: {path}")


def run() -> None:  # pragma: no cover - console entry
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    app()
