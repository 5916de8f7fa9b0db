"""`bentoml build` packs the services offline, with the serving requirements kept in sync."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_serving_requirements_match_pyproject():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [line for line in (ROOT / "requirements-serving.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert lines == declared, "run `make requirements` after changing pyproject.toml"


def test_bentoml_build_accepts_the_bentofile(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "home"), "BENTOML_DO_NOT_TRACK": "True"}
    result = subprocess.run([sys.executable, "-m", "bentoml", "build", "--output", "tag"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    bentos = list((tmp_path / "home" / "bentos" / "fashion-studio").glob("*/bento.yaml"))
    assert len(bentos) == 1
    bento = bentos[0].parent
    info = yaml.safe_load(bentos[0].read_text())
    assert info["service"] == "services.gateway:Studio"
    assert {s["name"] for s in info["services"]} >= {"studio", "generator", "translator", "scorer"}
    assert (bento / "src" / "services" / "gateway.py").is_file()
    assert (bento / "src" / "fashion_studio" / "generation.py").is_file()
    assert not list((bento / "src").glob("tests/*")) and not (bento / "src" / "models" / "tiny").exists()
    # The default models travel with the Bento, so a container serves them with no model volume.
    shipped = ROOT / "models" / "fashion-mini"
    weights = sorted(shipped.rglob("*.safetensors"))
    assert len(weights) >= 6  # sd: text encoder, unet, vae; clip, marian, judge
    for path in weights:
        assert (bento / "src" / "models" / "fashion-mini" / path.relative_to(shipped)).stat().st_size == path.stat().st_size
