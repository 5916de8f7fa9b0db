"""One client must not deny service to everyone, over real HTTP on the shipped fashion-mini models
(64x64 native, 20 steps and guidance 4 by default): work the client abandoned stops, requests are
admitted by cost, and a short request is not held behind a long one."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import serving, wait_until

ORDINARY = {"prompt": "a red striped summer dress", "seed": 1}
# The most the cost limits admit at native size: 100 steps of 4 guided images.
EXPENSIVE = {"prompt": "a navy wool coat with checks", "seed": 2, "steps": 100, "num_images": 4, "guidance": 4.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("cancel")
    with serving("services.gateway:Studio", {"FASHION_STORAGE_URL": str(root / "store")}, root / "server.log", timeout=300) as served:
        yield served


def metric(url: str, name: str, **labels: str) -> float:
    """A counter's value summed over the samples that carry `labels` (every service's, via /metrics)."""
    total = 0.0
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def timed_post(url: str, body: dict, timeout: float = 120) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    response = httpx.post(f"{url}/generate", json=body, timeout=timeout)
    return response, time.perf_counter() - start


def test_the_attack_shape_is_refused_before_any_work_and_the_schema_states_the_limits(server):
    before = metric(server.url, "fashion_denoising_steps_total")
    response = httpx.post(f"{server.url}/generate", json={**EXPENSIVE, "width": 512, "height": 512, "guidance": 7.5}, timeout=30)
    assert response.status_code == 422, response.text
    error = response.json()
    assert (error["field"], error["value"]) == ("width", 512) and "128" in error["limit"], error
    costly = httpx.post(f"{server.url}/generate", json={**EXPENSIVE, "width": 128, "height": 128}, timeout=30)
    assert costly.status_code == 422, costly.text
    assert (costly.json()["field"], costly.json()["value"]) == ("steps", 100) and "at most 25" in costly.json()["limit"], costly.json()
    assert metric(server.url, "fashion_denoising_steps_total") == before
    schema = httpx.get(f"{server.url}/docs.json", timeout=30).json()
    fields = schema["components"]["schemas"]["GenerateRequest"]["properties"]
    assert fields["width"]["maximum"] == 128 and fields["height"]["maximum"] == 128, fields


def test_an_abandoned_expensive_request_stops_and_the_next_one_is_served_promptly(server):
    timed_post(server.url, ORDINARY)
    unloaded = timed_post(server.url, ORDINARY)[1]
    cancelled = metric(server.url, "fashion_generation_cancellations_total", reason="client")
    skipped = metric(server.url, "fashion_denoising_steps_skipped_total", reason="client")
    ran = metric(server.url, "fashion_denoising_steps_total")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/generate", json=EXPENSIVE, timeout=1.5)
    response, seconds = timed_post(server.url, ORDINARY)
    assert response.status_code == 200, response.text
    assert seconds <= 3 * unloaded + 1.0, f"{seconds:.2f} s behind abandoned work; {unloaded:.2f} s unloaded"
    wait_until(
        lambda: metric(server.url, "fashion_generation_cancellations_total", reason="client") > cancelled, 30, "the generator to drop the abandoned request"
    )
    # Every image-step of the abandoned request either ran or was skipped, and at its disconnect, 1.5 s
    # into 100 steps of four images, at least a quarter of its steps had not run.
    skipped = metric(server.url, "fashion_denoising_steps_skipped_total", reason="client") - skipped
    ran = metric(server.url, "fashion_denoising_steps_total") - ran - 20  # the ordinary request's 20 steps
    assert skipped + ran == 4 * 100, (skipped, ran)
    assert skipped >= 4 * 25, (skipped, ran)
    assert "Traceback" not in server.log.read_text(errors="replace"), server.log_tail()


def test_a_short_request_sent_after_a_long_one_finishes_first(server):
    async def race() -> bool:
        async with httpx.AsyncClient(base_url=server.url, timeout=300) as client:
            steps = metric(server.url, "fashion_denoising_steps_total")
            long = asyncio.create_task(client.post("/generate", json=EXPENSIVE))
            while metric(server.url, "fashion_denoising_steps_total") == steps:  # the long one has started
                await asyncio.sleep(0.05)
            short = await client.post("/generate", json=ORDINARY)
            assert short.status_code == 200, short.text
            long_done = long.done()
            long.cancel()  # its client hangs up: the generator drops the rest of it
            with contextlib.suppress(asyncio.CancelledError):
                await long
            return long_done

    assert not asyncio.run(race()), "the long request finished before the short one sent after it"
