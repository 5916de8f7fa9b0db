"""Seed 003's two-stage prompts: a detailed generation prompt and a short CLIP scoring prompt.

Detailed prompts guide the generator's visual attributes; the short prompt keeps the CLIP score about
the product, not about photography words. Both templates are settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from fashion_studio.attributes import Attributes


@dataclass(frozen=True)
class Prompts:
    generation: str
    clip: str


def build_prompts(
    attributes: Attributes,
    generation_template: str,
    clip_template: str,
    fallback_subject: str = "",
    max_chars: int | None = None,
) -> Prompts:
    """Fill the templates' `{subject}` and `{details}` from the attributes.

    With `max_chars`, the last details are dropped until both prompts fit, so a long description
    still gives a prompt the generator accepts; the subject (product type) always stays.
    """
    subject = attributes.subject() if attributes.product_type else (fallback_subject.strip() or "a garment")
    if max_chars is not None:
        subject = subject[: max(max_chars // 4, 16)]
    details = attributes.details()
    while True:
        detail_text = f", featuring {', '.join(details)}" if details else ""
        prompts = Prompts(
            generation=generation_template.format(subject=subject, details=detail_text),
            clip=clip_template.format(subject=subject, details=detail_text),
        )
        if max_chars is None or not details or max(len(prompts.generation), len(prompts.clip)) <= max_chars:
            return prompts
        details = details[:-1]
