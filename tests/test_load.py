"""Load, overload and shutdown against a real server with the shipped fashion-mini models.

- A Locust run (ramp, steady, a spike at three times capacity, recovery) passes its SLO gate with no
  failure; the excess of the spike is shed with 429/503 and health answers all along.
- A burst at four times capacity: only 200, 429 or 503, every shed answer fast and with
  `Retry-After`, no request hangs, health answers meanwhile, normal service afterwards.
- SIGTERM with requests in flight: each of them completes (200, its image stored), new work is
  turned away with 503, `/readyz` turns 503, and the process exits within the grace period.
- The gate itself fails a run that misses p95 seconds per image or the error ratio.
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from PIL import Image

from fashion_studio.mini import MINI_DIR
from tests.helpers import ROOT, Server, serving, status_of, wait_until

CAPACITY = 6  # requests in flight at the gateway
TIMEOUT_S = 60
# What the shipped fashion-mini models hold on a shared 2-core CPU at 64x64 and 4 steps without
# guidance, spike included; the production target (FASHION_SLO_SECONDS_PER_IMAGE, 2 s) is for the GPU
# deployment.
LOCAL_SLO_SECONDS_PER_IMAGE = 30.0
STAGES = "ramp:5:3,steady:12:4,spike:8:18,recover:8:4"
HEALTH_MAX_S = 5.0
SHED = (429, 503)
STEPS = 4


def model_env(root: Path, **extra: str) -> dict[str, str]:
    """The default models (fashion-mini, as `make serve` and `make loadtest`), with cheaper sampling."""
    return {
        "FASHION_GENERATOR": str(MINI_DIR / "sd"),
        "FASHION_TRANSLATOR": str(MINI_DIR / "marian"),
        "FASHION_SCORER": str(MINI_DIR / "clip"),
        "FASHION_STORAGE_URL": str(root / "store"),
        "FASHION_DEFAULT_STEPS": str(STEPS),
        "FASHION_DEFAULT_GUIDANCE": "0",
        "FASHION_BATCHING__TIMEOUT_S": str(TIMEOUT_S),
        "FASHION_CLIP_THRESHOLD": "0",  # the catalog's gate passes at once: one generation per article
        "FASHION_TRANSLATION_MAX_NEW_TOKENS": "32",
        **extra,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("load")
    with serving("services.gateway:Studio", model_env(root, FASHION_BATCHING__MAX_CONCURRENCY=str(CAPACITY)), root / "server.log", timeout=240) as served:
        served.root = root
        yield served


def png_b64(size: int = 32) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 40)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def run_locust(server: Server, reports: Path, stages: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    reports.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtest" / "locustfile.py"),
        "--headless",
        "--host",
        server.url,
        "--csv",
        str(reports / "run"),
        "--html",
        str(reports / "run.html"),
        "--stages",
        stages,
        "--size",
        "64",
        "--steps",
        str(STEPS),
        "--request-timeout",
        str(TIMEOUT_S + 15),
        "--health-max-seconds",
        str(HEALTH_MAX_S),
    ]
    return subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=180)


def test_locust_run_passes_its_slo_gate_with_the_spike_shed(server, tmp_path):
    """At most ~35 s of traffic: the SLO gate passes, nothing fails, the spike's excess is shed."""
    result = run_locust(server, tmp_path, STAGES, {"FASHION_SLO_SECONDS_PER_IMAGE": str(LOCAL_SLO_SECONDS_PER_IMAGE), "FASHION_SLO_ERROR_RATIO": "0.01"})
    verdict_file = tmp_path / "run_slo.json"
    assert verdict_file.exists(), result.stderr[-3000:]
    verdict = json.loads(verdict_file.read_text())
    print("locust verdict:", json.dumps({k: v for k, v in verdict.items() if k != "max_seconds_by_endpoint"}))
    assert result.returncode == 0 and verdict["passed"], (verdict, result.stderr[-3000:])
    assert verdict["failures"] == 0, verdict["failures_by_endpoint"]
    by_endpoint = verdict["requests_by_endpoint"]
    for endpoint in ("/generate", "/generate_image", "/catalog", "/translate", "/score", "/readyz", "/livez", "/metrics"):
        assert by_endpoint.get(endpoint, 0) > 0, f"no successful {endpoint} in {by_endpoint}"
    shed = {name: count for name, count in by_endpoint.items() if "[shed" in name}
    assert verdict["shed"] > 0 and shed, "a spike at three times capacity was not shed"
    assert all(name.endswith(("[shed 429]", "[shed 503]")) for name in shed), shed
    assert max(verdict["max_seconds_by_endpoint"].values()) < TIMEOUT_S + 15, "a request ran into the client timeout"
    for path in ("/readyz", "/livez", "/metrics"):
        assert verdict["max_seconds_by_endpoint"][path] <= HEALTH_MAX_S
    with open(tmp_path / "run_stats.csv") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    assert rows["Aggregated"]["Failure Count"] == "0"
    assert (tmp_path / "run.html").stat().st_size > 10_000
    # Requests of the users Locust stopped still finish; then the gateway is idle and ready again.
    wait_until(lambda: in_flight(server) == 0, 60, "the gateway to be idle after the run", interval=0.2)
    assert status_of(f"{server.url}/readyz") == 200


def test_a_burst_at_four_times_capacity_is_shed_fast_and_health_keeps_answering(server):
    bodies = [
        ("/generate_image", {"prompt": "a heavy wool coat", "steps": 4, "width": 64, "height": 64}),
        ("/translate", {"texts": ["Rotes Kleid aus Baumwolle", "Blaue Jeans"]}),
        ("/score", {"image": png_b64(), "text": "a red dress"}),
        ("/catalog", {"article_id": "burst", "description": "Herren-Hemd in Hellblau aus Leinen", "language": "de"}),
    ]
    burst = 4 * CAPACITY
    wait_until(lambda: in_flight(server) == 0, 60, "an idle gateway", interval=0.2)
    health: list[tuple[str, int | None, float]] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            for path in ("/readyz", "/livez", "/metrics"):
                start = time.perf_counter()
                health.append((path, status_of(f"{server.url}{path}"), time.perf_counter() - start))
            time.sleep(0.2)

    start_together = threading.Barrier(burst)

    def call(index: int) -> tuple[int, float, dict]:
        path, body = bodies[index % len(bodies)]
        if path == "/catalog":
            body = {**body, "article_id": f"burst-{index}-{time.time_ns()}"}
        start_together.wait(timeout=60)
        start = time.perf_counter()
        response = client.post(f"{server.url}{path}", json=body)
        return response.status_code, time.perf_counter() - start, dict(response.headers)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        with (
            httpx.Client(timeout=TIMEOUT_S + 30, limits=httpx.Limits(max_connections=2 * burst)) as client,
            concurrent.futures.ThreadPoolExecutor(burst) as pool,
        ):
            results = list(pool.map(call, range(burst)))
    finally:
        done.set()
        prober.join(timeout=30)
    codes = [code for code, _, _ in results]
    print(
        f"burst of {burst}: {dict(collections.Counter(codes))}, slowest answer {max(s for _, s, _ in results):.2f} s, "
        f"{len(health)} health probes, slowest {max((h[2] for h in health), default=0):.2f} s"
    )
    assert set(codes) <= {200, *SHED}, codes
    shed = [(seconds, headers) for code, seconds, headers in results if code in SHED]
    assert codes.count(200) >= 1 and len(shed) >= CAPACITY, codes
    assert all(int(headers["retry-after"]) >= 1 for _, headers in shed)
    shed_seconds = sorted(seconds for seconds, _ in shed)
    assert shed_seconds[len(shed_seconds) // 2] < 1.0 and shed_seconds[-1] < 10.0, shed_seconds
    assert max(seconds for _, seconds, _ in results) < TIMEOUT_S + 5
    assert health and all(status == 200 for _, status, _ in health), health
    assert max(seconds for _, _, seconds in health) < HEALTH_MAX_S, max(health, key=lambda h: h[2])

    def served_normally() -> bool:
        response = httpx.post(f"{server.url}/generate_image", json=bodies[0][1], timeout=TIMEOUT_S + 30)
        assert response.status_code in (200, *SHED), response.text
        return response.status_code == 200 and Image.open(io.BytesIO(response.content)).size == (64, 64)

    wait_until(served_normally, 60, "a normal request to succeed after the burst", interval=0.5)
    assert status_of(f"{server.url}/readyz") == 200


def in_flight(server: Server) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith('fashion_in_flight_requests{service="studio"}'))


def test_sigterm_drains_accepted_requests_and_exits_within_the_grace_period(tmp_path):
    grace = 60.0
    with serving(
        "services.gateway:Studio",
        model_env(tmp_path, FASHION_BATCHING__MAX_CONCURRENCY="16", FASHION_SHUTDOWN_GRACE_S=str(grace)),
        tmp_path / "server.log",
        timeout=240,
    ) as served:
        work = [("/generate", {"prompt": f"a long wool coat {i}", "num_images": 2, "steps": 4, "width": 64, "height": 64}) for i in range(3)]
        work += [("/catalog", {"article_id": f"drain-{i}", "description": "Damen-Rock in Beige, plissiert", "language": "de"}) for i in range(3)]
        with concurrent.futures.ThreadPoolExecutor(len(work)) as pool:
            futures = [pool.submit(httpx.post, f"{served.url}{path}", json=body, timeout=TIMEOUT_S + 60) for path, body in work]
            accepted = lambda: in_flight(served) + sum(f.done() for f in futures) >= len(work)  # noqa: E731
            wait_until(accepted, 60, "every request to be accepted", interval=0.05)
            sent = time.monotonic()
            os.kill(served.process.pid, signal.SIGTERM)

            # Readiness fails and new work is turned away at once, with a reason and Retry-After.
            wait_until(lambda: status_of(f"{served.url}/readyz") == 503, 10, "/readyz to turn 503", interval=0.05)
            refused = httpx.post(f"{served.url}/translate", json={"texts": ["Kleid"]}, timeout=10)
            assert refused.status_code == 503 and refused.json()["error"] == "shutting_down", refused.text
            assert refused.headers["retry-after"] == "1"

            responses = [future.result() for future in futures]
        for (path, _), response in zip(work, responses):
            assert response.status_code == 200, (path, response.text[:300])
            body = response.json()
            if path == "/generate":
                assert len(body["images"]) == 2
                for image in body["images"]:
                    assert Image.open(image["url"]).size == (64, 64)
                    assert json.loads(Path(image["url"]).with_suffix(".json").read_text())["seed"] == image["seed"]
            else:
                assert json.loads(Path(body["metadata_url"]).read_text())["sample_id"] == body["article_id"]
        served.process.wait(timeout=grace + 30)
        exited_after = time.monotonic() - sent
        print(f"SIGTERM with {len(work)} requests in flight: {[r.status_code for r in responses]}, exited after {exited_after:.1f} s")
        assert exited_after < grace, f"exited {exited_after:.1f} s after SIGTERM"


def test_work_longer_than_the_grace_period_is_cut_with_503_and_the_process_still_exits(tmp_path):
    grace = 3.0
    with serving("services.gateway:Studio", model_env(tmp_path, FASHION_SHUTDOWN_GRACE_S=str(grace)), tmp_path / "server.log", timeout=240) as served:
        # The most work the cost limit admits at twice fashion-mini's native side (guidance is off here).
        slow = {"prompt": "an embroidered ball gown", "num_images": 2, "steps": 100, "width": 128, "height": 128}
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(httpx.post, f"{served.url}/generate", json=slow, timeout=TIMEOUT_S + 60) for _ in range(2)]
            wait_until(lambda: in_flight(served) >= 2, 60, "both requests to be accepted", interval=0.05)
            sent = time.monotonic()
            os.kill(served.process.pid, signal.SIGTERM)
            responses = [future.result() for future in futures]
        for response in responses:
            assert response.status_code == 503 and response.json()["error"] == "shutting_down", response.text[:300]
            assert "grace period" in response.json()["message"] and response.headers["retry-after"] == "1"
        served.process.wait(timeout=60)
        exited_after = time.monotonic() - sent
        print(f"cut after a {grace:g} s grace period: exited after {exited_after:.1f} s")
        # The grace, 5 s to answer what is cut, 5 s for model work nobody awaits, and slack for a slow CPU.
        assert exited_after < grace + 25, f"exited {exited_after:.1f} s after SIGTERM"


def test_workers_whose_serving_process_is_killed_shut_down_instead_of_living_on(tmp_path):
    """SIGKILL of `bentoml serve` reaches none of its workers: each notices its parent is gone and
    drains as on SIGTERM, so no gateway or model process is left holding memory and models."""
    with serving("services.gateway:Studio", model_env(tmp_path, FASHION_SHUTDOWN_GRACE_S="2"), tmp_path / "server.log", timeout=240) as served:
        workers = psutil.Process(served.process.pid).children(recursive=True)
        assert len(workers) >= 4, workers  # the gateway and three model services
        os.kill(served.process.pid, signal.SIGKILL)
        served.process.wait(timeout=30)
        wait_until(lambda: not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE], 60, "the orphaned workers to exit")


def test_the_gate_fails_on_p95_seconds_per_image_or_on_the_error_ratio():
    """In a subprocess: importing Locust patches the standard library with gevent."""
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, "loadtest")
        from locust.stats import RequestStats
        from locustfile import SLO_NAME, SLO_TYPE, evaluate

        def stats(per_image_ms, failures):
            s = RequestStats()
            for _ in range(100):
                s.log_request("POST", "/generate", per_image_ms, 100)
                s.log_request(SLO_TYPE, SLO_NAME, per_image_ms, 0)
            for _ in range(failures):
                s.log_request("POST", "/generate", 10, 0)
                s.log_error("POST", "/generate", "HTTP 500")
            for _ in range(20):
                s.log_request("POST", "/generate [shed 429]", 5, 0)
            return s

        ok = evaluate(stats(900, 0), 1.0, 0.01)
        assert ok.passed and ok.shed == 20 and ok.failures == 0, ok
        slow = evaluate(stats(1500, 0), 1.0, 0.01)
        assert not slow.passed and "p95 seconds per image" in slow.reasons[0], slow
        failing = evaluate(stats(900, 5), 1.0, 0.01)
        assert not failing.passed and "error ratio" in failing.reasons[0], failing
        assert not evaluate(RequestStats(), 1.0, 0.01).passed
        print("gate ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "gate ok" in result.stdout, result.stderr[-3000:]
