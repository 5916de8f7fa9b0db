"""German -> English translation with MarianMT (opus-mt-de-en in production), batched, each translation
with the model's own confidence in it.

A model that meets words it never learnt still writes fluent English: it falls back on the sentences
it knows ("Damen-Bluse mit Knotendetail" -> "Women's trousers with stripes"). How sure it was of the
tokens it wrote says when that happened: the confidence is the probability of its least likely token,
which separated real catalog text from the text it was trained for far better than the mean token
log-probability did when both were measured on the held-out catalog set. A translation under
`translation_min_confidence` is marked unreliable and the catalog builds its prompt from the source
text alone (the threshold's effect: docs/catalog-eval.md).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fashion_studio import models
from fashion_studio.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_MIN_CONFIDENCE = 0.9


@dataclass(frozen=True)
class Translation:
    """A translation and how far to trust it.

    `confidence` is the probability the model gave the least likely token it wrote, in [0, 1]; None
    when no model measured it (an untranslated English text, a translator that reports none).
    `reliable` is `confidence >= min_confidence`, with no unknown source token and a non-empty text.
    """

    text: str
    confidence: float | None = None
    reliable: bool = False
    unknown_share: float = 0.0  # share of source tokens the tokenizer maps to <unk>

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, value: Any) -> Translation:
        """A translator's answer as a `Translation`: itself, its dict or pydantic model (a model service's
        answer), or bare text (no confidence, so not reliable)."""
        if isinstance(value, Translation):
            return value
        if hasattr(value, "model_dump"):
            value = value.model_dump()
        if isinstance(value, Mapping):
            return cls(**{k: value[k] for k in ("text", "confidence", "reliable", "unknown_share") if k in value})
        return cls(text=str(value))


def judge(text: str, weakest_logprob: float | None, unknown_share: float, min_confidence: float, complete: bool = True) -> Translation:
    """A translation's confidence from the log-probability of its least likely token; a source with
    unknown tokens, an empty output, or one that is not `complete` (the source longer than the model reads,
    or the output stopped by its token limit before its end) is never reliable."""
    confidence = None if weakest_logprob is None else round(math.exp(weakest_logprob), 4)
    reliable = complete and confidence is not None and confidence >= min_confidence and unknown_share == 0.0 and bool(text.strip())
    return Translation(text=text, confidence=confidence, reliable=reliable, unknown_share=round(unknown_share, 4))


class Translator:
    def __init__(
        self,
        model,
        tokenizer,
        ref: models.ModelRef,
        num_beams: int = 1,
        max_new_tokens: int = 128,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.ref = ref
        self.num_beams = num_beams
        self.max_new_tokens = max_new_tokens
        self.min_confidence = min_confidence
        self._lock = threading.Lock()

    @classmethod
    def load(cls, settings: Settings, ref: str | None = None) -> Translator:
        from transformers import MarianMTModel, MarianTokenizer

        model_ref = models.resolve("translator", ref or settings.translator, settings)
        models.limit_threads(settings)
        tokenizer = MarianTokenizer.from_pretrained(model_ref.path)
        if settings.runtime == "torch":
            # float32 on any device: a translation's confidence is compared with a threshold.
            model = MarianMTModel.from_pretrained(model_ref.path).to(settings.device)
        else:
            from fashion_studio.runtimes import load_translation_model

            model = load_translation_model(settings, model_ref)
        logger.info("translator %s (%s) loaded from %s", model_ref.ref, settings.runtime, model_ref.path)
        return cls(
            model,
            tokenizer,
            model_ref,
            settings.translation_beams,
            settings.translation_max_new_tokens,
            settings.translation_min_confidence,
        )

    def translate(self, texts: Sequence[str]) -> list[str]:
        """Translate a batch; the order of the output follows the input."""
        return [t.text for t in self.translate_scored(texts)]

    def translate_scored(self, texts: Sequence[str]) -> list[Translation]:
        """Translate a batch, each with its confidence; the order of the output follows the input."""
        import torch

        if not texts:
            return []
        limit = min(self.tokenizer.model_max_length, self.model.config.max_position_embeddings)
        batch = self.tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True, max_length=limit)
        read_whole = [len(ids) <= limit for ids in self.tokenizer(list(texts))["input_ids"]]
        with self._lock, torch.inference_mode():
            output = self.model.generate(
                **{k: v.to(getattr(self.model, "device", "cpu")) for k, v in batch.items()},
                num_beams=self.num_beams,
                do_sample=False,
                max_new_tokens=min(self.max_new_tokens, limit),
                output_scores=True,
                return_dict_in_generate=True,
            )
            logprobs = self._weakest_logprobs(output)
        decoded = [text.strip() for text in self.tokenizer.batch_decode(output.sequences, skip_special_tokens=True)]
        unknown = self._unknown_shares(batch)
        complete = [whole and ended for whole, ended in zip(read_whole, self._ended(output.sequences, min(self.max_new_tokens, limit)))]
        if not all(complete):
            logger.warning("%d of %d translations cut short by the model's token limits: not reliable", complete.count(False), len(complete))
        return [judge(text, lp, unk, self.min_confidence, done) for text, lp, unk, done in zip(decoded, logprobs, unknown, complete)]

    def _ended(self, sequences: Any, max_new_tokens: int) -> list[bool]:
        """Whether each output ended by itself, not stopped by `max_new_tokens`. Marian forces an
        end-of-sequence token into the last place it may write (`forced_eos_token_id`), so an end there is
        taken for a cut too."""
        is_eos = self._is_eos(sequences[:, 1:])
        last = max_new_tokens - 1 if getattr(self.model.generation_config, "forced_eos_token_id", None) is not None else max_new_tokens
        return [bool(row[:last].any()) for row in is_eos]

    def _is_eos(self, tokens: Any) -> Any:
        """Where `tokens` (batch, length) are the model's end-of-sequence token (one id or several)."""
        import torch

        eos = self.model.generation_config.eos_token_id
        return torch.isin(tokens, torch.tensor(eos if isinstance(eos, list) else [eos], device=tokens.device))

    def _weakest_logprobs(self, output: Any) -> list[float | None]:
        """Lowest log-probability among each output's tokens, up to and including its end-of-sequence token."""
        import torch

        beams = getattr(output, "beam_indices", None) if self.num_beams > 1 else None
        if (self.num_beams > 1 and beams is None) or not hasattr(self.model, "compute_transition_scores"):
            return [None] * len(output.sequences)
        scores = self.model.compute_transition_scores(output.sequences, output.scores, beams, normalize_logits=self.num_beams == 1)
        is_eos = self._is_eos(output.sequences[:, -scores.shape[1] :])
        written = (torch.cumsum(is_eos, dim=1) - is_eos.long()) == 0  # up to the first end of sequence
        weakest = torch.where(written, scores, torch.zeros_like(scores)).min(dim=1).values
        return [float(w) for w in weakest]

    def _unknown_shares(self, batch: Any) -> list[float]:
        ids = batch["input_ids"]
        mask = batch["attention_mask"].bool()
        unk = self.tokenizer.unk_token_id
        return [float(((row == unk) & m).sum()) / max(1, int(m.sum())) for row, m in zip(ids, mask)]
