"""`/sessions`: seed 001's conversation. A shopper describes an outfit, the studio draws it, the shopper
asks for changes in words, and each image comes with the catalog's five most similar products.

A message is understood (fashion_studio/sessions/understand.py) as one of three actions: `generate`
draws the outfit and recommends for it, `edit` changes the current image (the latest one of the
session) and recommends for the result, `recommend` recommends for the current image. German goes
through the translator first. The turn is stored (fashion_studio/sessions/store.py) only once its work
is done, with the next sequence number of its session; the messages of one session are taken one at
a time by a gateway process, so an edit always starts from the image the turn before it left.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import AfterValidator, BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from fashion_studio import metrics
from fashion_studio.errors import ConflictError, InvalidInputError
from fashion_studio.sessions.store import Session, SessionStore, Turn, store_from_settings
from fashion_studio.sessions.understand import Understanding, message_language, understand
from fashion_studio.translation import Translation
from services.api import LIMITS, SETTINGS, TEXT_SCHEMA, GenerateRequest, Seed, plain_text
from services.image_refs import ImageRef, stored_image
from services.model_client import call_model
from services.routes import studio
from services.routes.edit import edit_image
from services.routes.generation import generate
from services.routes.recommend import RecommendedProduct, recommend_products

logger = logging.getLogger(__name__)
router = APIRouter(tags=["conversation"])

ENDPOINT = "/sessions/{session_id}/messages"
RECOMMENDATIONS = 5
Action = Literal["generate", "edit", "recommend"]

Message = Annotated[str, Field(min_length=1, max_length=LIMITS.max_message_chars, json_schema_extra=TEXT_SCHEMA), AfterValidator(plain_text)]


class MessageRequest(BaseModel):
    message: Message = Field(description="What the shopper says: an outfit to draw, a change ('make it blue'), or 'show me similar products'.")
    action: Action | None = Field(None, description="Name the action instead of having it understood from the words.")
    language: Literal["en", "de", "auto"] = Field("auto", description="German is translated first; `auto` decides from the words.")
    seed: Seed | None = Field(None, description="Seed of a generation or an edit; the same seed and message give the same image.")


class TranslationOut(BaseModel):
    text: str
    confidence: float | None = None
    reliable: bool = False


class TurnImage(BaseModel):
    id: str = Field(description="The stored image's id: GET /images/{id}, or image_id in other requests.")
    url: str
    seed: int | None = None
    width: int
    height: int
    clip_score: float | None = None
    source_image_id: str | None = Field(None, description="The image an edit changed.")


class TurnOut(BaseModel):
    session_id: str
    seq: int = Field(description="1, 2, ... in the order the session's turns were stored.")
    created_at: str
    message: str
    language: Literal["en", "de"]
    action: Action
    understood: Literal["named", "words"] = Field(description="Whether the request named the action or its words did.")
    text: str | None = Field(None, description="The English the action acted on: the outfit described, or the edit instruction.")
    text_source: Literal["message", "translation", "lexicon"] | None = None
    translation: TranslationOut | None = None
    prompt: str | None = Field(None, description="The generation prompt built from `text`.")
    based_on: str | None = Field(None, description="The image id an edit or a recommendation started from.")
    images: list[TurnImage] = Field(default_factory=list)
    recommendations: list[RecommendedProduct] = Field(default_factory=list, description=f"The {RECOMMENDATIONS} most similar catalog products, best first.")
    recommendation_error: str | None = Field(None, description="Why this turn has no recommendations, when finding them failed.")


class SessionOut(BaseModel):
    id: str
    created_at: str
    updated_at: str
    current_image_id: str | None = Field(None, description="The image the next edit or recommendation starts from.")
    turns: list[TurnOut]


@lru_cache(maxsize=1)
def session_store() -> SessionStore:
    """Opened on first use, so a gateway starts (and reports ready) without its session store."""
    store = store_from_settings(SETTINGS)
    logger.info("sessions in %s", store.url.split("@")[-1])
    return store


# One lock per session while any request of it holds one: a process takes a session's turns in order.
_LOCKS: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def _lock_of(session_id: str) -> asyncio.Lock:
    lock = _LOCKS.get(session_id)
    if lock is None:
        lock = _LOCKS[session_id] = asyncio.Lock()
    return lock


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def turn_out(session_id: str, turn: Turn) -> TurnOut:
    return TurnOut(session_id=session_id, seq=turn.seq, created_at=iso(turn.created_at), **turn.data)


def current_image(session: Session) -> str | None:
    """The latest image of the session: what an edit or a recommendation starts from."""
    for turn in reversed(session.turns):
        if turn.data.get("images"):
            return turn.data["images"][0]["id"]
    return None


def session_out(session: Session) -> SessionOut:
    return SessionOut(
        id=session.id,
        created_at=iso(session.created_at),
        updated_at=iso(session.updated_at),
        current_image_id=current_image(session),
        turns=[turn_out(session.id, t) for t in session.turns],
    )


@router.post("/sessions", response_model=SessionOut, status_code=201)
async def create_session() -> SessionOut:
    """A new, empty conversation; its id goes in the path of the messages."""
    session = await run_in_threadpool(session_store().create)
    return session_out(session)


@router.get("/sessions/{session_id}", response_model=SessionOut)
async def get_session(session_id: str) -> SessionOut:
    """The conversation's turns in order; 404 naming `session_id` when there is none."""
    return session_out(await run_in_threadpool(session_store().get, session_id))


@router.post(ENDPOINT, response_model=TurnOut)
async def post_message(session_id: str, body: MessageRequest) -> TurnOut:
    """One turn: understand the message, do its work, store it. 404 for an unknown session, 422 naming
    `message` when it is not understood (with what is), 409 for an edit or a recommendation before the
    session has an image."""
    store = session_store()
    async with _lock_of(session_id):
        session = await run_in_threadpool(store.get, session_id)
        if len(session.turns) >= LIMITS.max_session_turns:
            raise ConflictError("session_id", session_id, f"a session holds at most {LIMITS.max_session_turns} turns: start a new one (POST /sessions)")
        based_on = current_image(session)
        language = message_language(body.message, body.language)
        translation = await _translate(body.message) if language == "de" else None
        understood = understand(body.message, language=language, has_image=based_on is not None, action=body.action, translation=translation)
        if understood.action != "generate" and based_on is None:
            raise ConflictError(
                "action", understood.action, f"{understood.action} needs an image in the session: describe an outfit first (e.g. 'a red summer dress')"
            )
        data = await _act(understood, body, based_on)
        data.update(
            message=body.message,
            language=language,
            action=understood.action,
            understood=understood.understood,
            text=understood.text,
            text_source=understood.source,
            translation=None
            if translation is None
            else TranslationOut(text=translation.text, confidence=translation.confidence, reliable=translation.reliable).model_dump(),
        )
        # only onto the session as it was read: a turn another replica stored meanwhile makes this one a 409
        turn = await run_in_threadpool(store.append, session_id, data, len(session.turns))
    metrics.SESSION_TURNS.labels(action=understood.action, language=language, understood=understood.understood).inc()
    return turn_out(session_id, turn)


async def _translate(text: str) -> Translation:
    with metrics.time_stage("translate"):
        [answer] = await call_model(lambda: studio().translator.to_async.translate([text]))
    return Translation.of(answer)


async def _act(understood: Understanding, body: MessageRequest, based_on: str | None) -> dict[str, Any]:
    """The action's work: the images it stored and the products like the newest image."""
    if understood.action == "generate":
        assert understood.text is not None
        prompt = SETTINGS.generation_template.format(subject=understood.text, details="")
        image = await _generate(prompt, body.seed)
        return {"prompt": prompt, "based_on": None, "images": [image.model_dump()], **await _recommendations_for(image.id)}
    assert based_on is not None
    if understood.action == "edit":
        assert understood.text is not None
        image = await _edit(based_on, understood.text, body.seed)
        return {"prompt": None, "based_on": based_on, "images": [image.model_dump()], **await _recommendations_for(image.id)}
    return {"prompt": None, "based_on": based_on, "images": [], "recommendations": await _recommend(based_on), "recommendation_error": None}


async def _generate(prompt: str, seed: int | None) -> TurnImage:
    """Through `/generate`'s own route: scored by CLIP, safety-checked, stored with its metadata."""
    try:
        request = GenerateRequest(prompt=prompt, seed=seed, num_images=1)
    except ValidationError as exc:  # a template longer than the settings' prompt limit allows
        raise InvalidInputError("message", prompt, f"the generation prompt made from it must pass: {exc.errors()[0]['msg']}") from None
    response = await generate(request)
    image = response.images[0]
    image_id = getattr(image, "id", None) or Path(image.url).stem
    return TurnImage(id=image_id, url=f"/images/{image_id}", seed=image.seed, width=image.width, height=image.height, clip_score=image.clip_score)


async def _source(image_id: str) -> ImageRef:
    return await run_in_threadpool(stored_image, studio().storage, image_id)


async def _edit(source_id: str, instruction: str, seed: int | None) -> TurnImage:
    """Through `/edit`'s own route: CLIP-scored against the edited description, safety-checked, stored
    with its source; the instruction's limits are the message's."""
    try:
        response = await edit_image(await _source(source_id), instruction, seed=seed)
    except InvalidInputError as exc:
        if exc.field == "instruction":  # the conversation's field for it
            exc.field = "message"
        raise
    return TurnImage(
        id=response.id,
        url=f"/images/{response.id}",
        seed=response.seed,
        width=response.width,
        height=response.height,
        clip_score=response.clip_score,
        source_image_id=source_id,
    )


async def _recommend(image_id: str) -> list[dict[str, Any]]:
    """The catalog's products most like a stored image, through `/recommend`'s own code."""
    response = await recommend_products(image=(await _source(image_id)).image, k=RECOMMENDATIONS)
    return [product.model_dump() for product in response.products]


async def _recommendations_for(image_id: str) -> dict[str, Any]:
    """Recommendations for a turn's new image; the image stays the turn's even when they fail."""
    try:
        return {"recommendations": await _recommend(image_id), "recommendation_error": None}
    except Exception as exc:  # noqa: BLE001 - any failure of the product search; the turn says which
        logger.warning("no recommendations for %s: %s: %s", image_id, type(exc).__name__, exc)
        metrics.FAILURES.labels(endpoint=ENDPOINT, reason="recommendations").inc()
        return {"recommendations": [], "recommendation_error": f"{type(exc).__name__}: {exc}"}
