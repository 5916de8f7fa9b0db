"""`/translate`: German catalog text -> English, batched on the translator service."""

from __future__ import annotations

from fastapi import APIRouter

from fashion_studio import metrics
from services.api import TranslateRequest, TranslateResponse
from services.model_client import call_model
from services.routes import studio

router = APIRouter()


@router.post("/translate", response_model=TranslateResponse)
async def translate(body: TranslateRequest) -> TranslateResponse:
    with metrics.time_stage("translate"):
        translations = await call_model(lambda: studio().translator.to_async.translate(body.texts))
    return TranslateResponse(translations=translations)
