"""What the model builders share: tokenizer training and CLIP's constants.

The random-weight tiny models (`fashion_studio.tiny`) and the trained fashion-mini family
(`fashion_studio.mini`) both learn their tokenizers here, so that a CLIP vocabulary or a Marian
sentencepiece model is made one way, reproducibly (same texts, same bytes).
"""

from __future__ import annotations

import io
from collections import Counter
from functools import cache
from typing import Any

from fashion_studio.data.tiny_corpus import ENGLISH_SENTENCES, PARALLEL_DE_EN

# CLIP's special tokens and its end-of-word suffix.
SOT = "<|startoftext|>"
EOT = "<|endoftext|>"
EOW = "</w>"
# At most; learning stops when every corpus word is one token (about 840 merges for the built-in
# corpus), so prompts in the catalog's language take about as many tokens as with the production vocabulary.
CLIP_MERGES = 2000
SPM_VOCAB = 512  # at most; a small corpus supports fewer pieces, sentencepiece stops there
# The image normalisation of OpenAI's CLIP, which the production CLIP processors use too.
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def english_corpus() -> list[str]:
    """The built-in English sentences, with the English side of the built-in parallel corpus."""
    return list(ENGLISH_SENTENCES) + [en for _, en in PARALLEL_DE_EN]


def learn_bpe_merges(words: Counter[str], max_merges: int) -> list[tuple[str, str]]:
    """Plain BPE on byte-level symbols, CLIP style (the last symbol of a word ends with `</w>`).

    Merges the most frequent pair until every word is one symbol or `max_merges` is reached. Ties are
    broken by the pair itself, so the result depends on the word counts only.
    """
    splits = {word: [*word[:-1], word[-1] + EOW] for word in words}
    merges: list[tuple[str, str]] = []
    while len(merges) < max_merges:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in words.items():
            symbols = splits[word]
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best, _ = min(pairs.items(), key=lambda item: (-item[1], item[0]))
        merges.append(best)
        joined = best[0] + best[1]
        for word, symbols in splits.items():
            i, merged = 0, []
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(joined)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            splits[word] = merged
    return merges


@cache
def train_sentencepiece(sentences: tuple[str, ...], **options: Any) -> bytes:
    """A unigram sentencepiece model, trained in memory; single thread, so the bytes are reproducible."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        model_type="unigram",
        vocab_size=SPM_VOCAB,
        hard_vocab_limit=False,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
        **options,
    )
    return model.getvalue()


def spm_pieces(model: bytes) -> list[str]:
    """The ordinary pieces of a sentencepiece model (no control, unknown or unused ones), in id order."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=model)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i))]
