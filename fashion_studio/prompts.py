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


def build_prompts(attributes: Attributes, generation_template: str, clip_template: str, fallback_subject: str = "") -> Prompts:
    """Fill the templates' `{subject}` and `{details}` from the attributes."""
    subject = attributes.subject() if attributes.product_type else (fallback_subject.strip() or "a garment")
    details = attributes.details()
    detail_text = f", featuring {', '.join(details)}" if details else ""
    return Prompts(
        generation=generation_template.format(subject=subject, details=detail_text),
        clip=clip_template.format(subject=subject, details=detail_text),
    )
