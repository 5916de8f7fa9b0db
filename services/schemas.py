"""Wire models shared by the gateway and the model services (internal JSON between processes)."""

from __future__ import annotations

import base64
import json
from contextvars import ContextVar
from enum import Enum
from typing import Any

from PIL import Image
from pydantic import BaseModel, Field

from fashion_studio.errors import (
    ConflictError,
    DeadlineExceededError,
    FashionStudioError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    RequestCancelledError,
    UnsupportedMediaError,
)
from fashion_studio.generation import GenerationRequest
from fashion_studio.images import image_from_png, png_of

# The gateway request being served: the gateway's guard sets it, and every generate item sent while
# serving it carries it, so that the generator's `cancel` finds that request's work.
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")


# --- one item's failure, typed, for every batchable model service --------------------------------------


class ItemErrorKind(str, Enum):
    """Why one item of a model-service call failed; the other items of its call are unaffected."""

    invalid_input = "invalid_input"
    not_found = "not_found"
    unsupported_media = "unsupported_media"
    too_large = "too_large"
    conflict = "conflict"
    timeout = "timeout"
    cancelled = "cancelled"
    internal = "internal"


# Kind <-> error class, the most specific first: the one table read both ways (`ItemError.of` in the
# model service, `ItemError.exception` in the gateway); anything else is `internal`.
ITEM_ERRORS: tuple[tuple[ItemErrorKind, type[FashionStudioError]], ...] = (
    (ItemErrorKind.not_found, NotFoundError),
    (ItemErrorKind.unsupported_media, UnsupportedMediaError),
    (ItemErrorKind.too_large, PayloadTooLargeError),
    (ItemErrorKind.conflict, ConflictError),
    (ItemErrorKind.invalid_input, InvalidInputError),
    (ItemErrorKind.timeout, DeadlineExceededError),
    (ItemErrorKind.cancelled, RequestCancelledError),
)


class ItemError(BaseModel):
    """A failed item: its kind, a message, and for the invalid-input kinds the field, value and limit
    that the gateway's 4xx answer names."""

    kind: ItemErrorKind
    message: str
    field: str | None = None
    value: Any = None
    limit: str | None = None

    @classmethod
    def of(cls, exc: BaseException) -> ItemError:
        kind = next((kind for kind, error in ITEM_ERRORS if isinstance(exc, error)), ItemErrorKind.internal)
        if isinstance(exc, InvalidInputError):
            fields = exc.to_dict()
            if _small_json(exc.value):  # as it was, so that the gateway's answer echoes it once, not its repr
                fields["value"] = exc.value
            return cls(kind=kind, **fields)
        return cls(kind=kind, message=str(exc) if kind is not ItemErrorKind.internal else f"{type(exc).__name__}: {exc}")

    def exception(self) -> Exception:
        """The error this item failed with, as the library raised it (an unknown kind: RuntimeError)."""
        error = dict(ITEM_ERRORS).get(self.kind)
        if error is None:
            return RuntimeError(self.message)
        if issubclass(error, InvalidInputError):
            return error(self.field or "input", self.value, self.limit or self.message)
        return error(self.message)


def _small_json(value: Any, limit: int = 200) -> bool:
    try:
        return len(json.dumps(value)) <= limit
    except (TypeError, ValueError):
        return False


class ItemOutput(BaseModel):
    """The answer for one item of a batchable call: its result, or its `error` (the rest of the call's
    items are unaffected). Model services' per-item answers derive from it."""

    error: ItemError | None = Field(None, description="Set when this item failed; other items of its call are unaffected.")


# --- generation -------------------------------------------------------------------------------------------


class GenerateWork(BaseModel):
    """One generation request on its way to the generator: the library's request as the payload
    (validated there by its own `check`), and beside it what the gateway adds."""

    request: GenerationRequest
    enqueued_at: float = Field(0.0, description="Gateway wall-clock time when the work was sent; queue time starts there.")
    deadline: float | None = Field(None, description="Wall-clock time after which nobody awaits the result.")
    request_id: str = Field(default_factory=REQUEST_ID.get, description="The gateway request this work serves; `cancel` drops its work by this id.")
    score: bool = Field(False, description="Score each image against the prompt in the generator's process, where it scores (FASHION_GENERATOR_SCORES).")


class GeneratedImage(BaseModel):
    png_b64: str
    seed: int
    width: int
    height: int
    clip_score: float | None = Field(
        None, description="CLIP score against the request's prompt, where the generator's process scores (FASHION_GENERATOR_SCORES)."
    )


class GenerateOutput(ItemOutput):
    images: list[GeneratedImage] = Field(default_factory=list)
    model: str = ""
    timings: dict[str, float] = Field(default_factory=dict)
    batch_images: int = 0
    lora: dict[str, float] = Field(default_factory=dict, description="The adapters the images were made with, name -> weight.")


class EditItem(BaseModel):
    """One edit for the editor service: the source as PNG base64 and the instruction."""

    png_b64: str
    instruction: str
    seed: int | None = None
    steps: int = 20
    guidance: float = 5.0
    image_guidance: float = 1.5
    enqueued_at: float = Field(0.0, description="Gateway wall-clock time when the item was sent; queue time starts there.")
    deadline: float | None = Field(None, description="Wall-clock time after which nobody awaits the result.")


class EditOutput(ItemOutput):
    png_b64: str = ""
    seed: int = 0
    width: int = 0
    height: int = 0
    model: str = ""
    timings: dict[str, float] = Field(default_factory=dict)
    batch_images: int = 0


class SegmentItem(BaseModel):
    """One segmentation for the segmenter service: the image as PNG base64 and its prompt (points with
    labels, a box, or a garment category), checked there against the image (`SegmentRequest.check`)."""

    png_b64: str
    points: list[tuple[float, float]] = Field(default_factory=list)
    labels: list[int] = Field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    category: str | None = None
    multimask: bool | None = None
    deadline: float | None = Field(None, description="Wall-clock time after which nobody awaits the result.")


class MaskOut(BaseModel):
    png_b64: str = Field(description="The mask as a one-channel PNG (255 inside, 0 outside) at the image's size.")
    score: float = Field(description="SAM's predicted IoU of the mask; for a category, the parser's mean confidence inside it.")
    area: int = Field(description="Pixels inside the mask.")


class SegmentOutput(ItemOutput):
    masks: list[MaskOut] = Field(default_factory=list)
    model: str = ""
    timings: dict[str, float] = Field(default_factory=dict)
    batch_images: int = 0


class InpaintItem(BaseModel):
    """One inpainting or try-on for the inpainter service. `png_b64` is the image (the person for a
    try-on), `mask_png_b64` the one-channel mask at its size (255 = redraw); an inpainting has a
    `prompt`, a try-on a `garment_png_b64`."""

    png_b64: str
    mask_png_b64: str
    prompt: str | None = None
    negative_prompt: str | None = None
    garment_png_b64: str | None = None
    seed: int | None = None
    steps: int = 20
    guidance: float = 5.0
    deadline: float | None = Field(None, description="Wall-clock time after which nobody awaits the result.")


class InpaintOutput(ItemOutput):
    png_b64: str = ""
    seed: int = 0
    width: int = 0
    height: int = 0
    changed_pixels: int = 0
    model: str = ""
    timings: dict[str, float] = Field(default_factory=dict)
    batch_images: int = 0


class ScoreItem(BaseModel):
    png_b64: str
    text: str


class PopularityItem(BaseModel):
    png_b64: str
    metadata: dict[str, Any] | None = None  # product_type, colour, pattern, price: any may be absent


class PopularityOut(BaseModel):
    score: float
    percentile: float


def png_b64(image: Image.Image) -> str:
    """The image as PNG, base64; an image decoded from the wire sends its PNG as it came."""
    return base64.b64encode(png_of(image)).decode()


def png_bytes(b64: str) -> bytes:
    return base64.b64decode(b64)


def image_from_b64(b64: str) -> Image.Image:
    return image_from_png(png_bytes(b64))
