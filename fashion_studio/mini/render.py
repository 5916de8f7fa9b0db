"""A procedural garment renderer: flat-lay product shots on a white studio background, 64x64.

Each product type is a few polygons in a unit frame (x right, y down, about [-1, 1]); a random similarity
transform (scale, rotation, offset) and a shade variation make every image different, and the pattern
(stripes, dots, checks) is laid out in the garment's own frame so that it turns with it. Drawing happens
at twice the size and is downsampled, which gives anti-aliased edges.

`EXTRA_PATTERNS` (zigzag) are drawn too but are not in the catalog's vocabulary: fashion-mini never saw
them, so they are the material for teaching it something new with a LoRA adapter (fashion_studio.lora).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fashion_studio.mini.vocab import COLOUR_BY_NAME, COLOUR_NAMES, PATTERNS, TYPE_NAMES

IMAGE_SIZE = 64
SUPERSAMPLE = 2  # drawing happens at this multiple of IMAGE_SIZE
CANVAS = IMAGE_SIZE * SUPERSAMPLE
_BACKGROUND = np.array([250.0, 250.0, 249.0])
# Patterns outside the catalog vocabulary (`vocab.PATTERNS`): rendered on request, never in fashion-mini's data.
EXTRA_PATTERNS: tuple[str, ...] = ("zigzag",)
# Colours on which a pattern is drawn dark rather than white.
_LIGHT = {"white", "yellow", "pink", "orange"}

Point = tuple[float, float]


@dataclass(frozen=True)
class Spec:
    """What one rendered product shows, plus its random variation."""

    product_type: str
    colour: str
    pattern: str = "plain"
    target_group: str | None = None
    material: str | None = None
    scale: float = 1.0
    rotation: float = 0.0  # degrees
    dx: float = 0.0  # offset in units of the image size
    dy: float = 0.0
    shade: float = 1.0  # brightness factor of the colour
    tint: tuple[float, float, float] = (0.0, 0.0, 0.0)  # per-channel offsets
    pattern_scale: float = 1.0
    pattern_phase: float = 0.0

    def check(self) -> Spec:
        if self.product_type not in TYPE_NAMES:
            raise ValueError(f"product_type {self.product_type!r} is not one of {TYPE_NAMES}")
        if self.colour not in COLOUR_NAMES:
            raise ValueError(f"colour {self.colour!r} is not one of {COLOUR_NAMES}")
        if self.pattern not in PATTERNS + EXTRA_PATTERNS:
            raise ValueError(f"pattern {self.pattern!r} is not one of {PATTERNS + EXTRA_PATTERNS}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def random_variation(rng: np.random.Generator, target_group: str | None = None) -> dict[str, Any]:
    """The small random variation of a product shot: scale, rotation, position, shade, pattern layout."""
    child = target_group in ("children", "girls", "boys")
    return {
        "scale": float(rng.uniform(0.82, 0.92) if child else rng.uniform(0.9, 1.02)),
        "rotation": float(rng.uniform(-8.0, 8.0)),
        "dx": float(rng.uniform(-0.04, 0.04)),
        "dy": float(rng.uniform(-0.04, 0.04)),
        "shade": float(rng.uniform(0.9, 1.08)),
        "tint": tuple(float(v) for v in rng.uniform(-8.0, 8.0, size=3)),
        "pattern_scale": float(rng.uniform(0.85, 1.15)),
        "pattern_phase": float(rng.uniform(0.0, 1.0)),
    }


# ---------------------------------------------------------------------------------------------------
# Shapes: lists of (polygon, role); roles: "body" (coloured, patterned), "trim" (darker shade of the
# colour), "sole" (off-white), "hole" (the inside of a neck opening). Lines: (points, width, role).


def _mirror(points: list[Point]) -> list[Point]:
    """A left half (x <= 0, top to bottom) closed by its mirror image."""
    return points + [(-x, y) for x, y in reversed(points)]


def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float = 0.0, end: float = 360.0, n: int = 24) -> list[Point]:
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a))) for a in np.linspace(start, end, n)]


def _shape(product_type: str) -> tuple[list[tuple[list[Point], str]], list[tuple[list[Point], float, str]]]:
    polys: list[tuple[list[Point], str]] = []
    lines: list[tuple[list[Point], float, str]] = []
    if product_type == "t-shirt":
        polys.append((_mirror([(-0.2, -0.72), (-0.5, -0.64), (-0.88, -0.3), (-0.68, -0.1), (-0.46, -0.28), (-0.46, 0.78)]), "body"))
        polys.append((_ellipse(0, -0.72, 0.2, 0.1, 0, 180), "hole"))
        lines.append(([(-0.63, -0.16), (-0.83, -0.36)], 0.03, "trim"))
        lines.append(([(0.63, -0.16), (0.83, -0.36)], 0.03, "trim"))
    elif product_type == "shirt":
        polys.append((_mirror([(-0.14, -0.78), (-0.42, -0.7), (-0.62, -0.2), (-0.84, 0.5), (-0.66, 0.56), (-0.48, 0.0), (-0.4, 0.8)]), "body"))
        polys.append(([(-0.16, -0.8), (0.0, -0.58), (-0.04, -0.5), (-0.26, -0.66)], "trim"))
        polys.append(([(0.16, -0.8), (0.0, -0.58), (0.04, -0.5), (0.26, -0.66)], "trim"))
        lines.append(([(0.0, -0.55), (0.0, 0.8)], 0.035, "trim"))
        for y in (-0.35, -0.05, 0.25, 0.55):
            polys.append((_ellipse(0.0, y, 0.035, 0.035, n=10), "button"))
        lines.append(([(-0.84, 0.5), (-0.66, 0.56)], 0.06, "trim"))
        lines.append(([(0.84, 0.5), (0.66, 0.56)], 0.06, "trim"))
    elif product_type == "jacket":
        polys.append((_mirror([(-0.16, -0.8), (-0.56, -0.68), (-0.78, -0.5), (-0.82, 0.72), (-0.6, 0.74), (-0.56, -0.12), (-0.54, 0.82)]), "body"))
        polys.append((_mirror([(-0.2, -0.9), (-0.24, -0.74), (0.0, -0.68)]), "trim"))
        lines.append(([(0.0, -0.7), (0.0, 0.82)], 0.045, "zip"))
        polys.append(([(-0.46, 0.28), (-0.14, 0.28), (-0.14, 0.36), (-0.46, 0.36)], "trim"))
        polys.append(([(0.46, 0.28), (0.14, 0.28), (0.14, 0.36), (0.46, 0.36)], "trim"))
        polys.append(([(-0.82, 0.62), (-0.6, 0.64), (-0.6, 0.74), (-0.82, 0.72)], "trim"))
        polys.append(([(0.82, 0.62), (0.6, 0.64), (0.6, 0.74), (0.82, 0.72)], "trim"))
        lines.append(([(-0.54, 0.76), (0.54, 0.76)], 0.08, "trim"))
    elif product_type == "trousers":
        polys.append(([(-0.42, -0.84), (0.42, -0.84), (0.5, 0.86), (0.1, 0.86), (0.0, -0.3), (-0.1, 0.86), (-0.5, 0.86)], "body"))
        polys.append(([(-0.42, -0.84), (0.42, -0.84), (0.425, -0.74), (-0.425, -0.74)], "trim"))
        lines.append(([(0.0, -0.74), (0.0, -0.4)], 0.025, "trim"))
    elif product_type == "shorts":
        polys.append(([(-0.58, -0.5), (0.58, -0.5), (0.76, 0.46), (0.08, 0.52), (0.0, 0.0), (-0.08, 0.52), (-0.76, 0.46)], "body"))
        polys.append(([(-0.58, -0.5), (0.58, -0.5), (0.59, -0.38), (-0.59, -0.38)], "trim"))
        lines.append(([(0.0, -0.38), (0.0, -0.08)], 0.025, "trim"))
    elif product_type == "skirt":
        polys.append(([(-0.34, -0.62), (0.34, -0.62), (0.74, 0.64), (-0.74, 0.64)], "body"))
        polys.append(([(-0.34, -0.62), (0.34, -0.62), (0.36, -0.5), (-0.36, -0.5)], "trim"))
        for x in (-0.4, -0.13, 0.13, 0.4):
            lines.append(([(x * 0.5, -0.48), (x, 0.6)], 0.02, "trim"))
    elif product_type == "dress":
        polys.append((_mirror([(-0.12, -0.6), (-0.22, -0.86), (-0.28, -0.86), (-0.32, -0.5), (-0.26, -0.08), (-0.72, 0.86)]), "body"))
        polys.append((_ellipse(0, -0.6, 0.16, 0.12, 0, 180), "hole"))
        lines.append(([(-0.27, -0.06), (0.27, -0.06)], 0.05, "trim"))
    elif product_type == "sneakers":
        back = [(-0.78, -0.08), (-0.5, -0.3), (-0.16, -0.3), (0.22, -0.08), (0.62, 0.02), (0.78, 0.16), (0.76, 0.3), (-0.8, 0.3)]
        polys.append(([(x + 0.12, y - 0.22) for x, y in back], "back"))
        polys.append(([(x + 0.12, y - 0.22) for x, y in [(-0.82, 0.28), (0.8, 0.28), (0.8, 0.4), (-0.82, 0.4)]], "sole_back"))
        front = [(-0.84, 0.1), (-0.56, -0.14), (-0.2, -0.14), (0.18, 0.08), (0.58, 0.18), (0.74, 0.32), (0.72, 0.46), (-0.86, 0.46)]
        shift = [(x - 0.06, y + 0.12) for x, y in front]
        polys.append((shift, "body"))
        polys.append(([(x - 0.06, y + 0.12) for x, y in [(-0.88, 0.44), (0.76, 0.44), (0.76, 0.6), (-0.88, 0.6)]], "sole"))
        for i in range(4):
            x = -0.3 + i * 0.12
            lines.append(([(x - 0.06, -0.02 + i * 0.05 + 0.12), (x + 0.04, -0.06 + i * 0.05 + 0.12)], 0.03, "lace"))
        lines.append(([(-0.62, 0.2 + 0.12), (0.1, 0.24 + 0.12)], 0.03, "trim"))
    elif product_type == "handbag":
        polys.append((_ellipse(0.0, -0.32, 0.42, 0.5, 180, 360, 28) + _ellipse(0.0, -0.32, 0.3, 0.38, 360, 180, 28), "trim"))
        polys.append(([(-0.56, -0.3), (0.56, -0.3), (0.76, 0.72), (-0.76, 0.72)], "body"))
        polys.append(([(-0.56, -0.3), (0.56, -0.3), (0.6, -0.06), (0.0, 0.12), (-0.6, -0.06)], "trim"))
        polys.append((_ellipse(0.0, 0.08, 0.07, 0.07, n=12), "button"))
    elif product_type == "cap":
        polys.append((_ellipse(-0.12, 0.12, 0.62, 0.66, 180, 360, 32), "body"))
        polys.append(([(0.4, 0.06), (0.96, 0.14), (0.98, 0.26), (0.44, 0.26)], "trim"))
        polys.append(([(-0.76, 0.06), (0.5, 0.06), (0.5, 0.2), (-0.76, 0.2)], "trim"))
        lines.append(([(-0.12, -0.54), (-0.12, 0.08)], 0.025, "trim"))
        lines.append(([(-0.12, -0.54), (-0.52, -0.1), (-0.6, 0.08)], 0.02, "trim"))
        lines.append(([(-0.12, -0.54), (0.28, -0.1), (0.36, 0.08)], 0.02, "trim"))
        polys.append((_ellipse(-0.12, -0.54, 0.06, 0.04, n=10), "trim"))
    else:  # pragma: no cover - Spec.check guards
        raise ValueError(product_type)
    return polys, lines


# ---------------------------------------------------------------------------------------------------
# Drawing: the pieces below are shared with the dressed figures of `fashion_studio.mini.figures`, so
# that a garment on a figure has exactly the colours, pattern and fabric of its product shot.


@dataclass(frozen=True)
class Palette:
    """The colours one garment is drawn in (RGB, float): fabric, pattern accent, trim, sole."""

    colour: str  # the vocabulary colour the palette comes from
    base: np.ndarray
    accent: np.ndarray
    trim: np.ndarray
    sole: np.ndarray


def palette(colour: str, pattern: str = "plain", shade: float = 1.0, tint: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Palette:
    """The colours of a garment in `colour` with `pattern`, after its shade and tint variation."""
    base = np.array(COLOUR_BY_NAME[colour].rgb, dtype=np.float32) * shade + np.array(tint, dtype=np.float32)
    base = np.clip(base, 0, 255)
    if colour in _LIGHT:
        accent = np.array([46.0, 46.0, 52.0]) if colour == "white" else base * 0.45
    else:
        accent = np.array([245.0, 245.0, 242.0])
    if pattern == "checks":
        accent = base * (0.55 if colour not in ("black", "navy") else 2.2) if colour != "white" else np.array([120.0, 120.0, 126.0])
        accent = np.clip(accent, 0, 255)
    trim = base * 0.72 if colour not in ("black", "navy") else np.clip(base * 1.6 + 12, 0, 255)
    sole = np.array([244.0, 244.0, 240.0]) if colour != "white" else np.array([200.0, 200.0, 196.0])
    return Palette(colour, base, accent, trim, sole)


def _transform(spec: Spec) -> np.ndarray:
    """Unit frame -> canvas pixels, as a 2x3 affine matrix."""
    return frame_matrix(spec.scale, spec.rotation, spec.dx, spec.dy)


def frame_matrix(scale: float = 1.0, rotation: float = 0.0, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """A unit frame (about [-1, 1], y down) -> canvas pixels, as a 2x3 affine matrix: scaled, turned by
    `rotation` degrees about the centre and moved by (dx, dy) image sizes."""
    half = CANVAS / 2
    size = 0.42 * CANVAS * scale
    angle = math.radians(rotation)
    c, s = math.cos(angle) * size, math.sin(angle) * size
    return np.array([[c, -s, half + dx * CANVAS], [s, c, half + dy * CANVAS]])


def apply_matrix(matrix: np.ndarray, points: list[Point]) -> list[tuple[float, float]]:
    """Frame points -> canvas points."""
    p = np.asarray(points, dtype=np.float64)
    out = p @ matrix[:, :2].T + matrix[:, 2]
    return [tuple(q) for q in out]


def draw_mask(draw_fn) -> np.ndarray:
    """What `draw_fn(ImageDraw)` covers on the canvas, 0..1 (float32)."""
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw_fn(ImageDraw.Draw(image))
    return np.asarray(image, dtype=np.float32) / 255.0


def pattern_mask(pattern: str, matrix: np.ndarray, pattern_scale: float = 1.0, pattern_phase: float = 0.0) -> np.ndarray:
    """Where the pattern colour goes (0..1), computed in the garment's own frame (`matrix`: frame -> canvas)."""
    if pattern == "plain":
        return np.zeros((CANVAS, CANVAS), dtype=np.float32)
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    ys, xs = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float64) + 0.5
    u = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    v = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    period = 0.3 * pattern_scale
    phase = pattern_phase
    if pattern == "stripes":
        return (((v / period + phase) % 1.0) < 0.34).astype(np.float32)
    if pattern == "checks":
        a = ((u / period + phase) % 1.0) < 0.5
        b = ((v / period + phase) % 1.0) < 0.5
        return (0.5 * a + 0.5 * b).astype(np.float32)
    if pattern == "zigzag":
        # Bands whose centre line is a triangle wave of slope +-1: the edges run at +-45 degrees,
        # an orientation that no catalog pattern has.
        width = 2.4 * period
        tooth = np.abs((u / width + phase) % 1.0 - 0.5) * width
        return ((((v + tooth) / (1.5 * period) + phase) % 1.0) < 0.45).astype(np.float32)
    # dots: a staggered grid
    period = 0.32 * pattern_scale
    row = np.floor(v / period + phase)
    fu = (u / period + phase + 0.5 * (row % 2)) % 1.0 - 0.5
    fv = (v / period + phase) % 1.0 - 0.5
    return (fu * fu + fv * fv < 0.24**2).astype(np.float32)


def studio_canvas() -> np.ndarray:
    """The empty studio background at canvas size (HWC float32)."""
    return np.tile(_BACKGROUND, (CANVAS, CANVAS, 1)).astype(np.float32)


def drop_shadow(canvas: np.ndarray, silhouette: np.ndarray) -> np.ndarray:
    """`canvas` with the soft studio shadow of `silhouette` (0..1) cast down and to the right."""
    shadow = np.asarray(Image.fromarray((silhouette * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(5)), dtype=np.float32) / 255.0
    shadow = np.roll(shadow, (3, 2), axis=(0, 1))
    return canvas * (1.0 - 0.16 * shadow)[..., None]


def studio_light() -> np.ndarray:
    """The studio's light falloff over the canvas, as a factor on garment colours (HW1)."""
    ys = np.linspace(-1, 1, CANVAS, dtype=np.float32)
    return (1.0 + 0.06 * ys[None, :] - 0.05 * ys[:, None])[..., None]


def line_pixels(width: float, scale: float) -> int:
    """A line's width on the canvas, for `width` in units of a frame of scale `scale`."""
    return max(1, int(round(width * 0.42 * CANVAS * scale)))


def paint(
    canvas: np.ndarray,
    polys: list[tuple[list[Point], str]],
    lines: list[tuple[list[Point], float, str]],
    matrix: np.ndarray,
    scale: float,
    colours: Palette,
    pattern: np.ndarray,
    light: np.ndarray,
    outline_width: int = 2,
) -> np.ndarray:
    """`canvas` with one garment's shapes painted over it: its polygons by role (fabric with the
    `pattern` mask for "body", outlined `outline_width` canvas pixels wide; darker trim, buttons, soles,
    ...), then its lines, `scale` being the frame's scale (line widths are in frame units)."""
    base, accent, trim, sole = colours.base, colours.accent, colours.trim, colours.sole

    def fill(mask: np.ndarray, colour: np.ndarray) -> None:
        nonlocal canvas
        canvas = canvas * (1.0 - mask[..., None]) + (colour * light) * mask[..., None]

    fabric = base[None, None, :] * (1.0 - pattern[..., None]) + accent[None, None, :] * pattern[..., None]
    for points, role in polys:
        mask = draw_mask(lambda d, points=points: d.polygon(apply_matrix(matrix, points), fill=255))
        if role == "body":
            outline = draw_mask(lambda d, points=points: d.polygon(apply_matrix(matrix, points), outline=255, width=outline_width))
            canvas = canvas * (1.0 - mask[..., None]) + (fabric * light) * mask[..., None]
            fill(outline, base * 0.62 if colours.colour != "black" else base * 0.4)
        elif role == "back":
            fill(mask, base * 0.8)
        elif role == "trim":
            fill(mask, trim)
        elif role in ("sole", "sole_back"):
            fill(mask, sole * (0.92 if role == "sole_back" else 1.0))
        elif role == "hole":
            fill(mask, base * 0.55)
        elif role == "button":
            fill(mask, trim * 0.8 if colours.colour not in ("black", "navy") else trim)
    for points, width, role in lines:
        w = line_pixels(width, scale)
        mask = draw_mask(lambda d, points=points, w=w: d.line(apply_matrix(matrix, points), fill=255, width=w))
        colour = {"trim": trim, "zip": np.array([90.0, 90.0, 96.0]) if colours.colour != "black" else np.array([170.0, 170.0, 176.0]), "lace": sole}[role]
        fill(mask, colour)
    return canvas


def render(spec: Spec) -> Image.Image:
    """The product shot of `spec` (64x64 RGB); the same spec gives the same pixels."""
    spec.check()
    matrix = _transform(spec)
    polys, lines = _shape(spec.product_type)
    colours = palette(spec.colour, spec.pattern, spec.shade, spec.tint)
    pattern = pattern_mask(spec.pattern, matrix, spec.pattern_scale, spec.pattern_phase)

    canvas = studio_canvas()
    # soft shadow under the whole silhouette
    silhouette = draw_mask(lambda d: [d.polygon(apply_matrix(matrix, p), fill=255) for p, role in polys if role != "hole"])
    canvas = drop_shadow(canvas, silhouette)
    canvas = paint(canvas, polys, lines, matrix, spec.scale, colours, pattern, studio_light())
    image = Image.fromarray(np.clip(canvas, 0, 255).round().astype(np.uint8), "RGB")
    return image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)


def render_array(spec: Spec) -> np.ndarray:
    """`render` as uint8 HWC."""
    return np.asarray(render(spec), dtype=np.uint8)
