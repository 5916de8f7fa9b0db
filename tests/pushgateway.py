"""A real Prometheus Pushgateway for tests (Debian's prometheus-pushgateway) on 127.0.0.1 and a free
port; waited on, always stopped. `group(...)` reads back what a push left in one group."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import free_port, status_of, stop_group, wait_until

BINARY = "prometheus-pushgateway"


def binary() -> str | None:
    return shutil.which(BINARY) or shutil.which("pushgateway")


@dataclass
class Pushgateway:
    url: str
    process: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, root: Path) -> Pushgateway:
        found = binary()
        if found is None:
            raise RuntimeError(f"{BINARY} is not installed: run `make tools` (Debian's {BINARY} package)")
        root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log = root / "pushgateway.log"
        process = subprocess.Popen(
            [found, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        gateway = cls(f"http://127.0.0.1:{port}", process, log)

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"{BINARY} exited with {process.returncode}: {log.read_text()[-2000:]}")
            return status_of(f"{gateway.url}/-/ready") == 200

        try:
            wait_until(ready, 30, f"{BINARY} to be ready", interval=0.1)
        except BaseException:
            gateway.stop()
            raise
        return gateway

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]

    def group(self, **labels: str) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Every sample whose labels include `labels` (a group's job and grouping key), by name."""
        found: dict[str, list[tuple[dict[str, str], float]]] = {}
        for name, sample_labels, value in self.samples():
            if labels.items() <= sample_labels.items():
                found.setdefault(name, []).append((sample_labels, value))
        return found

    def stop(self) -> None:
        stop_group(self.process, timeout=15)
