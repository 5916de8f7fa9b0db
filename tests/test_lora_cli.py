"""LoRA adapters from settings, and the `fashion-studio` command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fashion_studio.generation import GenerationRequest, Generator
from fashion_studio.settings import Settings


@pytest.fixture(scope="module")
def lora_dir(tiny_models, tmp_path_factory):
    """A LoRA on the tiny SD UNet's attention projections, saved the way diffusers saves LoRAs."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"])
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in pipe.unet.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn_like(param) * 0.5)
    out = tmp_path_factory.mktemp("lora")
    StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=get_peft_model_state_dict(pipe.unet), safe_serialization=True)
    return out


def image(generator: Generator) -> np.ndarray:
    result = generator(GenerationRequest(prompt="a white blouse", seed=1, steps=2, width=32, height=32))
    return np.asarray(result.images[0], dtype=np.int16)


def test_lora_from_settings_changes_the_image_and_its_weight_scales_it(tiny_models, lora_dir):
    base = image(Generator.load(Settings(generator=str(tiny_models["sd"]))))
    with_lora = Generator.load(Settings(generator=str(tiny_models["sd"]), lora=str(lora_dir)))
    assert [ref.path for ref, _ in with_lora.loras.values()] == [str(lora_dir.resolve())]
    assert np.abs(image(with_lora) - base).max() > 8
    muted = Generator.load(Settings(generator=str(tiny_models["sd"]), lora=f"{lora_dir}@0.0"))
    assert np.abs(image(muted) - base).max() <= 1


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fashion_studio.cli", *args], capture_output=True, text=True, timeout=300, env=env)


def test_cli_generate_writes_pngs_of_the_asked_size(tiny_models, tmp_path):
    out = tmp_path / "dress.png"
    result = run_cli(
        "generate",
        "a red dress",
        "-o",
        str(out),
        "--seed",
        "4",
        "--steps",
        "2",
        "--width",
        "48",
        "--height",
        "32",
        "-n",
        "2",
        "--generator",
        str(tiny_models["sd"]),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert Image.open(out).size == (48, 32) and Image.open(tmp_path / "dress-1.png").size == (48, 32)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary["timings"]) >= {"encode", "denoise", "decode"}


def test_cli_bad_input_exits_2_naming_the_field(tiny_models, tmp_path):
    result = run_cli("generate", "a red dress", "-o", str(tmp_path / "x.png"), "--width", "60", "--generator", str(tiny_models["sd"]))
    assert result.returncode == 2
    assert "width=60" in result.stderr and "multiple of 8" in result.stderr
    missing = run_cli("catalog", str(tmp_path / "nope.xlsx"), "--out", str(tmp_path / "o"))
    assert missing.returncode == 2 and "file=" in missing.stderr


def test_studio_uses_the_llm_extractor_when_configured(tiny_models, tmp_path, settings):
    from fashion_studio.attributes import LexiconExtractor
    from fashion_studio.studio import Studio

    assert isinstance(Studio(settings).extractor, LexiconExtractor)
    with pytest.raises(Exception, match="llm model"):
        _ = Studio(settings.model_copy(update={"llm": str(tmp_path / "no-llm")})).extractor
