"""ONNX export of every declared component with parity against PyTorch, manifests, skip, TensorRT plan."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import pytest

from export import onnx_export
from export.onnx_export import DeclarationMismatch, ParityError, check_parity, export_model, sha256_file, verify_graph
from export.specs import TOLERANCES, ExportProfile, specs_for

FAMILIES = ["sd", "sdxl", "flux", "clip", "marian"]
EXPECTED_COMPONENTS = {
    "sd": {"text_encoder", "unet", "vae_decoder", "vae_encoder"},
    "sdxl": {"text_encoder", "text_encoder_2", "unet", "vae_decoder", "vae_encoder"},
    "flux": {"text_encoder", "text_encoder_2", "transformer", "vae_decoder", "vae_encoder"},
    "clip": {"text", "vision"},
    "marian": {"encoder", "decoder", "decoder_with_past"},
}


@pytest.fixture(scope="session")
def exported_models(tiny_models, tmp_path_factory) -> dict[str, Path]:
    """Every tiny family exported once per session (parity-checked as it exports).

    The folder is fixed per session, so the modules that import this fixture find the artifacts
    (the manifest says up to date) instead of exporting again."""
    root = tmp_path_factory.getbasetemp() / "onnx"
    return {family: export_model(tiny_models[family], root / family).out_dir for family in FAMILIES}


def manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


@pytest.mark.parametrize("family", FAMILIES)
def test_every_component_matches_pytorch_within_tolerance(exported_models, family):
    data = manifest(exported_models[family])
    assert set(data["components"]) == EXPECTED_COMPONENTS[family]
    atol, rtol = TOLERANCES["fp32"]
    for name, entry in data["components"].items():
        parity = entry["parity"]
        assert parity["atol"] == atol and parity["rtol"] == rtol
        assert len(parity["points"]) >= 1
        assert set(parity["outputs"]) == {o["name"] for o in entry["outputs"]}, name
        for output, result in parity["outputs"].items():
            assert result["ok"] and result["max_abs"] <= atol, (name, output, result)


@pytest.mark.parametrize("family", FAMILIES)
def test_manifest_records_source_precision_opset_profile_and_hashes(exported_models, tiny_models, family):
    out = exported_models[family]
    data = manifest(out)
    assert data["source"]["path"] == str(Path(tiny_models[family]).resolve())
    assert data["source"]["fingerprint"] == onnx_export.fingerprint(Path(tiny_models[family]))
    assert data["precision"] == "fp32" and data["opset"] == onnx_export.DEFAULT_OPSET
    assert data["profile"] == ExportProfile().describe()
    for entry in data["components"].values():
        verify_graph(next(s for s in specs_for(tiny_models[family]) if s.name == entry["file"].split("/")[0]), out / entry["file"])
        for rel, info in entry["files"].items():
            assert sha256_file(out / rel) == info["sha256"]


def test_rerun_finds_the_artifacts_and_skips(exported_models, tiny_models):
    before = (exported_models["sd"] / "unet" / "model.onnx").stat().st_mtime_ns
    again = export_model(tiny_models["sd"], exported_models["sd"])
    assert again.skipped
    assert (exported_models["sd"] / "unet" / "model.onnx").stat().st_mtime_ns == before
    specs = specs_for(tiny_models["sd"])
    fp = onnx_export.fingerprint(Path(tiny_models["sd"]))
    base = onnx_export.export_key(fp, "fp32", 18, ExportProfile(), specs)
    assert again.key == base
    # Another profile or precision is another artifact.
    assert onnx_export.export_key(fp, "fp32", 18, ExportProfile(batch=(1, 2, 16)), specs) != base
    assert onnx_export.export_key(fp, "fp16", 18, ExportProfile(), specs) != base


def test_a_tampered_artifact_is_exported_again(tiny_models, tmp_path):
    out = tmp_path / "clip"
    export_model(tiny_models["clip"], out, check=False)
    graph = out / "vision" / "model.onnx"
    graph.write_bytes(graph.read_bytes() + b"\0")
    assert not export_model(tiny_models["clip"], out, check=False).skipped


def test_large_weights_go_to_external_data(tiny_models, tmp_path):
    result = export_model(tiny_models["clip"], tmp_path / "clip", external_data_threshold=0)
    for entry in result.manifest["components"].values():
        files = set(entry["files"])
        assert entry["file"] + "_data" in files, files
        assert entry["parity"]["max_abs"] <= TOLERANCES["fp32"][0]


def test_parity_above_tolerance_fails(exported_models, tiny_models, monkeypatch):
    spec = next(s for s in specs_for(tiny_models["sd"]) if s.name == "vae_decoder")
    monkeypatch.setitem(TOLERANCES, "fp32", (0.0, 0.0))
    with pytest.raises(ParityError, match="sd_vae_decoder.sample.*max abs error"):
        check_parity(spec, Path(tiny_models["sd"]), exported_models["sd"] / "vae_decoder" / "model.onnx", "fp32", seed=1)


def test_a_graph_that_differs_from_its_declaration_is_refused(exported_models, tiny_models):
    spec = next(s for s in specs_for(tiny_models["sd"]) if s.name == "unet")
    spec.inputs = (spec.inputs[1], spec.inputs[0], *spec.inputs[2:])
    with pytest.raises(DeclarationMismatch, match="sd_unet"):
        verify_graph(spec, exported_models["sd"] / "unet" / "model.onnx")


def test_translation_through_exported_marian_equals_pytorch(exported_models, settings):
    from fashion_studio.models import resolve
    from fashion_studio.runtimes import load_translation_model
    from fashion_studio.translation import Translator

    texts = ["Ein rotes Kleid aus Baumwolle", "Blaue Jeans mit geradem Bein", "Pullover", "Weiße Bluse mit langen Ärmeln und Knöpfen"]
    torch_translator = Translator.load(settings)
    ort_settings = settings.model_copy(update={"runtime": "onnx", "onnx_dir": exported_models["marian"].parent})
    ref = resolve("translator", settings.translator, settings)
    ort_model = load_translation_model(ort_settings, ref)
    ort_translator = Translator(ort_model, torch_translator.tokenizer, ref, settings.translation_beams, 24)
    torch_translator.max_new_tokens = 24
    assert ort_translator.translate(texts) == torch_translator.translate(texts)
    ort_translator.num_beams = torch_translator.num_beams = 3
    assert ort_translator.translate(texts[:2]) == torch_translator.translate(texts[:2])


def test_tensorrt_dry_run_prints_profiles_covering_the_configured_range(exported_models):
    from export.__main__ import main
    from fashion_studio.settings import Settings

    settings = Settings()
    dirs = [str(exported_models[f]) for f in ("sd", "sdxl", "flux")]
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(["tensorrt", "--dry-run", "--onnx", *dirs]) == 0
    assert "dry run: nothing built" in text.getvalue() and "sd_unet" in text.getvalue() and "min [1, 4" in text.getvalue()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["tensorrt", "--dry-run", "--json", "--onnx", *dirs]) == 0
    plans = {p["model"]: p for p in json.loads(out.getvalue())}
    assert "tensorrt" not in sys.modules  # planning imports no TensorRT
    assert {"sd_unet", "sdxl_unet", "flux_transformer", "sd_vae_decoder", "flux_text_encoder_2"} <= set(plans)
    max_batch = settings.export_max_batch or settings.batching.max_batch_size
    for name, plan in plans.items():
        for tensor, shape in plan["profile"].items():
            assert shape["min"][0] <= 1 and shape["max"][0] >= max_batch, (name, tensor, shape)
            assert all(lo <= opt <= hi for lo, opt, hi in zip(shape["min"], shape["opt"], shape["max"]))
    # Image sizes: the latent ranges times the VAE's scale cover the configured pixel range.
    for family, scale in (("sd", 2), ("sdxl", 2)):
        sample = plans[f"{family}_unet"]["profile"]["sample"]
        assert sample["min"][2] * scale <= settings.export_min_size and sample["max"][2] * scale >= settings.export_max_size
        assert sample["min"][3] * scale <= settings.export_min_size and sample["max"][3] * scale >= settings.export_max_size
        assert sample["max"][0] >= 2 * max_batch  # classifier-free guidance doubles the UNet batch
    decoded = plans["flux_vae_decoder"]["profile"]["latent_sample"]
    assert decoded["min"][2] * 2 <= settings.export_min_size and decoded["max"][2] * 2 >= settings.export_max_size
    tokens = plans["flux_transformer"]["profile"]["hidden_states"]
    assert tokens["min"][1] <= (settings.export_min_size // 4) ** 2 and tokens["max"][1] >= (settings.export_max_size // 4) ** 2


def test_specs_sample_what_they_declare(tiny_models):
    for family in FAMILIES:
        for spec in specs_for(tiny_models[family]):
            for which in ("min", "opt"):
                sizes = spec.sizes(which)
                arrays = spec.random_inputs(sizes, seed=0)
                assert [arrays[t.name].dtype.name for t in spec.inputs] == [t.dtype for t in spec.inputs]
