"""The closed vocabulary of the fashion-mini catalog: product types, colours, patterns, target groups, materials.

Every English word here is the canonical form that `fashion_studio.attributes` extracts, and every German
form is one its lexicon reads back to that word, so that the catalog pipeline's prompts name exactly the
classes the models were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

# German grammatical gender of a noun phrase: masculine, feminine, neuter, plural.
Gender = str  # "m" | "f" | "n" | "pl"


@dataclass(frozen=True)
class ProductType:
    name: str  # canonical English, as `Attributes.product_type`
    german: tuple[tuple[str, Gender], ...]  # nouns that the lexicon reads as `name`, with their gender
    targets: tuple[str | None, ...]  # target groups it is sold for (None: no target group named)
    materials: tuple[str, ...]  # canonical English materials


@dataclass(frozen=True)
class Colour:
    name: str
    rgb: tuple[int, int, int]
    german_adjective: str  # stem that takes the strong ending ("rot" -> "rotes"); "" suffix rule below
    german_noun: tuple[str, ...]  # "in Rot"
    declines: bool = True  # "rosa" takes no ending


PRODUCT_TYPES: tuple[ProductType, ...] = (
    ProductType(
        "t-shirt", (("T-Shirt", "n"), ("Shirt", "n")), (None, "women", "men", "children", "girls", "boys"), ("cotton", "jersey", "linen", "organic cotton")
    ),
    ProductType("shirt", (("Hemd", "n"), ("Oberhemd", "n")), (None, "men", "boys", "children"), ("cotton", "linen", "flannel", "poplin")),
    ProductType("trousers", (("Hose", "f"), ("Stoffhose", "f")), (None, "women", "men", "children", "girls", "boys"), ("cotton", "linen", "wool", "corduroy")),
    ProductType("shorts", (("Shorts", "pl"), ("Bermudas", "pl")), (None, "women", "men", "children", "girls", "boys"), ("cotton", "denim", "linen", "jersey")),
    ProductType("skirt", (("Rock", "m"), ("Minirock", "m")), (None, "women", "girls"), ("cotton", "denim", "wool", "viscose")),
    ProductType("dress", (("Kleid", "n"), ("Sommerkleid", "n")), (None, "women", "girls"), ("cotton", "viscose", "linen", "jersey")),
    ProductType(
        "jacket", (("Jacke", "f"), ("Übergangsjacke", "f")), (None, "women", "men", "children", "girls", "boys"), ("nylon", "wool", "denim", "polyester")
    ),
    ProductType("sneakers", (("Sneaker", "pl"), ("Turnschuhe", "pl")), (None, "women", "men", "children"), ("leather", "canvas", "suede", "mesh")),
    ProductType("handbag", (("Handtasche", "f"),), (None, "women", "girls"), ("leather", "faux leather", "canvas", "suede")),
    ProductType("cap", (("Cap", "f"), ("Basecap", "f"), ("Kappe", "f")), (None, "women", "men", "children"), ("cotton", "canvas", "wool", "polyester")),
)

COLOURS: tuple[Colour, ...] = (
    Colour("black", (32, 32, 34), "schwarz", ("Schwarz",)),
    Colour("white", (238, 238, 235), "weiß", ("Weiß",)),
    Colour("grey", (130, 130, 134), "grau", ("Grau",)),
    Colour("red", (205, 32, 38), "rot", ("Rot",)),
    Colour("blue", (40, 100, 215), "blau", ("Blau",)),
    Colour("navy", (26, 36, 92), "marineblau", ("Marineblau", "Navy")),
    Colour("green", (40, 150, 62), "grün", ("Grün",)),
    Colour("yellow", (246, 206, 40), "gelb", ("Gelb",)),
    Colour("pink", (242, 132, 182), "rosa", ("Rosa", "Pink"), declines=False),
    Colour("purple", (122, 52, 162), "violett", ("Violett",)),
    Colour("brown", (122, 72, 36), "braun", ("Braun",)),
    Colour("orange", (246, 132, 30), "orangefarben", ("Orange",)),
)

PATTERNS: tuple[str, ...] = ("plain", "stripes", "dots", "checks")

# German forms of the patterns: adjective stems (strong endings added), "mit ..." phrases, predicate forms.
PATTERN_GERMAN: dict[str, dict[str, tuple[str, ...]]] = {
    "stripes": {"adjective": ("gestreift",), "with": ("Streifen", "Streifenmuster"), "predicate": ("gestreift",)},
    "dots": {"adjective": ("gepunktet", "getupft"), "with": ("Punkten", "Pünktchen"), "predicate": ("gepunktet",)},
    "checks": {"adjective": ("kariert",), "with": ("Karomuster", "Karos"), "predicate": ("kariert",)},
}
# English forms: adjective, "with ..." phrase; the canonical word is what the lexicon extracts.
PATTERN_ENGLISH: dict[str, dict[str, str]] = {
    "stripes": {"adjective": "striped", "with": "stripes"},
    "dots": {"adjective": "dotted", "with": "dots"},
    "checks": {"adjective": "checked", "with": "checks"},
}

TARGET_GERMAN: dict[str, tuple[str, ...]] = {
    "women": ("Damen",),
    "men": ("Herren",),
    "children": ("Kinder",),
    "girls": ("Mädchen",),
    "boys": ("Jungen",),
}
TARGET_ENGLISH_POSSESSIVE = {
    "women": "women's",
    "men": "men's",
    "children": "children's",
    "girls": "girls'",
    "boys": "boys'",
}
TARGET_ENGLISH_FOR = {"women": "women", "men": "men", "children": "children", "girls": "girls", "boys": "boys"}

MATERIAL_GERMAN: dict[str, str] = {
    "cotton": "Baumwolle",
    "jersey": "Jersey",
    "linen": "Leinen",
    "organic cotton": "Biobaumwolle",
    "flannel": "Flanell",
    "poplin": "Popeline",
    "wool": "Wolle",
    "corduroy": "Cord",
    "denim": "Denim",
    "viscose": "Viskose",
    "nylon": "Nylon",
    "polyester": "Polyester",
    "leather": "Leder",
    "canvas": "Canvas",
    "suede": "Wildleder",
    "mesh": "Mesh",
    "faux leather": "Kunstleder",
}

TYPE_NAMES: tuple[str, ...] = tuple(t.name for t in PRODUCT_TYPES)
COLOUR_NAMES: tuple[str, ...] = tuple(c.name for c in COLOURS)
TYPE_BY_NAME = {t.name: t for t in PRODUCT_TYPES}
COLOUR_BY_NAME = {c.name: c for c in COLOURS}

# Adjective endings without an article (strong declension, nominative).
STRONG_ENDING: dict[Gender, str] = {"m": "er", "f": "e", "n": "es", "pl": "e"}


def german_adjective(stem: str, gender: Gender, declines: bool = True, capitalise: bool = False) -> str:
    word = stem + STRONG_ENDING[gender] if declines else stem
    return word[:1].upper() + word[1:] if capitalise else word
