"""The catalog on real German text: the shipped translator says when it is lost, and the prompt then
names nothing the description does not; the held-out evaluation set is apart from all training text."""

from __future__ import annotations

import re

import pytest

from fashion_studio import metrics
from fashion_studio.attributes import extract_attributes
from fashion_studio.catalog import Article, CatalogParams, CatalogPipeline, trusted_attributes
from fashion_studio.catalog_eval import attribute_scores, chrf, invented, load_examples
from fashion_studio.mini import MINI_DIR
from fashion_studio.studio import Studio
from fashion_studio.translation import Translation, Translator

pytestmark = pytest.mark.skipif(not (MINI_DIR / "marian" / "model.safetensors").is_file(), reason="fashion-mini weights are not in models/fashion-mini")

# Ordinary shop text, far from the translator's training sentences.
OUT_OF_VOCABULARY = "Damen-Bluse mit Knotendetail. Die weiße Bluse aus leichter Viskose fällt locker und hat einen kleinen Stehkragen."
IN_VOCABULARY = "Rotes Damenkleid aus Baumwolle. Perfekt für den Sommer."


@pytest.fixture(scope="module")
def translator():
    from fashion_studio.settings import Settings

    return Translator.load(Settings(translator=str(MINI_DIR / "marian")))


@pytest.fixture()
def pipeline(settings, translator):
    """Tiny generator and scorer (the image is not the point here), the shipped translator."""
    studio = Studio(settings)
    return CatalogPipeline(
        translate=translator.translate_scored,
        generate=studio.generator.generate,
        score=studio.scorer.score,
        storage=studio.storage,
        settings=settings,
    )


def _unreliable_count() -> float:
    return metrics.CATALOG_TRANSLATIONS.labels(verdict="unreliable")._value.get()


def test_out_of_vocabulary_description_is_flagged_and_its_prompt_invents_nothing(pipeline, settings):
    before = _unreliable_count()
    result = pipeline.process(Article("DE-1", OUT_OF_VOCABULARY, "de"), CatalogParams.from_settings(settings, threshold=0.0))

    assert not result.translation_reliable
    assert result.translation_confidence is not None and result.translation_confidence < settings.translation_min_confidence
    assert _unreliable_count() == before + 1
    attributes = result.attributes
    assert (attributes["product_type"], attributes["colors"], attributes["materials"], attributes["patterns"]) == ("blouse", ["white"], ["viscose"], [])
    assert {source for values in result.attribute_sources.values() for source in values.values()} == {"source"}
    prompt = result.generation_prompt.lower()
    assert "blouse" in prompt and "white" in prompt and "viscose" in prompt
    for word in ("trousers", "stripes", "mesh", "yellow", "poplin"):
        assert word not in prompt, (word, prompt)

    record = pipeline.storage.get_metadata(result.key)
    assert record["translation_reliable"] is False
    assert record["translation_confidence"] == result.translation_confidence
    assert record["attribute_sources"]["colors"] == {"white": "source"}


def test_in_vocabulary_description_is_translated_and_not_flagged(pipeline, settings):
    result = pipeline.process(Article("DE-2", IN_VOCABULARY, "de"), CatalogParams.from_settings(settings, threshold=0.0))
    assert result.translation == "Red women's dress made of cotton. Perfect for summer."
    assert result.translation_reliable and result.translation_confidence >= settings.translation_min_confidence
    assert result.attributes["colors"] == ["red"] and result.attributes["materials"] == ["cotton"]
    assert result.attribute_sources["product_type"] == {"dress": "source"}


def test_translator_confidence_separates_known_from_unknown_text(translator):
    known, unknown = translator.translate_scored([IN_VOCABULARY, OUT_OF_VOCABULARY])
    assert known.reliable and not unknown.reliable
    assert known.confidence > unknown.confidence
    # The batch answer equals the single one (padding does not move the score).
    alone = translator.translate_scored([OUT_OF_VOCABULARY])[0]
    assert alone.text == unknown.text and alone.confidence == pytest.approx(unknown.confidence, abs=1e-3)


def test_a_translation_cut_short_by_the_token_limits_is_never_reliable(translator):
    """A source longer than the model reads, or an output its token limit stops before its end, is only a
    part of the text: whatever its confidence, the catalog must not trust it."""
    whole = translator.translate_scored([IN_VOCABULARY])[0]
    assert whole.reliable
    limit, translator.max_new_tokens = translator.max_new_tokens, 4
    try:
        cut = translator.translate_scored([IN_VOCABULARY])[0]
    finally:
        translator.max_new_tokens = limit
    assert cut.text != whole.text and whole.text.startswith(cut.text) and not cut.reliable, (whole, cut)
    reads = min(translator.tokenizer.model_max_length, translator.model.config.max_position_embeddings)
    long = " ".join([IN_VOCABULARY] * (reads // 8))  # well over `reads` tokens
    assert len(translator.tokenizer(long)["input_ids"]) > reads
    assert not translator.translate_scored([long])[0].reliable


def test_a_translation_only_attribute_enters_only_when_the_translation_is_reliable():
    source = extract_attributes("Bluse in Weiß.", "de")
    translated = extract_attributes("White blouse with stripes made of mesh.", "en")
    guessed = trusted_attributes(source, translated, Translation("White blouse with stripes made of mesh.", 0.2, False))
    trusted = trusted_attributes(source, translated, Translation("White blouse with stripes made of mesh.", 0.9, True))
    assert guessed.patterns == [] and guessed.materials == []
    assert trusted.patterns == ["stripes"] and trusted.materials == ["mesh"]


def test_bare_text_from_a_translator_is_not_trusted():
    assert not Translation.of("Red dress.").reliable
    assert Translation.of({"text": "Red dress.", "confidence": 0.9, "reliable": True}).reliable


def test_eval_set_is_large_labelled_and_apart_from_all_training_text():
    from fashion_studio.mini.data import HELDOUT, TRAIN, text_pairs
    from fashion_studio.mini.text import EXTRAS, lexicon_pairs

    examples = load_examples()
    assert len(examples) >= 100
    assert all(e.labels["product_type"] and e.english for e in examples)
    kinds = {e.labels["product_type"] for e in examples}
    assert {"blouse", "jeans", "cardigan", "boxer shorts", "pyjamas", "hat", "sweater"} <= kinds

    def sentences(text: str) -> set[str]:
        return {s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()}

    corpus: set[str] = set()
    for de, _ in [*text_pairs(40000, 0, TRAIN), *text_pairs(500, 7, HELDOUT), *lexicon_pairs(20000, 0)]:
        corpus |= sentences(de)
    corpus |= {de for de, _ in EXTRAS}
    for example in examples:
        overlap = sentences(example.german) & corpus
        assert not overlap, (example.id, overlap)


def test_attribute_scores_count_both_directions():
    examples = load_examples()[:2]
    exact = [extract_attributes(e.german, "de") for e in examples]
    scores = attribute_scores(exact, examples)
    assert scores["all"]["precision"] == 1.0 and scores["all"]["recall"] == 1.0
    assert invented(extract_attributes("Gelbe gestreifte Bluse aus Mesh.", "de"), examples[0].labels) == {
        "colors": ["yellow"],
        "patterns": ["stripes"],
        "materials": ["mesh"],
    }


def test_chrf_bounds():
    assert chrf(["a red dress"], ["a red dress"]) == 100.0
    assert chrf(["xyz"], ["abc"]) == 0.0
    assert 0.0 < chrf(["a red dress"], ["a blue dress"]) < 100.0
