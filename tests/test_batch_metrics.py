"""A batch run's metrics reach a real Pushgateway: at the start, while the run goes on, and at its end."""

from __future__ import annotations

import logging
import uuid

import pytest

from fashion_studio import metrics
from fashion_studio.batch_metrics import LAST_COMPLETION, LAST_SUCCESS, STARTED, parse_group, pushed_metrics
from fashion_studio.errors import InvalidInputError
from tests.helpers import free_port, wait_until
from tests.pushgateway import Pushgateway

JOB = "fashion-studio-catalog"


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory):
    gateway = Pushgateway.start(tmp_path_factory.mktemp("pushgateway"))
    try:
        yield gateway
    finally:
        gateway.stop()


def value(group: dict, name: str, **labels: str) -> float | None:
    matching = [v for sample_labels, v in group.get(name, []) if labels.items() <= sample_labels.items()]
    return matching[0] if matching else None


def test_a_run_pushes_at_the_start_while_it_runs_and_at_its_end(pushgateway):
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    url = f"{pushgateway.url}/metrics/job/{JOB}/namespace/{namespace}"
    labels = {"job": JOB, "namespace": namespace, "shard": "3"}
    gate = metrics.GATE_OUTCOMES.labels(outcome="passed_first")
    with pushed_metrics(url, interval_s=0.2, shard="3"):
        started = pushgateway.group(**labels)  # the push at the start, before any work
        assert value(started, STARTED) is not None
        assert value(started, LAST_SUCCESS) is None and value(started, LAST_COMPLETION) is None
        before = value(started, "fashion_quality_gate_total", outcome="passed_first")
        gate.inc(5)
        wait_until(
            lambda: value(pushgateway.group(**labels), "fashion_quality_gate_total", outcome="passed_first") == before + 5,
            15,
            "a push while the run goes on, with the new count",
        )
    ended = pushgateway.group(**labels)
    assert value(ended, LAST_SUCCESS) == value(ended, LAST_COMPLETION) >= value(ended, STARTED)
    assert value(ended, "fashion_batch_duration_seconds") >= 0
    # Only the project's series: no process or platform collectors of the pushing process.
    assert all(name.startswith("fashion_") or name in ("push_time_seconds", "push_failure_time_seconds") for name in ended), sorted(ended)
    success = value(ended, LAST_SUCCESS)

    with pytest.raises(RuntimeError, match="shard failed"), pushed_metrics(url, interval_s=0.2, shard="3"):
        raise RuntimeError("shard failed")
    failed = pushgateway.group(**labels)
    assert value(failed, LAST_COMPLETION) > success and value(failed, LAST_SUCCESS) == success  # the last success stays known
    other = pushgateway.group(job=JOB, namespace=namespace, shard="4")
    assert not other  # one group per shard


def test_an_unreachable_pushgateway_costs_a_warning_not_the_run(caplog):
    url = f"http://127.0.0.1:{free_port()}/metrics/job/{JOB}"
    caplog.set_level(logging.DEBUG, logger="fashion_studio.batch_metrics")
    with pushed_metrics(url, interval_s=0.05, shard="0") as pusher:
        wait_until(lambda: sum("failed" in r.getMessage() for r in caplog.records) >= 3, 15, "several failed pushes")
    assert not pusher.push()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "the run goes on" in warnings[0].getMessage()


def test_the_group_is_the_pushgateways_own_url_path():
    assert parse_group("http://prometheus-pushgateway.monitoring.svc:9091/metrics/job/fashion-studio-catalog/namespace/fashion-studio") == (
        "http://prometheus-pushgateway.monitoring.svc:9091",
        "fashion-studio-catalog",
        {"namespace": "fashion-studio"},
    )
    for bad in ("prometheus-pushgateway:9091", "http://pushgateway:9091/metrics", "http://pushgateway:9091/metrics/job/x/namespace"):
        with pytest.raises(InvalidInputError, match="pushgateway"):
            parse_group(bad)
    with pushed_metrics("") as pusher:  # no URL: no push
        assert pusher is None
