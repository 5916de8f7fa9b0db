"""docs/training-speed.md is what `python -m benchmarks.bench_training --render` writes from the JSON beside
it, and its verdict on the OpenMP wait policy follows the measured figures."""

from __future__ import annotations

import copy
import json
import statistics

import pytest

from benchmarks import bench_training
from tests.helpers import ROOT


def _report() -> dict:
    return json.loads((ROOT / "docs" / "training-speed.json").read_text())


def test_shipped_training_speed_document_is_the_rendering_of_its_json(tmp_path):
    (tmp_path / "training-speed.json").write_text((ROOT / "docs" / "training-speed.json").read_text())
    assert bench_training.main(["--render", "--out", str(tmp_path / "training-speed.md")]) == 0
    assert (tmp_path / "training-speed.md").read_text() == (ROOT / "docs" / "training-speed.md").read_text()


def test_the_medians_are_those_of_the_samples_kept():
    report = _report()
    for name, loop in report["seconds_per_step"].items():
        assert set(loop) == set(bench_training.POLICIES)
        assert all(loop[p]["median"] == statistics.median(report["samples"][name][p]) for p in loop)


def _with_unset(report: dict, factor: float) -> dict:
    """The report with every unset sample set to PASSIVE's times `factor`."""
    out = copy.deepcopy(report)
    for name, by in out["samples"].items():
        by["unset"] = [v * factor for v in by["PASSIVE"]]
        out["seconds_per_step"][name]["unset"] = {"median": statistics.median(by["unset"]), "min": min(by["unset"]), "max": max(by["unset"])}
    return out


@pytest.mark.parametrize(
    ("factor", "said", "not_said"),
    [
        (0.5, "leaves the policy unset", "PASSIVE is\n  the faster policy"),
        (1.0, "does not decide the training speed", "leaves the policy unset"),
        (1.5, "the faster policy", "leaves the policy unset"),
    ],
)
def test_the_verdict_follows_the_figures(factor, said, not_said):
    document = bench_training.document(_with_unset(_report(), factor))
    assert said in document and not_said not in document
    ratio = f"{1 / factor:.2f}x"
    assert all(f"| {name} | unset |" in document and ratio in document.split(f"| {name} | unset |")[1].split("\n")[0] for name in _report()["samples"])


def test_mixed_figures_say_so():
    report = _with_unset(_report(), 0.5)
    report["samples"]["inpainter_vae"]["unset"] = [v * 1.5 for v in report["samples"]["inpainter_vae"]["PASSIVE"]]
    assert "helps some\n  loops and not others" in bench_training.document(report)


def test_no_repeat_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        bench_training.main(["--repeats", "0", "--out", str(tmp_path / "x.md")])
    assert not (tmp_path / "x.json").exists()
