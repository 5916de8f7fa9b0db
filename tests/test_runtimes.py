"""The same pipeline on PyTorch and on ONNX Runtime: the generator's contract and its images."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from fashion_studio.generation import GenerationRequest, Generator
from fashion_studio.settings import Settings
from tests.helpers import ROOT
from tests.test_export import exported_models  # noqa: F401  (session fixture)

FAMILIES = ["sd", "sdxl", "flux"]


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def requests_for(family: str) -> list[GenerationRequest]:
    guided = family != "flux"
    return [
        GenerationRequest(
            prompt="a red striped t-shirt", seed=5, steps=2, width=64, height=32, guidance=4.0 if guided else 0.0, negative_prompt="blurry" if guided else None
        ),
        GenerationRequest(prompt="a green summer dress", seed=9, steps=2, width=64, height=32, guidance=4.0 if guided else 0.0, num_images=2),
    ]


@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_runtime_generation_matches_pytorch(family, tiny_models, exported_models, tmp_path):  # noqa: F811
    base = Settings(generator=str(tiny_models[family]), onnx_cache_dir=tmp_path / "cache")
    torch_gen = Generator.load(base)
    onnx_gen = Generator.load(base.model_copy(update={"runtime": "onnx", "onnx_dir": exported_models[family].parent}))
    assert onnx_gen.runtime == "onnx" and onnx_gen.family == family
    assert not (tmp_path / "cache").exists()  # found in onnx_dir, nothing exported on demand
    want = torch_gen.generate(requests_for(family))
    got = onnx_gen.generate(requests_for(family))
    assert [len(r.images) for r in got] == [1, 2]
    for w, g in zip(want, got):
        assert g.seeds == w.seeds
        for wi, gi in zip(w.images, g.images):
            assert gi.size == (64, 32)
            assert np.abs(pixels(wi) - pixels(gi)).max() <= 2
    # The generator's stage clock wraps the pipeline's own encode and decode calls.
    assert got[0].timings["encode"] > 0 and got[0].timings["decode"] > 0


def test_loading_never_exports_and_a_missing_export_names_the_command_that_makes_it(tiny_models, tmp_path):
    from fashion_studio.models import resolve
    from fashion_studio.runtimes import RuntimeUnavailable, load_clip_model, locate_export
    from fashion_studio.scoring import Scorer

    settings = Settings(scorer=str(tiny_models["clip"]), runtime="onnx", onnx_cache_dir=tmp_path / "cache")
    ref = resolve("scorer", settings.scorer, settings)
    with pytest.raises(RuntimeUnavailable, match="python -m export onnx") as missing:
        Scorer.load(settings)
    assert not (tmp_path / "cache").exists()  # nothing exported on load
    # The command the error names is the explicit export step; afterwards the same settings load it.
    command = re.search(r"`(python -m export onnx [^`]+)`", str(missing.value)).group(1)
    done = subprocess.run([sys.executable, *shlex.split(command)[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    found = locate_export(settings, ref)
    assert found.parent == tmp_path / "cache" and found.name.startswith("clip-")
    torch_scorer = Scorer.load(settings.model_copy(update={"runtime": "torch"}))
    onnx_scorer = Scorer(load_clip_model(settings, ref), torch_scorer.processor, ref)
    texts = ["a red dress", "blue jeans with a straight leg"]
    assert np.allclose(onnx_scorer.embed_texts(texts), torch_scorer.embed_texts(texts), atol=1e-5)
    from PIL import Image

    images = [Image.new("RGB", (64, 64), (200, 30, 30)), Image.new("RGB", (80, 64), (30, 30, 200))]
    assert np.allclose(onnx_scorer.embed_images(images), torch_scorer.embed_images(images), atol=1e-5)


def test_lora_needs_the_torch_runtime(tiny_models, tmp_path):
    from fashion_studio.runtimes import RuntimeUnavailable

    settings = Settings(generator=str(tiny_models["sd"]), runtime="onnx", lora=[str(tmp_path)], onnx_cache_dir=tmp_path / "cache")
    with pytest.raises(RuntimeUnavailable, match="LoRA"):
        Generator.load(settings)


def test_translator_and_scorer_load_on_onnx_runtime_from_settings(tiny_models, exported_models):  # noqa: F811
    from PIL import Image

    from fashion_studio.scoring import Scorer
    from fashion_studio.translation import Translator

    base = Settings(translator=str(tiny_models["marian"]), scorer=str(tiny_models["clip"]))
    onnx = base.model_copy(update={"runtime": "onnx", "onnx_dir": exported_models["clip"].parent})
    texts = ["Damen-T-Shirt aus Baumwolle", "Herrenhemd in Blau mit Streifen"]
    assert Translator.load(onnx).translate(texts) == Translator.load(base).translate(texts)
    images = [Image.new("RGB", (64, 64), (200, 20, 20)), Image.new("RGB", (64, 64), (20, 20, 200))]
    prompts = ["a red dress", "a blue shirt"]
    assert np.allclose(Scorer.load(onnx).score(images, prompts), Scorer.load(base).score(images, prompts), atol=1e-3)
