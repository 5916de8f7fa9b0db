"""Texts of the fashion-mini catalog: German catalog descriptions with their English translations, and
English captions, all from templates with variety (word order, synonyms, target groups, materials).

A German template and its English template are a fixed pair, so a description has exactly one reference
translation. The captions include the catalog pipeline's own prompts (lexicon attributes -> the
generation and CLIP templates), so the trained text encoders see the prompts they get in service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fashion_studio.attributes import extract_attributes
from fashion_studio.catalog import merge_attributes
from fashion_studio.mini.render import Spec, random_variation
from fashion_studio.mini.vocab import (
    COLOUR_BY_NAME,
    COLOURS,
    MATERIAL_GERMAN,
    PATTERN_ENGLISH,
    PATTERN_GERMAN,
    PATTERNS,
    PRODUCT_TYPES,
    TARGET_ENGLISH_FOR,
    TARGET_ENGLISH_POSSESSIVE,
    TARGET_GERMAN,
    TYPE_BY_NAME,
    german_adjective,
)
from fashion_studio.prompts import build_prompts
from fashion_studio.settings import DEFAULT_CLIP_TEMPLATE, DEFAULT_GENERATION_TEMPLATE

# Closing sentences: German -> English.
EXTRAS: tuple[tuple[str, str], ...] = (
    ("Bequeme Passform.", "Comfortable fit."),
    ("Ideal für den Alltag.", "Ideal for everyday wear."),
    ("Pflegeleicht und maschinenwaschbar.", "Easy care and machine washable."),
    ("Ein echter Hingucker.", "A real highlight."),
    ("Perfekt für den Sommer.", "Perfect for summer."),
    ("Zeitloses Design.", "Timeless design."),
    ("Angenehm zu tragen.", "Pleasant to wear."),
    ("Lässiger Look.", "Casual look."),
)
PLAIN_GERMAN = ("einfarbig", "unifarben")


@dataclass(frozen=True)
class Caption:
    """An English caption and what it specifies: the product type always, colour and pattern unless None."""

    text: str
    product_type: str
    colour: str | None
    pattern: str | None


def sample_spec(rng: np.random.Generator, combinations: Sequence[tuple[str, str, str]] | None = None) -> Spec:
    """A random product (uniform over types, colours and patterns, or over the given (type, colour,
    pattern) combinations) with its random variation."""
    if combinations:
        name, colour, pattern = combinations[rng.integers(len(combinations))]
        product = TYPE_BY_NAME[name]
    else:
        product = PRODUCT_TYPES[rng.integers(len(PRODUCT_TYPES))]
        colour = COLOURS[rng.integers(len(COLOURS))].name
        pattern = PATTERNS[rng.integers(len(PATTERNS))]
    target = product.targets[rng.integers(len(product.targets))]
    material = product.materials[rng.integers(len(product.materials))] if rng.random() < 0.7 else None
    return Spec(product.name, colour, pattern, target, material, **random_variation(rng, target))


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[rng.integers(len(options))]


def german_description(spec: Spec, rng: np.random.Generator) -> tuple[str, str]:
    """A German catalog description of `spec` and its reference English translation."""
    product = TYPE_BY_NAME[spec.product_type]
    noun, gender = product.german[rng.integers(len(product.german))]
    colour = COLOUR_BY_NAME[spec.colour]
    en_noun = spec.product_type
    plural = gender == "pl"
    target = spec.target_group
    target_de = TARGET_GERMAN[target][0] if target else None
    if target_de:
        compound_hyphen = f"{target_de}-{noun}"
        compound = compound_hyphen if rng.random() < 0.5 or noun[0] in "TÜ" else target_de + noun.lower()
        en_target_noun = f"{TARGET_ENGLISH_POSSESSIVE[target]} {en_noun}"
    else:
        compound = compound_hyphen = noun
        en_target_noun = en_noun
    colour_noun = _pick(rng, colour.german_noun)
    en_colour = spec.colour
    material_de = MATERIAL_GERMAN[spec.material] if spec.material else None
    mat_de = f" aus {material_de}" if material_de else ""
    mat_en = f" made of {spec.material}" if spec.material else ""
    patterned = spec.pattern != "plain"
    pat = PATTERN_GERMAN.get(spec.pattern)
    pat_en = PATTERN_ENGLISH.get(spec.pattern)
    template = int(rng.integers(6))

    if template == 0:  # Rotes gestreiftes Damenkleid aus Baumwolle.
        words_de = [german_adjective(colour.german_adjective, gender, colour.declines)]
        words_en = [en_colour]
        if patterned:
            words_de.append(german_adjective(_pick(rng, pat["adjective"]), gender))
            words_en.append(pat_en["adjective"])
        elif rng.random() < 0.3:
            words_de.append(german_adjective(_pick(rng, PLAIN_GERMAN), gender))
            words_en.append("plain")
        de = f"{_cap(' '.join(words_de))} {compound}{mat_de}."
        en = f"{_cap(' '.join(words_en))} {en_target_noun}{mat_en}."
    elif template == 1:  # Gestreiftes Damenkleid in Rot aus Baumwolle.
        head_de, head_en = compound, en_target_noun
        if patterned:
            head_de = f"{german_adjective(_pick(rng, pat['adjective']), gender)} {compound}"
            head_en = f"{pat_en['adjective']} {en_target_noun}"
        de = f"{_cap(head_de)} in {colour_noun}{mat_de}."
        en = f"{_cap(head_en)} in {en_colour}{mat_en}."
    elif template == 2:  # Kleid für Damen in Rot mit Streifen.
        de, en = noun, en_noun
        if target:
            de += f" für {target_de}"
            en += f" for {TARGET_ENGLISH_FOR[target]}"
        de += f" in {colour_noun}"
        en += f" in {en_colour}"
        if patterned:
            de += f" mit {_pick(rng, pat['with'])}"
            en += f" with {pat_en['with']}"
        de, en = _cap(de) + mat_de.replace(" aus", ", aus") + ".", _cap(en) + mat_en.replace(" made", ", made") + "."
    elif template == 3:  # Damen-Kleid, rot, gestreift. Material: Baumwolle.
        de = f"{compound_hyphen}, {colour.german_adjective}"
        en = f"{_cap(en_target_noun)}, {en_colour}"
        if patterned:
            de += f", {_pick(rng, pat['predicate'])}"
            en += f", {pat_en['adjective']}"
        de += "."
        en += "."
        if material_de:
            de += f" Material: {material_de}."
            en += f" Material: {spec.material}."
    elif template == 4:  # Dieses rote Kleid aus Baumwolle ist gestreift.
        article = {"m": "Dieser", "f": "Diese", "n": "Dieses", "pl": "Diese"}[gender]
        ending = "en" if plural else "e"
        adjective = colour.german_adjective + ending if colour.declines else colour.german_adjective
        de = f"{article} {adjective} {compound}{mat_de}"
        en = f"{'These' if plural else 'This'} {en_colour} {en_target_noun}{mat_en}"
        if patterned:
            de += f" {'sind' if plural else 'ist'} {_pick(rng, pat['predicate'])}."
            en += f" {'are' if plural else 'is'} {pat_en['adjective']}."
        else:
            de += f" {'sind' if plural else 'ist'} {_pick(rng, PLAIN_GERMAN)}."
            en += f" {'are' if plural else 'is'} plain."
    else:  # Rotes Kleid mit Streifen für Damen.
        de = f"{german_adjective(colour.german_adjective, gender, colour.declines, capitalise=True)} {noun}"
        en = f"{_cap(en_colour)} {en_noun}"
        if patterned:
            de += f" mit {_pick(rng, pat['with'])}"
            en += f" with {pat_en['with']}"
        if target:
            de += f" für {target_de}"
            en += f" for {TARGET_ENGLISH_FOR[target]}"
        de += mat_de + "."
        en += mat_en + "."
    for _ in range(int(rng.choice(3, p=[0.45, 0.35, 0.2]))):
        extra_de, extra_en = EXTRAS[rng.integers(len(EXTRAS))]
        if extra_de not in de:
            de += " " + extra_de
            en += " " + extra_en
    return de, en


def catalog_prompts(german: str, english: str) -> tuple[str, str]:
    """The catalog pipeline's (generation, CLIP) prompts for a German description and its translation."""
    attributes = merge_attributes(extract_attributes(german, "de"), extract_attributes(english, "en"))
    prompts = build_prompts(attributes, DEFAULT_GENERATION_TEMPLATE, DEFAULT_CLIP_TEMPLATE, fallback_subject=english)
    return prompts.generation, prompts.clip


def _subject(spec: Spec, rng: np.random.Generator, with_target: bool) -> str:
    """English noun phrase like `Attributes.subject()`, optionally without the target group."""
    noun = spec.product_type
    if with_target and spec.target_group:
        noun = f"{TARGET_ENGLISH_POSSESSIVE[spec.target_group]} {noun}"
    if spec.product_type in ("trousers", "shorts", "sneakers"):
        return f"a pair of {noun}"
    return ("an " if noun[0] in "aeio" else "a ") + noun


def captions(spec: Spec, rng: np.random.Generator, german: str | None = None, english: str | None = None) -> list[Caption]:
    """English captions of one product: the catalog prompts of its description plus free short forms.

    A caption names a non-plain pattern always; a caption without a pattern word leaves the pattern open
    (for CLIP), though in this data it is then always a plain product (what the generator learns).
    """
    out: list[Caption] = []
    t, c, p = spec.product_type, spec.colour, spec.pattern
    named = p if p != "plain" else None
    if german is not None and english is not None:
        generation, clip = catalog_prompts(german, english)
        out.append(Caption(generation, t, c, named))
        out.append(Caption(clip, t, None, None))
    pattern_words = {"plain": ("", ""), **{k: (v["adjective"] + " ", f" with {v['with']}") for k, v in PATTERN_ENGLISH.items()}}
    adjective, with_phrase = pattern_words[p]
    material = f" made of {spec.material}" if spec.material and rng.random() < 0.5 else ""
    noun = spec.product_type
    if spec.target_group and rng.random() < 0.5:
        noun = f"{TARGET_ENGLISH_POSSESSIVE[spec.target_group]} {noun}"
    plain = p == "plain" and rng.random() < 0.3
    out.append(Caption(f"{c} {'plain ' if plain else ''}{adjective}{noun}{material}", t, c, p if plain else named))
    out.append(Caption(f"a photo of a {c} {noun}{with_phrase}", t, c, named))
    out.append(Caption(f"{_subject(spec, rng, rng.random() < 0.5)} in {c}{with_phrase}, on a white background", t, c, named))
    return out


# Zero-shot prompts in the shapes of the training captions (the CLIP template and a short form): every
# one of them occurs word for word among the training captions, so a figure with them is closed-set
# classification with the training templates.
ZERO_SHOT_TYPE = "Product image of {subject}"
ZERO_SHOT_COMBO = "a photo of a {colour} {product_type}"
# Shapes no training caption has (checked by `fashion_studio.mini.evaluate.check_new_templates`), made of
# words the captions use, so the text tower can read them.
NEW_ZERO_SHOT_TYPES: tuple[str, ...] = ("{product_type}", "photography of {subject}", "{subject}, laid flat")
NEW_ZERO_SHOT_COMBOS: tuple[str, ...] = ("{product_type}, {colour}", "photography of a {colour} {product_type}", "{colour} {product_type}, laid flat")


# --- lexicon sentences: the lexicon's German words in free catalog shapes -----------------------------
#
# The templates above name the ten rendered products only; catalog text names any garment the lexicon
# knows. These pairs teach the translator the lexicon's German surface forms (products, colours with
# their modifiers, materials, patterns, wearers) in shapes of their own, so that ordinary catalog text
# is translated word by word instead of being pulled onto the nearest template.

# Lexicon forms that are stems or inflected variants, not words a sentence uses on its own.
_NOT_WORDS = frozenset(
    {
        "baumwoll",
        "woll",
        "seiden",
        "häkel",
        "gehäkelt",
        "gestrickt",
        "bio baumwolle",
        "röcke",
        "mäntel",
        "strümpfe",
        "tshirt",
        "bh",
        "body",
        "slip",
        "panty",
        "kette",
        "fliege",
        "hell",
        "dunkel",
        "zart",
        "knall",
        "tief",
        "mittel",
        "strass",
        "perlmutt",
        "metall",
        "fell",
        "senf",
        "rost",
        "lachs",
        "koralle",
        "sand",
        "golden",
        "silbern",
        "leo",
        "allover",
        "ringel",
        "tarn",
        "zopf",
        "norweger",
        "fischgrat",
        "rauten",
        "leoparden",
        "schlangen",
    }
)
_PATTERN_WITH: tuple[tuple[str, str], ...] = (
    ("Streifen", "stripes"),
    ("Ringeln", "stripes"),
    ("Nadelstreifen", "pinstripes"),
    ("Punkten", "dots"),
    ("Pünktchen", "dots"),
    ("Tupfen", "dots"),
    ("Karos", "checks"),
    ("Karomuster", "checks"),
    ("Blumenmuster", "floral pattern"),
    ("Blümchen", "floral pattern"),
    ("Zopfmuster", "cable knit pattern"),
    ("Norwegermuster", "nordic pattern"),
    ("Rautenmuster", "argyle pattern"),
    ("Leopardenmuster", "animal print"),
    ("Tarnmuster", "camouflage pattern"),
    ("Fischgratmuster", "herringbone pattern"),
    ("Paisleymuster", "paisley pattern"),
    ("Hahnentrittmuster", "houndstooth pattern"),
    ("Batikmuster", "tie-dye pattern"),
)
_PATTERN_PREDICATE: tuple[tuple[str, str], ...] = (
    ("gestreift", "striped"),
    ("geringelt", "striped"),
    ("gepunktet", "dotted"),
    ("getupft", "dotted"),
    ("kariert", "checked"),
    ("geblümt", "floral"),
    ("meliert", "marl"),
)
_SHADES: tuple[tuple[str, str], ...] = (("hell", "light"), ("dunkel", "dark"), ("zart", "pale"), ("mittel", "mid"))
_SHADED = ("blau", "grün", "grau", "rot", "braun", "gelb", "rosa", "lila")
_TARGETS_FOR: tuple[tuple[str, str, str], ...] = (
    ("Damen", "women's", "women"),
    ("Herren", "men's", "men"),
    ("Kinder", "children's", "children"),
    ("Mädchen", "girls'", "girls"),
    ("Jungen", "boys'", "boys"),
)
_CLOSINGS: tuple[tuple[str, str], ...] = (
    *EXTRAS,
    ("Mit Knöpfen.", "With buttons."),
    ("Mit Reißverschluss.", "With a zip."),
    ("Mit Kapuze.", "With a hood."),
    ("Mit Taschen.", "With pockets."),
    ("Mit Kordelzug.", "With a drawstring."),
    ("Mit Gummizug.", "With an elastic waistband."),
    ("Mit Stehkragen.", "With a stand-up collar."),
    ("Mit Rundhalsausschnitt.", "With a crew neck."),
    ("Mit V-Ausschnitt.", "With a V-neck."),
    ("Mit kurzen Ärmeln.", "With short sleeves."),
    ("Mit langen Ärmeln.", "With long sleeves."),
    ("Mit Gürtel.", "With a belt."),
    ("Gefüttert.", "Lined."),
)


def _german_word(form: str) -> str:
    """A lexicon form as a German noun is written ("t-shirt" -> "T-Shirt", "chelsea boots" -> "Chelsea Boots")."""
    return "-".join(" ".join(w[:1].upper() + w[1:] for w in part.split()) for part in form.split("-"))


def _lexicon_words() -> dict[str, list[tuple[str, str]]]:
    """(German, English) words of the attribute lexicon by kind, without stems and inflected duplicates."""
    from fashion_studio import attributes as lexicon

    def table(data: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
        forms = {**data.get("both", {}), **data.get("de", {})}
        return sorted((_german_word(k), v) for k, v in forms.items() if k not in _NOT_WORDS and " " not in k or k == "chelsea boots")

    colours = [(k, v) for k, v in table(lexicon.COLOURS) if v not in ("multicoloured",)]
    colours += [(_german_word(d + c), f"{e} {lexicon.COLOURS['de'].get(c) or lexicon.COLOURS['both'][c]}") for d, e in _SHADES for c in _SHADED]
    return {
        "product": table(lexicon.PRODUCTS),
        "colour": colours,
        "material": [(k, v) for k, v in table(lexicon.MATERIALS) if v not in ("rhinestones",)],
    }


def lexicon_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """`n` (German, English) sentences over the lexicon's vocabulary, in shapes the templates do not use."""
    rng = np.random.default_rng(seed * 1000 + 900)
    words = _lexicon_words()
    products, colours, materials = words["product"], words["colour"], words["material"]
    pairs: list[tuple[str, str]] = []
    while len(pairs) < n:
        product_de, product_en = products[rng.integers(len(products))]
        colour_de, colour_en = colours[rng.integers(len(colours))]
        second_de, second_en = colours[rng.integers(len(colours))]
        material_de, material_en = materials[rng.integers(len(materials))]
        pattern_de, pattern_en = _PATTERN_WITH[rng.integers(len(_PATTERN_WITH))]
        predicate_de, predicate_en = _PATTERN_PREDICATE[rng.integers(len(_PATTERN_PREDICATE))]
        target_de, target_possessive, target_en = _TARGETS_FOR[rng.integers(len(_TARGETS_FOR))]
        shape = int(rng.integers(7))
        if shape == 0:  # Bluse aus Viskose in Weiß.
            de, en = f"{product_de} aus {material_de} in {colour_de}.", f"{_cap(product_en)} made of {material_en} in {colour_en}."
        elif shape == 1:  # Bluse in Marineblau mit Punkten, aus Chiffon.
            de = f"{product_de} in {colour_de} mit {pattern_de}, aus {material_de}."
            en = f"{_cap(product_en)} in {colour_en} with {pattern_en}, made of {material_en}."
        elif shape == 2:  # Damen-Bluse in Rot und Weiß.
            de = f"{target_de}-{product_de} in {colour_de} und {second_de}."
            en = f"{_cap(target_possessive)} {product_en} in {colour_en} and {second_en}."
        elif shape == 3:  # Bluse – hellblau, gestreift – Baumwolle.
            de = f"{product_de} – {colour_de.lower()}, {predicate_de} – {material_de}."
            en = f"{_cap(product_en)} – {colour_en}, {predicate_en} – {material_en}."
        elif shape == 4:  # Bluse für Damen aus Leinen.
            de, en = f"{product_de} für {target_de} aus {material_de}.", f"{_cap(product_en)} for {target_en} made of {material_en}."
        elif shape == 5:  # Bluse – Farbe: Rot, Material: Wolle.
            de = f"{product_de} – Farbe: {colour_de}, Material: {material_de}."
            en = f"{_cap(product_en)} – colour: {colour_en}, material: {material_en}."
        else:  # Bluse mit Streifen in Grau und Rosa.
            de = f"{product_de} mit {pattern_de} in {colour_de} und {second_de}."
            en = f"{_cap(product_en)} with {pattern_en} in {colour_en} and {second_en}."
        if rng.random() < 0.4:
            closing_de, closing_en = _CLOSINGS[rng.integers(len(_CLOSINGS))]
            de, en = f"{de} {closing_de}", f"{en} {closing_en}"
        pairs.append((de, en))
    return pairs
