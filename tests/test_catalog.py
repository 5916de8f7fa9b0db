from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from fashion_studio.catalog import (
    Article,
    CatalogParams,
    CatalogResult,
    catalog_statistics,
    read_articles,
    record_key,
    run_catalog,
)
from fashion_studio.errors import InvalidInputError
from fashion_studio.studio import Studio

DREAM_JOURNEY = (
    "Kinder-Mädchen-T-Shirt mit bestickten Ärmeln. Die Stickerei 'Dream Journey' und die Blumenstickerei an den "
    "Ärmeln machen das schwarze Shirt zu einem Hingucker. Hoher Baumwollanteil."
)
DINO = (
    "Jungen-T-Shirt mit Dino-Frontaufdruck. Der schicke Dino-Frontaufdruck mit verschiedenen Dinosauriern "
    "begeistert kleine Urzeit-Fans. Die angesagte Melange-Optik macht den modernen Look perfekt."
)
SEED_003_KEYS = {"sample_id", "original_description", "generation_prompt", "clip_prompt", "clip_score", "image_path"}


@pytest.fixture()
def studio(settings):
    return Studio(settings)


def test_german_description_to_stored_png_and_metadata(studio, settings):
    params = CatalogParams.from_settings(settings, threshold=0.0)
    result = studio.catalog.process(Article("A-1001", DREAM_JOURNEY, "de"), params)

    # The generation prompt keeps type, colour and key details although the translator is random.
    prompt = result.generation_prompt.lower()
    for word in ("t-shirt", "girls", "black", "dream journey", "embroider", "cotton"):
        assert word in prompt, (word, prompt)
    assert "t-shirt" in result.clip_prompt.lower() and len(result.clip_prompt) < len(result.generation_prompt)
    assert result.passed and len(result.attempts) == 1

    record = studio.storage.get_metadata(result.key)
    assert set(record) >= SEED_003_KEYS
    assert record["sample_id"] == "A-1001"
    assert record["original_description"] == DREAM_JOURNEY
    assert record["generation_prompt"] == result.generation_prompt
    assert record["clip_score"] == result.clip_score
    assert record["translation"] == result.translation
    assert record["attributes"]["product_type"] == "t-shirt"
    # A random translator is never trusted: every attribute comes from the German text.
    assert record["translation_reliable"] is False and result.translation_reliable is False
    assert record["attribute_sources"]["product_type"] == {"t-shirt": "source"}
    assert {s for values in record["attribute_sources"].values() for s in values.values()} == {"source"}
    assert record["seed"] == result.seed and record["attempts"][0]["seed"] == result.seed
    assert record["models"]["generator"]["path"].endswith("sd")
    assert {"translate", "extract", "generate", "score"} <= set(record["timings"])
    image = Image.open(record["image_path"])
    assert image.size == (settings.default_width, settings.default_height)
    assert studio.storage.keys() == [result.key]


def extractions(extractor: str) -> float:
    from fashion_studio import metrics

    return metrics.ATTRIBUTE_EXTRACTIONS.labels(extractor=extractor)._value.get()


def test_each_record_names_the_extractor_and_llm_fallbacks_are_counted(settings, tiny_llm, monkeypatch):
    """An LLM that cannot answer in JSON: the lexicon's attributes stand in, and the record, the result
    and the metric say so rather than naming the LLM; an LLM that answers is named as the producer."""
    studio = Studio(settings.model_copy(update={"llm": str(tiny_llm)}))
    params = CatalogParams.from_settings(settings, threshold=0.0)
    before = extractions("lexicon_fallback")
    failed = studio.catalog.process(Article("A-2001", DINO, "de"), params)
    assert failed.extractor == "lexicon_fallback" and studio.storage.get_metadata(failed.key)["extractor"] == "lexicon_fallback"
    assert failed.attributes["product_type"] == "t-shirt"  # the lexicon's reading
    assert extractions("lexicon_fallback") == before + 1

    extractor = studio.catalog.extractor
    monkeypatch.setattr(extractor, "generate", lambda prompt: '{"product_type": "dress", "colors": ["red"]}')
    before = extractions("llm")
    answered = studio.catalog.process(Article("A-2002", DREAM_JOURNEY, "de"), params)
    assert answered.extractor == "llm" and studio.storage.get_metadata(answered.key)["extractor"] == "llm"
    assert answered.attributes["product_type"] == "dress"
    assert extractions("llm") == before + 1
    assert studio.catalog.process(Article("A-2002", DREAM_JOURNEY, "de"), params).extractor == "llm"  # read back from the record

    plain = Studio(settings).catalog.process(Article("A-2003", DINO, "de"), params)
    assert plain.extractor == "lexicon"


def test_dino_prompt_keeps_product_and_details(studio, settings):
    result = studio.catalog.process(Article("A-1002", DINO, "auto"), CatalogParams.from_settings(settings, threshold=0.0))
    prompt = result.generation_prompt.lower()
    assert "boys" in prompt and "t-shirt" in prompt and "dino" in prompt and "melange" in prompt


def test_gate_retries_under_threshold_and_stops_at_max_attempts(studio, settings):
    params = CatalogParams.from_settings(settings, threshold=100.0, max_attempts=3, seed=5)
    result = studio.catalog.process(Article("A-2", DINO, "de"), params)
    assert not result.passed
    assert [a.attempt for a in result.attempts] == [1, 2, 3]
    assert len({a.seed for a in result.attempts}) == 3
    assert result.clip_score == max(a.clip_score for a in result.attempts)
    assert result.seed == max(result.attempts, key=lambda a: a.clip_score).seed
    record = studio.storage.get_metadata(result.key)
    assert [a["clip_score"] for a in record["attempts"]] == [a.clip_score for a in result.attempts]
    assert record["passed"] is False


def test_gate_stops_at_the_first_attempt_that_passes(studio, settings):
    first = studio.catalog.process(Article("A-3", DINO, "de"), CatalogParams.from_settings(settings, threshold=100.0, max_attempts=2, seed=9))
    threshold = first.attempts[0].clip_score - 0.001  # attempt 1 (same seed and prompt) reaches this: it passes at once
    second = studio.catalog.process(Article("A-3b", DINO, "de"), CatalogParams.from_settings(settings, threshold=threshold, max_attempts=3, seed=9))
    assert second.passed and len(second.attempts) == 1


def test_statistics_for_a_known_set():
    def result(score: float) -> CatalogResult:
        return CatalogResult("a", "k", "", {}, "", "", score, score >= 25, [], 0, "", "")

    stats = catalog_statistics([result(s) for s in (20.0, 24.0, 26.0, 30.0)], threshold=25.0)
    assert stats["count"] == 4
    assert stats["mean"] == pytest.approx(25.0)
    assert stats["median"] == pytest.approx(25.0)
    assert stats["std"] == pytest.approx(3.6055512754639896)  # population std of the four scores
    assert (stats["min"], stats["max"]) == (20.0, 30.0)
    assert stats["pass_rate"] == pytest.approx(0.5)


def write_csv(path: Path, rows: list[tuple[str, str]], header=("article_id", "description")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_read_articles_from_csv_and_xlsx(tmp_path):
    from openpyxl import Workbook

    rows = [("1", DINO), ("2", DREAM_JOURNEY)]
    assert [a.article_id for a in read_articles(write_csv(tmp_path / "a.csv", rows))] == ["1", "2"]
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["sku", "text"])
    sheet.append([1001, DINO])
    workbook.save(tmp_path / "a.xlsx")
    articles = read_articles(tmp_path / "a.xlsx", id_column="sku", description_column="text")
    assert articles == [Article("1001", DINO)]


def declared_huge(path: Path, far_row: int | None = None) -> Path:
    """A small workbook (a header, one article, a cell at `far_row` if given) that declares itself
    A1:XFD1048576, as any tool may write into the file."""
    import io
    import re
    import zipfile

    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.append(["article_id", "description"])
    workbook.active.append(["X-1", DINO])
    if far_row:
        workbook.active.cell(row=far_row, column=3, value="x")
    saved, out = io.BytesIO(), io.BytesIO()
    workbook.save(saved)
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, replaced = re.subn(rb'<dimension ref="[^"]*" ?/>', b'<dimension ref="A1:XFD1048576"/>', data)
                assert replaced == 1
            target.writestr(item, data)
    path.write_bytes(out.getvalue())
    return path


def test_a_workbook_is_read_by_its_cells_not_the_size_it_declares(tmp_path):
    """A few kilobytes declaring 17 billion cells are read as the rows they hold; rows past the limit are
    refused naming the file, before they are held in memory."""
    started = time.perf_counter()
    assert read_articles(declared_huge(tmp_path / "a.xlsx")) == [Article("X-1", DINO)]
    assert [a.article_id for a in read_articles(declared_huge(tmp_path / "b.xlsx", far_row=5000))] == ["X-1", ""]
    with pytest.raises(InvalidInputError) as caught:
        read_articles(declared_huge(tmp_path / "c.xlsx", far_row=5000), max_rows=1000)
    assert caught.value.field == "file" and "at most 1000 rows" in caught.value.limit
    assert time.perf_counter() - started < 30
    # each row is kept as the cells it has, not padded to the columns read (a header of two columns stays two)
    with pytest.raises(InvalidInputError) as column:
        read_articles(declared_huge(tmp_path / "d.xlsx"), id_column="sku")
    assert "['article_id', 'description']" in column.value.limit, column.value.limit


def test_unreadable_spreadsheet_and_missing_column_are_input_errors(tmp_path):
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"this is not a zip file")
    with pytest.raises(InvalidInputError) as info:
        read_articles(broken)
    assert info.value.field == "file" and "readable" in info.value.limit
    with pytest.raises(InvalidInputError) as info:
        read_articles(write_csv(tmp_path / "b.csv", [("1", DINO)], header=("sku", "description")))
    assert info.value.field == "column" and info.value.value == "article_id" and "--id-column" in info.value.limit
    with pytest.raises(InvalidInputError) as info:
        read_articles(tmp_path / "missing.csv")
    assert info.value.field == "file"


def test_catalog_run_writes_statistics_and_rerun_skips(studio, settings, tmp_path):
    articles = [Article(str(i), text, "de") for i, text in enumerate([DINO, DREAM_JOURNEY])]
    params = CatalogParams.from_settings(settings, threshold=0.0)
    results, stats = run_catalog(studio.catalog, articles, params, progress=False)
    assert stats["count"] == 2 and stats["skipped"] == 0 and stats["pass_rate"] == 1.0
    written = json.loads(studio.storage.fs.cat_file(f"{studio.storage.root}/_statistics.json"))
    assert written["mean"] == pytest.approx(sum(r.clip_score for r in results) / 2)
    again, stats = run_catalog(studio.catalog, articles, params, progress=False)
    assert stats["skipped"] == 2 and [r.key for r in again] == [r.key for r in results]


def test_a_refused_article_is_listed_and_the_run_goes_on(studio, settings):
    """An article the pipeline refuses (here an empty description) fails alone, as an uploaded job's row
    does: the articles after it are still made, and the statistics name it with the reason."""
    articles = [Article("R-1", DINO, "de"), Article("R-2", "", "de"), Article("R-3", DREAM_JOURNEY, "de")]
    params = CatalogParams.from_settings(settings, threshold=0.0)
    results, stats = run_catalog(studio.catalog, articles, params, progress=False)
    assert [r.article_id for r in results] == ["R-1", "R-3"] and stats["count"] == 2
    [failed] = stats["failed"]
    assert failed["article_id"] == "R-2" and "description" in failed["error"], failed
    assert json.loads(studio.storage.fs.cat_file(f"{studio.storage.root}/_statistics.json"))["failed"] == stats["failed"]


def test_article_ids_that_share_their_readable_part_keep_their_own_records(studio, settings):
    """Variants whose ids differ only in characters a storage key cannot hold ("ä", "ö"), with one
    description between them, are two articles: two records, each naming its own id."""
    params = CatalogParams.from_settings(settings, threshold=0.0, max_attempts=1)
    first = studio.catalog.process(Article("Kleid-ä", DINO, "de"), params)
    second = studio.catalog.process(Article("Kleid-ö", DINO, "de"), params)
    assert first.key != second.key and not second.skipped
    assert [studio.storage.get_metadata(r.key)["sample_id"] for r in (first, second)] == ["Kleid-ä", "Kleid-ö"]
    # A record an older run stored under such an id's former key (its readable part and a hash without the id)
    # is found again by a re-run, and only for that very id: "SKU/7" has the same former key, not the record.
    article = Article("SKU 7", DINO, "de")
    made = studio.catalog.process(article, params)
    former = record_key(article, params, studio.catalog.generator_name, legacy=True)
    assert former != made.key
    studio.storage.put(former, studio.storage.get_image(made.key), studio.storage.get_metadata(made.key))
    studio.storage.fs.rm([f"{studio.storage.root}/{made.key}.png", f"{studio.storage.root}/{made.key}.json"])
    again = studio.catalog.process(article, params)
    assert again.skipped and again.key == former and again.article_id == "SKU 7"
    slash = studio.catalog.process(Article("SKU/7", DINO, "de"), params)
    assert record_key(Article("SKU/7", DINO, "de"), params, studio.catalog.generator_name, legacy=True) == former
    assert not slash.skipped and slash.key not in (former, made.key) and slash.article_id == "SKU/7"
    # An id the key spells as it is keeps the key it had before ids were hashed, so the records of a
    # catalog run before are still found (and skipped) by a re-run.
    import hashlib
    from dataclasses import asdict

    article = Article("A-1.x_2", DINO, "de")
    before = json.dumps({"description": DINO, "language": "de", "params": asdict(params), "model": "g"}, sort_keys=True)
    assert record_key(article, params, "g") == f"A-1.x_2-{hashlib.sha256(before.encode()).hexdigest()[:12]}"


def test_killed_catalog_run_resumes_without_loss_or_duplicates(settings, tmp_path):
    descriptions = [DINO, DREAM_JOURNEY, "Damen-Sommerkleid in Rot mit Blumenmuster.", "Herren-Jeans in Dunkelblau, Slim Fit."]
    rows = [(f"ART-{i}", descriptions[i % len(descriptions)]) for i in range(12)]
    sheet = write_csv(tmp_path / "articles.csv", rows)
    out = tmp_path / "out"
    env = {
        **os.environ,
        "FASHION_GENERATOR": settings.generator,
        "FASHION_TRANSLATOR": settings.translator,
        "FASHION_SCORER": settings.scorer,
        "FASHION_DEFAULT_STEPS": "2",
        "FASHION_DEFAULT_WIDTH": "32",
        "FASHION_DEFAULT_HEIGHT": "32",
        "FASHION_DEFAULT_GUIDANCE": "0",
    }
    command = [sys.executable, "-m", "fashion_studio.cli", "catalog", str(sheet), "--out", str(out), "--no-progress", "--threshold", "0"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if out.is_dir() and len(list(out.glob("*.json"))) >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    done_before = len(list(out.glob("ART-*.json")))
    assert 2 <= done_before < len(rows)

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    stats = json.loads(rerun.stdout[rerun.stdout.index("{") :])
    assert stats["count"] == len(rows) and stats["skipped"] == done_before

    records = [json.loads(p.read_text()) for p in out.glob("ART-*.json")]
    assert sorted(r["sample_id"] for r in records) == sorted(r[0] for r in rows)
    assert len(list(out.glob("ART-*.png"))) == len(rows)
    for record in records:
        Image.open(record["image_path"]).verify()


def test_sharded_runs_split_the_sheet_and_keep_their_own_statistics(settings, tmp_path):
    rows = [(f"S-{i}", DINO if i % 2 else DREAM_JOURNEY) for i in range(5)]
    sheet = write_csv(tmp_path / "sheet.csv", rows)
    out = tmp_path / "out"
    env = {
        **os.environ,
        "FASHION_GENERATOR": settings.generator,
        "FASHION_TRANSLATOR": settings.translator,
        "FASHION_SCORER": settings.scorer,
        "FASHION_DEFAULT_STEPS": "1",
        "FASHION_DEFAULT_WIDTH": "32",
        "FASHION_DEFAULT_HEIGHT": "32",
        "FASHION_DEFAULT_GUIDANCE": "0",
    }
    base = [sys.executable, "-m", "fashion_studio.cli", "catalog", str(sheet), "--out", str(out), "--no-progress", "--threshold", "0", "--shard-count", "2"]
    for index in (0, 1):
        result = subprocess.run([*base, "--shard-index", str(index)], env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
    stored = sorted(json.loads(p.read_text())["sample_id"] for p in out.glob("S-*.json"))
    assert stored == [r[0] for r in rows]
    counts = [json.loads((out / f"_statistics-{i}-of-2.json").read_text())["count"] for i in (0, 1)]
    assert counts == [3, 2]
    bad = subprocess.run([*base, "--shard-index", "2"], env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "shard_index=2" in bad.stderr
