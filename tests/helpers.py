"""Real servers for tests: `bentoml serve` on 127.0.0.1 and a free port, waited on, always stopped."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from fashion_studio.ports import free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")


def status_of(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return None


def tiny_service_env(tiny_models: dict[str, Path], root: Path, **overrides: str) -> dict[str, str]:
    """Settings of a test server on the tiny models: its own storage and the cheapest generation."""
    return {
        "FASHION_GENERATOR": str(tiny_models["sd"]),
        "FASHION_TRANSLATOR": str(tiny_models["marian"]),
        "FASHION_SCORER": str(tiny_models["clip"]),
        "FASHION_STORAGE_URL": str(root / "store"),
        "FASHION_DEFAULT_STEPS": "1",
        "FASHION_DEFAULT_WIDTH": "32",
        "FASHION_DEFAULT_HEIGHT": "32",
        "FASHION_DEFAULT_GUIDANCE": "0",
        **overrides,
    }


def stop_group(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
    """Signal a process started with `start_new_session=True` and every process of its group; SIGKILL
    what outlives `timeout`. The group is signalled even when its leader has exited already (a server
    that exited on its own may leave workers behind). Returns the leader's exit status."""

    def signal_group(signum: int) -> bool:
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            return False  # nobody left in the group
        return True

    signal_group(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        signal_group(signal.SIGKILL)
        process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while signal_group(0) and time.monotonic() < deadline:  # members still exiting
        time.sleep(0.1)
    signal_group(signal.SIGKILL)
    return process.returncode


class Server:
    """`bentoml serve TARGET` as a subprocess with its own environment and log file."""

    BIND_RETRIES = 3  # a free port found by `free_port` can be taken by another process before the server binds it

    def __init__(self, target: str, env: dict[str, str], log: Path, port: int | None = None) -> None:
        self.target, self.env, self.log = target, env, log
        self.fixed_port = port is not None
        self.binds = 0
        self._start(port or free_port())

    def _start(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.binds += 1
        self.log_start = self.log.stat().st_size if self.log.exists() else 0  # this attempt's part of the log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", self.target, "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            # Each server gets its own BENTOML_HOME: `bentoml serve` wipes and shares the Prometheus
            # multiprocess folder under it, so two servers with one home would mix their metrics.
            env={**os.environ, "BENTOML_DO_NOT_TRACK": "True", "BENTOML_HOME": str(self.log.parent / f"bentoml-home-{self.port}"), **self.env},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    # How a lost port shows in the log: the HTTP port (uvicorn), or one of the ports BentoML's process
    # manager (circus) picks for its own ZeroMQ endpoints.
    LOST_PORT = ("Could not bind", "Address already in use")

    def wait_ready(self, timeout: float = 180, path: str = "/readyz") -> None:
        """Until `path` answers 200; a server that died because a port it chose was taken meanwhile
        is started again on a new port (`BIND_RETRIES` times), any other death is an error."""

        def ready() -> bool:
            if not self.alive():
                log = self.log.read_text(errors="replace")[self.log_start :]
                lost_port = any(sign in log for sign in self.LOST_PORT)
                if lost_port and not self.fixed_port and self.binds < self.BIND_RETRIES:
                    stop_group(self.process, timeout=10)  # its workers, if any started
                    self._start(free_port())
                    return False
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log_tail()}")
            return status_of(f"{self.url}{path}") == 200

        wait_until(ready, timeout, f"{self.url}{path}")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        return stop_group(self.process, sig, timeout)


@contextmanager
def serving(target: str, env: dict[str, str], log: Path, timeout: float = 240, port: int | None = None, stop_signal: int = signal.SIGTERM) -> Iterator[Server]:
    """`bentoml serve TARGET` started, waited on until `/readyz` answers 200, and stopped (`stop_signal`
    to its whole process group) when the block ends, however it ends."""
    server = Server(target, env, log, port)
    try:
        server.wait_ready(timeout=timeout)
        yield server
    finally:
        server.stop(stop_signal)


REDIS_SERVER = shutil.which("redis-server")


class RedisServer:
    """`redis-server` on 127.0.0.1 and a free port, its append-only file in `folder` (fsync per write)."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder, self.port = folder, port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                str(REDIS_SERVER),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(folder),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=(folder / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self.answers, 30, f"redis-server on port {self.port}")

    def answers(self) -> bool:
        import redis

        if self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.process.returncode}: {(self.folder / 'redis.log').read_text()[-2000:]}")
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=1).ping())
        except redis.exceptions.ConnectionError:
            return False

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM a server process we started, SIGKILL it if it outlives 30 s (nothing if it already exited)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
