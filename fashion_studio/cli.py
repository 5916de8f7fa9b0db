"""`fashion-studio`: generate one image, run the catalog over a spreadsheet, build the small models."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from fashion_studio.auth import keys_app
from fashion_studio.errors import FashionStudioError
from fashion_studio.index.cli import index_app
from fashion_studio.lora.cli import lora_app
from fashion_studio.planning import plan_app
from fashion_studio.popularity.cli import popularity_app
from fashion_studio.products import products_app
from fashion_studio.pull import pull_command
from fashion_studio.sessions.demo import demo_app
from fashion_studio.settings import Settings
from fashion_studio.tryon_demo import tryon_command  # noqa: F401 - registers `demo tryon`

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
models_app = typer.Typer(no_args_is_help=True, help="Build and inspect models.")
models_app.command("pull")(pull_command)
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.add_typer(plan_app, name="plan")
app.add_typer(popularity_app, name="popularity")
app.add_typer(products_app, name="products")
app.add_typer(lora_app, name="lora")
app.add_typer(index_app, name="index")
app.add_typer(demo_app, name="demo")

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
    from fashion_studio.generation import GenerationRequest, Generator

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
    file: Annotated[str, typer.Argument(help="Spreadsheet (.xlsx or .csv) with one article per row: a path, or an s3:// URL read with the storage settings.")],
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
    shard_index: Annotated[int, typer.Option("--shard-index", help="This worker's shard (an Indexed Job's JOB_COMPLETION_INDEX).")] = 0,
    shard_count: Annotated[int, typer.Option("--shard-count", help="How many workers share the spreadsheet; shard i takes rows i, i+n, ...")] = 1,
    pushgateway: Annotated[
        Optional[str],
        typer.Option(
            "--pushgateway",
            help="Push the run's metrics to this Pushgateway group, http://HOST:9091/metrics/job/NAME, optionally followed by /LABEL/VALUE pairs, with the shard added; empty: no push.",
        ),
    ] = None,
) -> None:
    """Seed 003's batch: every article of a spreadsheet to a stored PNG + JSON; re-runs resume."""
    from fashion_studio.batch_metrics import pushed_metrics
    from fashion_studio.catalog import STATISTICS_NAME, CatalogParams, read_articles, run_catalog
    from fashion_studio.storage import local_copy
    from fashion_studio.studio import Studio

    settings = _settings(storage_url=out)
    try:
        if language not in ("de", "en", "auto"):
            from fashion_studio.errors import InvalidInputError

            raise InvalidInputError("language", language, "must be one of de, en, auto")
        if shard_count < 1 or not 0 <= shard_index < shard_count:
            from fashion_studio.errors import InvalidInputError

            raise InvalidInputError("shard_index", shard_index, f"must be in [0, shard_count={shard_count}) with shard_count >= 1")
        with local_copy(file, settings) as local:
            articles = read_articles(local, id_column, description_column, language)[shard_index::shard_count]  # type: ignore[arg-type]
        params = CatalogParams.from_settings(
            settings, steps=steps, width=width, height=height, seed=seed, threshold=threshold, max_attempts=max_attempts
        ).check()
        statistics_name = STATISTICS_NAME if shard_count == 1 else f"_statistics-{shard_index}-of-{shard_count}.json"
        with pushed_metrics(pushgateway, shard=str(shard_index)):
            studio = Studio(settings)
            results, stats = run_catalog(studio.catalog, articles, params, progress=progress, statistics_name=statistics_name)
    except FashionStudioError as exc:
        _fail(exc)
    typer.echo(json.dumps({"storage": settings.storage_url, "shard": f"{shard_index}/{shard_count}", **stats}, indent=2))


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


@models_app.command("train-mini")
def train_mini(
    directory: Annotated[Optional[Path], typer.Argument(help="Folder for the trained models (default models/fashion-mini).")] = None,
    work_dir: Annotated[Optional[Path], typer.Option("--work-dir", help="Cache of rendered data and intermediate weights (default var/fashion-mini).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    only: Annotated[
        Optional[list[str]],
        typer.Option(help="Run only these stages: data, judge, marian, clip, vae, unet, shots, sd, editor, segmenter, inpainter, figure-judge."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Retrain even what is complete.")] = False,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
    time_scale: Annotated[float, typer.Option("--time-scale", help="Multiply every stage's time cap (a slower or shared machine).")] = 1.0,
    evaluate: Annotated[bool, typer.Option("--eval/--no-eval", help="Run eval-mini afterwards and write the model cards.")] = True,
) -> None:
    """Train the fashion-mini family (translator, CLIP, Stable Diffusion, judge) on rendered products, on a CPU."""
    from fashion_studio.mini import MINI_DIR, WORK_DIR
    from fashion_studio.mini.cards import write_cards
    from fashion_studio.mini.evaluate import EvalConfig
    from fashion_studio.mini.evaluate import evaluate as run_eval
    from fashion_studio.mini.train import MiniConfig, train_all

    directory, work_dir = directory or MINI_DIR, work_dir or WORK_DIR
    config = MiniConfig(seed=seed, threads=threads, time_scale=time_scale)
    config.max_minutes = {stage: minutes * time_scale for stage, minutes in config.max_minutes.items()}
    record = train_all(directory, work_dir, config, only=only, force=force)
    stages = {name: info.get("wall_seconds") for name, info in record["stages"].items()}
    typer.echo(json.dumps({"models": str(directory), "stage_seconds": stages, "total_seconds": record.get("total_training_seconds")}, indent=2))
    if evaluate:
        results = run_eval(directory, work_dir, EvalConfig(seed=seed))
        typer.echo(json.dumps(results["summary"], indent=2))
    write_cards(directory)
    if evaluate and Path(directory).resolve() == MINI_DIR.resolve():
        from fashion_studio.mini.report import write_docs

        write_docs(directory)  # the figures in README.md and docs/fashion-mini.md


def _record_one_model(directory: Path, module: Any, section: dict[str, Any], write_card: Any) -> None:
    """`eval-mini --X-only`: put one model's section into eval.json, write its card (`write_card`, None
    for none) and, for the shipped family, the documents' figures; print its summary and targets."""
    from fashion_studio.mini import MINI_DIR

    record = module.record_evaluation(directory, section)
    if write_card is not None:
        write_card(directory)
        if Path(directory).resolve() == MINI_DIR.resolve():
            from fashion_studio.mini.report import write_docs

            write_docs(directory)  # the figures in README.md and docs/fashion-mini.md
    summary = {k: record["summary"][k] for k in module.summary(section)}
    typer.echo(json.dumps(summary | {"targets_met": {k: record["targets_met"][k] for k in module.TARGETS}}, indent=2))


@models_app.command("eval-mini")
def eval_mini(
    directory: Annotated[Optional[Path], typer.Argument(help="The fashion-mini folder (default models/fashion-mini).")] = None,
    work_dir: Annotated[Optional[Path], typer.Option("--work-dir")] = None,
    seed: Annotated[int, typer.Option(help="The seed the family was trained with (selects the held-out data).")] = 0,
    prompts: Annotated[int, typer.Option(help="Held-out prompts to generate and judge.")] = 200,
    translations: Annotated[int, typer.Option(help="Held-out German descriptions to translate.")] = 500,
    cards: Annotated[
        bool,
        typer.Option("--cards/--no-cards", help="Write the figures into the model cards (and, for the shipped family, README.md and docs/fashion-mini.md)."),
    ] = True,
    editor_only: Annotated[bool, typer.Option("--editor-only", help="Measure only the editor and update its part of eval.json and its card.")] = False,
    inpainter_only: Annotated[
        bool, typer.Option("--inpainter-only", help="Measure only the inpainter (try-on and inpainting) and update its part of eval.json and its card.")
    ] = False,
    segmenter_only: Annotated[
        bool, typer.Option("--segmenter-only", help="Measure only the segmenter (SAM and the parser) and update its part of eval.json and its card.")
    ] = False,
    shots_only: Annotated[
        bool, typer.Option("--shots-only", help="Measure only the model shots (dressed figures from prompts) and update their part of eval.json.")
    ] = False,
    select_guidance: Annotated[
        bool,
        typer.Option(
            "--select-guidance",
            help="With --editor-only: first choose the edit guidance on validation pairs of seen combinations, then measure the held-out ones with it.",
        ),
    ] = False,
) -> None:
    """Judge the fashion-mini family on held-out data: generated type/colour, translation, CLIP zero-shot and score, edits."""
    from fashion_studio.mini import MINI_DIR, WORK_DIR
    from fashion_studio.mini.cards import write_cards
    from fashion_studio.mini.evaluate import EvalConfig
    from fashion_studio.mini.evaluate import evaluate as run_eval

    directory = directory or MINI_DIR
    if inpainter_only:
        from fashion_studio.mini import inpainter

        section = inpainter.evaluate_family(directory, work_dir or WORK_DIR, seed)
        if section is None:
            _fail(
                FileNotFoundError(f"no inpainter or figure judge in {directory}: run `fashion-studio models train-mini --only inpainter --only figure-judge`")
            )
        _record_one_model(directory, inpainter, section, inpainter.write_card if cards else None)
        return
    if shots_only:
        from fashion_studio.mini import shots

        section = shots.evaluate_family(directory, work_dir or WORK_DIR, seed)
        if section is None:
            _fail(
                FileNotFoundError(f"no segmenter or figure judge in {directory}: run `fashion-studio models train-mini --only segmenter --only figure-judge`")
            )
        _record_one_model(directory, shots, section, write_cards if cards else None)
        return
    if segmenter_only:
        from fashion_studio.mini import segmenter

        if not segmenter.has_segmenter(directory):
            _fail(FileNotFoundError(f"no segmenter in {directory}: run `fashion-studio models train-mini --only segmenter`"))
        section = segmenter.evaluate_family(directory, work_dir or WORK_DIR, seed)
        _record_one_model(directory, segmenter, section, segmenter.write_card if cards else None)
        return
    if editor_only:
        from fashion_studio.mini import editor

        if not editor.has_editor(directory):
            _fail(FileNotFoundError(f"no editor in {directory}: run `fashion-studio models train-mini --only editor`"))
        defaults = {"guidance": editor.EDIT_GUIDANCE, "image_guidance": editor.EDIT_IMAGE_GUIDANCE}
        chosen, selection = defaults, None
        if select_guidance:
            selection = editor.select_guidance(directory, work_dir or WORK_DIR, seed)
            chosen = selection["chosen"]
            if chosen != defaults:
                typer.echo(f"note: validation chose {chosen}; the service defaults (settings edit_guidance, edit_image_guidance) differ", err=True)
        section = editor.evaluate_family(directory, work_dir or WORK_DIR, seed, **chosen)
        if selection is not None:
            section["guidance_selection"] = selection
        record = editor.record_evaluation(directory, section)
        if cards:
            editor.write_card(directory)
        typer.echo(
            json.dumps(
                {k: record["summary"][k] for k in editor.summary(section)} | {"targets_met": {k: record["targets_met"][k] for k in editor.TARGETS}}, indent=2
            )
        )
        return
    results = run_eval(directory, work_dir or WORK_DIR, EvalConfig(seed=seed, prompts=prompts, translations=translations))
    if cards:
        write_cards(directory)
        if Path(directory).resolve() == MINI_DIR.resolve():
            from fashion_studio.mini.report import write_docs

            write_docs(directory)
    typer.echo(json.dumps({"summary": results["summary"], "targets_met": results["targets_met"]}, indent=2))


@models_app.command("compare-mini")
def compare_mini(
    families: Annotated[list[Path], typer.Argument(help="fashion-mini folders to compare (the shipped one, a retrained candidate).")],
    work_dir: Annotated[Optional[Path], typer.Option("--work-dir", help="Rendered data, shared with train-mini (default var/fashion-mini).")] = None,
    seed: Annotated[int, typer.Option(help="The seed the families were trained with (selects the held-out data).")] = 0,
    products: Annotated[int, typer.Option(min=0, help="Held-out products per split (seen, unseen combinations); eval-mini reads 200.")] = 1000,
    figures: Annotated[int, typer.Option(min=0, help="Held-out figures' captions for model shots; eval-mini reads 200.")] = 600,
    tryon: Annotated[int, typer.Option(min=0, help="Held-out try-on examples through each family's inpainter; eval-mini reads 200.")] = 600,
    out: Annotated[Optional[Path], typer.Option(help="Also write the figures as JSON here.")] = None,
) -> None:
    """Families side by side on larger held-out sets than eval-mini's, each share with its 95% interval."""
    from fashion_studio.mini import WORK_DIR
    from fashion_studio.mini.compare import compare, table

    missing = [str(f) for f in families if not (Path(f) / "sd").is_dir() or not (Path(f) / "judge").is_dir()]
    if missing:
        _fail(FileNotFoundError(f"not a fashion-mini folder (no sd or judge): {', '.join(missing)}"))
    result = compare(families, work_dir or WORK_DIR, seed, products, figures, tryon)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    typer.echo(table(result))


@models_app.command("check-mini")
def check_mini(
    stage: Annotated[
        list[str],
        typer.Option(
            "--stage",
            help="Stages to retrain and compare: judge, marian, clip, vae, unet, shots (vae, unet and shots need the work folder they were trained in).",
        ),
    ],
    directory: Annotated[Optional[Path], typer.Argument(help="The fashion-mini folder (default models/fashion-mini).")] = None,
    work_dir: Annotated[Optional[Path], typer.Option("--work-dir", help="Rendered data, shared with train-mini (default var/fashion-mini).")] = None,
    scratch: Annotated[Path, typer.Option(help="Folder to retrain in (emptied first).")] = Path("var/fashion-mini-check"),
) -> None:
    """Retrain stages of the family as its training record says and compare the weights byte for byte."""
    from fashion_studio.mini import MINI_DIR, WORK_DIR
    from fashion_studio.mini.train import check_reproducible

    results = check_reproducible(directory or MINI_DIR, work_dir or WORK_DIR, stage, scratch)
    typer.echo(json.dumps({name: r["identical"] for name, r in results.items()}, indent=2))


@models_app.command("grid-mini")
def grid_mini(
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="PNG to write (default docs/images/fashion-mini-grid.png).")] = None,
    directory: Annotated[Optional[Path], typer.Option("--models", help="The fashion-mini folder (default models/fashion-mini).")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Denoising steps (default: the settings' default).")] = None,
    guidance: Annotated[Optional[float], typer.Option(help="Guidance scale (default: the settings' default).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Draw one fashion-mini product per type and colour into a labelled grid."""
    from fashion_studio.mini import GRID_PATH, MINI_DIR
    from fashion_studio.mini.evaluate import mini_settings
    from fashion_studio.mini.grid import render_grid

    settings = mini_settings(directory or MINI_DIR)
    path = render_grid(
        settings,
        output or GRID_PATH,
        steps=steps or settings.default_steps,
        guidance=settings.default_guidance if guidance is None else guidance,
        seed=seed,
    )
    typer.echo(f"wrote {path}")


@models_app.command("shots-mini")
def shots_mini(
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="PNG to write (default docs/images/model-shots.png).")] = None,
    directory: Annotated[Optional[Path], typer.Option("--models", help="The fashion-mini folder (default models/fashion-mini).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Draw model shots of a few described outfits (German and English) into a labelled sheet."""
    from fashion_studio.mini import MINI_DIR, PROJECT_ROOT
    from fashion_studio.mini.evaluate import mini_settings
    from fashion_studio.mini.grid import model_shots_sheet

    settings = mini_settings(directory or MINI_DIR)
    path = model_shots_sheet(settings, output or PROJECT_ROOT / "docs" / "images" / "model-shots.png", settings.default_steps, settings.default_guidance, seed)
    typer.echo(f"wrote {path}")


def run() -> None:  # pragma: no cover - console entry
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    app()
