"""Held-out attribute combinations: (product type, colour, pattern) triples that no training item and no
training caption of fashion-mini's text-conditioned models (CLIP, and the UNet through CLIP's text tower)
ever names, so that "unseen" evaluation figures measure composition, not recall.

The rule is seeded and covers every value: one triple per (colour, pattern) pair, 48 of the 480, the
product types assigned by a seeded shuffle of a balanced list (each type 4 or 5 times) with no
(type, colour) pair twice, so that each held-out triple's three pairs (type x colour, type x pattern,
colour x pattern) all still occur in training. `check_held_out` is the proof the data stage runs on the
whole training set (and the tests on a sample): it reads the items' ground truth and parses every
caption with the attribute lexicon.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from fashion_studio.mini.vocab import COLOUR_NAMES, PATTERNS, TYPE_NAMES

Combination = tuple[str, str, str]  # (product type, colour, pattern)
SPLIT_VERSION = 1
# Stock phrases of the caption templates that carry a colour word without describing the product.
_BOILERPLATE = re.compile(r"\b(clean )?white background\b")


def combination(spec) -> Combination:
    return (spec.product_type, spec.colour, spec.pattern)


@lru_cache(maxsize=8)
def held_out_combinations(seed: int = 0) -> tuple[Combination, ...]:
    """The held-out triples of family seed `seed`: every colour x pattern pair once, types balanced."""
    rng = np.random.default_rng([seed, 48_480])
    slots = [(colour, pattern) for pattern in PATTERNS for colour in COLOUR_NAMES]
    repeats = -(-len(slots) // len(TYPE_NAMES))
    while True:
        types = [TYPE_NAMES[k] for k in rng.permutation(np.repeat(np.arange(len(TYPE_NAMES)), repeats))[: len(slots)]]
        pairs = {(t, c) for t, (c, _) in zip(types, slots)}
        if len(pairs) == len(slots):  # no type twice for one colour
            return tuple(sorted((t, c, p) for t, (c, p) in zip(types, slots)))


def split_summary(seed: int = 0) -> dict:
    """What the training record and eval.json say about the split."""
    held = held_out_combinations(seed)
    return {
        "version": SPLIT_VERSION,
        "rule": "one (type, colour, pattern) per colour x pattern pair; types from a seeded shuffle, each 4 or 5 times, no (type, colour) pair twice",
        "seed": seed,
        "held_out": len(held),
        "of": len(TYPE_NAMES) * len(COLOUR_NAMES) * len(PATTERNS),
        "combinations": [list(c) for c in held],
    }


def named_combinations(text: str) -> set[Combination]:
    """The (type, colour, pattern) triples an English caption names, read by the attribute lexicon: every
    colour it names with every pattern it names, or with "plain" when it names none (in the catalog data
    a caption without a pattern word is of a plain product). A caption naming no type or no colour names none."""
    from fashion_studio.attributes import extract_attributes

    attributes = extract_attributes(_BOILERPLATE.sub("background", text), "en")
    if attributes.product_type not in TYPE_NAMES:
        return set()
    patterns = [p for p in attributes.patterns if p in PATTERNS] or ["plain"]
    return {(attributes.product_type, c, p) for c in attributes.colors if c in COLOUR_NAMES for p in patterns}


def check_held_out(items: Iterable, held: Iterable[Combination]) -> dict[str, int]:
    """Raise AssertionError when a training item is of a held-out combination, or one of its captions
    names one (by its labels or by its words); return what was checked."""
    held = set(held)
    texts: set[str] = set()
    count = 0
    for item in items:
        count += 1
        if combination(item.spec) in held:
            raise AssertionError(f"training item {item.german!r} is of held-out combination {combination(item.spec)}")
        for caption in item.captions:
            if caption.colour is not None and (caption.product_type, caption.colour, caption.pattern or "plain") in held:
                raise AssertionError(f"training caption {caption.text!r} is labelled with a held-out combination")
            texts.add(caption.text)
    for text in texts:
        found = named_combinations(text) & held
        if found:
            raise AssertionError(f"training caption {text!r} names held-out combination {sorted(found)[0]}")
    return {"items": count, "distinct_captions": len(texts)}


__all__ = ["Combination", "check_held_out", "combination", "held_out_combinations", "named_combinations", "split_summary"]
