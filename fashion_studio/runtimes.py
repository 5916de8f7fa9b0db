"""Runtimes for model components: ONNX Runtime in-process, or Triton over gRPC.

`load_pipeline(settings, model_ref, family)` returns the family's own diffusers pipeline (scheduler,
tokenizers and the denoising loop unchanged) whose heavy components (text encoders, UNet or Flux
transformer, VAE) are stand-ins that run the exported graphs through a `Backend`: an ONNX Runtime
session, or a model on a Triton server. The stand-ins answer the calls and attributes the pipelines
use, so `Generator` wraps `encode_prompt` and `vae.decode` exactly as with PyTorch.

The exported graphs come from `export/` (one declaration per component). Loading never exports: ONNX
Runtime finds an export in `settings.onnx_dir` or `settings.onnx_cache_dir`, and a missing one is an
error that names the `python -m export onnx ...` command that makes it. Triton models are named
`<model>_<component>` (`sd_unet`), as `python -m export triton` writes them; a Triton runtime reads
those names from the export declarations, so a process that calls Triton needs the model's configs,
not its weights or an export.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import logging
import shlex
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

import numpy as np

from fashion_studio.models import ModelRef
from fashion_studio.settings import Settings

logger = logging.getLogger(__name__)

_PIPELINES = {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline", "flux": "FluxPipeline"}


class RuntimeUnavailable(RuntimeError):
    """A runtime cannot serve this model (missing export, server or model); the message says why."""


# ---------------------------------------------------------------------------------------------------
# Backends: named arrays in, named arrays out


class Backend(Protocol):
    name: str

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class OrtBackend:
    """One exported graph in an in-process ONNX Runtime session (CPU, or CUDA where the build has it)."""

    def __init__(self, path: Path | str, name: str, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # ONNX Runtime's threads spin after each run by default, taking the cores from the PyTorch
        # parts of the same pipeline (scheduler, VAE) and from the other model processes.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        self.name = name
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.input_types = {i.name: _ORT_NUMPY[i.type] for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {name: np.ascontiguousarray(inputs[name], dtype=dtype) for name, dtype in self.input_types.items()}
        return dict(zip(self.output_names, self.session.run(self.output_names, feed)))


_ORT_NUMPY = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32}
_TRITON_NUMPY = {"FP32": np.float32, "FP16": np.float16, "INT64": np.int64, "INT32": np.int32}

# A channel resolves its target once; renewing it this often lets a dns:/// target over a headless
# Service see Triton pods that the autoscaler added (gRPC re-resolves only when a connection fails).
CHANNEL_MAX_AGE_S = 60.0
# Backoff while a Triton server or model is not ready yet: from the first delay, doubling, capped.
READY_FIRST_DELAY_S = 0.5
READY_MAX_DELAY_S = 15.0

_CLIENTS: dict[str, tuple[float, Any]] = {}
_RETIRED: list[Any] = []
_CLIENTS_LOCK = threading.Lock()


def close_triton_clients() -> None:
    """Close the shared channels while gRPC is still whole (not from `__del__` at interpreter exit)."""
    with _CLIENTS_LOCK:
        while _CLIENTS:
            _, (_, client) = _CLIENTS.popitem()
            client.close()
        while _RETIRED:
            _RETIRED.pop().close()


atexit.register(close_triton_clients)


def triton_channel_args() -> list[tuple[str, Any]]:
    """tritonclient's own channel options plus round-robin balancing: given a target that resolves to
    several addresses (`dns:///triton-headless:8001`, a headless Service), the channel connects to every
    ready pod and spreads calls over them; one connection to a ClusterIP would pin a process to one pod."""
    from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE

    return [
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.dns_min_time_between_resolutions_ms", 5000),
    ]


def triton_client(url: str) -> Any:
    """One gRPC client per server, shared by every component (gRPC channels are thread-safe), renewed
    after CHANNEL_MAX_AGE_S; a renewed client closes one period later, when its calls have finished."""
    import tritonclient.grpc as grpcclient

    now = time.monotonic()
    with _CLIENTS_LOCK:
        created, client = _CLIENTS.get(url, (0.0, None))
        if client is None or now - created > CHANNEL_MAX_AGE_S:
            while _RETIRED:
                _RETIRED.pop().close()
            if client is not None:
                _RETIRED.append(client)
            client = grpcclient.InferenceServerClient(url=url, channel_args=triton_channel_args())
            _CLIENTS[url] = (now, client)
        return client


def wait_for_triton_model(url: str, model: str, wait_s: float) -> None:
    """Return once Triton at `url` serves `model`, retrying with backoff for up to `wait_s`: a model
    service may start before Triton has loaded its engines, and then becomes ready with it instead of
    failing until its startup probe restarts it. Raises RuntimeUnavailable when the wait runs out."""
    from tritonclient.utils import InferenceServerException

    deadline = time.monotonic() + wait_s
    delay = READY_FIRST_DELAY_S
    attempt = 0
    while True:
        attempt += 1
        try:
            if triton_client(url).is_model_ready(model):
                return
            reason = f"Triton at {url} has no ready model {model!r}"
        except InferenceServerException as exc:
            reason = f"Triton at {url} is not reachable: {exc}"
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeUnavailable(f"{reason} after {attempt} attempts in {wait_s:.0f} s; is the repository from `python -m export triton`?")
        pause = min(delay, left)
        logger.warning("%s (attempt %d); retrying in %.1f s (%.0f s left)", reason, attempt, pause, left)
        time.sleep(pause)
        delay = min(delay * 2, READY_MAX_DELAY_S)


class TritonBackend:
    """A model on a Triton server; a call larger than the model's max batch goes as concurrent chunks."""

    def __init__(self, url: str, model: str, timeout_s: float = 60.0, wait_s: float = 0.0) -> None:
        from tritonclient.utils import InferenceServerException

        self.name = model
        self.url = url
        self.timeout_s = timeout_s
        wait_for_triton_model(url, model, wait_s)
        try:
            metadata = self.client.get_model_metadata(model, as_json=True)
            config = self.client.get_model_config(model, as_json=True)["config"]
        except InferenceServerException as exc:
            raise RuntimeUnavailable(f"Triton at {url}: model {model!r}: {exc}") from exc
        self.inputs = {t["name"]: (t["datatype"], len(t["shape"])) for t in metadata["inputs"]}
        self.output_names = [t["name"] for t in metadata["outputs"]]
        self.max_batch = int(config.get("max_batch_size", 0)) or None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"triton-{model}")

    @property
    def client(self) -> Any:
        return triton_client(self.url)

    def _infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tritonclient.grpc as grpcclient

        request = []
        for name, (datatype, rank) in self.inputs.items():
            array = np.ascontiguousarray(inputs[name], dtype=_TRITON_NUMPY[datatype])
            if array.ndim + 1 == rank:  # a per-item scalar: [batch] is sent as [batch, 1]
                array = array[..., None]
            tensor = grpcclient.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array)
            request.append(tensor)
        outputs = [grpcclient.InferRequestedOutput(name) for name in self.output_names]
        result = self.client.infer(self.name, request, outputs=outputs, client_timeout=self.timeout_s)
        return {name: result.as_numpy(name) for name in self.output_names}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = next(iter(inputs.values())).shape[0]
        if self.max_batch is None or batch <= self.max_batch:
            return self._infer(inputs)
        starts = range(0, batch, self.max_batch)
        parts = list(self._pool.map(lambda s: self._infer({k: v[s : s + self.max_batch] for k, v in inputs.items()}), starts))
        return {name: np.concatenate([p[name] for p in parts]) for name in self.output_names}


# ---------------------------------------------------------------------------------------------------
# Stand-ins for the pipeline's torch modules


def _torch(array: np.ndarray) -> Any:
    import torch

    array = np.ascontiguousarray(array)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _numpy(tensor: Any, dtype: Any = np.float32) -> np.ndarray:
    import torch

    if isinstance(tensor, torch.Tensor):
        tensor = tensor.detach().to("cpu", torch.float32 if dtype == np.float32 else None).numpy()
    return np.asarray(tensor, dtype=dtype)


class _Component:
    """What a pipeline asks of a component besides calling it: config, dtype, device, `to`."""

    def __init__(self, backend: Backend, config: Any) -> None:
        import torch

        self.backend = backend
        self.config = config
        self.dtype = torch.float32
        self.device = torch.device("cpu")

    def to(self, *args: Any, **kwargs: Any) -> _Component:
        return self

    def eval(self) -> _Component:
        return self

    def requires_grad_(self, *args: Any) -> _Component:
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend.name})"


class TextEncoder(_Component):
    """CLIP (with or without projection) or T5 encoder; `hidden_states` is (penultimate, last) where exported."""

    def __call__(self, input_ids: Any, attention_mask: Any = None, output_hidden_states: bool | None = None, return_dict: bool = True, **_: Any) -> Any:
        from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling
        from transformers.models.clip.modeling_clip import CLIPTextModelOutput

        out = self.backend.run({"input_ids": _numpy(input_ids, np.int64)})
        hidden = None
        if output_hidden_states:
            if "penultimate_hidden_state" not in out:
                raise ValueError(f"{self.backend.name} was exported without hidden states; clip_skip needs the torch runtime")
            hidden = (_torch(out["penultimate_hidden_state"]), _torch(out["last_hidden_state"]))
        last = _torch(out["last_hidden_state"])
        if "text_embeds" in out:
            result: Any = CLIPTextModelOutput(text_embeds=_torch(out["text_embeds"]), last_hidden_state=last, hidden_states=hidden)
        elif "pooler_output" in out:
            result = BaseModelOutputWithPooling(last_hidden_state=last, pooler_output=_torch(out["pooler_output"]), hidden_states=hidden)
        else:
            result = BaseModelOutput(last_hidden_state=last, hidden_states=hidden)
        return result if return_dict else result.to_tuple()


class UNet(_Component):
    def __init__(self, backend: Backend, config: Any) -> None:
        super().__init__(backend, config)
        # SDXL's pipeline reads the size of the added-embedding input to check its time ids.
        self.add_embedding = SimpleNamespace(linear_1=SimpleNamespace(in_features=config.get("projection_class_embeddings_input_dim")))
        self.encoder_hid_proj = None

    def __call__(
        self,
        sample: Any,
        timestep: Any,
        encoder_hidden_states: Any,
        timestep_cond: Any = None,
        cross_attention_kwargs: Any = None,
        added_cond_kwargs: dict | None = None,
        return_dict: bool = True,
        **_: Any,
    ) -> Any:
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        if timestep_cond is not None:
            raise ValueError("timestep_cond (LCM guidance embedding) is not part of the exported UNet")
        x = _numpy(sample)
        t = np.broadcast_to(_numpy(timestep).reshape(-1), (x.shape[0],)).astype(np.float32)
        inputs = {"sample": x, "timestep": t, "encoder_hidden_states": _numpy(encoder_hidden_states)}
        if added_cond_kwargs:
            inputs["text_embeds"] = _numpy(added_cond_kwargs["text_embeds"])
            inputs["time_ids"] = _numpy(added_cond_kwargs["time_ids"])
        out = _torch(self.backend.run(inputs)["out_sample"])
        return UNet2DConditionOutput(sample=out) if return_dict else (out,)


class FluxTransformer(_Component):
    def __init__(self, backend: Backend, config: Any) -> None:
        super().__init__(backend, config)
        self.encoder_hid_proj = None

    @contextlib.contextmanager
    def cache_context(self, name: str) -> Iterator[None]:
        yield

    def __call__(
        self,
        hidden_states: Any,
        encoder_hidden_states: Any = None,
        pooled_projections: Any = None,
        timestep: Any = None,
        img_ids: Any = None,
        txt_ids: Any = None,
        guidance: Any = None,
        joint_attention_kwargs: Any = None,
        return_dict: bool = True,
        **_: Any,
    ) -> Any:
        from diffusers.models.modeling_outputs import Transformer2DModelOutput

        x = _numpy(hidden_states)
        batch = x.shape[0]

        def per_item(ids: Any) -> np.ndarray:
            ids = _numpy(ids)
            return np.broadcast_to(ids, (batch, *ids.shape)) if ids.ndim == 2 else ids

        inputs = {
            "hidden_states": x,
            "encoder_hidden_states": _numpy(encoder_hidden_states),
            "pooled_projections": _numpy(pooled_projections),
            "timestep": np.broadcast_to(_numpy(timestep).reshape(-1), (batch,)).astype(np.float32),
            "img_ids": per_item(img_ids),
            "txt_ids": per_item(txt_ids),
        }
        if self.config.get("guidance_embeds"):
            inputs["guidance"] = np.broadcast_to(_numpy(guidance).reshape(-1), (batch,)).astype(np.float32)
        out = _torch(self.backend.run(inputs)["out_hidden_states"])
        return Transformer2DModelOutput(sample=out) if return_dict else (out,)


class Vae(_Component):
    """The VAE's decoder and (where exported) encoder; slicing and tiling are no-ops here."""

    def __init__(self, decoder: Backend, encoder: Backend | None, config: Any) -> None:
        super().__init__(decoder, config)
        self.encoder_backend = encoder

    def decode(self, z: Any, return_dict: bool = True, generator: Any = None, **_: Any) -> Any:
        from diffusers.models.autoencoders.vae import DecoderOutput

        out = _torch(self.backend.run({"latent_sample": _numpy(z)})["sample"])
        return DecoderOutput(sample=out) if return_dict else (out,)

    def encode(self, x: Any, return_dict: bool = True) -> Any:
        from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKLOutput
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        if self.encoder_backend is None:
            raise RuntimeUnavailable("this export has no VAE encoder")
        posterior = DiagonalGaussianDistribution(_torch(self.encoder_backend.run({"sample": _numpy(x)})["latent_parameters"]))
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def enable_slicing(self) -> None: ...
    def disable_slicing(self) -> None: ...
    def enable_tiling(self) -> None: ...
    def disable_tiling(self) -> None: ...


# ---------------------------------------------------------------------------------------------------
# Finding exports and making backends


def export_profile(settings: Settings) -> Any:
    from export.specs import ExportProfile

    return ExportProfile.from_settings(settings)


def _export_options(settings: Settings) -> dict[str, Any]:
    return dict(precision=settings.onnx_precision, opset=settings.onnx_opset, profile=export_profile(settings))


def export_command(settings: Settings, model_ref: ModelRef) -> str:
    """The command that exports this model where `locate_export` looks for it (the same settings,
    from the same FASHION_* environment, give the same profile)."""
    from export.onnx_export import export_folder_name, export_key, fingerprint
    from export.specs import specs_for

    options = _export_options(settings)
    specs = [s.with_precision(settings.onnx_precision) for s in specs_for(model_ref.path, options["profile"])]
    key = export_key(fingerprint(Path(model_ref.path)), settings.onnx_precision, settings.onnx_opset, options["profile"], specs)
    out = Path(settings.onnx_dir or settings.onnx_cache_dir) / export_folder_name(Path(model_ref.path), None, key)
    return shlex.join(
        [
            "python",
            "-m",
            "export",
            "onnx",
            "--model",
            str(model_ref.path),
            "--out",
            str(out),
            "--precision",
            settings.onnx_precision,
            "--opset",
            str(settings.onnx_opset),
        ]
    )


def locate_export(settings: Settings, model_ref: ModelRef) -> Path:
    """The exported folder of this model, in `onnx_dir` or else in `onnx_cache_dir`. Nothing is exported
    here: exporting takes minutes and the weights, so it is an explicit step (`python -m export onnx`),
    and a missing export raises `RuntimeUnavailable` naming the command that makes it."""
    from export.onnx_export import find_export

    roots = [root for root in (settings.onnx_dir, settings.onnx_cache_dir) if root is not None]
    for root in roots:
        # ONNX Runtime runs any shape: an export of the same weights and precision for another profile will do.
        found = find_export(root, model_ref.path, any_profile=True, **_export_options(settings))
        if found is not None:
            return found
    where = " or ".join(str(root) for root in roots)
    raise RuntimeUnavailable(
        f"no ONNX export of {model_ref.path} ({settings.onnx_precision}, opset {settings.onnx_opset}) in {where}; "
        f"make one with `{export_command(settings, model_ref)}`"
    )


def _manifest(export_dir: Path) -> dict[str, Any]:
    return json.loads((export_dir / "manifest.json").read_text())


def triton_models(settings: Settings, model_ref: ModelRef) -> dict[str, str]:
    """Component -> Triton model name, from the export declarations (`export/specs.py`), as
    `python -m export triton` names them: no export and no weights needed."""
    from export.specs import specs_for

    return {spec.name: spec.triton_name for spec in specs_for(model_ref.path, export_profile(settings))}


def make_backends(settings: Settings, model_ref: ModelRef) -> dict[str, Backend]:
    """Component name -> backend, for the runtime in `settings`: ONNX Runtime sessions over an existing
    export, or the models on the Triton server."""
    if settings.runtime == "onnx":
        export_dir = locate_export(settings, model_ref)
        manifest = _manifest(export_dir)
        logger.info("%s on onnx from %s", model_ref.ref, export_dir)
        return {
            name: OrtBackend(export_dir / entry["file"], f"{manifest['name']}_{name}", settings.torch_threads) for name, entry in manifest["components"].items()
        }
    if settings.runtime == "triton":
        return {
            name: TritonBackend(settings.triton_url, model, settings.triton_client_timeout_s, settings.model_wait_s)
            for name, model in triton_models(settings, model_ref).items()
        }
    raise ValueError(f"runtime {settings.runtime!r} has no backends; choose onnx or triton")


def _from_model_index(path: Path, name: str) -> Any:
    index = json.loads((path / "model_index.json").read_text())
    library, class_name = index[name]
    return getattr(importlib.import_module(library), class_name).from_pretrained(path, subfolder=name)


def _config(path: Path, folder: str) -> Any:
    from diffusers.configuration_utils import FrozenDict

    return FrozenDict(json.loads((path / folder / "config.json").read_text()))


def _text_config(path: Path, folder: str) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path, subfolder=folder)


def build_pipeline(family: str, model_path: Path | str, backends: dict[str, Backend]) -> Any:
    """The family's diffusers pipeline around stand-ins that run `backends`."""
    import diffusers

    path = Path(model_path)
    vae = Vae(backends["vae_decoder"], backends.get("vae_encoder"), _config(path, "vae"))
    parts: dict[str, Any] = {
        "vae": vae,
        "text_encoder": TextEncoder(backends["text_encoder"], _text_config(path, "text_encoder")),
        "tokenizer": _from_model_index(path, "tokenizer"),
        "scheduler": _from_model_index(path, "scheduler"),
    }
    if family in ("sdxl", "flux"):
        parts["text_encoder_2"] = TextEncoder(backends["text_encoder_2"], _text_config(path, "text_encoder_2"))
        parts["tokenizer_2"] = _from_model_index(path, "tokenizer_2")
    if family == "flux":
        parts["transformer"] = FluxTransformer(backends["transformer"], _config(path, "transformer"))
    else:
        parts["unet"] = UNet(backends["unet"], _config(path, "unet"))
    if family == "sd":
        parts.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if family == "sdxl":
        index = json.loads((path / "model_index.json").read_text())
        parts["add_watermarker"] = False
        parts["force_zeros_for_empty_prompt"] = index.get("force_zeros_for_empty_prompt", True)
    pipeline = getattr(diffusers, _PIPELINES[family])(**parts)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def load_pipeline(settings: Settings, model_ref: ModelRef, family: str) -> Any:
    """A diffusers-compatible pipeline whose components run on `settings.runtime` (onnx or triton)."""
    if family not in _PIPELINES:
        raise RuntimeUnavailable(f"runtime {settings.runtime!r} serves sd, sdxl and flux; {family!r} needs the torch runtime")
    if settings.lora:
        raise RuntimeUnavailable(f"LoRA adapters {settings.lora} need the torch runtime; fuse them into the weights before export")
    if settings.dtype != "float32" and settings.runtime == "onnx" and settings.onnx_precision == "fp32":
        logger.info("runtime onnx runs the fp32 export; dtype %s applies to the torch runtime", settings.dtype)
    backends = make_backends(settings, model_ref)
    logger.info("%s pipeline on %s", family, settings.runtime)
    return build_pipeline(family, model_ref.path, backends)


# ---------------------------------------------------------------------------------------------------
# Translator and scorer models on ONNX Runtime


def load_translation_model(settings: Settings, model_ref: ModelRef) -> Any:
    """MarianMT on ONNX Runtime (encoder, decoder, decoder with past): `generate` as in transformers."""
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForSeq2SeqLM
    from transformers import AutoConfig, GenerationConfig

    export_dir = locate_export(settings, model_ref)
    files = {name: export_dir / entry["file"] for name, entry in _manifest(export_dir)["components"].items()}
    model = ORTModelForSeq2SeqLM(
        config=AutoConfig.from_pretrained(model_ref.path),
        encoder_session=ort.InferenceSession(str(files["encoder"]), providers=["CPUExecutionProvider"]),
        decoder_session=ort.InferenceSession(str(files["decoder"]), providers=["CPUExecutionProvider"]),
        decoder_with_past_session=ort.InferenceSession(str(files["decoder_with_past"]), providers=["CPUExecutionProvider"]),
        generation_config=GenerationConfig.from_pretrained(model_ref.path),
        model_save_dir=export_dir,
    )
    if not hasattr(model, "eval"):
        model.eval = lambda: model  # type: ignore[attr-defined]
    return model


class ClipModel:
    """CLIP's text and image towers on a backend: the calls and config `Scorer` uses."""

    def __init__(self, text: Backend, vision: Backend, config: Any) -> None:
        self.text = text
        self.vision = vision
        self.config = config

    def eval(self) -> ClipModel:
        return self

    def get_text_features(self, input_ids: Any, attention_mask: Any = None, **_: Any) -> Any:
        ids = _numpy(input_ids, np.int64)
        mask = np.ones_like(ids) if attention_mask is None else _numpy(attention_mask, np.int64)
        return _torch(self.text.run({"input_ids": ids, "attention_mask": mask})["text_embeds"])

    def get_image_features(self, pixel_values: Any, **_: Any) -> Any:
        return _torch(self.vision.run({"pixel_values": _numpy(pixel_values)})["image_embeds"])


def load_clip_model(settings: Settings, model_ref: ModelRef) -> ClipModel:
    from transformers import CLIPConfig

    backends = make_backends(settings, model_ref)
    return ClipModel(backends["text"], backends["vision"], CLIPConfig.from_pretrained(model_ref.path))
