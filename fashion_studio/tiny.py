"""Small models with the production architectures and random weights, in Hugging Face layout.

Pipelines, ONNX export, services and tests load them with `from_pretrained(path)` exactly like real
weights, so everything runs and is tested on a CPU without downloading a model. Their outputs are noise.

Each builder writes one model folder; `build_all` writes one folder per family under a directory and
skips a folder that is already complete (its marker file, written last, names the builder version and
the seed). Same seed, byte-identical weights. Tokenizers are trained here, from the built-in corpus in
`fashion_studio.data.tiny_corpus`, and do not depend on the seed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from fashion_studio.builders import (
    CLIP_MERGES,
    EOT,
    EOW,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    SOT,
    english_corpus,
    learn_bpe_merges,
    spm_pieces,
    train_sentencepiece,
)
from fashion_studio.data.tiny_corpus import ENGLISH_SENTENCES, PARALLEL_DE_EN

logger = logging.getLogger(__name__)

BUILDER_VERSION = 1
MARKER = ".complete"
FAMILIES: tuple[str, ...] = ("sd", "sdxl", "flux", "clip", "marian")

# Shapes shared by the families (diffusers' own fast tests use the same order of magnitude).
CLIP_MAX_LENGTH = 77
T5_MAX_LENGTH = 512
MARIAN_MAX_LENGTH = 512
IMAGE_SIZE = 64
TEXT_HIDDEN = 32


# ---------------------------------------------------------------------------------------------------
# Seeds and files


def _component_seed(seed: int, component: str) -> int:
    """A seed per component, so that two components with one architecture get different weights."""
    digest = hashlib.sha256(f"{seed}:{component}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


@contextmanager
def _seeded(seed: int, component: str) -> Iterator[None]:
    """Seed torch for one component and restore the caller's random state afterwards."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_component_seed(seed, component))
        yield


def _start(out: Path | str) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)
    return out


def _marker_content(family: str, seed: int) -> dict[str, Any]:
    return {"family": family, "builder_version": BUILDER_VERSION, "seed": int(seed)}


def _finish(out: Path, family: str, seed: int, started: float) -> Path:
    """Make every file readable as the umask allows, then write the marker: a folder with one is complete."""
    probe = out / ".mode"
    probe.touch()
    mode = probe.stat().st_mode & 0o777
    probe.unlink()
    for file in out.rglob("*"):
        if file.is_file() and not file.is_symlink() and file.stat().st_mode & 0o777 != mode:
            file.chmod(mode)
    (out / MARKER).write_text(json.dumps(_marker_content(family, seed), sort_keys=True) + "\n")
    logger.info(
        "built tiny %s (seed %d) in %s: %.2f s, %.1f MB",
        family,
        seed,
        out,
        time.perf_counter() - started,
        folder_size(out) / 1e6,
    )
    return out


def is_complete(path: Path | str, family: str, seed: int) -> bool:
    """Whether `path` holds a finished build of `family` for `seed` by this builder version."""
    marker = Path(path) / MARKER
    try:
        content = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return content == _marker_content(family, seed)


def folder_size(path: Path | str) -> int:
    """Total size in bytes of the files under `path`."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def weights_digest(path: Path | str) -> str:
    """SHA-256 over every safetensors file under `path` (relative names and bytes)."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(root.rglob("*.safetensors")):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------
# Tokenizers (trained here from the built-in corpus; independent of the seed)


@lru_cache(maxsize=1)
def _clip_bpe() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The CLIP vocabulary (ids in CLIP's order: bytes, bytes + `</w>`, merges, specials) and merges."""
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    byte_symbols = bytes_to_unicode()
    words: Counter[str] = Counter()
    for sentence in english_corpus():
        for word in re.findall(r"[^\W\d_]+", sentence.lower()):
            words["".join(byte_symbols[b] for b in word.encode("utf-8"))] += 1
    merges = learn_bpe_merges(words, CLIP_MERGES)
    symbols = list(byte_symbols.values())
    tokens = [*symbols, *(s + EOW for s in symbols), *(a + b for a, b in merges), SOT, EOT]
    return tuple(dict.fromkeys(tokens)), tuple(merges)


def _write_clip_vocab(folder: Path) -> tuple[Path, Path]:
    tokens, merges = _clip_bpe()
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False), encoding="utf-8")
    merges_file.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return vocab_file, merges_file


def clip_tokenizer(pad_token: str = EOT, fast: bool = False) -> Any:
    """The tiny CLIP tokenizer (byte-level BPE, 77 tokens). SDXL's second tokenizer pads with "!"."""
    from transformers import CLIPTokenizer, CLIPTokenizerFast

    cls = CLIPTokenizerFast if fast else CLIPTokenizer
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file, merges_file = _write_clip_vocab(Path(tmp))
        return cls(
            vocab_file=str(vocab_file),
            merges_file=str(merges_file),
            pad_token=pad_token,
            model_max_length=CLIP_MAX_LENGTH,
        )


def _clip_text_config(tokenizer: Any, hidden_act: str = "quick_gelu") -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_HIDDEN,
        intermediate_size=37,
        num_hidden_layers=5,
        num_attention_heads=4,
        max_position_embeddings=CLIP_MAX_LENGTH,
        hidden_act=hidden_act,
        layer_norm_eps=1e-5,
        projection_dim=TEXT_HIDDEN,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _t5_spm() -> bytes:
    # T5's layout: <pad> 0, </s> 1, <unk> 2, no <s>.
    return train_sentencepiece(tuple(english_corpus()), pad_id=0, eos_id=1, unk_id=2, bos_id=-1)


def _t5_tokenizer_fast(spiece: Path) -> Any:
    """T5TokenizerFast over a sentencepiece file, with its tokenizer.json built here.

    transformers converts through sentencepiece's generated protobuf module, which needs a newer
    protobuf runtime than the pinned one; its own copy of that module parses the same file.
    """
    from transformers import T5Tokenizer, T5TokenizerFast
    from transformers.convert_slow_tokenizer import Converter, T5Converter
    from transformers.utils import sentencepiece_model_pb2_new as model_pb2

    class _Converter(T5Converter):
        def __init__(self, original_tokenizer: Any) -> None:
            Converter.__init__(self, original_tokenizer)
            proto = model_pb2.ModelProto()
            proto.ParseFromString(spiece.read_bytes())
            self.proto = proto

    options = {"extra_ids": 100, "model_max_length": T5_MAX_LENGTH, "legacy": True}
    slow = T5Tokenizer(vocab_file=str(spiece), **options)
    return T5TokenizerFast(vocab_file=str(spiece), tokenizer_object=_Converter(slow).converted(), **options)


def _marian_spm(side: str) -> bytes:
    index = 0 if side == "de" else 1
    sentences = tuple(pair[index] for pair in PARALLEL_DE_EN)
    if side == "en":
        sentences += tuple(ENGLISH_SENTENCES)
    return train_sentencepiece(sentences, unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1)


# ---------------------------------------------------------------------------------------------------
# Model parts


def _unet(seed: int, component: str, **extra: Any) -> Any:
    from diffusers import UNet2DConditionModel

    kwargs: dict[str, Any] = {
        "block_out_channels": (32, 64),
        "layers_per_block": 2,
        "sample_size": IMAGE_SIZE // 2,  # the VAE below downsamples once (vae_scale_factor 2)
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
        "cross_attention_dim": TEXT_HIDDEN,
    }
    kwargs.update(extra)
    with _seeded(seed, component):
        return UNet2DConditionModel(**kwargs)


def _vae(seed: int, component: str, **extra: Any) -> Any:
    from diffusers import AutoencoderKL

    kwargs: dict[str, Any] = {
        "block_out_channels": (32, 64),
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D"),
        "up_block_types": ("UpDecoderBlock2D", "UpDecoderBlock2D"),
        "latent_channels": 4,
        "sample_size": IMAGE_SIZE,
    }
    kwargs.update(extra)
    with _seeded(seed, component):
        return AutoencoderKL(**kwargs)


def _stable_diffusion_scheduler_kwargs() -> dict[str, Any]:
    return {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "steps_offset": 1,
    }


# ---------------------------------------------------------------------------------------------------
# Builders


def build_sd(out: Path | str, seed: int = 0) -> Path:
    """Stable Diffusion 1.x layout: UNet, VAE (4 latent channels), CLIP text encoder, PNDM; no safety checker."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel

    started, out = time.perf_counter(), _start(out)
    tokenizer = clip_tokenizer()
    with _seeded(seed, "sd/text_encoder"):
        text_encoder = CLIPTextModel(_clip_text_config(tokenizer))
    pipe = StableDiffusionPipeline(
        vae=_vae(seed, "sd/vae", scaling_factor=0.18215),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=_unet(seed, "sd/unet"),
        scheduler=PNDMScheduler(**_stable_diffusion_scheduler_kwargs(), skip_prk_steps=True, set_alpha_to_one=False),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return _finish(out, "sd", seed, started)


def build_sdxl(out: Path | str, seed: int = 0) -> Path:
    """SDXL layout: text_time UNet, two CLIP text encoders (the second with projection), Euler."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    started, out = time.perf_counter(), _start(out)
    tokenizer, tokenizer_2 = clip_tokenizer(), clip_tokenizer(pad_token="!")
    with _seeded(seed, "sdxl/text_encoder"):
        text_encoder = CLIPTextModel(_clip_text_config(tokenizer))
    with _seeded(seed, "sdxl/text_encoder_2"):
        text_encoder_2 = CLIPTextModelWithProjection(_clip_text_config(tokenizer_2, hidden_act="gelu"))
    time_embed_dim = 8
    unet = _unet(
        seed,
        "sdxl/unet",
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        transformer_layers_per_block=(1, 2),
        # Six time ids (original size, crop origin, target size) plus the pooled text embedding.
        projection_class_embeddings_input_dim=6 * time_embed_dim + text_encoder_2.config.projection_dim,
        cross_attention_dim=text_encoder.config.hidden_size + text_encoder_2.config.hidden_size,
    )
    pipe = StableDiffusionXLPipeline(
        vae=_vae(seed, "sdxl/vae", scaling_factor=0.13025, force_upcast=True),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=EulerDiscreteScheduler(
            **_stable_diffusion_scheduler_kwargs(),
            timestep_spacing="leading",
            interpolation_type="linear",
            prediction_type="epsilon",
            use_karras_sigmas=False,
        ),
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return _finish(out, "sdxl", seed, started)


def build_flux(out: Path | str, seed: int = 0) -> Path:
    """FLUX.1-schnell layout: MMDiT transformer, VAE with 16 latent channels, CLIP + T5 encoders, flow matching."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5Config, T5EncoderModel

    started, out = time.perf_counter(), _start(out)
    latent_channels = 16
    tokenizer = clip_tokenizer()
    with _seeded(seed, "flux/text_encoder"):
        text_encoder = CLIPTextModel(_clip_text_config(tokenizer))
    with tempfile.TemporaryDirectory() as tmp:
        spiece = Path(tmp) / "spiece.model"
        spiece.write_bytes(_t5_spm())
        tokenizer_2 = _t5_tokenizer_fast(spiece)
        t5_config = T5Config(
            vocab_size=len(tokenizer_2),
            d_model=TEXT_HIDDEN,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=32,
            relative_attention_max_distance=128,
            feed_forward_proj="gated-gelu",
            layer_norm_epsilon=1e-6,
            tie_word_embeddings=False,
            pad_token_id=tokenizer_2.pad_token_id,
            eos_token_id=tokenizer_2.eos_token_id,
            decoder_start_token_id=tokenizer_2.pad_token_id,
        )
        with _seeded(seed, "flux/text_encoder_2"):
            text_encoder_2 = T5EncoderModel(t5_config)
        with _seeded(seed, "flux/transformer"):
            transformer = FluxTransformer2DModel(
                patch_size=1,
                in_channels=latent_channels * 4,  # latents are packed 2x2
                num_layers=1,
                num_single_layers=1,
                attention_head_dim=16,
                num_attention_heads=2,
                joint_attention_dim=t5_config.d_model,
                pooled_projection_dim=text_encoder.config.hidden_size,
                guidance_embeds=False,
                axes_dims_rope=(4, 4, 8),  # sums to attention_head_dim
            )
        vae = _vae(
            seed,
            "flux/vae",
            latent_channels=latent_channels,
            use_quant_conv=False,
            use_post_quant_conv=False,
            shift_factor=0.1159,
            scaling_factor=0.3611,
            force_upcast=True,
        )
        pipe = FluxPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(
                num_train_timesteps=1000,
                shift=1.0,
                use_dynamic_shifting=False,
                base_shift=0.5,
                max_shift=1.15,
                base_image_seq_len=256,
                max_image_seq_len=4096,
            ),
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            text_encoder_2=text_encoder_2,
            tokenizer_2=tokenizer_2,
            transformer=transformer,
        )
        pipe.save_pretrained(out, safe_serialization=True)
    return _finish(out, "flux", seed, started)


def build_clip(out: Path | str, seed: int = 0) -> Path:
    """CLIP (ViT) with text and vision towers, 64x64 images, and its processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPVisionConfig

    started, out = time.perf_counter(), _start(out)
    tokenizer = clip_tokenizer(fast=True)
    vision_config = CLIPVisionConfig(
        hidden_size=TEXT_HIDDEN,
        intermediate_size=37,
        num_hidden_layers=5,
        num_attention_heads=4,
        image_size=IMAGE_SIZE,
        patch_size=8,
        num_channels=3,
        projection_dim=TEXT_HIDDEN,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    config = CLIPConfig(
        text_config=_clip_text_config(tokenizer).to_dict(),
        vision_config=vision_config.to_dict(),
        projection_dim=TEXT_HIDDEN,
    )
    with _seeded(seed, "clip/model"):
        model = CLIPModel(config)
    model.save_pretrained(out, safe_serialization=True)
    image_processor = CLIPImageProcessor(
        do_resize=True,
        size={"shortest_edge": IMAGE_SIZE},
        resample=3,
        do_center_crop=True,
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_rescale=True,
        do_normalize=True,
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
        do_convert_rgb=True,
    )
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    return _finish(out, "clip", seed, started)


def build_marian(out: Path | str, seed: int = 0) -> Path:
    """Opus-MT layout (German to English): Marian encoder-decoder, two sentencepiece models, one vocab."""
    from transformers import GenerationConfig, MarianConfig, MarianMTModel, MarianTokenizer

    started, out = time.perf_counter(), _start(out)
    source, target = _marian_spm("de"), _marian_spm("en")
    # Opus-MT order: </s> 0, <unk> 1, the pieces, <pad> last (also the decoder start).
    vocab = {"</s>": 0, "<unk>": 1}
    for piece in spm_pieces(source) + spm_pieces(target):
        vocab.setdefault(piece, len(vocab))
    pad_id = vocab.setdefault("<pad>", len(vocab))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "source.spm").write_bytes(source)
        (folder / "target.spm").write_bytes(target)
        (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=2), encoding="utf-8")
        with warnings.catch_warnings():
            # Without sacremoses the tokenizer skips Moses punctuation normalization, and says so.
            warnings.filterwarnings("ignore", message=".*sacremoses.*")
            tokenizer = MarianTokenizer(
                source_spm=str(folder / "source.spm"),
                target_spm=str(folder / "target.spm"),
                vocab=str(folder / "vocab.json"),
                source_lang="de",
                target_lang="en",
                model_max_length=MARIAN_MAX_LENGTH,
                separate_vocabs=False,
            )
        tokenizer.save_pretrained(out)
    config = MarianConfig(
        vocab_size=len(vocab),
        decoder_vocab_size=len(vocab),
        d_model=TEXT_HIDDEN,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        # As long as the tokenizer's limit, so that no input or output runs past the positions.
        max_position_embeddings=MARIAN_MAX_LENGTH,
        activation_function="swish",
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        static_position_embeddings=True,
        pad_token_id=pad_id,
        eos_token_id=0,
        bos_token_id=0,
        forced_eos_token_id=0,
        decoder_start_token_id=pad_id,
    )
    with _seeded(seed, "marian/model"):
        model = MarianMTModel(config)
    model.generation_config = GenerationConfig(
        bad_words_ids=[[pad_id]],
        bos_token_id=0,
        decoder_start_token_id=pad_id,
        eos_token_id=0,
        forced_eos_token_id=0,
        pad_token_id=pad_id,
        max_length=MARIAN_MAX_LENGTH,
        num_beams=4,
    )
    model.save_pretrained(out, safe_serialization=True)
    return _finish(out, "marian", seed, started)


BUILDERS: dict[str, Callable[[Path, int], Path]] = {
    "sd": build_sd,
    "sdxl": build_sdxl,
    "flux": build_flux,
    "clip": build_clip,
    "marian": build_marian,
}


def build_all(out_dir: Path | str, seed: int = 0, only: Iterable[str] | None = None, force: bool = False) -> dict[str, Path]:
    """Build the families (all, or those in `only`) into `out_dir/<family>`; returns family -> folder.

    A folder that is already complete for this seed and builder version is kept unless `force`. Each
    family is built in a hidden sibling folder and moved into place when finished, so an interrupted
    build leaves no half-written model behind.
    """
    if isinstance(only, str):
        only = [only]
    families = FAMILIES if only is None else tuple(dict.fromkeys(only))
    unknown = [family for family in families if family not in BUILDERS]
    if unknown:
        raise ValueError(f"unknown tiny model families {unknown}; known: {list(FAMILIES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    built: dict[str, Path] = {}
    for family in families:
        target = out_dir / family
        if not force and is_complete(target, family, seed):
            logger.info("tiny %s is complete in %s; kept", family, target)
            built[family] = target
            continue
        foreign = target.exists() and not (target / MARKER).is_file()
        if foreign and not force and (not target.is_dir() or any(target.iterdir())):
            raise FileExistsError(f"{target} exists and was not written by the tiny model builder; move it away or pass force=True")
        tmp = out_dir / f".{family}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial"
        tmp.mkdir()
        try:
            BUILDERS[family](tmp, seed)
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        logger.info("tiny %s ready in %s", family, target)
        built[family] = target
    return built
