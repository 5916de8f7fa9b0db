"""The step scheduler on the shipped fashion-mini generator: same images as a pipeline call, requests
joining a running batch, short work ahead of long work, cancellation, and limits that follow the model."""

from __future__ import annotations

import time

import numpy as np
import pytest
from prometheus_client import REGISTRY

from fashion_studio.errors import DeadlineExceededError, InvalidInputError
from fashion_studio.generation import GenerationRequest, Generator
from fashion_studio.scheduling import CostLimits, RequestCancelledError, StepScheduler, native_size
from fashion_studio.scoring import Scorer
from fashion_studio.settings import Settings
from tests.helpers import ROOT, wait_until

MINI = ROOT / "models" / "fashion-mini" / "sd"


@pytest.fixture(scope="module")
def generator():
    return Generator.load(Settings(warmup=False))


@pytest.fixture()
def scheduler(generator):
    scheduler = StepScheduler(generator, max_batch_images=8)
    yield scheduler
    scheduler.close()


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def steps_run() -> float:
    return REGISTRY.get_sample_value("fashion_denoising_steps_total") or 0.0


def skipped(reason: str) -> float:
    return REGISTRY.get_sample_value("fashion_denoising_steps_skipped_total", {"reason": reason}) or 0.0


def test_same_seed_gives_the_pipeline_calls_image(generator, scheduler):
    request = GenerationRequest(prompt="a red striped dress", negative_prompt="blurry", seed=5, steps=6, guidance=4.0, width=64, height=64, num_images=2)
    reference = generator.generate([request])[0]
    result = scheduler.submit(request).result(timeout=60)
    assert result.seeds == reference.seeds == [5, 6]
    for ours, theirs in zip(result.images, reference.images):
        assert ours.size == theirs.size == (64, 64)
        assert np.abs(pixels(ours) - pixels(theirs)).max() <= 2
    assert set(result.timings) >= {"queue", "encode", "denoise", "decode", "total"}


def test_a_request_joins_a_running_batch_between_steps_without_changing_either_image(generator, scheduler):
    first = GenerationRequest(prompt="a blue denim jacket", seed=11, steps=8, guidance=4.0)
    second = GenerationRequest(prompt="a green summer dress", seed=12, steps=8, guidance=4.0)
    alone = [scheduler.submit(r).result(timeout=60) for r in (first, second)]
    before = steps_run()
    running = scheduler.submit(first)
    wait_until(lambda: steps_run() >= before + 3, 30, "the first request's third step")
    joined = scheduler.submit(second).result(timeout=60)
    together = running.result(timeout=60)
    assert joined.batch_images == 2 and together.batch_images == 2, "the second request did not share the first one's UNet calls"
    for shared, solo in ((together, alone[0]), (joined, alone[1])):
        assert np.abs(pixels(shared.images[0]) - pixels(solo.images[0])).max() <= 2


def test_a_short_request_finishes_before_a_long_one_submitted_first(scheduler):
    long = scheduler.submit(GenerationRequest(prompt="a black wool coat", seed=1, steps=100, guidance=4.0, num_images=4), request_id="long")
    short = scheduler.submit(GenerationRequest(prompt="a white shirt", seed=2, steps=4, guidance=4.0, width=32, height=32), request_id="short")
    short.result(timeout=60)
    assert not long.done(), "the long request finished first: the short one waited for all of it"
    assert scheduler.cancel("long") == 1


def test_a_cancelled_request_stops_at_the_next_step_and_its_batch_goes_on(generator, scheduler):
    keep = GenerationRequest(prompt="a yellow t-shirt", seed=21, steps=20, guidance=4.0)
    solo = scheduler.submit(keep).result(timeout=60)
    before_steps, before_skipped = steps_run(), skipped("client")
    abandoned = scheduler.submit(GenerationRequest(prompt="a grey hoodie", seed=22, steps=20, guidance=4.0, num_images=2), request_id="gone")
    kept = scheduler.submit(keep, request_id="kept")
    wait_until(lambda: steps_run() >= before_steps + 6, 30, "a few shared steps")
    assert scheduler.cancel("gone") == 1
    with pytest.raises(RequestCancelledError):
        abandoned.result(timeout=30)
    result = kept.result(timeout=60)
    assert result.batch_images == 3, "the two requests did not share UNet calls"
    assert np.abs(pixels(result.images[0]) - pixels(solo.images[0])).max() <= 2
    # Both images of the abandoned request had most of their 20 steps left, and none of them ran.
    assert skipped("client") - before_skipped >= 2 * 12
    assert steps_run() - before_steps <= 20 + 2 * 8
    assert scheduler.pending() == 0
    assert scheduler.cancel("gone") == 0


def test_queued_work_of_a_gone_client_never_starts_and_deadlines_stop_work(scheduler):
    # The first request fills the batch (8 images), so requests of its shape queue behind it.
    scheduler.submit(GenerationRequest(prompt="a navy skirt", seed=3, steps=20, width=32, height=32, num_images=8), request_id="blocker")
    queued = [scheduler.submit(GenerationRequest(prompt="a navy skirt", seed=s, steps=20, width=32, height=32), request_id="queued") for s in range(9)]
    before = skipped("client"), REGISTRY.get_sample_value("fashion_generation_cancellations_total", {"reason": "client", "stage": "queued"}) or 0.0
    assert scheduler.cancel("queued") == 9
    for future in queued:
        with pytest.raises(RequestCancelledError):
            future.result(timeout=5)
    assert skipped("client") - before[0] == 9 * 20
    assert REGISTRY.get_sample_value("fashion_generation_cancellations_total", {"reason": "client", "stage": "queued"}) - before[1] == 9
    late = scheduler.submit(GenerationRequest(prompt="a red scarf", seed=4, steps=30), deadline=time.time() - 1)
    with pytest.raises(DeadlineExceededError):
        late.result(timeout=30)
    assert scheduler.cancel("blocker") == 1


def test_cost_limits_follow_the_models_native_size():
    assert native_size(MINI) == (64, 64)
    limits = CostLimits.for_model(MINI, Settings())
    assert (limits.max_width, limits.max_height) == (128, 128)
    assert limits.max_cost == 100 * 4 * 2
    limits.check(GenerationRequest(prompt="a", steps=100, guidance=4.0, num_images=4))
    with pytest.raises(InvalidInputError) as too_wide:
        limits.check(GenerationRequest(prompt="a", steps=100, guidance=4.0, num_images=4, width=512, height=512))
    assert too_wide.value.field == "width" and too_wide.value.value == 512 and "at most 128" in too_wide.value.limit
    with pytest.raises(InvalidInputError) as too_long:
        limits.check(GenerationRequest(prompt="a", steps=100, guidance=4.0, num_images=4, width=128, height=128))
    assert too_long.value.field == "steps" and "at most 25" in too_long.value.limit
    limits.check(GenerationRequest(prompt="a", steps=25, guidance=4.0, num_images=4, width=128, height=128))
    limits.check(GenerationRequest(prompt="a", steps=50, guidance=1.0, num_images=4, width=128, height=128))  # no guidance: one pass
    big = CostLimits.for_native_size(1024, 1024, Settings(default_width=1024, default_height=1024))
    assert (big.max_width, big.max_height) == (2048, 2048)


def test_one_keys_burst_in_flight_leaves_room_for_other_keys():
    from fashion_studio.auth import Keyring

    first, second = "fsk_first-client-key-0123456789", "fsk_second-client-key-0123456789"
    ring = Keyring(None, f"{first},{second}", rate_per_minute=600, burst=3)
    holder = ring.authorize(f"Bearer {first}").key_id
    assert [ring.acquire(holder).status for _ in range(4)] == [200, 200, 200, 429]
    refused = ring.acquire(holder)
    assert refused.status == 429 and "at most 3 requests in flight" in refused.message
    other = ring.authorize(f"Bearer {second}").key_id
    assert ring.acquire(other).allowed, "another key waited on the first one's burst"
    ring.release(holder)
    assert ring.in_flight(holder) == 2 and ring.acquire(holder).allowed


def test_cancelling_the_future_cancels_the_request(scheduler):
    before_steps, before_skipped = steps_run(), skipped("client")
    future = scheduler.submit(GenerationRequest(prompt="a pink blouse", seed=31, steps=100, guidance=4.0))
    wait_until(lambda: steps_run() > before_steps, 30, "the first step")
    assert future.cancel()
    wait_until(lambda: scheduler.pending() == 0, 30, "the cancelled request to leave")
    assert skipped("client") - before_skipped >= 80


def test_a_seeded_request_submitted_again_under_its_id_joins_the_first(scheduler):
    """A call made again after a lost connection (same gateway request, same seeded request) waits on
    the work under way instead of running it twice; cancelling one caller's future leaves the other's."""
    request = GenerationRequest(prompt="a yellow raincoat", seed=41, steps=6, guidance=4.0)
    before = steps_run()
    first = scheduler.submit(request, request_id="gateway-1")
    again = scheduler.submit(request, request_id="gateway-1")
    other_id = scheduler.submit(request, request_id="gateway-2")
    assert again is not first
    assert scheduler.pending() == 2, "the twin became a job of its own"
    first.cancel()
    result, separate = again.result(timeout=60), other_id.result(timeout=60)
    assert np.abs(pixels(result.images[0]) - pixels(separate.images[0])).max() <= 2
    assert steps_run() - before == 2 * request.steps, "the twin's steps ran twice"
    unseeded = GenerationRequest(prompt="a yellow raincoat", steps=2)
    futures = [scheduler.submit(unseeded, request_id="gateway-3") for _ in range(2)]
    assert len({tuple(f.result(timeout=60).seeds) for f in futures}) == 2, "unseeded requests drew one seed"


def test_with_a_scorer_each_finished_image_comes_back_scored_against_its_own_prompt(generator):
    scorer = Scorer.load(Settings())
    scheduler = StepScheduler(generator, max_batch_images=8, scorer=scorer)
    requests = [
        GenerationRequest(prompt="a red striped dress", seed=31, steps=6, guidance=4.0, num_images=2),
        GenerationRequest(prompt="a navy wool coat", seed=41, steps=4, guidance=4.0),
    ]
    unasked = GenerationRequest(prompt="a yellow cap", seed=51, steps=4, guidance=4.0)
    try:
        futures = [scheduler.submit(r, score=True) for r in requests] + [scheduler.submit(unasked)]
        *results, plain = [future.result(timeout=60) for future in futures]
    finally:
        scheduler.close()
    assert plain.scores is None and "score" not in plain.timings, "a request that did not ask was scored"
    for request, result in zip(requests, results):
        assert result.scores == pytest.approx(scorer.score(result.images, [request.prompt] * len(result.images)), abs=1e-3)
        assert result.timings["score"] > 0
    dress, coat = results[0].images[0], results[1].images[0]
    assert scorer.score([dress], ["a red striped dress"])[0] != pytest.approx(scorer.score([dress], ["a navy wool coat"])[0], abs=1e-3)
    assert results[0].scores[0] != pytest.approx(scorer.score([coat], ["a red striped dress"])[0], abs=1e-3)


class FailingScorer:
    """Fault injection: a scorer whose every call fails."""

    def score(self, images, texts):
        raise RuntimeError("CLIP went away")


def test_a_failing_scorer_leaves_the_images_unscored_but_delivered(generator):
    scheduler = StepScheduler(generator, max_batch_images=8, scorer=FailingScorer())
    try:
        result = scheduler.submit(GenerationRequest(prompt="a white blouse", seed=3, steps=3, guidance=4.0), score=True).result(timeout=60)
    finally:
        scheduler.close()
    assert len(result.images) == 1 and result.scores is None and "score" not in result.timings


def test_without_a_scorer_results_carry_no_scores(scheduler):
    result = scheduler.submit(GenerationRequest(prompt="a green skirt", seed=4, steps=3, guidance=4.0), score=True).result(timeout=60)
    assert result.scores is None and "score" not in result.timings
