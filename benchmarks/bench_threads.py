"""The CPU thread budget of the model processes and where the scoring runs, measured: the served path
at 8 clients with the defaults (the generator on every core, scoring its own images between steps;
the scorer and translator on one core each), against the scorer's own process doing the scoring
(`FASHION_GENERATOR_SCORES=false`, as the Kubernetes overlays run it), and that with every process on
every core (PyTorch's default), in one run, each configuration served in turn.

Writes docs/threads.md and docs/threads.json whole.

    python -m benchmarks.bench_threads [--seconds 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_serving import closed_loop, serve  # noqa: E402

CLIENTS = 8


def main(argv: list[str] | None = None) -> int:
    from fashion_studio.settings import Settings, available_cores

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--capacity", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "threads.md")
    parser.add_argument("--render", action="store_true", help="write --out again from the JSON beside it, measuring nothing")
    args = parser.parse_args(argv)
    if args.render:
        report = json.loads(args.out.with_suffix(".json").read_text())
        args.out.write_text(document(report))
        return 0
    cores = available_cores()
    settings = Settings()
    apart = {"FASHION_GENERATOR_SCORES": "false"}
    configurations = {
        "budget: generator every core, scorer 1, translator 1; the generator's process scores (the defaults)": {},
        "budget; the scorer's process scores": apart,
        f"every process on every core ({cores}); the scorer's process scores": {
            **apart,
            "FASHION_THREADS__SCORER": str(cores),
            "FASHION_THREADS__TRANSLATOR": str(cores),
        },
    }
    report: dict = {
        "command": "python -m benchmarks.bench_threads",
        "cores": cores,
        "clients": CLIENTS,
        "seconds": args.seconds,
        "repeats": args.repeats,
        "runs": {},
    }
    report["runs"] = {name: [] for name in configurations}
    for _ in range(args.repeats):  # rounds, every configuration served afresh in turn: the machine's drift falls on all
        for name, env in configurations.items():
            server, _ = serve(settings, args.capacity, Path(tempfile.mkdtemp(prefix="bench-threads-")), **env)
            try:
                closed_loop(server.url, CLIENTS, 3.0)  # warm-up
                report["runs"][name].append(closed_loop(server.url, CLIENTS, args.seconds))
            finally:
                server.stop()
    report["cores"], report["python_cpu_count"] = cores, os.cpu_count()
    report.update(ratios(report))
    text = document(report)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.write_text(text)
    print(text)
    return 0


def ratios(report: dict) -> dict[str, float]:
    """Images/s of the configurations, in their order, over one another: what scoring in the
    generator's process buys, and what the thread budget buys with the scorer apart."""
    rates = [statistics.median(r["images_per_s"] for r in runs) for runs in report["runs"].values()]
    return {"scoring_in_generator_over_scorer_process": rates[0] / rates[1], "budget_over_default": rates[1] / rates[2]}


def document(report: dict) -> str:
    """docs/threads.md from the report (`--render` writes it again from the JSON)."""
    rows = []
    for name, runs in report["runs"].items():
        rate = statistics.median(r["images_per_s"] for r in runs)
        p95 = statistics.median(r["p95_s"] for r in runs)
        rows.append(f"| {name} | {rate:.2f} | {min(r['images_per_s'] for r in runs):.2f} - {max(r['images_per_s'] for r in runs):.2f} | {p95:.3f} |")
    answered = statistics.median(r["answered"] for runs in report["runs"].values() for r in runs)
    report = {**report, **ratios(report)}
    return "\n".join(
        [
            "# CPU threads per model process",
            "",
            f"Written by `{report['command']} --seconds {report['seconds']:g} --repeats {report['repeats']}` in one run on {report.get('python_cpu_count', report['cores'])} CPU cores; "
            "raw figures in `docs/threads.json`. The served path (`/generate_image`: generate, CLIP score, PNG) at "
            f"{CLIENTS} closed-loop clients, {report['repeats']} rounds in which each configuration is served afresh and measured for "
            f"{report['seconds']:g} s (medians over the rounds), the default request of the default models.",
            "",
            "| configuration | images/s | min - max | p95 s |",
            "|---|---|---|---|",
            *rows,
            "",
            f"With the scorer in its own process, the budget carries **{report['budget_over_default']:.2f}x** the images of every "
            "process on every core. A PyTorch process whose intra-op threads outnumber the cores free to it stalls at every parallel "
            "region until its last thread gets a core; the scorer's calls come while the generator runs, so with every process on "
            "every core they take the generator's cores mid-step. On the budget the scorer's process still takes one of the "
            f"generator's {report['cores']} cores whenever it scores; scoring in the generator's own process, on the step scheduler's thread between "
            f"steps, carries **{report['scoring_in_generator_over_scorer_process']:.2f}x** the images of the scorer's process doing "
            "the same scoring. At 8 clients the answers come in lockstep batches of 8, and a run of "
            f"{report['seconds']:g} s counts about {answered:.0f} answers, so a difference under one batch in "
            f"{answered / CLIENTS:.0f} ({CLIENTS / answered:.0%}) is within one run's resolution.",
            "",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
