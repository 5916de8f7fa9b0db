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
    args = parser.parse_args(argv)
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
    rows = []
    for name, runs in report["runs"].items():
        rate = statistics.median(r["images_per_s"] for r in runs)
        p95 = statistics.median(r["p95_s"] for r in runs)
        rows.append(f"| {name} | {rate:.2f} | {min(r['images_per_s'] for r in runs):.2f} - {max(r['images_per_s'] for r in runs):.2f} | {p95:.3f} |")
    rates = [statistics.median(r["images_per_s"] for r in runs) for runs in report["runs"].values()]
    report["scoring_in_generator_over_scorer_process"] = rates[0] / rates[1]
    report["budget_over_default"] = rates[1] / rates[2]
    text = "\n".join(
        [
            "# CPU threads per model process",
            "",
            f"Written by `{report['command']} --seconds {args.seconds:g} --repeats {args.repeats}` in one run on {os.cpu_count()} CPU cores; "
            "raw figures in `docs/threads.json`. The served path (`/generate_image`: generate, CLIP score, PNG) at "
            f"{CLIENTS} closed-loop clients, {args.repeats} rounds in which each configuration is served afresh and measured for "
            f"{args.seconds:g} s (medians over the rounds), the default request of the default models.",
            "",
            "| configuration | images/s | min - max | p95 s |",
            "|---|---|---|---|",
            *rows,
            "",
            f"With the scorer in its own process, the budget carries **{report['budget_over_default']:.2f}x** the images of every "
            "process on every core. A PyTorch process whose intra-op threads outnumber the cores free to it stalls at every parallel "
            "region until its last thread gets a core; the scorer's calls come while the generator runs, so with every process on "
            "every core they take the generator's cores mid-step. On the budget the scorer's process still takes one of the "
            "generator's two cores whenever it scores; scoring in the generator's own process, on the step scheduler's thread between "
            f"steps, carries **{report['scoring_in_generator_over_scorer_process']:.2f}x** the images of the scorer's process doing "
            "the same scoring.",
            "",
        ]
    )
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
