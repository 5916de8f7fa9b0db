"""What a shopper's message asks for: generate, edit or recommend, and the English text to act on.

A message names its action, or the phrasings table (`phrasings`) decides from its words; a message
that matches nothing is a description of a first outfit when the attribute lexicon finds something in
it, and otherwise not understood: an `InvalidInputError` on `message` that lists what is understood,
rather than a guess. German is translated first (by the caller, through the translator service); a
translation the translator is not sure of (`Translation.reliable`) is not trusted, and the English
text is built from the German words through the attribute lexicon, as the catalog pipeline does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from fashion_studio.attributes import Attributes, LexiconExtractor, detect_language
from fashion_studio.attributes.lexicon import PATTERN_MODIFIER
from fashion_studio.errors import InvalidInputError
from fashion_studio.prompts import build_prompts
from fashion_studio.sessions.phrasings import (
    ACTIONS,
    DESCRIPTION_EXAMPLES,
    PHRASINGS,
    POLITE_ENDINGS,
    POLITE_OPENINGS,
    Action,
    Language,
    Phrasing,
)
from fashion_studio.translation import Translation

Source = Literal["message", "translation", "lexicon"]

_OPENING = re.compile(rf"^(({'|'.join(POLITE_OPENINGS)})\b[\s,!.]*)+", re.IGNORECASE)
_ENDING = re.compile(rf"([\s,]*\b({'|'.join(POLITE_ENDINGS)}))+$", re.IGNORECASE)
_EDGES = "\"'„“”‚‘’«»()[]{}<>.,;:!?¡¿-–—… \t\n"
_COMPILED = tuple((p, re.compile(p.pattern, re.IGNORECASE)) for p in PHRASINGS)


@dataclass(frozen=True)
class Understanding:
    action: Action
    understood: Literal["named", "words"]  # the request named the action, or its words did
    language: Language
    text: str | None  # English: the outfit to draw (generate), the instruction (edit); None (recommend)
    source: Source | None  # where `text` came from
    phrasing: str | None  # the example of the phrasing that matched, if one did


def normalise(message: str) -> str:
    """Whitespace collapsed; polite openings and endings and surrounding punctuation removed."""
    text = " ".join(message.split())
    for _ in range(3):  # "ok, please, make it blue!"
        stripped = _ENDING.sub("", _OPENING.sub("", text.strip(_EDGES))).strip(_EDGES)
        if stripped == text:
            break
        text = stripped
    return text


def match(text: str, language: Language, action: Action | None = None) -> tuple[Phrasing, re.Match[str]] | None:
    """The first phrasing of `language` (and `action`, if given) that matches the normalised text."""
    for phrasing, pattern in _COMPILED:
        if phrasing.language == language and (action is None or phrasing.action == action):
            found = pattern.search(text)
            if found:
                return phrasing, found
    return None


def message_language(message: str, requested: Literal["en", "de", "auto"] = "auto") -> Language:
    """The requested language; for `auto`, the language whose phrasings match the message (when only
    one does), else the attribute parser's guess."""
    if requested != "auto":
        return requested
    text = normalise(message)
    english, german = match(text, "en") is not None, match(text, "de") is not None
    if english != german:
        return "en" if english else "de"
    return detect_language(text or message)


@lru_cache(maxsize=1)
def _lexicon() -> LexiconExtractor:
    return LexiconExtractor()


def attributes_of(text: str, language: Language) -> Attributes:
    return _lexicon().extract(text, language)


def knows_something(attributes: Attributes) -> bool:
    return bool(attributes.product_type or attributes.colors or attributes.materials or attributes.patterns or attributes.design_details or attributes.fit)


def english_phrase(attributes: Attributes, form: str) -> str:
    """The attributes in English: adjectives ("blue checked linen") or nouns ("a belt and long sleeves")."""
    colours = [" and ".join(attributes.colors)] if attributes.colors else []
    adjectives = [*colours, *(PATTERN_MODIFIER.get(p, p) for p in attributes.patterns), *attributes.materials]
    if attributes.fit:
        adjectives.append(attributes.fit)
    nouns = [attributes.subject()] if attributes.product_type else []
    nouns += [*attributes.design_details, *attributes.patterns, *colours, *attributes.materials]
    if form == "adjectives" and adjectives:
        return " ".join(adjectives)
    if form == "adjectives" and nouns:
        return "with " + " and ".join(nouns)
    return " and ".join(dict.fromkeys(nouns))


def description_from(attributes: Attributes) -> str:
    """A German description's outfit in English, in the catalog prompt's words ("a dress, featuring red, dots")."""
    return build_prompts(attributes, "{subject}{details}", "{subject}").generation


def not_understood(message: str, why: str) -> InvalidInputError:
    examples = {action: [p.example for p in PHRASINGS if p.action == action] for action in ACTIONS}
    understood = (
        f"a first description ('{DESCRIPTION_EXAMPLES['en']}', '{DESCRIPTION_EXAMPLES['de']}'); "
        f"generate: {', '.join(repr(e) for e in examples['generate'])}; edit: {', '.join(repr(e) for e in examples['edit'])}; "
        f"recommend: {', '.join(repr(e) for e in examples['recommend'])}; or name the action (action: generate | edit | recommend)"
    )
    return InvalidInputError("message", message, f"{why}. Understood: {understood}")


def understand(
    message: str,
    *,
    language: Language,
    has_image: bool,
    action: Action | None = None,
    translation: Translation | None = None,
) -> Understanding:
    """The action and its English text. `translation` is the German message's translation (None for
    English); a German message whose translation is unreliable is read through the lexicon."""
    text = normalise(message)
    if not text:
        raise not_understood(message, "not understood: the message says nothing once greetings and punctuation are set aside")
    found = match(text, language, action)
    trusted = translation.text.strip() if translation is not None and translation.reliable and translation.text.strip() else None
    english = text if language == "en" else trusted
    if found is None and language == "de" and trusted is not None:
        found = match(normalise(trusted), "en", action)  # the German table missed; its English may not
    chosen = action or (found[0].action if found else None)
    if chosen is None:
        # No phrasing: the first message describes an outfit; later, it could mean a new outfit or a change.
        if has_image:
            raise not_understood(message, "not understood: with an image on the table, say whether to change it, draw a new outfit or find products")
        if not knows_something(attributes_of(text, language)) and not (english and knows_something(attributes_of(english, "en"))):
            raise not_understood(message, "not understood as an outfit: it names no garment, colour, material, pattern or detail the studio knows")
        chosen = "generate"
    understood: Literal["named", "words"] = "named" if action else "words"
    phrasing = found[0].example if found else None
    if chosen == "recommend":
        return Understanding("recommend", understood, language, None, None, phrasing)
    if chosen == "generate":
        return _generate(message, text, language, english, found, understood, phrasing)
    return _edit(message, text, language, english, found, understood, phrasing)


def _generate(message, text, language, english, found, understood, phrasing) -> Understanding:
    """The outfit to draw: the phrasing's `text` group (or the whole message), in English."""
    if language == "en":
        return Understanding("generate", understood, language, _group(found, text), "message", phrasing)
    if english is not None:
        english_match = match(normalise(english), "en", "generate")
        return Understanding("generate", understood, language, _group(english_match, normalise(english)), "translation", phrasing)
    attributes = attributes_of(_group(found, text) if found and found[0].language == "de" else text, "de")
    if not knows_something(attributes):
        raise not_understood(
            message, "not understood: the translation is unreliable and the German names no garment, colour, material, pattern or detail the studio knows"
        )
    return Understanding("generate", understood, language, description_from(attributes), "lexicon", phrasing)


def _edit(message, text, language, english, found, understood, phrasing) -> Understanding:
    """The instruction: the English message as written; for German, the reliable translation, else the
    phrasing's English with its `text` read through the lexicon."""
    if language == "en":
        return Understanding("edit", understood, language, text, "message", phrasing)
    if english is not None:
        return Understanding("edit", understood, language, normalise(english), "translation", phrasing)
    german = found[0] if found and found[0].language == "de" else None
    attributes = attributes_of(_group(found, text) if german else text, "de")
    if not knows_something(attributes):
        raise not_understood(
            message, "not understood: the translation is unreliable and the German names no colour, pattern, material, garment or detail to change"
        )
    form = german.form if german else "adjectives"
    template = german.english if german and german.english else "make it {text}"
    return Understanding("edit", understood, language, template.format(text=english_phrase(attributes, form)), "lexicon", phrasing)


def _group(found: tuple[Phrasing, re.Match[str]] | None, text: str) -> str:
    if found is not None and "text" in found[1].groupdict() and found[1].group("text"):
        return found[1].group("text").strip()
    return text
