"""A real tritonserver on loopback serving the generated cpu repository; configs for both targets.

The server comes from the nvidia-pytriton wheel in `.venv-triton` (`make triton-env`); without it
the server tests fail with that instruction, they do not skip.
"""

from __future__ import annotations

import re
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from export.specs import ONNX_ELEM_TYPE, TRITON_DTYPE
from export.triton_repo import TritonOptions, write_repository
from export.tritonserver import TritonServer, triton_env
from fashion_studio.generation import GenerationRequest, Generator
from fashion_studio.settings import Settings
from tests.test_export import exported_models  # noqa: F401  (session fixture)

SERVED = ["sd", "clip", "marian"]
ONNX_TO_TRITON = {ONNX_ELEM_TYPE[k]: getattr(model_config_pb2, v) for k, v in TRITON_DTYPE.items()}


@pytest.fixture(scope="module")
def server(exported_models, tmp_path_factory):  # noqa: F811
    repo = tmp_path_factory.mktemp("model_repository")
    write_repository([exported_models[f] for f in SERVED], repo, "cpu", TritonOptions(max_queue_delay_us=20_000))
    with TritonServer(repo, env=triton_env()) as running:
        yield running


def client(server):
    import tritonclient.grpc as grpcclient

    return grpcclient.InferenceServerClient(server.grpc_url)


def unet_inputs(batch: int = 1, size: int = 16, seed: int = 0):
    import tritonclient.grpc as grpcclient

    rng = np.random.default_rng(seed)
    arrays = {
        "sample": rng.standard_normal((batch, 4, size, size), dtype=np.float32),
        "timestep": np.full((batch, 1), 500.0, dtype=np.float32),
        "encoder_hidden_states": rng.standard_normal((batch, 77, 32), dtype=np.float32),
    }
    tensors = []
    for name, array in arrays.items():
        tensor = grpcclient.InferInput(name, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


def metric(server, name: str, model: str) -> float:
    text = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    match = re.search(rf'^{name}\{{[^}}]*model="{model}"[^}}]*\}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_tritonserver_loads_the_cpu_repository_and_reports_ready(server, exported_models):  # noqa: F811
    assert server.ready()
    grpc = client(server)
    assert grpc.is_server_live() and grpc.is_server_ready()
    names = [f"{f}_{c}" for f in SERVED for c in __import__("json").loads((exported_models[f] / "manifest.json").read_text())["components"]]
    assert len(names) == 9
    for name in names:
        assert grpc.is_model_ready(name), name
    config = grpc.get_model_config("sd_unet", as_json=True)["config"]
    assert int(config["max_batch_size"]) > 1 and "dynamic_batching" in config


def test_generation_through_triton_matches_onnx_runtime(server, tiny_models, exported_models):  # noqa: F811
    base = Settings(generator=str(tiny_models["sd"]), onnx_dir=exported_models["sd"].parent, triton_url=server.grpc_url)
    requests = [
        GenerationRequest(prompt="a black leather jacket", negative_prompt="blurry", seed=21, steps=2, width=32, height=32, guidance=5.0),
        GenerationRequest(prompt="a yellow raincoat", seed=22, steps=2, width=32, height=32, guidance=5.0, num_images=2),
    ]
    local = Generator.load(base.model_copy(update={"runtime": "onnx"})).generate(requests)
    remote_generator = Generator.load(base.model_copy(update={"runtime": "triton"}))
    assert remote_generator.runtime == "triton"
    remote = remote_generator.generate(requests)
    for want, got in zip(local, remote):
        assert got.seeds == want.seeds
        for w, g in zip(want.images, got.images):
            assert np.abs(np.asarray(w, dtype=np.int16) - np.asarray(g, dtype=np.int16)).max() <= 1


def test_concurrent_requests_are_batched(server):
    grpc = client(server)
    before_exec = metric(server, "nv_inference_exec_count", "sd_unet")
    before_ok = metric(server, "nv_inference_request_success", "sd_unet")
    count = 16
    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(lambda i: grpc.infer("sd_unet", unet_inputs(seed=i)).as_numpy("out_sample"), range(count)))
    assert all(r.shape == (1, 4, 16, 16) for r in results)
    deadline = time.monotonic() + 10
    while metric(server, "nv_inference_request_success", "sd_unet") < before_ok + count and time.monotonic() < deadline:
        time.sleep(0.1)
    executions = metric(server, "nv_inference_exec_count", "sd_unet") - before_exec
    successes = metric(server, "nv_inference_request_success", "sd_unet") - before_ok
    assert successes == count
    assert executions < successes, f"{executions} executions for {successes} requests: nothing was batched"


def test_a_failing_request_fails_alone(server):
    from tritonclient.utils import InferenceServerException

    grpc = client(server)

    def call(i: int):
        size = 3 if i == 0 else 16  # an odd latent the UNet cannot up-sample back: ONNX Runtime fails
        try:
            return grpc.infer("sd_unet", unet_inputs(size=size, seed=i)).as_numpy("out_sample").shape
        except InferenceServerException as exc:
            return exc

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(call, range(6)))
    assert isinstance(results[0], InferenceServerException) and "sd_unet" in str(results[0])
    assert all(r == (1, 4, 16, 16) for r in results[1:]), results


def test_queue_overflow_is_rejected_not_hung(exported_models, tmp_path):  # noqa: F811
    from tritonclient.utils import InferenceServerException

    repo = tmp_path / "repo"
    write_repository([exported_models["sd"]], repo, "cpu", TritonOptions(max_queue_size=1, max_queue_delay_us=0))
    for extra in ("sd_text_encoder", "sd_vae_encoder", "sd_vae_decoder"):
        import shutil

        shutil.rmtree(repo / extra)
    with TritonServer(repo, env=triton_env()) as small:
        grpc = client(small)

        def call(i: int):
            try:
                grpc.infer("sd_unet", unet_inputs(batch=8, size=64, seed=i), client_timeout=60)
                return "ok"
            except InferenceServerException as exc:
                return str(exc)

        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(call, range(16)))
        elapsed = time.monotonic() - started
    rejected = [r for r in results if r != "ok"]
    assert "ok" in results
    assert rejected and all("queue" in r.lower() for r in rejected), rejected
    assert elapsed < 50


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_every_config_parses_as_model_config_and_matches_the_onnx_graph(exported_models, tmp_path, target):  # noqa: F811
    engines = tmp_path / "engines"
    engines.mkdir()
    (engines / "sd_unet.plan").write_bytes(b"engine bytes")  # a built engine makes sd_unet a tensorrt_plan model
    repo = tmp_path / "repo"
    names = write_repository(list(exported_models.values()), repo, target, TritonOptions(), engines if target == "gpu" else None)
    assert len(names) == 19
    platforms = set()
    for name in names:
        config = text_format.Parse((repo / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        assert config.name == name
        assert config.max_batch_size > 1
        assert config.dynamic_batching.max_queue_delay_microseconds > 0
        policy = config.dynamic_batching.default_queue_policy
        assert policy.max_queue_size > 0 and policy.default_timeout_microseconds > 0
        assert policy.timeout_action == model_config_pb2.ModelQueuePolicy.REJECT
        assert len(config.instance_group) == 1 and config.instance_group[0].count >= 1
        if target == "cpu":
            assert config.backend == "python" and (repo / name / "1" / "model.py").is_file()
        else:
            platforms.add(config.platform)
        family, _, component = name.partition("_")
        graph = onnx.load(str(exported_models[family] / component / "model.onnx"), load_external_data=False).graph
        assert [(i.name, i.data_type) for i in config.input] == [(v.name, ONNX_TO_TRITON[v.type.tensor_type.elem_type]) for v in graph.input]
        assert [(o.name, o.data_type) for o in config.output] == [(v.name, ONNX_TO_TRITON[v.type.tensor_type.elem_type]) for v in graph.output]
        for tensor, value in zip(config.input, graph.input):
            rank = len(value.type.tensor_type.shape.dim)
            assert len(tensor.dims) == max(rank - 1, 1) and (rank > 1 or tensor.HasField("reshape"))
    if target == "gpu":
        assert platforms == {"tensorrt_plan", "onnxruntime_onnx"}
        assert (repo / "sd_unet" / "1" / "model.plan").is_file()
        assert (repo / "sdxl_unet" / "1" / "model.onnx").is_file()


def test_triton_environment_is_installed():
    """`make triton-env` provides the server; this fails (not skips) where it was not run."""
    env = triton_env()
    assert env.binary.is_file() and (env.backend_dir / "python" / "triton_python_backend_stub").is_file()
    assert Path(env.site_packages, "onnxruntime").is_dir()


def test_one_channel_spreads_its_calls_over_every_triton_server(tmp_path):
    """The client channel balances round-robin over every address its target resolves to (a headless
    Service's pods; here two servers named by an ipv4: target), instead of pinning one connection."""
    from fashion_studio import runtimes
    from tests.test_k8s import IDENTITY_CONFIG, IDENTITY_MODEL

    repo = tmp_path / "repo" / "identity"
    (repo / "1").mkdir(parents=True)
    (repo / "config.pbtxt").write_text(IDENTITY_CONFIG)
    (repo / "1" / "model.py").write_text(IDENTITY_MODEL)
    with TritonServer(repo.parent, env=triton_env()) as first, TritonServer(repo.parent, env=triton_env()) as second:
        target = f"ipv4:127.0.0.1:{first.grpc_port},127.0.0.1:{second.grpc_port}"
        backend = runtimes.TritonBackend(target, "identity", wait_s=30)
        for i in range(20):
            out = backend.run({"INPUT0": np.full((1, 4), i, np.float32)})
            assert out["OUTPUT0"].tolist() == [[float(i)] * 4]
        counts = [metric(s, "nv_inference_request_success", "identity") for s in (first, second)]
    assert sum(counts) == 20 and min(counts) >= 5, counts


def test_a_model_service_started_before_triton_waits_for_it_with_backoff(exported_models, tiny_models, tmp_path):  # noqa: F811
    """The scorer on runtime=triton starts first: /readyz answers 503 while it retries with backoff
    (logged), and turns 200 once Triton serves its models, without a restart."""
    from tests.helpers import Server, free_port, status_of, tiny_service_env, wait_until

    repo = tmp_path / "repo"
    write_repository([exported_models["clip"]], repo, "cpu", TritonOptions())
    grpc_port = free_port()
    env = tiny_service_env(
        tiny_models,
        tmp_path,
        FASHION_RUNTIME="triton",
        FASHION_TRITON_URL=f"127.0.0.1:{grpc_port}",
        FASHION_ONNX_DIR=str(exported_models["clip"].parent),
        FASHION_MODEL_WAIT_S="300",
    )
    service = Server("services.scorer:ScorerService", env, tmp_path / "scorer.log")
    try:
        wait_until(lambda: "retrying in" in service.log_tail(20000), 120, "the scorer to retry Triton")
        assert service.alive() and status_of(f"{service.url}/readyz") == 503
        with TritonServer(repo, env=triton_env(), grpc_port=grpc_port):
            service.wait_ready(120)
            response = httpx.post(f"{service.url}/embed_texts", json={"texts": ["a red dress"]}, timeout=60)
            assert response.status_code == 200, response.text
            assert len(response.json()[0]) > 1
        log = service.log_tail(200000)
        assert "(attempt 2)" in log and "scorer failed to load" not in log
    finally:
        service.stop()
