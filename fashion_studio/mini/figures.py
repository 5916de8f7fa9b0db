"""Dressed figures: a front-view person wearing a top and a bottom (or a dress) on the studio background,
64x64, with exact per-garment masks.

This is the small world's person renderer, the material for the stages that put garments on people: a
segmenter (a garment's mask from a few clicks), inpainting, virtual try-on (person and garment side by
side), and reading the colours of figures generated from prompts. A figure is a few skin-coloured shapes
(head, neck, torso, arms, legs, feet) in a frame of its own (x right, y down, about [-1.1, 1.1], small
pose jitter); each garment is drawn over it with `fashion_studio.mini.render`'s palette, pattern and
fabric painting, so a worn garment has the colours of its product shot, and its pattern is laid out in
the garment's own frame.

Exact masks and try-on pairs: everything is drawn at twice the size and box-downsampled, like the
product shots, but each garment is composited at the output resolution: a pixel is the garment's
(its mean colour over the covered sub-pixels) exactly when the garment covers at least half of it,
and that is the garment's mask. So the masks are the pixels each garment owns, the body and its
edges against the studio stay anti-aliased, and dressing a person in another garment
(`dress_figure`) changes no pixel outside the old and the new garment's masks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image

from fashion_studio.mini import render as product
from fashion_studio.mini.render import IMAGE_SIZE, Spec, random_variation
from fashion_studio.mini.vocab import COLOUR_NAMES, PATTERNS
from fashion_studio.model_shots import Garment

Point = tuple[float, float]

# Garment categories: the slot a garment fills on a figure, and the key of its mask.
UPPER_TYPES: tuple[str, ...] = ("t-shirt", "shirt", "jacket")
LOWER_TYPES: tuple[str, ...] = ("trousers", "shorts", "skirt")
FULL_TYPES: tuple[str, ...] = ("dress",)
TOP_TYPES: tuple[str, ...] = UPPER_TYPES + FULL_TYPES  # what `FigureSpec.top` may be
CATEGORIES: tuple[str, ...] = ("upper", "lower", "full")
MASK_NAMES: tuple[str, ...] = ("upper", "lower", "full", "person")

BODIES: tuple[str, ...] = ("woman", "man")
SKIN_TONES: dict[str, tuple[int, int, int]] = {
    "light": (241, 208, 184),
    "medium": (218, 170, 130),
    "tan": (186, 132, 94),
    "deep": (140, 94, 64),
    "dark": (98, 66, 46),
}
HAIR_STYLES: tuple[str, ...] = ("short", "long", "bun", "none")
HAIR_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (34, 30, 28),
    "brown": (96, 62, 38),
    "blonde": (214, 180, 110),
    "grey": (168, 166, 162),
}
# What `random_figure` dresses each body in (any combination renders; these are the usual ones).
_WEARS: dict[str, tuple[tuple[str, ...], tuple[str, ...], float]] = {
    # body: (tops, bottoms, share of dresses)
    "woman": (UPPER_TYPES, LOWER_TYPES, 0.25),
    "man": (UPPER_TYPES, ("trousers", "shorts"), 0.0),
}
_HAIR_BY_BODY: dict[str, tuple[str, ...]] = {"woman": ("long", "bun", "short"), "man": ("short", "short", "none")}

# Pose jitter limits (`FigureSpec.check`) and the ranges `random_figure` draws from.
_POSE_LIMITS = {"scale": (0.85, 1.05), "rotation": (-8.0, 8.0), "dx": (-0.06, 0.06), "dy": (-0.05, 0.05)}
_POSE_RANDOM = {"scale": (0.9, 1.0), "rotation": (-3.0, 3.0), "dx": (-0.035, 0.035), "dy": (-0.02, 0.02)}
# A worn garment is much smaller than its product shot: its pattern is laid out at this scale so that
# stripes, dots and checks stay a few pixels wide.
FIGURE_PATTERN_SCALE = 0.6
# Garment outlines are drawn half as wide as on product shots (one canvas pixel): a worn garment is
# narrow, and wider outlines would darken it into the neighbouring colour (yellow into orange).
_OUTLINE = 1


def category_of(product_type: str) -> str:
    """The slot a garment type fills on a figure: "upper", "lower" or "full" (a dress)."""
    if product_type in UPPER_TYPES:
        return "upper"
    if product_type in LOWER_TYPES:
        return "lower"
    if product_type in FULL_TYPES:
        return "full"
    raise ValueError(f"product_type {product_type!r} is not worn on a figure: one of {UPPER_TYPES + LOWER_TYPES + FULL_TYPES}")


def _garment(value: Spec | Mapping[str, Any], name: str) -> Spec:
    """A garment as a checked `render.Spec` (from a Spec or its dict); errors name the field `name`."""
    if isinstance(value, Spec):
        spec = value
    elif isinstance(value, Mapping):
        data = dict(value)
        if "tint" in data:
            data["tint"] = tuple(data["tint"])
        try:
            spec = Spec(**data)
        except TypeError as error:
            raise ValueError(f"{name}: {error}") from None
    else:
        raise ValueError(f"{name} must be a render.Spec or a dict of its fields, not {type(value).__name__}")
    try:
        return spec.check()
    except ValueError as error:
        raise ValueError(f"{name}.{error}") from None


@dataclass(frozen=True)
class FigureSpec:
    """What one dressed figure shows: the garments (product specs: type, colour, pattern and their
    shade, tint and pattern layout; the shot layout fields scale/rotation/dx/dy play no part), the
    person, and the small pose jitter.

    `top` is an upper garment (t-shirt, shirt, jacket) with a `bottom` (trousers, shorts, skirt), or a
    dress with no bottom.
    """

    top: Spec
    bottom: Spec | None = None
    body: str = "woman"
    skin: str = "medium"
    hair: str = "short"
    hair_colour: str = "brown"
    scale: float = 1.0
    rotation: float = 0.0  # degrees
    dx: float = 0.0  # offset in units of the image size
    dy: float = 0.0

    def check(self) -> FigureSpec:
        for name in ("top", "bottom"):
            value = getattr(self, name)
            if not (isinstance(value, Spec) or (name == "bottom" and value is None)):
                raise ValueError(f"{name} must be a render.Spec, not {type(value).__name__} (FigureSpec.from_dict reads dicts)")
        top = _garment(self.top, "top")
        if top.product_type not in TOP_TYPES:
            raise ValueError(f"top.product_type {top.product_type!r} is not one of {TOP_TYPES}")
        if category_of(top.product_type) == "full":
            if self.bottom is not None:
                raise ValueError(f"bottom must be None when the top is a dress, not {self.bottom!r}")
        else:
            if self.bottom is None:
                raise ValueError(f"bottom is required with a {top.product_type}: a garment of type {LOWER_TYPES}")
            bottom = _garment(self.bottom, "bottom")
            if bottom.product_type not in LOWER_TYPES:
                raise ValueError(f"bottom.product_type {bottom.product_type!r} is not one of {LOWER_TYPES}")
        for name, allowed in (("body", BODIES), ("skin", tuple(SKIN_TONES)), ("hair", HAIR_STYLES), ("hair_colour", tuple(HAIR_COLOURS))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} {getattr(self, name)!r} is not one of {allowed}")
        for name, (low, high) in _POSE_LIMITS.items():
            value = getattr(self, name)
            if not (isinstance(value, int | float) and low <= value <= high):
                raise ValueError(f"{name} {value!r} is outside [{low}, {high}]")
        return self

    def garments(self) -> dict[str, Spec]:
        """The garments worn, by category ("upper" and "lower", or "full")."""
        if self.bottom is None:
            return {"full": self.top}
        return {"upper": self.top, "lower": self.bottom}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FigureSpec:
        values = dict(data)
        values["top"] = _garment(values["top"], "top")
        if values.get("bottom") is not None:
            values["bottom"] = _garment(values["bottom"], "bottom")
        return cls(**values).check()


@dataclass(frozen=True)
class FigureRender:
    """A rendered figure: the 64x64 RGB image and its boolean 64x64 masks by `MASK_NAMES`: "upper" (the
    top), "lower" (the bottom), "full" (all the clothing: upper | lower, or the dress; upper and lower
    are empty on a dress), "person" (the whole figure with its clothes and hair)."""

    spec: FigureSpec
    image: Image.Image
    masks: dict[str, np.ndarray] = field(repr=False)

    def array(self) -> np.ndarray:
        """The image as uint8 HWC."""
        return np.asarray(self.image, dtype=np.uint8)

    def garment_masks(self) -> dict[str, np.ndarray]:
        """The mask of each garment worn, by category ("upper" and "lower", or "full")."""
        return {category: self.masks[category] for category in self.spec.garments()}


# ---------------------------------------------------------------------------------------------------
# Shapes, in the figure's frame: lists of (polygon, role) and (points, width, role), as in render.py.


def _mirror(points: list[Point]) -> list[Point]:
    """A left half (x <= 0, top to bottom) closed by its mirror image."""
    return points + [(-x, y) for x, y in reversed(points)]


def _flip(points: list[Point]) -> list[Point]:
    return [(-x, y) for x, y in points]


def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float = 0.0, end: float = 360.0, n: int = 24) -> list[Point]:
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a))) for a in np.linspace(start, end, n)]


def _limb(points: Sequence[Point], half_widths: Sequence[float], upto: float = 1.0) -> list[Point]:
    """A polygon around a polyline, `half_widths[i]` either side of `points[i]`, cut at the fraction
    `upto` of the polyline's length (a sleeve is the arm's outline, widened and cut)."""
    p = np.asarray(points, dtype=np.float64)
    w = np.asarray(half_widths, dtype=np.float64)
    lengths = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))]
    end = upto * lengths[-1]
    keep = [i for i in range(len(p)) if lengths[i] < end - 1e-9]
    t = np.interp(end, lengths, np.arange(len(p), dtype=np.float64))
    i = min(int(t), len(p) - 2)
    tip, tip_w = p[i] + (t - i) * (p[i + 1] - p[i]), w[i] + (t - i) * (w[i + 1] - w[i])
    centre = np.vstack([p[keep], tip])
    widths = np.r_[w[keep], tip_w]
    direction = np.gradient(centre, axis=0)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    normal = np.stack([-direction[:, 1], direction[:, 0]], axis=1)
    left, right = centre + normal * widths[:, None], centre - normal * widths[:, None]
    return [tuple(q) for q in left] + [tuple(q) for q in right[::-1]]


@dataclass(frozen=True)
class _Build:
    """A body's measurements in the figure frame (left side; the right mirrors it)."""

    shoulder: float  # half-width at the shoulders
    waist: float
    hip: float
    head: tuple[float, float]  # radii
    neck: float  # half-width
    arm: tuple[Point, ...]  # shoulder, elbow, wrist
    arm_widths: tuple[float, ...]
    leg: tuple[Point, ...]  # hip, knee, ankle
    leg_widths: tuple[float, ...]


_HEAD_Y = -0.88
_WAIST_Y = -0.12  # where a bottom starts
_HEM_Y = {"t-shirt": 0.12, "shirt": 0.13, "jacket": 0.21}


def _build(body: str) -> _Build:
    if body == "man":
        s = 0.28
        return _Build(
            shoulder=s,
            waist=0.2,
            hip=0.2,
            head=(0.125, 0.15),
            neck=0.06,
            arm=((-s + 0.035, -0.58), (-s - 0.085, -0.2), (-s - 0.125, 0.13)),
            arm_widths=(0.07, 0.055, 0.045),
            leg=((-0.11, 0.04), (-0.1, 0.52), (-0.088, 0.93)),
            leg_widths=(0.1, 0.065, 0.046),
        )
    s = 0.25
    return _Build(
        shoulder=s,
        waist=0.165,
        hip=0.22,
        head=(0.12, 0.15),
        neck=0.05,
        arm=((-s + 0.035, -0.58), (-s - 0.09, -0.2), (-s - 0.13, 0.13)),
        arm_widths=(0.064, 0.05, 0.04),
        leg=((-0.115, 0.04), (-0.1, 0.52), (-0.085, 0.93)),
        leg_widths=(0.105, 0.06, 0.042),
    )


def _torso(b: _Build) -> list[Point]:
    s, w, h = b.shoulder, b.waist, b.hip
    return _mirror([(0.0, -0.645), (-s + 0.04, -0.645), (-s, -0.6), (-s + 0.015, -0.42), (-w, -0.12), (-h, 0.06), (-h + 0.015, 0.15), (-0.03, 0.2)])


def _body_parts(b: _Build, hair: str) -> list[tuple[list[Point], str]]:
    """The figure without clothes, back to front; roles: "skin", "hair"."""
    parts: list[tuple[list[Point], str]] = []
    hx, hy = b.head
    if hair == "long":
        parts.append((_mirror([(0.0, _HEAD_Y - hy - 0.01), (-hx - 0.02, _HEAD_Y - 0.06), (-hx - 0.035, -0.6), (-hx + 0.02, -0.56), (0.0, -0.6)]), "hair"))
    leg = _limb(b.leg, b.leg_widths)
    foot = _ellipse(b.leg[-1][0] - 0.02, 0.975, 0.075, 0.04)
    parts += [(leg, "skin"), (_flip(leg), "skin"), (foot, "skin"), (_flip(foot), "skin"), (_torso(b), "skin")]
    arm = _limb(b.arm, b.arm_widths)
    wrist = b.arm[-1]
    hand = _ellipse(wrist[0] - 0.006, wrist[1] + 0.06, 0.045, 0.065)
    parts += [(arm, "skin"), (_flip(arm), "skin"), (hand, "skin"), (_flip(hand), "skin")]
    parts.append(([(-b.neck, _HEAD_Y + 0.06), (b.neck, _HEAD_Y + 0.06), (b.neck + 0.01, -0.62), (-b.neck - 0.01, -0.62)], "skin"))
    parts.append((_ellipse(0.0, _HEAD_Y, hx, hy, n=32), "skin"))
    if hair in ("short", "long", "bun"):
        cap = _ellipse(0.0, _HEAD_Y - 0.012, hx + 0.014, hy + 0.012, 180, 360, 20)
        side = 0.05 if hair == "short" else 0.1
        parts.append(([(-hx - 0.014, _HEAD_Y + side), *cap, (hx + 0.014, _HEAD_Y + side), (hx - 0.02, _HEAD_Y - 0.03), (-hx + 0.02, _HEAD_Y - 0.03)], "hair"))
    if hair == "bun":
        parts.append((_ellipse(0.0, _HEAD_Y - hy - 0.035, 0.055, 0.045, n=16), "hair"))
    return parts


def _sleeve(b: _Build, upto: float, extra: float) -> list[Point]:
    """The left sleeve: the arm's outline widened by `extra`, from the shoulder to `upto` of the arm."""
    return _limb(b.arm, [w + extra for w in b.arm_widths], upto)


def _sleeve_band(b: _Build, start: float, end: float, extra: float) -> list[Point]:
    """The band of the left sleeve between `start` and `end` (fractions of the arm): a hem or a cuff."""

    def tip(polygon: list[Point]) -> list[Point]:
        half = len(polygon) // 2
        return [polygon[half - 1], polygon[half]]

    return tip(_sleeve(b, end, extra)) + tip(_sleeve(b, start, extra))[::-1]


def _both(polys: list[tuple[list[Point], str]]) -> list[tuple[list[Point], str]]:
    """Left-side shapes and their mirror images."""
    return [(p, role) for p, role in polys] + [(_flip(p), role) for p, role in polys]


def _garment_shape(product_type: str, b: _Build) -> tuple[list[tuple[list[Point], str]], list[tuple[list[Point], float, str]]]:
    """A worn garment's polygons and lines in the figure frame; roles as in `render.paint`."""
    polys: list[tuple[list[Point], str]] = []
    lines: list[tuple[list[Point], float, str]] = []
    s, w, h = b.shoulder, b.waist, b.hip
    if product_type in UPPER_TYPES:
        loose = {"t-shirt": 0.025, "shirt": 0.018, "jacket": 0.045}[product_type]
        hem = _HEM_Y[product_type]
        neck_y = {"t-shirt": -0.575, "shirt": -0.53, "jacket": -0.56}[product_type]
        torso = _mirror(
            [
                (0.0, neck_y),
                (-b.neck - 0.03, -0.662),
                (-s + 0.03, -0.665 - loose / 2),
                (-s - loose, -0.6),
                (-s + 0.015 - loose, -0.42),
                (-w - loose, -0.12),
                (-h - loose - 0.01, 0.06),
                (-h - loose - 0.01, hem),
            ]
        )
        polys.append((torso, "body"))
        upto = 0.45 if product_type == "t-shirt" else 1.0
        sleeve = _sleeve(b, upto, loose)
        polys += _both([(sleeve, "body")])
        if product_type == "t-shirt":
            lines.append(([(-b.neck - 0.03, -0.662), (-0.05, -0.6), (0.0, neck_y), (0.05, -0.6), (b.neck + 0.03, -0.662)], 0.03, "trim"))
            polys += _both([(_sleeve_band(b, upto - 0.08, upto, loose + 0.003), "trim")])
        elif product_type == "shirt":
            polys += _both([([(-b.neck - 0.035, -0.675), (-0.005, neck_y + 0.01), (-0.02, neck_y + 0.1), (-b.neck - 0.085, -0.58)], "trim")])
            lines.append(([(0.0, neck_y + 0.02), (0.0, hem)], 0.025, "trim"))
            for y in np.linspace(neck_y + 0.12, hem - 0.08, 4):
                polys.append((_ellipse(0.0, float(y), 0.018, 0.018, n=10), "button"))
            polys += _both([(_sleeve_band(b, 0.88, 1.0, loose + 0.004), "trim")])
        else:  # jacket
            polys += _both([([(-b.neck - 0.035, -0.69), (-0.01, neck_y), (-0.04, -0.34), (-0.1, -0.5), (-b.neck - 0.1, -0.62)], "trim")])
            lines.append(([(0.0, neck_y), (0.0, hem)], 0.03, "zip"))
            polys += _both([([(-w - 0.02, -0.0), (-0.06, -0.0), (-0.06, 0.05), (-w - 0.02, 0.05)], "trim")])
            polys += _both([(_sleeve_band(b, 0.86, 1.0, loose + 0.004), "trim")])
            lines.append(([(-h - loose - 0.01, hem - 0.025), (h + loose + 0.01, hem - 0.025)], 0.045, "trim"))
    elif product_type == "dress":
        polys.append(
            (
                _mirror(
                    [
                        (0.0, -0.54),
                        (-0.075, -0.62),
                        (-0.1, -0.672),
                        (-0.165, -0.672),
                        (-s + 0.05, -0.57),
                        (-s + 0.045, -0.43),
                        (-w - 0.02, _WAIST_Y),
                        (-h - 0.02, 0.05),
                        (-0.39, 0.56),
                    ]
                ),
                "body",
            )
        )
        lines.append(([(-w - 0.02, _WAIST_Y + 0.01), (w + 0.02, _WAIST_Y + 0.01)], 0.05, "trim"))
    elif product_type in LOWER_TYPES:
        top = [(-w - 0.02, _WAIST_Y), (-h - 0.03, 0.06)]
        if product_type == "skirt":
            polys.append((_mirror([*top[:1], (-0.37, 0.5)]), "body"))
            for x in (-0.24, -0.08):
                lines.append(([(x * 0.55, 0.1), (x, 0.47)], 0.018, "trim"))
                lines.append(([(-x * 0.55, 0.1), (-x, 0.47)], 0.018, "trim"))
        else:
            (hx, hy), (kx, ky), (ax, ay) = b.leg
            kw, aw = b.leg_widths[1], b.leg_widths[2]
            if product_type == "trousers":
                leg = [(kx - kw - 0.03, ky), (ax - aw - 0.025, ay), (ax + aw + 0.025, ay), (kx + kw + 0.03, ky)]
            else:  # shorts: to mid-thigh, a little flared
                y = 0.36
                cx = hx + (kx - hx) * (y - hy) / (ky - hy)
                cw = b.leg_widths[0] + (kw - b.leg_widths[0]) * (y - hy) / (ky - hy)
                leg = [(cx - cw - 0.05, y), (cx + cw + 0.03, y + 0.02)]
            polys.append((_mirror([*top, *leg, (0.0, 0.22)]), "body"))
            lines.append(([(0.0, _WAIST_Y + 0.06), (0.0, 0.14)], 0.025, "trim"))
        polys.append(([(-w - 0.02, _WAIST_Y), (w + 0.02, _WAIST_Y), (w + 0.024, _WAIST_Y + 0.06), (-w - 0.024, _WAIST_Y + 0.06)], "trim"))
    else:  # pragma: no cover - FigureSpec.check guards
        raise ValueError(product_type)
    return polys, lines


# ---------------------------------------------------------------------------------------------------
# Drawing


def _pool(a: np.ndarray) -> np.ndarray:
    """Canvas -> image size: the mean of each SUPERSAMPLE x SUPERSAMPLE block."""
    k = product.SUPERSAMPLE
    return a.reshape(IMAGE_SIZE, k, IMAGE_SIZE, k, *a.shape[2:]).mean(axis=(1, 3))


def _garment_frame(matrix: np.ndarray, centre: Point) -> np.ndarray:
    """The frame a worn garment's pattern is laid out in: centred on the garment, FIGURE_PATTERN_SCALE."""
    local = np.array([[FIGURE_PATTERN_SCALE, 0.0, centre[0]], [0.0, FIGURE_PATTERN_SCALE, centre[1]], [0.0, 0.0, 1.0]])
    return matrix @ local


_GARMENT_CENTRE = {"upper": (0.0, -0.25), "lower": (0.0, 0.2), "full": (0.0, -0.05)}


def _draw_garment(garment: Spec, b: _Build, matrix: np.ndarray, scale: float, light: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One garment alone: its colour per output pixel (the mean over the sub-pixels it covers), the
    share of each output pixel it covers, and what it covers on the canvas."""
    polys, lines = _garment_shape(garment.product_type, b)
    colours = product.palette(garment.colour, garment.pattern, garment.shade, garment.tint)
    frame = _garment_frame(matrix, _GARMENT_CENTRE[category_of(garment.product_type)])
    pattern = product.pattern_mask(garment.pattern, frame, garment.pattern_scale, garment.pattern_phase)
    canvas = product.paint(np.zeros((product.CANVAS, product.CANVAS, 3), dtype=np.float32), polys, lines, matrix, scale, colours, pattern, light, _OUTLINE)

    def cover(d) -> None:
        for points, _ in polys:
            d.polygon(product.apply_matrix(matrix, points), fill=255)
        for points, width, _ in lines:
            d.line(product.apply_matrix(matrix, points), fill=255, width=product.line_pixels(width, scale))

    covered = product.draw_mask(cover)
    share = _pool(covered)
    colour = _pool(canvas * covered[..., None]) / np.maximum(share, 1e-6)[..., None]
    return colour, share, covered


def _draw_person(spec: FigureSpec, b: _Build, matrix: np.ndarray, light: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The unclothed figure on the studio background with its shadow (canvas size), and its silhouette."""
    parts = _body_parts(b, spec.hair)
    silhouette = product.draw_mask(lambda d: [d.polygon(product.apply_matrix(matrix, p), fill=255) for p, _ in parts])
    canvas = product.drop_shadow(product.studio_canvas(), silhouette)
    skin = np.array(SKIN_TONES[spec.skin], dtype=np.float32)
    hair = np.array(HAIR_COLOURS[spec.hair_colour], dtype=np.float32)
    for points, role in parts:
        colour = skin if role == "skin" else hair
        pixels = product.apply_matrix(matrix, points)
        mask = product.draw_mask(lambda d, pixels=pixels: d.polygon(pixels, fill=255))
        edge = product.draw_mask(lambda d, pixels=pixels: d.polygon(pixels, outline=255, width=2))
        canvas = canvas * (1.0 - mask[..., None]) + (colour * light) * mask[..., None]
        canvas = canvas * (1.0 - edge[..., None]) + (colour * (0.8 if role == "skin" else 0.7) * light) * edge[..., None]
    return canvas, silhouette


def render_figure(spec: FigureSpec) -> FigureRender:
    """The dressed figure of `spec` (64x64 RGB) with its masks; the same spec gives the same pixels."""
    spec.check()
    b = _build(spec.body)
    matrix = product.frame_matrix(spec.scale, spec.rotation, spec.dx, spec.dy)
    light = product.studio_light()
    canvas, silhouette = _draw_person(spec, b, matrix, light)
    image = _pool(canvas)
    empty = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    masks = {"upper": empty, "lower": empty.copy()}
    # Bottom first, then the top over it: the top's mask is all it covers, the bottom's what it covers
    # outside the top's mask (so each depends on its own garment and the top only).
    worn = spec.garments()
    for category in ("lower", "upper", "full"):
        if category not in worn:
            continue
        colour, share, covered = _draw_garment(worn[category], b, matrix, spec.scale, light)
        mask = share >= 0.5
        image = np.where(mask[..., None], colour, image)
        masks[category] = mask
        silhouette = np.maximum(silhouette, covered)
    if "full" in worn:
        full = masks.pop("full")
    else:
        masks["lower"] = masks["lower"] & ~masks["upper"]
        full = masks["upper"] | masks["lower"]
    masks["full"] = full
    masks["person"] = _pool(silhouette) >= 0.5
    pixels = Image.fromarray(np.clip(image, 0, 255).round().astype(np.uint8), "RGB")
    return FigureRender(spec, pixels, {name: masks[name] for name in MASK_NAMES})


# ---------------------------------------------------------------------------------------------------
# Outfits, captions, sampling


def dress_figure(person: FigureSpec, garment: Spec | Mapping[str, Any], companion: Spec | Mapping[str, Any] | None = None) -> FigureSpec:
    """The same person wearing `garment` in the slot of its category, everything else identical (pose,
    body, hair, the other garment): the figure pair of a try-on example. Rendered, the two figures
    differ only inside the old and the new garment's masks (the "full" masks when a dress comes or goes).

    A top or a bottom on a person in a dress needs the other half of the outfit: `companion`.
    """
    person.check()
    new = _garment(garment, "garment")
    category = category_of(new.product_type)
    if category == "full":
        result = replace(person, top=new, bottom=None)
    elif person.bottom is None:
        if companion is None:
            raise ValueError(f"companion: a {new.product_type} on a person in a dress needs the other half of the outfit (a companion garment)")
        other = _garment(companion, "companion")
        if category_of(other.product_type) == category or category_of(other.product_type) == "full":
            raise ValueError(f"companion: a {new.product_type} needs a {'bottom' if category == 'upper' else 'top'}, not a {other.product_type}")
        result = replace(person, top=new if category == "upper" else other, bottom=new if category == "lower" else other)
    elif category == "upper":
        result = replace(person, top=new)
    else:
        result = replace(person, bottom=new)
    return result.check()


def _garment_phrase(garment: Spec, with_phrase: bool = False) -> str:
    """ "a red striped t-shirt", "navy trousers", "an orange skirt with dots": the service's model-shot
    phrasing (`fashion_studio.model_shots`), so the generator learns the prompts it is given."""
    return Garment(garment.product_type, garment.colour, None if garment.pattern == "plain" else garment.pattern).phrase(with_phrase)


def figure_caption(spec: FigureSpec, rng: np.random.Generator | None = None) -> str:
    """An English caption: "a woman wearing a red striped t-shirt and navy trousers". With `rng`, one of
    a few phrasings (the pattern as an adjective or a "with" phrase; "wearing" or "in")."""
    with_phrase = rng is not None and rng.random() < 0.3
    outfit = " and ".join(_garment_phrase(g, with_phrase) for g in spec.garments().values())
    template = 0 if rng is None else int(rng.integers(3))
    if template == 1:
        return f"a {spec.body} in {outfit}"
    if template == 2:
        return f"a {spec.body} wearing {outfit}, on a white background"
    return f"a {spec.body} wearing {outfit}"


def random_garment(
    rng: np.random.Generator,
    product_types: Sequence[str] = UPPER_TYPES + LOWER_TYPES + FULL_TYPES,
    colours: Sequence[str] = COLOUR_NAMES,
    patterns: Sequence[str] = PATTERNS,
) -> Spec:
    """A random wearable garment with the random variation of a product shot (so its product shot and
    the figure wearing it are a try-on pair)."""
    product_type = product_types[rng.integers(len(product_types))]
    category_of(product_type)  # worn on a figure, or a ValueError
    colour = colours[rng.integers(len(colours))]
    pattern = patterns[rng.integers(len(patterns))]
    return Spec(product_type, colour, pattern, **random_variation(rng)).check()


def random_figure(
    rng: np.random.Generator,
    bodies: Sequence[str] = BODIES,
    colours: Sequence[str] = COLOUR_NAMES,
    patterns: Sequence[str] = PATTERNS,
    dress_share: float | None = None,
) -> FigureSpec:
    """A random dressed figure for data generation: a body with its usual garments (women: tops with
    trousers, shorts or skirts, or a dress; men: tops with trousers or shorts), colours and patterns
    uniform over the given ones, random skin, hair and pose jitter. `dress_share` overrides the share
    of dresses among women."""
    body = bodies[rng.integers(len(bodies))]
    tops, bottoms, dresses = _WEARS[body]
    if dress_share is not None and body == "woman":
        dresses = dress_share
    if rng.random() < dresses:
        top, bottom = random_garment(rng, FULL_TYPES, colours, patterns), None
    else:
        top, bottom = random_garment(rng, tops, colours, patterns), random_garment(rng, bottoms, colours, patterns)
    styles = _HAIR_BY_BODY[body]
    pose = {name: float(rng.uniform(low, high)) for name, (low, high) in _POSE_RANDOM.items()}
    return FigureSpec(
        top,
        bottom,
        body=body,
        skin=tuple(SKIN_TONES)[rng.integers(len(SKIN_TONES))],
        hair=styles[rng.integers(len(styles))],
        hair_colour=tuple(HAIR_COLOURS)[rng.integers(len(HAIR_COLOURS))],
        **pose,
    ).check()
