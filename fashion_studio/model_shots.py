"""Model shots: a person wearing a described outfit, drawn by the generator.

A designer describes the top (or a dress) and the bottom, in German or English ("rotes gestreiftes
T-Shirt", "navy trousers"); each description's attributes come from the attribute lexicon (no
translation step: the lexicon reads both languages), and the generation prompt names the person and
the outfit the way the generator was trained to read it:

    a woman wearing a red striped t-shirt and navy trousers

`Outfit.from_descriptions` checks that each garment fits its slot (a top, outerwear or a dress above;
trousers, shorts or a skirt below; nothing below a dress) and says which field is wrong otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fashion_studio.attributes import Attributes, extract_attributes
from fashion_studio.errors import InvalidInputError

Body = Literal["woman", "man"]
BODIES: tuple[str, ...] = ("woman", "man")
# Attribute categories each slot takes (the lexicon's categories).
TOP_CATEGORIES: tuple[str, ...] = ("tops", "outerwear", "dresses")
BOTTOM_CATEGORIES: tuple[str, ...] = ("bottoms",)
# Patterns said as an adjective before the garment ("a striped t-shirt"); others as "with ...".
PATTERN_ADJECTIVES: dict[str, str] = {"stripes": "striped", "dots": "dotted", "checks": "checked", "floral": "floral", "plaid": "plaid"}
PAIR_NOUNS: tuple[str, ...] = ("trousers", "shorts", "jeans", "leggings", "pants", "chinos", "joggers", "tights", "culottes")  # no article before them


@dataclass(frozen=True)
class Garment:
    """What the prompt says of one garment: its type, and its first colour and pattern if named."""

    product_type: str
    colour: str | None = None
    pattern: str | None = None

    @classmethod
    def of(cls, attributes: Attributes) -> Garment:
        pattern = next((p for p in attributes.patterns if p != "plain"), None)
        return cls(attributes.product_type or "", attributes.colors[0] if attributes.colors else None, pattern)

    def phrase(self, with_phrase: bool = False) -> str:
        """ "a red striped t-shirt", "navy trousers", "an orange skirt with dots" (`with_phrase`)."""
        adjective = PATTERN_ADJECTIVES.get(self.pattern or "")
        words = [w for w in (self.colour, None if with_phrase else adjective) if w]
        text = " ".join([*words, self.product_type])
        if self.pattern and (with_phrase or adjective is None):
            text += f" with {self.pattern}"
        if self.product_type in PAIR_NOUNS:
            return text
        return ("an " if text[0] in "aeiou" else "a ") + text


def outfit_prompt(body: str, garments: list[Garment], with_phrase: bool = False) -> str:
    """ "a woman wearing a red striped t-shirt and navy trousers"."""
    return f"a {body} wearing " + " and ".join(g.phrase(with_phrase) for g in garments)


@dataclass(frozen=True)
class Outfit:
    body: str
    top: Garment
    bottom: Garment | None

    @property
    def garments(self) -> list[Garment]:
        return [self.top] if self.bottom is None else [self.top, self.bottom]

    def prompt(self) -> str:
        return outfit_prompt(self.body, self.garments)

    @classmethod
    def from_descriptions(cls, body: str, top: str, bottom: str | None = None, language: str = "auto") -> Outfit:
        bottom = bottom.strip() if bottom else None  # a blank bottom is no bottom
        if body not in BODIES:
            raise InvalidInputError("body", body, f"one of {', '.join(BODIES)}")
        top_attributes = _garment_attributes("top", top, language, TOP_CATEGORIES)
        is_dress = top_attributes.category == "dresses"
        if is_dress and bottom:
            raise InvalidInputError("bottom", bottom, f"empty: the top is a {top_attributes.product_type}, which needs no bottom")
        if not is_dress and not bottom:
            raise InvalidInputError("bottom", bottom, f"a description of trousers, shorts or a skirt: the top ({top_attributes.product_type}) is not a dress")
        bottom_attributes = _garment_attributes("bottom", bottom, language, BOTTOM_CATEGORIES) if bottom else None
        return cls(body, Garment.of(top_attributes), Garment.of(bottom_attributes) if bottom_attributes is not None else None)


def _garment_attributes(field: str, text: str, language: str, categories: tuple[str, ...]) -> Attributes:
    attributes = extract_attributes(text, language)  # type: ignore[arg-type]
    if not attributes.product_type:
        raise InvalidInputError(field, text, "a description that names a garment (for example 'rotes T-Shirt' or 'navy trousers')")
    if attributes.category not in categories:
        raise InvalidInputError(field, text, f"a garment of {' or '.join(categories)}, not {attributes.product_type} ({attributes.category})")
    return attributes
