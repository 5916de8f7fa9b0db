"""`/translate`: German catalog text -> English, batched on the translator service."""

from __future__ import annotations

from fastapi import APIRouter

from fashion_studio import metrics
from fashion_studio.translation import Translation
from services.api import TranslateRequest, TranslateResponse
from services.model_client import call_model
from services.routes import studio

router = APIRouter()


@router.post("/translate", response_model=TranslateResponse)
async def translate(body: TranslateRequest) -> TranslateResponse:
    with metrics.time_stage("translate"):
        answers = await call_model(lambda: studio().translator.to_async.translate(body.texts))
    translations = [Translation.of(a) for a in answers]
    return TranslateResponse(
        translations=[t.text for t in translations],
        confidences=[t.confidence for t in translations],
        reliable=[t.reliable for t in translations],
    )
