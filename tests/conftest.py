"""Shared fixtures: the small production-shaped models, built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every tiny family, built into a session folder (reused from FASHION_TEST_MODELS if set)."""
    from fashion_studio.tiny import build_all

    root = Path(os.environ.get("FASHION_TEST_MODELS") or tmp_path_factory.mktemp("models"))
    return build_all(root / "tiny", seed=0)


@pytest.fixture()
def settings(tiny_models: dict[str, Path], tmp_path: Path):
    from fashion_studio.settings import Settings

    return Settings(
        models_dir=tiny_models["sd"].parent.parent,
        generator=str(tiny_models["sd"]),
        translator=str(tiny_models["marian"]),
        scorer=str(tiny_models["clip"]),
        storage_url=str(tmp_path / "store"),
        default_steps=2,
        default_guidance=0.0,
        default_width=32,
        default_height=32,
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """A real S3 server (SeaweedFS) for the whole session: see tests/s3.py."""
    from tests.s3 import SeaweedS3

    server = SeaweedS3.start(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()
