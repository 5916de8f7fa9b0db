"""A folder of product images with captions, read the way the field's training scripts read one.

Two layouts: a CSV beside the images (`metadata.csv` as in 🤗 `imagefolder` and diffusers'
`train_text_to_image_lora.py`: a `file_name` or `image` column and a `text` or `caption` column), or one
`.txt` file per image with the same stem (the kohya-ss layout). The fingerprint covers names, captions
and bytes, so a resumed training can tell that its data did not change.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fashion_studio.errors import InvalidInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
CSV_NAMES = ("metadata.csv", "captions.csv")
IMAGE_COLUMNS = ("file_name", "image", "filename", "path")
CAPTION_COLUMNS = ("text", "caption", "prompt")


@dataclass(frozen=True)
class CaptionedImage:
    path: Path
    caption: str


def read_folder(folder: Path) -> list[CaptionedImage]:
    """Every captioned image of `folder`, sorted by file name; an image without a caption is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError("data", str(folder), "must be a folder of images with captions")
    table = next((folder / name for name in CSV_NAMES if (folder / name).is_file()), None)
    items = _from_csv(folder, table) if table else _from_sidecars(folder)
    if not items:
        raise InvalidInputError("data", str(folder), f"holds no captioned images ({', '.join(IMAGE_SUFFIXES)} with {CSV_NAMES[0]} or .txt files)")
    return sorted(items, key=lambda item: item.path.name)


def _from_csv(folder: Path, table: Path) -> list[CaptionedImage]:
    with table.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0]) if rows else set()
    image_column = next((c for c in IMAGE_COLUMNS if c in columns), None)
    caption_column = next((c for c in CAPTION_COLUMNS if c in columns), None)
    if image_column is None or caption_column is None:
        raise InvalidInputError("data", str(table), f"needs an image column ({'/'.join(IMAGE_COLUMNS)}) and a caption column ({'/'.join(CAPTION_COLUMNS)})")
    items = []
    for row in rows:
        path = folder / row[image_column]
        if not path.is_file():
            raise InvalidInputError("data", str(path), f"is named in {table.name} but missing")
        items.append(CaptionedImage(path, row[caption_column].strip()))
    return items


def _from_sidecars(folder: Path) -> list[CaptionedImage]:
    items = []
    for path in folder.iterdir():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        caption = path.with_suffix(".txt")
        if not caption.is_file():
            raise InvalidInputError("data", str(path), f"has no caption file {caption.name}")
        items.append(CaptionedImage(path, caption.read_text(encoding="utf-8").strip()))
    return items


def fingerprint(items: Sequence[CaptionedImage]) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.path.name.encode())
        digest.update(item.caption.encode())
        digest.update(hashlib.sha256(item.path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def load_images(items: Sequence[CaptionedImage], width: int, height: int) -> np.ndarray:
    """uint8 (n, height, width, 3): each image resized to cover the size, then centre-cropped."""
    arrays = []
    for item in items:
        with Image.open(item.path) as image:
            image = image.convert("RGB")
            scale = max(width / image.width, height / image.height)
            size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
            if size != image.size:
                image = image.resize(size, Image.Resampling.BICUBIC)
            left, top = (image.width - width) // 2, (image.height - height) // 2
            arrays.append(np.asarray(image.crop((left, top, left + width, top + height)), dtype=np.uint8))
    return np.stack(arrays)


def write_folder(folder: Path, images: Sequence[Image.Image], captions: Sequence[str]) -> Path:
    """Write images and a `metadata.csv`: the layout `read_folder` (and `imagefolder`) reads."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / CSV_NAMES[0]).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "text"])
        for index, (image, caption) in enumerate(zip(images, captions)):
            name = f"{index:05d}.png"
            image.save(folder / name)
            writer.writerow([name, caption])
    return folder
