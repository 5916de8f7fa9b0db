"""fashion-mini's held-out combinations: the seeded rule covers every type, colour and pattern, and no
held-out (type, colour, pattern) occurs in a training item or caption of CLIP and the UNet; the "new"
zero-shot templates are no training caption; the seen and unseen evaluation sets are what they say."""

from __future__ import annotations

from collections import Counter

import pytest

from fashion_studio.mini.data import HELDOUT, TRAIN, UNSEEN, make_items
from fashion_studio.mini.evaluate import check_new_templates, template_prompts
from fashion_studio.mini.split import check_held_out, combination, held_out_combinations, named_combinations
from fashion_studio.mini.text import ZERO_SHOT_COMBO, ZERO_SHOT_TYPE
from fashion_studio.mini.vocab import COLOUR_NAMES, PATTERNS, TYPE_NAMES

HELD = held_out_combinations(0)


@pytest.fixture(scope="module")
def training_items():
    """The head of the shipped training stream (the data stage checks all 24,000)."""
    return make_items(1500, seed=0, split=TRAIN, exclude_combinations=HELD)


def test_the_rule_covers_every_type_colour_and_pattern_and_is_seeded():
    assert len(HELD) == len(set(HELD)) == len(COLOUR_NAMES) * len(PATTERNS)
    assert set(Counter(t for t, _, _ in HELD).values()) <= {4, 5} and {t for t, _, _ in HELD} == set(TYPE_NAMES)
    assert set(Counter(c for _, c, _ in HELD).values()) == {len(PATTERNS)}
    assert set(Counter(p for _, _, p in HELD).values()) == {len(COLOUR_NAMES)}
    assert len({(t, c) for t, c, _ in HELD}) == len(HELD)  # every held-out triple's type x colour pair is still trained
    assert held_out_combinations(0) == HELD and held_out_combinations(1) != HELD


def test_no_training_item_or_caption_names_a_held_out_combination(training_items):
    checked = check_held_out(training_items, HELD)
    assert checked["items"] == 1500 and checked["distinct_captions"] > 1500
    every = {combination(i.spec) for i in training_items}
    assert not every & set(HELD) and len(every) > 400  # the other 432 combinations are all there


def test_the_check_catches_a_held_out_item_and_a_caption_that_names_one(training_items):
    unseen = make_items(3, seed=0, split=UNSEEN, combinations=HELD)
    with pytest.raises(AssertionError, match="held-out combination"):
        check_held_out([*training_items[:20], unseen[0]], HELD)
    product, colour, pattern = next(c for c in HELD if c[2] == "stripes")
    assert named_combinations(f"a photo of a {colour} {product} with stripes") == {(product, colour, "stripes")}
    # a caption's stock "white background" names no colour of the product
    assert named_combinations("Product image of a dress, placed on a clean white background") == set()
    item = training_items[0]
    sneaky = type(item.captions[0])(f"{colour} striped {product}", item.spec.product_type, None, None)
    with pytest.raises(AssertionError, match="names held-out"):
        check_held_out([type(item)(item.spec, item.german, item.english, (*item.captions, sneaky))], HELD)


def test_held_out_sets_are_seen_and_unseen_combinations():
    seen = make_items(200, seed=0, split=HELDOUT, exclude_combinations=HELD)
    unseen = make_items(200, seed=0, split=UNSEEN, combinations=HELD)
    assert not {combination(i.spec) for i in seen} & set(HELD)
    assert {combination(i.spec) for i in unseen} <= set(HELD) and len({combination(i.spec) for i in unseen}) > 40


def test_new_zero_shot_templates_are_no_training_caption_and_the_training_ones_are(training_items):
    captions = {c.text for i in training_items for c in i.captions}
    shares = check_new_templates(captions)
    assert shares["new_templates_prompts_in_training_captions"] == 0.0
    assert shares["training_templates_prompts_in_training_captions"] > 0.5  # closed set with the training templates
    with pytest.raises(AssertionError, match="training caption"):
        check_new_templates(captions | {template_prompts(ZERO_SHOT_TYPE, ZERO_SHOT_COMBO)[0].replace("Product image of ", "photography of ")})


def test_the_documents_figures_are_the_records():
    """README.md and docs/fashion-mini.md carry the figures `eval-mini` wrote, not hand-typed ones."""
    from fashion_studio.mini import MINI_DIR
    from fashion_studio.mini.common import read_json
    from fashion_studio.mini.report import BLOCKS

    training, ev = read_json(MINI_DIR / "training.json"), read_json(MINI_DIR / "eval.json")
    if "split" not in ev:
        pytest.skip("the shipped weights predate the held-out split: eval.json has no seen/unseen figures to write yet")
    for path, blocks in BLOCKS.items():
        text = path.read_text(encoding="utf-8")
        for name, make in blocks.items():
            assert f"<!-- fashion-mini:{name} -->\n{make(training, ev).rstrip()}\n<!-- /fashion-mini:{name} -->" in text, (path, name)


def test_an_ended_unet_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """The UNet stage checkpoints its whole state, so a run ended part-way (the machine is shared) ends
    with the weights of an uninterrupted one: a few steps of batch 4 on the shipped text encoder."""
    import hashlib

    import numpy as np
    import torch

    from fashion_studio.mini import MINI_DIR, sd

    items = make_items(16, seed=0)
    noise = np.random.default_rng(1)
    latents = (noise.standard_normal((16, 4, 16, 16)).astype(np.float32), np.full((16, 4, 16, 16), 0.1, np.float32))
    text_encoder, tokenizer = sd.text_encoder_from_clip(MINI_DIR / "clip")

    def train(folder, **resume):
        unet, info = sd.train_unet(tmp_path / folder, items, latents, 0.86, text_encoder, tokenizer, 0, 6, 1e6, batch_size=4, **resume)
        return hashlib.sha256(b"".join(v.numpy().tobytes() for v in unet.state_dict().values())).hexdigest(), info

    whole, _ = train("whole")
    resume = {"checkpoint": tmp_path / "checkpoint", "checkpoint_key": {"run": 1}, "checkpoint_every": 2}
    calls, clip_grad = [], torch.nn.utils.clip_grad_norm_

    def ended_at_step_four(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return clip_grad(*args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", ended_at_step_four)  # the run is ended at step 4
    with pytest.raises(KeyboardInterrupt):
        train("ended", **resume)
    monkeypatch.undo()
    assert (tmp_path / "checkpoint" / "state.pt").is_file()
    again, info = train("ended", **resume)
    assert info["resumed_from_step"] == 4 and again == whole
    assert not (tmp_path / "checkpoint" / "state.pt").exists()


def test_a_loss_map_weighs_latent_pixels(tmp_path):
    """`loss_maps` weighs each latent pixel's denoising error in a weighted mean: a map of ones is the plain
    loss and a map's scale does not matter (the same weights, bit for bit), while an uneven map trains
    other weights."""
    import hashlib

    import numpy as np

    from fashion_studio.mini import MINI_DIR, sd

    items = make_items(8, seed=0)
    noise = np.random.default_rng(1)
    latents = (noise.standard_normal((8, 4, 16, 16)).astype(np.float32), np.full((8, 4, 16, 16), 0.1, np.float32))
    text_encoder, tokenizer = sd.text_encoder_from_clip(MINI_DIR / "clip")

    def train(folder, loss_maps=None):
        unet, _ = sd.train_unet(tmp_path / folder, items, latents, 0.86, text_encoder, tokenizer, 0, 3, 1e6, batch_size=4, loss_maps=loss_maps)
        return hashlib.sha256(b"".join(v.numpy().tobytes() for v in unet.state_dict().values())).hexdigest()

    plain = train("plain")
    assert train("ones", np.ones((8, 16, 16), np.float32)) == plain
    garment = np.ones((8, 16, 16), np.float32)
    garment[:, 4:12, 6:10] = 8.0
    weighted = train("garment", garment)
    assert weighted != plain
    assert train("garment-doubled", 2 * garment) == weighted  # exact: doubling is exact in floating point


def test_model_shots_weigh_garments_and_most_the_bottom():
    """The shots stage's UNet loss map: 1 on background and skin, the garment weight on a top, the bottom's
    weight on a bottom, fractions where a latent pixel is part garment."""
    import numpy as np

    from fashion_studio.mini.segmenter import MASK_TARGETS
    from fashion_studio.mini.shots import UNET_GARMENT_WEIGHT, UNET_LOWER_WEIGHT, garment_weights

    masks = np.zeros((1, len(MASK_TARGETS), 64, 64), bool)
    upper, lower, full = (MASK_TARGETS.index(name) for name in ("upper", "lower", "full"))
    masks[0, upper, 0:4, 0:4] = masks[0, full, 0:4, 0:4] = True  # latent pixel (0, 0): all top
    masks[0, lower, 4:8, 0:4] = masks[0, full, 4:8, 0:4] = True  # (1, 0): all bottom
    masks[0, lower, 4:6, 4:8] = masks[0, full, 4:6, 4:8] = True  # (1, 1): half bottom
    maps = garment_weights(masks, 16, UNET_GARMENT_WEIGHT, UNET_LOWER_WEIGHT)
    assert maps.shape == (1, 16, 16)
    assert maps[0, 0, 0] == UNET_GARMENT_WEIGHT and maps[0, 1, 0] == UNET_LOWER_WEIGHT
    assert maps[0, 1, 1] == 1 + (UNET_LOWER_WEIGHT - 1) / 2
    assert maps[0, 0, 1] == 1 and (maps[0, 2:] == 1).all()


def test_the_documents_intervals_are_wilson_intervals():
    """The 95% interval the documents give a missed target's share: Wilson's, which stays inside [0, 1] at
    the ends and narrows as the examples grow."""
    from fashion_studio.mini.report import interval

    low, high = interval(0.5, 100)
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)
    assert interval(0.0, 10)[0] == 0.0 and round(interval(0.0, 10)[1], 4) == 0.2775
    assert interval(1.0, 10)[1] == 1.0 and round(interval(1.0, 10)[0], 4) == 0.7225
    wide, narrow = interval(0.59, 176), interval(0.59, 600)
    assert wide[0] < narrow[0] < 0.59 < narrow[1] < wide[1]
    with pytest.raises(ValueError, match="n must be positive"):
        interval(0.5, 0)
