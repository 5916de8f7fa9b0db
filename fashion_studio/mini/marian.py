"""The fashion-mini translator: a MarianMT model (de -> en) with its own sentencepiece vocabulary,
trained from scratch on the catalog's templated description pairs and on sentences over the attribute
lexicon's German vocabulary (so that it knows every word the prompts can be built from)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fashion_studio.mini.common import Budget, count_parameters, lr_at, seed_everything, set_lr
from fashion_studio.mini.text import lexicon_pairs
from fashion_studio.mini.tokenizers import MARIAN_MAX_LENGTH, marian_tokenizer

logger = logging.getLogger(__name__)

# Lexicon sentences per templated pair: enough to cover the vocabulary, few enough that the templates
# (the held-out exact-match figure) stay as well learnt.
LEXICON_SHARE = 0.5

CONFIG = {
    "d_model": 128,
    "encoder_layers": 3,
    "decoder_layers": 3,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 384,
    "decoder_ffn_dim": 384,
}


def build_model(tokenizer: Any, seed: int) -> Any:
    from transformers import GenerationConfig, MarianConfig, MarianMTModel

    vocab = tokenizer.get_vocab()
    pad_id = vocab["<pad>"]
    config = MarianConfig(
        vocab_size=len(vocab),
        decoder_vocab_size=len(vocab),
        max_position_embeddings=MARIAN_MAX_LENGTH,
        activation_function="swish",
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        static_position_embeddings=True,
        dropout=0.1,
        pad_token_id=pad_id,
        eos_token_id=0,
        bos_token_id=0,
        forced_eos_token_id=0,
        decoder_start_token_id=pad_id,
        **CONFIG,
    )
    seed_everything(seed)
    model = MarianMTModel(config)
    model.generation_config = GenerationConfig(
        bad_words_ids=[[pad_id]],
        bos_token_id=0,
        decoder_start_token_id=pad_id,
        eos_token_id=0,
        forced_eos_token_id=0,
        pad_token_id=pad_id,
        max_length=MARIAN_MAX_LENGTH,
        num_beams=1,
    )
    return model


def train(out: Path, pairs: Sequence[tuple[str, str]], seed: int, steps: int, max_seconds: float, batch_size: int = 64) -> dict[str, Any]:
    """Train on (German, English) pairs plus lexicon sentences and save model and tokenizer to `out`;
    returns training facts."""
    import torch

    seed_everything(seed)
    templated = len(pairs)
    pairs = [*pairs, *lexicon_pairs(int(templated * LEXICON_SHARE), seed)]
    german = [de for de, _ in pairs]
    english = [en for _, en in pairs]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*sacremoses.*")
        tokenizer = marian_tokenizer(german, english)
        encoded = tokenizer(german, text_target=english, truncation=True, max_length=MARIAN_MAX_LENGTH)
    model = build_model(tokenizer, seed)
    model.train()
    pad_id = model.config.pad_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed)
    budget = Budget(steps, max_seconds)
    losses: list[float] = []
    n = len(pairs)
    for step in budget:
        index = torch.randint(0, n, (batch_size,), generator=generator).tolist()
        sources = [encoded["input_ids"][i] for i in index]
        targets = [encoded["labels"][i] for i in index]
        input_ids = _pad(sources, pad_id)
        labels = _pad(targets, -100)
        set_lr(optimizer, lr_at(step, steps, 1e-3, warmup=min(300, steps // 10)))
        loss = model(input_ids=input_ids, attention_mask=(input_ids != pad_id).long(), labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*sacremoses.*")
        tokenizer.save_pretrained(out)
    tail = losses[-50:]
    return {
        **budget.summary(),
        "batch_size": batch_size,
        "train_pairs": n,
        "templated_pairs": templated,
        "lexicon_pairs": n - templated,
        "final_loss": round(sum(tail) / max(1, len(tail)), 4),
        "parameters": count_parameters(model),
        "vocab_size": model.config.vocab_size,
    }


def _pad(rows: list[list[int]], value: int) -> Any:
    import torch

    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def exact_match(model_dir: Path | str, pairs: Sequence[tuple[str, str]], batch_size: int = 100) -> dict[str, Any]:
    """Greedy translations of the German sides compared verbatim with the English sides."""
    import torch
    from transformers import MarianMTModel, MarianTokenizer

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*sacremoses.*")
        tokenizer = MarianTokenizer.from_pretrained(model_dir)
    model = MarianMTModel.from_pretrained(model_dir).eval()
    hits, misses = 0, []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        batch = tokenizer([de for de, _ in chunk], return_tensors="pt", padding=True, truncation=True)
        with torch.inference_mode():
            output = model.generate(**batch, num_beams=1, do_sample=False, max_new_tokens=MARIAN_MAX_LENGTH)
        for (de, en), text in zip(chunk, tokenizer.batch_decode(output, skip_special_tokens=True)):
            if text.strip() == en:
                hits += 1
            elif len(misses) < 10:
                misses.append({"german": de, "reference": en, "translation": text.strip()})
    return {"exact_match": hits / max(1, len(pairs)), "count": len(pairs), "examples_of_misses": misses}
