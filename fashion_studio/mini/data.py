"""Data sets of the fashion-mini catalog: rendered products with their texts, cached on disk.

The training and held-out sets come from separate seed streams, and a held-out German description that
also occurs in the training set is dropped, so every evaluation text is unseen. Rendering runs in a few
worker processes; the cache (`images.npy` + `items.json`) is keyed by the seed and the size.
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
from fashion_studio.mini.text import Caption, captions, german_description, sample_spec

logger = logging.getLogger(__name__)

DATA_VERSION = 2
TRAIN, HELDOUT = "train", "heldout"


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
    return seed * 1000 + {TRAIN: 1, HELDOUT: 2}[split]


def make_items(n: int, seed: int, split: str = TRAIN, exclude: Iterable[str] = ()) -> list[Item]:
    """`n` products with a German description, its translation and captions; deterministic per seed."""
    rng = np.random.default_rng(split_seed(seed, split))
    excluded = set(exclude)
    items: list[Item] = []
    while len(items) < n:
        spec = sample_spec(rng)
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


def rendered_set(work: Path, n: int, seed: int, split: str, exclude: Iterable[str] = (), workers: int = 2) -> RenderedSet:
    """The rendered set for (n, seed, split), from the cache under `work` or rendered now and cached."""
    excluded = sorted(set(exclude))
    tag = hashlib.sha256("\n".join(excluded).encode()).hexdigest()[:8] if excluded else "all"
    folder = work / "data" / f"{split}-{n}-seed{seed}-v{DATA_VERSION}-{tag}"
    if (folder / "items.json").is_file() and (folder / "images.npy").is_file():
        return RenderedSet.load(folder)
    items = make_items(n, seed, split, excluded)
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
