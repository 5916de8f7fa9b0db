"""The lexicon extractor: German or English text -> attributes, with German compound splitting.

Deterministic and cheap: the text is cut into runs of known words (`lexicon` tables, indexed per
language), compounds are split into known pieces, and the runs are read as product, wearer, colours,
materials, patterns and details.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from fashion_studio.attributes.lexicon import (
    ADJECTIVES,
    COLOUR_MODIFIERS,
    COLOURS,
    DECORATIONS,
    FILLERS,
    FITS,
    MATERIALS,
    MOTIFS,
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
from fashion_studio.attributes.schema import (
    MAX_DESCRIPTION_CHARS,
    MAX_ITEM_CHARS,
    MAX_ITEMS,
    Attributes,
    Language,
    LanguageArg,
    check_language,
    validate_description,
)

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
    "the and with a an of for is this made from your to features on at its it by or that are you our has these their into perfect".split()
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
    spans = sorted((m.start(), m.end(), m.group(1)) for pattern in _QUOTE_RES for m in pattern.finditer(text))
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
class _Found:
    """What one phrase names; a helper returns one and its caller adds it to the text's state."""

    colours: list[str] = field(default_factory=list)
    materials: list[str] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    fits: list[str] = field(default_factory=list)

    def add(self, other: _Found) -> None:
        for name in ("colours", "materials", "patterns", "details", "fits"):
            getattr(self, name).extend(getattr(other, name))


@dataclass
class _State(_Found):
    products: list[tuple[str, bool, int]] = field(default_factory=list)  # (product, after "mit", sentence)
    targets: list[tuple[str, int]] = field(default_factory=list)
    lang: Language = "de"


class LexiconExtractor:
    """Deterministic extractor over a German/English fashion lexicon, with German compound splitting."""

    name = "lexicon"

    def __init__(self, max_chars: int = MAX_DESCRIPTION_CHARS) -> None:
        self.max_chars = max_chars

    # -- public ------------------------------------------------------------------------------------

    def extract_traced(self, text: str, language: LanguageArg = "auto") -> tuple[Attributes, str]:
        """`extract`, and the name of what produced the attributes (always "lexicon")."""
        return self.extract(text, language), self.name

    def extract(self, text: str, language: LanguageArg = "auto") -> Attributes:
        """Attributes of one description; `language="auto"` detects German or English."""
        text = validate_description(text, self.max_chars)
        language = check_language(language)
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
                gap = sentence[previous_end : match.start()] if previous_end is not None else ""
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
                span = tokens[i : i + n]
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
            if seg.kind == "part" and state.lang == "de" and seg.entry.value in ("pocket", "pockets") and self._is_bag(segs, idx, chunk, state):
                seg = _Seg(_Entry("product", "bag"), seg.group, seg.sent)
            kind = seg.kind
            if kind == "product":
                value = seg.entry.value or ""
                modifier = nxt is not None and ((same_group and nxt.kind in ("product", "part", "deco")) or nxt.kind == "product")
                if modifier:
                    if value in PRODUCT_AS_MATERIAL:
                        state.materials.append(PRODUCT_AS_MATERIAL[value])
                    continue
                state.add(_flush(pending))
                pending.clear()
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
                    state.add(_compose(own, seg, state.lang))
                    continue
                state.add(_compose(pending, seg, state.lang))
                pending.clear()
            elif kind == "patternhead":
                for p in pending:
                    if p.kind == "motif":
                        state.patterns.append(p.entry.extra or f"{p.entry.mod} pattern")
                pending[:] = [p for p in pending if p.kind != "motif"]
                state.add(_flush(pending))
                pending.clear()
        state.add(_flush(pending))

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

    def _choose_product(self, state: _State) -> tuple[str | None, list[str]]:
        """The first head noun, preferring the first sentence and words not after 'mit'/'with'."""
        if not state.products:
            return None, []
        first_sent = min(s for _, _, s in state.products)
        candidates = [p for p in state.products if p[2] == first_sent and not p[1]] or [p for p in state.products if not p[1]] or state.products
        product = candidates[0][0]
        extras = [p for p, with_, s in state.products if with_ and s == first_sent and p != product]
        return product, extras


def _compose(pending: list[_Seg], head: _Seg, lang: Language) -> _Found:
    """A detail phrase: the modifiers in front of a part or decoration, then its name."""
    # German adjectives before a noun are inflected ("weißem Aufdruck"); a bare colour word across words
    # is a title-style listing ("Poloshirt Blau Kurzarm") and names the garment's colour.
    attached: list[_Seg] = []
    detached: list[_Seg] = []
    for i, p in enumerate(pending):
        if p.kind in ("colour", "colourmod") and lang == "de" and p.group != head.group:
            ref = pending[i + 1] if p.kind == "colourmod" and i + 1 < len(pending) else p
            if not ref.inflected:
                detached.append(p)
                continue
        attached.append(p)
    found = _Found()
    found.colours.extend(_colour_run(detached))
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
                found.patterns.append(p.entry.extra)
        else:
            words.append(p.entry.mod or "")
    head_words = head.entry.value or ""
    if any(words) or head_words != "details":
        found.details.append(" ".join([*[w for w in words if w], head_words]))
    return found


def _flush(pending: list[_Seg]) -> _Found:
    """Modifiers that found no part to attach to stand on their own."""
    found = _Found()
    adjs: list[_Seg] = []

    def drop_adjs() -> None:
        for a in adjs:
            if a.entry.extra:
                found.fits.append(a.entry.extra)
            elif a.entry.value:
                found.details.append(a.entry.value)
        adjs.clear()

    colour_run: list[_Seg] = []
    for p in pending:
        if p.kind in ("colour", "colourmod"):
            colour_run.append(p)
            continue
        found.colours.extend(_colour_run(colour_run))
        colour_run = []
        if p.kind == "adj":
            adjs.append(p)
        elif p.kind == "motif":
            if p.entry.extra:
                found.patterns.append(p.entry.extra)
                drop_adjs()
            else:
                found.details.append(" ".join([*[a.entry.mod or "" for a in adjs], p.entry.value or ""]))
                adjs.clear()
        elif p.kind == "material":
            drop_adjs()
            found.materials.append(p.entry.value or "")
        elif p.kind in ("part", "deco"):
            drop_adjs()
            found.details.append(p.entry.value or "")
        else:
            drop_adjs()
    found.colours.extend(_colour_run(colour_run))
    drop_adjs()
    return found


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
                options += [(end + len(link), 1, False) for link in _LINKS if word.startswith(link, end) and end + len(link) < n]
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
            base = next((tail[: -len(e)] for e in _INFLECTIONS if tail.endswith(e) and tail[: -len(e)] in index), tail)
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
