"""CatVTON's released try-on weights plug into `/tryon`: a checkpoint written the way CatVTON's own
code writes it (its trainable self-attention modules collected as a `torch.nn.ModuleList` from
`unet.named_modules()`, saved with safetensors) over the shipped inpainting UNet lands on exactly the
self-attention weights, try-on runs without cross-attention, `/inpaint` keeps the checkpoint's own
weights, and a checkpoint that does not fit is refused saying why."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from PIL import Image
from safetensors.torch import save_model

from fashion_studio import catvton
from fashion_studio.errors import ModelNotFoundError
from fashion_studio.inpainting import Inpainter, TryOnRequest
from fashion_studio.mini import MINI_DIR
from fashion_studio.mini import inpainter as mini_inpainter
from fashion_studio.mini.data import HELDOUT
from fashion_studio.settings import Settings

INPAINTER = MINI_DIR / "inpainter"
LIMITS = Settings().limits


class ModuleProcessor(torch.nn.Module):
    """What CatVTON's `init_adapter` registers on every attention: a processor that is a module (so it
    is a named module of the UNet, with no parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = AttnProcessor2_0()

    def __call__(self, *args, **kwargs):
        return self.inner(*args, **kwargs)


def write_catvton_checkpoint(unet, folder: Path, processors: bool, seed: int = 0, scale: float = 0.05) -> dict[str, torch.Tensor]:
    """A checkpoint laid out as CatVTON's `get_trainable_module(unet, "attention")` list, with new random
    weights; returns those weights by the UNet's parameter names."""
    unet = copy.deepcopy(unet)
    if processors:
        unet.set_attn_processor({name: ModuleProcessor() for name in unet.attn_processors})
    modules = torch.nn.ModuleList([module for name, module in unet.named_modules() if "attn1" in name])
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in modules.parameters():
            parameter.copy_(scale * torch.randn(parameter.shape, generator=generator))
    folder.mkdir(parents=True)
    save_model(modules, str(folder / catvton.WEIGHTS_FILE))
    return {name: p.detach().clone() for name, p in unet.named_parameters() if ".attn1." in name}


@pytest.fixture(scope="module")
def base() -> Inpainter:
    return Inpainter.load(Settings(inpainter=str(INPAINTER)))


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> mini_inpainter.ExampleSet:
    return mini_inpainter.example_set(tmp_path_factory.mktemp("examples"), 4, 0, HELDOUT, workers=1)


def tryon(inpainter: Inpainter, data, i: int):
    request = TryOnRequest(Image.fromarray(data.persons[i]), Image.fromarray(data.garments[i]), data.masks[i], seed=i).check(LIMITS)
    [result] = inpainter.run([request])
    return result


def cross_attention_outputs(unet) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every cross-attention of `unet` on the same hidden states with two different text states:
    (hidden states, output for the first text, output for the second)."""
    generator = torch.Generator().manual_seed(0)
    inputs, first, second = [], [], []
    with torch.inference_mode():
        for name, module in unet.named_modules():
            if name.endswith(".attn2"):
                hidden = torch.randn(1, 16, module.query_dim, generator=generator)
                texts = [torch.randn(1, 77, unet.config.cross_attention_dim, generator=generator) for _ in range(2)]
                inputs.append(hidden.flatten())
                first.append(module(hidden, encoder_hidden_states=texts[0]).flatten())
                second.append(module(hidden, encoder_hidden_states=texts[1]).flatten())
    return torch.cat(inputs), torch.cat(first), torch.cat(second)


@pytest.mark.parametrize("processors", [True, False], ids=["with-processor-modules", "without"])
def test_the_weights_land_on_self_attention_and_try_on_runs_without_cross_attention(tmp_path, base, processors):
    written = write_catvton_checkpoint(base.pipeline.unet, tmp_path / "attention", processors)
    loaded = Inpainter.load(Settings(inpainter=str(INPAINTER), tryon_attention=str(tmp_path / "attention")))

    tryon_weights = dict(loaded.tryon_unet.named_parameters())
    assert written and all(torch.equal(tryon_weights[name], value) for name, value in written.items())
    # everything else, and the UNet `/inpaint` runs, is the checkpoint's own
    own = dict(base.pipeline.unet.named_parameters())
    assert all(torch.equal(p, own[name]) for name, p in tryon_weights.items() if name not in written)
    assert all(torch.equal(p, own[name]) for name, p in loaded.pipeline.unet.named_parameters())
    # no cross-attention in try-on: each returns what it was given, whatever the text; the inpainting
    # UNet's still reads the text
    hidden, first, second = cross_attention_outputs(loaded.tryon_unet)
    assert torch.equal(first, hidden) and torch.equal(second, hidden)
    hidden, first, second = cross_attention_outputs(loaded.pipeline.unet)
    assert not torch.equal(first, second)


def test_a_try_on_with_catvton_weights_differs_keeps_the_pixels_outside_the_mask_and_names_them(tmp_path, base, held_out):
    write_catvton_checkpoint(base.pipeline.unet, tmp_path / "attention", processors=True)
    loaded = Inpainter.load(Settings(inpainter=str(INPAINTER), tryon_attention=str(tmp_path / "attention")))
    plain, adapted = tryon(base, held_out, 0), tryon(loaded, held_out, 0)
    person, mask = held_out.persons[0], held_out.masks[0]
    for result in (plain, adapted):
        assert np.array_equal(np.asarray(result.image)[~mask], person[~mask])
    assert not np.array_equal(np.asarray(plain.image)[mask], np.asarray(adapted.image)[mask])
    assert adapted.model.startswith(base.name + "+") and adapted.model.endswith("/attention") and plain.model == base.name
    # the inpainting path is untouched by the try-on weights
    assert loaded.pipeline.unet is not loaded.tryon_unet


def test_a_try_on_vae_replaces_the_pipelines_for_try_on_only(base, held_out):
    same = Inpainter.load(Settings(inpainter=str(INPAINTER), tryon_vae=str(INPAINTER / "vae")))
    assert same.tryon_vae is not same.pipeline.vae
    assert np.array_equal(np.asarray(tryon(same, held_out, 1).image), np.asarray(tryon(base, held_out, 1).image))


def test_a_checkpoint_that_does_not_fit_is_refused_saying_what(tmp_path, base):
    from diffusers import UNet2DConditionModel

    config = dict(base.pipeline.unet.config)
    config["block_out_channels"] = [2 * c for c in config["block_out_channels"]]
    wider = UNet2DConditionModel.from_config(config)
    write_catvton_checkpoint(wider, tmp_path / "wider", processors=True)
    with pytest.raises(ModelNotFoundError, match="do not fit this UNet: .*has shape"):
        Inpainter.load(Settings(inpainter=str(INPAINTER), tryon_attention=str(tmp_path / "wider")))

    with pytest.raises(ModelNotFoundError, match="FASHION_TRYON_ATTENTION"):
        Inpainter.load(Settings(inpainter=str(INPAINTER), tryon_attention=str(tmp_path / "missing")))


def test_the_positions_follow_catvtons_module_list(base):
    """Position 0 is the first self-attention; with processor modules each self-attention takes one
    more position (its processor, registered last)."""
    unet = base.pipeline.unet
    with_processors, without = catvton.module_list_names(unet, True), catvton.module_list_names(unet, False)
    attentions = [name for name, _ in unet.named_modules() if name.endswith(".attn1")]
    assert with_processors[0] == without[0] == attentions[0]
    assert len(with_processors) == len(without) + len(attentions)
    assert [n for n in with_processors if n.endswith(".processor")] == [f"{a}.processor" for a in attentions]
    reference = copy.deepcopy(unet)
    reference.set_attn_processor({name: ModuleProcessor() for name in reference.attn_processors})
    assert with_processors == [name for name, _ in reference.named_modules() if "attn1" in name]
