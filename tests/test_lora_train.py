"""LoRA training (`fashion-studio lora train`), adapters chosen per request, and the zigzag demonstration."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_studio.errors import InvalidInputError
from fashion_studio.generation import GenerationRequest, Generator, group_by_shape, lora_names
from fashion_studio.lora import data as lora_data
from fashion_studio.lora.train import CHECKPOINT_NAME, WEIGHTS_NAME, LoraTrainConfig, train_lora
from fashion_studio.mini.render import Spec, random_variation, render
from fashion_studio.settings import Settings
from tests.helpers import ROOT, wait_until

TYPES_COLOURS = [("dress", "red"), ("cap", "navy"), ("jacket", "green"), ("skirt", "yellow")]


def write_renders(folder: Path, n: int, pattern: str = "zigzag", sidecars: bool = False) -> Path:
    rng = np.random.default_rng(0)
    images, captions = [], []
    for i in range(n):
        product, colour = TYPES_COLOURS[i % len(TYPES_COLOURS)]
        images.append(render(Spec(product, colour, pattern, **random_variation(rng))))
        captions.append(f"{colour} {pattern} {product}")
    if not sidecars:
        return lora_data.write_folder(folder, images, captions)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (image, caption) in enumerate(zip(images, captions)):
        image.save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text(caption)
    return folder


def tiny_config(**overrides) -> LoraTrainConfig:
    values = dict(
        rank=4,
        alpha=8,
        steps=6,
        learning_rate=3e-2,
        batch_size=2,
        resolution=32,
        checkpoint_every=2,
        target_modules=("to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"),
    )
    return LoraTrainConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def sd_adapter(tiny_models, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lora-train")
    data = write_renders(root / "data", 6)
    out = root / "adapter"
    train_lora(str(tiny_models["sd"]), data, out, tiny_config(), Settings(), progress=False)
    return out


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_a_folder_reads_from_a_csv_or_caption_files_and_names_what_is_missing(tmp_path):
    by_csv = lora_data.read_folder(write_renders(tmp_path / "csv", 3))
    by_txt = lora_data.read_folder(write_renders(tmp_path / "txt", 3, sidecars=True))
    assert [i.caption for i in by_csv] == [i.caption for i in by_txt] == ["red zigzag dress", "navy zigzag cap", "green zigzag jacket"]
    (tmp_path / "txt" / "1.txt").unlink()
    with pytest.raises(InvalidInputError, match="1.png") as error:
        lora_data.read_folder(tmp_path / "txt")
    assert error.value.field == "data"


def test_training_writes_an_adapter_that_diffusers_and_fashion_lora_load(tiny_models, sd_adapter):
    import torch
    from diffusers import StableDiffusionPipeline
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file

    assert (sd_adapter / WEIGHTS_NAME).is_file() and not (sd_adapter / CHECKPOINT_NAME).exists()
    card = (sd_adapter / "README.md").read_text()
    assert "6 images" in card and "6 at batch size 2" in card and "rank 4" in card

    def draw(pipe) -> np.ndarray:
        pipe.set_progress_bar_config(disable=True)
        out = pipe("red zigzag dress", num_inference_steps=2, guidance_scale=1.0, width=32, height=32, generator=torch.Generator().manual_seed(0))
        return pixels(out.images[0])

    base = StableDiffusionPipeline.from_pretrained(tiny_models["sd"])
    plain = draw(base)
    base.load_lora_weights(sd_adapter, weight_name=WEIGHTS_NAME)  # diffusers' own loader, unchanged
    assert np.abs(draw(base) - plain).max() > 4
    # Every saved layer (attention projections and ResNet convolutions alike) loads, with its values.
    saved = load_file(sd_adapter / WEIGHTS_NAME)
    loaded = get_peft_model_state_dict(base.unet, adapter_name=base.get_active_adapters()[0])
    assert {f"unet.{name}" for name in loaded} == set(saved) and any(".conv1." in name for name in saved)
    assert all(torch.equal(loaded[name.removeprefix("unet.")], value) for name, value in saved.items())
    assert base.unet.peft_config[base.get_active_adapters()[0]].lora_alpha == 8  # from the saved config, not the rank

    served = Generator.load(Settings(generator=str(tiny_models["sd"]), lora=str(sd_adapter)))
    image = served(GenerationRequest(prompt="red zigzag dress", seed=0, steps=2, width=32, height=32)).images[0]
    unadapted = Generator.load(Settings(generator=str(tiny_models["sd"])))(
        GenerationRequest(prompt="red zigzag dress", seed=0, steps=2, width=32, height=32)
    ).images[0]
    assert np.abs(pixels(image) - pixels(unadapted)).max() > 4


@pytest.mark.parametrize("family", ["sdxl", "flux"])
def test_sdxl_and_flux_adapters_train_and_load(tiny_models, tmp_path, family):
    from diffusers import DiffusionPipeline

    data = write_renders(tmp_path / "data", 2)
    out = tmp_path / "adapter"
    record = train_lora(str(tiny_models[family]), data, out, tiny_config(steps=2, batch_size=1), Settings(), progress=False)
    assert record["family"] == family and record["trainable_parameters"] > 0
    pipe = DiffusionPipeline.from_pretrained(tiny_models[family])
    pipe.load_lora_weights(out, weight_name=WEIGHTS_NAME, adapter_name="shop")
    assert "shop" in pipe.get_active_adapters()


def run_train(data: Path, out: Path, sd: Path, steps: int) -> subprocess.Popen:
    args = [
        sys.executable,
        "-m",
        "fashion_studio.cli",
        "lora",
        "train",
        str(data),
        "--out",
        str(out),
        "--generator",
        str(sd),
        "--steps",
        str(steps),
        "--checkpoint-every",
        "5",
        "--rank",
        "4",
        "--lr",
        "1e-2",
        "--batch-size",
        "2",
        "--resolution",
        "32",
        "--threads",
        "1",
        "--no-progress",
    ]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_killed_training_resumes_from_its_checkpoint_to_the_same_weights(tiny_models, tmp_path):
    from safetensors.torch import load_file

    data = write_renders(tmp_path / "data", 4)
    steps = 40
    killed = run_train(data, tmp_path / "resumed", tiny_models["sd"], steps)
    wait_until(lambda: (tmp_path / "resumed" / CHECKPOINT_NAME).is_file() or killed.poll() is not None, 120, "the first checkpoint", interval=0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (tmp_path / "resumed" / WEIGHTS_NAME).exists()

    resumed = run_train(data, tmp_path / "resumed", tiny_models["sd"], steps)
    whole = run_train(data, tmp_path / "whole", tiny_models["sd"], steps)
    _, resumed_log = resumed.communicate(timeout=300)
    _, whole_log = whole.communicate(timeout=300)
    assert resumed.returncode == 0 and whole.returncode == 0, resumed_log[-2000:] + whole_log[-2000:]
    assert "resumed from step" in resumed_log and "resumed from step" not in whole_log
    a, b = load_file(tmp_path / "resumed" / WEIGHTS_NAME), load_file(tmp_path / "whole" / WEIGHTS_NAME)
    assert a.keys() == b.keys() and len(a) > 0
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6


def test_adapters_are_chosen_per_request_and_batched_apart(tiny_models, sd_adapter):
    settings = Settings(generator=str(tiny_models["sd"]), lora=f"shop={sd_adapter}")
    assert lora_names(settings) == ("shop",)
    generator = Generator.load(settings)
    plain = GenerationRequest(prompt="red zigzag dress", seed=3, steps=2, width=32, height=32)
    styled = GenerationRequest(prompt="red zigzag dress", seed=3, steps=2, width=32, height=32, lora=["shop"])
    assert group_by_shape([plain, styled, plain]) == [[0, 2], [1]]
    first, second = (generator.generate([r])[0] for r in (plain, styled))
    assert first.lora == {} and second.lora == {"shop": 1.0}
    assert np.abs(pixels(first.images[0]) - pixels(second.images[0])).max() > 4
    # switching back leaves no trace of the adapter
    assert np.array_equal(pixels(generator.generate([plain])[0].images[0]), pixels(first.images[0]))
    with pytest.raises(InvalidInputError) as error:
        generator.generate([GenerationRequest(prompt="x", steps=2, width=32, height=32, lora=["nope"])])
    assert error.value.field == "lora" and "shop" in error.value.limit
    with pytest.raises(InvalidInputError, match="shop"):
        GenerationRequest(prompt="x", lora=["nope"]).check(settings.limits, lora_names(settings))


@pytest.fixture(scope="module")
def lora_server(tiny_models, sd_adapter, tmp_path_factory):
    """The gateway with the tiny models and one named adapter on the allow-list."""
    from tests.helpers import serving, tiny_service_env

    root = tmp_path_factory.mktemp("lora-serving")
    # fashion-mini's CLIP: the popularity service's shipped models read its embeddings
    env = tiny_service_env(tiny_models, root, FASHION_LORA=f"shop={sd_adapter}", FASHION_SCORER=str(ROOT / "models" / "fashion-mini" / "clip"))
    with serving("services.gateway:Studio", env, root / "server.log", timeout=300) as served:
        yield served


def test_served_adapters_are_an_enum_chosen_per_request_and_recorded(lora_server):
    import json

    import httpx

    schema = httpx.get(f"{lora_server.url}/openapi.json", timeout=30).json()["components"]["schemas"]["GenerateRequest"]
    assert schema["properties"]["lora"]["items"]["enum"] == ["shop"]

    refused = httpx.post(f"{lora_server.url}/generate", json={"prompt": "red zigzag dress", "lora": ["nope"]}, timeout=120)
    assert refused.status_code == 422, refused.text
    error = refused.json()
    assert error["field"] == "lora" and "nope" in str(error["value"]) and "shop" in error["limit"]

    def draw(lora: list[str]) -> tuple[np.ndarray, dict]:
        response = httpx.post(f"{lora_server.url}/generate", json={"prompt": "red zigzag dress", "seed": 5, "steps": 2, "lora": lora}, timeout=120)
        assert response.status_code == 200, response.text
        url = response.json()["images"][0]["url"]
        return pixels(Image.open(url).convert("RGB")), json.loads(Path(url).with_suffix(".json").read_text())

    (plain, plain_record), (styled, styled_record) = draw([]), draw(["shop"])
    assert plain_record["lora"] == {} and styled_record["lora"] == {"shop": 1.0}
    assert np.abs(plain - styled).max() > 4


def test_an_adapter_of_a_retrained_base_folder_is_not_taken_for_finished(tiny_models, tmp_path):
    """A finished adapter is found again by its fingerprint, which holds the base folder's denoiser weights:
    the same folder retrained (same name, other weights) fingerprints another training; a hub revision
    stands for its weights."""
    import shutil

    from safetensors.torch import load_file, save_file

    from fashion_studio.lora.train import _fingerprint
    from fashion_studio.models import ModelRef

    base = Path(shutil.copytree(tiny_models["sd"], tmp_path / "sd"))
    ref = ModelRef("generator", str(base), str(base))
    config = tiny_config()
    before = _fingerprint(ref, "data", config)
    assert _fingerprint(ref, "data", config) == before
    weights = next((base / "unet").glob("*.safetensors"))
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1.0
    save_file(tensors, weights)
    assert _fingerprint(ref, "data", config) != before
    pinned = ModelRef("generator", "org/model", str(base), revision="abc123")
    assert _fingerprint(pinned, "data", config) == _fingerprint(
        ModelRef("generator", "org/model", str(tmp_path / "elsewhere"), revision="abc123"), "data", config
    )
