from __future__ import annotations

import time

import pytest

from fashion_studio import models
from fashion_studio.errors import ModelNotFoundError
from fashion_studio.settings import Settings


def test_local_folder_resolves(tiny_models):
    ref = models.resolve("generator", str(tiny_models["sd"]), Settings())
    assert ref.path == str(tiny_models["sd"].resolve())
    assert models.diffusion_family(ref.path) == "sd"
    assert models.diffusion_family(tiny_models["sdxl"]) == "sdxl"
    assert models.diffusion_family(tiny_models["flux"]) == "flux"


def test_relative_reference_resolves_under_models_dir(tiny_models):
    settings = Settings(models_dir=tiny_models["sd"].parent.parent)
    assert models.resolve("generator", "tiny/sd", settings).path == str(tiny_models["sd"].resolve())


def test_missing_hub_model_fails_at_once_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelNotFoundError) as info:
        models.resolve("generator", "black-forest-labs/FLUX.1-schnell", Settings(models_dir=tmp_path))
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "black-forest-labs/FLUX.1-schnell" in message
    assert str(tmp_path / "black-forest-labs/FLUX.1-schnell") in message
    assert "HF_HUB_OFFLINE" in message and "FASHION_GENERATOR" in message and "huggingface-cli download" in message


def test_missing_local_folder_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(ModelNotFoundError) as info:
        models.resolve("translator", str(tmp_path / "nowhere"), Settings())
    assert str(tmp_path / "nowhere") in str(info.value)
    assert "FASHION_TRANSLATOR" in str(info.value) and "build-tiny" in str(info.value)


def test_folder_that_is_not_a_pipeline(tmp_path):
    with pytest.raises(ModelNotFoundError, match="model_index.json"):
        models.diffusion_family(tmp_path)
