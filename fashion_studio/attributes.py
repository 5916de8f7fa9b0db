"""Attribute extraction: German or English product descriptions -> validated English attributes.

The prompts are English, so every attribute is canonical English whatever the source language. The
`LexiconExtractor` is deterministic and cheap (a lexicon with German compound splitting); the optional
`LLMExtractor` asks a causal LM for JSON and falls back to the lexicon result whenever that fails.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fashion_studio.errors import InvalidInputError, ModelNotFoundError, PayloadTooLargeError

logger = logging.getLogger(__name__)

__all__ = [
    "Attributes",
    "Category",
    "LLMExtractor",
    "Language",
    "LexiconExtractor",
    "TargetGroup",
    "detect_language",
    "extract_attributes",
    "lexicon_size",
    "parse_llm_output",
    "validate_description",
]

Category = Literal["tops", "bottoms", "dresses", "outerwear", "shoes", "accessories", "underwear", "swimwear", "other"]
TargetGroup = Literal["women", "men", "girls", "boys", "children", "baby", "unisex"]
Language = Literal["de", "en"]
LanguageArg = Literal["de", "en", "auto"]

MAX_DESCRIPTION_CHARS = 5000
MAX_ITEM_CHARS = 80
MAX_ITEMS = 12
MAX_SCALAR_CHARS = 40

CATEGORIES: tuple[str, ...] = (
    "tops", "bottoms", "dresses", "outerwear", "shoes", "accessories", "underwear", "swimwear", "other",
)
TARGET_GROUPS: tuple[str, ...] = ("women", "men", "girls", "boys", "children", "baby", "unisex")

# Spellings an LLM may use for the closed vocabularies.
_TARGET_SYNONYMS = {
    "woman": "women", "female": "women", "ladies": "women", "women's": "women", "womens": "women",
    "man": "men", "male": "men", "men's": "men", "mens": "men",
    "girl": "girls", "girls'": "girls", "boy": "boys", "boys'": "boys",
    "kids": "children", "kid": "children", "child": "children", "children's": "children",
    "babies": "baby", "infant": "baby", "infants": "baby",
}
_CATEGORY_SYNONYMS = {
    "top": "tops", "bottom": "bottoms", "dress": "dresses", "outer": "outerwear", "shoe": "shoes",
    "footwear": "shoes", "accessory": "accessories", "lingerie": "underwear", "swim": "swimwear",
}


# --------------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------------


def _clean_scalar(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null")
    value = " ".join(value.split()).lower()
    if not value or value in ("null", "none", "n/a", "unknown"):
        return None
    if len(value) > MAX_SCALAR_CHARS:
        raise ValueError(f"{name} must be at most {MAX_SCALAR_CHARS} characters")
    return value


def _clean_list(value: Any, name: str, lower: bool = True) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of strings")
    seen: dict[str, str] = {}
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"{name} items must be strings")
        item = " ".join(item.split())
        if lower:
            item = item.lower()
        if not item:
            continue
        if len(item) > MAX_ITEM_CHARS:
            raise ValueError(f"{name} items must be at most {MAX_ITEM_CHARS} characters")
        seen.setdefault(item.casefold(), item)
    # Keep the first distinct items: a merge of two valid results must stay valid.
    return list(seen.values())[:MAX_ITEMS]


class Attributes(BaseModel):
    """Product attributes in English, the vocabulary the prompt templates are written in."""

    model_config = ConfigDict(extra="forbid")

    product_type: str | None = None
    category: Category | None = None
    target_group: TargetGroup | None = None
    colors: list[str] = Field(default_factory=list)
    materials: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    design_details: list[str] = Field(default_factory=list)
    printed_text: list[str] = Field(default_factory=list)
    fit: str | None = None
    language: Language = "de"

    @field_validator("product_type", "fit", mode="before")
    @classmethod
    def _scalar(cls, value: Any, info: Any) -> str | None:
        return _clean_scalar(value, info.field_name)

    @field_validator("category", "target_group", "language", mode="before")
    @classmethod
    def _closed(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if not value or value in ("null", "none"):
                return None if info.field_name != "language" else value
            synonyms = _TARGET_SYNONYMS if info.field_name == "target_group" else _CATEGORY_SYNONYMS
            return synonyms.get(value, value) if info.field_name != "language" else value
        return value

    @field_validator("colors", "materials", "patterns", "design_details", mode="before")
    @classmethod
    def _list(cls, value: Any, info: Any) -> list[str]:
        return _clean_list(value, info.field_name)

    @field_validator("printed_text", mode="before")
    @classmethod
    def _text_list(cls, value: Any, info: Any) -> list[str]:
        # Printed text is quoted verbatim: its case is part of the design.
        return _clean_list(value, info.field_name, lower=False)

    def subject(self) -> str:
        """English noun phrase naming the product and its wearer, without colours (those are details)."""
        noun = self.product_type or "garment"
        words = []
        if self.target_group:
            words.append(_TARGET_POSSESSIVE[self.target_group])
        words.append(noun)
        phrase = " ".join(words)
        if noun in PAIR_NOUNS:
            return f"a pair of {phrase}"
        return f"{_article(phrase)} {phrase}"

    def details(self) -> list[str]:
        """Detail phrases for the prompt: colours, materials, patterns, design details, fit, printed text."""
        out: list[str] = []
        if self.colors:
            out.append(_join_and(self.colors))
        out.extend(self.materials)
        out.extend(self.patterns)
        out.extend(self.design_details)
        if self.fit:
            out.append(self.fit)
        out.extend(f"text '{text}'" for text in self.printed_text)
        return list(dict.fromkeys(out))


_TARGET_POSSESSIVE = {
    "women": "women's", "men": "men's", "girls": "girls'", "boys": "boys'",
    "children": "children's", "baby": "baby", "unisex": "unisex",
}


def _article(phrase: str) -> str:
    first = phrase[:1].lower()
    if first in "aeio" or (first == "u" and not phrase.lower().startswith(("uni", "use", "uk"))):
        return "an"
    return "a"


def _join_and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


# --------------------------------------------------------------------------------------------------
# Lexicon: surface forms (lowercase, stems or full words) -> canonical English. "both" holds the words
# German catalog texts borrow from English; those are looked up in either language.
# --------------------------------------------------------------------------------------------------

PRODUCTS: dict[str, dict[str, str]] = {
    "both": {
        "t-shirt": "t-shirt", "tshirt": "t-shirt", "top": "top", "tanktop": "tank top", "tank top": "tank top",
        "croptop": "crop top", "crop top": "crop top", "bodysuit": "bodysuit", "polo shirt": "polo shirt",
        "poloshirt": "polo shirt", "polo": "polo shirt", "longsleeve": "long-sleeve top", "sweatshirt": "sweatshirt",
        "sweater": "sweater", "pullover": "sweater", "hoodie": "hoodie", "cardigan": "cardigan", "blazer": "blazer",
        "tunika": "tunic", "kimono": "kimono", "jeans": "jeans", "chino": "chinos", "chinos": "chinos",
        "jogger": "joggers", "leggings": "leggings", "shorts": "shorts", "bermuda": "shorts", "bermudas": "shorts",
        "jumpsuit": "jumpsuit", "playsuit": "playsuit", "parka": "parka", "anorak": "anorak",
        "trenchcoat": "trench coat", "blouson": "blouson", "windbreaker": "windbreaker", "poncho": "poncho",
        "cape": "cape", "sneaker": "sneakers", "sneakers": "sneakers", "boots": "boots",
        "chelsea boots": "chelsea boots", "flip flops": "flip-flops", "flipflops": "flip-flops",
        "ballerinas": "ballet flats", "pumps": "pumps", "loafer": "loafers", "loafers": "loafers",
        "clogs": "clogs", "espadrilles": "espadrilles", "mules": "mules", "shopper": "tote bag",
        "clutch": "clutch", "beanie": "beanie", "cap": "cap", "bucket hat": "bucket hat",
        "boxershorts": "boxer shorts", "pyjama": "pyjamas", "bikini": "bikini", "bikinitop": "bikini top",
        "tankini": "tankini",
    },
    "de": {
        "shirt": "t-shirt", "kurzarmshirt": "t-shirt", "langarmshirt": "long-sleeve top", "oberteil": "top",
        "body": "bodysuit", "hemd": "shirt", "oberhemd": "shirt", "bluse": "blouse", "hemdbluse": "blouse",
        "pulli": "sweater", "kapuzenpullover": "hoodie", "kapuzenpulli": "hoodie", "kapuzensweatshirt": "hoodie",
        "kapuzenshirt": "hoodie", "strickjacke": "cardigan", "weste": "vest", "pullunder": "sweater vest",
        "sakko": "blazer", "anzug": "suit", "hose": "trousers", "jeanshose": "jeans", "chinohose": "chinos",
        "jogginghose": "joggers", "sweathose": "joggers", "trainingshose": "joggers", "leggins": "leggings",
        "rock": "skirt", "röcke": "skirt", "latzhose": "dungarees", "overall": "jumpsuit", "einteiler": "jumpsuit",
        "strampler": "romper", "kleid": "dress", "kleidchen": "dress", "hemdblusenkleid": "shirt dress",
        "dirndl": "dirndl", "jacke": "jacket", "jäckchen": "jacket", "mantel": "coat", "mäntel": "coat",
        "regenjacke": "rain jacket", "regenmantel": "raincoat", "bomberjacke": "bomber jacket",
        "bikerjacke": "biker jacket", "schuh": "shoes", "turnschuh": "sneakers", "sportschuh": "sneakers",
        "laufschuh": "running shoes", "stiefel": "boots", "stiefelette": "ankle boots", "gummistiefel": "rain boots",
        "sandale": "sandals", "sandalette": "sandals", "pantolette": "slides", "badelatschen": "slides",
        "zehentrenner": "flip-flops", "hausschuh": "slippers", "pantoffel": "slippers", "ballerina": "ballet flats",
        "slipper": "loafers", "mokassin": "moccasins", "halbschuh": "shoes", "schnürschuh": "lace-up shoes",
        "handtasche": "handbag", "umhängetasche": "crossbody bag", "schultertasche": "shoulder bag",
        "rucksack": "backpack", "gürteltasche": "belt bag", "bauchtasche": "belt bag", "geldbörse": "wallet",
        "portemonnaie": "wallet", "gürtel": "belt", "schal": "scarf", "halstuch": "scarf", "mütze": "beanie",
        "basecap": "cap", "baseballcap": "cap", "kappe": "cap", "hut": "hat", "sonnenhut": "sun hat",
        "fischerhut": "bucket hat", "handschuh": "gloves", "fäustling": "mittens", "sonnenbrille": "sunglasses",
        "krawatte": "tie", "fliege": "bow tie", "stirnband": "headband", "haarband": "headband",
        "halskette": "necklace", "kette": "necklace", "armband": "bracelet", "ohrring": "earrings",
        "socke": "socks", "strumpf": "socks", "strümpfe": "socks", "kniestrümpfe": "knee socks",
        "strumpfhose": "tights", "bh": "bra", "unterhose": "underpants", "slip": "briefs", "panty": "briefs",
        "unterhemd": "undershirt", "schlafanzug": "pyjamas", "nachthemd": "nightdress", "bademantel": "bathrobe",
        "badeanzug": "swimsuit", "badehose": "swim shorts", "badeshorts": "swim shorts",
        "bikinihose": "bikini bottoms", "bikinioberteil": "bikini top",
    },
    "en": {
        "tee": "t-shirt", "shirt": "shirt", "blouse": "blouse", "tunic": "tunic", "camisole": "camisole",
        "cami": "camisole", "long sleeve top": "long-sleeve top", "jumper": "sweater", "vest": "vest",
        "gilet": "vest", "waistcoat": "vest", "suit": "suit", "trousers": "trousers", "pants": "trousers",
        "sweatpants": "joggers", "joggers": "joggers", "skirt": "skirt", "dress": "dress",
        "shirt dress": "shirt dress", "slip dress": "dress", "romper": "romper", "onesie": "romper",
        "dungarees": "dungarees", "overalls": "dungarees", "jacket": "jacket", "coat": "coat",
        "trench coat": "trench coat", "raincoat": "raincoat", "rain jacket": "rain jacket",
        "bomber jacket": "bomber jacket", "biker jacket": "biker jacket", "shoe": "shoes", "shoes": "shoes",
        "trainers": "sneakers", "running shoes": "running shoes", "boot": "boots", "ankle boots": "ankle boots",
        "rain boots": "rain boots", "sandal": "sandals", "sandals": "sandals", "slides": "slides",
        "slippers": "slippers", "ballet flats": "ballet flats", "moccasins": "moccasins", "heels": "pumps",
        "bag": "bag", "handbag": "handbag", "backpack": "backpack", "tote bag": "tote bag", "tote": "tote bag",
        "crossbody bag": "crossbody bag", "shoulder bag": "shoulder bag", "belt bag": "belt bag",
        "wallet": "wallet", "belt": "belt", "scarf": "scarf", "hat": "hat", "sun hat": "sun hat",
        "baseball cap": "cap", "gloves": "gloves", "mittens": "mittens", "sunglasses": "sunglasses",
        "necktie": "tie", "bow tie": "bow tie", "headband": "headband", "necklace": "necklace",
        "bracelet": "bracelet", "earrings": "earrings", "socks": "socks", "knee socks": "knee socks",
        "tights": "tights", "bra": "bra", "briefs": "briefs", "underpants": "underpants", "boxers": "boxer shorts",
        "boxer shorts": "boxer shorts", "undershirt": "undershirt", "pyjamas": "pyjamas", "pajamas": "pyjamas",
        "nightdress": "nightdress", "nightie": "nightdress", "bathrobe": "bathrobe", "swimsuit": "swimsuit",
        "swimming costume": "swimsuit", "swim shorts": "swim shorts", "bikini top": "bikini top",
        "bikini bottoms": "bikini bottoms", "tracksuit": "tracksuit",
    },
}

PRODUCT_CATEGORY: dict[str, str] = {
    **dict.fromkeys(
        ["t-shirt", "top", "tank top", "crop top", "bodysuit", "polo shirt", "long-sleeve top", "sweatshirt",
         "sweater", "hoodie", "cardigan", "blazer", "tunic", "kimono", "shirt", "blouse", "camisole", "vest",
         "sweater vest", "suit"],
        "tops",
    ),
    **dict.fromkeys(
        ["jeans", "chinos", "joggers", "leggings", "shorts", "trousers", "skirt", "dungarees"], "bottoms"
    ),
    **dict.fromkeys(["dress", "shirt dress", "dirndl", "jumpsuit", "playsuit", "romper"], "dresses"),
    **dict.fromkeys(
        ["jacket", "coat", "parka", "anorak", "trench coat", "blouson", "windbreaker", "poncho", "cape",
         "rain jacket", "raincoat", "bomber jacket", "biker jacket"],
        "outerwear",
    ),
    **dict.fromkeys(
        ["sneakers", "boots", "chelsea boots", "flip-flops", "ballet flats", "pumps", "loafers", "clogs",
         "espadrilles", "mules", "shoes", "running shoes", "ankle boots", "rain boots", "sandals", "slides",
         "slippers", "moccasins", "lace-up shoes"],
        "shoes",
    ),
    **dict.fromkeys(
        ["tote bag", "clutch", "beanie", "cap", "bucket hat", "handbag", "crossbody bag", "shoulder bag",
         "backpack", "belt bag", "wallet", "belt", "scarf", "hat", "sun hat", "gloves", "mittens", "sunglasses",
         "tie", "bow tie", "headband", "necklace", "bracelet", "earrings", "socks", "knee socks", "tights", "bag"],
        "accessories",
    ),
    **dict.fromkeys(
        ["boxer shorts", "pyjamas", "bra", "underpants", "briefs", "undershirt", "nightdress"], "underwear"
    ),
    **dict.fromkeys(["bikini", "bikini top", "tankini", "swimsuit", "swim shorts", "bikini bottoms"], "swimwear"),
    **dict.fromkeys(["bathrobe", "tracksuit"], "other"),
}

# Products named with "a pair of".
PAIR_NOUNS = frozenset(
    {
        "jeans", "chinos", "joggers", "leggings", "shorts", "trousers", "dungarees", "sneakers", "boots",
        "chelsea boots", "flip-flops", "ballet flats", "pumps", "loafers", "clogs", "espadrilles", "mules",
        "shoes", "running shoes", "ankle boots", "rain boots", "sandals", "slides", "slippers", "moccasins",
        "lace-up shoes", "gloves", "mittens", "sunglasses", "earrings", "socks", "knee socks", "tights",
        "boxer shorts", "pyjamas", "underpants", "briefs", "swim shorts", "bikini bottoms",
    }
)

# A product named inside another product's compound ("Jeansjacke") says what the latter is made of.
PRODUCT_AS_MATERIAL = {"jeans": "denim"}

TARGETS: dict[str, dict[str, str]] = {
    "both": {"kids": "children", "baby": "baby", "babys": "baby", "unisex": "unisex"},
    "de": {
        "damen": "women", "dame": "women", "frauen": "women", "frau": "women", "herren": "men", "herr": "men",
        "männer": "men", "mann": "men", "mädchen": "girls", "jungen": "boys", "jungs": "boys",
        "kinder": "children", "kind": "children", "teenager": "children",
    },
    "en": {
        "women": "women", "women's": "women", "womens": "women", "woman's": "women", "ladies": "women",
        "men": "men", "men's": "men", "mens": "men", "man's": "men", "girls": "girls", "girl": "girls",
        "girl's": "girls", "boys": "boys", "boy": "boys", "boy's": "boys", "kid's": "children",
        "children": "children", "children's": "children", "childrens": "children", "child": "children",
        "toddler": "children", "babies": "baby", "baby's": "baby", "infant": "baby",
    },
}

COLOURS: dict[str, dict[str, str]] = {
    "both": {
        "orange": "orange", "pink": "pink", "beige": "beige", "ecru": "ecru", "offwhite": "off-white",
        "navy": "navy", "khaki": "khaki", "bordeaux": "burgundy", "gold": "gold", "taupe": "taupe",
        "camel": "camel", "cognac": "cognac", "mint": "mint", "petrol": "petrol", "apricot": "apricot",
        "mauve": "mauve", "fuchsia": "fuchsia", "magenta": "magenta", "lila": "lilac", "creme": "cream",
        "cream": "cream", "oliv": "olive", "olive": "olive", "turquoise": "turquoise",
    },
    "de": {
        "schwarz": "black", "weiß": "white", "grau": "grey", "rot": "red", "blau": "blue", "grün": "green",
        "gelb": "yellow", "rosa": "pink", "violett": "purple", "braun": "brown", "wollweiß": "off-white",
        "naturweiß": "off-white", "cremeweiß": "cream", "marine": "navy", "marineblau": "navy",
        "navyblau": "navy", "türkis": "turquoise", "mintgrün": "mint", "olivgrün": "olive",
        "bordeauxrot": "burgundy", "weinrot": "burgundy", "golden": "gold", "silber": "silver",
        "silbern": "silver", "anthrazit": "charcoal", "senf": "mustard", "senfgelb": "mustard",
        "koralle": "coral", "lachs": "salmon", "flieder": "lilac", "altrosa": "dusty pink", "rosé": "blush pink",
        "kirschrot": "cherry red", "eisblau": "ice blue", "himmelblau": "sky blue", "royalblau": "royal blue",
        "jeansblau": "denim blue", "tannengrün": "dark green", "smaragdgrün": "emerald green",
        "flaschengrün": "bottle green", "rostrot": "rust", "rost": "rust", "ocker": "ochre", "bunt": "multicoloured",
        "mehrfarbig": "multicoloured", "sand": "sand", "sandfarben": "sand", "hellbraun": "light brown",
    },
    "en": {
        "black": "black", "white": "white", "grey": "grey", "gray": "grey", "red": "red", "blue": "blue",
        "navy blue": "navy", "green": "green", "yellow": "yellow", "purple": "purple", "violet": "purple",
        "lilac": "lilac", "brown": "brown", "off-white": "off-white", "burgundy": "burgundy", "maroon": "burgundy",
        "teal": "teal", "golden": "gold", "silver": "silver", "charcoal": "charcoal", "tan": "tan",
        "mustard": "mustard", "coral": "coral", "rust": "rust", "dusty pink": "dusty pink",
        "multicoloured": "multicoloured", "multicolored": "multicoloured", "multicolour": "multicoloured",
    },
}

COLOUR_MODIFIERS: dict[str, dict[str, str]] = {
    "both": {"neon": "neon", "pastell": "pastel", "pastel": "pastel"},
    "de": {"dunkel": "dark", "hell": "light", "zart": "pale", "knall": "bright", "tief": "deep", "mittel": "mid"},
    "en": {"dark": "dark", "light": "light", "pale": "pale", "bright": "bright", "deep": "deep"},
}

MATERIALS: dict[str, dict[str, str]] = {
    "both": {
        "polyester": "polyester", "denim": "denim", "satin": "satin", "chiffon": "chiffon", "jersey": "jersey",
        "fleece": "fleece", "nylon": "nylon", "modal": "modal", "lyocell": "lyocell", "tencel": "lyocell",
        "tweed": "tweed", "canvas": "canvas", "twill": "twill", "chambray": "chambray", "mesh": "mesh",
        "cashmere": "cashmere", "merino": "merino wool", "softshell": "softshell", "velours": "velour",
        "cord": "corduroy",
    },
    "de": {
        "baumwolle": "cotton", "baumwoll": "cotton", "biobaumwolle": "organic cotton",
        "bio baumwolle": "organic cotton", "elasthan": "elastane", "viskose": "viscose", "leinen": "linen",
        "wolle": "wool", "woll": "wool", "merinowolle": "merino wool", "kaschmir": "cashmere", "seide": "silk",
        "seiden": "silk", "leder": "leather", "echtleder": "leather", "glattleder": "leather",
        "kunstleder": "faux leather", "lederimitat": "faux leather", "wildleder": "suede",
        "veloursleder": "suede", "nubukleder": "nubuck", "lackleder": "patent leather", "kord": "corduroy",
        "samt": "velvet", "nicki": "velour", "strick": "knit", "gestrickt": "knit", "feinstrick": "fine knit",
        "grobstrick": "chunky knit", "sweat": "sweat fabric", "musselin": "muslin", "tüll": "tulle",
        "spitze": "lace", "frottee": "terry", "polyamid": "polyamide", "acryl": "acrylic",
        "kunstfell": "faux fur", "webpelz": "faux fur", "teddyfell": "teddy fleece", "pelz": "fur", "fell": "fur",
        "daunen": "down", "flanell": "flannel", "popeline": "poplin", "neopren": "neoprene", "gummi": "rubber",
        "kork": "cork", "stroh": "straw", "bast": "raffia", "filz": "felt", "mikrofaser": "microfibre",
        "häkel": "crochet", "gehäkelt": "crochet", "strass": "rhinestones",
        "perlmutt": "mother-of-pearl", "metall": "metal", "piqué": "piqué", "pique": "piqué",
    },
    "en": {
        "cotton": "cotton", "organic cotton": "organic cotton", "elastane": "elastane", "spandex": "elastane",
        "viscose": "viscose", "rayon": "viscose", "linen": "linen", "wool": "wool", "merino wool": "merino wool",
        "silk": "silk", "leather": "leather", "faux leather": "faux leather", "vegan leather": "faux leather",
        "suede": "suede", "nubuck": "nubuck", "patent leather": "patent leather", "corduroy": "corduroy",
        "velvet": "velvet", "velour": "velour", "knit": "knit", "knitted": "knit", "muslin": "muslin",
        "tulle": "tulle", "lace": "lace", "terry": "terry", "polyamide": "polyamide", "acrylic": "acrylic",
        "faux fur": "faux fur", "fur": "fur", "down filled": "down", "flannel": "flannel", "poplin": "poplin",
        "neoprene": "neoprene", "rubber": "rubber", "cork": "cork", "straw": "straw", "raffia": "raffia",
        "crochet": "crochet", "piqué": "piqué", "pique": "piqué", "metal": "metal", "mother of pearl": "mother-of-pearl",
    },
}

PATTERNS: dict[str, dict[str, str]] = {
    "both": {
        "camouflage": "camouflage", "camo": "camouflage", "melange": "melange", "paisley": "paisley",
        "jacquard": "jacquard", "animal print": "animal print", "animalprint": "animal print",
        "leopard": "animal print", "zebra": "animal print", "leo": "animal print", "glencheck": "glen check",
        "floral": "floral", "tie dye": "tie-dye", "allover print": "all-over print", "colour blocking": "colour blocking",
        "colorblocking": "colour blocking", "colorblock": "colour blocking", "argyle": "argyle",
        "vichy": "gingham", "gingham": "gingham", "tartan": "tartan", "fair isle": "fair isle",
    },
    "de": {
        "streifen": "stripes", "gestreift": "stripes", "ringel": "stripes", "geringelt": "stripes",
        "nadelstreifen": "pinstripes", "punkte": "dots", "pünktchen": "dots", "gepunktet": "dots",
        "tupfen": "dots", "getupft": "dots", "karo": "checks", "karos": "checks", "kariert": "checks",
        "hahnentritt": "houndstooth", "geblümt": "floral", "blümchen": "floral", "leoparden": "animal print",
        "schlangen": "animal print", "tarn": "camouflage", "meliert": "melange", "batik": "tie-dye",
        "zopf": "cable knit", "norweger": "nordic pattern", "fischgrat": "herringbone", "rauten": "argyle",
        "allover": "all-over print",
    },
    "en": {
        "stripes": "stripes", "striped": "stripes", "stripe": "stripes", "pinstripe": "pinstripes",
        "pinstripes": "pinstripes", "polka dots": "dots", "dots": "dots", "dotted": "dots", "spotted": "dots",
        "checks": "checks", "checked": "checks", "checkered": "checks", "plaid": "checks",
        "houndstooth": "houndstooth", "snake print": "animal print", "heathered": "melange", "marl": "melange",
        "cable knit": "cable knit", "herringbone": "herringbone", "all over print": "all-over print",
        "color blocking": "colour blocking",
    },
}

# How a pattern reads in front of the detail it decorates ("Streifenbündchen" -> "striped cuffs").
PATTERN_MODIFIER = {
    "stripes": "striped", "pinstripes": "pinstriped", "dots": "dotted", "checks": "checked",
    "animal print": "animal", "all-over print": "all-over", "colour blocking": "colour-block",
}

# Motifs: (standalone phrase, form in front of a print or embroidery, pattern it implies or None).
MOTIFS: dict[str, dict[str, tuple[str, str, str | None]]] = {
    "both": {
        "dino": ("dinosaurs", "dino", None), "dinos": ("dinosaurs", "dino", None), "logo": ("logo", "logo", None),
        "slogan": ("slogan", "slogan", None), "comic": ("comic motif", "comic", None),
        "cartoon": ("cartoon motif", "cartoon", None), "einhorn": ("unicorn", "unicorn", None),
        "tropical": ("tropical motif", "tropical", None), "rose": ("roses", "rose", None),
    },
    "de": {
        "blume": ("floral", "floral", "floral"), "blumen": ("floral", "floral", "floral"),
        "blüten": ("floral", "floral", "floral"), "dinosaurier": ("dinosaurs", "dinosaur", None),
        "einhörner": ("unicorns", "unicorn", None), "herz": ("hearts", "heart", None),
        "herzen": ("hearts", "heart", None), "herzchen": ("hearts", "heart", None), "stern": ("stars", "star", None),
        "sterne": ("stars", "star", None), "sternchen": ("stars", "star", None), "tier": ("animals", "animal", None),
        "tiere": ("animals", "animal", None), "katze": ("cats", "cat", None), "hund": ("dogs", "dog", None),
        "hunde": ("dogs", "dog", None), "pferd": ("horses", "horse", None), "pferde": ("horses", "horse", None),
        "bär": ("bears", "bear", None), "bären": ("bears", "bear", None), "hase": ("bunnies", "bunny", None),
        "fuchs": ("foxes", "fox", None), "füchse": ("foxes", "fox", None), "auto": ("cars", "car", None),
        "bagger": ("diggers", "digger", None), "feuerwehr": ("fire engines", "fire engine", None),
        "rakete": ("rockets", "rocket", None), "weltraum": ("space motif", "space", None),
        "meerjungfrau": ("mermaid", "mermaid", None), "regenbogen": ("rainbow", "rainbow", None),
        "palme": ("palm trees", "palm tree", None), "frucht": ("fruit", "fruit", None),
        "früchte": ("fruit", "fruit", None), "kirsche": ("cherries", "cherry", None),
        "erdbeere": ("strawberries", "strawberry", None), "schmetterling": ("butterflies", "butterfly", None),
        "totenkopf": ("skull", "skull", None), "fußball": ("football", "football", None),
        "foto": ("photo", "photo", None), "schrift": ("lettering", "lettering", None),
        "text": ("lettering", "text", None), "rosen": ("roses", "rose", None),
    },
    "en": {
        "flower": ("floral", "flower", "floral"), "flowers": ("floral", "flower", "floral"),
        "dinosaur": ("dinosaurs", "dinosaur", None), "dinosaurs": ("dinosaurs", "dinosaur", None),
        "unicorn": ("unicorn", "unicorn", None), "unicorns": ("unicorns", "unicorn", None),
        "heart": ("hearts", "heart", None), "hearts": ("hearts", "heart", None), "star": ("stars", "star", None),
        "stars": ("stars", "star", None), "animal": ("animals", "animal", None), "animals": ("animals", "animal", None),
        "cat": ("cats", "cat", None), "cats": ("cats", "cat", None), "dog": ("dogs", "dog", None),
        "dogs": ("dogs", "dog", None), "bear": ("bears", "bear", None), "bunny": ("bunnies", "bunny", None),
        "fox": ("foxes", "fox", None), "car": ("cars", "car", None), "cars": ("cars", "car", None),
        "rainbow": ("rainbow", "rainbow", None), "palm": ("palm trees", "palm", None),
        "butterfly": ("butterflies", "butterfly", None), "skull": ("skull", "skull", None),
        "graphic": ("graphic", "graphic", None), "roses": ("roses", "rose", None),
    },
}

# Decorations: (standalone phrase, form in front of another noun, implies its motif's pattern).
DECORATIONS: dict[str, dict[str, tuple[str, str, bool]]] = {
    "both": {
        "print": ("print", "print", True), "prints": ("print", "print", True), "patch": ("patch", "patch", False),
        "patches": ("patches", "patch", False), "badge": ("badge", "badge", False),
        "applikation": ("appliqué", "appliqué", False), "details": ("details", "detail", False),
        "detail": ("details", "detail", False),
    },
    "de": {
        "aufdruck": ("print", "print", True), "druck": ("print", "print", True), "motiv": ("motif", "motif", True),
        "motive": ("motifs", "motif", True), "stickerei": ("embroidery", "embroidery", False),
        "stickereien": ("embroidery", "embroidery", False), "lochstickerei": ("eyelet embroidery", "eyelet", False),
        "applikationen": ("appliqués", "appliqué", False), "aufnäher": ("patches", "patch", False),
        "pailletten": ("sequins", "sequin", False), "wendepailletten": ("reversible sequins", "sequin", False),
        "strasssteine": ("rhinestones", "rhinestone", False), "nieten": ("studs", "stud", False),
        "perlen": ("beads", "bead", False), "rüschen": ("ruffles", "ruffle", False), "volant": ("flounce", "flounce", False),
        "volants": ("flounces", "flounce", False), "schriftzug": ("lettering", "lettering", False),
        "fransen": ("fringe", "fringe", False), "quasten": ("tassels", "tassel", False),
        "schleife": ("bow", "bow", False), "schleifen": ("bows", "bow", False),
        "flockprint": ("flock print", "flock print", True), "biesen": ("pintucks", "pintuck", False),
        "raffung": ("ruching", "ruched", False), "glitzer": ("glitter", "glitter", False),
    },
    "en": {
        "embroidery": ("embroidery", "embroidery", False), "appliqué": ("appliqué", "appliqué", False),
        "applique": ("appliqué", "appliqué", False), "motif": ("motif", "motif", True),
        "sequins": ("sequins", "sequin", False), "rhinestones": ("rhinestones", "rhinestone", False),
        "studs": ("studs", "stud", False), "beads": ("beads", "bead", False), "ruffles": ("ruffles", "ruffle", False),
        "ruffle": ("ruffles", "ruffle", False), "flounce": ("flounce", "flounce", False),
        "lettering": ("lettering", "lettering", False), "fringe": ("fringe", "fringe", False),
        "tassels": ("tassels", "tassel", False), "bow": ("bow", "bow", False), "glitter": ("glitter", "glitter", False),
    },
}

# Garment parts: (standalone phrase, form in front of another noun). "tasche" may also be a bag.
PARTS: dict[str, dict[str, tuple[str, str]]] = {
    "both": {
        "zipper": ("zip", "zip"), "cargo": ("cargo pockets", "cargo"), "button down kragen": ("button-down collar", "button-down"),
        "raglan": ("raglan sleeves", "raglan"),
    },
    "de": {
        "ärmel": ("sleeves", "sleeve"), "ärmeln": ("sleeves", "sleeve"), "kurzarm": ("short sleeves", "short-sleeve"),
        "kurzärmelig": ("short sleeves", "short-sleeve"), "kurzärmlig": ("short sleeves", "short-sleeve"),
        "langarm": ("long sleeves", "long-sleeve"), "langärmelig": ("long sleeves", "long-sleeve"),
        "langärmlig": ("long sleeves", "long-sleeve"), "dreiviertelarm": ("three-quarter sleeves", "three-quarter-sleeve"),
        "dreiviertelärmel": ("three-quarter sleeves", "three-quarter-sleeve"), "puffärmel": ("puff sleeves", "puff-sleeve"),
        "flügelärmel": ("flutter sleeves", "flutter-sleeve"), "fledermausärmel": ("batwing sleeves", "batwing"),
        "ärmellos": ("sleeveless", "sleeveless"), "kragen": ("collar", "collar"), "kentkragen": ("kent collar", "kent collar"),
        "stehkragen": ("stand-up collar", "stand-up collar"), "rollkragen": ("turtleneck", "turtleneck"),
        "reverskragen": ("lapel collar", "lapel collar"), "bubikragen": ("peter pan collar", "peter pan collar"),
        "schalkragen": ("shawl collar", "shawl collar"), "hemdkragen": ("shirt collar", "shirt collar"),
        "polokragen": ("polo collar", "polo collar"), "kapuze": ("hood", "hood"), "kapuzen": ("hood", "hood"),
        "ausschnitt": ("neckline", "neckline"), "rundhalsausschnitt": ("crew neck", "crew-neck"),
        "rundhals": ("crew neck", "crew-neck"), "v ausschnitt": ("v-neck", "v-neck"),
        "u boot ausschnitt": ("boat neck", "boat-neck"), "carmenausschnitt": ("off-shoulder neckline", "off-shoulder"),
        "herzausschnitt": ("sweetheart neckline", "sweetheart"), "tasche": ("pocket", "pocket"),
        "taschen": ("pockets", "pocket"), "eingrifftaschen": ("slip pockets", "slip pocket"),
        "pattentaschen": ("flap pockets", "flap pocket"), "kängurutasche": ("kangaroo pocket", "kangaroo pocket"),
        "leistentaschen": ("welt pockets", "welt pocket"), "knopfleiste": ("button placket", "button placket"),
        "knopf": ("button", "button"), "knöpfe": ("buttons", "button"), "knöpfen": ("buttons", "button"),
        "druckknopf": ("press studs", "press-stud"), "druckknöpfe": ("press studs", "press-stud"),
        "reißverschluss": ("zip", "zip"), "kordelzug": ("drawstring", "drawstring"), "tunnelzug": ("drawstring", "drawstring"),
        "kordel": ("drawstring", "drawstring"), "gummizug": ("elastic waistband", "elastic"), "bund": ("waistband", "waistband"),
        "bündchen": ("ribbed cuffs", "cuff"), "rippbündchen": ("ribbed cuffs", "cuff"), "manschetten": ("cuffs", "cuff"),
        "saum": ("hem", "hem"), "schlitz": ("slit", "slit"), "gürtelschlaufen": ("belt loops", "belt loop"),
        "träger": ("straps", "strap"), "spaghettiträger": ("spaghetti straps", "spaghetti-strap"),
        "schnürung": ("lace-up", "lace-up"), "schnürsenkel": ("laces", "lace"), "sohle": ("sole", "sole"),
        "plateausohle": ("platform sole", "platform"), "absatz": ("heel", "heel"), "blockabsatz": ("block heel", "block heel"),
        "keilabsatz": ("wedge heel", "wedge"), "riemen": ("strap", "strap"), "henkel": ("handles", "handle"),
        "futter": ("lining", "lining"), "knoten": ("knot", "knot"), "schulterpolster": ("shoulder pads", "shoulder pad"),
        "ösen": ("eyelets", "eyelet"), "falten": ("pleats", "pleat"), "rückenausschnitt": ("open back", "open-back"),
        "besatz": ("trim", "trim"), "paspel": ("piping", "piping"), "kontrastnähte": ("contrast stitching", "contrast-stitch"),
        "bommel": ("pompom", "pompom"), "klettverschluss": ("hook-and-loop fastening", "hook-and-loop"),
        "verschluss": ("fastening", "fastening"), "schnalle": ("buckle", "buckle"), "kapuzenkordel": ("drawstring", "drawstring"),
    },
    "en": {
        "sleeve": ("sleeves", "sleeve"), "sleeves": ("sleeves", "sleeve"), "sleeveless": ("sleeveless", "sleeveless"),
        "collar": ("collar", "collar"), "kent collar": ("kent collar", "kent collar"),
        "button down collar": ("button-down collar", "button-down"), "hood": ("hood", "hood"),
        "hooded": ("hood", "hooded"), "neckline": ("neckline", "neckline"), "crew neck": ("crew neck", "crew-neck"),
        "round neck": ("crew neck", "crew-neck"), "v neck": ("v-neck", "v-neck"), "boat neck": ("boat neck", "boat-neck"),
        "turtleneck": ("turtleneck", "turtleneck"), "pocket": ("pocket", "pocket"), "pockets": ("pockets", "pocket"),
        "kangaroo pocket": ("kangaroo pocket", "kangaroo pocket"), "buttons": ("buttons", "button"),
        "button": ("button", "button"), "button placket": ("button placket", "button placket"),
        "zip": ("zip", "zip"), "zipped": ("zip", "zip"), "zip up": ("zip", "zip"), "drawstring": ("drawstring", "drawstring"),
        "waistband": ("waistband", "waistband"), "elastic waistband": ("elastic waistband", "elastic waistband"),
        "cuffs": ("cuffs", "cuff"), "ribbed cuffs": ("ribbed cuffs", "ribbed cuff"), "hem": ("hem", "hem"),
        "slit": ("slit", "slit"), "belt loops": ("belt loops", "belt loop"), "straps": ("straps", "strap"),
        "strap": ("strap", "strap"), "spaghetti straps": ("spaghetti straps", "spaghetti-strap"),
        "lace up": ("lace-up", "lace-up"), "laces": ("laces", "lace"), "sole": ("sole", "sole"),
        "platform sole": ("platform sole", "platform"), "heel": ("heel", "heel"), "block heel": ("block heel", "block heel"),
        "handles": ("handles", "handle"), "lining": ("lining", "lining"), "knot": ("knot", "knot"),
        "shoulder pads": ("shoulder pads", "shoulder pad"), "pleats": ("pleats", "pleat"), "trim": ("trim", "trim"),
        "tie waist": ("tie waist", "tie-waist"), "open back": ("open back", "open-back"), "piping": ("piping", "piping"),
        "press studs": ("press studs", "press-stud"), "snap buttons": ("press studs", "press-stud"),
        "buckle": ("buckle", "buckle"), "pompom": ("pompom", "pompom"), "pom pom": ("pompom", "pompom"),
    },
}

POSITIONS: dict[str, dict[str, str]] = {
    "both": {"front": "front"},
    "de": {"rücken": "back", "brust": "chest", "seiten": "side", "seite": "side", "gesäß": "back",
           "schulter": "shoulder", "innen": "inner", "vorder": "front", "rückseite": "back", "vorderseite": "front",
           "frontal": "front"},
    "en": {"back": "back", "chest": "chest", "side": "side", "shoulder": "shoulder", "inner": "inner"},
}

# Adjectives: (form in front of a noun, standalone detail or None, fit it implies or None).
ADJECTIVES: dict[str, dict[str, tuple[str, str | None, str | None]]] = {
    "both": {
        "mini": ("mini", "mini length", None), "midi": ("midi", "midi length", None), "maxi": ("maxi", "maxi length", None),
        "cropped": ("cropped", "cropped", None), "metallic": ("metallic", "metallic", None),
        "puff": ("puff", None, None), "high waist": ("high-waist", "high waist", None),
        "highwaist": ("high-waist", "high waist", None), "high rise": ("high-rise", "high rise", None),
        "used": ("distressed", "distressed look", None), "destroyed": ("distressed", "distressed look", None),
        "wide leg": ("wide-leg", None, "wide leg"),
    },
    "de": {
        "bestickt": ("embroidered", "embroidered", None), "bedruckt": ("printed", "printed", None),
        "kurz": ("short", None, None), "lang": ("long", None, None), "gerippt": ("ribbed", "ribbed", None),
        "ripp": ("ribbed", "ribbed", None), "gesteppt": ("quilted", "quilted", None), "stepp": ("quilted", "quilted", None),
        "wattiert": ("padded", "padded", None), "gefüttert": ("lined", "lined", None),
        "abnehmbar": ("detachable", None, None), "verstellbar": ("adjustable", None, None),
        "elastisch": ("elastic", None, None), "aufgesetzt": ("patch", None, None), "verdeckt": ("concealed", None, None),
        "kontrast": ("contrast", None, None), "kontrastfarben": ("contrasting", None, None),
        "plissiert": ("pleated", "pleated", None), "plissee": ("pleated", "pleated", None),
        "gerafft": ("ruched", "ruched", None), "glänzend": ("shiny", None, None), "glitzernd": ("glittering", "glitter", None),
        "verschieden": ("various", None, None), "ballon": ("balloon", None, None), "wickel": ("wrap", "wrap style", None),
        "schulterfrei": ("off-shoulder", "off-shoulder", None), "rückenfrei": ("open-back", "open back", None),
        "hochgeschlossen": ("high-neck", "high neck", None), "asymmetrisch": ("asymmetric", "asymmetric cut", None),
        "zweireihig": ("double-breasted", "double-breasted", None), "einreihig": ("single-breasted", "single-breasted", None),
        "weite": ("wide", None, "loose"), "weiten": ("wide", None, "loose"), "weitem": ("wide", None, "loose"),
        "weites": ("wide", None, "loose"), "tailliert": ("fitted", None, "fitted"),
        "figurbetont": ("figure-hugging", None, "figure-hugging"), "locker": ("loose", None, "loose"),
        "lässig": ("relaxed", None, "relaxed fit"), "gerade": ("straight", None, "straight"),
        "enganliegend": ("close-fitting", None, "slim fit"), "gewaschen": ("washed", "washed look", None),
        "zerrissen": ("ripped", "ripped", None), "transparent": ("sheer", "sheer", None),
        "abgesetzt": ("contrasting", None, None), "passend": ("matching", None, None),
    },
    "en": {
        "embroidered": ("embroidered", "embroidered", None), "printed": ("printed", "printed", None),
        "short": ("short", None, None), "long": ("long", None, None), "ribbed": ("ribbed", "ribbed", None),
        "quilted": ("quilted", "quilted", None), "padded": ("padded", "padded", None), "lined": ("lined", "lined", None),
        "detachable": ("detachable", None, None), "adjustable": ("adjustable", None, None),
        "elastic": ("elastic", None, None), "elasticated": ("elastic", None, None), "patch": ("patch", None, None),
        "concealed": ("concealed", None, None), "contrast": ("contrast", None, None),
        "contrasting": ("contrasting", None, None), "pleated": ("pleated", "pleated", None),
        "ruched": ("ruched", "ruched", None), "shiny": ("shiny", None, None), "various": ("various", None, None),
        "balloon": ("balloon", None, None), "wrap": ("wrap", "wrap style", None),
        "off shoulder": ("off-shoulder", "off-shoulder", None), "high neck": ("high-neck", "high neck", None),
        "asymmetric": ("asymmetric", "asymmetric cut", None), "double breasted": ("double-breasted", "double-breasted", None),
        "single breasted": ("single-breasted", "single-breasted", None), "wide": ("wide", None, None),
        "ruffled": ("ruffled", "ruffles", None), "distressed": ("distressed", "distressed look", None),
        "ripped": ("ripped", "ripped", None), "washed": ("washed", "washed look", None), "sheer": ("sheer", "sheer", None),
        "matching": ("matching", None, None), "fitted": ("fitted", None, "fitted"),
        "high waisted": ("high-waist", "high waist", None),
    },
}

FITS: dict[str, dict[str, str]] = {
    "both": {
        "slim fit": "slim fit", "slimfit": "slim fit", "slim": "slim fit", "regular fit": "regular fit",
        "regularfit": "regular fit", "oversized": "oversized", "oversize": "oversized", "loose fit": "loose",
        "relaxed fit": "relaxed fit", "skinny": "skinny", "skinny fit": "skinny", "straight fit": "straight",
        "straight leg": "straight", "bootcut": "bootcut", "flared": "flared", "tapered": "tapered",
        "tapered fit": "tapered", "mom fit": "mom fit", "boyfriend": "boyfriend fit", "comfort fit": "comfort fit",
        "modern fit": "modern fit", "loose": "loose", "relaxed": "relaxed fit", "straight": "straight",
    },
    "de": {"schlag": "flared", "ausgestellt": "flared", "lockere passform": "loose"},
    "en": {},
}

# Words that carry no attribute but belong to compounds ("Baumwollanteil", "Melange-Optik").
FILLERS: dict[str, frozenset[str]] = {
    "both": frozenset({"look", "design", "style", "basic", "basics", "fashion", "trend", "outfit"}),
    "de": frozenset({
        "anteil", "optik", "qualität", "mischung", "stoff", "material", "stil", "form", "schnitt", "passform",
        "farbe", "farben", "farbig", "sommer", "winter", "frühling", "herbst", "übergang", "freizeit", "alltag",
        "mode", "effekt", "waschung", "länge", "teil", "modell", "kollektion", "saison", "abend", "bio", "fein",
        "grob", "gewebe", "qualitäts", "lieblings", "trend", "akzent", "akzente",
    }),
    "en": frozenset({"fabric", "blend", "material", "quality", "cut"}),
}

# "Blumenmuster": the motif before it is a pattern.
PATTERN_HEADS: dict[str, frozenset[str]] = {
    "both": frozenset({"dessin"}),
    "de": frozenset({"muster"}),
    "en": frozenset({"pattern", "patterned"}),
}

# Words after which a product is an accessory of the main one ("Kleid mit Gürtel").
_WITH_WORDS = frozenset({"mit", "with", "inkl", "inklusive", "including", "samt", "incl", "plus"})

# Compound parts that make a "Tasche" a bag rather than a pocket.
_BAG_MODIFIER_KINDS = frozenset({"target", "material", "colour"})


@dataclass(frozen=True)
class _Entry:
    kind: str
    value: str | None = None
    mod: str | None = None
    extra: Any = None


def _normalise_key(key: str) -> str:
    return " ".join(key.lower().replace("-", " ").split())


def _spelling_variants(key: str) -> set[str]:
    variants = {key}
    if "ß" in key:
        variants.add(key.replace("ß", "ss"))
    if any(ch in key for ch in "äöü"):
        variants.add(key.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss"))
    return variants


def _lexicon_entries(lang: str) -> Iterable[tuple[str, _Entry]]:
    for table, make in (
        (PRODUCTS, lambda v: _Entry("product", v)),
        (TARGETS, lambda v: _Entry("target", v)),
        (COLOURS, lambda v: _Entry("colour", v)),
        (COLOUR_MODIFIERS, lambda v: _Entry("colourmod", v, v)),
        (MATERIALS, lambda v: _Entry("material", v, v)),
        (PATTERNS, lambda v: _Entry("pattern", v, PATTERN_MODIFIER.get(v, v))),
        (MOTIFS, lambda v: _Entry("motif", v[0], v[1], v[2])),
        (DECORATIONS, lambda v: _Entry("deco", v[0], v[1], v[2])),
        (PARTS, lambda v: _Entry("part", v[0], v[1])),
        (POSITIONS, lambda v: _Entry("position", None, v)),
        (ADJECTIVES, lambda v: _Entry("adj", v[1], v[0], v[2])),
        (FITS, lambda v: _Entry("fit", v)),
    ):
        for key, value in table.get(lang, {}).items():
            yield key, make(value)
    for key in FILLERS.get(lang, ()):
        yield key, _Entry("filler")
    for key in PATTERN_HEADS.get(lang, ()):
        yield key, _Entry("patternhead")


def _build_index(lang: str) -> dict[str, _Entry]:
    """Surface form -> entry for one language; a form listed twice with different meanings is a bug."""
    index: dict[str, _Entry] = {}
    sources: dict[str, str] = {}
    for source in ("both", lang):
        for key, entry in _lexicon_entries(source):
            for variant in _spelling_variants(_normalise_key(key)):
                previous = index.get(variant)
                if previous is not None and previous != entry and sources[variant] == source:
                    raise ValueError(f"lexicon form {variant!r} has two meanings: {previous} and {entry}")
                if previous is None or source == lang:
                    index[variant] = entry
                    sources[variant] = source
    return index


_INDEX: dict[str, dict[str, _Entry]] = {"de": _build_index("de"), "en": _build_index("en")}
_MAX_KEY_TOKENS = max(len(key.split()) for index in _INDEX.values() for key in index)
_MAX_KEY_CHARS = max(len(key) for index in _INDEX.values() for key in index)
_MAX_WORD = 60  # longer "words" are not German compounds but noise


def lexicon_size() -> int:
    """Number of distinct surface forms listed in the lexicon (both languages, before spelling variants)."""
    keys: set[tuple[str, str]] = set()
    for lang in ("both", "de", "en"):
        keys.update((lang, _normalise_key(key)) for key, _ in _lexicon_entries(lang))
    return len(keys)


# --------------------------------------------------------------------------------------------------
# Language detection
# --------------------------------------------------------------------------------------------------

_DE_FUNCTION_WORDS = frozenset(
    "der die das den dem des und mit ist ein eine einen einem einer für aus zu von sich auf im am sind nicht auch "
    "macht wird oder bei dank sowie durch nach vom zum zur sie es wie sorgt ihr dein deine unser unsere hat".split()
)
_EN_FUNCTION_WORDS = frozenset(
    "the and with a an of for is this made from your to features on at its it by or that are you our has "
    "these their into perfect".split()
)
_WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def detect_language(text: str) -> Language:
    """German or English from function words, umlauts/ß and lexicon hits; ties go to German, the catalog's."""
    words = [w.replace("’", "'") for w in _WORD_RE.findall(text.lower())]
    de = sum(w in _DE_FUNCTION_WORDS for w in words) + 2 * sum(ch in "äöüß" for ch in text.lower())
    en = sum(w in _EN_FUNCTION_WORDS for w in words) + 2 * sum(w.endswith("'s") for w in words)
    de_only = _INDEX["de"].keys() - _INDEX["en"].keys()
    en_only = _INDEX["en"].keys() - _INDEX["de"].keys()
    de += sum(w in de_only for w in words)
    en += sum(w in en_only for w in words)
    return "en" if en > de else "de"


# --------------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------------


def validate_description(text: Any, max_chars: int = MAX_DESCRIPTION_CHARS) -> str:
    """Reject what no extractor can use, naming the field and the bound."""
    if not isinstance(text, str):
        raise InvalidInputError("description", text, "must be a string")
    if not text.strip():
        raise InvalidInputError("description", text, "must not be empty")
    if len(text) > max_chars:
        raise PayloadTooLargeError("description", text, f"must be at most {max_chars} characters")
    return text


def _check_language(language: Any) -> LanguageArg:
    if language not in ("de", "en", "auto"):
        raise InvalidInputError("language", language, "must be one of 'de', 'en', 'auto'")
    return language


# --------------------------------------------------------------------------------------------------
# Lexicon extractor
# --------------------------------------------------------------------------------------------------

_QUOTE_RES = [
    re.compile(r'"([^"\n]{1,200}?)"'),
    re.compile(r"„([^“”\"\n]{1,200}?)[“”\"]"),
    re.compile(r"“([^”“\n]{1,200}?)”"),
    re.compile(r"‚([^‘’\n]{1,200}?)[‘’]"),
    re.compile(r"(?<![^\W_])‘([^’\n]{1,200}?)’(?![^\W_])"),
    re.compile(r"»([^«\n]{1,200}?)«"),
    re.compile(r"«([^»\n]{1,200}?)»"),
    re.compile(r"(?<![^\W_])'([^'\n]{1,200}?)'(?![^\W_])"),
]
_TOKEN_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+")
_HYPHENS = "-‐‑–"
_INFLECTIONS = ("ern", "en", "em", "er", "es", "e", "n", "s")
_LINKS = ("es", "en", "er", "s", "n", "e")
_MIN_PIECE = 3
_FALLBACK_KINDS = frozenset({"product", "material", "deco"})
_FALLBACK_EXCLUDE = frozenset({"druck", "form", "stoff"})


def _printed_text(text: str) -> tuple[list[str], str]:
    """Quoted strings (printed or embroidered text), and the text with them blanked out."""
    spans = sorted(
        (m.start(), m.end(), m.group(1)) for pattern in _QUOTE_RES for m in pattern.finditer(text)
    )
    found: list[str] = []
    kept: list[str] = []
    cursor = 0
    for start, end, inner in spans:
        if start < cursor:
            continue
        inner = " ".join(inner.split()).strip(" .,;:!?")
        if not inner or len(inner) > MAX_ITEM_CHARS:
            continue
        found.append(inner)
        kept.append(text[cursor:start])
        kept.append(" | ")
        cursor = end
    kept.append(text[cursor:])
    return list(dict.fromkeys(found))[:MAX_ITEMS], "".join(kept)


@dataclass
class _Token:
    text: str
    group: int
    sent: int
    brk: bool


@dataclass
class _Seg:
    entry: _Entry
    group: int
    sent: int
    inflected: bool = False

    @property
    def kind(self) -> str:
        return self.entry.kind


@dataclass
class _Chunk:
    segs: list[_Seg] = field(default_factory=list)
    with_: bool = False


@dataclass
class _State:
    products: list[tuple[str, bool, int]] = field(default_factory=list)  # (product, after "mit", sentence)
    targets: list[tuple[str, int]] = field(default_factory=list)
    colours: list[str] = field(default_factory=list)
    materials: list[str] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    fits: list[str] = field(default_factory=list)
    lang: Language = "de"


class LexiconExtractor:
    """Deterministic extractor over a German/English fashion lexicon, with German compound splitting."""

    def __init__(self, max_chars: int = MAX_DESCRIPTION_CHARS) -> None:
        self.max_chars = max_chars

    # -- public ------------------------------------------------------------------------------------

    def extract(self, text: str, language: LanguageArg = "auto") -> Attributes:
        """Attributes of one description; `language="auto"` detects German or English."""
        text = validate_description(text, self.max_chars)
        language = _check_language(language)
        lang: Language = detect_language(text) if language == "auto" else language
        text = unicodedata.normalize("NFC", text)
        printed, rest = _printed_text(text)
        rest = rest.replace("’", "'").replace("3/4", " dreiviertel ")
        chunks = self._chunks(rest, lang)
        state = _State(lang=lang)
        for chunk in chunks:
            self._process(chunk, state)
        product, extra_products = self._choose_product(state)
        details = [*state.details, *extra_products]
        return Attributes(
            product_type=product,
            category=PRODUCT_CATEGORY.get(product) if product else None,
            target_group=_resolve_target(state.targets),
            colors=_distinct(state.colours),
            materials=_distinct(state.materials),
            patterns=_distinct(state.patterns),
            design_details=_drop_subsumed(_distinct(details)),
            printed_text=printed,
            fit=state.fits[0] if state.fits else None,
            language=lang,
        )

    # -- tokens, segments, chunks ------------------------------------------------------------------

    def _tokens(self, text: str) -> list[_Token]:
        tokens: list[_Token] = []
        group = -1
        for sent, sentence in enumerate(s for s in _SENTENCE_RE.split(text) if s and s.strip()):
            previous_end: int | None = None
            sentence = sentence.lower()
            for match in _TOKEN_RE.finditer(sentence):
                gap = sentence[previous_end: match.start()] if previous_end is not None else ""
                joined = previous_end is not None and gap != "" and all(ch in _HYPHENS for ch in gap)
                brk = previous_end is None or not (joined or gap.isspace())
                if not joined:
                    group += 1
                tokens.append(_Token(match.group(0), group, sent, brk))
                previous_end = match.end()
        return tokens

    def _chunks(self, text: str, lang: Language) -> list[_Chunk]:
        """Runs of known words between unknown words and punctuation, as lexicon segments."""
        index = _INDEX[lang]
        tokens = self._tokens(text)
        chunks: list[_Chunk] = [_Chunk()]
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if token.brk and chunks[-1].segs:
                chunks.append(_Chunk())
            matched = False
            for n in range(min(_MAX_KEY_TOKENS, len(tokens) - i), 1, -1):
                span = tokens[i: i + n]
                if any(t.brk or t.sent != token.sent for t in span[1:]):
                    continue
                entry, inflected = _lookup(index, " ".join(t.text for t in span))
                if entry is not None:
                    chunks[-1].segs.append(_Seg(entry, token.group, token.sent, inflected))
                    i += n
                    matched = True
                    break
            if matched:
                continue
            pieces = _segment_word(token.text, lang)
            if pieces:
                chunks[-1].segs.extend(_Seg(e, token.group, token.sent, infl) for e, infl in pieces)
            else:
                chunks.append(_Chunk(with_=token.text in _WITH_WORDS))
            i += 1
        return [c for c in chunks if c.segs]

    # -- interpretation ----------------------------------------------------------------------------

    def _process(self, chunk: _Chunk, state: _State) -> None:
        segs = [s for s in chunk.segs if s.kind != "filler"]
        pending: list[_Seg] = []
        for idx, seg in enumerate(segs):
            nxt = segs[idx + 1] if idx + 1 < len(segs) else None
            same_group = nxt is not None and nxt.group == seg.group
            if (
                seg.kind == "part"
                and state.lang == "de"
                and seg.entry.value in ("pocket", "pockets")
                and self._is_bag(segs, idx, chunk, state)
            ):
                seg = _Seg(_Entry("product", "bag"), seg.group, seg.sent)
            kind = seg.kind
            if kind == "product":
                value = seg.entry.value or ""
                modifier = nxt is not None and (
                    (same_group and nxt.kind in ("product", "part", "deco")) or nxt.kind == "product"
                )
                if modifier:
                    if value in PRODUCT_AS_MATERIAL:
                        state.materials.append(PRODUCT_AS_MATERIAL[value])
                    continue
                self._flush(pending, state)
                state.products.append((value, chunk.with_, seg.sent))
            elif kind == "target":
                state.targets.append((seg.entry.value or "", seg.sent))
            elif kind == "fit":
                state.fits.append(seg.entry.value or "")
            elif kind == "pattern":
                state.patterns.append(seg.entry.value or "")
                pending.append(seg)
            elif kind in ("colour", "colourmod", "material", "motif", "adj", "position"):
                pending.append(seg)
            elif kind in ("part", "deco"):
                if nxt is not None and nxt.kind in ("part", "deco"):
                    pending.append(seg)
                    continue
                if same_group and nxt is not None and nxt.kind == "product":
                    # "Cargohose": the part belongs to the compound; words before it describe the product.
                    own = [p for p in pending if p.group == seg.group]
                    pending[:] = [p for p in pending if p.group != seg.group]
                    self._compose(own, seg, state)
                    continue
                self._compose(pending, seg, state)
            elif kind == "patternhead":
                for p in pending:
                    if p.kind == "motif":
                        state.patterns.append(p.entry.extra or f"{p.entry.mod} pattern")
                pending[:] = [p for p in pending if p.kind != "motif"]
                self._flush(pending, state)
        self._flush(pending, state)

    def _is_bag(self, segs: list[_Seg], idx: int, chunk: _Chunk, state: _State) -> bool:
        """'Tasche' is a bag when a wearer, material or colour qualifies it, or it opens the text."""
        seg = segs[idx]
        before = [s for s in segs[:idx] if s.group == seg.group]
        if before and before[-1].kind in ("position", "part", "adj", "product"):
            return False
        if any(s.kind in ("target", "material") for s in before):
            return True
        if chunk.with_ or state.products or seg.sent != 0:
            return False
        return all(s.kind in _BAG_MODIFIER_KINDS for s in segs[:idx])

    def _compose(self, pending: list[_Seg], head: _Seg, state: _State) -> None:
        """A detail phrase: the modifiers in front of a part or decoration, then its name."""
        # German adjectives before a noun are inflected ("weißem Aufdruck"); a bare colour word across words
        # is a title-style listing ("Poloshirt Blau Kurzarm") and names the garment's colour.
        attached: list[_Seg] = []
        detached: list[_Seg] = []
        for i, p in enumerate(pending):
            if p.kind in ("colour", "colourmod") and state.lang == "de" and p.group != head.group:
                ref = pending[i + 1] if p.kind == "colourmod" and i + 1 < len(pending) else p
                if not ref.inflected:
                    detached.append(p)
                    continue
            attached.append(p)
        state.colours.extend(_colour_run(detached))
        words: list[str] = []
        carries_pattern = bool(head.entry.extra) and head.kind == "deco"
        for i, p in enumerate(attached):
            if p.kind == "colourmod":
                if i + 1 < len(attached) and attached[i + 1].kind == "colour":
                    words.append(p.entry.mod or "")
                continue
            if p.kind == "colour":
                words.append(p.entry.value or "")
            elif p.kind == "motif":
                words.append(p.entry.mod or "")
                if carries_pattern and p.entry.extra:
                    state.patterns.append(p.entry.extra)
            else:
                words.append(p.entry.mod or "")
        head_words = head.entry.value or ""
        if not any(words) and head_words == "details":
            pending.clear()
            return
        state.details.append(" ".join([*[w for w in words if w], head_words]))
        pending.clear()

    def _flush(self, pending: list[_Seg], state: _State) -> None:
        """Modifiers that found no part to attach to stand on their own."""
        adjs: list[_Seg] = []

        def drop_adjs() -> None:
            for a in adjs:
                if a.entry.extra:
                    state.fits.append(a.entry.extra)
                elif a.entry.value:
                    state.details.append(a.entry.value)
            adjs.clear()

        colour_run: list[_Seg] = []
        for p in pending:
            if p.kind in ("colour", "colourmod"):
                colour_run.append(p)
                continue
            state.colours.extend(_colour_run(colour_run))
            colour_run = []
            if p.kind == "adj":
                adjs.append(p)
            elif p.kind == "motif":
                if p.entry.extra:
                    state.patterns.append(p.entry.extra)
                    drop_adjs()
                else:
                    state.details.append(" ".join([*[a.entry.mod or "" for a in adjs], p.entry.value or ""]))
                    adjs.clear()
            elif p.kind == "material":
                drop_adjs()
                state.materials.append(p.entry.value or "")
            elif p.kind in ("part", "deco"):
                drop_adjs()
                state.details.append(p.entry.value or "")
            else:
                drop_adjs()
        state.colours.extend(_colour_run(colour_run))
        drop_adjs()
        pending.clear()

    def _choose_product(self, state: _State) -> tuple[str | None, list[str]]:
        """The first head noun, preferring the first sentence and words not after 'mit'/'with'."""
        if not state.products:
            return None, []
        first_sent = min(s for _, _, s in state.products)
        candidates = [p for p in state.products if p[2] == first_sent and not p[1]] or [
            p for p in state.products if not p[1]
        ] or state.products
        product = candidates[0][0]
        extras = [p for p, with_, s in state.products if with_ and s == first_sent and p != product]
        return product, extras


def _colour_run(run: list[_Seg]) -> list[str]:
    """Colour modifiers merge with the colour after them ("dunkel" + "blau" -> "dark blue")."""
    out: list[str] = []
    modifier: str | None = None
    for seg in run:
        if seg.kind == "colourmod":
            modifier = seg.entry.value
            continue
        value = seg.entry.value or ""
        out.append(f"{modifier} {value}" if modifier and " " not in value else value)
        modifier = None
    return out


@lru_cache(maxsize=65536)
def _segment_word(word: str, lang: Language) -> tuple[tuple[_Entry, bool], ...] | None:
    """A word as lexicon entries: itself, or (German) a compound of known parts, or its known head."""
    index = _INDEX[lang]
    entry, inflected = _lookup(index, word)
    if entry is not None:
        return ((entry, inflected),)
    if lang != "de" or not 2 * _MIN_PIECE <= len(word) <= _MAX_WORD:
        return None
    pieces = _split_compound(word, index) or _head_fallback(word, index)
    return tuple(pieces) if pieces else None


def _lookup(index: dict[str, _Entry], key: str) -> tuple[_Entry | None, bool]:
    """An exact form, else the form less one inflectional ending (German adjectives and plurals)."""
    entry = index.get(key)
    if entry is not None:
        return entry, False
    for ending in _INFLECTIONS:
        if key.endswith(ending) and len(key) - len(ending) >= _MIN_PIECE:
            entry = index.get(key[: -len(ending)])
            if entry is not None:
                return entry, True
    return None, False


def _split_compound(word: str, index: dict[str, _Entry]) -> list[tuple[_Entry, bool]] | None:
    """Fewest known pieces covering the word, allowing linking elements (Fugen-s) and a final ending."""
    n = len(word)
    # best[p] = (cost, pieces) for covering word[:p]
    best: list[tuple[int, list[tuple[_Entry, bool]]] | None] = [None] * (n + 1)
    best[0] = (0, [])
    for start in range(n):
        if best[start] is None:
            continue
        cost, pieces = best[start]  # type: ignore[misc]
        for end in range(start + _MIN_PIECE, min(n, start + _MAX_KEY_CHARS) + 1):
            entry = index.get(word[start:end])
            if entry is None:
                continue
            options = [(end, 0, False)]
            if end < n:
                options += [
                    (end + len(link), 1, False) for link in _LINKS if word.startswith(link, end) and end + len(link) < n
                ]
                options += [(n, 1, True) for ending in _INFLECTIONS if word[end:] == ending]
            for stop, penalty, inflected in options:
                candidate = (cost + 10 + penalty, [*pieces, (entry, inflected)])
                if stop <= n and (best[stop] is None or candidate[0] < best[stop][0]):  # type: ignore[index]
                    best[stop] = candidate
    result = best[n]
    if result is None or len(result[1]) < 2:
        return None
    return result[1]


def _head_fallback(word: str, index: dict[str, _Entry]) -> list[tuple[_Entry, bool]] | None:
    """An unknown compound still names its head ("Etuikleid" -> dress): the longest known ending."""
    for start in range(max(_MIN_PIECE, len(word) - _MAX_KEY_CHARS - 3), len(word) - 3):
        tail = word[start:]
        entry, inflected = _lookup(index, tail)
        if entry is None or entry.kind not in _FALLBACK_KINDS:
            continue
        base = tail
        if inflected:
            base = next(
                (tail[: -len(e)] for e in _INFLECTIONS if tail.endswith(e) and tail[: -len(e)] in index), tail
            )
        if base in _FALLBACK_EXCLUDE or len(base) < 4:
            continue
        return [(entry, inflected)]
    return None


def _resolve_target(cues: list[tuple[str, int]]) -> str | None:
    """The most specific wearer in the first sentence that names one ("Kinder-Mädchen" -> girls)."""
    if not cues:
        return None
    first = min(s for _, s in cues)
    found = {value for value, s in cues if s == first}
    if "baby" in found:
        return "baby"
    if "girls" in found and "boys" in found:
        return "children"
    for value in ("girls", "boys", "children", "unisex"):
        if value in found:
            return value
    if "women" in found and "men" in found:
        return "unisex"
    for value in ("women", "men"):
        if value in found:
            return value
    return None


def _distinct(items: Iterable[str]) -> list[str]:
    out = list(dict.fromkeys(i.strip() for i in items if i and i.strip()))
    return [i[:MAX_ITEM_CHARS] for i in out][:MAX_ITEMS]


def _drop_subsumed(items: list[str]) -> list[str]:
    """Drop a detail whose words appear in order inside a longer one ("print" beside "dino front print")."""
    def inside(short: str, long: str) -> bool:
        if short == long:
            return False
        words = iter(long.split())
        return all(word in words for word in short.split())

    return [item for item in items if not any(inside(item, other) for other in items)]


@lru_cache(maxsize=1)
def _default_extractor() -> LexiconExtractor:
    return LexiconExtractor()


def extract_attributes(text: str, language: LanguageArg = "auto") -> Attributes:
    """Lexicon extraction with a shared extractor (its compound cache is reused)."""
    return _default_extractor().extract(text, language)


# --------------------------------------------------------------------------------------------------
# LLM extractor
# --------------------------------------------------------------------------------------------------

LLM_PROMPT = """Extract the attributes of the fashion product described below. Answer with one JSON object only, \
in English, with exactly these keys:
"product_type": lowercase English product noun such as "t-shirt", "dress", "sneakers", or null;
"category": one of "tops", "bottoms", "dresses", "outerwear", "shoes", "accessories", "underwear", "swimwear", \
"other", or null;
"target_group": one of "women", "men", "girls", "boys", "children", "baby", "unisex", or null;
"colors", "materials", "patterns", "design_details": lists of short English phrases;
"printed_text": list of the texts printed or embroidered on the product, verbatim;
"fit": a fit such as "slim fit", "regular fit", "oversized", or null.

Description: {text}
JSON:"""


def parse_llm_output(text: str) -> Attributes:
    """The first JSON object in a model's answer, validated; ValueError when there is none or it is invalid."""
    if not isinstance(text, str):
        raise ValueError("LLM output must be a string")
    decoder = json.JSONDecoder()
    saw_brace = False
    for match in re.finditer(r"\{", text):
        saw_brace = True
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if not isinstance(value, dict):
            continue
        try:
            return Attributes.model_validate(value)
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise ValueError(f"LLM output does not match the attribute schema: {exc}") from exc
    raise ValueError("LLM output holds no valid JSON object" if saw_brace else "LLM output holds no JSON object")


class LLMExtractor:
    """Attributes from a causal LM's JSON answer; the lexicon result whenever the model's answer is unusable."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        max_new_tokens: int = 256,
        device: str = "cpu",
        fallback: LexiconExtractor | None = None,
        max_chars: int = MAX_DESCRIPTION_CHARS,
    ) -> None:
        if max_new_tokens < 1:
            raise InvalidInputError("max_new_tokens", max_new_tokens, "must be at least 1")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_path = str(model_path)
        self.max_new_tokens = max_new_tokens
        self.device = device
        self.fallback = fallback or LexiconExtractor(max_chars=max_chars)
        self.max_chars = max_chars
        path = Path(self.model_path).expanduser()
        local = path.is_dir()
        if not local and (path.is_absolute() or self.model_path.startswith((".", "~"))):
            raise ModelNotFoundError(f"no causal LM folder at {self.model_path!r}")
        try:
            source = str(path) if local else self.model_path
            self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
            self.model = AutoModelForCausalLM.from_pretrained(source, local_files_only=local)
        except (OSError, ValueError) as exc:  # missing files, or a folder that holds no causal LM
            raise ModelNotFoundError(f"no causal LM at {self.model_path!r}: {exc}") from exc
        self.model.to(device)
        self.model.eval()

    def extract(self, text: str, language: LanguageArg = "auto") -> Attributes:
        """The model's attributes, or the lexicon's when generation or parsing fails."""
        text = validate_description(text, self.max_chars)
        baseline = self.fallback.extract(text, _check_language(language))
        try:
            answer = self.generate(LLM_PROMPT.format(text=text))
            attributes = parse_llm_output(answer)
        except Exception as exc:  # any model or parsing failure degrades to the lexicon result
            logger.warning(
                "LLM attribute extraction failed (%s: %s); using the lexicon result", type(exc).__name__, exc
            )
            return baseline
        return attributes.model_copy(update={"language": baseline.language})

    def generate(self, prompt: str) -> str:
        """Greedy, bounded generation; only the new tokens are decoded."""
        import torch

        templated = bool(getattr(self.tokenizer, "chat_template", None))
        if templated:  # instruction-tuned models answer best in their own chat format
            prompt = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=not templated)
        inputs.pop("token_type_ids", None)
        length = inputs["input_ids"].shape[1]
        limit = getattr(self.model.config, "max_position_embeddings", None) or getattr(
            self.model.config, "n_positions", None
        )
        if limit is not None and length + self.max_new_tokens > limit:
            raise ValueError(
                f"prompt of {length} tokens leaves no room for {self.max_new_tokens} new tokens (limit {limit})"
            )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.inference_mode():
            output = self.model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1, pad_token_id=pad
            )
        return self.tokenizer.decode(output[0, length:], skip_special_tokens=True)
