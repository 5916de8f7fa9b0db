from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_studio.errors import DeadlineExceededError, InvalidInputError, NotFoundError, RequestCancelledError
from fashion_studio.generation import GenerationRequest, Generator, group_by_shape
from fashion_studio.settings import Limits

FAMILIES = ["sd", "sdxl", "flux"]


@pytest.fixture(scope="module")
def generators(tiny_models):
    from fashion_studio.settings import Settings

    loaded = {}
    for family in FAMILIES:
        loaded[family] = Generator.load(Settings(generator=str(tiny_models[family])))
    return loaded


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_generates_the_asked_size_deterministically(generators, family):
    generator = generators[family]
    assert generator.family == family
    request = GenerationRequest(prompt="a red striped t-shirt", seed=7, steps=2, width=64, height=32)
    first = generator(request)
    assert [im.size for im in first.images] == [(64, 32)]
    assert first.seeds == [7]
    assert set(first.timings) == {"encode", "denoise", "decode", "total"}
    assert first.timings["encode"] > 0 and first.timings["decode"] > 0 and first.timings["denoise"] > 0
    again = generator(request)
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))
    other = generator(GenerationRequest(prompt="a red striped t-shirt", seed=8, steps=2, width=64, height=32))
    assert not np.array_equal(pixels(first.images[0]), pixels(other.images[0]))


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_call_item_equals_single_call(generators, family):
    generator = generators[family]
    requests = [
        GenerationRequest(prompt="a blue denim jacket", seed=11, steps=2, width=32, height=32),
        GenerationRequest(prompt="a green summer dress", seed=12, steps=2, width=32, height=32, num_images=2),
    ]
    batched = generator.generate(requests)
    assert [len(r.images) for r in batched] == [1, 2]
    assert batched[0].batch_images == 3
    assert batched[1].seeds == [12, 13]
    alone = generator(requests[0])
    diff = np.abs(pixels(batched[0].images[0]) - pixels(alone.images[0])).max()
    assert diff <= 1, f"batched item 0 differs from the single call by {diff}"


def test_guidance_and_negative_prompt_run_classifier_free_guidance(generators):
    generator = generators["sd"]
    plain = generator(GenerationRequest(prompt="a black hoodie", seed=3, steps=2, width=32, height=32, guidance=0.0))
    guided = generator(GenerationRequest(prompt="a black hoodie", negative_prompt="blurry", seed=3, steps=2, width=32, height=32, guidance=5.0))
    assert guided.images[0].size == (32, 32)
    assert not np.array_equal(pixels(plain.images[0]), pixels(guided.images[0]))


def test_one_call_refuses_mixed_shapes(generators):
    with pytest.raises(ValueError, match="one shape"):
        generators["sd"].generate([GenerationRequest(prompt="a", width=32, height=32), GenerationRequest(prompt="a", width=64, height=32)])


def test_group_by_shape_keeps_order():
    requests = [
        GenerationRequest(prompt="a", width=32, height=32),
        GenerationRequest(prompt="b", width=64, height=32),
        GenerationRequest(prompt="c", width=32, height=32),
    ]
    assert group_by_shape(requests) == [[0, 2], [1]]


@pytest.mark.parametrize(
    ("changes", "field", "limit_text"),
    [
        ({"width": 60}, "width", "multiple of 8"),
        ({"height": 4}, "height", "[8, 2048]"),
        ({"steps": 0}, "steps", "[1, 100]"),
        ({"steps": 1000}, "steps", "[1, 100]"),
        ({"prompt": ""}, "prompt", "must not be empty"),
        ({"prompt": "   "}, "prompt", "must not be empty"),
        ({"prompt": "x" * 100_000}, "prompt", "at most 2000 characters"),
        ({"num_images": 5}, "num_images", "[1, 4]"),
        ({"guidance": -1.0}, "guidance", "[0, 30.0]"),
        ({"seed": -5}, "seed", "[0, 4294967295]"),
        ({"prompt": "a\x00b"}, "prompt", "control characters"),
    ],
)
def test_bad_input_names_field_value_and_limit(changes, field, limit_text):
    request = GenerationRequest(**{"prompt": "a dress", **changes})
    with pytest.raises(InvalidInputError) as info:
        request.check(Limits())
    error = info.value
    assert error.field == field
    assert limit_text in error.limit
    assert field in str(error) and limit_text in str(error)
    assert error.to_dict()["field"] == field
    if field == "prompt" and changes["prompt"].startswith("xxx"):
        assert "100000 chars" in str(error)  # the value is summarised, not echoed whole


def test_deadline_stops_generation_before_the_decode(generators):
    import time

    from fashion_studio.errors import DeadlineExceededError

    generator = generators["sd"]
    with pytest.raises(DeadlineExceededError, match="waited"):
        generator.generate([GenerationRequest(prompt="a coat", steps=2, width=32, height=32)], deadline=time.time() - 1)
    start = time.time()
    with pytest.raises(DeadlineExceededError, match=r"after step \d+ of 900") as info:
        generator.generate([GenerationRequest(prompt="a coat", steps=900, width=32, height=32)], deadline=start + 0.5)
    assert int(str(info.value).split("after step ")[1].split()[0]) < 900
    assert generator._clock.decode == 0.0  # stopped before the decode
    assert generator(GenerationRequest(prompt="a coat", steps=2, width=32, height=32)).images[0].size == (32, 32)


def test_one_request_travels_from_the_wire_to_the_library_with_the_settings_defaults():
    """The public body becomes the library's request (its defaults the settings'); that request crosses
    to the generator as it is, beside the gateway's envelope."""
    from fashion_studio.settings import get_settings
    from services.api import GenerateRequest
    from services.schemas import GenerateWork

    defaults = get_settings()
    request = GenerateRequest(prompt="a red dress", rank_by_popularity=True).to_request()
    assert request == GenerationRequest(prompt="a red dress")
    assert (request.steps, request.guidance, request.width, request.height) == (
        defaults.default_steps,
        defaults.default_guidance,
        defaults.default_width,
        defaults.default_height,
    )
    schema = GenerateRequest.model_json_schema()["properties"]
    assert (schema["steps"]["default"], schema["steps"]["maximum"]) == (defaults.default_steps, defaults.limits.max_steps)
    work = GenerateWork(request=GenerationRequest(prompt="a coat", seed=3, steps=2, lora=["shop"]), deadline=12.5, request_id="r-1")
    assert GenerateWork.model_validate_json(work.model_dump_json()) == work
    assert GenerateWork.model_validate_json(work.model_dump_json()).request.lora == ("shop",)  # hashable, a batching key


@pytest.mark.parametrize(
    "error",
    [
        InvalidInputError("steps", 900, "must be an integer in [1, 100]"),
        NotFoundError("image_id", "gen-0", "must name a stored image"),
        DeadlineExceededError("generation stopped at its deadline"),
        RequestCancelledError("request r-1 was cancelled"),
        RuntimeError("CUDA error"),
    ],
)
def test_an_item_error_crosses_the_wire_typed_and_maps_back_to_its_kind(error):
    from services.model_client import raise_item_error
    from services.schemas import GenerateOutput, ItemError

    output = GenerateOutput.model_validate_json(GenerateOutput(error=ItemError.of(error)).model_dump_json())
    with pytest.raises(Exception) as raised:
        raise_item_error(output)
    assert type(raised.value) is type(error)
    if isinstance(error, InvalidInputError):
        assert (raised.value.field, raised.value.value, raised.value.limit) == (error.field, error.value, error.limit)
    assert str(error) in str(raised.value)
    assert raise_item_error(GenerateOutput()) is None


def test_an_image_from_the_wire_is_stored_as_the_png_it_came_as(tmp_path):
    from fashion_studio.images import image_from_png, png_of
    from fashion_studio.storage import Storage

    buffer = io.BytesIO()
    Image.new("RGB", (16, 8), (200, 30, 30)).save(buffer, format="PNG", compress_level=1)
    sent = buffer.getvalue()
    image = image_from_png(sent)
    assert png_of(image) is sent  # no second encode on the way to the scorer
    stored = Storage(str(tmp_path)).put("k", image, {})
    assert Path(stored.image_url).read_bytes() == sent
