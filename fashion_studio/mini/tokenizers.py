"""Tokenizers of the fashion-mini models, learned from the catalog texts with the shared builders (fashion_studio/builders.py).

The CLIP tokenizer is byte-level BPE (any text encodes; the catalog's words are one token each); the
Marian tokenizer has a sentencepiece model per language and one shared vocabulary, in Opus-MT's layout.
"""

from __future__ import annotations

import json
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fashion_studio import builders

CLIP_MAX_LENGTH = 77
MARIAN_MAX_LENGTH = 128


def clip_vocabulary(texts: Iterable[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """CLIP-ordered tokens (bytes, bytes + `</w>`, merges, specials) and the merges learned from `texts`."""
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    byte_symbols = bytes_to_unicode()
    words: Counter[str] = Counter()
    for text in [*texts, *builders.english_corpus()]:
        for word in re.findall(r"[^\W\d_]+", text.lower()):
            words["".join(byte_symbols[b] for b in word.encode("utf-8"))] += 1
    merges = builders.learn_bpe_merges(words, builders.CLIP_MERGES)
    symbols = list(byte_symbols.values())
    tokens = [*symbols, *(s + builders.EOW for s in symbols), *(a + b for a, b in merges), builders.SOT, builders.EOT]
    return list(dict.fromkeys(tokens)), merges


def clip_tokenizer(texts: Iterable[str], fast: bool = False) -> Any:
    """A CLIP tokenizer (77 tokens, padded with `<|endoftext|>`) whose merges come from `texts`."""
    from transformers import CLIPTokenizer, CLIPTokenizerFast

    tokens, merges = clip_vocabulary(texts)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file, merges_file = Path(tmp) / "vocab.json", Path(tmp) / "merges.txt"
        vocab_file.write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False), encoding="utf-8")
        merges_file.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
        cls = CLIPTokenizerFast if fast else CLIPTokenizer
        return cls(
            vocab_file=str(vocab_file),
            merges_file=str(merges_file),
            pad_token=builders.EOT,
            model_max_length=CLIP_MAX_LENGTH,
        )


def marian_tokenizer(german: Iterable[str], english: Iterable[str]) -> Any:
    """A MarianTokenizer (de -> en) with sentencepiece models trained on the two sides."""
    from transformers import MarianTokenizer

    source = builders.train_sentencepiece(tuple(dict.fromkeys(german)), unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1)
    target = builders.train_sentencepiece(tuple(dict.fromkeys(english)), unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1)
    # Opus-MT order: </s> 0, <unk> 1, the pieces, <pad> last (also the decoder start).
    vocab = {"</s>": 0, "<unk>": 1}
    for piece in builders.spm_pieces(source) + builders.spm_pieces(target):
        vocab.setdefault(piece, len(vocab))
    vocab.setdefault("<pad>", len(vocab))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "source.spm").write_bytes(source)
        (folder / "target.spm").write_bytes(target)
        (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=2), encoding="utf-8")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*sacremoses.*")
            return MarianTokenizer(
                source_spm=str(folder / "source.spm"),
                target_spm=str(folder / "target.spm"),
                vocab=str(folder / "vocab.json"),
                source_lang="de",
                target_lang="en",
                model_max_length=MARIAN_MAX_LENGTH,
                separate_vocabs=False,
            )
