"""Attribute extraction: German/English catalog descriptions -> validated English attributes."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fashion_studio.attributes import (
    MAX_ITEMS,
    PRODUCT_CATEGORY,
    PRODUCTS,
    Attributes,
    LexiconExtractor,
    LLMExtractor,
    detect_language,
    extract_attributes,
    lexicon_size,
    parse_llm_output,
)
from fashion_studio.errors import InvalidInputError, ModelNotFoundError

DREAM_JOURNEY = (
    "Kinder-Mädchen-T-Shirt mit bestickten Ärmeln. Die Stickerei 'Dream Journey' und die Blumenstickerei an den "
    "Ärmeln machen das Shirt zu einem Hingucker. Hoher Baumwollanteil."
)
DINO = (
    "Jungen-T-Shirt mit Dino-Frontaufdruck. Der schicke Dino-Frontaufdruck mit verschiedenen Dinosauriern "
    "begeistert kleine Urzeit-Fans. Die angesagte Melange-Optik macht den modernen Look perfekt."
)


# --- seed 003 -------------------------------------------------------------------------------------


def test_dream_journey_seed():
    a = extract_attributes(DREAM_JOURNEY)
    assert a.language == "de"
    assert (a.product_type, a.category, a.target_group) == ("t-shirt", "tops", "girls")
    assert a.printed_text == ["Dream Journey"]
    assert a.materials == ["cotton"]
    assert a.design_details == ["embroidered sleeves", "floral embroidery"]
    assert a.colors == [] and a.patterns == [] and a.fit is None
    assert a.subject() == "a girls' t-shirt"
    assert a.details() == ["cotton", "embroidered sleeves", "floral embroidery", "text 'Dream Journey'"]


def test_dino_seed():
    a = extract_attributes(DINO)
    assert (a.product_type, a.category, a.target_group) == ("t-shirt", "tops", "boys")
    assert a.patterns == ["melange"]
    assert a.design_details == ["dino front print", "various dinosaurs"]
    assert a.printed_text == [] and a.colors == []
    assert a.subject() == "a boys' t-shirt"


def test_seed_with_colour_named():
    a = extract_attributes(DREAM_JOURNEY.replace("das Shirt", "das schwarze Shirt"))
    assert a.colors == ["black"]
    assert a.details()[0] == "black"
    assert "black" not in a.subject()


# --- German catalog descriptions ------------------------------------------------------------------

# (description, product_type, target_group, colors, other expected fields: each a subset check)
# fmt: off
GERMAN_CASES = [
    ("Damenbluse mit Rüschen am Ausschnitt. Die weiße Bluse aus 100 % Viskose hat lange Ärmel mit Manschetten.",
     "blouse", "women", ["white"], {"materials": ["viscose"], "design_details": ["ruffles", "long sleeves", "cuffs"]}),
    ("Herrenhemd in Hellblau mit Kentkragen und Brusttasche. Slim Fit, aus reiner Baumwolle.",
     "shirt", "men", ["light blue"], {"materials": ["cotton"], "design_details": ["kent collar", "chest pocket"], "fit": "slim fit"}),
    ("Schwarzes Damen-Kleid mit Blumenprint und Wickeloptik. Midilänge, figurbetonter Schnitt.",
     "dress", "women", ["black"], {"patterns": ["floral"], "design_details": ["floral print", "wrap style", "midi length"], "fit": "figure-hugging"}),
    ("Mädchen-Sommerkleid in Rosa mit Einhorn-Applikation und Tüllrock.",
     "dress", "girls", ["pink"], {"materials": ["tulle"], "design_details": ["unicorn appliqué"]}),
    ("Jeansjacke für Herren im Used-Look mit Knopfleiste und zwei Brusttaschen.",
     "jacket", "men", [], {"materials": ["denim"], "design_details": ["distressed look", "button placket", "chest pockets"]}),
    ("Kapuzenpullover für Jungen in Dunkelblau mit Kängurutasche und Frontprint.",
     "hoodie", "boys", ["dark blue"], {"design_details": ["kangaroo pocket", "front print"]}),
    ("Damen Sneaker aus Leder in Weiß mit Plateausohle.",
     "sneakers", "women", ["white"], {"materials": ["leather"], "design_details": ["platform sole"], "category": "shoes"}),
    ("Turnschuhe für Kinder in Grau und Neongelb mit Klettverschluss.",
     "sneakers", "children", ["grey", "neon yellow"], {"design_details": ["hook-and-loop fastening"]}),
    ("Gestreiftes Langarmshirt für Mädchen in Marineblau und Weiß aus Bio-Baumwolle.",
     "long-sleeve top", "girls", ["navy", "white"], {"patterns": ["stripes"], "materials": ["organic cotton"]}),
    ("Herren Chinohose in Beige, Regular Fit, mit Gürtelschlaufen und Seitentaschen.",
     "chinos", "men", ["beige"], {"fit": "regular fit", "design_details": ["belt loops", "side pockets"], "category": "bottoms"}),
    ("Damen Jeans im Skinny Fit in Hellblau mit High Waist.",
     "jeans", "women", ["light blue"], {"fit": "skinny", "design_details": ["high waist"]}),
    ("Karierter Wollmantel für Damen in Camel mit Reverskragen und Pattentaschen.",
     "coat", "women", ["camel"], {"patterns": ["checks"], "materials": ["wool"], "design_details": ["lapel collar", "flap pockets"]}),
    ("Steppjacke für Jungen in Olivgrün mit abnehmbarer Kapuze und Reißverschluss.",
     "jacket", "boys", ["olive"], {"design_details": ["quilted", "detachable hood", "zip"], "category": "outerwear"}),
    ("Lederstiefeletten für Damen in Cognac mit Blockabsatz.",
     "ankle boots", "women", ["cognac"], {"materials": ["leather"], "design_details": ["block heel"]}),
    ("Umhängetasche aus Kunstleder in Schwarz mit goldenen Details.",
     "crossbody bag", None, ["black"], {"materials": ["faux leather"], "design_details": ["gold details"], "category": "accessories"}),
    ("Strickmütze für Kinder in Bordeaux mit Bommel.",
     "beanie", "children", ["burgundy"], {"materials": ["knit"], "design_details": ["pompom"]}),
    ("Gepunkteter Rock für Damen in Navy mit elastischem Bund.",
     "skirt", "women", ["navy"], {"patterns": ["dots"], "design_details": ["elastic waistband"]}),
    ("Oversized Hoodie für Herren in Anthrazit mit Logo-Stickerei auf der Brust.",
     "hoodie", "men", ["charcoal"], {"fit": "oversized", "design_details": ["logo embroidery"]}),
    ("Baby-Body aus Baumwolle in Mint mit Druckknöpfen und Tiermotiven.",
     "bodysuit", "baby", ["mint"], {"materials": ["cotton"], "design_details": ["press studs", "animal motif"]}),
    ("Herren Poloshirt Kurzarm Blau aus Piqué-Baumwolle.",
     "polo shirt", "men", ["blue"], {"materials": ["piqué", "cotton"], "design_details": ["short sleeves"]}),
    ("Schwarze Damen-Leggings mit seitlichen Streifen.",
     "leggings", "women", ["black"], {"patterns": ["stripes"]}),
    ("Badeanzug für Mädchen in Türkis mit Blumenmuster.",
     "swimsuit", "girls", ["turquoise"], {"patterns": ["floral"], "category": "swimwear"}),
    ("Herren-Shorts in Khaki mit Cargotaschen und Kordelzug.",
     "shorts", "men", ["khaki"], {"design_details": ["cargo pockets", "drawstring"]}),
    ("Weißes T-Shirt-Kleid für Damen mit schwarzem Schriftzug „Bonjour“.",
     "dress", "women", ["white"], {"design_details": ["black lettering"], "printed_text": ["Bonjour"]}),
    ("Wildleder-Sandalen für Damen in Taupe mit verstellbaren Riemen.",
     "sandals", "women", ["taupe"], {"materials": ["suede"], "design_details": ["adjustable strap"]}),
    ("Strickjacke für Mädchen in Hellgrau meliert mit Perlmuttknöpfen.",
     "cardigan", "girls", ["light grey"], {"patterns": ["melange"], "design_details": ["mother-of-pearl buttons"]}),
    ("Daunenparka für Herren in Dunkelgrün mit Kunstfellkragen an der Kapuze.",
     "parka", "men", ["dark green"], {"materials": ["down"], "design_details": ["faux fur collar", "hood"]}),
    ("Seidenschal für Damen mit Paisley-Muster in Rot und Gold.",
     "scarf", "women", ["red", "gold"], {"materials": ["silk"], "patterns": ["paisley"]}),
    ("Jungen Jogginghose in Grau meliert mit Bündchen und Dino-Aufdruck.",
     "joggers", "boys", ["grey"], {"patterns": ["melange"], "design_details": ["ribbed cuffs", "dino print"]}),
    ("Bikini für Damen in Leoprint.",
     "bikini", "women", [], {"patterns": ["animal print"]}),
    ("Ledergürtel für Herren in Braun mit Metallschnalle.",
     "belt", "men", ["brown"], {"materials": ["leather"], "design_details": ["metal buckle"]}),
    ("Rote Damen-Pumps aus Lackleder.",
     "pumps", "women", ["red"], {"materials": ["patent leather"]}),
    ("Herren Boxershorts im 3er-Pack in Schwarz, Grau und Navy.",
     "boxer shorts", "men", ["black", "grey", "navy"], {"category": "underwear"}),
    ("Kinder-Regenjacke in Gelb mit Kapuze und reflektierenden Details.",
     "rain jacket", "children", ["yellow"], {"design_details": ["hood"]}),
    ("Bestickte Tunika für Damen in Ecru mit V-Ausschnitt und Dreiviertelärmeln.",
     "tunic", "women", ["ecru"], {"design_details": ["embroidered", "v-neck", "three-quarter sleeves"]}),
    ("Kapuzenpullover für Damen und Herren in Grau.", "hoodie", "unisex", ["grey"], {}),
    ("Hellgraues Sweatshirt mit dunkelblauen Ärmeln.", "sweatshirt", None, ["light grey"], {"design_details": ["dark blue sleeves"]}),
    ("Olivgrüne Cargohose.", "trousers", None, ["olive"], {"design_details": ["cargo pockets"]}),
    ("Maxikleid mit Spaghettiträgern und Rückenausschnitt.",
     "dress", None, [], {"design_details": ["maxi length", "spaghetti straps", "open back"]}),
    ("Kleid mit Gürtel in Senfgelb.", "dress", None, ["mustard"], {"design_details": ["belt"]}),
    ("Tasche aus Leder in Cognac.", "bag", None, ["cognac"], {"materials": ["leather"]}),
    ("Jeans mit fünf Taschen.", "jeans", None, [], {"design_details": ["pockets"]}),
]
# fmt: on


@pytest.mark.parametrize(("text", "product_type", "target_group", "colors", "expected"), GERMAN_CASES)
def test_german_descriptions(text, product_type, target_group, colors, expected):
    a = extract_attributes(text)
    assert a.language == "de"
    assert a.product_type == product_type
    assert a.target_group == target_group
    assert a.colors == colors
    assert a.category == PRODUCT_CATEGORY[product_type]
    for name, value in expected.items():
        actual = getattr(a, name)
        if isinstance(value, list):
            assert [v for v in value if v not in actual] == [], (name, actual)
        else:
            assert actual == value, (name, actual)


def test_german_table_covers_every_category_and_wearer():
    categories = {PRODUCT_CATEGORY[case[1]] for case in GERMAN_CASES}
    assert {"tops", "bottoms", "dresses", "outerwear", "shoes", "accessories", "underwear", "swimwear"} <= categories
    assert {"women", "men", "girls", "boys", "children", "baby", "unisex"} <= {case[2] for case in GERMAN_CASES}


@pytest.mark.parametrize(
    ("text", "product_type", "target_group"),
    [
        ("Damenbluse", "blouse", "women"),
        ("Herrenhemd", "shirt", "men"),
        ("Kinder-Mädchen-T-Shirt", "t-shirt", "girls"),
        ("Jungen-T-Shirt", "t-shirt", "boys"),
        ("T-Shirt-Kleid", "dress", None),
        ("Kapuzenpullover", "hoodie", None),
        ("Jeansjacke", "jacket", None),
        ("Turnschuhe", "sneakers", None),
        ("Damenhandtasche", "handbag", "women"),
        ("Babyschuhe aus Leder", "shoes", "baby"),
        ("Übergangsjacke für Mädchen", "jacket", "girls"),
        ("Etuikleid in Rot", "dress", None),  # unknown modifier: the head noun still counts
        ("Jeans-Shorts für Damen", "shorts", "women"),
    ],
)
def test_german_compounds(text, product_type, target_group):
    a = extract_attributes(text, "de")
    assert (a.product_type, a.target_group) == (product_type, target_group)


def test_compound_modifiers_are_not_products():
    a = extract_attributes("Blumenstickerei am Saum.", "de")
    assert a.product_type is None and a.category is None
    assert "floral embroidery" in a.design_details
    jacket = extract_attributes("Jeansjacke", "de")
    assert jacket.materials == ["denim"]


def test_first_head_of_first_sentence_wins():
    a = extract_attributes("Hose aus Cord. Passt zu jeder Jacke und jedem Hemd.", "de")
    assert a.product_type == "trousers" and a.materials == ["corduroy"]


@pytest.mark.parametrize(
    ("form", "colour"),
    [
        ("Schwarz", "black"),
        ("Schwarze", "black"),
        ("Schwarzen", "black"),
        ("Schwarzes", "black"),
        ("Schwarzer", "black"),
        ("Weiße", "white"),
        ("Weisses", "white"),
        ("Grüne", "green"),
        ("Dunkelblaue", "dark blue"),
        ("Hellgraues", "light grey"),
        ("Marineblaue", "navy"),
        ("Bordeauxrote", "burgundy"),
        ("Bordeaux", "burgundy"),
        ("Oliv", "olive"),
        ("Olivgrünes", "olive"),
        ("Weinroter", "burgundy"),
        ("Lila", "lilac"),
        ("Beigefarbene", "beige"),
        ("Neongelbe", "neon yellow"),
        ("Anthrazitfarbenes", "charcoal"),
    ],
)
def test_inflected_german_colours(form, colour):
    assert extract_attributes(f"{form} Jacke für Damen.", "de").colors == [colour]


def test_colour_of_a_detail_stays_with_the_detail():
    a = extract_attributes("Schwarzes T-Shirt mit weißem Aufdruck.", "de")
    assert a.colors == ["black"]
    assert a.design_details == ["white print"]


def test_colour_pairs():
    assert extract_attributes("T-Shirt-Kleid in Schwarz-Weiß.").colors == ["black", "white"]


# --- English ----------------------------------------------------------------------------------------

# fmt: off
ENGLISH_CASES = [
    ("Girls' t-shirt with embroidered sleeves and 'Dream Journey' lettering. Made from soft cotton.",
     "t-shirt", "girls", [], {"printed_text": ["Dream Journey"], "design_details": ["embroidered sleeves"], "materials": ["cotton"]}),
    ("Boys' T-shirt with dino front print. The cool dino print features various dinosaurs in a trendy melange look.",
     "t-shirt", "boys", [], {"design_details": ["dino front print", "various dinosaurs"], "patterns": ["melange"]}),
    ("Women's floral midi dress with puff sleeves and a tie waist. Made from 100% viscose.",
     "dress", "women", [], {"patterns": ["floral"], "design_details": ["puff sleeves", "tie waist"], "materials": ["viscose"]}),
    ("Men's slim fit shirt in navy blue with a button-down collar and chest pocket.",
     "shirt", "men", ["navy"], {"fit": "slim fit", "design_details": ["button-down collar", "chest pocket"]}),
    ("Black leather ankle boots for women with a block heel and side zip.",
     "ankle boots", "women", ["black"], {"materials": ["leather"], "design_details": ["block heel", "side zip"]}),
    ("Kids' striped hoodie in light grey with a kangaroo pocket.",
     "hoodie", "children", ["light grey"], {"patterns": ["stripes"]}),
    ('Unisex oversized sweatshirt in dark green with a "Stay Wild" print on the back.',
     "sweatshirt", "unisex", ["dark green"], {"fit": "oversized", "printed_text": ["Stay Wild"]}),
    ("Women’s denim jacket with distressed details.", "jacket", "women", [], {"materials": ["denim"]}),
    ("Baby romper in pink cotton with press studs.", "romper", "baby", ["pink"], {"design_details": ["press studs"]}),
]
# fmt: on


@pytest.mark.parametrize(("text", "product_type", "target_group", "colors", "expected"), ENGLISH_CASES)
def test_english_descriptions(text, product_type, target_group, colors, expected):
    a = extract_attributes(text)
    assert a.language == "en"
    assert (a.product_type, a.target_group, a.colors) == (product_type, target_group, colors)
    for name, value in expected.items():
        actual = getattr(a, name)
        if isinstance(value, list):
            assert [v for v in value if v not in actual] == [], (name, actual)
        else:
            assert actual == value


def test_english_shirt_is_not_a_german_shirt():
    assert extract_attributes("Shirt with a kent collar.", "en").product_type == "shirt"
    assert extract_attributes("Shirt mit Print.", "de").product_type == "t-shirt"


# --- language detection -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        (DREAM_JOURNEY, "de"),
        (DINO, "de"),
        ("Damen Sneaker", "de"),
        ("Herren Poloshirt Kurzarm Blau", "de"),
        ("Größe M, Farbe: Weiß", "de"),
        ("Women's floral dress with puff sleeves.", "en"),
        ("Black t-shirt for men", "en"),
        ("This jacket is made from recycled polyester.", "en"),
        ("Sneaker", "de"),  # no evidence either way: the catalog's language
    ],
)
def test_detect_language(text, language):
    assert detect_language(text) == language


def test_language_argument_overrides_detection():
    assert extract_attributes("Black t-shirt", "de").language == "de"
    assert extract_attributes("Schwarzes T-Shirt", "en").language == "en"


# --- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \n\t ", "x" * 100_000, "Kleid " * 1001])
def test_invalid_descriptions_name_the_field(text):
    with pytest.raises(InvalidInputError) as info:
        extract_attributes(text)
    assert info.value.field == "description"
    assert str(info.value).startswith("description=")
    assert info.value.limit


def test_non_string_description():
    with pytest.raises(InvalidInputError) as info:
        LexiconExtractor().extract(None)  # type: ignore[arg-type]
    assert info.value.field == "description"


def test_bad_language_argument():
    with pytest.raises(InvalidInputError) as info:
        extract_attributes("Kleid", "fr")  # type: ignore[arg-type]
    assert info.value.field == "language"


def test_longest_allowed_description():
    text = ("Damen Kleid in Rot. " * 300)[:5000]
    assert extract_attributes(text).product_type == "dress"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=300).filter(lambda s: s.strip()))
def test_any_text_gives_valid_attributes(text):
    a = extract_attributes(text)
    assert Attributes.model_validate(a.model_dump()) == a
    for name in ("colors", "materials", "patterns", "design_details", "printed_text"):
        assert len(getattr(a, name)) <= MAX_ITEMS


# --- schema ---------------------------------------------------------------------------------------------


def test_schema_cleans_and_bounds_lists():
    a = Attributes(
        colors=[" Black ", "black", "", "White"],
        printed_text=["Dream  Journey", "Dream Journey"],
        product_type="  T-Shirt ",
        target_group="Girls",
        category="Tops",
    )
    assert a.colors == ["black", "white"]
    assert a.printed_text == ["Dream Journey"]
    assert (a.product_type, a.target_group, a.category) == ("t-shirt", "girls", "tops")
    assert len(Attributes(colors=[f"colour {i}" for i in range(30)]).colors) == MAX_ITEMS


@pytest.mark.parametrize(
    "data",
    [
        {"colors": ["x" * 81]},
        {"target_group": "aliens"},
        {"category": "furniture"},
        {"colour": ["black"]},
        {"colors": [1, 2]},
        {"product_type": "x" * 41},
        {"language": "fr"},
    ],
)
def test_schema_rejects(data):
    with pytest.raises(ValueError):
        Attributes.model_validate(data)


def test_target_group_synonyms():
    assert Attributes(target_group="kids").target_group == "children"
    assert Attributes(target_group="Women's").target_group == "women"


@pytest.mark.parametrize(
    ("attributes", "subject"),
    [
        (Attributes(product_type="t-shirt", target_group="girls", colors=["black"]), "a girls' t-shirt"),
        (Attributes(product_type="dress", target_group="women"), "a women's dress"),
        (Attributes(product_type="sneakers"), "a pair of sneakers"),
        (Attributes(product_type="jeans", target_group="men"), "a pair of men's jeans"),
        (Attributes(product_type="anorak"), "an anorak"),
        (Attributes(product_type="hoodie", target_group="unisex"), "a unisex hoodie"),
        (Attributes(product_type="bodysuit", target_group="baby"), "a baby bodysuit"),
        (Attributes(product_type="hoodie", target_group="children"), "a children's hoodie"),
        (Attributes(), "a garment"),
    ],
)
def test_subject(attributes, subject):
    assert attributes.subject() == subject


def test_details_order_and_phrasing():
    a = Attributes(
        product_type="t-shirt",
        colors=["black", "white", "red"],
        materials=["cotton"],
        patterns=["stripes"],
        design_details=["dino front print"],
        fit="oversized",
        printed_text=["Dream Journey"],
    )
    assert a.details() == [
        "black, white and red",
        "cotton",
        "stripes",
        "dino front print",
        "oversized",
        "text 'Dream Journey'",
    ]
    assert Attributes(colors=["black", "white"]).details() == ["black and white"]
    assert Attributes().details() == []


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("T-Shirt mit Print „Hallo Welt“.", ["Hallo Welt"]),
        ("T-Shirt mit Print ‚Hallo‘ und »Welt«.", ["Hallo", "Welt"]),
        ('Shirt with "Good Vibes" print.', ["Good Vibes"]),
        ("Women's and men's shirt with 'Love' print, girls' size.", ["Love"]),
        ("T-Shirt with “Sunny Days” lettering.", ["Sunny Days"]),
        ("Black T-Shirt.", []),
    ],
)
def test_printed_text_quote_styles(text, quoted):
    assert extract_attributes(text).printed_text == quoted


def test_quoted_words_are_not_attributes():
    a = extract_attributes("Hoodie mit Schriftzug 'Black Forest'.", "de")
    assert a.colors == [] and a.printed_text == ["Black Forest"]


def test_lexicon_is_consistent():
    assert lexicon_size() > 900
    canonical = {value for table in PRODUCTS.values() for value in table.values()}
    assert canonical <= PRODUCT_CATEGORY.keys()


def test_cached_extractor_is_deterministic():
    assert extract_attributes(DINO) == extract_attributes(DINO) == LexiconExtractor().extract(DINO)


# --- LLM output parsing ----------------------------------------------------------------------------------


def test_parse_llm_output_finds_json_in_chatter():
    payload = {
        "product_type": "T-Shirt",
        "category": "tops",
        "target_group": "girls",
        "colors": ["black"],
        "materials": ["cotton"],
        "patterns": [],
        "design_details": ["embroidered sleeves"],
        "printed_text": ["Dream Journey"],
        "fit": None,
    }
    text = f"Sure! Here are the attributes:\n```json\n{json.dumps(payload)}\n```\nAnything else? {{not json}}"
    a = parse_llm_output(text)
    assert a.product_type == "t-shirt" and a.target_group == "girls" and a.printed_text == ["Dream Journey"]


@pytest.mark.parametrize(
    "text",
    [
        "no json at all",
        "{product_type: 't-shirt', colors: [black]}",
        '{"product_type": "t-shirt", "colors": ["black"]',
        "[1, 2, 3]",
    ],
)
def test_parse_llm_output_rejects_invalid_json(text):
    with pytest.raises(ValueError):
        parse_llm_output(text)


@pytest.mark.parametrize(
    "payload",
    [
        {"product_type": "t-shirt", "target_group": "aliens"},
        {"product_type": "t-shirt", "size": "M"},
        {"colors": ["x" * 200]},
    ],
)
def test_parse_llm_output_rejects_schema_violations(payload):
    with pytest.raises(ValueError, match="schema"):
        parse_llm_output("Answer: " + json.dumps(payload))


# --- LLM extractor with a real tiny causal LM ---------------------------------------------------------------


def test_llm_extractor_falls_back_to_lexicon(tiny_llm, caplog):
    extractor = LLMExtractor(tiny_llm, max_new_tokens=16)
    with caplog.at_level(logging.WARNING, logger="fashion_studio.attributes"):
        result = extractor.extract(DREAM_JOURNEY)
    assert result == LexiconExtractor().extract(DREAM_JOURNEY)
    assert any("no JSON object" in record.getMessage() for record in caplog.records)


def test_llm_extractor_uses_valid_model_answer(tiny_llm, monkeypatch):
    extractor = LLMExtractor(tiny_llm, max_new_tokens=4)
    answer = 'Here you go: {"product_type": "t-shirt", "target_group": "boys", "patterns": ["melange"]}'
    monkeypatch.setattr(extractor, "generate", lambda prompt: answer)
    result = extractor.extract(DINO, "auto")
    assert (result.product_type, result.target_group, result.patterns, result.language) == (
        "t-shirt",
        "boys",
        ["melange"],
        "de",
    )


def test_llm_extractor_bounds_the_prompt(tiny_llm, caplog):
    extractor = LLMExtractor(tiny_llm, max_new_tokens=16)
    text = "Kleid " * 800  # more tokens than the model's 512 positions
    with caplog.at_level(logging.WARNING, logger="fashion_studio.attributes"):
        assert extractor.extract(text) == extract_attributes(text)
    assert any("no room" in record.getMessage() for record in caplog.records)


def test_llm_extractor_validates_input_before_the_model(tiny_llm):
    extractor = LLMExtractor(tiny_llm, max_new_tokens=4)
    with pytest.raises(InvalidInputError) as info:
        extractor.extract(" ")
    assert info.value.field == "description"


def test_llm_extractor_missing_model(tmp_path):
    with pytest.raises(ModelNotFoundError):
        LLMExtractor(tmp_path)  # a folder without a model
    with pytest.raises(ModelNotFoundError):
        LLMExtractor(tmp_path / "absent")


def test_prompts_drop_trailing_details_to_fit_the_prompt_limit():
    from fashion_studio.prompts import build_prompts
    from fashion_studio.settings import DEFAULT_CLIP_TEMPLATE, DEFAULT_GENERATION_TEMPLATE

    attributes = Attributes(product_type="dress", target_group="women", colors=["red"], design_details=[f"detail number {i}" for i in range(12)])
    full = build_prompts(attributes, DEFAULT_GENERATION_TEMPLATE, DEFAULT_CLIP_TEMPLATE)
    limit = len(full.generation) - 20
    fitted = build_prompts(attributes, DEFAULT_GENERATION_TEMPLATE, DEFAULT_CLIP_TEMPLATE, max_chars=limit)
    assert len(fitted.generation) <= limit
    assert "a women's dress" in fitted.generation and "red" in fitted.generation
    assert "detail number 11" not in fitted.generation and "detail number 0" in fitted.generation


# --- the package's layout and its one description limit ------------------------------------------


def test_a_too_long_description_is_one_invalid_input_naming_field_and_limit():
    from fashion_studio.attributes import validate_description
    from fashion_studio.errors import PayloadTooLargeError

    with pytest.raises(InvalidInputError) as caught:
        LexiconExtractor(max_chars=50).extract("Rotes Kleid. " * 10)
    assert not isinstance(caught.value, PayloadTooLargeError)  # 422 everywhere, never 413
    assert caught.value.field == "description" and "50" in caught.value.limit
    assert validate_description("Rotes Kleid.", 50) == "Rotes Kleid."


def test_the_lexicon_is_data_apart_from_the_parser():
    import fashion_studio.attributes.lexicon as lexicon

    assert all(isinstance(getattr(lexicon, name), (dict, frozenset)) for name in ("PRODUCTS", "COLOURS", "MATERIALS", "PATTERNS"))
    assert not [
        name for name, value in vars(lexicon).items() if callable(value) and not name.startswith("__") and getattr(value, "__module__", "") == lexicon.__name__
    ]
    assert PRODUCTS is lexicon.PRODUCTS  # the package's names are the data module's
