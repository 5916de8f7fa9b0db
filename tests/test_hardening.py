"""Hostile input against a real server: each case is a real request with the status it must get.

The server requires API keys (a hash file written by `fashion-studio keys`, plus one key from the
environment) and runs the CLIP safety filter at threshold 0, so every generated image is blocked:
with random weights CLIP cannot tell concepts apart, and threshold 0 makes every image match. The
in-process tests below cover the safety checkers and the key ring with models that can decide.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fashion_studio.auth import Keyring, TokenBucket, read_key_file
from fashion_studio.cli import app as cli
from fashion_studio.safety import ClipConceptFilter, DiffusersSafetyChecker, blanked, build_checker, resolve_mode, ships_safety_checker
from fashion_studio.settings import Settings
from tests.helpers import free_port, serving, tiny_service_env, wait_until

ENV_KEY = "fsk_from-a-kubernetes-secret-0123456789"
MAX_BODY = 200_000


def add_key(file: Path, name: str, *options: str) -> tuple[str, str]:
    result = CliRunner().invoke(cli, ["keys", "add", name, "--file", str(file), *options])
    assert result.exit_code == 0, result.output
    key_id, key = result.stdout.strip().splitlines()[-1].split()
    return key_id, key


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    file = tmp_path_factory.mktemp("keys") / "api-keys.json"
    made = {
        "ci": add_key(file, "ci", "--rate", "6000", "--burst", "100"),
        "later": add_key(file, "later", "--rate", "6000", "--burst", "100"),
        "limited": add_key(file, "limited", "--rate", "6", "--burst", "2"),
        "old": add_key(file, "old"),
    }
    result = CliRunner().invoke(cli, ["keys", "revoke", made["old"][0], "--file", str(file)])
    assert result.exit_code == 0, result.output
    return file, made


@pytest.fixture(scope="module")
def server(tiny_models, keys, tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening")
    file, _ = keys
    env = tiny_service_env(
        tiny_models,
        root,
        **{
            "FASHION_TRANSLATION_MAX_NEW_TOKENS": "16",
            "FASHION_MAX_ATTEMPTS": "1",
            "FASHION_LIMITS__MAX_BODY_BYTES": str(MAX_BODY),
            "FASHION_API_KEYS_FILE": str(file),
            "FASHION_API_KEYS": ENV_KEY,
            "FASHION_SAFETY_CHECK": "clip",
            "FASHION_SAFETY_THRESHOLD": "0",
        },
    )
    with serving("services.gateway:Studio", env, root / "server.log", timeout=240) as served:
        served.store = root / "store"
        yield served


def post(server, path: str, body: dict | None = None, key: str | None = None, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers.update(kwargs.pop("headers", {}))
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=120, **kwargs)


def png(size: tuple[int, int] = (32, 32), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- API keys ------------------------------------------------------------------------------------


def test_missing_malformed_or_unknown_key_is_401(server):
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}, {"Authorization": "Bearer fsk_not-a-key-we-know-of-0000"}):
        response = httpx.post(f"{server.url}/translate", json={"texts": ["Kleid"]}, headers=headers, timeout=30)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"] == "unauthorized" and response.headers["www-authenticate"].startswith("Bearer")
    # Health and metrics stay open for probes and scrapers.
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 200


def test_valid_keys_from_the_file_and_the_environment_are_served(server, keys):
    _, made = keys
    for key in (made["ci"][1], ENV_KEY):
        response = post(server, "/translate", {"texts": ["Damen-T-Shirt aus Baumwolle"]}, key=key)
        assert response.status_code == 200, response.text
        assert len(response.json()["translations"]) == 1


def test_revoked_key_is_403(server, keys):
    _, made = keys
    response = post(server, "/translate", {"texts": ["Kleid"]}, key=made["old"][1])
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert made["old"][0] in response.json()["limit"]


def test_a_key_revoked_while_serving_is_403_within_seconds(server, keys):
    file, made = keys
    key_id, key = made["later"]
    assert post(server, "/translate", {"texts": []}, key=key).status_code == 422  # authorized, then invalid
    result = CliRunner().invoke(cli, ["keys", "revoke", key_id, "--file", str(file)])
    assert result.exit_code == 0, result.output
    wait_until(lambda: post(server, "/translate", {"texts": []}, key=key).status_code == 403, 15, "the revocation to take effect", interval=0.3)


def test_over_the_per_key_rate_is_429_with_retry_after(server, keys):
    _, made = keys
    key = made["limited"][1]  # 6 per minute, burst 2: the third request in a row is over
    statuses = [post(server, "/translate", {"texts": []}, key=key).status_code for _ in range(2)]
    assert statuses == [422, 422]
    response = post(server, "/translate", {"texts": []}, key=key)
    assert response.status_code == 429 and response.json()["error"] == "rate_limited", response.text
    assert 1 <= int(response.headers["retry-after"]) <= 10
    # Other keys have buckets of their own.
    assert post(server, "/translate", {"texts": []}, key=made["ci"][1]).status_code == 422


def test_keys_are_stored_hashed_and_never_logged(server, keys):
    file, made = keys
    stored = file.read_text()
    assert oct(file.stat().st_mode & 0o777) == "0o600"
    log = server.log.read_text(errors="replace")
    for _, key in made.values():
        assert key not in stored and key not in log
    assert ENV_KEY not in log
    assert {r.id for r in read_key_file(file)} == {key_id for key_id, _ in made.values()}
    listing = CliRunner().invoke(cli, ["keys", "list", "--file", str(file), "--json"])
    assert listing.exit_code == 0 and "sha256" not in listing.stdout and "salt" not in listing.stdout


# --- bounded input -------------------------------------------------------------------------------


def test_huge_prompt_and_control_characters_are_422(server, keys):
    key = keys[1]["ci"][1]
    response = post(server, "/generate", {"prompt": "a dress " * 300}, key=key)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["field"] == "prompt" and "at most 2000 characters" in error["limit"] and "(2400 chars)" in error["value"]
    for text, code in (("a dress\x00", "U+0000"), ("a \x1b[31mred\x1b[0m dress", "U+001B"), ("a dress \ud800", "unicode string")):
        # As JSON escapes (a lone surrogate cannot be sent as UTF-8 at all).
        response = post(server, "/generate", key=key, content=json.dumps({"prompt": text}).encode(), headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (text, response.text)
        assert response.json()["field"] == "prompt" and code in response.json()["limit"], response.text
    response = post(server, "/catalog", {"article_id": "x\x07", "description": "Kleid"}, key=key)
    assert response.status_code == 422 and response.json()["field"] == "article_id"
    response = post(server, "/translate", {"texts": ["ok", "bad\x0b"]}, key=key)
    assert response.status_code == 422 and response.json()["field"] == "texts.1"


def test_pixel_bomb_png_is_413_before_decoding(server, keys):
    # 25 Mpx, over the service's limit (checked from the header), and 400 Mpx, over Pillow's own
    # bomb limit (which stays on): both a few kB of PNG, both refused before a pixel is decoded.
    for size, value in (((5000, 5000), "5000x5000"), ((20_000, 20_000), "image header")):
        bomb = png(size, mode="1")
        assert len(bomb) < MAX_BODY // 2
        response = post(server, "/score", {"image": b64(bomb), "text": "a dress"}, key=keys[1]["ci"][1])
        assert response.status_code == 413, response.text
        assert value in response.json()["value"] and "pixels" in response.json()["limit"], response.text


def test_wrong_magic_bytes_are_415_and_broken_images_422(server, keys):
    key = keys[1]["ci"][1]
    for data in (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", b"%PDF-1.7 not an image", b"<svg xmlns='http://www.w3.org/2000/svg'/>", os.urandom(64)):
        response = post(server, "/score", {"image": b64(data), "text": "a dress"}, key=key)
        assert response.status_code == 415, (data[:8], response.text)
        assert "magic bytes" in response.json()["limit"]
    truncated = png()[:40]  # a PNG signature and header, then nothing
    response = post(server, "/score", {"image": b64(truncated), "text": "a dress"}, key=key)
    assert response.status_code == 422 and response.json()["field"] == "image", response.text
    response = post(server, "/score", {"image": "not base64!", "text": "a dress"}, key=key)
    assert response.status_code == 422 and "base64" in response.json()["limit"]


def test_oversize_body_is_413_with_or_without_content_length(server, keys):
    key = keys[1]["ci"][1]
    response = post(server, "/generate", {"prompt": "x" * (MAX_BODY + 10)}, key=key)
    assert response.status_code == 413 and str(MAX_BODY) in response.json()["limit"]

    def chunks():  # no Content-Length: the limit holds while the body streams in
        yield b'{"prompt": "'
        for _ in range(MAX_BODY // 10_000 + 5):
            yield b"x" * 10_000
        yield b'"}'

    response = httpx.post(
        f"{server.url}/generate", content=chunks(), headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, timeout=60
    )
    assert response.status_code == 413, response.text


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        self.wfile.write(png())

    def log_message(self, *args) -> None:
        pass


def test_urls_in_image_fields_are_422_and_never_fetched(server, keys):
    key = keys[1]["ci"][1]
    listener = HTTPServer(("127.0.0.1", free_port()), _Recorder)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    try:
        local = f"http://127.0.0.1:{listener.server_port}/dress.png"
        for url in (
            local,
            "https://example.com/dress.png",
            "http://169.254.169.254/latest/meta-data/",
            "file:///etc/passwd",
            "ftp://[::1]/x.png",
            " HTTP://localhost/x",
        ):
            response = post(server, "/score", {"image": url, "text": "a dress"}, key=key)
            assert response.status_code == 422, (url, response.text)
            assert response.json()["field"] == "image" and "URLs are not fetched" in response.json()["limit"]
        assert _Recorder.hits == []
    finally:
        listener.shutdown()
    # A data: URL carries the bytes themselves; it is accepted.
    response = post(server, "/score", {"image": "data:image/png;base64," + b64(png()), "text": "a dress"}, key=key)
    assert response.status_code == 200, response.text


# --- safety --------------------------------------------------------------------------------------


def stored_files(server) -> list[Path]:
    return sorted(p for p in server.store.rglob("*") if p.is_file()) if server.store.exists() else []


def test_blocked_images_are_never_stored_and_the_answer_says_why(server, keys):
    key = keys[1]["ci"][1]
    before = stored_files(server)
    response = post(server, "/generate", {"prompt": "a red evening dress", "num_images": 2, "seed": 7}, key=key)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] == "content_blocked" and error["field"] == "prompt"
    assert "clip safety check" in error["limit"] and "2 blocked, none stored" in error["limit"]
    response = post(server, "/generate_image", {"prompt": "a red evening dress"}, key=key)
    assert response.status_code == 422 and response.json()["error"] == "content_blocked"
    response = post(server, "/catalog", {"article_id": "SAFE-1", "description": "Damen-Abendkleid in Rot", "language": "de"}, key=key)
    assert response.status_code == 422 and response.json()["error"] == "content_blocked", response.text
    assert stored_files(server) == before, "a blocked image reached storage"
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'fashion_failures_total{endpoint="/generate",reason="content_blocked"}' in metrics


def test_clip_filter_blocks_only_images_that_match_a_concept():
    red, blue = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))

    def score_pairs(images, texts):  # a stand-in scorer: red images look like "gore"
        return [31.0 if image.getpixel((0, 0))[0] > 200 and text == "gore" else 12.0 for image, text in zip(images, texts)]

    verdicts = ClipConceptFilter(score_pairs, ["nudity", "gore"], threshold=28.0).check([red, blue])
    assert [v.blocked for v in verdicts] == [True, False]
    assert "gore" in verdicts[0].reason and verdicts[1].score == 12.0
    with pytest.raises(ValueError):
        ClipConceptFilter(score_pairs, [], 28.0)


def tiny_safety_checker(folder: Path, threshold: float) -> Path:
    """A StableDiffusionSafetyChecker with a small CLIP and every concept threshold set to `threshold`
    (scores are cosine minus threshold: -2 flags everything, 2 nothing)."""
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 99},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 32, "patch_size": 4},
        projection_dim=16,
    )
    model = StableDiffusionSafetyChecker(config)
    with torch.no_grad():
        model.concept_embeds_weights.fill_(threshold)
        model.special_care_embeds_weights.fill_(threshold)
    model.save_pretrained(folder / "safety_checker")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder / "feature_extractor")
    return folder


def with_safety_checker(sd: Path, target: Path, threshold: float) -> Path:
    shutil.copytree(sd, target, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    index = json.loads((target / "model_index.json").read_text())
    index.update(safety_checker=["stable_diffusion", "StableDiffusionSafetyChecker"], feature_extractor=["transformers", "CLIPImageProcessor"])
    (target / "model_index.json").write_text(json.dumps(index))
    return tiny_safety_checker(target, threshold)


def test_diffusers_checker_is_on_by_default_where_the_model_ships_one(tiny_models, tmp_path):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    assert not ships_safety_checker(tiny_models["sd"])
    assert resolve_mode(Settings(), tiny_models["sd"]) == "off"
    assert build_checker(Settings(), tiny_models["sd"]) is None

    strict = with_safety_checker(tiny_models["sd"], tmp_path / "strict", threshold=-2.0)
    assert ships_safety_checker(strict) and resolve_mode(Settings(), strict) == "diffusers"
    checker = build_checker(Settings(), strict)
    assert isinstance(checker, DiffusersSafetyChecker)
    assert [v.blocked for v in checker.check([image, image])] == [True, True]

    lenient = DiffusersSafetyChecker.load(with_safety_checker(tiny_models["sd"], tmp_path / "lenient", threshold=2.0))
    black = Image.new("RGB", (32, 32))
    verdicts = lenient.check([image, black])
    assert [v.blocked for v in verdicts] == [False, True] and "blacked out" in verdicts[1].reason
    assert blanked(black) and not blanked(image)
    assert resolve_mode(Settings(safety_check="off"), strict) == "off"
    with pytest.raises(ValueError):
        resolve_mode(Settings(safety_check="diffusers"), tiny_models["sd"])


def test_keyring_buckets_refill_and_weak_environment_keys_are_refused():
    bucket = TokenBucket(rate_per_s=2.0, capacity=2.0, tokens=2.0, updated=0.0)
    assert [bucket.take(0.0), bucket.take(0.0)] == [0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0
    with pytest.raises(ValueError, match="at least 16"):
        Keyring(None, "short", 60, 10)
    ring = Keyring(None, f"{ENV_KEY},fsk_another-long-enough-key", 60, 1)
    assert ring.enabled and ring.authorize(f"Bearer {ENV_KEY}").allowed
    assert ring.authorize(f"Bearer {ENV_KEY}").status == 429
    assert ring.authorize("Bearer fsk_another-long-enough-key").allowed
    assert not Keyring(None, None, 60, 10).enabled


def test_every_command_shows_its_help():
    """`--help` of every command and group renders: a help text that reads as console markup (a `[/...]`
    in an example) would end the command with a traceback instead of its options."""
    import typer

    root = typer.main.get_command(cli)

    def paths(command, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        found = [path]
        if getattr(command, "commands", None):  # a group (typer's own click or click's)
            for name, sub in command.commands.items():
                found += paths(sub, (*path, name))
        return found

    every = paths(root, ())
    assert ("catalog",) in every and ("models", "train-mini") in every and len(every) > 30
    for path in every:
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output[-2000:], result.exception)
        assert "Usage:" in result.output, path
