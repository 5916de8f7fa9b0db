"""The gateway's public routes, one module per feature, each a FastAPI `APIRouter` that
services/gateway.py includes. A route reaches the models through the running `Studio` service."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bentoml

if TYPE_CHECKING:
    from services.gateway import Studio


def studio() -> Studio:
    """The gateway service instance serving this request (its model-service clients, storage, pipelines)."""
    return bentoml.get_current_service()
