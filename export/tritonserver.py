"""Run the real `tritonserver` from the nvidia-pytriton wheel on a model repository of our own.

The wheel needs numpy<2, so it lives in its own virtual environment (`make triton-env` creates
`.venv-triton`; FASHION_TRITON_VENV points elsewhere). The binary serves Python-backend models only,
which is what the `cpu` repository holds. `TritonServer` starts it on loopback, waits until every
model reports ready (polling, with the server's log in the error if it dies), and always stops it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fashion_studio.ports import free_port

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VENV = PROJECT_ROOT / ".venv-triton"
SETUP_HINT = "run `make triton-env` (creates .venv-triton with nvidia-pytriton==0.7.0, onnxruntime and numpy<2)"


class TritonUnavailable(RuntimeError):
    """The Triton environment is missing or incomplete; the message says how to create it."""


@dataclass(frozen=True)
class TritonEnv:
    venv: Path
    site_packages: Path
    binary: Path
    backend_dir: Path
    ld_library_path: str

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (self.ld_library_path, os.environ.get("LD_LIBRARY_PATH", "")) if p)
        # The backend's embedded interpreter ignores PYTHONPATH; it finds its `python3` on PATH, and from
        # that venv's pyvenv.cfg its site-packages (numpy<2, onnxruntime) instead of the base Python's.
        env["PATH"] = os.pathsep.join((str(self.venv / "bin"), os.environ.get("PATH", "")))
        env["PYTHONPATH"] = str(self.site_packages)
        env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")
        return env


def triton_env(venv: Path | str | None = None) -> TritonEnv:
    """Locate the tritonserver binary and prepare its Python-backend folder (idempotent)."""
    venv = Path(venv or os.environ.get("FASHION_TRITON_VENV") or DEFAULT_VENV)
    candidates = sorted(venv.glob("lib/python3*/site-packages"))
    if not candidates:
        raise TritonUnavailable(f"no Triton environment at {venv}: {SETUP_HINT}")
    site = candidates[0]
    wheel = site / "pytriton" / "tritonserver"
    binary = wheel / "bin" / "tritonserver"
    if not binary.is_file():
        raise TritonUnavailable(f"{venv} has no tritonserver binary ({binary}): {SETUP_HINT}")
    for module in ("onnxruntime", "numpy"):
        if not (site / module).is_dir():
            raise TritonUnavailable(f"{venv} lacks {module}, which the Python-backend models import: {SETUP_HINT}")
    python_tag = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = wheel / "python_backend_stubs" / python_tag / "triton_python_backend_stub"
    if not stub.is_file():
        raise TritonUnavailable(f"the wheel has no Python-backend stub for Python {python_tag} ({stub})")
    backends = venv / "triton-backends"
    python_backend = backends / "python"
    if not (python_backend / "triton_python_backend_stub").is_file():
        tmp = backends / f".python.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(wheel / "backends" / "python", tmp)
        shutil.copy2(stub, tmp / "triton_python_backend_stub")
        shutil.rmtree(python_backend, ignore_errors=True)
        tmp.rename(python_backend)
    # The stub must load this interpreter's libpython (not the system's), and the wheel's bundled libraries.
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    ld = os.pathsep.join(p for p in (libdir, str(site / "nvidia_pytriton.libs")) if p)
    return TritonEnv(venv=venv, site_packages=site, binary=binary, backend_dir=backends, ld_library_path=ld)


class TritonServer:
    """A tritonserver process on loopback; use as a context manager or call `start()` / `stop()`."""

    def __init__(
        self,
        repository: Path | str,
        *,
        host: str = "127.0.0.1",
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        env: TritonEnv | None = None,
        log_path: Path | str | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.repository = Path(repository).resolve()
        self.host = host
        self.http_port = http_port or free_port(host)
        self.grpc_port = grpc_port or free_port(host)
        self.metrics_port = metrics_port or free_port(host)
        self.env = env or triton_env()
        self.log_path = Path(log_path) if log_path else None
        self.extra_args = extra_args or []
        self.process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        return [
            str(self.env.binary),
            f"--model-repository={self.repository}",
            f"--backend-directory={self.env.backend_dir}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            "--allow-cpu-metrics=true",
            "--exit-on-error=true",
            "--strict-readiness=true",
            "--log-verbose=0",
            *self.extra_args,
        ]

    def start(self, wait_s: float = 120.0) -> TritonServer:
        if self.log_path is None:
            self.log_path = Path(tempfile.gettempdir()) / f"tritonserver-{os.getpid()}-{self.grpc_port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (the server's stdout for its lifetime; closed in stop)
        logger.info("starting tritonserver on %s (gRPC %d, metrics %d) for %s", self.http_url, self.grpc_port, self.metrics_port, self.repository)
        self.process = subprocess.Popen(
            self.command(),
            env=self.env.environ(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait_s:
            try:
                self.wait_ready(wait_s)
            except BaseException:
                self.stop()
                raise
        return self

    def ready(self) -> bool:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.process.returncode} before it was ready:\n{self.log_tail()}")
            if self.ready():
                logger.info("tritonserver ready on %s", self.http_url)
                return
            time.sleep(0.2)
        raise TimeoutError(f"tritonserver not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def exec_foreground(self) -> None:
        """Become the server (exec): Ctrl-C or a signal to this process reaches tritonserver itself."""
        command = self.command()
        os.execve(command[0], command, self.env.environ())

    def __enter__(self) -> TritonServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
