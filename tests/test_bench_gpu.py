"""benchmarks/bench_gpu.py on shrunk configurations: the script that measured docs/benchmarks-gpu.md on
a GPU still runs, writes its JSON and document, and renders the document again from the JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_small_run_writes_json_and_document_and_renders_again(tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--small", "--out-dir", str(tmp_path)]
    command += ["--repeats", "2", "--batches", "1,2", "--compile-budget-s", "1e9", "--skip", "studio,person"]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True, timeout=600)
    results = json.loads((tmp_path / "benchmarks-gpu.json").read_text())
    assert results["small"] is True and results["errors"] == {}
    assert [row["batch"] for row in results["transformer"]["eager"]] == [1, 2]
    assert "torch.compile" in results["transformer"]["skipped"][0]  # the budget left no time to compile
    host = results["host"]
    assert host["png_bytes_level1"] > host["png_bytes_level6"] > 0  # level 1 trades bytes for time
    budget = results["budget"]
    assert budget["gpu_s_per_image"] > 0 and budget["host_s_per_image_level1"] > 0
    document = (tmp_path / "benchmarks-gpu.md").read_text()
    assert "Shrunk configurations" in document and "| eager | 2 |" in document and "## Seconds per image" in document

    (tmp_path / "benchmarks-gpu.md").unlink()
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--render", str(tmp_path / "benchmarks-gpu.json")], check=True, cwd=ROOT, timeout=120
    )
    rendered = (tmp_path / "benchmarks-gpu.md").read_text()
    assert "--render" in rendered and "| eager | 2 |" in rendered


def test_shipped_document_is_the_rendering_of_its_json(tmp_path):
    """docs/benchmarks-gpu.md is what --render writes from docs/benchmarks-gpu.json: no figure edited by hand."""
    copy = tmp_path / "benchmarks-gpu.json"
    copy.write_text((ROOT / "docs" / "benchmarks-gpu.json").read_text())
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--render", str(copy)], check=True, cwd=ROOT, timeout=120)
    shipped = (ROOT / "docs" / "benchmarks-gpu.md").read_text()
    assert copy.with_suffix(".md").read_text().replace(str(copy), "docs/benchmarks-gpu.json") == shipped


def test_person_side_runs_and_keeps_earlier_models(tmp_path):
    """The person part on the CPU against the CPU: the same seeds give the same pixels and masks, no
    result changes a pixel outside its mask, the clicked masks find the rendered garment; a run of some
    models keeps the others' figures from an earlier JSON, naming its command."""
    only_person = ["--skip", "transformer,encoders,vae,scorer,host,studio"]
    first = tmp_path / "first"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--small", "--out-dir", str(first), *only_person]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True, timeout=600)
    person = json.loads((first / "benchmarks-gpu.json").read_text())["person"]
    segmenter, editor, inpainter = person["segmenter"], person["editor"], person["inpainter"]
    assert segmenter["click_mask_iou_gpu_vs_cpu"] == 1.0 and segmenter["parsed_iou_gpu_vs_cpu"] == 1.0
    assert segmenter["click_mask_iou_vs_rendered_gpu"] > 0.7
    assert editor["pixels_gpu_vs_cpu"]["mean"] == 0.0
    assert inpainter["inpaint_pixels_gpu_vs_cpu"]["mean"] == 0.0 and inpainter["tryon_pixels_gpu_vs_cpu"]["mean"] == 0.0
    assert inpainter["gpu_results_changing_pixels_outside_the_mask"] == 0 and inpainter["gpu_results"] == 2 * person["figures"]

    second = tmp_path / "second"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--small", "--out-dir", str(second), *only_person]
    command += ["--person", "segmenter", "--keep", str(first / "benchmarks-gpu.json")]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True, timeout=600)
    again = json.loads((second / "benchmarks-gpu.json").read_text())
    assert again["person"]["editor"] == editor and again["person"]["inpainter"] == inpainter
    assert set(again["kept"]) == {"person.editor", "person.inpainter"}
    document = (second / "benchmarks-gpu.md").read_text()
    assert "## The person side on CUDA" in document and "| editor (`cpu`)" in document
