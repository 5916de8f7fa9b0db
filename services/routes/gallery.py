"""`/images`: the stored images, newest first, with their metadata, and each PNG by its id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from services.image_refs import IMAGE_ID
from services.routes import studio

router = APIRouter()
# Storage locations stay inside the deployment; a client addresses images by id.
_PRIVATE = ("image_path", "image_url", "key")


class StoredImage(BaseModel):
    id: str
    image: str = Field(description="Where the PNG is: GET this path.")
    created_at: str | None = None
    metadata: dict[str, Any]


class ImagePage(BaseModel):
    images: list[StoredImage]
    total: int
    limit: int
    offset: int


@router.get("/images", response_model=ImagePage)
async def list_images(limit: Annotated[int, Query(ge=1, le=200)] = 24, offset: Annotated[int, Query(ge=0)] = 0) -> ImagePage:
    """Stored images, newest first, with the metadata stored beside each (prompt or description,
    translation, attributes, CLIP score, seed, gate attempts, models, timings)."""
    total, records = await run_in_threadpool(studio().storage.recent, limit, offset)
    images = [
        StoredImage(
            id=record["key"],
            image=f"images/{record['key']}",
            created_at=record.get("created_at"),
            metadata={k: v for k, v in record.items() if k not in _PRIVATE},
        )
        for record in records
    ]
    return ImagePage(images=images, total=total, limit=limit, offset=offset)


@router.get("/images/{image_id}", response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def get_image(image_id: str) -> Response:
    """The stored PNG; 404 naming the id when there is none."""
    storage = studio().storage
    if IMAGE_ID.match(image_id) and await run_in_threadpool(storage.exists, image_id):
        data = await run_in_threadpool(storage.read_bytes, f"{image_id}.png")
        return Response(content=data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})
    raise HTTPException(
        404, {"field": "image_id", "value": image_id[:80], "limit": "must be the id of a stored image", "message": f"no stored image {image_id[:80]!r}"}
    )
