"""Try-on and masked re-generation: the shipped fashion-mini inpainter (a 9-channel diffusers inpainting
UNet) on held-out figures and garments, read by the figure judge; every pixel outside the mask kept;
request checks that name the field; batches that change no answer; and `/inpaint` and `/tryon` over real
HTTP with masks given, clicked or by category, and every refusal."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from fashion_studio.errors import InvalidInputError
from fashion_studio.inpainting import Inpainter, InpaintRequest, TryOnRequest, mask_image
from fashion_studio.mini import MINI_DIR
from fashion_studio.mini import inpainter as mini_inpainter
from fashion_studio.mini.data import HELDOUT, TRAIN
from fashion_studio.mini.segmenter import sample_points
from fashion_studio.settings import Settings

LIMITS = Settings().limits
INPAINTER = MINI_DIR / "inpainter"
FIGURE_JUDGE = MINI_DIR / "figure-judge"


@pytest.fixture(scope="module")
def inpainter() -> Inpainter:
    return mini_inpainter.load_inpainter(INPAINTER)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> mini_inpainter.ExampleSet:
    """Held-out figures, each dressed in a garment of a held-out combination (rendered here)."""
    return mini_inpainter.example_set(tmp_path_factory.mktemp("examples"), 24, 0, HELDOUT, workers=1)


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array)


def tryon_request(data, i: int, **changes) -> TryOnRequest:
    return TryOnRequest(image(data.persons[i]), image(data.garments[i]), data.masks[i], seed=i, **changes).check(LIMITS)


# --- the library ------------------------------------------------------------------------------------------


def test_the_shipped_inpainter_is_a_diffusers_inpainting_pipeline_with_a_9_channel_unet(inpainter):
    from diffusers import StableDiffusionInpaintPipeline

    assert isinstance(inpainter.pipeline, StableDiffusionInpaintPipeline)
    assert inpainter.pipeline.unet.config.in_channels == 9 and inpainter.native_size == (64, 64)


def test_try_on_keeps_every_pixel_outside_the_mask_and_redraws_inside(inpainter, held_out):
    requests = [tryon_request(held_out, i) for i in range(4)]
    for request, result in zip(requests, inpainter.run(requests)):
        out, person = np.asarray(result.image), np.asarray(request.person)
        assert out.shape == person.shape
        assert np.array_equal(out[~request.mask], person[~request.mask])
        assert np.abs(out[request.mask].astype(int) - person[request.mask].astype(int)).mean() > 5
        assert result.changed_pixels == int(request.mask.sum())


def test_an_image_of_another_size_comes_back_at_its_size_with_its_pixels_outside_the_mask(inpainter, held_out):
    big = image(held_out.persons[0]).resize((96, 136), Image.Resampling.BICUBIC)
    mask = np.asarray(image(held_out.masks[0]).resize((96, 136), Image.Resampling.NEAREST))
    for request in (
        TryOnRequest(big, image(held_out.garments[0]), mask, seed=3).check(LIMITS),
        InpaintRequest(big, mask, held_out.captions[0], seed=3).check(LIMITS),
    ):
        (result,) = inpainter.run([request])
        assert result.image.size == (96, 136)
        assert np.array_equal(np.asarray(result.image)[~mask], np.asarray(big)[~mask])


@pytest.mark.skipif(not (FIGURE_JUDGE / "config.json").is_file(), reason="no figure judge in models/fashion-mini")
def test_held_out_try_ons_wear_the_garments_colour_where_the_unchanged_person_does_not(inpainter, held_out):
    from fashion_studio.mini.figure_judge import FigureJudge

    judge = FigureJudge.load(FIGURE_JUDGE)
    n = 16
    results = inpainter.run([tryon_request(held_out, i) for i in range(n)])
    read = judge.predict_arrays(np.stack([np.asarray(r.image) for r in results]), held_out.masks[:n])
    before = judge.predict_arrays(held_out.persons[:n], held_out.masks[:n])
    wanted = [e.garment.colour for e in held_out.examples[:n]]
    dressed = np.mean([a == b for a, b in zip(read["colour"], wanted)])
    unchanged = np.mean([a == b for a, b in zip(before["colour"], wanted)])
    # The full evaluation reads the colour on 65.5% of 200 try-ons (eval.json); a model at that level reads
    # 7 or more of 16 right with 98% probability. The person as it was wears the colour almost never.
    assert dressed >= 7 / 16 and dressed >= unchanged + 0.3, (dressed, unchanged, list(read["colour"]), wanted)


def test_a_batch_of_both_kinds_answers_each_as_alone(inpainter, held_out):
    requests = [tryon_request(held_out, 0), InpaintRequest(image(held_out.persons[1]), held_out.masks[1], held_out.captions[1], seed=1).check(LIMITS)]
    requests.append(tryon_request(held_out, 2))
    together = inpainter.run(requests)
    for request, result in zip(requests, together):
        (alone,) = inpainter.run([request])
        difference = np.abs(np.asarray(alone.image).astype(int) - np.asarray(result.image).astype(int))
        assert difference.max() <= 3, difference.max()
    assert [r.batch_images for r in together] == [2, 1, 2]


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda d: TryOnRequest(image(d.persons[0]), image(d.garments[0]), np.ones((32, 32), bool)), "mask"),
        (lambda d: TryOnRequest(image(d.persons[0]), image(d.garments[0]), np.zeros((64, 64), bool)), "mask"),
        (lambda d: InpaintRequest(image(d.persons[0]), d.masks[0], "   "), "prompt"),
        (lambda d: InpaintRequest(image(d.persons[0]), d.masks[0], "a red shirt", steps=0), "steps"),
        (lambda d: TryOnRequest(image(d.persons[0]), image(d.garments[0]), d.masks[0], guidance=99.0), "guidance"),
    ],
)
def test_a_request_that_does_not_fit_is_refused_naming_the_field(held_out, make, field):
    with pytest.raises(InvalidInputError) as caught:
        make(held_out).check(LIMITS)
    assert caught.value.field == field


def test_training_examples_hold_out_what_the_evaluation_measures():
    from fashion_studio.mini.split import combination, held_out_combinations

    held = set(held_out_combinations(0))
    training = mini_inpainter.make_examples(200, 0, TRAIN)
    assert 2 * len(training) <= mini_inpainter.check_training_examples(training, 0) <= 3 * len(training)
    evaluation = mini_inpainter.make_examples(60, 0, HELDOUT)
    assert all(combination(e.garment) in held for e in evaluation)
    assert all(any(combination(g) in held for g in e.person.garments().values()) for e in evaluation)
    assert all(e.category in e.person.garments() for e in training + evaluation)


def test_a_try_on_target_differs_from_the_person_only_inside_the_mask(held_out):
    for i in range(len(held_out.examples)):
        outside = ~held_out.masks[i]
        assert np.array_equal(held_out.targets[i][outside], held_out.persons[i][outside])


@pytest.mark.skipif(not (FIGURE_JUDGE / "config.json").is_file(), reason="no figure judge in models/fashion-mini")
def test_the_evaluation_records_both_directions_and_writes_the_card(tmp_path, monkeypatch):
    """`eval-mini --inpainter-only` at a small scale: the figures land in eval.json and the card."""
    import shutil

    models = tmp_path / "fashion-mini"
    for folder in ("inpainter", "figure-judge"):
        shutil.copytree(MINI_DIR / folder, models / folder)
    shutil.copy(MINI_DIR / "training.json", models / "training.json")
    results = mini_inpainter.evaluate(models, tmp_path / "work", 12, 0, workers=1)
    assert results["tryon"]["outside_mask_max_abs_difference"] == 0 == results["inpaint"]["outside_mask_max_abs_difference"]
    assert results["judge_on_exact_targets"]["colour"] >= 0.75  # 12 examples: 0.97 on the 200 of eval.json
    # the autoencoder's ceiling lies between what reading the old garment scores and the exact targets
    coded = results["judge_on_autoencoded_targets"]
    assert results["judge_on_unchanged_persons"]["colour"] < coded["colour"] <= results["judge_on_exact_targets"]["colour"]
    assert results["tryon"]["colour"] > results["judge_on_unchanged_persons"]["colour"]
    record = mini_inpainter.record_evaluation(models, results)
    assert json.loads((models / "eval.json").read_text())["inpainter"] == results
    assert record["targets_met"]["tryon_colour_accuracy"] == (results["tryon"]["colour"] >= 0.85)
    card = mini_inpainter.write_card(models).read_text()
    assert f"{results['tryon']['colour']:.3f}" in card and "CatVTON" in card and "autoencoder's ceiling" in card


# --- over HTTP ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(shared_gateway):
    """The shared gateway on the shipped fashion-mini models (conftest.py)."""
    return shared_gateway


def post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=180)


def decoded(b64_text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64_text))).convert("RGB"))


def stored(url: str) -> tuple[np.ndarray, dict]:
    path = Path(url)
    return np.asarray(Image.open(path).convert("RGB")), json.loads(path.with_suffix(".json").read_text())


def test_tryon_over_http_with_a_mask_given_clicked_or_by_category(server, held_out):
    i = next(k for k, e in enumerate(held_out.examples) if e.category == "upper")
    person, garment, truth = image(held_out.persons[i]), image(held_out.garments[i]), held_out.masks[i]
    points = sample_points(truth, 3, np.random.default_rng(0)).tolist()
    for extra, source in (({"mask": b64(mask_image(truth))}, "mask"), ({"points": points}, "points"), ({"category": "upper"}, "category")):
        reply = post(server, "/tryon", {"person": b64(person), "garment": b64(garment), "seed": 1, **extra})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["mask_source"] == source and (body["width"], body["height"]) == (64, 64)
        mask = decoded(body["mask"])[..., 0] > 127
        out, metadata = stored(body["url"])
        assert np.array_equal(out[~mask], held_out.persons[i][~mask]) and body["changed_pixels"] == int(mask.sum()) > 0
        assert metadata["kind"] == "tryon" and metadata["mask_source"] == source and metadata["models"]["inpainter"]
        if source == "mask":
            assert np.array_equal(mask, truth)
        else:
            assert (mask & truth).sum() / (mask | truth).sum() >= 0.6
    assert 'fashion_inpaints_total{kind="tryon"}' in httpx.get(f"{server.url}/metrics", timeout=30).text


def test_inpaint_over_http_redraws_the_mask_as_the_prompt_says_and_stores_it(server, held_out):
    person, truth = image(held_out.persons[0]), held_out.masks[0]
    reply = post(server, "/inpaint", {"image": b64(person), "mask": b64(mask_image(truth)), "prompt": held_out.captions[0], "seed": 2})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    out, metadata = stored(body["url"])
    assert np.array_equal(out[~truth], held_out.persons[0][~truth]) and not np.array_equal(out[truth], held_out.persons[0][truth])
    assert metadata["prompt"] == held_out.captions[0] and metadata["seed"] == body["seed"] == 2 and metadata["kind"] == "inpaint"
    again = post(server, "/tryon", {"person_image_id": body["id"], "garment": b64(image(held_out.garments[0])), "mask": b64(mask_image(truth))})
    assert again.status_code == 200 and again.json()["source_image_id"] == body["id"], again.text


NOT_AN_IMAGE = base64.b64encode(b"not an image, just words").decode()


@pytest.mark.parametrize(
    ("path", "changes", "status", "field"),
    [
        ("/tryon", {"mask": "small"}, 422, "mask"),
        ("/tryon", {"mask": "empty"}, 422, "mask"),
        ("/inpaint", {"mask": "small"}, 422, "mask"),
        ("/inpaint", {"mask": "empty"}, 422, "mask"),
        ("/tryon", {"garment": NOT_AN_IMAGE}, 415, "garment"),
        ("/tryon", {"person": NOT_AN_IMAGE}, 415, "person"),
        ("/inpaint", {"image": NOT_AN_IMAGE}, 415, "image"),
        ("/tryon", {"mask": None, "points": [[70, 10]]}, 422, "points[0]"),
        ("/inpaint", {"mask": None, "points": [[10, -3]]}, 422, "points[0]"),
        ("/tryon", {"category": "upper"}, 422, "category"),
        ("/tryon", {"mask": None}, 422, "mask"),
        ("/tryon", {"garment": None}, 422, "garment"),
        ("/tryon", {"garment_image_id": "gen-00000000ffff"}, 422, "garment"),
        ("/tryon", {"garment": None, "garment_image_id": "gen-00000000ffff"}, 404, "garment_image_id"),
        ("/inpaint", {"prompt": ""}, 422, "prompt"),
    ],
)
def test_refusals_name_the_field_and_the_server_keeps_serving(server, held_out, path, changes, status, field):
    masks = {"small": b64(mask_image(np.ones((32, 32), bool))), "empty": b64(mask_image(np.zeros((64, 64), bool)))}
    person = b64(image(held_out.persons[0]))
    body = {"mask": b64(mask_image(held_out.masks[0]))}
    body |= {"person": person, "garment": b64(image(held_out.garments[0]))} if path == "/tryon" else {"image": person, "prompt": "a woman in a red dress"}
    for key, value in changes.items():
        body[key] = masks.get(value, value) if key == "mask" and value is not None else value
    body = {k: v for k, v in body.items() if v is not None}
    reply = post(server, path, body)
    assert reply.status_code == status, reply.text
    assert reply.json()["field"].removeprefix("body.") == field, reply.text
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
