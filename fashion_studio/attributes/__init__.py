"""Attribute extraction: German or English product descriptions -> validated English attributes.

The prompts are English, so every attribute is canonical English whatever the source language. The
`LexiconExtractor` (`parser`, over the tables in `lexicon`) is deterministic and cheap; the optional
`LLMExtractor` (`llm`) asks a causal LM for JSON and falls back to the lexicon result whenever that fails.
The schema and the description's one limit live in `schema`.
"""

from __future__ import annotations

from fashion_studio.attributes.lexicon import (
    ADJECTIVES,
    COLOUR_MODIFIERS,
    COLOURS,
    DECORATIONS,
    FILLERS,
    FITS,
    MATERIALS,
    MOTIFS,
    PAIR_NOUNS,
    PARTS,
    PATTERN_HEADS,
    PATTERN_MODIFIER,
    PATTERNS,
    POSITIONS,
    PRODUCT_AS_MATERIAL,
    PRODUCT_CATEGORY,
    PRODUCTS,
    TARGETS,
)
from fashion_studio.attributes.llm import LLM_PROMPT, LLMExtractor, parse_llm_output
from fashion_studio.attributes.parser import LexiconExtractor, detect_language, extract_attributes, lexicon_size
from fashion_studio.attributes.schema import (
    CATEGORIES,
    MAX_DESCRIPTION_CHARS,
    MAX_ITEM_CHARS,
    MAX_ITEMS,
    MAX_SCALAR_CHARS,
    TARGET_GROUPS,
    Attributes,
    Category,
    Language,
    LanguageArg,
    TargetGroup,
    validate_description,
)

__all__ = [
    "ADJECTIVES",
    "CATEGORIES",
    "COLOURS",
    "COLOUR_MODIFIERS",
    "DECORATIONS",
    "FILLERS",
    "FITS",
    "LLM_PROMPT",
    "MATERIALS",
    "MAX_DESCRIPTION_CHARS",
    "MAX_ITEMS",
    "MAX_ITEM_CHARS",
    "MAX_SCALAR_CHARS",
    "MOTIFS",
    "PAIR_NOUNS",
    "PARTS",
    "PATTERNS",
    "PATTERN_HEADS",
    "PATTERN_MODIFIER",
    "POSITIONS",
    "PRODUCTS",
    "PRODUCT_AS_MATERIAL",
    "PRODUCT_CATEGORY",
    "TARGETS",
    "TARGET_GROUPS",
    "Attributes",
    "Category",
    "LLMExtractor",
    "Language",
    "LanguageArg",
    "LexiconExtractor",
    "TargetGroup",
    "detect_language",
    "extract_attributes",
    "lexicon_size",
    "parse_llm_output",
    "validate_description",
]
