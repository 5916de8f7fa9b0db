"""Object storage as production uses it, against a real S3 server (SeaweedFS, tests/s3.py): records with
their metadata, a catalog batch job killed and resumed there, and the gateway finding that job's
articles done (one builder of the catalog pipeline, one record key)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from PIL import Image

from fashion_studio.settings import Settings
from fashion_studio.storage import Storage
from tests.helpers import serving, tiny_service_env

ARTICLES = [
    ("S3-1", "Damen-Sommerkleid in Rot mit Blumenmuster."),
    ("S3-2", "Herren-Jeans in Dunkelblau, Slim Fit."),
    ("S3-3", "Gelbe Sneaker für Kinder aus Canvas."),
    ("S3-4", "Schwarzes T-Shirt aus Baumwolle mit Streifen."),
    ("S3-5", "Grüne Wolljacke mit Karomuster."),
    ("S3-6", "Weiße Bluse aus Viskose."),
]


def test_records_round_trip_with_their_metadata(s3_server):
    settings = Settings(storage_url=f"s3://{s3_server.bucket}/roundtrip", **{k.removeprefix("FASHION_").lower(): v for k, v in s3_server.env.items()})
    storage = Storage.from_settings(settings)
    record = storage.put("look-1", Image.new("RGB", (16, 16), (200, 10, 10)), {"sample_id": "look-1", "clip_score": 31.5})

    assert record.image_url == f"s3://{s3_server.bucket}/roundtrip/look-1.png"
    assert storage.exists("look-1") and not storage.exists("look-2")
    assert storage.get_metadata("look-1")["image_url"] == record.image_url
    # Another client (another replica) sees the record at once.
    fs = s3_server.filesystem()
    assert json.loads(fs.cat_file(f"{s3_server.bucket}/roundtrip/look-1.json"))["clip_score"] == 31.5
    with fs.open(f"{s3_server.bucket}/roundtrip/look-1.png", "rb") as handle:
        assert Image.open(handle).convert("RGB").getpixel((0, 0)) == (200, 10, 10)


def test_wrong_credentials_fail_at_start_with_the_servers_answer(s3_server):
    settings = Settings(storage_url=f"s3://{s3_server.bucket}/denied", storage_endpoint_url=s3_server.endpoint, storage_key="nobody", storage_secret="wrong")
    with pytest.raises(PermissionError, match="access key"):
        Storage.from_settings(settings).put("x", Image.new("RGB", (4, 4)), {})


def _count(fs, prefix: str, suffix: str) -> int:
    return sum(1 for name in fs.ls(prefix, detail=False, refresh=True) if name.rsplit("/", 1)[-1].startswith("S3-") and name.endswith(suffix))


def test_killed_batch_job_resumes_on_s3_and_the_gateway_finds_its_articles_done(s3_server, tiny_models, tmp_path):
    prefix = f"{s3_server.bucket}/catalog"
    env = tiny_service_env(tiny_models, tmp_path, FASHION_STORAGE_URL=f"s3://{prefix}", FASHION_CLIP_THRESHOLD="0", **s3_server.env)
    sheet = tmp_path / "articles.csv"
    with sheet.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["article_id", "description"])
        writer.writerows(ARTICLES)
    command = [sys.executable, "-m", "fashion_studio.cli", "catalog", str(sheet), "--no-progress", "--language", "de"]
    fs = s3_server.filesystem()

    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if fs.exists(prefix) and _count(fs, prefix, ".json") >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    done_before = _count(fs, prefix, ".json")
    assert 2 <= done_before < len(ARTICLES)

    # The rerun reads its spreadsheet from the bucket too, as the cluster's catalog Job does.
    fs.put(str(sheet), f"{s3_server.bucket}/input/articles.csv")
    from_bucket = [sys.executable, "-m", "fashion_studio.cli", "catalog", f"s3://{s3_server.bucket}/input/articles.csv", "--no-progress", "--language", "de"]
    missing = subprocess.run(
        [*from_bucket[:4], f"s3://{s3_server.bucket}/input/none.csv", *from_bucket[5:]], env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )
    assert missing.returncode == 2 and "none.csv" in missing.stderr, missing.stderr[-2000:]
    rerun = subprocess.run(from_bucket, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    stats = json.loads(rerun.stdout[rerun.stdout.index("{") :])
    assert stats["count"] == len(ARTICLES) and stats["skipped"] == done_before
    assert _count(fs, prefix, ".json") == len(ARTICLES) and _count(fs, prefix, ".png") == len(ARTICLES)

    # The gateway, on the same settings and bucket, answers an article of the batch job from storage.
    with serving("services.gateway:Studio", env, tmp_path / "server.log") as server:
        article_id, description = ARTICLES[0]
        reply = httpx.post(f"{server.url}/catalog", json={"article_id": article_id, "description": description, "language": "de"}, timeout=120)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["skipped"] is True and body["url"].startswith(f"s3://{prefix}/"), body
        assert _count(fs, prefix, ".json") == len(ARTICLES)
        # A new article over HTTP is stored there too, with its metadata.
        reply = httpx.post(f"{server.url}/catalog", json={"article_id": "S3-http", "description": "Blaues Hemd aus Leinen."}, timeout=120)
        assert reply.status_code == 200 and reply.json()["skipped"] is False, reply.text
        metadata = json.loads(fs.cat_file(reply.json()["metadata_url"]))
        assert metadata["models"]["generator"]["ref"] == env["FASHION_GENERATOR"] and metadata["image_path"].startswith("s3://")
