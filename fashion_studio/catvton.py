"""CatVTON's released try-on weights (Chong et al., 2024; `zhengchong/CatVTON`) over an SD 1.5
inpainting UNet.

CatVTON trains only the UNet's self-attention (`attn1`) of an inpainting checkpoint
(`booksforcharlie/stable-diffusion-inpainting`) and drops its cross-attention: there is no text, and
each block's cross-attention returns the hidden states it was given. Its pipeline collects the
trainable modules as `torch.nn.ModuleList(m for name, m in unet.named_modules() if "attn1" in name)`
(after registering module-typed attention processors) and loads `<version>/attention/model.safetensors`
into that list, so the file's keys are that list's positions, e.g. `0.to_q.weight`.

`load_attention` maps those positions back onto a stock diffusers UNet's parameter names (for both
layouts the list can have: with or without a processor entry per self-attention) and refuses a file
that leaves a self-attention weight unset or names one the UNet does not have. `apply` loads the
weights and swaps the cross-attention processors for `SkipCrossAttention`. The try-on loop itself is
the one `fashion_studio.inpainting.Inpainter.try_on` runs for every inpainting model: the masked
person over the garment along the height, the mask over the person half, guidance by dropping the
garment half.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fashion_studio.errors import ModelNotFoundError

if TYPE_CHECKING:
    from fashion_studio.settings import Settings

logger = logging.getLogger(__name__)

SELF_ATTENTION = "attn1"
WEIGHTS_FILE = "model.safetensors"
# The released versions (folders of `zhengchong/CatVTON`); `mix-48k-1024` is its demo's default.
VERSIONS = ("mix-48k-1024", "vitonhd-16k-512", "dresscode-16k-512")
_KEY = re.compile(r"^(\d+)\.(.+)$")


class SkipCrossAttention:
    """CatVTON's cross-attention: none. The transformer block adds the attention's output to its input,
    so returning the (normed) hidden states given is what the released weights were trained with."""

    def __call__(
        self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None, attention_mask: Any = None, temb: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        return hidden_states


def module_list_names(unet: Any, processor_entries: bool) -> list[str]:
    """The UNet module names behind CatVTON's ModuleList positions. With `processor_entries` every
    self-attention also holds its (parameter-free) processor module, registered last, as CatVTON's
    `init_adapter` leaves it."""
    names: list[str] = []
    current: str | None = None
    for name, _ in unet.named_modules():
        if current is not None and not name.startswith(current + "."):
            if processor_entries:
                names.append(current + ".processor")
            current = None
        if SELF_ATTENTION not in name:
            continue
        if name.rsplit(".", 1)[-1] == SELF_ATTENTION:
            current = name
        names.append(name)
    if current is not None and processor_entries:
        names.append(current + ".processor")
    return names


def map_keys(keys: list[str], shapes: dict[str, tuple[int, ...]], unet: Any) -> dict[str, str]:
    """File key -> UNet parameter name, for the layout that places every key on a self-attention
    parameter of its shape and sets every self-attention parameter; a `ModelNotFoundError` saying what
    does not fit otherwise."""
    state = {name: tuple(t.shape) for name, t in unet.state_dict().items()}
    wanted = {name for name in state if f".{SELF_ATTENTION}." in name}
    problems = []
    for processor_entries in (True, False):
        names = module_list_names(unet, processor_entries)
        mapping: dict[str, str] = {}
        bad: list[str] = []
        for key in keys:
            match = _KEY.match(key)
            index = int(match.group(1)) if match else -1
            if not match or index >= len(names):
                bad.append(f"{key!r} is no position of the UNet's {len(names)} self-attention modules")
                continue
            target = f"{names[index]}.{match.group(2)}"
            if target not in state:
                bad.append(f"{key!r} -> {target!r}, which the UNet does not have")
            elif state[target] != shapes[key]:
                bad.append(f"{key!r} has shape {list(shapes[key])}, the UNet's {target!r} {list(state[target])}")
            else:
                mapping[key] = target
        unset = sorted(wanted - set(mapping.values()))
        if not bad and not unset:
            return mapping
        problems.append((len(bad) + len(unset), bad, unset))
    _, bad, unset = min(problems, key=lambda p: p[0])
    detail = "; ".join(bad[:3]) or f"{len(unset)} self-attention weights are not in it, e.g. {unset[:2]}"
    raise ModelNotFoundError(f"the try-on attention weights do not fit this UNet: {detail}")


def resolve(ref: str, settings: Settings) -> Path:
    """A folder holding `model.safetensors`: a local folder (found as every model reference is,
    `Settings.model_path`), or `owner/name/subfolder` on the hub, e.g.
    `zhengchong/CatVTON/mix-48k-1024/attention`."""
    local = Path(settings.model_path(ref)).expanduser()
    if (local / WEIGHTS_FILE).is_file():
        return local
    if local.is_file() and local.name.endswith(".safetensors"):
        return local.parent
    parts = ref.strip("/").split("/")
    if ref.startswith((".", "/", "~")) or len(parts) < 3:
        raise ModelNotFoundError(
            f"try-on attention weights {ref!r} not found: no {WEIGHTS_FILE} in {Path(ref).expanduser()} or {settings.models_dir / ref}. "
            f"Set FASHION_TRYON_ATTENTION to the folder holding CatVTON's {WEIGHTS_FILE} (e.g. its {VERSIONS[0]}/attention), "
            "or to zhengchong/CatVTON/mix-48k-1024/attention to take it from the hub."
        )
    from fashion_studio.models import hub_offline

    repo, subfolder = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        from huggingface_hub import snapshot_download

        root = snapshot_download(repo, allow_patterns=[f"{subfolder}/*"], local_files_only=hub_offline())
    except Exception as exc:  # huggingface_hub raises several kinds; all mean "not here"
        raise ModelNotFoundError(
            f"try-on attention weights {ref!r}: {repo} could not be fetched ({exc}); put the folder on this machine and set FASHION_TRYON_ATTENTION to it"
        ) from exc
    folder = Path(root) / subfolder
    if not (folder / WEIGHTS_FILE).is_file():
        raise ModelNotFoundError(f"try-on attention weights {ref!r}: {repo} has no {subfolder}/{WEIGHTS_FILE}")
    return folder


def load_attention(unet: Any, folder: Path) -> int:
    """Load CatVTON's self-attention weights from `folder` into `unet` (in place); returns how many
    tensors were set."""
    import torch
    from safetensors import safe_open

    path = Path(folder) / WEIGHTS_FILE
    with safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
        shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in keys}
        mapping = map_keys(keys, shapes, unet)
        parameters = dict(unet.state_dict())
        with torch.no_grad():
            for key, target in mapping.items():
                parameters[target].copy_(handle.get_tensor(key).to(parameters[target].dtype))
    return len(mapping)


def skip_cross_attention(unet: Any) -> None:
    processors = {name: SkipCrossAttention() if name.endswith("attn2.processor") else processor for name, processor in unet.attn_processors.items()}
    unet.set_attn_processor(processors)


def apply(unet: Any, folder: Path) -> Any:
    """`unet` (an SD 1.5 inpainting UNet, changed in place) with CatVTON's self-attention weights and no
    cross-attention."""
    if int(unet.config.in_channels) != 9:
        raise ModelNotFoundError(f"CatVTON's try-on weights go over a 9-channel inpainting UNet; this one takes {unet.config.in_channels} channels")
    count = load_attention(unet, folder)
    skip_cross_attention(unet)
    logger.info("try-on: %d CatVTON self-attention tensors from %s; cross-attention skipped", count, folder)
    return unet
