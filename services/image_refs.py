"""Images a request refers to: sent as base64, or named by the id of an image this deployment stored.

`/edit`, `/recommend`, the conversation and the person features all take an image either way; this is
the one place that turns the pair of fields into pixels, with the same errors everywhere: both or
neither given is 422, an unknown id 404, bytes that are not PNG, JPEG or WebP 415, too large 413.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from starlette.concurrency import run_in_threadpool

from fashion_studio.errors import InvalidInputError, NotFoundError
from fashion_studio.images import decode_b64, load_image
from fashion_studio.settings import get_settings
from fashion_studio.storage import Storage

LIMITS = get_settings().limits
# A record key as Storage makes them (safe_key): no separators, no leading dot or underscore.
IMAGE_ID = re.compile(r"^[A-Za-z0-9-][A-Za-z0-9._-]{0,199}$")


@dataclass(frozen=True)
class ImageRef:
    """The pixels, and where they came from: the stored image's id and metadata, or None for bytes sent."""

    image: Image.Image
    image_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def stored_image(storage: Storage, image_id: str, field_name: str = "image_id") -> ImageRef:
    """A stored image by its id; 404 naming the field when there is none."""
    if not IMAGE_ID.match(image_id) or not storage.exists(image_id):
        raise NotFoundError(field_name, image_id, "must be the id of a stored image (GET /images lists them)")
    return ImageRef(storage.get_image(image_id).convert("RGB"), image_id, storage.get_metadata(image_id))


def sent_image(b64: str, field_name: str = "image") -> ImageRef:
    """Image bytes sent as base64, checked for size and type before decoding pixels."""
    return ImageRef(load_image(field_name, decode_b64(field_name, b64, LIMITS), LIMITS))


def resolve_image(storage: Storage, b64: str | None, image_id: str | None, prefix: str = "", names: tuple[str, str] | None = None) -> ImageRef:
    """Exactly one of `{prefix}image` (base64) and `{prefix}image_id` (a stored image); `names` gives
    other field names for the two (`/tryon`'s `person` and `person_image_id`)."""
    b64_field, id_field = names or (f"{prefix}image", f"{prefix}image_id")
    if (b64 is None) == (image_id is None):
        both = "both" if b64 is not None else "neither"
        raise InvalidInputError(b64_field, both, f"give exactly one of {b64_field} (base64) and {id_field} (a stored image's id)")
    if image_id is not None:
        return stored_image(storage, image_id, id_field)
    return sent_image(b64, b64_field)


async def resolve_image_async(storage: Storage, b64: str | None, image_id: str | None, prefix: str = "", names: tuple[str, str] | None = None) -> ImageRef:
    """`resolve_image` off the event loop (storage reads and image decodes block)."""
    return await run_in_threadpool(resolve_image, storage, b64, image_id, prefix, names)
