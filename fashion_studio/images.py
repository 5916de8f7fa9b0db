"""Untrusted image input: bounded in bytes before decoding, typed by magic bytes, bounded in pixels.

`PIL.Image.MAX_IMAGE_PIXELS` stays on; the pixel limit here is checked from the header, before any
pixel is decoded, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import base64
import binascii
import io

from PIL import Image

from fashion_studio.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaError
from fashion_studio.settings import Limits, get_settings

_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
}


def sniff(data: bytes) -> str | None:
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            return kind
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode_b64(field: str, text: str, limits: Limits) -> bytes:
    # base64 grows data by 4/3: refuse before decoding what cannot fit.
    if len(text) > limits.max_image_bytes * 4 // 3 + 4:
        raise PayloadTooLargeError(field, f"{len(text)} base64 chars", f"image must be at most {limits.max_image_bytes} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(field, text, f"must be base64 ({exc})") from exc


MAX_ASPECT_RATIO = 10  # long side over short side of an image sent to the service


def load_image(field: str, data: bytes, limits: Limits) -> Image.Image:
    """Open untrusted image bytes as RGB, or raise the error kind that maps to 413, 415 or 422."""
    if len(data) > limits.max_image_bytes:
        raise PayloadTooLargeError(field, f"{len(data)} bytes", f"image must be at most {limits.max_image_bytes} bytes")
    kind = sniff(data)
    if kind is None:
        raise UnsupportedMediaError(field, data[:8].hex(), "image must be PNG, JPEG or WebP (by its magic bytes)")
    try:
        image = Image.open(io.BytesIO(data), formats=[kind])
        width, height = image.size
    except Image.DecompressionBombError as exc:
        raise PayloadTooLargeError(field, "image header", f"image must have at most {limits.max_image_pixels} pixels") from exc
    except Exception as exc:
        raise InvalidInputError(field, f"{kind} data", f"must be a readable {kind} image ({type(exc).__name__})") from exc
    if width * height > limits.max_image_pixels:
        raise PayloadTooLargeError(field, f"{width}x{height}", f"image must have at most {limits.max_image_pixels} pixels")
    if min(width, height) < limits.min_size:
        # CLIP's and SAM's processors cannot read a 1-pixel-high image, and would fail the batch it sits in
        raise InvalidInputError(field, f"{width}x{height}", f"each side of an image must be at least {limits.min_size} pixels")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        # a processor resizing the short side to 224 would make the long side millions of pixels
        raise InvalidInputError(field, f"{width}x{height}", f"an image's long side must be at most {MAX_ASPECT_RATIO} times its short side")
    try:
        image.load()
        return image.convert("RGB")
    except Exception as exc:
        raise InvalidInputError(field, f"{kind} data", f"must be a readable {kind} image ({type(exc).__name__})") from exc


# Where an image decoded from PNG keeps the bytes it came as, so that passing it on (to the scorer, to
# storage) sends those bytes instead of encoding the same pixels again: each image is encoded once.
PNG_KEPT = "fashion_studio.png"


def image_from_png(data: bytes) -> Image.Image:
    """Trusted PNG bytes (a model service's own output) as an RGB image that keeps them."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image.info[PNG_KEPT] = data
    return image


def png_of(image: Image.Image) -> bytes:
    """The image as PNG: the bytes it was decoded from when it kept them, else encoded now."""
    kept = image.info.get(PNG_KEPT)
    if isinstance(kept, bytes):
        return kept
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=get_settings().png_compress_level)
    return buffer.getvalue()
