"""The public API's request and response models, and the field types they share.

Every bound comes from the settings at import time, so the OpenAPI schema states the limits that the
validators enforce; a value outside them is a 422 naming the field, the value and the limit.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, FiniteFloat, ValidationInfo, field_validator

from fashion_studio.errors import InvalidInputError
from fashion_studio.generation import GenerationRequest, check_lora, lora_names
from fashion_studio.scheduling import CostLimits, local_model_folder
from fashion_studio.segmentation import MAX_POINTS
from fashion_studio.settings import get_settings
from services.schemas import MaskOut

SETTINGS = get_settings()
LIMITS = SETTINGS.limits
# What one generation may cost follows the generator's native size (from its configs, when its folder
# is on this machine) and the deployment's limits; the generator service enforces the same.
COST = CostLimits.for_model(local_model_folder(SETTINGS), SETTINGS)
COST_DESCRIPTION = (
    f"Denoising steps. A request may cost at most {COST.max_cost:g} image-steps at the model's native "
    f"{COST.native_width}x{COST.native_height}: width x height / native pixels x steps x num_images, x2 with guidance above 1."
)

# C0/C1 control characters (tab, newline and carriage return allowed) and lone UTF-16 surrogates,
# which JSON can carry but no tokenizer, log or UTF-8 file should get.
_FORBIDDEN_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# base64 has no ':', so a scheme at the start means the client sent a URL instead of image bytes.
_URL = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]{0,30}:")
_DATA_URL = re.compile(r"^data:image/(png|jpeg|webp);base64,", re.IGNORECASE)
# The same rules, stated in the OpenAPI schema for clients and schema-driven fuzzers; the validators
# below enforce them with errors that name the character.
TEXT_SCHEMA = {"pattern": "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"}
IMAGE_SCHEMA = {"pattern": "^(data:image/(png|jpeg|webp);base64,)?[A-Za-z0-9+/]*={0,2}$"}


def plain_text(value: str) -> str:
    if found := _FORBIDDEN_CHARS.search(value):
        raise ValueError(f"must not contain control characters or lone surrogates (found U+{ord(found.group()):04X} at {found.start()})")
    return value


def image_bytes_b64(value: str) -> str:
    """Image bytes as base64, or a `data:image/...;base64,` URL of them; other URLs are never fetched."""
    if match := _DATA_URL.match(value):
        return value[match.end() :]
    if _URL.match(value):
        raise ValueError("URLs are not fetched: send the image itself as base64 (PNG, JPEG or WebP)")
    return value


# --- field types -------------------------------------------------------------------------------------

Size = Annotated[int, Field(ge=LIMITS.min_size, le=LIMITS.max_size, multiple_of=LIMITS.size_multiple)]
Prompt = Annotated[str, Field(min_length=1, max_length=LIMITS.max_prompt_chars, json_schema_extra=TEXT_SCHEMA), AfterValidator(plain_text)]
OptionalText = Annotated[str, Field(max_length=LIMITS.max_prompt_chars, json_schema_extra=TEXT_SCHEMA), AfterValidator(plain_text)]
Description = Annotated[str, Field(min_length=1, max_length=LIMITS.max_description_chars, json_schema_extra=TEXT_SCHEMA), AfterValidator(plain_text)]
Identifier = Annotated[str, Field(min_length=1, max_length=128, json_schema_extra=TEXT_SCHEMA), AfterValidator(plain_text)]
ImageB64 = Annotated[
    str, Field(description="PNG, JPEG or WebP, base64 (or a data: URL); URLs are not fetched", json_schema_extra=IMAGE_SCHEMA), AfterValidator(image_bytes_b64)
]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]

# The LoRA adapters a request may name: the named entries of FASHION_LORA, stated as the schema's enum.
LORA_NAMES = lora_names(SETTINGS)


def allowed_lora(names: list[str]) -> list[str]:
    try:
        return list(check_lora(names, LORA_NAMES))
    except InvalidInputError as exc:
        raise ValueError(exc.limit) from None


LoraNames = Annotated[
    list[str],
    Field(
        max_length=len(LORA_NAMES),
        description="LoRA adapters to apply, by name; requests batch only with requests naming the same ones.",
        # An empty enum is no valid JSON schema: with no adapters allowed, `maxItems: 0` says it.
        json_schema_extra={"items": {"type": "string", "enum": list(LORA_NAMES)}} if LORA_NAMES else None,
    ),
    AfterValidator(allowed_lora),
]


# --- generation ----------------------------------------------------------------------------------------


class GenerationParams(BaseModel):
    """How images are drawn, whatever the prompt: the library's `GenerationRequest` fields (their
    defaults from the settings, their bounds the settings' limits, stated here for OpenAPI) and how the
    answer is ranked."""

    negative_prompt: OptionalText | None = None
    num_images: Annotated[int, Field(ge=1, le=LIMITS.max_images_per_prompt)] = 1
    seed: Seed | None = None
    guidance: Annotated[float, Field(ge=0.0, le=LIMITS.max_guidance)] = SETTINGS.default_guidance
    width: Annotated[Size, Field(le=COST.max_width)] = SETTINGS.default_width
    height: Annotated[Size, Field(le=COST.max_height)] = SETTINGS.default_height
    # After the fields its cost depends on, so that its validator sees them.
    steps: Annotated[int, Field(ge=1, le=LIMITS.max_steps, description=COST_DESCRIPTION)] = SETTINGS.default_steps
    rank_by_popularity: bool = Field(False, description="Return the images ranked by predicted popularity, most popular first.")
    lora: LoraNames = Field(default_factory=list)

    @field_validator("steps")
    @classmethod
    def _within_cost(cls, steps: int, info: ValidationInfo) -> int:
        """The request's work (pixels x steps x images x guidance passes) within the model's budget,
        refused before any work starts."""
        shape = {name: info.data.get(name) for name in ("width", "height", "num_images", "guidance")}
        if None not in shape.values():  # else those fields' own errors say what to fix
            try:
                COST.check_cost(steps=steps, **shape)
            except InvalidInputError as exc:
                raise ValueError(exc.limit if exc.field == "steps" else f"{exc.field} {exc.limit}") from None
        return steps


class GenerateRequest(GenerationParams):
    """The public request for images: a prompt and how to draw it."""

    prompt: Prompt

    def to_request(self) -> GenerationRequest:
        """The library's request: this body's fields that the library's request has."""
        return GenerationRequest(**{field.name: getattr(self, field.name) for field in dataclasses.fields(GenerationRequest)})


class ImageOut(BaseModel):
    id: str = Field(description="The stored image's id: `GET /images/{id}`, or `image_id` of `/edit`.")
    url: str
    seed: int
    width: int
    height: int
    clip_score: float
    popularity: float | None = Field(None, description="Predicted popularity, when the request asked for the ranking.")


class GenerateResponse(BaseModel):
    images: list[ImageOut]
    model: str
    timings: dict[str, float]
    blocked: int = Field(0, description="Images the safety check removed from this answer (never stored).")


# --- model shots ---------------------------------------------------------------------------------------

MAX_GARMENT_CHARS = 300
GarmentText = Annotated[str, Field(min_length=1, max_length=MAX_GARMENT_CHARS, json_schema_extra=TEXT_SCHEMA), AfterValidator(plain_text)]


class ModelShotRequest(GenerationParams):
    """A person wearing a described outfit: the top (or a dress) and the bottom, in German or English."""

    top: GarmentText = Field(description='The top, outerwear or dress, e.g. "rotes gestreiftes T-Shirt" or "a yellow dress with dots".')
    bottom: GarmentText | None = Field(None, description='Trousers, shorts or a skirt, e.g. "navy trousers"; none under a dress.')
    body: Literal["woman", "man"] = "woman"
    language: Literal["de", "en", "auto"] = Field("auto", description="The descriptions' language; auto detects it.")


class OutfitGarment(BaseModel):
    description: str
    product_type: str
    colour: str | None
    pattern: str | None


class ModelShotResponse(GenerateResponse):
    prompt: str = Field(description="The generation prompt made from the outfit.")
    top: OutfitGarment
    bottom: OutfitGarment | None


# --- editing -------------------------------------------------------------------------------------------

Instruction = Annotated[str, Field(min_length=1, max_length=LIMITS.max_instruction_chars, json_schema_extra=TEXT_SCHEMA), AfterValidator(plain_text)]
Guidance = Annotated[float, Field(ge=0.0, le=LIMITS.max_guidance)]


class EditRequest(BaseModel):
    """An image changed as an instruction says: sent as `image` (base64) or named by `image_id` (a stored
    image), exactly one of them."""

    image: ImageB64 | None = Field(None, description="The image to edit; or give image_id.")
    image_id: Identifier | None = Field(None, description="The id of a stored image (as /generate and /images give it); or give image.")
    instruction: Instruction = Field(description='What to change, in words: "make it navy", "add stripes", "make it plain".')
    seed: Seed | None = None
    steps: Annotated[int, Field(ge=1, le=LIMITS.max_steps)] = SETTINGS.edit_steps
    guidance: Guidance = Field(SETTINGS.edit_guidance, description="Text guidance: how strongly the instruction is followed.")
    image_guidance: Guidance = Field(SETTINGS.edit_image_guidance, description="Image guidance: how closely the source image is kept.")


class EditResponse(BaseModel):
    id: str = Field(description="The stored edit's id: `GET /images/{id}`, or `image_id` of a further edit.")
    url: str
    seed: int
    width: int
    height: int
    clip_score: float = Field(description="CLIP score of the edit against `edited_description`.")
    source_image_id: str | None = Field(description="The stored image edited; None for an image sent.")
    instruction: str
    edited_description: str = Field(description="What the edit should show: the source's description with the instruction applied.")
    model: str
    timings: dict[str, float]


# --- segmentation ---------------------------------------------------------------------------------------

Point = Annotated[tuple[FiniteFloat, FiniteFloat], Field(description="(x, y) in pixels of the image, from its top-left corner.")]


class SegmentRequest(BaseModel):
    """Masks for an image sent as `image` (base64) or named by `image_id`, from one prompt: `points` with
    `labels`, a `box`, or a garment `category`."""

    image: ImageB64 | None = Field(None, description="The image; or give image_id.")
    image_id: Identifier | None = Field(None, description="The id of a stored image; or give image.")
    points: list[Point] = Field(default_factory=list, max_length=MAX_POINTS, description="Clicked points; a box may come with them.")
    labels: list[Literal[0, 1]] | None = Field(None, max_length=MAX_POINTS, description="One per point: 1 on the garment, 0 off it. Default: all 1.")
    box: tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat] | None = Field(None, description="[x0, y0, x1, y1] in pixels around the garment.")
    category: Literal["upper", "lower", "full"] | None = Field(None, description="A mask by garment category, without clicks (the clothes parser).")
    multimask: bool | None = Field(None, description="Answer SAM's three candidate masks; default: for a single point.")


class SegmentResponse(BaseModel):
    width: int
    height: int
    prompt: Literal["points", "box", "category"]
    image_id: str | None = Field(description="The stored image segmented; None for an image sent.")
    masks: list[MaskOut] = Field(description="Best first: one-channel PNGs (255 inside) at the image's size, with SAM's predicted IoU.")
    model: str
    timings: dict[str, float]


# --- inpainting and try-on ------------------------------------------------------------------------------


class MaskSpec(BaseModel):
    """Where to redraw, one of three ways: a `mask` (a one-channel PNG at the image's size, white =
    redraw), clicked `points` with `labels` (the segmenter's mask from them), or a garment `category`
    (the clothes parser's mask)."""

    mask: ImageB64 | None = Field(None, description="One-channel PNG (or any image: white = redraw) at the image's size.")
    points: list[Point] = Field(default_factory=list, max_length=MAX_POINTS, description="Clicked points on the garment; the mask is the segmenter's.")
    labels: list[Literal[0, 1]] | None = Field(None, max_length=MAX_POINTS, description="One per point: 1 on the garment, 0 off it. Default: all 1.")
    category: Literal["upper", "lower", "full"] | None = Field(None, description="The mask of this garment category (the clothes parser), without clicks.")


class InpaintRequest(MaskSpec):
    """Redraw the masked region of an image (sent as `image`, or stored: `image_id`) as `prompt` says."""

    image: ImageB64 | None = Field(None, description="The image; or give image_id.")
    image_id: Identifier | None = Field(None, description="The id of a stored image; or give image.")
    prompt: Prompt = Field(description='What the whole image should show, e.g. "a woman wearing a red striped t-shirt and navy trousers".')
    negative_prompt: OptionalText | None = None
    seed: Seed | None = None
    steps: Annotated[int, Field(ge=1, le=LIMITS.max_steps)] = SETTINGS.inpaint_steps
    guidance: Guidance = SETTINGS.inpaint_guidance


class TryOnRequest(MaskSpec):
    """A person (`person` or `person_image_id`) wearing a garment (`garment`, `garment_image_id` or an
    indexed `garment_product_id`), inside a mask given, clicked or by category; with none of the three,
    the category of the garment's product type when the product index knows it."""

    person: ImageB64 | None = Field(None, description="The person image; or give person_image_id.")
    person_image_id: Identifier | None = Field(None, description="A stored image's id; or give person.")
    garment: ImageB64 | None = Field(None, description="The garment's product shot; or garment_image_id or garment_product_id.")
    garment_image_id: Identifier | None = Field(None, description="A stored image's id.")
    garment_product_id: Identifier | None = Field(None, description="An indexed product's id (POST /recommend returns them).")
    seed: Seed | None = None
    steps: Annotated[int, Field(ge=1, le=LIMITS.max_steps)] = SETTINGS.inpaint_steps
    guidance: Guidance = Field(SETTINGS.tryon_guidance, description="How strongly the garment is followed (classifier-free guidance over the garment).")


class InpaintResponse(BaseModel):
    id: str = Field(description="The stored result's id: `GET /images/{id}`.")
    url: str
    seed: int
    width: int
    height: int
    mask: str = Field(description="The mask used, a one-channel PNG (base64) at the image's size.")
    mask_source: Literal["mask", "points", "category"]
    changed_pixels: int = Field(description="Pixels inside the mask; every other pixel is the input's, unchanged.")
    source_image_id: str | None
    model: str
    timings: dict[str, float]


class TryOnResponse(InpaintResponse):
    category: str | None = Field(description="The garment category the mask came from, when it came from one.")
    garment_image_id: str | None = None
    garment_product_id: str | None = None


# --- catalog -------------------------------------------------------------------------------------------


class CatalogRequest(BaseModel):
    article_id: Identifier
    description: Description
    language: Literal["de", "en", "auto"] = "de"


class AttemptOut(BaseModel):
    attempt: int
    seed: int
    clip_score: float
    seconds: float


class CatalogResponse(BaseModel):
    article_id: str
    translation: str
    attributes: dict[str, Any]
    generation_prompt: str
    clip_prompt: str
    clip_score: float
    passed: bool
    attempts: list[AttemptOut]
    seed: int
    url: str
    metadata_url: str
    skipped: bool
    translation_confidence: float | None = None
    translation_reliable: bool = False
    attribute_sources: dict[str, dict[str, Literal["source", "translation"]]] = Field(
        default_factory=dict, description="Per attribute field and value: the text it came from."
    )
    extractor: str = Field("lexicon", description="What produced the attributes: lexicon, llm, or lexicon_fallback (the LLM failed; the lexicon answered).")


# --- translation and scoring -----------------------------------------------------------------------


class TranslateRequest(BaseModel):
    texts: Annotated[
        list[Annotated[str, Field(max_length=LIMITS.max_description_chars, json_schema_extra=TEXT_SCHEMA), AfterValidator(plain_text)]],
        Field(min_length=1, max_length=LIMITS.max_texts_per_request),
    ]


class TranslateResponse(BaseModel):
    translations: list[str]
    confidences: list[float | None] = Field(description="Per translation: the probability of its least likely token.")
    reliable: list[bool] = Field(description="Per translation: whether its confidence reaches translation_min_confidence.")


class ScoreRequest(BaseModel):
    image: ImageB64
    text: Prompt


class ScoreResponse(BaseModel):
    clip_score: float
