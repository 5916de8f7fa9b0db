"""The zigzag demonstration in small form: the shipped adapter (`make lora-demo` trained it on rendered
zigzag products) draws the pattern fashion-mini never saw, for prompts whose product type and colour
pair no training caption named, and the base model does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from fashion_studio.lora import demo

ADAPTER = demo.ADAPTER_DIR


@pytest.fixture(scope="module")
def detector():
    from fashion_studio import models
    from fashion_studio.settings import Settings

    settings = Settings(generator=demo.BASE_MODEL)
    detector, validation = demo.fit_detector(per_class=160, vae_folder=Path(models.resolve("generator", settings.generator, settings).path))
    # Validated on fresh renders before it judges anything generated.
    assert validation["detected_share"]["zigzag"] >= 0.95, validation
    assert max(validation["detected_share"][p] for p in ("plain", "stripes", "dots", "checks")) <= 0.05, validation
    return detector


def test_held_out_pairs_never_occur_in_a_training_caption():
    captions = [caption for _, caption in demo.training_plan(demo.DemoConfig())]
    held = demo.check_held_out(captions)
    assert len(held) == 20 and len(set(held)) == 20
    assert all(f"{colour} zigzag {product}" not in captions for product, colour in held)
    with pytest.raises(AssertionError, match="held-out"):
        demo.check_held_out([f"a photo of a {held[0][1]} {held[0][0]} with zigzags"])


def test_the_adapter_draws_the_new_pattern_on_held_out_prompts_and_the_base_model_does_not(detector):
    assert (ADAPTER / "pytorch_lora_weights.safetensors").is_file(), "the shipped adapter is missing: run `make lora-demo`"
    generator = demo.load_generator(ADAPTER)
    results = demo.measure(generator, detector, prompts_per_pair=1, steps=20, guidance=4.0)
    shares = results["detected_share"]
    assert results["prompts"]["held_out"] == 20
    assert shares["with_adapter"] >= 0.8, shares
    assert shares["without_adapter"] <= 0.1, shares
