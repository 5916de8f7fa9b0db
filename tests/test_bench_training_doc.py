"""docs/training-speed.md is what `python -m benchmarks.bench_training --render` writes from the JSON beside
it, and its verdict on the OpenMP wait policy follows the measured figures."""

from __future__ import annotations

import copy
import json
import statistics

from benchmarks import bench_training
from tests.helpers import ROOT


def test_shipped_training_speed_document_is_the_rendering_of_its_json(tmp_path):
    (tmp_path / "training-speed.json").write_text((ROOT / "docs" / "training-speed.json").read_text())
    assert bench_training.main(["--render", "--out", str(tmp_path / "training-speed.md")]) == 0
    assert (tmp_path / "training-speed.md").read_text() == (ROOT / "docs" / "training-speed.md").read_text()


def test_the_verdict_follows_the_figures():
    report = json.loads((ROOT / "docs" / "training-speed.json").read_text())
    for name, loop in report["seconds_per_step"].items():  # the medians are those of the samples kept beside them
        assert set(loop) == set(bench_training.POLICIES)
        assert all(loop[p]["median"] == statistics.median(report["samples"][name][p]) for p in loop)
    slower = bench_training.document(report)
    assert "leaves the policy unset" in slower
    even = copy.deepcopy(report)
    for loop in even["seconds_per_step"].values():
        loop["unset"] = dict(loop["PASSIVE"])
    document = bench_training.document(even)
    assert "does not decide the training speed" in document and "leaves the policy unset" not in document
    assert "| inpainter_unet | unset |" in document and "1.00x |" in document
