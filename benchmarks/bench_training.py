"""fashion-mini's training speed under each OpenMP wait policy: seconds per optimizer step of the generator's
UNet (the unet and shots stages' loop, `sd.train_unet`, batch 64 with loss maps) and of the inpainter (its VAE
fine-tune and 9-channel UNet, `inpainter.train_inpainter`), each in a fresh process per policy (libgomp reads
OMP_WAIT_POLICY once, at start), the policies' order rotated from repeat to repeat; medians and spreads.

A stage at its time cap trains as many steps as this speed allows, so the policy decides how much of its
planned training a capped stage gets.

Writes docs/training-speed.md and docs/training-speed.json whole (`--render` rewrites the former from the latter).

    python -m benchmarks.bench_training [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# "unset": libgomp's default (spin a while, then sleep); PASSIVE: sleep at once; ACTIVE: spin.
POLICIES = ("unset", "PASSIVE", "ACTIVE")
WORKLOADS = ("generator_unet", "inpainter")
INPAINT_EXAMPLES = 200
STEPS = {"generator_unet": 30, "inpainter_vae": 40, "inpainter_unet": 80}  # enough that 0.1 s of rounding is under 1%


def _generator_unet(models: Path, work: Path) -> dict[str, float]:
    """`sd.train_unet` from the shipped generator's UNet on product and figure captions with random
    latents and loss maps (the speed does not depend on their values); a 3-step call warms up first."""
    import numpy as np
    from diffusers import UNet2DConditionModel

    from fashion_studio.mini import sd

    text_encoder, tokenizer = sd.text_encoder_from_clip(models / "clip")
    rng = np.random.default_rng(0)
    n = 512
    texts = [(f"a red striped t-shirt {i}", f"a woman wearing a navy dotted shirt and grey trousers {i}") for i in range(n)]
    latents = (rng.standard_normal((n, 4, sd.LATENT_SIZE, sd.LATENT_SIZE)).astype(np.float32), np.full((n, 4, sd.LATENT_SIZE, sd.LATENT_SIZE), 0.1, np.float32))
    maps = 1.0 + rng.random((n, sd.LATENT_SIZE, sd.LATENT_SIZE)).astype(np.float32)
    unet = UNet2DConditionModel.from_pretrained(models / "sd" / "unet")
    out = work / "unet"
    sd.train_unet(out, texts, latents, 1.0, text_encoder, tokenizer, 0, 3, 1e9, unet=unet, loss_maps=maps)
    _, info = sd.train_unet(out, texts, latents, 1.0, text_encoder, tokenizer, 0, STEPS["generator_unet"], 1e9, unet=unet, loss_maps=maps)
    return {"generator_unet": info["seconds"] / info["steps"]}


def _inpainter(models: Path, work: Path) -> dict[str, float]:
    """`inpainter.train_inpainter` on rendered examples (shared through the work folder); a short call warms up first."""
    from fashion_studio.mini import inpainter
    from fashion_studio.mini.data import TRAIN

    data = inpainter.example_set(work, INPAINT_EXAMPLES, 0, TRAIN, 1)
    inpainter.train_inpainter(work / "warm", models / "sd", data, 0, {"vae": 2, "unet": 3}, 1e9)
    _, info = inpainter.train_inpainter(work / "out", models / "sd", data, 0, {"vae": STEPS["inpainter_vae"], "unet": STEPS["inpainter_unet"]}, 1e9)
    return {
        "inpainter_vae": info["vae"]["seconds"] / info["vae"]["steps"],
        "inpainter_unet": info["unet"]["seconds"] / info["unet"]["steps"],
    }


def child(workload: str, models: Path, work: Path, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    result = (_generator_unet if workload == "generator_unet" else _inpainter)(models, work)
    print("RESULT " + json.dumps(result), flush=True)


def run_child(workload: str, policy: str, models: Path, work: Path, threads: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if policy != "unset":
        env["OMP_WAIT_POLICY"] = policy
    command = [sys.executable, "-m", "benchmarks.bench_training", "--child", workload, "--models", str(models), "--work", str(work), "--threads", str(threads)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{workload} under {policy} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def paired_ratios(report: dict, policy: str = "unset") -> dict[str, list[float]]:
    """Per loop, each repeat's PASSIVE seconds over `policy`'s seconds (how many times the steps `policy` trains)."""
    return {name: [p / s for p, s in zip(by["PASSIVE"], by[policy])] for name, by in report["samples"].items()}


def document(report: dict) -> str:
    by_policy_ratios = {policy: paired_ratios(report, policy) for policy in POLICIES}
    rows = []
    for name, by_policy in report["seconds_per_step"].items():
        for policy in POLICIES:
            s = by_policy[policy]
            paired = by_policy_ratios[policy][name]
            rows.append(
                f"| {name} | {policy} | {s['median']:.3f} | {s['min']:.3f}-{s['max']:.3f} | {statistics.median(paired):.2f}x ({', '.join(f'{r:.2f}' for r in paired)}) |"
            )
    medians = {name: statistics.median(r) for name, r in by_policy_ratios["unset"].items()}
    low, high = min(medians.values()), max(medians.values())
    if low > 1.05:
        verdict = f"""- Unset (libgomp's default: a thread spins a while before it sleeps) trains {low:.2f}x to {high:.2f}x as many steps per second
  as PASSIVE on these loops (medians of the repeats' paired ratios): their kernels are small, so a thread that
  sleeps after every parallel region pays a wake-up at the next. A stage at its time cap trains that many more of
  its planned steps, so `make mini-train` leaves the policy unset and the family is trained on an otherwise idle
  machine. PASSIVE is for a machine that another busy process shares, where spinning threads would take its cores
  (libgomp also stops spinning by itself when there are more threads than cores); that case is not measured here."""
    elif high < 0.95:
        verdict = f"""- Unset trains only {low:.2f}x to {high:.2f}x the steps per second of PASSIVE on these loops: here PASSIVE is
  the faster policy."""
    elif low >= 0.95 and high <= 1.05:
        verdict = f"""- Unset trains {low:.2f}x to {high:.2f}x the steps per second of PASSIVE on these loops: on this machine the
  policy does not decide the training speed."""
    else:
        verdict = f"""- Unset trains {low:.2f}x to {high:.2f}x the steps per second of PASSIVE on these loops: the policy helps some
  loops and not others on this machine."""
    threads = f"{report['threads']} PyTorch threads" + (" (`train-mini`'s default)" if report.get("default_threads", True) else "")
    return f"""# fashion-mini training speed and the OpenMP wait policy

Written by `{report["command"]}` ({report["repeats"]} repeats; raw figures in `training-speed.json`). Machine: {report["machine"]},
{threads}, nothing else running. Each figure is the seconds per optimizer step of one fresh process
(libgomp reads `OMP_WAIT_POLICY` once, when it starts) over {report["steps"]["generator_unet"]}, {report["steps"]["inpainter_vae"]} and {report["steps"]["inpainter_unet"]} steps after a warm-up call,
timed inside the training loop (saving excluded); the policies' order rotates from one repeat to the next, and
each repeat's ratio compares the policies within that repeat.

| Loop | OMP_WAIT_POLICY | Seconds per step (median) | Range | Steps per second vs PASSIVE (median; each repeat) |
|---|---|---|---|---|
{chr(10).join(rows)}

- `generator_unet`: `sd.train_unet` (the unet and shots stages), batch 64 with loss maps, from the shipped
  generator's UNet. `inpainter_vae` and `inpainter_unet`: `inpainter.train_inpainter`'s VAE fine-tune (batch 12) and
  9-channel UNet (try-on batches of 8 canvases, inpainting batches of 16 images) on {report["inpaint_examples"]} rendered examples.
{verdict}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", type=Path, default=ROOT / "models" / "fashion-mini")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch threads (default: train-mini's)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "training-speed.md")
    parser.add_argument("--render", action="store_true", help="write --out again from the JSON beside it, measuring nothing")
    parser.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from fashion_studio.mini.train import MiniConfig, machine

    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    threads = args.threads or MiniConfig().threads
    if args.child:
        child(args.child, args.models, args.work, threads)
        return 0
    if args.render:
        args.out.write_text(document(json.loads(args.out.with_suffix(".json").read_text())))
        return 0
    started = time.perf_counter()
    samples: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        work = Path(tmp)
        from fashion_studio.mini import inpainter
        from fashion_studio.mini.data import TRAIN

        inpainter.example_set(work, INPAINT_EXAMPLES, 0, TRAIN, 1)  # rendered once, read by every child
        for repeat in range(args.repeats):
            order = POLICIES[repeat % len(POLICIES) :] + POLICIES[: repeat % len(POLICIES)]  # each policy in each place
            for workload in WORKLOADS:
                for policy in order:
                    for name, seconds in run_child(workload, policy, args.models, work, threads).items():
                        samples.setdefault(name, {}).setdefault(policy, []).append(seconds)
                    print(f"repeat {repeat + 1}/{args.repeats} {workload} {policy}: done", flush=True)
    where = machine(threads)  # the CPU as the training record names it
    report = {
        "command": "python -m benchmarks.bench_training" + (f" --repeats {args.repeats}" if args.repeats != 3 else ""),
        "machine": f"{where['cpu']}, {where['logical_cores']} cores",
        "threads": threads,
        "default_threads": threads == MiniConfig().threads,
        "repeats": args.repeats,
        "inpaint_examples": INPAINT_EXAMPLES,
        "steps": STEPS,
        "samples": samples,
        "seconds_per_step": {
            name: {policy: {"median": statistics.median(v), "min": min(v), "max": max(v)} for policy, v in by.items()} for name, by in samples.items()
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.write_text(document(report))
    print(document(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
