"""One declaration per exportable model component: tensor names, dtypes, dynamic axes and profiles.

The ONNX export, the parity check, the TensorRT build plan and the Triton `config.pbtxt` all read a
`ComponentSpec`, so the names in the graph, the engine profiles and the server config match verbatim.
Every input and output has the batch as its first axis, so Triton's dynamic batcher can stack requests
(a UNet's timestep is one value per item, not a scalar, for the same reason).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

Precision = Literal["fp32", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16")
GpuPlatform = Literal["tensorrt_plan", "onnxruntime_onnx"]
BATCH = "batch"

# Parity tolerance per precision: an output fails when |onnx - torch| > atol + rtol * |torch| anywhere.
TOLERANCES: dict[str, tuple[float, float]] = {
    "fp32": (1e-3, 1e-3),
    "fp16": (2e-2, 2e-2),
    "bf16": (1e-1, 5e-2),
}

# ONNX TensorProto element types, Triton data types and numpy dtypes of the tensors we declare.
ONNX_ELEM_TYPE = {"float32": 1, "int32": 6, "int64": 7, "float16": 10, "bfloat16": 16}
TRITON_DTYPE = {"float32": "TYPE_FP32", "int32": "TYPE_INT32", "int64": "TYPE_INT64", "float16": "TYPE_FP16", "bfloat16": "TYPE_BF16"}
FLOAT_DTYPE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor; `shape` holds axis names (dynamic) or sizes (fixed); axis 0 is the batch."""

    name: str
    dtype: str
    shape: tuple[str | int, ...]

    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    def concrete(self, sizes: dict[str, int]) -> tuple[int, ...]:
        return tuple(sizes[d] if isinstance(d, str) else d for d in self.shape)

    def triton_dims(self) -> list[int]:
        """Dims without the batch axis, -1 where dynamic; Triton needs at least one dim."""
        dims = [-1 if isinstance(d, str) else int(d) for d in self.shape[1:]]
        return dims or [1]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ExportProfile:
    """The ranges a deployment serves: batch, image size in pixels, text lengths (min, opt, max)."""

    batch: tuple[int, int, int] = (1, 1, 8)
    height: tuple[int, int, int] = (32, 64, 1024)
    width: tuple[int, int, int] = (32, 64, 1024)
    text_length: tuple[int, int, int] | None = None  # None: each text encoder's own maximum

    def __post_init__(self) -> None:
        for name in ("batch", "height", "width", "text_length"):
            value = getattr(self, name)
            if value is not None and not (len(value) == 3 and 1 <= value[0] <= value[1] <= value[2]):
                raise ValueError(f"profile {name}={value!r} must be (min, opt, max) with 1 <= min <= opt <= max")

    @classmethod
    def from_settings(cls, settings: Any) -> ExportProfile:
        max_batch = settings.export_max_batch or settings.batching.max_batch_size
        low, high = settings.export_min_size, settings.export_max_size
        opt_h = min(max(settings.default_height, low), high)
        opt_w = min(max(settings.default_width, low), high)
        return cls(batch=(1, 1, max_batch), height=(low, opt_h, high), width=(low, opt_w, high))

    def describe(self) -> dict[str, Any]:
        return {"batch": list(self.batch), "height": list(self.height), "width": list(self.width), "text_length": self.text_length and list(self.text_length)}


Sampler = Callable[[dict[str, int], np.random.Generator], dict[str, np.ndarray]]


@dataclass
class ComponentSpec:
    """One exportable component of one model, as the export, TensorRT and Triton all see it."""

    model: str  # the model's short name: also the Triton name prefix ("sd" -> "sd_unet")
    name: str  # the component: "unet", "text_encoder", "vae_decoder", ...
    kind: str  # what builds its torch reference (see export.wrappers.BUILDERS)
    source: str  # subfolder of the model folder holding its weights ("" for the root)
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    axes: dict[str, tuple[int, int, int]]  # (min, opt, max) of every dynamic input axis
    sample: Sampler
    exporter: Literal["torch", "optimum"] = "torch"
    gpu_platform: GpuPlatform = "tensorrt_plan"
    parity_atol_scale: float = 1.0  # deep random-weight graphs amplify rounding; kept at 1 unless stated
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def triton_name(self) -> str:
        return f"{self.model}_{self.name}"

    @property
    def max_batch(self) -> int:
        return self.axes[BATCH][2]

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {t.name: t.dynamic_axes() for t in (*self.inputs, *self.outputs) if t.dynamic_axes()}

    def sizes(self, which: Literal["min", "opt", "max"] = "opt", **override: int) -> dict[str, int]:
        index = {"min": 0, "opt": 1, "max": 2}[which]
        sizes = {axis: bounds[index] for axis, bounds in self.axes.items()}
        sizes.update(override)
        return sizes

    def profile_shapes(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """Input name -> (min, opt, max) shape: a TensorRT optimization profile."""
        return {t.name: tuple(t.concrete(self.sizes(w)) for w in ("min", "opt", "max")) for t in self.inputs}  # type: ignore[misc]

    def random_inputs(self, sizes: dict[str, int], seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        arrays = self.sample(sizes, rng)
        for t in self.inputs:
            expected = t.concrete(sizes)
            if arrays[t.name].shape != expected:
                raise AssertionError(f"{self.triton_name}: sampler gave {t.name} shape {arrays[t.name].shape}, declared {expected}")
        return {t.name: arrays[t.name] for t in self.inputs}

    def with_precision(self, precision: str) -> ComponentSpec:
        """The same component with its float tensors in `precision` (fp32 declarations are the base)."""
        if precision == "fp32":
            return self
        dtype = FLOAT_DTYPE[precision]

        def cast(t: TensorSpec) -> TensorSpec:
            return TensorSpec(t.name, dtype, t.shape) if t.dtype == "float32" else t

        inputs, outputs = tuple(map(cast, self.inputs)), tuple(map(cast, self.outputs))
        base_sample = self.sample

        def sample(sizes: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
            arrays = base_sample(sizes, rng)
            return {k: v.astype(dtype) if v.dtype == np.float32 else v for k, v in arrays.items()}

        return dataclasses.replace(self, inputs=inputs, outputs=outputs, sample=sample)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "exporter": self.exporter,
            "inputs": [t.describe() for t in self.inputs],
            "outputs": [t.describe() for t in self.outputs],
            "axes": {k: list(v) for k, v in self.axes.items()},
            "gpu_platform": self.gpu_platform,
            "triton_name": self.triton_name,
        }


# ---------------------------------------------------------------------------------------------------
# Which model a folder holds


def detect_model(path: Path | str) -> str:
    """'sd' | 'sdxl' | 'flux' for a diffusers folder, 'clip' | 'marian' for a transformers one."""
    path = Path(path)
    if (path / "model_index.json").is_file():
        from fashion_studio.models import diffusion_family

        family = diffusion_family(path)
        if family not in ("sd", "sdxl", "flux"):
            raise ValueError(f"{path}: pipeline family {family!r} has no export declaration (supported: sd, sdxl, flux)")
        return family
    config = _read_json(path / "config.json")
    model_type = config.get("model_type")
    if model_type in ("clip", "marian"):
        return model_type
    raise ValueError(f"{path}: model_type {model_type!r} has no export declaration (supported: clip, marian, and diffusers sd/sdxl/flux)")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc


def _vae_scale(model_dir: Path) -> int:
    vae = _read_json(model_dir / "vae" / "config.json")
    return 2 ** (len(vae["block_out_channels"]) - 1)


def _pixel_axes(profile: ExportProfile, multiple: int) -> dict[str, tuple[int, int, int]]:
    """Latent (height, width) bounds: pixels over `multiple`, min rounded up, max down."""

    def bounds(px: tuple[int, int, int]) -> tuple[int, int, int]:
        lo = max(1, -(-px[0] // multiple))
        hi = max(lo, px[2] // multiple)
        return (lo, min(max(px[1] // multiple, lo), hi), hi)

    return {"height": bounds(profile.height), "width": bounds(profile.width)}


def _text_axis(profile: ExportProfile, max_length: int) -> tuple[int, int, int]:
    if profile.text_length is not None:
        lo, opt, hi = profile.text_length
        return (min(lo, max_length), min(opt, max_length), min(hi, max_length))
    return (1, max_length, max_length)


# ---------------------------------------------------------------------------------------------------
# Samplers: fresh random inputs that look like what the pipelines pass


def _normal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32)


def _ids(shape: tuple[int, ...], rng: np.random.Generator, high: int) -> np.ndarray:
    return rng.integers(0, high, size=shape, dtype=np.int64)


# ---------------------------------------------------------------------------------------------------
# Declarations


def _clip_text_encoder(model: str, name: str, source: str, config: dict, profile: ExportProfile, *, projection: bool, penultimate: bool) -> ComponentSpec:
    hidden = config["hidden_size"]
    vocab = config["vocab_size"]
    seq = _text_axis(profile, config["max_position_embeddings"])
    outputs = []
    if projection:
        outputs.append(TensorSpec("text_embeds", "float32", (BATCH, config.get("projection_dim", hidden))))
    outputs.append(TensorSpec("last_hidden_state", "float32", (BATCH, "sequence", hidden)))
    if not projection:
        outputs.append(TensorSpec("pooler_output", "float32", (BATCH, hidden)))
    if penultimate:
        outputs.append(TensorSpec("penultimate_hidden_state", "float32", (BATCH, "sequence", hidden)))
    return ComponentSpec(
        model=model,
        name=name,
        kind="clip_text_projection" if projection else "clip_text",
        source=source,
        inputs=(TensorSpec("input_ids", "int64", (BATCH, "sequence")),),
        outputs=tuple(outputs),
        axes={BATCH: profile.batch, "sequence": seq},
        sample=lambda s, rng: {"input_ids": _ids((s[BATCH], s["sequence"]), rng, vocab)},
        extra={"penultimate": penultimate},
    )


def _vae_specs(model: str, model_dir: Path, profile: ExportProfile) -> list[ComponentSpec]:
    vae = _read_json(model_dir / "vae" / "config.json")
    scale = _vae_scale(model_dir)
    latent = vae["latent_channels"]
    axes = {BATCH: profile.batch, **_pixel_axes(profile, scale)}
    pixel_axes = {BATCH: profile.batch, "image_height": tuple(a * scale for a in axes["height"]), "image_width": tuple(a * scale for a in axes["width"])}
    decoder = ComponentSpec(
        model=model,
        name="vae_decoder",
        kind="vae_decoder",
        source="vae",
        inputs=(TensorSpec("latent_sample", "float32", (BATCH, latent, "height", "width")),),
        outputs=(TensorSpec("sample", "float32", (BATCH, 3, "image_height", "image_width")),),
        axes=axes,
        sample=lambda s, rng: {"latent_sample": _normal((s[BATCH], latent, s["height"], s["width"]), rng)},
    )
    encoder = ComponentSpec(
        model=model,
        name="vae_encoder",
        kind="vae_encoder",
        source="vae",
        inputs=(TensorSpec("sample", "float32", (BATCH, 3, "image_height", "image_width")),),
        outputs=(TensorSpec("latent_parameters", "float32", (BATCH, 2 * latent, "height", "width")),),
        axes=pixel_axes,  # type: ignore[arg-type]
        sample=lambda s, rng: {"sample": np.clip(_normal((s[BATCH], 3, s["image_height"], s["image_width"]), rng), -1, 1)},
    )
    return [decoder, encoder]


def _unet_spec(model: str, model_dir: Path, profile: ExportProfile, text_length: int) -> ComponentSpec:
    unet = _read_json(model_dir / "unet" / "config.json")
    scale = _vae_scale(model_dir)
    channels = unet["in_channels"]
    cross = unet["cross_attention_dim"]
    # Classifier-free guidance runs the conditional and unconditional halves as one UNet batch.
    batch = (profile.batch[0], profile.batch[1], 2 * profile.batch[2])
    axes = {BATCH: batch, **_pixel_axes(profile, scale), "sequence": (1, text_length, text_length)}
    inputs = [
        TensorSpec("sample", "float32", (BATCH, channels, "height", "width")),
        TensorSpec("timestep", "float32", (BATCH,)),
        TensorSpec("encoder_hidden_states", "float32", (BATCH, "sequence", cross)),
    ]
    text_time = unet.get("addition_embed_type") == "text_time"
    if text_time:
        pooled = unet["projection_class_embeddings_input_dim"] - 6 * unet["addition_time_embed_dim"]
        inputs += [TensorSpec("text_embeds", "float32", (BATCH, pooled)), TensorSpec("time_ids", "float32", (BATCH, 6))]

    def sample(s: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
        b = s[BATCH]
        arrays = {
            "sample": _normal((b, channels, s["height"], s["width"]), rng),
            "timestep": rng.uniform(0, 999, size=(b,)).astype(np.float32),
            "encoder_hidden_states": _normal((b, s["sequence"], cross), rng),
        }
        if text_time:
            h, w = s["height"] * scale, s["width"] * scale
            arrays["text_embeds"] = _normal((b, pooled), rng)
            arrays["time_ids"] = np.tile(np.array([h, w, 0, 0, h, w], dtype=np.float32), (b, 1))
        return arrays

    return ComponentSpec(
        model=model,
        name="unet",
        kind="unet",
        source="unet",
        inputs=tuple(inputs),
        outputs=(TensorSpec("out_sample", "float32", (BATCH, unet["out_channels"], "height", "width")),),
        axes=axes,
        sample=sample,
    )


def _flux_transformer_spec(model: str, model_dir: Path, profile: ExportProfile, text_length: int) -> ComponentSpec:
    cfg = _read_json(model_dir / "transformer" / "config.json")
    scale = _vae_scale(model_dir) * 2  # latents are packed 2x2 into tokens
    pixel = _pixel_axes(profile, scale)
    tokens = tuple(pixel["height"][i] * pixel["width"][i] for i in range(3))
    channels = cfg["in_channels"]
    joint = cfg["joint_attention_dim"]
    pooled = cfg["pooled_projection_dim"]
    guidance = bool(cfg.get("guidance_embeds"))
    inputs = [
        TensorSpec("hidden_states", "float32", (BATCH, "image_tokens", channels)),
        TensorSpec("encoder_hidden_states", "float32", (BATCH, "sequence", joint)),
        TensorSpec("pooled_projections", "float32", (BATCH, pooled)),
        TensorSpec("timestep", "float32", (BATCH,)),
        TensorSpec("img_ids", "float32", (BATCH, "image_tokens", 3)),
        TensorSpec("txt_ids", "float32", (BATCH, "sequence", 3)),
    ]
    if guidance:
        inputs.append(TensorSpec("guidance", "float32", (BATCH,)))

    def sample(s: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
        b, n, seq = s[BATCH], s["image_tokens"], s["sequence"]
        # a grid of n tokens as wide as possible, as the pipeline's latent ids are
        w = max(d for d in range(1, n + 1) if n % d == 0 and d * d <= n)
        h = n // w
        grid = np.zeros((h, w, 3), dtype=np.float32)
        grid[..., 1] = np.arange(h)[:, None]
        grid[..., 2] = np.arange(w)[None, :]
        arrays = {
            "hidden_states": _normal((b, n, channels), rng),
            "encoder_hidden_states": _normal((b, seq, joint), rng),
            "pooled_projections": _normal((b, pooled), rng),
            "timestep": rng.uniform(0, 1, size=(b,)).astype(np.float32),
            "img_ids": np.tile(grid.reshape(1, n, 3), (b, 1, 1)),
            "txt_ids": np.zeros((b, seq, 3), dtype=np.float32),
        }
        if guidance:
            arrays["guidance"] = rng.uniform(1, 5, size=(b,)).astype(np.float32)
        return arrays

    return ComponentSpec(
        model=model,
        name="transformer",
        kind="flux_transformer",
        source="transformer",
        inputs=tuple(inputs),
        outputs=(TensorSpec("out_hidden_states", "float32", (BATCH, "image_tokens", cfg.get("out_channels") or channels)),),
        axes={BATCH: profile.batch, "image_tokens": tokens, "sequence": (1, text_length, text_length)},  # type: ignore[dict-item]
        sample=sample,
    )


def _t5_spec(model: str, model_dir: Path, profile: ExportProfile, max_length: int) -> ComponentSpec:
    cfg = _read_json(model_dir / "text_encoder_2" / "config.json")
    vocab = cfg["vocab_size"]
    return ComponentSpec(
        model=model,
        name="text_encoder_2",
        kind="t5_encoder",
        source="text_encoder_2",
        inputs=(TensorSpec("input_ids", "int64", (BATCH, "sequence")),),
        outputs=(TensorSpec("last_hidden_state", "float32", (BATCH, "sequence", cfg["d_model"])),),
        axes={BATCH: profile.batch, "sequence": _text_axis(profile, max_length)},
        sample=lambda s, rng: {"input_ids": _ids((s[BATCH], s["sequence"]), rng, vocab)},
    )


def _tokenizer_max_length(model_dir: Path, folder: str, default: int) -> int:
    try:
        value = _read_json(model_dir / folder / "tokenizer_config.json").get("model_max_length", default)
    except ValueError:
        return default
    return int(value) if isinstance(value, (int, float)) and value < 1e6 else default


def diffusion_specs(family: str, model_dir: Path, profile: ExportProfile, model: str | None = None) -> list[ComponentSpec]:
    model = model or family
    text = _read_json(model_dir / "text_encoder" / "config.json")
    clip_length = text["max_position_embeddings"]
    specs: list[ComponentSpec] = []
    if family == "sd":
        specs.append(_clip_text_encoder(model, "text_encoder", "text_encoder", text, profile, projection=False, penultimate=False))
        specs.append(_unet_spec(model, model_dir, profile, clip_length))
    elif family == "sdxl":
        text_2 = _read_json(model_dir / "text_encoder_2" / "config.json")
        specs.append(_clip_text_encoder(model, "text_encoder", "text_encoder", text, profile, projection=False, penultimate=True))
        specs.append(_clip_text_encoder(model, "text_encoder_2", "text_encoder_2", text_2, profile, projection=True, penultimate=True))
        specs.append(_unet_spec(model, model_dir, profile, clip_length))
    elif family == "flux":
        # The generator asks for at most 256 T5 tokens (FLUX.1-schnell's limit).
        t5_length = min(256, _tokenizer_max_length(model_dir, "tokenizer_2", 512))
        specs.append(_clip_text_encoder(model, "text_encoder", "text_encoder", text, profile, projection=False, penultimate=False))
        specs.append(_t5_spec(model, model_dir, profile, t5_length))
        specs.append(_flux_transformer_spec(model, model_dir, profile, t5_length))
    else:
        raise ValueError(f"no declaration for diffusion family {family!r}")
    specs.extend(_vae_specs(model, model_dir, profile))
    return specs


def clip_specs(model_dir: Path, profile: ExportProfile, model: str = "clip") -> list[ComponentSpec]:
    cfg = _read_json(model_dir / "config.json")
    text, vision = cfg["text_config"], cfg["vision_config"]
    projection = cfg.get("projection_dim", 512)
    vocab = text["vocab_size"]
    size = vision["image_size"]
    text_spec = ComponentSpec(
        model=model,
        name="text",
        kind="clip_text_tower",
        source="",
        inputs=(TensorSpec("input_ids", "int64", (BATCH, "sequence")), TensorSpec("attention_mask", "int64", (BATCH, "sequence"))),
        outputs=(TensorSpec("text_embeds", "float32", (BATCH, projection)),),
        axes={BATCH: profile.batch, "sequence": _text_axis(profile, text["max_position_embeddings"])},
        sample=lambda s, rng: {
            "input_ids": _ids((s[BATCH], s["sequence"]), rng, vocab),
            "attention_mask": np.ones((s[BATCH], s["sequence"]), dtype=np.int64),
        },
        gpu_platform="onnxruntime_onnx",
    )
    vision_spec = ComponentSpec(
        model=model,
        name="vision",
        kind="clip_vision_tower",
        source="",
        inputs=(TensorSpec("pixel_values", "float32", (BATCH, vision.get("num_channels", 3), size, size)),),
        outputs=(TensorSpec("image_embeds", "float32", (BATCH, projection)),),
        axes={BATCH: profile.batch},
        sample=lambda s, rng: {"pixel_values": _normal((s[BATCH], vision.get("num_channels", 3), size, size), rng)},
        gpu_platform="onnxruntime_onnx",
    )
    return [text_spec, vision_spec]


def marian_specs(model_dir: Path, profile: ExportProfile, model: str = "marian") -> list[ComponentSpec]:
    """Encoder, first decoder step, and decoder step with past (names as optimum's exporter writes them)."""
    cfg = _read_json(model_dir / "config.json")
    hidden = cfg["d_model"]
    layers = cfg["decoder_layers"]
    heads = cfg["decoder_attention_heads"]
    head_dim = hidden // heads
    vocab = cfg.get("decoder_vocab_size") or cfg["vocab_size"]
    src_vocab = cfg["vocab_size"]
    max_len = cfg["max_position_embeddings"]
    seq = _text_axis(profile, max_len)
    axes = {BATCH: profile.batch, "encoder_sequence": seq}

    def interleaved(prefix: str, decoder_axis: str, with_encoder: bool) -> list[TensorSpec]:
        out: list[TensorSpec] = []
        for i in range(layers):
            out += [TensorSpec(f"{prefix}.{i}.decoder.{w}", "float32", (BATCH, heads, decoder_axis, head_dim)) for w in ("key", "value")]
            if with_encoder:
                out += [TensorSpec(f"{prefix}.{i}.encoder.{w}", "float32", (BATCH, heads, "encoder_sequence", head_dim)) for w in ("key", "value")]
        return out

    encoder = ComponentSpec(
        model=model,
        name="encoder",
        kind="marian_encoder",
        source="",
        inputs=(TensorSpec("input_ids", "int64", (BATCH, "encoder_sequence")), TensorSpec("attention_mask", "int64", (BATCH, "encoder_sequence"))),
        outputs=(TensorSpec("last_hidden_state", "float32", (BATCH, "encoder_sequence", hidden)),),
        axes=dict(axes),
        sample=lambda s, rng: {
            "input_ids": _ids((s[BATCH], s["encoder_sequence"]), rng, src_vocab),
            "attention_mask": np.ones((s[BATCH], s["encoder_sequence"]), dtype=np.int64),
        },
        exporter="optimum",
        gpu_platform="onnxruntime_onnx",
    )
    decoder_inputs = (
        TensorSpec("encoder_attention_mask", "int64", (BATCH, "encoder_sequence")),
        TensorSpec("input_ids", "int64", (BATCH, "decoder_sequence")),
    )
    decoder = ComponentSpec(
        model=model,
        name="decoder",
        kind="marian_decoder",
        source="",
        inputs=(*decoder_inputs, TensorSpec("encoder_hidden_states", "float32", (BATCH, "encoder_sequence", hidden))),
        outputs=(TensorSpec("logits", "float32", (BATCH, "decoder_sequence", vocab)), *interleaved("present", "decoder_sequence", True)),
        axes={**axes, "decoder_sequence": (1, 1, max_len)},
        sample=lambda s, rng: {
            "encoder_attention_mask": np.ones((s[BATCH], s["encoder_sequence"]), dtype=np.int64),
            "input_ids": _ids((s[BATCH], s["decoder_sequence"]), rng, vocab),
            "encoder_hidden_states": _normal((s[BATCH], s["encoder_sequence"], hidden), rng),
        },
        exporter="optimum",
        gpu_platform="onnxruntime_onnx",
    )

    def with_past_sample(s: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
        b = s[BATCH]
        arrays = {
            "encoder_attention_mask": np.ones((b, s["encoder_sequence"]), dtype=np.int64),
            "input_ids": _ids((b, 1), rng, vocab),
        }
        for t in interleaved("past_key_values", "past_sequence", True):
            arrays[t.name] = _normal(t.concrete({**s, BATCH: b}), rng)
        return arrays

    with_past = ComponentSpec(
        model=model,
        name="decoder_with_past",
        kind="marian_decoder_with_past",
        source="",
        inputs=(*decoder_inputs[:1], TensorSpec("input_ids", "int64", (BATCH, 1)), *interleaved("past_key_values", "past_sequence", True)),
        outputs=(TensorSpec("logits", "float32", (BATCH, 1, vocab)), *interleaved("present", "total_sequence", False)),
        axes={**axes, "past_sequence": (1, 1, max_len - 1)},
        sample=with_past_sample,
        exporter="optimum",
        gpu_platform="onnxruntime_onnx",
    )
    return [encoder, decoder, with_past]


def specs_for(model_dir: Path | str, profile: ExportProfile | None = None, model: str | None = None) -> list[ComponentSpec]:
    """Every exportable component of the model in `model_dir`, in export order."""
    model_dir = Path(model_dir)
    profile = profile or ExportProfile()
    kind = detect_model(model_dir)
    if kind in ("sd", "sdxl", "flux"):
        return diffusion_specs(kind, model_dir, profile, model)
    if kind == "clip":
        return clip_specs(model_dir, profile, model or "clip")
    return marian_specs(model_dir, profile, model or "marian")
