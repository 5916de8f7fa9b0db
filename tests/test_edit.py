"""Instruction-based editing: the InstructPix2Pix pipeline shape, batching and seeding of the library on
the shipped fashion-mini editor, the held-out split of its training pairs, the edited description, and
`/edit` over real HTTP with the judge reading the stored edits."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from fashion_studio.editing import Editor, EditRequest, edited_description, group_by_shape, parse_instruction, working_size
from fashion_studio.errors import InvalidInputError
from fashion_studio.mini import MINI_DIR
from fashion_studio.mini.render import Spec, render
from fashion_studio.settings import Limits, Settings

EDITOR = MINI_DIR / "editor"
JUDGE = MINI_DIR / "judge"


@pytest.fixture(scope="module")
def editor() -> Editor:
    return Editor.load(Settings(editor=str(EDITOR), torch_threads=2))


@pytest.fixture(scope="module")
def judge():
    from fashion_studio.mini.judge import Judge

    return Judge.load(JUDGE)


def product(product_type: str = "dress", colour: str = "red", pattern: str = "plain") -> Image.Image:
    return render(Spec(product_type, colour, pattern))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


# --- the library ------------------------------------------------------------------------------------------


def test_the_shipped_editor_is_an_instruct_pix2pix_pipeline_with_8_input_channels(editor):
    unet = editor.pipeline.unet
    assert type(editor.pipeline).__name__ == "StableDiffusionInstructPix2PixPipeline"
    assert editor.in_channels == 8 and unet.conv_in.weight.shape[1] == 8
    assert unet.config.out_channels == editor.pipeline.vae.config.latent_channels == 4
    assert editor.native_size == (64, 64)
    # its own copies of the text encoder, tokenizer and VAE: a retrained generator leaves it working
    assert {p.name for p in EDITOR.iterdir()} >= {"unet", "vae", "text_encoder", "tokenizer", "scheduler", "model_index.json", "README.md"}
    card = (EDITOR / "README.md").read_text()
    assert "held-out" in card and "instruct-pix2pix" in card.lower()


def test_same_seed_same_edit_and_a_batched_item_equals_the_single_call(editor):
    source = product()
    one = editor(EditRequest(source, "make it blue", seed=7, steps=4))
    again = editor(EditRequest(source, "make it blue", seed=7, steps=4))
    other = editor(EditRequest(source, "make it blue", seed=8, steps=4))
    assert np.array_equal(pixels(one.image), pixels(again.image)) and one.seed == 7
    assert not np.array_equal(pixels(one.image), pixels(other.image))
    batch = [
        editor.prepare(EditRequest(source, "make it blue", seed=7, steps=4)),
        editor.prepare(EditRequest(product("cap", "green"), "add stripes", seed=3, steps=4)),
    ]
    results = editor.edit(batch)
    assert [r.seed for r in results] == [7, 3] and results[0].batch_images == 2
    assert np.abs(pixels(results[0].image) - pixels(one.image)).max() <= 3  # batched matmuls round differently, by a hair


def test_requests_batch_by_shape_and_one_call_refuses_two_shapes(editor):
    square, wide = product(), Image.new("RGB", (128, 64), "white")
    requests = [
        EditRequest(square, "make it blue", steps=4),
        EditRequest(wide, "make it blue", steps=4),
        EditRequest(square, "add dots", steps=4),
        EditRequest(square, "add dots", steps=6),
        EditRequest(square, "make it red", steps=4, guidance=2.0),
    ]
    prepared = [editor.prepare(r) for r in requests]
    assert prepared[1].image.size == (80, 48)  # scaled to the native area, aspect kept, multiples of 8
    assert group_by_shape(prepared) == [[0, 2], [1], [3], [4]]
    with pytest.raises(ValueError, match="one shape"):
        editor.edit([prepared[0], prepared[1]])


def test_working_size_keeps_small_images_and_scales_large_ones_to_the_native_area():
    assert working_size(64, 64, (64, 64)) == (64, 64)
    assert working_size(30, 30, (64, 64)) == (32, 32)
    assert working_size(512, 512, (64, 64)) == (64, 64)
    assert working_size(1024, 768, (512, 512)) == (592, 440)
    w, h = working_size(4000, 100, (512, 512))
    assert w * h <= 512 * 512 and w % 8 == 0 and h % 8 == 0


def test_an_instruction_over_its_limit_is_refused_naming_the_field():
    limits = Limits(max_instruction_chars=20)
    with pytest.raises(InvalidInputError) as error:
        EditRequest(product(), "make it a little more blue please", steps=4).check(limits)
    assert error.value.field == "instruction" and "20" in error.value.limit
    with pytest.raises(InvalidInputError) as error:
        EditRequest(product(), "make it blue", image_guidance=99.0).check(limits)
    assert error.value.field == "image_guidance"


def test_the_instruction_is_applied_to_the_description():
    assert parse_instruction("make it navy blue").colour == "navy"
    assert parse_instruction("make it blue instead of red").colour == "blue"
    assert parse_instruction("remove the stripes").pattern == "plain"
    assert parse_instruction("add polka dots").pattern == "dots"
    assert edited_description("a red dress", "make it blue") == "a blue dress"
    assert edited_description("a red striped dress", "give it dots") == "a red dotted dress"
    assert edited_description("a red dress with stripes", "make it plain") == "a red dress plain"
    assert edited_description("Product image of a dress", "make it green") == "Product image of a dress, in green"
    prompt = "Professional product photography of a dress, featuring red, placed on a clean white background"
    assert edited_description(prompt, "make it yellow") == prompt.replace("red", "yellow")
    assert edited_description(None, "make it blue") == "make it blue"
    assert edited_description("a red dress", "make it longer") == "a red dress, make it longer"


def test_no_training_pair_edits_into_or_shows_a_held_out_combination():
    """The editor's split, by code: no training edit goes into a held-out (type, target colour) or (type,
    target pattern) pair, and no training result shows one; the evaluation edits into exactly those."""
    from dataclasses import replace

    from fashion_studio.mini import editor as mini_editor
    from fashion_studio.mini.data import HELDOUT, TRAIN

    held = mini_editor.heldout_combinations()
    assert len(held) == 30 and {c[0] for c in held} == {"colour", "pattern"}
    assert {t for _, t, _ in held} == set(mini_editor.TYPE_NAMES)
    train = mini_editor.make_pairs(3000, 0, TRAIN)
    assert not {p.combination for p in train} & held
    assert not set().union(*(p.shown() for p in train)) & held
    assert all(replace(p.source, colour=p.target.colour, pattern=p.target.pattern) == p.target for p in train)  # one product, one edit
    heldout = mini_editor.make_pairs(60, 0, HELDOUT)
    assert {p.combination for p in heldout} == held
    with pytest.raises(ValueError, match="held-out"):
        mini_editor.check_disjoint([*train[:10], heldout[0]])


# --- /edit over real HTTP ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(shared_gateway):
    """The shared gateway on the shipped fashion-mini models (conftest.py)."""
    return shared_gateway


def post(server, path: str, body: dict, timeout: float = 180) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=timeout)


def stored(url: str) -> tuple[Image.Image, dict]:
    """A stored record by its local URL: the PNG and its metadata."""
    path = Path(url)
    return Image.open(path).convert("RGB"), json.loads(path.with_suffix(".json").read_text())


def test_a_generated_image_edited_by_id_shows_the_new_colour_and_links_its_source(server, judge):
    generated = post(server, "/generate", {"prompt": "a red dress", "seed": 11})
    assert generated.status_code == 200, generated.text
    source = generated.json()["images"][0]
    assert source["id"] and Path(source["url"]).stem == source["id"]
    assert judge.classify([stored(source["url"])[0]])[0].colour == "red"

    readings = []
    for seed in (0, 1, 2):
        reply = post(server, "/edit", {"image_id": source["id"], "instruction": "make it blue", "seed": seed})
        assert reply.status_code == 200, reply.text
        edit = reply.json()
        image, metadata = stored(edit["url"])
        assert edit["id"].startswith("edit-") and edit["source_image_id"] == source["id"] and edit["seed"] == seed
        assert metadata["source_image_id"] == source["id"] and metadata["instruction"] == "make it blue"
        assert metadata["edited_description"] == edit["edited_description"] == "a blue dress"
        assert metadata["clip_score"] == edit["clip_score"] > 0 and (edit["width"], edit["height"]) == image.size == (64, 64)
        readings.append(judge.classify([image])[0])
    assert [r.colour for r in readings] == ["blue"] * 3, readings
    assert [r.product_type for r in readings] == ["dress"] * 3, readings

    listed = httpx.get(f"{server.url}/images/{edit['id']}", timeout=30)
    assert listed.status_code == 200 and listed.headers["content-type"] == "image/png"
    metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert "fashion_edits_total" in metrics and "fashion_seconds_per_edit_bucket" in metrics


def test_an_image_sent_as_base64_is_edited(server, judge):
    buffer = io.BytesIO()
    product("t-shirt", "yellow").save(buffer, format="PNG")
    reply = post(server, "/edit", {"image": base64.b64encode(buffer.getvalue()).decode(), "instruction": "change the colour to green", "seed": 3})
    assert reply.status_code == 200, reply.text
    edit = reply.json()
    image, metadata = stored(edit["url"])
    assert edit["source_image_id"] is None and metadata["source_image_id"] is None
    assert edit["edited_description"] == "change the colour to green"
    verdict = judge.classify([image])[0]
    assert (verdict.colour, verdict.product_type) == ("green", "t-shirt"), verdict


def test_edit_refusals_name_the_field(server):
    unknown = post(server, "/edit", {"image_id": "gen-00000000ffff", "instruction": "make it blue"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "image_id", unknown.text
    not_an_image = post(server, "/edit", {"image": base64.b64encode(b"hello, not an image at all").decode(), "instruction": "make it blue"})
    assert not_an_image.status_code == 415 and not_an_image.json()["field"] == "image", not_an_image.text
    too_long = post(server, "/edit", {"image_id": "gen-00000000ffff", "instruction": "make it blue " * 20})
    assert too_long.status_code == 422 and too_long.json()["field"] == "instruction" and "120" in too_long.json()["limit"], too_long.text
    both = post(server, "/edit", {"instruction": "make it blue"})
    assert both.status_code == 422 and both.json()["field"] == "image", both.text
