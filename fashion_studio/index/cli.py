"""`fashion-studio index`: render a demo shop, build the product index from a catalog, update and query it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from fashion_studio.settings import Settings, available_cores

index_app = typer.Typer(no_args_is_help=True, help="The product index behind /recommend.")

IndexOption = Annotated[
    Optional[str], typer.Option("--index", help="Index URL: a folder, or http(s):// / qdrant:// for a Qdrant cluster (default: FASHION_INDEX_URL).")
]
CatalogOption = Annotated[Optional[Path], typer.Option("--catalog", help="Catalog folder with products.jsonl (default: FASHION_PRODUCTS_DIR).")]
ThreadsOption = Annotated[int, typer.Option("--threads", help="torch CPU threads for embedding.")]


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _open(settings: Settings, index: str | None, threads: int | None = None, create: bool = False):
    from fashion_studio.index import ProductIndex

    embedder = None
    if threads is not None:
        from fashion_studio.scoring import Scorer

        embedder = Scorer.load(settings.model_copy(update={"torch_threads": threads}))
    return ProductIndex.open(settings, index, embedder=embedder, create=create)


@index_app.command("demo-catalog")
def demo_catalog(
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="How many articles.")] = 1000,
    out: Annotated[Optional[Path], typer.Option("--out", help="Catalog folder (default: FASHION_PRODUCTS_DIR).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    workers: Annotated[int, typer.Option(help="Rendering processes.")] = available_cores(),
) -> None:
    """Render a seeded demo shop (ids, names, prices, shots) with the fashion-mini renderer; shots already there are kept."""
    from fashion_studio.index.demo import render_demo_catalog

    catalog = render_demo_catalog(count, out or Settings().products_dir, seed=seed, workers=workers)
    typer.echo(json.dumps({"catalog": str(catalog.root), "products": len(catalog)}))


@index_app.command("build")
def build(
    catalog: CatalogOption = None,
    index: IndexOption = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 256,
    prune: Annotated[bool, typer.Option("--prune", help="Also delete indexed articles the catalog no longer has.")] = False,
    threads: ThreadsOption = available_cores(),
) -> None:
    """Embed a catalog's articles (shot and text, with the scorer's CLIP) into the index, in batches.
    Resumable and idempotent by product id: unchanged articles are skipped, changed ones replaced."""
    from fashion_studio.products import load_catalog

    settings = Settings()
    try:
        shop = load_catalog(catalog or settings.products_dir)
        product_index = _open(settings, index, threads, create=True)
        report = product_index.build(
            shop,
            batch_size=batch_size,
            prune=prune,
            progress=lambda done, total: typer.echo(f"embedded {done}/{total}", err=True),
        )
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)
    typer.echo(json.dumps({"index": product_index.store.url, "indexed": len(product_index), **report.to_dict()}))


@index_app.command("add")
def add(
    product_ids: Annotated[list[str], typer.Argument(help="Articles of the catalog to add or replace, by id.")],
    catalog: CatalogOption = None,
    index: IndexOption = None,
    threads: ThreadsOption = available_cores(),
) -> None:
    """Add or replace articles (as the catalog now describes them) without rebuilding the index."""
    from fashion_studio.index.product_index import decode_image, image_ref, read_image_bytes
    from fashion_studio.products import load_catalog

    settings = Settings()
    try:
        shop = load_catalog(catalog or settings.products_dir)
        known = shop.by_id()
        missing = [p for p in product_ids if p not in known]
        if missing:
            raise ValueError(f"not in the catalog at {shop.root}: {', '.join(missing)}")
        products = [known[p] for p in product_ids]
        product_index = _open(settings, index, threads, create=True)
        data = [read_image_bytes(shop, p) for p in products]
        product_index.store.upsert(product_index.entries(products, [decode_image(d) for d in data], [image_ref(shop, p) for p in products], data))
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)
    typer.echo(json.dumps({"added": len(products), "indexed": len(product_index)}))


@index_app.command("delete")
def delete(
    product_ids: Annotated[list[str], typer.Argument(help="Articles to remove, by id.")],
    index: IndexOption = None,
) -> None:
    """Remove articles from the index without rebuilding it."""
    try:
        product_index = _open(Settings(), index)
        deleted = product_index.delete(product_ids)
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)
    typer.echo(json.dumps({"deleted": deleted, "indexed": len(product_index)}))


@index_app.command("info")
def info(index: IndexOption = None) -> None:
    """Where the index is, what kind of store, how many articles and of which dimension."""
    try:
        product_index = _open(Settings(), index)
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)
    store = product_index.store
    typer.echo(json.dumps({"index": store.url, "store": store.kind, "products": len(product_index), "dim": store.dim}))


@index_app.command("search")
def search(
    text: Annotated[Optional[str], typer.Option("--text", help="Find articles described like this.")] = None,
    image: Annotated[Optional[Path], typer.Option("--image", help="Find articles that look like this image.")] = None,
    k: Annotated[int, typer.Option("-k", min=1)] = 5,
    product_type: Annotated[Optional[str], typer.Option("--type")] = None,
    colour: Annotated[Optional[str], typer.Option("--colour")] = None,
    index: IndexOption = None,
    threads: ThreadsOption = 1,
) -> None:
    """Top-k articles for a text or an image, from the command line."""
    from PIL import Image

    from fashion_studio.index import Filters

    if (text is None) == (image is None):
        _fail(ValueError("give exactly one of --text and --image"))
    try:
        product_index = _open(Settings(), index, threads)
        filters = Filters(product_type=product_type, colour=colour)
        hits = product_index.search_text(text, k, filters) if text is not None else product_index.search_image(Image.open(image).convert("RGB"), k, filters)
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)
    for hit in hits:
        typer.echo(json.dumps({"score": round(hit.score, 4), **{f: hit.metadata.get(f) for f in ("product_id", "name", "price")}}))


if __name__ == "__main__":  # pragma: no cover
    index_app(sys.argv[1:])
