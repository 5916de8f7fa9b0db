"""Model references: a local folder in Hugging Face layout or a hub id, resolved offline-safely.

With `HF_HUB_OFFLINE=1` (the default of `make serve` and the tests) a reference that is neither a
folder nor in the local Hugging Face cache fails at once with an error naming what was tried and how
to get the weights, instead of hanging on a download that cannot happen.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fashion_studio.errors import ModelNotFoundError
from fashion_studio.settings import Settings

logger = logging.getLogger(__name__)

Family = Literal["sd", "sdxl", "flux", "pix2pix", "inpaint"]

_FAMILY_BY_CLASS = {
    "StableDiffusionPipeline": "sd",
    "StableDiffusionXLPipeline": "sdxl",
    "FluxPipeline": "flux",
    "StableDiffusionInstructPix2PixPipeline": "pix2pix",
    "StableDiffusionInpaintPipeline": "inpaint",
}

_HOW_TO_GET = {
    "generator": "a diffusers folder (e.g. `huggingface-cli download black-forest-labs/FLUX.1-schnell --local-dir DIR`)",
    "translator": "a MarianMT folder (e.g. `huggingface-cli download Helsinki-NLP/opus-mt-de-en --local-dir DIR`)",
    "scorer": "a CLIP folder (e.g. `huggingface-cli download openai/clip-vit-large-patch14 --local-dir DIR`)",
    "editor": "an InstructPix2Pix folder (e.g. `huggingface-cli download timbrooks/instruct-pix2pix --local-dir DIR`)",
    "segmenter": "a Segment Anything folder (e.g. `huggingface-cli download facebook/sam-vit-base --local-dir DIR`)",
    "inpainter": "a Stable Diffusion inpainting folder (e.g. `huggingface-cli download stable-diffusion-v1-5/stable-diffusion-inpainting --local-dir DIR`)",
    "parser": "a SegFormer clothes parser (e.g. `huggingface-cli download mattmdjaga/segformer_b2_clothes --local-dir DIR`)",
    "llm": "a causal LM folder (e.g. `huggingface-cli download microsoft/Phi-3-mini-4k-instruct --local-dir DIR`)",
}


@dataclass(frozen=True)
class ModelRef:
    """What a component was loaded from: kept in every stored image's metadata."""

    kind: str
    ref: str
    path: str
    revision: str | None = None

    def describe(self) -> dict[str, str | None]:
        return {"ref": self.ref, "path": self.path, "revision": self.revision}


def hub_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE", "")
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def resolve(kind: str, ref: str, settings: Settings, revision: str | None = None) -> ModelRef:
    """Turn a setting into a loadable path, or fail with the fix in the message."""
    local = Path(settings.model_path(ref)).expanduser()
    if local.is_dir():
        return ModelRef(kind=kind, ref=ref, path=str(local.resolve()), revision=revision or _local_revision(local))
    looks_like_path = ref.startswith((".", "/", "~")) or ref.count("/") != 1
    tried_dirs = " or ".join(dict.fromkeys(str(p) for p in (Path(ref).expanduser(), settings.models_dir / ref)))
    env_name = f"FASHION_{kind.upper()}"
    how = _HOW_TO_GET.get(kind, "the model folder")
    if looks_like_path:
        raise ModelNotFoundError(
            f"{kind} model {ref!r} not found: no folder at {tried_dirs}. Put {how} there, or set {env_name} to "
            f"a folder or hub id; the small default models are built by `fashion-studio models build-tiny "
            f"{settings.models_dir / 'tiny'}`."
        )
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(ref, revision=revision, local_files_only=hub_offline())
    except Exception as exc:  # huggingface_hub raises several kinds; all mean "not here"
        tried = f"no folder at {tried_dirs}, " + ("not in the Hugging Face cache (HF_HUB_OFFLINE=1)" if hub_offline() else f"download failed: {exc}")
        raise ModelNotFoundError(
            f"{kind} model {ref!r} not found: {tried}. Put {how} on this machine and set {env_name} to that folder, or allow downloads (unset HF_HUB_OFFLINE)."
        ) from exc
    return ModelRef(kind=kind, ref=ref, path=path, revision=revision or Path(path).name)


def _local_revision(path: Path) -> str | None:
    marker = path / ".complete"
    if marker.is_file():
        return marker.read_text().strip().splitlines()[0] if marker.read_text().strip() else None
    return None


def diffusion_family(path: str | Path) -> Family:
    """Which generator family a diffusers folder holds, from its `model_index.json`."""
    index = Path(path) / "model_index.json"
    try:
        class_name = json.loads(index.read_text())["_class_name"]
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise ModelNotFoundError(f"{path} is not a diffusers pipeline folder: cannot read {index} ({exc})") from exc
    try:
        return _FAMILY_BY_CLASS[class_name]  # type: ignore[return-value]
    except KeyError as exc:
        known = ", ".join(sorted(_FAMILY_BY_CLASS))
        raise ModelNotFoundError(f"{index} names pipeline {class_name!r}; supported: {known}") from exc


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def limit_threads(settings: Settings) -> None:
    """Apply `torch_threads` to PyTorch's intra-op pool when it is set (a model process's budget,
    `Settings.for_process`); unset, PyTorch keeps its default of every core."""
    if settings.torch_threads:
        import torch

        if torch.get_num_threads() != settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
            logger.info("PyTorch limited to %d CPU thread(s)", settings.torch_threads)


@contextmanager
def one_thread() -> Iterator[None]:
    """PyTorch on one intra-op thread for the duration, then back to the process's budget.

    For warm-ups at start: the model processes of one machine warm up at the same moment, and an
    OpenMP pool of several threads on cores that other processes want spins while it waits for its
    stragglers (on 2 cores, two such warm-ups cost 7 CPU-seconds each instead of 0.5). One thread
    warms the same code paths with no pool to wait on.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
