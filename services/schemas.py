"""Wire models shared by the gateway and the model services (internal JSON between processes)."""

from __future__ import annotations

import base64
import io
from contextvars import ContextVar
from typing import Any

from PIL import Image
from pydantic import BaseModel, Field

# The gateway request being served: the gateway's guard sets it, and every generate item sent while
# serving it carries it, so that the generator's `cancel` finds that request's work.
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")


class GenerateItem(BaseModel):
    prompt: str
    negative_prompt: str | None = None
    seed: int | None = None
    steps: int = 4
    guidance: float = 0.0
    width: int = 64
    height: int = 64
    num_images: int = 1
    lora: list[str] = Field(default_factory=list, description="Named LoRA adapters; part of the batching key.")
    enqueued_at: float = Field(0.0, description="Gateway wall-clock time when the item was sent; queue time starts there.")
    deadline: float | None = Field(None, description="Wall-clock time after which nobody awaits the result.")
    request_id: str = Field(default_factory=REQUEST_ID.get, description="The gateway request this item serves; `cancel` drops its work by this id.")


class GeneratedImage(BaseModel):
    png_b64: str
    seed: int
    width: int
    height: int


class GenerateOutput(BaseModel):
    images: list[GeneratedImage] = Field(default_factory=list)
    model: str = ""
    timings: dict[str, float] = Field(default_factory=dict)
    batch_images: int = 0
    lora: dict[str, float] = Field(default_factory=dict, description="The adapters the images were made with, name -> weight.")
    error: dict | None = Field(None, description="Set when this item failed; other items of its batch are unaffected.")


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
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def png_bytes(b64: str) -> bytes:
    return base64.b64decode(b64)


def image_from_b64(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(png_bytes(b64))).convert("RGB")
