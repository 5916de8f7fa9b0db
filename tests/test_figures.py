"""Dressed figures (fashion_studio.mini.figures): deterministic, exact and consistent masks, garments in
their colour family, try-on pairs that differ only inside the garment masks, clear spec errors; and the
product renderer it shares code with draws the same pixels as before."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

from fashion_studio.mini.figures import (
    BODIES,
    LOWER_TYPES,
    MASK_NAMES,
    SKIN_TONES,
    TOP_TYPES,
    UPPER_TYPES,
    FigureSpec,
    category_of,
    dress_figure,
    figure_caption,
    random_figure,
    random_garment,
    render_figure,
)
from fashion_studio.mini.render import Spec, render
from fashion_studio.mini.vocab import COLOUR_NAMES, COLOURS

# Product shots and the SHA-256 of their pixels, computed with render.py as it was before its drawing
# helpers were shared with the figures: the refactoring must not change a pixel.
PINNED = [
    (
        Spec(
            "t-shirt",
            "red",
            "stripes",
            scale=0.98,
            rotation=-4.5,
            dx=-0.015,
            dy=0.024,
            shade=1.07,
            tint=(-5.7, -6.7, -5.1),
            pattern_scale=0.96,
            pattern_phase=0.17,
        ),
        "d2a3da0dae799ea67562215957710b0fdba4bee30602a59cab92094df2104cf5",
    ),
    (
        Spec(
            "shirt",
            "white",
            "checks",
            "men",
            "linen",
            scale=0.97,
            rotation=1.9,
            dx=-0.03,
            dy=0.005,
            shade=0.9,
            tint=(-0.5, 7.6, 4.8),
            pattern_scale=1.03,
            pattern_phase=0.33,
        ),
        "cdc6621ebce49532e4df061e82e3dfc05d80bb5ecba59bc2c12d059fc139e1ae",
    ),
    (
        Spec(
            "jacket", "navy", "dots", scale=0.92, rotation=-0.9, dx=-0.018, dy=0.03, shade=0.94, tint=(-3.6, 4.9, -3.7), pattern_scale=0.93, pattern_phase=0.07
        ),
        "1f71c58af078732af5e6fefa1b334f532937dc0dd9e89db31e36d92dcca9ac23",
    ),
    (
        Spec(
            "trousers",
            "black",
            "checks",
            scale=0.96,
            rotation=-3.8,
            dx=0.031,
            dy=-0.017,
            shade=1.04,
            tint=(-0.2, -0.5, 7.4),
            pattern_scale=1.12,
            pattern_phase=0.08,
        ),
        "7e8bb1366e61193b1db6b61124f249369c6b081565cbdc4b9d85bd9010fa954e",
    ),
    (
        Spec(
            "dress",
            "yellow",
            "zigzag",
            scale=0.93,
            rotation=-5.0,
            dx=0.032,
            dy=0.004,
            shade=0.97,
            tint=(5.3, -2.4, 2.9),
            pattern_scale=0.92,
            pattern_phase=0.02,
        ),
        "ffeec6fd5bb205f9565bdff7a8b90fb3c964037c173a671bb71f2deb35d3ffae",
    ),
    (
        Spec("sneakers", "pink", "plain", scale=0.98, rotation=-2.6, dx=-0.013, dy=-0.018, shade=0.95, tint=(1.1, -2.7, -1.2)),
        "fe03f9e7d2947a51f48781b82efdaa0b33c6aee3691bf4d4c876d4299589ae06",
    ),
    (
        Spec(
            "skirt", "orange", "dots", scale=0.97, rotation=-1.3, dx=-0.008, dy=0.036, shade=0.91, tint=(-2.8, 0.3, 1.6), pattern_scale=0.86, pattern_phase=0.24
        ),
        "1bd58718ee9654b52bb0fe0a9f5a9f07e68633819aac35f9b17d87c8b6686e8c",
    ),
    (
        Spec(
            "cap",
            "green",
            "stripes",
            scale=0.91,
            rotation=-7.9,
            dx=-0.014,
            dy=-0.007,
            shade=1.05,
            tint=(-7.8, 3.5, -0.7),
            pattern_scale=1.03,
            pattern_phase=0.15,
        ),
        "e41ea3b4d134c1c5834f655ed36668dae2b188071bd94cea2b11f74409be8694",
    ),
    (Spec("handbag", "brown", "plain"), "61a02397bcd78ad924e63abef60fea22f574f872056ccff74cf0c2a98fe73fbe"),
    (Spec("shorts", "grey", "checks"), "eec1b7a47c3aab8882a695f80b672486d7f62d96bdd10285c729f95b863ea5bb"),
    (Spec("t-shirt", "purple", "dots", scale=0.85, rotation=7.0), "de7588d280e8e84c4835985e31d6c3fa1f7b163a4d72f6a9d5ccf4fb06a1547c"),
    (Spec("shirt", "blue", "zigzag", dx=0.04, dy=-0.04), "17721b877f83e48418b97108bf491b168cec9cea13ef35973fe72d7edcf18d2c"),
]

OUTFIT = FigureSpec(Spec("t-shirt", "red", "stripes"), Spec("trousers", "navy"))


@pytest.mark.parametrize(("spec", "digest"), PINNED, ids=[f"{s.product_type}-{s.colour}" for s, _ in PINNED])
def test_product_renderer_is_unchanged(spec: Spec, digest: str) -> None:
    assert hashlib.sha256(np.asarray(render(spec)).tobytes()).hexdigest() == digest


def test_figure_is_deterministic() -> None:
    spec = random_figure(np.random.default_rng(11))
    first, second = render_figure(spec), render_figure(spec)
    assert first.array().shape == (64, 64, 3) and first.array().dtype == np.uint8
    assert np.array_equal(first.array(), second.array())
    assert all(np.array_equal(first.masks[name], second.masks[name]) for name in MASK_NAMES)
    assert (first.array()[0, 0] > 240).all()  # the white studio background
    assert not np.array_equal(first.array(), render_figure(replace(spec, skin="dark" if spec.skin != "dark" else "light")).array())
    # the same per seed
    assert random_figure(np.random.default_rng(3)) == random_figure(np.random.default_rng(3))


def test_masks_are_consistent() -> None:
    rng = np.random.default_rng(0)
    specs = [random_figure(rng) for _ in range(6)] + [random_figure(rng, bodies=("woman",), dress_share=1.0)]
    assert any(s.bottom is None for s in specs) and any(s.bottom is not None for s in specs)
    for spec in specs:
        masks = render_figure(spec).masks
        assert set(masks) == set(MASK_NAMES)
        assert all(m.shape == (64, 64) and m.dtype == bool for m in masks.values())
        upper, lower, full, person = (masks[name] for name in MASK_NAMES)
        assert not (upper & lower).any()
        assert not (full & ~person).any()
        assert 0.1 < person.mean() < 0.5 and not person[0].any() and not person[:, 0].any()
        if spec.bottom is None:  # a dress: neither a top nor a bottom
            assert not upper.any() and not lower.any() and full.sum() > 250
        else:
            assert np.array_equal(full, upper | lower)
            assert upper.sum() > 200 and lower.sum() > 30
            assert upper[:32].sum() > upper[32:].sum() and lower[32:].sum() > lower[:32].sum()  # a top above, a bottom below


def test_masks_are_exact() -> None:
    """A garment's mask is exactly the pixels it owns: recolouring it changes all of them and no other."""
    before = render_figure(OUTFIT)
    for slot, garment in (("upper", Spec("t-shirt", "green")), ("lower", Spec("trousers", "yellow", "dots"))):
        after = render_figure(dress_figure(OUTFIT, garment))
        changed = (before.array() != after.array()).any(axis=-1)
        assert np.array_equal(changed, before.masks[slot]) and np.array_equal(before.masks[slot], after.masks[slot])


def _nearest_colour(rgb: np.ndarray) -> str:
    table = np.array([c.rgb for c in COLOURS], dtype=np.float64)
    return COLOURS[int(np.argmin(np.linalg.norm(table - rgb, axis=1)))].name


def test_garments_have_their_colour() -> None:
    """Plain garments of every colour as tops and bottoms (half of them as dresses), every type: the mean
    colour inside each garment's mask is nearest to the garment's vocabulary colour."""
    n = len(COLOUR_NAMES)
    specs = []
    for i, colour in enumerate(COLOUR_NAMES):
        person = {"body": BODIES[i % 2], "skin": tuple(SKIN_TONES)[i % len(SKIN_TONES)]}
        specs.append(FigureSpec(Spec(UPPER_TYPES[i % 3], colour), Spec(LOWER_TYPES[(i + 1) % 3], COLOUR_NAMES[(i + 5) % n]), **person))
        if i % 2 == 0:
            specs.append(FigureSpec(Spec("dress", colour), **person))
        else:
            specs.append(FigureSpec(Spec(UPPER_TYPES[(i + 1) % 3], colour), Spec(LOWER_TYPES[(i + 2) % 3], COLOUR_NAMES[(i + 7) % n]), **person))
    checked: set[tuple[str, str]] = set()
    for spec in specs:
        figure = render_figure(spec)
        for category, garment in spec.garments().items():
            mean = figure.array()[figure.masks[category]].mean(axis=0)
            assert _nearest_colour(mean) == garment.colour, (garment, mean)
            checked.add((category_of(garment.product_type), garment.colour))
    by_category = {category: {c for k, c in checked if k == category} for category in ("upper", "lower", "full")}
    assert by_category["upper"] == by_category["lower"] == set(COLOUR_NAMES) and len(by_category["full"]) == n // 2


def test_garment_types_look_different() -> None:
    """Sleeves, legs and hems: each type covers its own region of the figure."""
    areas = {}
    for top in TOP_TYPES:
        figure = render_figure(FigureSpec(Spec(top, "red"), None if top == "dress" else Spec("skirt", "blue")))
        areas[top] = figure.masks["full" if top == "dress" else "upper"]
    for bottom in LOWER_TYPES:
        areas[bottom] = render_figure(FigureSpec(Spec("t-shirt", "red"), Spec(bottom, "blue"))).masks["lower"]
    names = list(areas)
    for a in names:
        for b in names[names.index(a) + 1 :]:
            assert (areas[a] ^ areas[b]).sum() > 25, (a, b)
    arms = np.s_[27:36, 16:25]  # the left forearm
    assert areas["t-shirt"][arms].sum() < areas["shirt"][arms].sum() <= areas["jacket"][arms].sum()
    assert areas["shorts"].sum() < areas["skirt"].sum() < areas["trousers"].sum()


@pytest.mark.parametrize(
    ("garment", "companion", "slot"),
    [
        (Spec("shirt", "white", "checks", pattern_scale=1.1, shade=0.95), None, "upper"),
        ({"product_type": "skirt", "colour": "purple", "pattern": "dots"}, None, "lower"),
        (Spec("dress", "yellow", "plain"), None, "full"),
    ],
)
def test_dress_figure_changes_only_the_garment(garment, companion, slot: str) -> None:
    person = random_figure(np.random.default_rng(21), bodies=("woman",), dress_share=0.0)
    dressed = dress_figure(person, garment, companion)
    garments = dressed.garments()
    assert replace(dressed, top=person.top, bottom=person.bottom) == person  # pose, body, hair untouched
    if slot != "full":
        other = "lower" if slot == "upper" else "upper"
        assert garments[other] == person.garments()[other]
    before, after = render_figure(person), render_figure(dressed)
    allowed = before.masks[slot] | after.masks[slot]
    changed = (before.array() != after.array()).any(axis=-1)
    assert changed.any() and not (changed & ~allowed).any()
    # and back again, from a dress to a top with a companion bottom
    if slot == "full":
        undressed = dress_figure(dressed, person.top, companion=person.bottom)
        assert undressed == person
        assert np.array_equal(render_figure(undressed).array(), before.array())


def test_dress_figure_errors() -> None:
    in_dress = FigureSpec(Spec("dress", "red"))
    with pytest.raises(ValueError, match="companion"):
        dress_figure(in_dress, Spec("t-shirt", "blue"))
    with pytest.raises(ValueError, match="companion: a t-shirt needs a bottom"):
        dress_figure(in_dress, Spec("t-shirt", "blue"), companion=Spec("jacket", "blue"))
    with pytest.raises(ValueError, match="product_type 'cap' is not worn"):
        dress_figure(OUTFIT, Spec("cap", "blue"))
    with pytest.raises(ValueError, match="garment.colour 'teal'"):
        dress_figure(OUTFIT, {"product_type": "shirt", "colour": "teal"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"top": Spec("cap", "red")}, r"top.product_type 'cap' is not one of \('t-shirt', 'shirt', 'jacket', 'dress'\)"),
        ({"top": Spec("t-shirt", "teal")}, "top.colour 'teal' is not one of"),
        ({"bottom": None}, "bottom is required with a t-shirt"),
        ({"bottom": Spec("shirt", "navy")}, r"bottom.product_type 'shirt' is not one of \('trousers', 'shorts', 'skirt'\)"),
        ({"bottom": Spec("skirt", "navy", "paisley")}, "bottom.pattern 'paisley' is not one of"),
        ({"top": Spec("dress", "red")}, "bottom must be None when the top is a dress"),
        ({"top": {"product_type": "t-shirt", "colour": "red"}}, "top must be a render.Spec"),
        ({"body": "child"}, r"body 'child' is not one of \('woman', 'man'\)"),
        ({"skin": "green"}, "skin 'green' is not one of"),
        ({"hair": "mohawk"}, "hair 'mohawk' is not one of"),
        ({"hair_colour": "blue"}, "hair_colour 'blue' is not one of"),
        ({"scale": 2.0}, r"scale 2.0 is outside \[0.85, 1.05\]"),
        ({"rotation": 30.0}, "rotation 30.0 is outside"),
    ],
)
def test_check_names_the_field(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(OUTFIT, **change).check()
    with pytest.raises(ValueError, match=message):
        render_figure(replace(OUTFIT, **change))


def test_category_of() -> None:
    assert [category_of(t) for t in UPPER_TYPES] == ["upper"] * 3
    assert [category_of(t) for t in LOWER_TYPES] == ["lower"] * 3
    assert category_of("dress") == "full"
    with pytest.raises(ValueError, match="'sneakers' is not worn on a figure"):
        category_of("sneakers")


def test_captions() -> None:
    assert figure_caption(OUTFIT) == "a woman wearing a red striped t-shirt and navy trousers"
    assert figure_caption(FigureSpec(Spec("dress", "yellow", "dots"))) == "a woman wearing a yellow dotted dress"
    assert (
        figure_caption(FigureSpec(Spec("jacket", "orange", "checks"), Spec("shorts", "grey"), body="man"))
        == "a man wearing an orange checked jacket and grey shorts"
    )
    assert figure_caption(FigureSpec(Spec("shirt", "white"), Spec("skirt", "orange"))) == "a woman wearing a white shirt and an orange skirt"
    rng = np.random.default_rng(0)
    variants = {figure_caption(OUTFIT, rng) for _ in range(40)}
    assert len(variants) > 3 and all("red" in v and "navy trousers" in v and "stripe" in v for v in variants)


def test_random_figures_and_their_dicts() -> None:
    rng = np.random.default_rng(1)
    specs = [random_figure(rng) for _ in range(60)]
    assert {s.body for s in specs} == set(BODIES)
    assert {s.top.product_type for s in specs} == set(TOP_TYPES)
    assert {s.bottom.product_type for s in specs if s.bottom} == set(LOWER_TYPES)
    assert not any(s.body == "man" and (s.bottom is None or s.bottom.product_type == "skirt") for s in specs)
    for spec in specs[:10]:
        assert FigureSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    garment = random_garment(rng, UPPER_TYPES, colours=("red",), patterns=("plain",))
    assert garment.product_type in UPPER_TYPES and garment.colour == "red" and garment.pattern == "plain"
