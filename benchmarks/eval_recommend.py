"""`make eval-recommend`: are the recommended products the kind of product the query image shows?

Queries are images that fashion-mini's generator draws (in-process, at the service's default steps and
guidance) for prompts of the held-out product stream of fashion_studio/mini/data.py, keeping only prompts
whose exact text is not among the generator's training captions (checked here, against the captions of
the training items it was trained on). The product pool is a demo shop. For each query: the top 5 by
CLIP (the product index's vectors: image and text fused at several text weights, the shipped weight
among them; searched by `ProductIndex.search` over a real embedded store, without and with the query
expansion image queries get) and by the seed projects' method, Euclidean distance on raw pixels;
precision@5 is the share of the 5 with the query's product type, and with its type and colour.
A second, disjoint set of validation prompts chooses the expansion setting; the test prompts only
report it. Writes docs/recommend.md + .json.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from fashion_studio.index import Entry, fuse, product_text
from fashion_studio.index.demo import render_products
from fashion_studio.index.local import LocalStore
from fashion_studio.index.product_index import ProductIndex
from fashion_studio.index.records import product_metadata
from fashion_studio.mini.data import HELDOUT, TRAIN, make_items, trained_german
from fashion_studio.mini.train import MiniConfig
from fashion_studio.mini.vocab import COLOUR_NAMES, PATTERNS, TYPE_NAMES
from fashion_studio.products import demo_products
from fashion_studio.settings import PROJECT_ROOT, Settings

logger = logging.getLogger("eval_recommend")
WEIGHTS = (0.0, 0.15, 0.3, 0.5, 0.7)
TARGET = 0.9
IDENTITY = 1000  # catalog shots used as queries for their own article
EXPANSIONS = ((1, 0.5), (1, 1.0), (2, 0.5), (2, 1.0), (2, 2.0), (3, 1.0), (5, 1.0), (10, 1.0))  # (first products, weight)


def heldout_prompts(count: int, config: MiniConfig) -> tuple[list[tuple[str, object]], dict]:
    """(prompt, spec) pairs from the held-out stream whose caption text the generator never saw."""
    train = make_items(config.train_images, config.seed, TRAIN)
    seen_captions = {c.text for item in train for c in item.captions}
    seen_german = trained_german(train, config.translation_pairs, config.seed)
    seen_combos = {(i.spec.product_type, i.spec.colour, i.spec.pattern) for i in train}
    items = make_items(count * 25, config.seed, HELDOUT, exclude=seen_german)
    chosen, chosen_items, candidates, in_training, repeated = [], [], 0, 0, 0
    chosen_texts: set[str] = set()
    for item in items:
        # the short free captions name type, colour and pattern; the first unseen one is the prompt
        for caption in item.captions[2:]:
            candidates += 1
            if caption.text in seen_captions:
                in_training += 1
                continue
            if caption.text in chosen_texts:  # each prompt once: the test and validation sets share none
                repeated += 1
                continue
            chosen_texts.add(caption.text)
            chosen.append((caption.text, item.spec))
            chosen_items.append(item)
            break
        if len(chosen) == count:
            break
    combos = {(s.product_type, s.colour, s.pattern) for _, s in chosen}
    held_out = {
        "training_items": len(train),
        "training_captions": len(seen_captions),
        "candidate_captions": candidates,
        "candidates_found_in_training_captions": in_training,
        "candidates_already_chosen": repeated,
        "queries": len(chosen),
        "query_prompts_in_training_captions": sum(p in seen_captions for p, _ in chosen),
        "query_german_descriptions_in_training": sum(1 for i in chosen_items if i.german in seen_german),
        "query_type_colour_pattern_combinations": len(combos),
        "of_which_seen_in_training": len(combos & seen_combos),
        "training_combinations": len(seen_combos),
        "vocabulary_combinations": len(TYPE_NAMES) * len(COLOUR_NAMES) * len(PATTERNS),
    }
    return chosen, held_out


def precision(top: list[list[int]], pool_types: np.ndarray, pool_colours: np.ndarray, specs: list) -> dict[str, float]:
    same_type = np.array([[pool_types[j] == s.product_type for j in row] for row, s in zip(top, specs)])
    same_both = np.array([[pool_types[j] == s.product_type and pool_colours[j] == s.colour for j in row] for row, s in zip(top, specs)])
    return {"type": round(float(same_type.mean()), 4), "type_colour": round(float(same_both.mean()), 4)}


class Pool:
    """The demo shop in a real embedded store at one text weight, searched as `/recommend` searches it."""

    def __init__(self, folder: Path, products: list, image_vectors: np.ndarray, text_vectors: np.ndarray, weight: float) -> None:
        vectors = fuse(image_vectors, text_vectors, weight)
        store = LocalStore(folder, create=True)
        store.upsert([Entry(p.product_id, v, product_metadata(p, p.image)) for p, v in zip(products, vectors)])
        self.index = ProductIndex(store)
        self.row = {p.product_id: i for i, p in enumerate(products)}

    def top5(self, queries: np.ndarray, expand: int = 0, weight: float = 1.0) -> list[list[int]]:
        return [[self.row[h.product_id] for h in self.index.search(q, 5, expand=expand, expand_weight=weight)] for q in queries]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--validation", type=int, default=200, help="Further held-out prompts that choose the expansion setting.")
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--shop", type=Path, default=PROJECT_ROOT / "var" / "bench-index" / "catalog")
    parser.add_argument("--work", type=Path, default=PROJECT_ROOT / "var" / "eval-recommend")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "recommend")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--contended", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    started = time.perf_counter()
    settings = Settings(torch_threads=args.threads)
    config = MiniConfig()
    prompts, held_out = heldout_prompts(args.queries + args.validation, config)
    test, validation = prompts[: args.queries], prompts[args.queries :]
    shared = {p for p, _ in test} & {p for p, _ in validation}
    if shared:
        raise SystemExit(f"{len(shared)} prompts are both test and validation prompts")
    held_out.update(queries=len(test), validation_queries=len(validation), prompts_in_both_sets=len(shared))
    logger.info("held out: %s", held_out)

    from fashion_studio.generation import Generator
    from fashion_studio.mini.evaluate import generate_images
    from fashion_studio.scoring import Scorer

    t0 = time.perf_counter()
    generator = Generator.load(settings)
    images = generate_images(generator, [p for p, _ in prompts], settings.default_steps, settings.default_guidance, 7_000_000, settings.negative_prompt or None)
    generate_s = time.perf_counter() - t0
    del generator
    specs = [s for _, s in test]
    validation_specs = [s for _, s in validation]

    # The first articles of the benchmark's 100,000-article demo shop (its shots are shared).
    shop = render_products(demo_products(100_000)[: args.products], args.shop, workers=args.threads)
    scorer = Scorer.load(settings)
    pool_images = shop.load_images()
    pool_image_vectors = np.concatenate([scorer.embed_images(pool_images[i : i + 512]) for i in range(0, len(pool_images), 512)])
    pool_text_vectors = scorer.embed_texts([product_text(p) for p in shop.products])
    all_query_vectors = scorer.embed_images(images)
    query_vectors, validation_vectors = all_query_vectors[: len(test)], all_query_vectors[len(test) :]
    pool_types = np.array([p.product_type for p in shop.products])
    pool_colours = np.array([p.colour for p in shop.products])
    shipped_expansion = (settings.index_query_expansion, settings.index_expansion_weight)

    results: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "contended": args.contended,
        "products": len(shop),
        "held_out": held_out,
        "generator": {"ref": settings.generator, "steps": settings.default_steps, "guidance": settings.default_guidance, "seconds": round(generate_s, 1)},
        "shipped_text_weight": settings.index_text_weight,
        "shipped_expansion": list(shipped_expansion),
        "clip": {},
        "expansion": {},
        "target": TARGET,
    }
    work = args.work / time.strftime("%Y%m%d-%H%M%S")
    for weight in WEIGHTS:
        pool = Pool(work / f"w{weight:g}", shop.products, pool_image_vectors, pool_text_vectors, weight)
        row = precision(pool.top5(query_vectors), pool_types, pool_colours, specs)
        # a shop's own shot as the query: is that article among the top 5?
        own = pool.top5(pool_image_vectors[:IDENTITY])
        row["own_article_in_top5"] = round(float(np.mean([i in top for i, top in enumerate(own)])), 4)
        results["clip"][f"{weight:g}"] = row
        if weight != settings.index_text_weight:
            continue
        for expand, expand_weight in EXPANSIONS:
            key = f"{expand}x{expand_weight:g}"
            entry = {
                "validation": precision(pool.top5(validation_vectors, expand, expand_weight), pool_types, pool_colours, validation_specs),
                "test": precision(pool.top5(query_vectors, expand, expand_weight), pool_types, pool_colours, specs),
            }
            own = pool.top5(pool_image_vectors[:IDENTITY], expand, expand_weight)
            entry["own_article_in_top5"] = round(float(np.mean([i in top for i, top in enumerate(own)])), 4)
            results["expansion"][key] = entry
            logger.info("expansion %s: %s", key, entry)
        results["no_expansion_validation"] = precision(pool.top5(validation_vectors), pool_types, pool_colours, validation_specs)
    # chosen on the validation prompts only: the best type-and-colour precision, then the fewer products
    chosen = max(results["expansion"], key=lambda key: (results["expansion"][key]["validation"]["type_colour"], -int(key.split("x")[0])))
    results["chosen_on_validation"] = chosen
    pixels = np.stack([np.asarray(im.resize((64, 64)), np.float32).ravel() for im in pool_images])
    query_pixels = np.stack([np.asarray(im.convert("RGB").resize((64, 64)), np.float32).ravel() for im in images[: len(test)]])
    distances = (query_pixels**2).sum(1)[:, None] - 2 * query_pixels @ pixels.T + (pixels**2).sum(1)[None, :]
    results["pixels"] = precision(np.argsort(distances, axis=1)[:, :5].tolist(), pool_types, pool_colours, specs)
    shipped_key = f"{shipped_expansion[0]}x{shipped_expansion[1]:g}"
    shipped = results["expansion"][shipped_key]["test"] if shipped_expansion[0] else results["clip"][f"{settings.index_text_weight:g}"]
    results["shipped"] = shipped
    results["target_met"] = shipped["type"] >= TARGET and shipped["type_colour"] >= TARGET
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    write_page(args.out.with_suffix(".md"), results, settings, test)
    logger.info("wrote %s.md: %s", args.out, {k: results[k] for k in ("clip", "expansion", "pixels")})


def write_page(path: Path, results: dict, settings: Settings, test: list) -> None:
    h = results["held_out"]

    def expansion_words(first: float, weight: float) -> str:
        return f"the first {first:g} product{'' if first == 1 else 's'}, weight {weight:g}"

    rows = "\n".join(
        f"| CLIP, text weight {w}{' (shipped)' if float(w) == settings.index_text_weight else ''}, no expansion | {v['type']:.3f} | {v['type_colour']:.3f} | {v['own_article_in_top5']:.3f} |"
        for w, v in results["clip"].items()
    )
    shipped_key = "x".join(f"{v:g}" for v in results["shipped_expansion"])
    expansion_rows = "\n".join(
        f"| {key.split('x')[0]} | {key.split('x')[1]} | {e['validation']['type_colour']:.3f} | {e['test']['type']:.3f} | {e['test']['type_colour']:.3f} | {e['own_article_in_top5']:.3f} |"
        f" {', '.join(n for n, on in (('shipped', key == shipped_key), ('chosen on validation', key == results['chosen_on_validation'])) if on)} |"
        for key, e in results["expansion"].items()
    )
    none = results["clip"][f"{settings.index_text_weight:g}"]
    shipped = results["shipped"]
    example = ", ".join(f'"{p}"' for p, _ in test[:3])
    path.write_text(f"""# Recommendation quality: generated images against the demo shop

`make eval-recommend` writes this page and [recommend.json](recommend.json) (run of {results["date"]}{", on a machine shared with other work" if results["contended"] else ""}; {results["seconds"]:.0f} s).

## What is measured
{h["queries"]} query images drawn by fashion-mini's generator (`{results["generator"]["ref"]}`, {results["generator"]["steps"]} steps, guidance
{results["generator"]["guidance"]}, in-process) are looked up among {results["products"]:,} demo products (`fashion-studio index demo-catalog`).
precision@5 is the share of the top 5 with the query's product type, and with its type and colour.
CLIP ranks by the index's vectors: each product's fused image-and-text vector, at several text weights,
searched by `ProductIndex.search` over a real embedded store, as `/recommend` searches it. The seed projects ranked
by Euclidean distance on raw pixels.

An image query holds no text, while the index's vectors do. `/recommend` therefore expands an image query
(average query expansion, Chum et al., ICCV 2007): the query's first N products' mean vector is added to it at a weight,
and the sum is searched again under the same filters. The setting is chosen on {h["validation_queries"]} further
validation prompts, drawn from the same held-out stream as the test prompts; no prompt is in both sets
({h["prompts_in_both_sets"]} shared, checked). The test prompts only report the result.

## What was held out, checked by code
fashion_studio/mini/data.py draws training and held-out products from separate seed streams and drops a
held-out German description that occurs in training; it holds out texts, not kinds of product. Here the
prompts are the short English captions of held-out products, and a caption whose exact text is among the
{h["training_captions"]:,} captions of the generator's {h["training_items"]:,} training items is skipped: of {h["candidate_captions"]} candidate
captions {h["candidates_found_in_training_captions"]} were in training and skipped, and {h["candidates_already_chosen"]} repeated a prompt already chosen; {h["query_prompts_in_training_captions"]} of the {h["queries"] + h["validation_queries"]} test and validation prompts are training
captions, {h["query_german_descriptions_in_training"]} of their products' German descriptions are training descriptions. The (type, colour, pattern)
combinations are not held out: the prompts cover {h["query_type_colour_pattern_combinations"]} combinations, {h["of_which_seen_in_training"]} of them seen in training
(the training items cover {h["training_combinations"]} of the vocabulary's {h["vocabulary_combinations"]} combinations). Examples: {example}.

## Results
| ranking | precision@5, same type | precision@5, same type and colour | a catalog shot finds its own article in the top 5 |
|---|---|---|---|
{rows}
| CLIP, text weight {settings.index_text_weight}, expanded as shipped ({expansion_words(*results["shipped_expansion"])}) | {shipped["type"]:.3f} | {shipped["type_colour"]:.3f} | {results["expansion"].get(shipped_key, {}).get("own_article_in_top5", float("nan")):.3f} |
| Euclidean distance on raw pixels (seed) | {results["pixels"]["type"]:.3f} | {results["pixels"]["type_colour"]:.3f} | - |

### Query expansion at the shipped text weight
Without expansion: validation {results["no_expansion_validation"]["type_colour"]:.3f}, test {none["type"]:.3f} / {none["type_colour"]:.3f} (type / type and colour).

| first products | weight | validation, type and colour | test, type | test, type and colour | own article in top 5 | |
|---|---|---|---|---|---|---|
{expansion_rows}

Target: CLIP precision@5 at least {results["target"]} for the same type and for the same type and colour, with the shipped
settings: {"met" if results["target_met"] else "not met"} ({shipped["type"]:.3f} and {shipped["type_colour"]:.3f}).
A larger text share raises both precisions on these queries a little (the product's text names exactly its
type and colour), but a shop's own shot then stops finding its own article: articles that share a title differ
only in their images. The shipped weight (`FASHION_INDEX_TEXT_WEIGHT`, {settings.index_text_weight}) keeps the article itself
in the top 5 for {none["own_article_in_top5"]:.0%} of {IDENTITY:,} catalog shots; the expansion
(`FASHION_INDEX_QUERY_EXPANSION`, `FASHION_INDEX_EXPANSION_WEIGHT`) lends an image query its neighbours' text instead.
""")


if __name__ == "__main__":
    main()
