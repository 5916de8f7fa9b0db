"""Data sets of the fashion-mini catalog: rendered products with their texts, cached on disk.

- `training_set`: what CLIP and the UNet train on: products of every (type, colour, pattern) combination
  except the held-out ones (`split.held_out_combinations`), checked by `split.check_held_out`.
- `all_combinations_set`: the same seed stream without the split, for the models that read no text (the
  judge, the VAE).
- `heldout_sets`: products of seen combinations, and of held-out (unseen) combinations, each from a seed
  stream of its own; a held-out German description that also occurs in a training text (the training
  set's, the translator's pairs) is dropped, so every evaluation text is unseen too.

Rendering runs in a few worker processes; the cache (`images.npy` + `items.json`) is keyed by the seed,
the size and what a set leaves out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashion_studio.mini.render import IMAGE_SIZE, Spec, render_array
from fashion_studio.mini.split import Combination, combination, held_out_combinations
from fashion_studio.mini.text import Caption, captions, german_description, sample_spec

logger = logging.getLogger(__name__)

DATA_VERSION = 2
TRAIN, HELDOUT, UNSEEN = "train", "heldout", "unseen"


@dataclass(frozen=True)
class Item:
    spec: Spec
    german: str
    english: str
    captions: tuple[Caption, ...]

    def to_dict(self) -> dict:
        return {
            "spec": self.spec.to_dict(),
            "german": self.german,
            "english": self.english,
            "captions": [c.__dict__ for c in self.captions],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Item:
        spec = dict(data["spec"])
        spec["tint"] = tuple(spec["tint"])
        return cls(Spec(**spec), data["german"], data["english"], tuple(Caption(**c) for c in data["captions"]))


def split_seed(seed: int, split: str) -> int:
    return seed * 1000 + {TRAIN: 1, HELDOUT: 2, UNSEEN: 3}[split]


def make_items(
    n: int,
    seed: int,
    split: str = TRAIN,
    exclude: Iterable[str] = (),
    exclude_combinations: Iterable[Combination] = (),
    combinations: Sequence[Combination] | None = None,
) -> list[Item]:
    """`n` products with a German description, its translation and captions; deterministic per seed.
    `exclude` drops descriptions, `exclude_combinations` products of those combinations; `combinations`
    draws products of those combinations only."""
    rng = np.random.default_rng(split_seed(seed, split))
    excluded = set(exclude)
    left_out = set(exclude_combinations)
    items: list[Item] = []
    while len(items) < n:
        spec = sample_spec(rng, combinations)
        if left_out and combination(spec) in left_out:
            continue
        german, english = german_description(spec, rng)
        if german in excluded:
            continue
        items.append(Item(spec, german, english, tuple(captions(spec, rng, german, english))))
    return items


def render_images(specs: Sequence[Spec], workers: int = 2) -> np.ndarray:
    """Rendered images as uint8 (n, 64, 64, 3)."""
    if workers > 1 and len(specs) > 256:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            arrays = pool.map(render_array, specs, chunksize=256)
    else:
        arrays = [render_array(s) for s in specs]
    return np.stack(arrays) if arrays else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)


@dataclass
class RenderedSet:
    items: list[Item]
    images: np.ndarray  # uint8 (n, 64, 64, 3)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "images.npy", self.images)
        (folder / "items.json").write_text(json.dumps([i.to_dict() for i in self.items], ensure_ascii=False))

    @classmethod
    def load(cls, folder: Path) -> RenderedSet:
        items = [Item.from_dict(d) for d in json.loads((folder / "items.json").read_text())]
        return cls(items, np.load(folder / "images.npy"))


def _set_folder(work: Path, n: int, seed: int, split: str, excluded: list[str], left_out: list[Combination], combinations: list[Combination] | None) -> Path:
    parts = excluded + ([f"without {c}" for c in left_out]) + ([f"only {c}" for c in combinations] if combinations else [])
    tag = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:8] if parts else "all"
    return work / "data" / f"{split}-{n}-seed{seed}-v{DATA_VERSION}-{tag}"


def rendered_set(
    work: Path,
    n: int,
    seed: int,
    split: str,
    exclude: Iterable[str] = (),
    workers: int = 2,
    exclude_combinations: Iterable[Combination] = (),
    combinations: Sequence[Combination] | None = None,
    render: bool = True,
) -> RenderedSet:
    """The rendered set for (n, seed, split, what it leaves out), from the cache under `work` or made now
    and cached. With `render=False` a set that is not cached comes without images (texts only, cheap)."""
    excluded = sorted(set(exclude))
    left_out = sorted(set(exclude_combinations))
    only = sorted(set(combinations)) if combinations else None
    folder = _set_folder(work, n, seed, split, excluded, left_out, only)
    if (folder / "items.json").is_file() and (folder / "images.npy").is_file():
        return RenderedSet.load(folder)
    items = make_items(n, seed, split, excluded, left_out, only)
    if not render:
        return RenderedSet(items, np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8))
    logger.info("rendering %d %s images", n, split)
    data = RenderedSet(items, render_images([i.spec for i in items], workers))
    data.save(folder)
    return data


def text_pairs(n: int, seed: int, split: str = TRAIN, exclude: Iterable[str] = ()) -> list[tuple[str, str]]:
    """German descriptions and their translations only (cheap: nothing is rendered)."""
    rng = np.random.default_rng(split_seed(seed, split) + 500)
    excluded = set(exclude)
    pairs: list[tuple[str, str]] = []
    while len(pairs) < n:
        spec = sample_spec(rng)
        german, english = german_description(spec, rng)
        if german not in excluded:
            pairs.append((german, english))
    return pairs


# --- the sets the trainer and the evaluation share ---------------------------------------------------


def training_set(work: Path, n: int, seed: int, workers: int = 2, render: bool = True) -> RenderedSet:
    """CLIP's and the UNet's training products: every combination but the held-out ones."""
    return rendered_set(work, n, seed, TRAIN, workers=workers, exclude_combinations=held_out_combinations(seed), render=render)


def all_combinations_set(work: Path, n: int, seed: int, workers: int = 2) -> RenderedSet:
    """Renders of every combination, for the models that read no text (the judge, the VAE)."""
    return rendered_set(work, n, seed, TRAIN, workers=workers)


def trained_german(items: Iterable[Item], translation_pairs: int, seed: int) -> set[str]:
    """Every German text a fashion-mini model trained on, which held-out data leaves out: the training
    products' descriptions (`items`) and the translator's `translation_pairs` training pairs."""
    return {item.german for item in items} | {de for de, _ in text_pairs(translation_pairs, seed, TRAIN)}


def heldout_sets(work: Path, n: int, seed: int, trained_german: Iterable[str], workers: int = 2) -> tuple[RenderedSet, RenderedSet]:
    """(seen, unseen): held-out products of the training combinations and of the held-out combinations,
    with no German description that a model trained on (`trained_german`)."""
    held = held_out_combinations(seed)
    trained = set(trained_german)
    seen = rendered_set(work, n, seed, HELDOUT, exclude=trained, workers=workers, exclude_combinations=held)
    unseen = rendered_set(work, n, seed, UNSEEN, exclude=trained, workers=workers, combinations=held)
    return seen, unseen
