"""Fuzzing driven by the service's own OpenAPI schema (BentoML's /docs.json, which covers the mounted
FastAPI endpoints and the health and metrics routes): schemathesis generates requests that fit the
schema and requests that break it, for every operation, and no answer may be a 5xx.

The fuzz server shrinks the schema's bounds (2 steps, 2 images, short texts) so that each valid request
is cheap, and keeps the batching timeout short, so that the whole run stays within a couple of minutes.
The largest size is the tiny model's own limit (twice its native 64 px), and schemathesis keeps its
default 10 s client timeout: a request it gives up on is a failure, as is any 5xx.
"""

from __future__ import annotations

import collections
import json
import time

import pytest
import requests
from schemathesis.core.transport import DEFAULT_RESPONSE_TIMEOUT

from tests.helpers import serving, status_of, tiny_service_env

MIN_REQUESTS = 500
# Valid requests do real work (translate, generate, score, store); invalid ones are answered at once.
EXAMPLES = {"positive": 30, "negative": 80}
POST_ERROR_KEYS = {"error"}


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    # A small product index, so that `/recommend` and `/products/{id}/image` do real work (embedded by the
    # same CLIP the server scores with).
    from fashion_studio.index import ProductIndex
    from fashion_studio.index.demo import render_demo_catalog
    from fashion_studio.scoring import Scorer
    from fashion_studio.settings import Settings

    index_settings = Settings(scorer="fashion-mini/clip", torch_threads=2)
    index = ProductIndex.open(index_settings, str(root / "index"), embedder=Scorer.load(index_settings), create=True)
    assert index.build(render_demo_catalog(40, root / "shop", seed=3, workers=1)).embedded == 40
    index.close()
    env = tiny_service_env(
        tiny_models,
        root,
        **{
            "FASHION_INDEX_URL": str(root / "index"),
            "FASHION_LIMITS__MAX_STEPS": "2",
            "FASHION_LIMITS__MAX_IMAGES_PER_PROMPT": "2",
            "FASHION_LIMITS__MAX_PROMPT_CHARS": "300",
            "FASHION_LIMITS__MAX_DESCRIPTION_CHARS": "300",
            "FASHION_LIMITS__MAX_TEXTS_PER_REQUEST": "4",
            "FASHION_LIMITS__MAX_BODY_BYTES": "100000",
            "FASHION_MAX_ATTEMPTS": "1",
            "FASHION_TRANSLATION_MAX_NEW_TOKENS": "16",
            "FASHION_BATCHING__TIMEOUT_S": "60",
            # fashion-mini's CLIP: the shipped popularity models read its embeddings (`rank_by_popularity`).
            "FASHION_SCORER": "fashion-mini/clip",
        },
    )
    with serving("services.gateway:Studio", env, root / "server.log", timeout=240) as served:
        yield served


def test_schema_driven_fuzzing_gets_no_5xx(server):
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{server.url}/docs.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/generate", "/generate_image", "/catalog", "/translate", "/score", "/readyz", "/livez", "/metrics"} <= paths, paths
    width = schema.raw_schema["components"]["schemas"]["GenerateRequest"]["properties"]["width"]
    assert width["maximum"] == 128, width  # from the model's configs: native 64 px, at most twice that

    session = requests.Session()
    statuses: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    server_errors: list[str] = []
    timeouts: list[str] = []
    refusals: collections.Counter = collections.Counter()
    started = time.monotonic()

    for operation in operations:
        # A POST with nothing to break (no body, no parameters: `POST /sessions`) has no negative case.
        breakable = "requestBody" in operation.definition.raw or bool(operation.definition.raw.get("parameters"))
        modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if operation.method.upper() == "POST" and breakable else [GenerationMode.POSITIVE]
        for mode in modes:

            @settings(
                max_examples=EXAMPLES[mode.value],
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case) -> None:
                # Called at once below, inside the loop: it sees this iteration's operation and mode.
                label = f"{operation.method.upper()} {operation.path} {mode.value}"  # noqa: B023
                try:
                    response = case.call(base_url=server.url, session=session)  # schemathesis' default timeout
                except requests.Timeout:
                    timeouts.append(f"{label}: no answer within {DEFAULT_RESPONSE_TIMEOUT} s for body {str(case.body)[:300]!r}")
                    return
                statuses[label][response.status_code] += 1
                if response.status_code >= 500:
                    server_errors.append(f"{label} -> {response.status_code}: {response.text[:300]} for {case.media_type} body {str(case.body)[:300]!r}")
                elif response.status_code >= 400 and operation.method.upper() == "POST":  # noqa: B023
                    content_type = response.headers.get("content-type") or [""]  # schemathesis keeps each header as a list
                    assert str(content_type[0]).startswith("application/json"), (label, response.status_code, response.text[:200], case.path_parameters)
                    error = response.json()
                    assert set(error) >= POST_ERROR_KEYS, (response.status_code, response.text[:300], case.media_type, str(case.body)[:200])
                    refusals[f"{label} {response.status_code} {error.get('field')}: {str(error.get('limit'))[:60]}"] += 1

            fuzz()

    total = sum(sum(counter.values()) for counter in statuses.values())
    summary = {label: dict(counter) for label, counter in sorted(statuses.items())}
    print(f"{total} requests in {time.monotonic() - started:.0f} s: {summary}")
    print("refusals:", json.dumps(dict(refusals.most_common()), indent=1))
    assert not server_errors, "\n".join(server_errors[:20])
    assert not timeouts, "\n".join(timeouts[:20])
    assert total >= MIN_REQUESTS, summary
    for path in ("/generate", "/generate_image", "/catalog", "/translate", "/score"):
        assert sum(statuses[f"POST {path} positive"].values()) >= EXAMPLES["positive"] // 2, summary
        assert statuses[f"POST {path} negative"][422] >= 1, summary
    assert server.alive() and status_of(f"{server.url}/readyz") == 200
    assert "Traceback" not in server.log.read_text(errors="replace"), server.log_tail()
