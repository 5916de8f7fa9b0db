"""The optional LLM extractor: a causal LM answers JSON, validated against the schema; the lexicon's
result whenever that fails."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from fashion_studio.attributes.parser import LexiconExtractor
from fashion_studio.attributes.schema import MAX_DESCRIPTION_CHARS, Attributes, LanguageArg, check_language, validate_description
from fashion_studio.errors import InvalidInputError, ModelNotFoundError

logger = logging.getLogger(__name__)
# What `LLMExtractor.extract_traced` names attributes the lexicon produced because the LLM failed.
FALLBACK = "lexicon_fallback"

LLM_PROMPT = """Extract the attributes of the fashion product described below. Answer with one JSON object only, \
in English, with exactly these keys:
"product_type": lowercase English product noun such as "t-shirt", "dress", "sneakers", or null;
"category": one of "tops", "bottoms", "dresses", "outerwear", "shoes", "accessories", "underwear", "swimwear", \
"other", or null;
"target_group": one of "women", "men", "girls", "boys", "children", "baby", "unisex", or null;
"colors", "materials", "patterns", "design_details": lists of short English phrases;
"printed_text": list of the texts printed or embroidered on the product, verbatim;
"fit": a fit such as "slim fit", "regular fit", "oversized", or null.

Description: {text}
JSON:"""


def parse_llm_output(text: str) -> Attributes:
    """The first JSON object in a model's answer, validated; ValueError when there is none or it is invalid."""
    if not isinstance(text, str):
        raise ValueError("LLM output must be a string")
    decoder = json.JSONDecoder()
    saw_brace = False
    for match in re.finditer(r"\{", text):
        saw_brace = True
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if not isinstance(value, dict):
            continue
        try:
            return Attributes.model_validate(value)
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise ValueError(f"LLM output does not match the attribute schema: {exc}") from exc
    raise ValueError("LLM output holds no valid JSON object" if saw_brace else "LLM output holds no JSON object")


class LLMExtractor:
    """Attributes from a causal LM's JSON answer; the lexicon result whenever the model's answer is unusable."""

    name = "llm"

    def __init__(
        self,
        model_path: str | Path,
        *,
        max_new_tokens: int = 256,
        device: str = "cpu",
        fallback: LexiconExtractor | None = None,
        max_chars: int = MAX_DESCRIPTION_CHARS,
    ) -> None:
        if max_new_tokens < 1:
            raise InvalidInputError("max_new_tokens", max_new_tokens, "must be at least 1")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_path = str(model_path)
        self.max_new_tokens = max_new_tokens
        self.device = device
        self.fallback = fallback or LexiconExtractor(max_chars=max_chars)
        self.max_chars = max_chars
        path = Path(self.model_path).expanduser()
        local = path.is_dir()
        if not local and (path.is_absolute() or self.model_path.startswith((".", "~"))):
            raise ModelNotFoundError(f"no causal LM folder at {self.model_path!r}")
        try:
            source = str(path) if local else self.model_path
            self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
            self.model = AutoModelForCausalLM.from_pretrained(source, local_files_only=local)
        except (OSError, ValueError) as exc:  # missing files, or a folder that holds no causal LM
            raise ModelNotFoundError(f"no causal LM at {self.model_path!r}: {exc}") from exc
        self.model.to(device)
        self.model.eval()

    def extract(self, text: str, language: LanguageArg = "auto") -> Attributes:
        """The model's attributes, or the lexicon's when generation or parsing fails."""
        return self.extract_traced(text, language)[0]

    def extract_traced(self, text: str, language: LanguageArg = "auto") -> tuple[Attributes, str]:
        """`extract`, and what produced the attributes: "llm", or "lexicon_fallback" when the model's
        generation or its answer failed and the lexicon's result stands in (counted in
        the catalog's `fashion_attribute_extractions_total`, and named in each catalog record)."""
        text = validate_description(text, self.max_chars)
        baseline = self.fallback.extract(text, check_language(language))
        try:
            answer = self.generate(LLM_PROMPT.format(text=text))
            attributes = parse_llm_output(answer)
        except Exception as exc:  # any model or parsing failure degrades to the lexicon result
            logger.warning("LLM attribute extraction failed (%s: %s); using the lexicon result", type(exc).__name__, exc)
            return baseline, FALLBACK
        return attributes.model_copy(update={"language": baseline.language}), self.name

    def generate(self, prompt: str) -> str:
        """Greedy, bounded generation; only the new tokens are decoded."""
        import torch

        templated = bool(getattr(self.tokenizer, "chat_template", None))
        if templated:  # instruction-tuned models answer best in their own chat format
            prompt = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=not templated)
        inputs.pop("token_type_ids", None)
        length = inputs["input_ids"].shape[1]
        limit = getattr(self.model.config, "max_position_embeddings", None) or getattr(self.model.config, "n_positions", None)
        if limit is not None and length + self.max_new_tokens > limit:
            raise ValueError(f"prompt of {length} tokens leaves no room for {self.max_new_tokens} new tokens (limit {limit})")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1, pad_token_id=pad)
        return self.tokenizer.decode(output[0, length:], skip_special_tokens=True)
