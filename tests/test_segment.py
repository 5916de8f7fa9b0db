"""Garment masks: the shipped fashion-mini segmenter (a transformers SamModel and a SegFormer clothes
parser) on held-out figures, request checks that name the field, batching that changes no answer, and
`/segment` over real HTTP with every refusal."""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from fashion_studio.errors import InvalidInputError
from fashion_studio.mini import MINI_DIR
from fashion_studio.mini.data import HELDOUT
from fashion_studio.mini.figures import render_figure
from fashion_studio.mini.segmenter import check_training_figures, iou, make_figures, sample_points
from fashion_studio.segmentation import MAX_POINTS, Segmenter, SegmentRequest

SEGMENTER = MINI_DIR / "segmenter"


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return Segmenter.load(SEGMENTER)


@pytest.fixture(scope="module")
def figures():
    """Held-out figures (each wears a held-out combination) with their exact masks."""
    return [render_figure(spec) for spec in make_figures(12, 0, HELDOUT)]


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def garments(figures):
    return [(f, category) for f in figures for category in f.spec.garments()]


# --- the library ------------------------------------------------------------------------------------------


def test_the_shipped_segmenter_is_a_transformers_sam_with_a_segformer_parser(segmenter):
    from transformers import SamModel, SegformerForSemanticSegmentation

    assert isinstance(segmenter.sam, SamModel) and isinstance(segmenter.parser, SegformerForSemanticSegmentation)
    assert {"Upper-clothes", "Skirt", "Pants", "Dress"} <= set(segmenter.parser.config.id2label.values())


def test_three_clicks_on_a_held_out_garment_give_its_mask(segmenter, figures):
    rng = np.random.default_rng(0)
    scores = []
    for figure, category in garments(figures):
        truth = figure.masks[category]
        points = sample_points(truth, 3, rng)
        masks = segmenter.from_points(figure.image, points.tolist(), [1, 1, 1])
        assert len(masks) == 1 and masks[0].mask.shape == truth.shape and 0 <= masks[0].score <= 1.5
        scores.append(iou(masks[0].mask, truth))
    assert np.mean(scores) >= 0.8, scores


def test_one_click_answers_three_candidates_best_first_and_a_box_one(segmenter, figures):
    figure = figures[0]
    category = next(iter(figure.spec.garments()))
    point = sample_points(figure.masks[category], 1, np.random.default_rng(1))
    masks = segmenter.from_points(figure.image, point.tolist(), [1])
    assert len(masks) == 3 and [m.score for m in masks] == sorted((m.score for m in masks), reverse=True)
    ys, xs = np.nonzero(figure.masks[category])
    (boxed,) = segmenter.from_box(figure.image, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    assert iou(boxed.mask, figure.masks[category]) >= 0.7


def test_masks_come_back_at_the_size_of_the_image_sent(segmenter, figures):
    figure = figures[1]
    category = next(iter(figure.spec.garments()))
    big = figure.image.resize((256, 256), Image.Resampling.NEAREST)
    points = sample_points(figure.masks[category], 3, np.random.default_rng(2)) * 4
    (mask,) = segmenter.from_points(big, points.tolist(), [1, 1, 1])
    assert mask.mask.shape == (256, 256)
    truth = np.asarray(Image.fromarray(figure.masks[category]).resize((256, 256), Image.Resampling.NEAREST))
    assert iou(mask.mask, truth) >= 0.7


def test_the_parser_masks_a_category_without_clicks(segmenter, figures):
    scores = {"upper": [], "lower": [], "full": []}
    for figure in figures:
        wanted = ["full", *figure.spec.garments()] if figure.spec.bottom is not None else ["full"]
        found = segmenter.by_category(figure.image, wanted)
        for category in wanted:
            scores[category].append(iou(found[category], figure.masks[category]))
    assert all(np.mean(v) >= 0.75 for v in scores.values() if v), scores


def test_a_batch_of_mixed_prompts_answers_each_as_alone(segmenter, figures):
    rng = np.random.default_rng(3)
    requests = []
    for figure, category in garments(figures[:3]):
        points = sample_points(figure.masks[category], 2, rng)
        requests.append(SegmentRequest(figure.image, tuple(map(tuple, points.tolist())), (1, 1)).check())
        requests.append(SegmentRequest(figure.image, category="full").check())
    requests.append(SegmentRequest(figures[0].image, ((20.5, 30.5),), (1,)).check())
    together = segmenter.segment(requests)
    for request, result in zip(requests, together):
        (alone,) = segmenter.segment([request])
        assert len(result.masks) == len(alone.masks)
        for a, b in zip(result.masks, alone.masks):
            assert (a.mask != b.mask).mean() <= 0.002 and abs(a.score - b.score) < 1e-3


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({}, "points", "points"),
        ({"points": ((64.0, 3.0),), "labels": (1,)}, "points[0]", "inside the 64x64 image"),
        ({"points": ((3.0, -1.0),), "labels": (1,)}, "points[0]", "0 <= y < 64"),
        ({"points": ((3.0, 3.0), (4.0, 4.0)), "labels": (1,)}, "labels", "one label per point"),
        ({"points": ((3.0, 3.0),), "labels": (2,)}, "labels[0]", "1 (foreground) or 0"),
        ({"points": ((3.0, 3.0),), "labels": (0,)}, "labels", "foreground"),
        ({"points": ((1.0, 1.0),) * (MAX_POINTS + 1), "labels": (1,) * (MAX_POINTS + 1)}, "points", f"at most {MAX_POINTS}"),
        ({"box": (10.0, 10.0, 5.0, 20.0)}, "box", "x0 < x1"),
        ({"box": (0.0, 0.0, 65.0, 20.0)}, "box", "<= 64"),
        ({"category": "shoes"}, "category", "upper"),
        ({"category": "upper", "points": ((3.0, 3.0),), "labels": (1,)}, "category", "no points or box"),
    ],
)
def test_a_prompt_that_does_not_fit_its_image_is_refused_naming_the_field(changes, field, words):
    with pytest.raises(InvalidInputError) as refused:
        SegmentRequest(Image.new("RGB", (64, 64)), **changes).check()
    assert refused.value.field == field and words in refused.value.limit, refused.value


def test_no_training_figure_wears_a_held_out_combination_and_every_evaluation_figure_does():
    from fashion_studio.mini.data import TRAIN
    from fashion_studio.mini.split import combination, held_out_combinations

    held = set(held_out_combinations(0))
    training = make_figures(300, 0, TRAIN)
    assert check_training_figures(training, 0) >= 300 * 2 - 150
    assert all(any(combination(g) in held for g in spec.garments().values()) for spec in make_figures(50, 0, HELDOUT))


# --- over HTTP ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(shared_gateway):
    """The shared gateway on the shipped fashion-mini models (conftest.py)."""
    return shared_gateway


def post(server, body: dict) -> httpx.Response:
    # encoded here, not by httpx: a client may send NaN and Infinity, which Python's JSON reads
    return httpx.post(f"{server.url}/segment", content=json.dumps(body), headers={"content-type": "application/json"}, timeout=120)


def mask_of(answer: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["png_b64"])))) > 127


def test_segment_over_http_from_points_a_box_and_a_category(server, figures):
    figure = next(f for f in figures if f.spec.bottom is not None)
    truth = figure.masks["upper"]
    points = sample_points(truth, 3, np.random.default_rng(4)).tolist()
    reply = post(server, {"image": b64(figure.image), "points": points, "labels": [1, 1, 1]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["width"], body["height"], body["prompt"], body["image_id"]) == (64, 64, "points", None)
    (answer,) = body["masks"]
    assert iou(mask_of(answer), truth) >= 0.7 and answer["area"] == int(mask_of(answer).sum())

    one = post(server, {"image": b64(figure.image), "points": points[:1]}).json()
    assert len(one["masks"]) == 3 and [m["score"] for m in one["masks"]] == sorted((m["score"] for m in one["masks"]), reverse=True)

    ys, xs = np.nonzero(truth)
    boxed = post(server, {"image": b64(figure.image), "box": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]}).json()
    assert boxed["prompt"] == "box" and iou(mask_of(boxed["masks"][0]), truth) >= 0.6

    parsed = post(server, {"image": b64(figure.image), "category": "lower"}).json()
    assert parsed["prompt"] == "category" and iou(mask_of(parsed["masks"][0]), figure.masks["lower"]) >= 0.6

    metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert 'fashion_segmentations_total{prompt="points"}' in metrics and 'fashion_segmentations_total{prompt="category"}' in metrics


def test_a_stored_image_is_segmented_by_its_id(server):
    generated = httpx.post(f"{server.url}/generate", json={"prompt": "a red dress", "seed": 5}, timeout=120)
    assert generated.status_code == 200, generated.text
    image_id = generated.json()["images"][0]["id"]
    reply = post(server, {"image_id": image_id, "points": [[32, 32]], "multimask": False})
    assert reply.status_code == 200, reply.text
    assert reply.json()["image_id"] == image_id and len(reply.json()["masks"]) == 1


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"points": [[70, 10]]}, 422, "points[0]"),
        ({"points": [[10, 10], [20, 20]], "labels": [1]}, 422, "labels"),
        ({"box": [10, 10, 80, 30]}, 422, "box"),
        ({"category": "shoes"}, 422, "category"),
        ({}, 422, "points"),
        ({"image_id": "gen-00000000ffff", "points": [[1, 1]]}, 404, "image_id"),
        ({"image": base64.b64encode(b"not an image, just words").decode(), "points": [[1, 1]]}, 415, "image"),
        ({"points": [[float("nan"), 10]]}, 422, "points.0.0"),
        ({"box": [0, 0, float("inf"), 10]}, 422, "box.2"),
        ({"image": b64(Image.new("RGB", (1, 1))), "points": [[0, 0]]}, 422, "image"),
        ({"image": b64(Image.new("RGB", (400, 20))), "points": [[1, 1]]}, 422, "image"),
    ],
)
def test_segment_refusals_name_the_field_and_the_server_keeps_serving(server, figures, body, status, field):
    if "image" not in body and "image_id" not in body:
        body = {"image": b64(figures[0].image), **body}
    reply = post(server, body)
    assert reply.status_code == status, reply.text
    assert reply.json()["field"].removeprefix("body.") == field, reply.text
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200


def test_the_evaluation_holds_out_what_it_says_and_writes_the_card(tmp_path):
    """`eval-mini --segmenter-only` at a small scale: SAM beats the colour-threshold baseline from the same
    clicks on held-out figures, and the figures land in eval.json and the card."""
    import shutil

    from fashion_studio.mini import segmenter as mini_segmenter

    models = tmp_path / "fashion-mini"
    shutil.copytree(SEGMENTER, models / "segmenter")
    shutil.copy(MINI_DIR / "training.json", models / "training.json")
    results = mini_segmenter.evaluate(models, tmp_path / "work", 24, 0, workers=1, baseline_figures=40)
    assert results["figures"] == 24 and results["garments"] >= 24 and results["points"] == 3
    assert results["sam_mean_iou"] > results["baseline"]["mean_iou"] + 0.1, results
    assert set(results["parser_mean_iou"]) <= {"upper", "lower", "full"} and "full" in results["parser_mean_iou"]
    record = mini_segmenter.record_evaluation(models, results)
    assert json.loads((models / "eval.json").read_text())["segmenter"] == results
    assert record["targets_met"]["segmentation_mean_iou"] == (results["sam_mean_iou"] >= 0.85)
    card = mini_segmenter.write_card(models).read_text()
    assert f"{results['sam_mean_iou']:.3f}" in card and "facebook/sam-vit-base" in card
