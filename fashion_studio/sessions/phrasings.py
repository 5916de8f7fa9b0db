"""The phrasings a conversation understands, English and German: the data the parser in `understand`
reads, first match wins, in this order: recommend, edit, generate.

Each pattern is matched (case-insensitive) against the message with its whitespace collapsed, its
surrounding punctuation and its polite openings ("please", "can you", "bitte") removed. A named group
`text` marks what the action acts on (the outfit to draw); without one, an edit's instruction is the
whole message. German edits carry the English instruction to send when the translation is unreliable:
`{text}` is then filled from the attribute lexicon, as adjectives ("make it blue checked") or as
nouns ("add a belt", "without sleeves"). `example` is one phrasing each pattern understands; the
error for a message that matches nothing lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["generate", "edit", "recommend"]
ACTIONS: tuple[Action, ...] = ("generate", "edit", "recommend")
Language = Literal["en", "de"]
Form = Literal["adjectives", "nouns"]


@dataclass(frozen=True)
class Phrasing:
    action: Action
    language: Language
    pattern: str
    example: str
    english: str | None = None  # German edits: the English instruction, "{text}" from the lexicon
    form: Form = "nouns"


# Openings and endings that carry no meaning for the action ("please make it blue", "mach es blau, bitte").
POLITE_OPENINGS = (
    r"please",
    r"pls",
    r"ok(ay)?",
    r"now",
    r"and",
    r"also",
    r"hmm+",
    r"hi",
    r"hello",
    r"hey",
    r"can you",
    r"could you",
    r"would you",
    r"will you",
    r"bitte",
    r"jetzt",
    r"und",
    r"auch",
    r"hallo",
    r"kannst du",
    r"könntest du",
    r"koenntest du",
    r"würdest du",
    r"wuerdest du",
)
POLITE_ENDINGS = (r"please", r"thanks", r"thank you", r"bitte", r"danke")

_ARTICLE = r"(a|an|some|one|the)"
_ARTIKEL = r"(ein|eine|einen|einem|etwas)"

PHRASINGS: tuple[Phrasing, ...] = (
    # --- recommend: products of the catalog like the current image ------------------------------------
    Phrasing("recommend", "en", r"\bsimilar\b", "show me similar products"),
    Phrasing("recommend", "en", r"\brecommend(s|ed|ations?)?\b", "recommend something"),
    Phrasing("recommend", "en", r"\b(show|find|give|get|list) (me )?(the |some )?(matching |related )?(products|items|articles)\b", "show me products"),
    Phrasing("recommend", "en", r"\bwhere (can|could|do) i (buy|get|find|shop)\b", "where can I buy it?"),
    Phrasing("recommend", "en", r"^(shop|buy) (it|this|that|them|the look)\b", "shop the look"),
    Phrasing("recommend", "de", r"\b(ähnlich|aehnlich)\w*\b", "zeig mir ähnliche Produkte"),
    Phrasing("recommend", "de", r"\b(empfiehl|empfehl\w*|vorschläge|vorschlaege)\b", "empfiehl mir etwas"),
    Phrasing("recommend", "de", r"\b(zeig|zeige|finde|such|suche) (mir )?(die |passende |passenden )?(produkte|artikel)\b", "zeig mir Produkte"),
    Phrasing("recommend", "de", r"\bwo (kann|könnte|koennte) (ich|man) (das |es |sie |ihn )?(kaufen|bekommen|finden)\b", "wo kann ich das kaufen?"),
    # --- edit: change the current image ------------------------------------------------------------------
    Phrasing("edit", "en", r"^(make|turn) (?!me\b|us\b|a\b|an\b|one\b|some\b)", "make it blue"),
    Phrasing("edit", "en", r"^(change|switch|swap|replace|recolou?r|dye)\b", "change the colour to green"),
    Phrasing("edit", "en", r"^add\b", "add a belt"),
    Phrasing("edit", "en", r"^(remove|drop|take (off|away)|get rid of)\b", "remove the sleeves"),
    Phrasing("edit", "en", r"^(without|no more|no|less)\b", "without sleeves"),
    Phrasing("edit", "en", r"^(with|more|longer|shorter|brighter|darker|lighter)\b", "with long sleeves"),
    Phrasing("edit", "en", r"^(put|give it|give the \w+)\b", "give it stripes"),
    Phrasing("edit", "en", r"\binstead\b", "blue instead"),
    Phrasing("edit", "en", r"^(i want|i'd like|i would like|can i have|could i have|may i have) (it|this|that|them)\b", "I want it in navy"),
    Phrasing("edit", "en", r"^in (\w+)( \w+)?$", "in blue"),
    Phrasing("edit", "de", r"^(mach|mache|macht|färb|färbe|faerbe) (?P<text>.+)$", "mach es blau", "make it {text}", "adjectives"),
    Phrasing("edit", "de", r"^(füge|fuege|füg|fueg) (?P<text>.+?) (hinzu|dazu)$", "füge einen Gürtel hinzu", "add {text}"),
    Phrasing("edit", "de", r"^(ergänze|ergänz|ergaenze|mit|dazu) (?P<text>.+)$", "mit Streifen", "add {text}"),
    Phrasing("edit", "de", r"^(ohne|kein|keine|keinen) (?P<text>.+)$", "ohne Ärmel", "without {text}"),
    Phrasing("edit", "de", r"^(entferne|entfern|nimm) (?P<text>.+?)( weg)?$", "entferne die Streifen", "remove {text}"),
    Phrasing("edit", "de", r"^(ändere|änder|aendere|wechsle|tausche|ersetze) (?P<text>.+)$", "ändere die Farbe zu Grün", "make it {text}", "adjectives"),
    Phrasing("edit", "de", r"^(lieber|stattdessen|besser) (?P<text>.+)$", "lieber in Grün", "make it {text}", "adjectives"),
    Phrasing("edit", "de", r"^(?P<text>.+) (stattdessen|statt dessen)$", "grün stattdessen", "make it {text}", "adjectives"),
    Phrasing("edit", "de", r"^(in|auf) (?P<text>\w+( \w+)?)$", "in Blau", "make it {text}", "adjectives"),
    # --- generate: draw a new outfit -----------------------------------------------------------------------
    Phrasing("generate", "en", r"^(generate|draw|create|design|render|sketch|imagine|paint)( me)? (?P<text>.+)$", "draw a red summer dress"),
    Phrasing("generate", "en", rf"^(show|give|make|find) me (?P<text>{_ARTICLE} .+)$", "show me a linen shirt"),
    Phrasing(
        "generate",
        "en",
        r"^(i want|i'd like|i would like|i need|i'm looking for|i am looking for|looking for|how about|what about) (?P<text>.+)$",
        "I'd like a yellow skirt",
    ),
    Phrasing("generate", "en", r"^(new|another|start over|start again)( one)?[:,]? (?P<text>.+)$", "new: a green jacket"),
    Phrasing("generate", "de", r"^(erstelle|erstell|erzeuge|erzeug|zeichne|generiere|entwirf|entwerfe|male)( mir)? (?P<text>.+)$", "zeichne ein rotes Kleid"),
    Phrasing("generate", "de", rf"^(zeig|zeige|gib) mir (?P<text>{_ARTIKEL} .+)$", "zeig mir eine blaue Jacke"),
    Phrasing(
        "generate",
        "de",
        r"^ich (möchte|moechte|hätte gerne?|haette gerne?|will|suche|brauche|wünsche mir|wuensche mir) (?P<text>.+)$",
        "ich möchte einen gelben Rock",
    ),
    Phrasing("generate", "de", r"^(neu|neues|neuer|neue|etwas anderes)[:,]? (?P<text>.+)$", "neu: eine grüne Jacke"),
)

# A first message with no phrasing above is a description of the outfit to draw when the attribute
# lexicon finds something in it (a garment, colour, material, pattern or detail); "a red summer dress".
DESCRIPTION_EXAMPLES: dict[Language, str] = {"en": "a red summer dress", "de": "ein rotes Sommerkleid"}
