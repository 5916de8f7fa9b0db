"""The fashion-mini figures in the project's documents, written from `training.json` and `eval.json`.

`eval-mini` (`make mini-eval`) and `train-mini` rewrite the marked blocks of README.md and
docs/fashion-mini.md (`<!-- fashion-mini:NAME -->` ... `<!-- /fashion-mini:NAME -->`), so no figure
there is typed by hand; the text around the blocks is left alone.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from fashion_studio.mini.common import read_json
from fashion_studio.mini.evaluate import EVAL_RECORD, TARGETS
from fashion_studio.mini.train import STAGES, TRAINING_RECORD, MiniConfig
from fashion_studio.settings import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOC = PROJECT_ROOT / "docs" / "fashion-mini.md"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _target(key: str) -> str:
    return _pct(TARGETS[key]) if key in TARGETS else "-"


def interval(share: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% at the default z) of a share read right on `n` examples: how far a
    second draw of as many held-out examples could move the figure."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    spread = z * z / n
    centre = share + spread / 2
    half = z * math.sqrt(share * (1 - share) / n + spread / (4 * n))
    return max(0.0, (centre - half) / (1 + spread)), min(1.0, (centre + half) / (1 + spread))


def _interval(share: float | None, n: int) -> str:
    if share is None or n <= 0:
        return "n/a"
    low, high = interval(share, n)
    return f"{100 * low:.1f}-{100 * high:.1f}%"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def readme_summary(training: dict[str, Any], ev: dict[str, Any]) -> str:
    s = ev["summary"]
    split = ev["split"]
    minutes = training.get("total_training_seconds", 0) / 60
    return (
        f"On held-out data (`make mini-eval`), for the {split['held_out']} of {split['of']} (type, colour, pattern)\n"
        f"combinations that no training caption names, an independent judge reads the product type of\n"
        f"{_pct(s['generated_type_accuracy_unseen'])}, the colour of {_pct(s['generated_colour_accuracy_unseen'])} "
        f"and the pattern of {_pct(s['generated_pattern_accuracy_unseen'])} of images generated from German\n"
        f"descriptions ({_pct(s['generated_type_accuracy_seen'])}, {_pct(s['generated_colour_accuracy_seen'])} and "
        f"{_pct(s['generated_pattern_accuracy_seen'])} for combinations seen in training); the translator\n"
        f"matches {_pct(s['translation_exact_match'])} of {ev['translator']['count']} descriptions exactly; CLIP's "
        f"closed-set zero-shot type and colour accuracy\nare {_pct(s['clip_zero_shot_type_accuracy_new_templates'])} and "
        f"{_pct(s['clip_zero_shot_colour_accuracy_new_templates'])} with prompt templates it was not trained on "
        f"({_pct(s['clip_zero_shot_type_accuracy_training_templates'])} and\n"
        f"{_pct(s['clip_zero_shot_colour_accuracy_training_templates'])} with its training templates). "
        f"The family's training stages take {minutes:.0f} minutes on 2 cores (`make mini-train`)."
    )


def _gen_rows(ev: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    gen = ev["generator"]
    seen, unseen = gen["seen"], gen["unseen"]
    rows = []
    for head, label in (("type", "product type"), ("colour", "colour"), ("pattern", "pattern")):
        key = f"{head}_accuracy"
        rows.append(
            (
                f"Generated images, {label}, by the judge",
                f"**{_pct(seen['service_defaults'][key])}** ({_pct(seen['fast'][key])})",
                f"**{_pct(unseen['service_defaults'][key])}** ({_pct(unseen['fast'][key])})",
                _target(f"generated_{head}_accuracy_unseen"),
            )
        )
    rows.append(
        (
            "Generated images, type, colour and pattern all right",
            _pct(seen["service_defaults"]["all_three_accuracy"]),
            _pct(unseen["service_defaults"]["all_three_accuracy"]),
            "-",
        )
    )
    rows.append(
        (
            "Generation prompts found word for word among the training captions",
            _pct(seen["generation_prompts_in_training_captions"]),
            _pct(unseen["generation_prompts_in_training_captions"]),
            "-",
        )
    )
    return rows


def _clip_rows(ev: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    z = ev["clip_zero_shot"]
    rows = []
    for head, label in (("type", "product type (10 prompts)"), ("colour", "colour (120 type x colour prompts)")):
        key = f"{head}_accuracy"
        rows.append(
            (
                f"CLIP closed-set zero-shot {label}, training templates",
                _pct(z["seen"]["training_templates"][key]),
                _pct(z["unseen"]["training_templates"][key]),
                _target(f"clip_zero_shot_{head}_accuracy_training_templates"),
            )
        )
        rows.append(
            (
                f"CLIP closed-set zero-shot {label}, new templates (mean of {len(z['seen']['new_templates']['per_template'])})",
                f"**{_pct(z['seen']['new_templates']['mean'][key])}**",
                f"**{_pct(z['unseen']['new_templates']['mean'][key])}**",
                "-",
            )
        )
    for name, where in (("generated images", None), ("renders", "renders")):
        if where:
            a, b = ev["clip_score_renders"]["seen"], ev["clip_score_renders"]["unseen"]
        else:
            a, b = ev["generator"]["seen"]["service_defaults"]["clip_score"], ev["generator"]["unseen"]["service_defaults"]["clip_score"]
        rows.append(
            (
                f"CLIP score, matching vs shuffled prompt ({name})",
                f"{a['matching']:.1f} vs {a['shuffled']:.1f} ({_pct(a['matching_above_shuffled'])} higher)",
                f"{b['matching']:.1f} vs {b['shuffled']:.1f} ({_pct(b['matching_above_shuffled'])} higher)",
                "matching > shuffled",
            )
        )
    return rows


def evaluation_section(training: dict[str, Any], ev: dict[str, Any]) -> str:
    s, split = ev["summary"], ev["split"]
    gen = ev["generator"]
    seen, unseen = gen["seen"], gen["unseen"]
    rows = _gen_rows(ev) + _clip_rows(ev)
    table = ["| Measure | Seen combinations | Unseen combinations | Target |", "|---|---|---|---|"]
    table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    table.append(
        f"| Translation exact match ({ev['translator']['count']} held-out descriptions) | {_pct(s['translation_exact_match'])} | | {_target('translation_exact_match')} |"
    )
    per_template = ", ".join(
        f"`{r['type_prompt']}` / `{r['colour_prompt']}` {_pct(r['type_accuracy'])} / {_pct(r['colour_accuracy'])}"
        for r in ev["clip_zero_shot"]["seen"]["new_templates"]["per_template"]
    )
    misses = ev["translator"].get("examples_of_misses", [])
    miss = f'One of the translator\'s misses: "{misses[0]["german"]}" -> "{misses[0]["translation"]}".' if misses else "The translator missed none."
    met = ", ".join(f"{k} {'met' if v else '**missed**'}" for k, v in ev["targets_met"].items())
    example = ev["example_prompts"]["unseen"][0]
    judge_seen, judge_unseen = ev["judge_on_heldout_renders"], ev["judge_on_unseen_renders"]
    return f"""Figures from `models/fashion-mini/eval.json` ({ev["seconds"]:.0f} s on 2 cores), side by side for two held-out sets:

- **seen combinations**: {seen["prompts"]} products of combinations the training data has ({seen["combinations"]} of them), new
  renders and new German descriptions;
- **unseen combinations**: {unseen["prompts"]} products of the {split["held_out"]} held-out (type, colour, pattern) combinations
  ({unseen["combinations"]} of them drawn), which no training item or caption of CLIP and the UNet names (`fashion_studio/mini/split.py`;
  the rule: {split["rule"]}; the data stage checks every training item and caption, the lexicon reading each caption).

No German description of either set occurs in a training text. Bold: service defaults ({seen["service_defaults"]["steps"]} steps, guidance
{seen["service_defaults"]["guidance"]:g}); in brackets: {seen["fast"]["steps"]} steps without guidance.

{chr(10).join(table)}

- The generated images take the catalog pipeline's way: the German description is translated by
  `fashion-mini/marian`, the lexicon reads its attributes, and the generation prompt is the one the
  service uses (an unseen one: "{example["german"]}" -> "{example["translation"]}" -> "{example["generation_prompt"]}").
  {seen["service_defaults"]["seconds_per_image"]:.2f} s per image at the service defaults, {seen["fast"]["seconds_per_image"]:.3f} s at {seen["fast"]["steps"]} steps (CPU, measured in this run).
- The judge (`models/fashion-mini/judge`) is the measuring instrument, not a model under test: a CNN trained
  on the renderer's ground truth of every combination (the held-out ones included; it reads images, never
  text), never on generated images and never from the CLIP being evaluated. On held-out renders it reads
  type, colour and pattern right for {_pct(judge_seen["product_type"])}, {_pct(judge_seen["colour"])} and {_pct(judge_seen["pattern"])} (seen combinations) and
  {_pct(judge_unseen["product_type"])}, {_pct(judge_unseen["colour"])} and {_pct(judge_unseen["pattern"])} (unseen).
- CLIP zero-shot is closed-set classification over this catalog's 10 types and 120 type x colour pairs.
  With the training templates ("{ev["clip_zero_shot"]["seen"]["training_templates"]["type_prompt"]}", "{ev["clip_zero_shot"]["seen"]["training_templates"]["colour_prompt"]}") every prompt
  is itself a training caption ({_pct(ev["clip_zero_shot"]["prompts"]["training_templates_prompts_in_training_captions"])} of them); the new templates are no training caption (checked):
  {per_template} (seen combinations, type / colour).
- The VAE, like the judge, was trained on renders of every combination (it reads no text); the
  translator on description pairs of every combination, though on none of the held-out descriptions.
- {miss}
- Targets: {met}.
- For comparison, seed 003 reports 89% category accuracy and 92% colour fidelity on real products with
  real models; these figures are for a closed, rendered world and say that the plumbing carries the
  description's meaning through to the pixels, not that the models are good photographers."""


def training_section(training: dict[str, Any]) -> str:
    stages = training.get("stages", {})
    caps = MiniConfig().max_minutes
    rows = ["| Stage | Steps x batch | Time cap x scale | Wall time | Run | Machine |", "|---|---|---|---|---|---|"]
    for name in STAGES:
        info = stages.get(name)
        if not info:
            continue
        # the parts of a stage of several (not the sd stage's: its record repeats its inputs)
        labels = {"shots": ("vae", "unet"), "inpainter": ("vae", "unet", "decoder")}.get(name, ("sam", "parser"))
        parts = [(label, info[label]) for label in labels if isinstance(info.get(label), dict)] or [("", info)]
        # a stage of parts says which part its cap stopped (the inpainter's VAE keeps a fifth of the cap)
        steps = (
            ", ".join(
                f"{label} {steps_text(part)}".strip() + (" (stopped at its cap)" if label and part.get("stopped_early") else "")
                for label, part in parts
                if "steps" in part and "batch_size" in part
            )
            or "-"
        )
        scale = info.get("time_scale")
        base = caps.get(name)
        cap = f"{base:g} min x {scale:g}" if base is not None and scale is not None else (f"{info['max_minutes']:g} min" if info.get("max_minutes") else "-")
        machine = info.get("machine")
        where = f"{machine['logical_cores']} cores, {machine['torch_threads']} threads" if machine else "2 cores, 2 threads"
        if machine and machine.get("omp_wait_policy"):
            where += f", OpenMP wait {machine['omp_wait_policy']}"
        early = " (stopped at its cap)" if info.get("stopped_early") and not parts[0][0] else ""
        rows.append(f"| {name} | {steps}{early} | {cap} | {_duration(info.get('wall_seconds', 0))} | `{info.get('run_id', '-')}` | {where} |")
    total = training.get("total_training_seconds", 0)
    cap_sum = sum(caps.values())
    repro = training.get("reproducibility")
    if repro:
        checked = "; ".join(f"`{stage}` {'identical' if r['identical'] else '**different**'} ({r['checked']})" for stage, r in repro.items())
        repro_text = f"Re-trained by `fashion-studio models check-mini` into a scratch folder and compared byte for byte with the shipped weights: {checked}. Stages not listed were not checked."
    else:
        repro_text = "No stage has been re-trained and compared with the shipped weights (`fashion-studio models check-mini` does it)."
    return f"""Each stage plans a number of steps and has a time cap (the default caps add up to {cap_sum:g} minutes, plus the
rendering; `--time-scale` stretches them); a stage, or a part of one, cut short by its cap says so here and in
its card. The shipped weights come from the runs below (each stage's run, its cap and scale, its wall time and
the machine's threads, from `models/fashion-mini/training.json`); their wall times add up to
**{total / 60:.1f} min**. A stage whose learning rate follows its steps alone and that finishes them inside its
cap has weights its steps decide (`check-mini` compares them byte for byte); one its cap stops, or whose
schedule is paced by the clock, has trained as far as its machine got, and OpenMP's wait policy alone changes
that by a fifth or more (`docs/training-speed.md`): train on an otherwise idle machine with `OMP_WAIT_POLICY` unset.

{chr(10).join(rows)}

{repro_text}"""


def segmenter_summary(training: dict[str, Any], ev: dict[str, Any]) -> str:
    result = ev.get("segmenter")
    if not result:
        return "The segmenter has not been evaluated yet (`fashion-studio models eval-mini --segmenter-only`)."
    parsed = ", ".join(f"{c} {v:.2f}" for c, v in result["parser_mean_iou"].items())
    return f"""On {result["figures"]} held-out figures, each wearing a (type, colour, pattern) combination that no
training figure wears, three random clicks inside a garment give its mask at a mean IoU of
**{result["sam_mean_iou"]:.3f}** (target {TARGETS["segmentation_mean_iou"]:.2f}; a colour-threshold baseline from the same clicks:
{result["baseline"]["mean_iou"]:.3f}); the parser's masks by category without clicks: {parsed}
(`fashion-studio models eval-mini --segmenter-only`)."""


def inpainter_summary(training: dict[str, Any], ev: dict[str, Any]) -> str:
    from fashion_studio.mini.inpainter import TARGETS as INPAINT_TARGETS

    result = ev.get("inpainter")
    if not result:
        return "The inpainter has not been evaluated yet (`fashion-studio models eval-mini --inpainter-only`)."
    t, p, exact = result["tryon"], result["inpaint"], result["judge_on_exact_targets"]
    coded = result.get("judge_on_autoencoded_targets")
    ceiling = ""
    if coded:
        bound = [head for head in ("colour", "pattern") if coded[head] < INPAINT_TARGETS[f"tryon_{head}_accuracy"]]
        ceiling = f"; the exact targets through the inpainter's VAE and back, {coded['colour']:.1%} and {coded['pattern']:.1%}" + (
            f": the autoencoder bounds the {' and '.join(bound)} any try-on can score" if bound else ": the autoencoder leaves room for the targets"
        )
    return f"""On {result["examples"]} held-out figures (each wears a held-out (type, colour, pattern) combination), each
dressed in a garment of another held-out combination, the figure judge reads the garment's colour inside the
mask on **{t["colour"]:.1%}** of try-ons and its pattern on **{t["pattern"]:.1%}** (95% intervals {_interval(t["colour"], result["examples"])} and
{_interval(t["pattern"], result["examples"])}; targets {INPAINT_TARGETS["tryon_colour_accuracy"]:.0%} and {INPAINT_TARGETS["tryon_pattern_accuracy"]:.0%}; on the exact targets the judge reads
{exact["colour"]:.1%} and {exact["pattern"]:.1%}{ceiling}); inpainting from the dressed figure's caption: colour {p["colour"]:.1%}, pattern
{p["pattern"]:.1%}. Outside the mask the largest difference from the input is {t["outside_mask_max_abs_difference"]} (tolerance 0)
(`fashion-studio models eval-mini --inpainter-only`)."""


def shots_summary(training: dict[str, Any], ev: dict[str, Any]) -> str:
    from fashion_studio.mini.shots import TARGETS as SHOT_TARGETS

    result = ev.get("model_shots")
    if not result:
        return "The model shots have not been evaluated yet (`fashion-studio models eval-mini --shots-only`)."
    g, exact, coded = result["generated"], result["exact_renders"], result["autoencoded_renders"]

    def value(reading: dict[str, Any], key: str) -> str:
        return "n/a" if reading.get(key) is None else f"{reading[key]:.1%}"

    def pair(reading: dict[str, Any], name: str) -> str:
        return f"{value(reading['top'], f'{name}_accuracy')} / {value(reading['bottom'], f'{name}_accuracy')}"

    def spread(reading: dict[str, Any], name: str) -> str:
        return " / ".join(_interval(reading[slot].get(f"{name}_accuracy"), reading[slot].get("garments", 0)) for slot in ("top", "bottom"))

    held = {slot: g[slot].get("held_out_garments", {}) for slot in ("top", "bottom")}
    held_text = (
        f" On the garments of held-out combinations alone ({held['top']['garments']} tops, {held['bottom']['garments']} bottoms): "
        f"{value(held['top'], 'colour_accuracy')} / {value(held['bottom'], 'colour_accuracy')}."
        if held["top"]
        else ""
    )
    wrong = sorted(g["bottom"].get("colours_read_wrong", {}).items(), key=lambda item: (-item[1], item[0]))[:5]
    wrong_text = f" The bottom's colours read wrong most often (asked -> read): {', '.join(f'{asked_read} {n}' for asked_read, n in wrong)}." if wrong else ""
    negative = f'negative prompt "{result["negative_prompt"]}"' if result.get("negative_prompt") else "no negative prompt"
    return f"""On {result["figures"]} held-out figures' captions (each figure wears at least one held-out (type, colour,
pattern) combination, the other garment random; no training figure wears one and no prompt is a training caption,
checked), drawn at `/model_shot`'s defaults ({result["steps"]} steps, guidance {result["guidance"]}, {negative}), the clothes parser finds each
garment and the figure judge reads the top's / bottom's colour on **{pair(g, "colour")}** of the model shots
(95% intervals {spread(g, "colour")}; target {SHOT_TARGETS["model_shot_top_colour_accuracy"]:.0%} each), type {pair(g, "product_type")}, pattern {pair(g, "pattern")}.{held_text}{wrong_text} The same
reading of the exact renders gives colour {pair(exact, "colour")}, of the renders through the generator's VAE and
back {pair(coded, "colour")} (`fashion-studio models eval-mini --shots-only`)."""


BLOCKS = {
    README: {"summary": readme_summary, "segmenter": segmenter_summary, "shots": shots_summary, "inpainter": inpainter_summary},
    DOC: {"training": lambda training, ev: training_section(training), "evaluation": evaluation_section, "shots": shots_summary},
}


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- fashion-mini:{name} -->\n)(?:.*?\n)?(<!-- /fashion-mini:{name} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- fashion-mini:{name} --> block to write into")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)


def steps_text(part: dict[str, Any]) -> str:
    """ "1200 x 12", or for a loop of several tasks with their own batch sizes the steps of each:
    "2800 (2126 x 8 tryon, 674 x 16 inpaint)"."""
    size = part["batch_size"]
    if not isinstance(size, dict):
        return f"{part['steps']} x {size}"
    by_task = part.get("steps_by_task", {})
    return (
        f"{part['steps']} (" + ", ".join(f"{by_task[task]} x {batch} {task}" if task in by_task else f"x {batch} {task}" for task, batch in size.items()) + ")"
    )


def write_docs(models_dir: Path, documents: dict[Path, dict[str, Any]] | None = None) -> list[Path]:
    """Rewrite the marked blocks of the documents from the family's records; returns the files written."""
    training = read_json(models_dir / TRAINING_RECORD)
    ev = read_json(models_dir / EVAL_RECORD)
    written = []
    for path, blocks in (documents or BLOCKS).items():
        text = path.read_text(encoding="utf-8")
        for name, make in blocks.items():
            text = replace_block(text, name, make(training, ev))
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


__all__ = ["evaluation_section", "interval", "readme_summary", "training_section", "write_docs"]
