"""The tiny models load back with the standard classes, run, and build deterministically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from fashion_studio import builders, tiny
from fashion_studio.data.tiny_corpus import ENGLISH_SENTENCES, PARALLEL_DE_EN
from fashion_studio.settings import DEFAULT_GENERATION_TEMPLATE, DEFAULT_NEGATIVE_PROMPT

PROMPT = DEFAULT_GENERATION_TEMPLATE.format(subject="a red knitted sweater", details=" with a crew neck")

pytestmark = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tiny.build_all(tmp_path_factory.mktemp("tiny"), seed=0)


def _digests(paths: dict[str, Path]) -> dict[str, str]:
    return {family: tiny.weights_digest(path) for family, path in paths.items()}


def test_build_all_writes_every_family_small(tiny_models: dict[str, Path]) -> None:
    assert tuple(tiny_models) == tiny.FAMILIES
    for family, path in tiny_models.items():
        assert path.name == family
        assert tiny.is_complete(path, family, 0)
        assert not tiny.is_complete(path, family, 1)
        assert list(path.rglob("*.safetensors")), family
        assert not list(path.rglob("*.bin")), family
    assert not [p for p in tiny_models["sd"].parent.iterdir() if p.name.endswith(".partial")]
    assert sum(tiny.folder_size(p) for p in tiny_models.values()) < 50e6


@pytest.mark.parametrize(
    ("family", "pipeline_class"),
    [("sd", "StableDiffusionPipeline"), ("sdxl", "StableDiffusionXLPipeline"), ("flux", "FluxPipeline")],
)
def test_diffusion_pipeline_generates_64px(tiny_models: dict[str, Path], family: str, pipeline_class: str) -> None:
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(tiny_models[family])
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe).__name__ == pipeline_class
    kwargs = {"num_inference_steps": 2, "height": 64, "width": 64, "generator": torch.Generator().manual_seed(0)}
    if family != "flux":
        kwargs |= {"negative_prompt": DEFAULT_NEGATIVE_PROMPT, "guidance_scale": 5.0}
    image = pipe(PROMPT, **kwargs).images[0]
    assert isinstance(image, Image.Image)
    assert image.size == (64, 64)
    # The catalog prompt fits the CLIP window, as it does with the production vocabulary.
    assert len(pipe.tokenizer(PROMPT).input_ids) <= pipe.tokenizer.model_max_length == 77


def test_pipeline_configs_match_production_layout(tiny_models: dict[str, Path]) -> None:
    from diffusers import DiffusionPipeline

    sd = DiffusionPipeline.from_pretrained(tiny_models["sd"])
    assert sd.safety_checker is None and sd.feature_extractor is None
    assert sd.config.requires_safety_checker is False
    assert sd.text_encoder.config.max_position_embeddings >= 77
    assert sd.text_encoder.config.vocab_size == len(sd.tokenizer)
    assert sd.text_encoder.config.eos_token_id == sd.tokenizer.eos_token_id

    sdxl = DiffusionPipeline.from_pretrained(tiny_models["sdxl"])
    unet = sdxl.unet.config
    assert unet.addition_embed_type == "text_time"
    assert unet.projection_class_embeddings_input_dim == (6 * unet.addition_time_embed_dim + sdxl.text_encoder_2.config.projection_dim)
    assert unet.cross_attention_dim == sdxl.text_encoder.config.hidden_size + sdxl.text_encoder_2.config.hidden_size
    assert type(sdxl.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
    assert sdxl.tokenizer_2.pad_token == "!"

    flux = DiffusionPipeline.from_pretrained(tiny_models["flux"])
    assert flux.vae.config.latent_channels == 16
    assert flux.transformer.config.in_channels == 4 * flux.vae.config.latent_channels
    assert type(flux.text_encoder_2).__name__ == "T5EncoderModel"
    assert type(flux.tokenizer_2).__name__ == "T5TokenizerFast"
    assert flux.text_encoder_2.config.vocab_size == len(flux.tokenizer_2)
    assert type(flux.scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"


def test_clip_features(tiny_models: dict[str, Path]) -> None:
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(tiny_models["clip"])
    processor = CLIPProcessor.from_pretrained(tiny_models["clip"])
    assert processor.tokenizer.model_max_length == 77
    texts = ["Product image of a red dress", "Product image of black leather boots"]
    image = Image.new("RGB", (120, 90), "red")
    inputs = processor(text=texts, images=[image], return_tensors="pt", padding=True)
    assert tuple(inputs["pixel_values"].shape) == (1, 3, 64, 64)
    with torch.no_grad():
        text = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        vision = model.get_image_features(pixel_values=inputs["pixel_values"])
    dim = model.config.projection_dim
    assert dim == 32
    assert tuple(text.shape) == (2, dim)
    assert tuple(vision.shape) == (1, dim)
    assert torch.isfinite(text).all() and torch.isfinite(vision).all()


def test_clip_slow_and_fast_tokenizers_agree(tiny_models: dict[str, Path]) -> None:
    from transformers import CLIPTokenizer, CLIPTokenizerFast

    slow = CLIPTokenizer.from_pretrained(tiny_models["sd"] / "tokenizer")
    fast = CLIPTokenizerFast.from_pretrained(tiny_models["clip"])
    assert len(slow) == len(fast)
    assert slow.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"]) == [len(slow) - 2, len(slow) - 1]
    for text in [PROMPT, DEFAULT_NEGATIVE_PROMPT, "Grüße! 85mm f/2.8, naïve café", *ENGLISH_SENTENCES]:
        assert slow(text).input_ids == fast(text).input_ids, text
    assert slow.decode(slow(PROMPT).input_ids, skip_special_tokens=True).startswith("professional product photography")


def test_t5_slow_and_fast_tokenizers_agree(tiny_models: dict[str, Path]) -> None:
    from transformers import T5Tokenizer, T5TokenizerFast

    folder = tiny_models["flux"] / "tokenizer_2"
    slow, fast = T5Tokenizer.from_pretrained(folder), T5TokenizerFast.from_pretrained(folder)
    assert len(slow) == len(fast)
    assert (fast.pad_token_id, fast.eos_token_id, fast.unk_token_id) == (0, 1, 2)
    for text in [PROMPT, "Grüße  café", *ENGLISH_SENTENCES]:
        assert slow(text).input_ids == fast(text).input_ids, text


def test_marian_translates(tiny_models: dict[str, Path]) -> None:
    from transformers import MarianMTModel, MarianTokenizer

    model = MarianMTModel.from_pretrained(tiny_models["marian"])
    tokenizer = MarianTokenizer.from_pretrained(tiny_models["marian"])
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.decoder_start_token_id == tokenizer.pad_token_id
    batch = tokenizer([de for de, _ in PARALLEL_DE_EN[:2]], return_tensors="pt", padding=True)
    assert tokenizer.unk_token_id not in batch["input_ids"][0].tolist()
    with torch.no_grad():
        ids = model.generate(**batch, max_new_tokens=8, num_beams=1)
    assert ids.shape[0] == 2 and 1 < ids.shape[1] <= 9
    texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
    assert all(isinstance(text, str) for text in texts)


def test_same_seed_same_weights_other_seed_different(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    again = tiny.build_all(tmp_path / "again", seed=0)
    other = tiny.build_all(tmp_path / "other", seed=1)
    first = _digests(tiny_models)
    assert _digests(again) == first
    other_digests = _digests(other)
    assert all(other_digests[family] != first[family] for family in tiny.FAMILIES)
    # Tokenizers do not depend on the seed, and rebuild byte for byte.
    for name in ("vocab.json", "merges.txt", "tokenizer.json"):
        assert (again["clip"] / name).read_bytes() == (tiny_models["clip"] / name).read_bytes()
    for name in ("source.spm", "target.spm", "vocab.json"):
        assert (other["marian"] / name).read_bytes() == (tiny_models["marian"] / name).read_bytes()


def test_sentencepiece_training_is_reproducible() -> None:
    train = builders.train_sentencepiece.__wrapped__
    sentences = tuple(de for de, _ in PARALLEL_DE_EN)
    assert train(sentences, unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1) == train(sentences, unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1)


def test_build_all_skips_complete_folder_and_rebuilds_with_force(tmp_path: Path) -> None:
    path = tiny.build_all(tmp_path, seed=0, only=["clip"])["clip"]
    marker = path / tiny.MARKER
    assert json.loads(marker.read_text()) == {"builder_version": tiny.BUILDER_VERSION, "family": "clip", "seed": 0}
    before = marker.stat()

    assert tiny.build_all(tmp_path, seed=0, only=["clip"]) == {"clip": path}
    kept = marker.stat()
    assert (kept.st_ino, kept.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    tiny.build_all(tmp_path, seed=0, only=["clip"], force=True)
    assert marker.stat().st_ino != before.st_ino
    assert tiny.is_complete(path, "clip", 0)

    # Another seed is another build.
    tiny.build_all(tmp_path, seed=3, only=["clip"])
    assert tiny.is_complete(path, "clip", 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]


def test_build_all_protects_foreign_folders_and_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tiny model families"):
        tiny.build_all(tmp_path, only=["sd", "dalle"])
    (tmp_path / "clip").write_text("a file where a model folder goes")
    with pytest.raises(FileExistsError):
        tiny.build_all(tmp_path, only="clip")
    foreign = tmp_path / "marian"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a model")
    with pytest.raises(FileExistsError):
        tiny.build_all(tmp_path, only=["marian"])
    assert (foreign / "notes.txt").exists()
    tiny.build_all(tmp_path, only=["marian"], force=True)
    assert not (foreign / "notes.txt").exists()
    assert tiny.is_complete(foreign, "marian", 0)


def test_builders_leave_the_callers_random_state_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny.build_clip(tmp_path / "clip", seed=5)
    assert torch.equal(torch.rand(3), expected)
    assert tiny.is_complete(tmp_path / "clip", "clip", 5)


def test_corpus_shape() -> None:
    assert len(PARALLEL_DE_EN) >= 60
    assert all(isinstance(de, str) and isinstance(en, str) and de and en for de, en in PARALLEL_DE_EN)
    assert len(set(PARALLEL_DE_EN)) == len(PARALLEL_DE_EN)
    assert ENGLISH_SENTENCES and all(isinstance(s, str) and s for s in ENGLISH_SENTENCES)
