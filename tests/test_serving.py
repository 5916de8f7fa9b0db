"""The BentoML services over real HTTP on 127.0.0.1, with the small models."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import json
import re
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.helpers import Server, serving, status_of, wait_until

MAX_CONCURRENCY = 12
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    """The gateway with its model services; the scorer's folder appears only after start-up."""
    root = tmp_path_factory.mktemp("serving")
    late_clip = root / "clip-late"
    env = {
        "FASHION_GENERATOR": str(tiny_models["sd"]),
        "FASHION_TRANSLATOR": str(tiny_models["marian"]),
        "FASHION_SCORER": str(late_clip),
        "FASHION_MODEL_WAIT_S": "300",
        "FASHION_STORAGE_URL": str(root / "store"),
        "FASHION_DEFAULT_STEPS": "2",
        "FASHION_DEFAULT_WIDTH": "32",
        "FASHION_DEFAULT_HEIGHT": "32",
        "FASHION_DEFAULT_GUIDANCE": "0",
        "FASHION_BATCHING__MAX_CONCURRENCY": str(MAX_CONCURRENCY),
        "FASHION_BATCHING__QUEUE_WAIT_S": "60",
        "FASHION_BATCHING__TIMEOUT_S": str(TIMEOUT_S),
        "FASHION_BATCHING__MAX_LATENCY_MS": "30000",
        "FASHION_LIMITS__MAX_BODY_BYTES": "200000",
    }
    served = Server("services.gateway:Studio", env, root / "server.log")
    try:
        served.wait_ready(timeout=180, path="/livez")
        served.not_ready_status = status_of(f"{served.url}/readyz")
        # The scorer waits for its model folder: put it in place in one rename, as a volume would appear.
        staging = root / "staging"
        shutil.copytree(tiny_models["clip"], staging)
        staging.rename(late_clip)
        served.wait_ready(timeout=180)
        yield served
    finally:
        served.stop()


def post(server, path: str, body: dict, timeout: float = 120) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=timeout)


def decode_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def metric_values(server, name: str) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    values = {}
    for line in text.splitlines():
        if line.startswith(name):
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    return values


def test_readyz_is_503_until_every_model_is_loaded(server):
    assert server.not_ready_status == 503
    assert status_of(f"{server.url}/readyz") == 200
    assert status_of(f"{server.url}/livez") == 200


def test_generate_returns_stored_images_of_the_asked_size(server):
    response = post(server, "/generate", {"prompt": "a red striped women's dress", "num_images": 2, "seed": 42, "width": 64, "height": 32})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [im["seed"] for im in body["images"]] == [42, 43]
    assert body["model"].endswith("sd")
    assert {"encode", "denoise", "decode", "score"} <= set(body["timings"]), "the generator's process did not score its images"
    for image in body["images"]:
        assert (image["width"], image["height"]) == (64, 32)
        assert Image.open(image["url"]).size == (64, 32)
        # the score the generator's process gave is the scorer service's for the stored PNG and the prompt
        scored = post(server, "/score", {"image": base64.b64encode(Path(image["url"]).read_bytes()).decode(), "text": "a red striped women's dress"})
        assert scored.status_code == 200, scored.text
        assert image["clip_score"] == pytest.approx(scored.json()["clip_score"], abs=1e-3)
        record = json.loads(Path(image["url"]).with_suffix(".json").read_text())
        assert record["seed"] == image["seed"]
        assert record["clip_score"] == image["clip_score"]
        assert record["generation_prompt"] == "a red striped women's dress"
        assert record["image_path"] == image["url"]


def test_generate_image_returns_one_png(server):
    response = post(server, "/generate_image", {"prompt": "a navy hoodie", "seed": 3, "width": 48, "height": 40})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-seed"] == "3"
    assert decode_png(response.content).size == (48, 40)


def test_catalog_stores_png_and_metadata_matching_the_response(server):
    description = "Jungen-T-Shirt mit Dino-Frontaufdruck. Die angesagte Melange-Optik in Grau macht den Look perfekt."
    response = post(server, "/catalog", {"article_id": "SKU-77", "description": description, "language": "de"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["attributes"]["product_type"] == "t-shirt" and body["attributes"]["target_group"] == "boys"
    assert "t-shirt" in body["generation_prompt"].lower() and "dino" in body["generation_prompt"].lower()
    assert 1 <= len(body["attempts"]) <= 3
    record = json.loads(Path(body["metadata_url"]).read_text())
    for key in ("generation_prompt", "clip_prompt", "clip_score", "passed", "seed", "translation"):
        assert record[key] == body[key], key
    assert record["sample_id"] == "SKU-77" and record["original_description"] == description
    assert record["image_path"] == body["url"]
    assert Image.open(body["url"]).size == (32, 32)


def test_translate_and_score(server):
    response = post(server, "/translate", {"texts": ["Damen-T-Shirt aus Baumwolle", "Herrenhemd in Blau"]})
    assert response.status_code == 200, response.text
    translations = response.json()["translations"]
    assert len(translations) == 2 and all(isinstance(t, str) for t in translations)

    image = post(server, "/generate_image", {"prompt": "a blue shirt", "seed": 1}).content
    response = post(server, "/score", {"image": base64.b64encode(image).decode(), "text": "a blue shirt"})
    assert response.status_code == 200, response.text
    assert 0.0 <= response.json()["clip_score"] <= 100.0


def generate_concurrently(server, bodies: list[dict]) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda b: post(server, "/generate_image", b), bodies))


def test_concurrent_calls_of_one_shape_are_batched_and_match_single_calls(server):
    bodies = [{"prompt": f"a green summer dress number {i}", "seed": 100 + i, "steps": 4, "width": 64, "height": 64} for i in range(8)]
    before = metric_values(server, 'fashion_batch_size_sum{method="generate"}'), metric_values(server, 'fashion_batch_size_count{method="generate"}')
    responses = generate_concurrently(server, bodies)
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    after = metric_values(server, 'fashion_batch_size_sum{method="generate"}'), metric_values(server, 'fashion_batch_size_count{method="generate"}')
    items = sum(after[0].values()) - sum(before[0].values())
    calls = sum(after[1].values()) - sum(before[1].values())
    assert items == 8 and calls < 8, f"8 requests ran in {calls} pipeline calls"
    for body, response in zip(bodies, responses):
        alone = post(server, "/generate_image", body)
        difference = np.abs(np.asarray(decode_png(response.content), np.int16) - np.asarray(decode_png(alone.content), np.int16)).max()
        assert difference <= 1, f"seed {body['seed']}: batched image differs from the single call by {difference}"


def test_calls_of_two_shapes_never_share_a_batch(server):
    bodies = [{"prompt": f"item {i}", "seed": i, "steps": 4, "width": 64 if i % 2 else 32, "height": 32} for i in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda b: post(server, "/generate", b), bodies))
    assert all(r.status_code == 200 for r in responses)
    for body, response in zip(bodies, responses):
        data = response.json()
        assert data["images"][0]["width"] == body["width"]
        assert data["timings"]["batch_items"] <= 4, "a pipeline call mixed two shapes"


def test_invalid_input_is_422_naming_field_value_and_limit(server):
    cases = [
        ({"prompt": "a dress", "steps": 1000}, "steps", 1000, "less than or equal to 100"),
        ({"prompt": "a dress", "width": 60}, "width", 60, "multiple of 8"),
        ({"prompt": ""}, "prompt", "", "at least 1 character"),
        ({"prompt": "a dress", "num_images": 9}, "num_images", 9, "less than or equal to 4"),
    ]
    for body, field, value, limit in cases:
        response = post(server, "/generate", body)
        assert response.status_code == 422, (body, response.text)
        error = response.json()
        assert (error["field"], error["value"]) == (field, value) and limit in error["limit"], error
    response = post(server, "/catalog", {"article_id": "x", "description": "Kleid", "language": "fr"})
    assert response.status_code == 422 and response.json()["field"] == "language"


def test_oversized_body_is_413(server):
    response = post(server, "/generate", {"prompt": "x" * 300_000})
    assert response.status_code == 413, response.text
    assert response.json()["field"] == "body" and "200000" in response.json()["limit"]


def test_unsupported_image_type_is_415_and_pixel_bomb_is_413(server):
    gif = base64.b64encode(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").decode()
    response = post(server, "/score", {"image": gif, "text": "a dress"})
    assert response.status_code == 415 and response.json()["field"] == "image"
    buffer = io.BytesIO()
    Image.new("1", (5000, 5000)).save(buffer, format="PNG")  # 25 Mpx in a few kB
    response = post(server, "/score", {"image": base64.b64encode(buffer.getvalue()).decode(), "text": "a dress"})
    assert response.status_code == 413 and "5000x5000" in response.json()["value"]


def test_beyond_max_concurrency_and_the_queue_is_429_with_retry_after(server):
    """Slots for MAX_CONCURRENCY and as many waiting for them: of four times that at once, at least
    the last quarter is shed, naming the limits."""
    body = {"prompt": "a heavy coat", "steps": 4, "width": 64, "height": 64}
    with concurrent.futures.ThreadPoolExecutor(4 * MAX_CONCURRENCY) as pool:
        responses = list(pool.map(lambda _: post(server, "/generate_image", body), range(4 * MAX_CONCURRENCY)))
    codes = [r.status_code for r in responses]
    assert codes.count(429) >= MAX_CONCURRENCY and set(codes) <= {200, 429}, codes
    rejected = next(r for r in responses if r.status_code == 429)
    assert int(rejected.headers["retry-after"]) >= 1
    assert rejected.json()["field"] == "concurrency"
    assert f"at most {MAX_CONCURRENCY} requests in flight and {MAX_CONCURRENCY} waiting" in rejected.json()["limit"]
    assert status_of(f"{server.url}/readyz") == 200


def test_a_burst_the_queue_holds_is_served_whole(server):
    """Twice MAX_CONCURRENCY at once: half take the slots, half wait for them, none is shed; the
    queue empties."""
    body = {"prompt": "a queued scarf", "steps": 4, "width": 64, "height": 64}
    with concurrent.futures.ThreadPoolExecutor(2 * MAX_CONCURRENCY) as pool:
        codes = [r.status_code for r in pool.map(lambda _: post(server, "/generate_image", body), range(2 * MAX_CONCURRENCY))]
    assert codes == [200] * len(codes), codes
    metrics_text = httpx.get(f"{server.url}/metrics", timeout=30).text
    queued = [line for line in metrics_text.splitlines() if line.startswith('fashion_queued_requests{service="studio"}')]
    assert queued and all(float(line.rsplit(" ", 1)[1]) == 0 for line in queued), queued


def test_clients_at_capacity_sending_back_to_back_are_never_shed(server):
    """A request's slot is free by the time its client has the answer: as many clients as the
    capacity, each sending its next request the moment it has an answer, are all served."""

    def client(index: int) -> list[int]:
        with httpx.Client(timeout=120) as http:
            return [http.post(f"{server.url}/generate_image", json={"prompt": f"a scarf {index}", "seed": i, "steps": 1}).status_code for i in range(4)]

    with concurrent.futures.ThreadPoolExecutor(MAX_CONCURRENCY) as pool:
        codes = [code for codes in pool.map(client, range(MAX_CONCURRENCY)) for code in codes]
    assert codes == [200] * len(codes), codes


def test_past_the_timeout_is_504_and_the_server_keeps_serving(tmp_path):
    """The most work the cost limit admits, on fashion-mini, against a 1 s timeout: 504 naming the
    limit, the denoising stops at the deadline, and the next request is served."""
    timeout_s = 1
    env = {"FASHION_STORAGE_URL": str(tmp_path / "store"), "FASHION_BATCHING__TIMEOUT_S": str(timeout_s), "FASHION_WARMUP": "false"}
    with serving("services.gateway:Studio", env, tmp_path / "server.log", timeout=300) as served:
        heavy = {"prompt": "a slow gown", "steps": 100, "num_images": 4, "guidance": 7.5}
        response = post(served, "/generate_image", heavy, timeout=120)
        assert response.status_code == 504, response.text[:300]
        assert f"{timeout_s} s" in response.text

        # The generator may still be finishing the step it was in; a client retries after 503.
        def served_again() -> bool:
            again = post(served, "/generate_image", {"prompt": "a quick scarf", "seed": 5, "steps": 2})
            assert again.status_code in (200, 503, 504), again.text
            return again.status_code == 200 and decode_png(again.content).size == (64, 64)

        wait_until(served_again, 120, "a normal request to succeed again", interval=1.0)


def test_metrics_cover_the_slo(server):
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert re.search(r'fashion_seconds_per_image_bucket\{le="2.0",model="[^"]+",runtime="torch"\}', text)
    for name in (
        "fashion_images_generated_total",
        'fashion_stage_duration_seconds_bucket{le="0.01",stage="queue"}',
        'fashion_stage_duration_seconds_count{stage="translate"}',
        'fashion_stage_duration_seconds_count{stage="store"}',
        "fashion_quality_gate_total",
        'fashion_failures_total{endpoint="/generate",reason="invalid_input"}',
        'fashion_in_flight_requests{service="studio"}',
        'fashion_requests_total{code="200",endpoint="/generate"}',
    ):
        assert name in text, name
    assert "a red striped" not in text  # no prompt text in labels


def test_a_short_model_call_that_gets_no_answer_is_made_again():
    """A scoring call lost on its way (no answer, no error) is abandoned after its bound and made
    again, instead of holding its request until the request's timeout."""
    import asyncio

    from services.model_client import AttemptTimeoutError, call_model

    attempts: list[int] = []

    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            await asyncio.Event().wait()  # the first attempt never gets an answer
        return "scores"

    assert asyncio.run(call_model(flaky, attempt_timeout_s=0.2)) == "scores"
    assert len(attempts) == 2

    async def lost() -> str:
        await asyncio.Event().wait()
        return "never"

    with pytest.raises(AttemptTimeoutError):
        asyncio.run(call_model(lost, attempt_timeout_s=0.01))
