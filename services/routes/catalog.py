"""`/catalog`: seed 003's pipeline for one article, served."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from fashion_studio.catalog import Article, CatalogParams
from services.api import SETTINGS, CatalogRequest, CatalogResponse
from services.routes import studio

router = APIRouter()


@router.post("/catalog", response_model=CatalogResponse)
async def catalog(body: CatalogRequest) -> CatalogResponse:
    """Translate, extract, prompt, generate, score and gate, store; an article already stored with the
    same description and parameters (by the batch job or an earlier request) is answered from storage."""
    params = CatalogParams.from_settings(SETTINGS)
    result = await run_in_threadpool(studio().catalog.process, Article(body.article_id, body.description, body.language), params)
    return CatalogResponse(
        **{k: v for k, v in result.to_dict().items() if k in CatalogResponse.model_fields},
        url=result.image_url,
    )
