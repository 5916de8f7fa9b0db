"""Garment masks: Segment Anything from clicked points or a box, and a clothes parser by category.

`Segmenter` runs transformers' `SamModel` + `SamProcessor` (a `facebook/sam-vit-*` checkpoint, or
fashion-mini's small SAM) and, for masks by garment category without clicks, a
`SegformerForSemanticSegmentation` clothes parser (`mattmdjaga/segformer_b2_clothes`, or fashion-mini's)
whose label names say which labels make up "upper", "lower" and "full". `SegmentRequest.check`
validates a request against the image it refers to; `Segmenter.segment` runs a batch of them, one SAM
call per prompt shape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fashion_studio import models
from fashion_studio.errors import InvalidInputError, ModelNotFoundError
from fashion_studio.settings import Settings

logger = logging.getLogger(__name__)

CATEGORIES: tuple[str, ...] = ("upper", "lower", "full")
# The parser labels that make up each category (the names of the published SegFormer clothes parsers;
# fashion-mini's parser uses the same names). "full" is all the clothing: a dress, or a top and a bottom.
CATEGORY_LABELS: dict[str, tuple[str, ...]] = {
    "upper": ("Upper-clothes",),
    "lower": ("Skirt", "Pants"),
    "full": ("Upper-clothes", "Skirt", "Pants", "Dress"),
}
MAX_POINTS = 16


def prompt_kind(category: str | None, box: Any) -> str:
    """What a request prompts with, as `/segment` answers and `fashion_segmentations_total` counts it."""
    return "category" if category is not None else "box" if box is not None else "points"


@dataclass(frozen=True)
class SegmentRequest:
    """One image and its prompt: `points` [(x, y)] in pixels with `labels` (1 foreground, 0
    background), or a `box` (x0, y0, x1, y1), or a garment `category` (no clicks: the parser).
    `multimask`: return SAM's three candidate masks (default: when the prompt is one point, as SAM
    does, since one point is ambiguous)."""

    image: Image.Image
    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None
    category: str | None = None
    multimask: bool | None = None

    def check(self) -> SegmentRequest:
        width, height = self.image.size
        prompts = [name for name, given in (("points", bool(self.points)), ("box", self.box is not None), ("category", self.category is not None)) if given]
        if not prompts:
            raise InvalidInputError("points", [], "give points (with labels), a box, or a category")
        if "category" in prompts and len(prompts) > 1:
            raise InvalidInputError("category", self.category, "a category mask takes no points or box")
        if self.category is not None and self.category not in CATEGORIES:
            raise InvalidInputError("category", self.category, f"must be one of {list(CATEGORIES)}")
        if len(self.points) > MAX_POINTS:
            raise InvalidInputError("points", len(self.points), f"at most {MAX_POINTS} points")
        if self.points and len(self.labels) != len(self.points):
            raise InvalidInputError("labels", list(self.labels), f"one label per point: {len(self.points)} points, {len(self.labels)} labels")
        for i, (x, y) in enumerate(self.points):
            if not (0 <= x < width and 0 <= y < height):
                raise InvalidInputError(f"points[{i}]", [x, y], f"must lie inside the {width}x{height} image: 0 <= x < {width}, 0 <= y < {height}")
        for i, label in enumerate(self.labels):
            if label not in (0, 1):
                raise InvalidInputError(f"labels[{i}]", label, "must be 1 (foreground) or 0 (background)")
        if self.points and not any(label == 1 for label in self.labels):
            raise InvalidInputError("labels", list(self.labels), "at least one point must be a foreground point (label 1)")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
                raise InvalidInputError("box", list(self.box), f"must be [x0, y0, x1, y1] with 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height}")
        return self

    @property
    def prompt(self) -> str:
        return prompt_kind(self.category, self.box)

    @property
    def wants_multimask(self) -> bool:
        if self.multimask is not None:
            return self.multimask
        return len(self.points) == 1 and self.box is None

    def shape_key(self) -> tuple:
        """Requests with equal keys share one SAM call: the same number of points (no padding, so a
        request's masks do not depend on what it was batched with), box or not, multimask or not."""
        if self.category is not None:
            return ("category",)
        return (len(self.points), self.box is not None, self.wants_multimask)


@dataclass
class Mask:
    mask: np.ndarray  # bool (height, width) at the request image's size
    score: float  # SAM's predicted IoU; the parser's mean confidence inside the mask for a category

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    def image(self) -> Image.Image:
        return Image.fromarray(self.mask.astype(np.uint8) * 255, mode="L")


@dataclass
class SegmentResult:
    masks: list[Mask]  # best first
    model: str
    timings: dict[str, float] = field(default_factory=dict)
    batch_images: int = 1


class Segmenter:
    """SAM (points, boxes) and the clothes parser (categories), loaded from model references."""

    def __init__(self, sam: Any, processor: Any, parser: Any | None, parser_processor: Any | None, name: str, device: str = "cpu") -> None:
        self.sam = sam.eval()
        self.processor = processor
        self.parser = parser.eval() if parser is not None else None
        self.parser_processor = parser_processor
        self.name = name
        self.device = device
        self.runtime = "torch"
        if parser is not None:
            ids = {label: int(i) for i, label in parser.config.id2label.items()}
            self.category_ids = {c: [ids[n] for n in names if n in ids] for c, names in CATEGORY_LABELS.items()}
            if not all(self.category_ids.values()):
                raise ModelNotFoundError(f"the clothes parser's labels {sorted(ids)} name none of {CATEGORY_LABELS} for some category")

    @classmethod
    def load(cls, folder_or_sam: str | Path, parser: str | Path | None = None, device: str = "cpu") -> Segmenter:
        """From a fashion-mini segmenter folder (`sam/` and `parser/` in it), or a SAM folder and a parser folder."""
        from transformers import SamModel, SamProcessor, SegformerForSemanticSegmentation, SegformerImageProcessor

        root = Path(folder_or_sam)
        sam_path = root / "sam" if (root / "sam" / "config.json").is_file() else root
        if parser is None and (root / "parser" / "config.json").is_file():
            parser = root / "parser"
        sam = SamModel.from_pretrained(sam_path).to(device)
        processor = SamProcessor.from_pretrained(sam_path)
        parser_model = parser_processor = None
        if parser is not None:
            parser_model = SegformerForSemanticSegmentation.from_pretrained(parser).to(device)
            parser_processor = SegformerImageProcessor.from_pretrained(parser)
        return cls(sam, processor, parser_model, parser_processor, name=str(folder_or_sam), device=device)

    @classmethod
    def from_settings(cls, settings: Settings) -> Segmenter:
        sam_ref = models.resolve("segmenter", settings.segmenter, settings)
        parser_ref = None
        if settings.parser:
            parser_ref = models.resolve("parser", settings.parser, settings)
        models.limit_threads(settings)
        segmenter = cls.load(sam_ref.path, parser_ref.path if parser_ref else None, device=settings.device)
        segmenter.name = settings.segmenter
        logger.info(
            "segmenter %s loaded from %s (parser: %s)",
            sam_ref.ref,
            sam_ref.path,
            parser_ref.ref if parser_ref else "from the same folder" if segmenter.parser else "none",
        )
        return segmenter

    def check(self, request: SegmentRequest) -> SegmentRequest:
        """The request checked against its image and against what this segmenter can do (a category
        needs a clothes parser)."""
        request.check()
        if request.category is not None:
            self._need_parser(request.category)
        return request

    def _need_parser(self, category: str) -> None:
        if self.parser is None:
            raise InvalidInputError("category", category, "this deployment has no clothes parser (FASHION_PARSER names one): give points or a box")

    # -- one request -------------------------------------------------------------------------------

    def from_points(self, image: Image.Image, points: Sequence[Sequence[float]], labels: Sequence[int], multimask: bool | None = None) -> list[Mask]:
        (result,) = self.segment([self.check(SegmentRequest(image, tuple(map(tuple, points)), tuple(labels), multimask=multimask))])
        return result.masks

    def from_box(self, image: Image.Image, box: Sequence[float]) -> list[Mask]:
        (result,) = self.segment([self.check(SegmentRequest(image, box=tuple(box)))])
        return result.masks

    def by_category(self, image: Image.Image, categories: Sequence[str]) -> dict[str, np.ndarray]:
        """The masks of several categories of one image, from one parser call."""
        for category in categories:
            self._need_parser(category)
        (probabilities,) = self._probabilities([image])
        return {c: self._category_mask(probabilities, c).mask for c in categories}

    # -- batches -----------------------------------------------------------------------------------

    def segment(self, requests: Sequence[SegmentRequest]) -> list[SegmentResult]:
        """Checked requests -> results in order; one model call per `shape_key` group."""
        results: list[SegmentResult | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.shape_key(), []).append(index)
        for key, members in groups.items():
            started = time.perf_counter()
            chosen = [requests[i] for i in members]
            if key[0] == "category":
                answers = [[mask] for mask in self._parse([r.image for r in chosen], [r.category for r in chosen])]
            else:
                answers = self._sam(chosen)
            seconds = time.perf_counter() - started
            for index, masks in zip(members, answers):
                results[index] = SegmentResult(masks, self.name, {"total": round(seconds, 4)}, batch_images=len(members))
        return results  # type: ignore[return-value]

    def _sam(self, requests: Sequence[SegmentRequest]) -> list[list[Mask]]:
        import torch

        images = [r.image.convert("RGB") for r in requests]
        kwargs: dict[str, Any] = {}
        if requests[0].points:  # one point count per call (`shape_key`)
            kwargs["input_points"] = [[list(map(list, r.points))] for r in requests]
            kwargs["input_labels"] = [[list(r.labels)] for r in requests]
        if requests[0].box is not None:
            kwargs["input_boxes"] = [[list(r.box)] for r in requests]
        inputs = self.processor(images=images, return_tensors="pt", **kwargs)
        original_sizes, reshaped = inputs.pop("original_sizes"), inputs.pop("reshaped_input_sizes")
        multimask = requests[0].wants_multimask
        with torch.inference_mode():
            output = self.sam(**{k: v.to(self.device) for k, v in inputs.items()}, multimask_output=multimask)
        masks = self.processor.image_processor.post_process_masks(output.pred_masks.cpu(), original_sizes, reshaped, binarize=True)
        scores = output.iou_scores.cpu().numpy()
        answers = []
        for i, found in enumerate(masks):
            candidates = [Mask(found[0, j].numpy().astype(bool), float(scores[i, 0, j])) for j in range(found.shape[1])]
            answers.append(sorted(candidates, key=lambda m: -m.score))
        return answers

    def _parse(self, images: Sequence[Image.Image], categories: Sequence[str]) -> list[Mask]:
        for category in categories:
            self._need_parser(category)
        return [self._category_mask(p, c) for p, c in zip(self._probabilities(images), categories)]

    def _probabilities(self, images: Sequence[Image.Image]) -> list[Any]:
        """The parser's label probabilities (labels, height, width) of each image, at the image's size."""
        import torch
        import torch.nn.functional as F

        rgb = [im.convert("RGB") for im in images]
        inputs = self.parser_processor(images=rgb, return_tensors="pt")
        with torch.inference_mode():
            logits = self.parser(pixel_values=inputs["pixel_values"].to(self.device)).logits.cpu()
        return [
            F.interpolate(logits[i : i + 1], size=(image.height, image.width), mode="bilinear", align_corners=False)[0].softmax(0)
            for i, image in enumerate(rgb)
        ]

    def _category_mask(self, probabilities: Any, category: str) -> Mask:
        """The pixels whose most likely label is one of the category's, and the mean probability of
        the category there."""
        import torch

        ids = torch.tensor(self.category_ids[category])
        mask = torch.isin(probabilities.argmax(0), ids)
        confidence = float(probabilities[ids].sum(0)[mask].mean()) if bool(mask.any()) else 0.0
        return Mask(mask.numpy(), confidence)
