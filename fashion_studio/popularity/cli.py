"""`fashion-studio popularity`: simulate shoppers, import purchases, train and evaluate the models."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from fashion_studio.errors import FashionStudioError, InvalidInputError
from fashion_studio.settings import PROJECT_ROOT, Settings

popularity_app = typer.Typer(no_args_is_help=True, help="Popularity of articles and designs, from the shop's events.")

CatalogOption = Annotated[Optional[Path], typer.Option("--catalog", help="Catalog folder (default: FASHION_PRODUCTS_DIR).")]
EventsOption = Annotated[Optional[str], typer.Option("--events", help="Event log URL (default: FASHION_EVENTS_URL).")]
ModelsOption = Annotated[Optional[str], typer.Option("--models", help="Models folder (default: FASHION_POPULARITY_MODEL).")]


def _settings(catalog: Path | None, events: str | None, models: str | None) -> Settings:
    overrides = {"products_dir": catalog, "events_url": events, "popularity_model": models}
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@popularity_app.command("simulate")
def simulate_command(
    catalog: CatalogOption = None,
    events: EventsOption = None,
    seed: Annotated[int, typer.Option()] = 0,
    views: Annotated[float, typer.Option("--views", help="Mean views per article.")] = 40.0,
) -> None:
    """Write a seeded event log from simulated shoppers over the catalog (and their latent appeal beside it)."""
    from fashion_studio.popularity.events import open_store
    from fashion_studio.popularity.simulate import ShopperConfig, simulate
    from fashion_studio.products import load_catalog

    settings = _settings(catalog, events, None)
    try:
        shop = load_catalog(settings.products_dir)
        store = open_store(settings.events_url)
        if store.count():
            raise InvalidInputError(
                "events", settings.events_url, f"must be an empty event log (it holds {store.count()} events): simulated shoppers never mix with a shop's own"
            )
        result = simulate(shop, store, ShopperConfig(seed=seed, views_per_product=views))
    except (FashionStudioError, OSError) as exc:
        _fail(exc)
    path = result.save(shop.root)
    typer.echo(json.dumps({"simulated_events": result.events, "events_in_log": store.count(), "appeal": str(path)}))


@popularity_app.command("import-purchases")
def import_purchases(
    file: Annotated[Path, typer.Argument(help="CSV with columns product_id, timestamp (ISO 8601 or epoch), optional quantity, user.")],
    catalog: CatalogOption = None,
    events: EventsOption = None,
) -> None:
    """Append the purchases of an order export to the event log: every row checked first, then all or none.
    A file imported before (the same bytes) is not imported again: a run repeated after a kill, or an export
    sent twice, counts no purchase twice."""
    import hashlib

    from fashion_studio.popularity.events import open_store, read_purchases
    from fashion_studio.products import load_catalog

    settings = _settings(catalog, events, None)
    try:
        known = {p.product_id for p in load_catalog(settings.products_dir).products}
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        purchases = read_purchases(file, known)
        if hashlib.sha256(file.read_bytes()).hexdigest() != digest:  # an export still being written
            raise InvalidInputError("file", str(file), "changed while it was read: import it once it is complete")
        stored = open_store(settings.events_url).append_many(purchases, once=f"purchases-file:{digest}")
    except (FashionStudioError, OSError) as exc:
        _fail(exc)
    if purchases and not stored:
        typer.echo(f"{file}: imported before (sha256 {digest[:12]}), nothing stored again", err=True)
        typer.echo(json.dumps({"imported": 0, "already_imported": True}))
        return
    typer.echo(json.dumps({"imported": stored}))


@popularity_app.command("train")
def train_command(
    catalog: CatalogOption = None,
    events: EventsOption = None,
    models: ModelsOption = None,
    seed: Annotated[int, typer.Option()] = 0,
    epochs: Annotated[int, typer.Option(help="Epochs of the combined model.")] = 100,
) -> None:
    """Fit the baseline, linear, image and combined models on the training articles and save them."""
    from fashion_studio.popularity.events import open_store
    from fashion_studio.popularity.models import TrainConfig
    from fashion_studio.popularity.predictor import model_dir
    from fashion_studio.popularity.train import train
    from fashion_studio.products import load_catalog
    from fashion_studio.scoring import Scorer

    settings = _settings(catalog, events, models)
    try:
        summary = train(
            load_catalog(settings.products_dir),
            open_store(settings.events_url),
            Scorer.load(settings),
            model_dir(settings),
            TrainConfig(seed=seed, epochs=epochs),
        )
    except (FashionStudioError, OSError, ValueError) as exc:
        _fail(exc)
    typer.echo(json.dumps(summary))


@popularity_app.command("eval")
def eval_command(
    catalog: CatalogOption = None,
    events: EventsOption = None,
    models: ModelsOption = None,
    docs: Annotated[Path, typer.Option("--docs", help="Markdown report; the JSON goes beside it.")] = PROJECT_ROOT / "docs" / "popularity.md",
) -> None:
    """Spearman and NDCG@20 of every model on held-out articles -> docs/popularity.md/.json and the model card."""
    from fashion_studio.popularity.evaluate import evaluate, write_docs
    from fashion_studio.popularity.events import open_store
    from fashion_studio.popularity.predictor import model_dir
    from fashion_studio.products import load_catalog
    from fashion_studio.scoring import Scorer

    settings = _settings(catalog, events, models)
    directory = model_dir(settings)
    try:
        results = evaluate(load_catalog(settings.products_dir), open_store(settings.events_url), Scorer.load(settings), directory)
    except (FashionStudioError, OSError, ValueError) as exc:
        _fail(exc)
    command = (
        "fashion-studio popularity " + " ".join(shlex.quote(a) for a in sys.argv[sys.argv.index("eval") :])
        if "eval" in sys.argv
        else "fashion-studio popularity eval"
    )
    write_docs(results, docs, directory, command)
    typer.echo(json.dumps({k: results[k] for k in ("models", "ceiling", "checks") if k in results}, indent=2))
