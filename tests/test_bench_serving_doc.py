"""docs/benchmarks.md is what `python -m benchmarks.bench_serving --render` writes from the JSON beside
it: the figures of the document are those of one run of `make bench-serving`, none edited by hand."""

from __future__ import annotations

import json

from benchmarks import bench_serving
from tests.helpers import ROOT


def test_shipped_serving_document_is_the_rendering_of_its_json(tmp_path):
    (tmp_path / "benchmarks.json").write_text((ROOT / "docs" / "benchmarks.json").read_text())
    assert bench_serving.main(["--render", "--out", str(tmp_path / "benchmarks.md")]) == 0
    assert (tmp_path / "benchmarks.md").read_text() == (ROOT / "docs" / "benchmarks.md").read_text()


def test_round_ratios_are_the_ratios_of_each_round():
    report = json.loads((ROOT / "docs" / "benchmarks.json").read_text())
    rounds = bench_serving.round_ratios(report)
    served8 = [run["images_per_s"] for run in report["closed_loop"]["8"]["runs"]]
    assert rounds["served8_over_inprocess8"] == [s / i for s, i in zip(served8, report["in_process"]["8"]["runs"])]
    median = report["ratios"]["served8_over_inprocess8"]
    assert len(rounds["served32_over_served8"]) == report["rounds"]
    assert min(rounds["served8_over_inprocess8"]) <= median * 1.25 and max(rounds["served8_over_inprocess8"]) >= median * 0.75
