"""The attribute schema: validated English product attributes, and the bounds of a description."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fashion_studio.attributes.lexicon import PAIR_NOUNS
from fashion_studio.errors import InvalidInputError

Category = Literal["tops", "bottoms", "dresses", "outerwear", "shoes", "accessories", "underwear", "swimwear", "other"]
TargetGroup = Literal["women", "men", "girls", "boys", "children", "baby", "unisex"]
Language = Literal["de", "en"]
LanguageArg = Literal["de", "en", "auto"]

MAX_DESCRIPTION_CHARS = 5000
MAX_ITEM_CHARS = 80
MAX_ITEMS = 12
MAX_SCALAR_CHARS = 40

CATEGORIES: tuple[str, ...] = (
    "tops",
    "bottoms",
    "dresses",
    "outerwear",
    "shoes",
    "accessories",
    "underwear",
    "swimwear",
    "other",
)
TARGET_GROUPS: tuple[str, ...] = ("women", "men", "girls", "boys", "children", "baby", "unisex")

# Spellings an LLM may use for the closed vocabularies.
_TARGET_SYNONYMS = {
    "woman": "women",
    "female": "women",
    "ladies": "women",
    "women's": "women",
    "womens": "women",
    "man": "men",
    "male": "men",
    "men's": "men",
    "mens": "men",
    "girl": "girls",
    "girls'": "girls",
    "boy": "boys",
    "boys'": "boys",
    "kids": "children",
    "kid": "children",
    "child": "children",
    "children's": "children",
    "babies": "baby",
    "infant": "baby",
    "infants": "baby",
}
_CATEGORY_SYNONYMS = {
    "top": "tops",
    "bottom": "bottoms",
    "dress": "dresses",
    "outer": "outerwear",
    "shoe": "shoes",
    "footwear": "shoes",
    "accessory": "accessories",
    "lingerie": "underwear",
    "swim": "swimwear",
}


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
    "women": "women's",
    "men": "men's",
    "girls": "girls'",
    "boys": "boys'",
    "children": "children's",
    "baby": "baby",
    "unisex": "unisex",
}


def _article(phrase: str) -> str:
    first = phrase[:1].lower()
    if first in "aeio" or (first == "u" and not phrase.lower().startswith(("uni", "use", "uk"))):
        return "an"
    return "a"


def _join_and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def validate_description(text: Any, max_chars: int = MAX_DESCRIPTION_CHARS) -> str:
    """Reject what no extractor can use, naming the field and the bound. One rule and one status (422)
    for every caller: the library, the batch job and the gateway."""
    if not isinstance(text, str):
        raise InvalidInputError("description", text, "must be a string")
    if not text.strip():
        raise InvalidInputError("description", text, "must not be empty")
    if len(text) > max_chars:
        raise InvalidInputError("description", text, f"must be at most {max_chars} characters")
    return text


def check_language(language: Any) -> LanguageArg:
    if language not in ("de", "en", "auto"):
        raise InvalidInputError("language", language, "must be one of 'de', 'en', 'auto'")
    return language
