"""SFT (behaviour cloning) against on-policy distillation (DAgger) on ``sort``, at equal data, across model families and data sizes.

Is ``llmtrack sft --task sort --algo dagger``'s expert accuracy above ``--algo bc``'s at the same
number of labelled sequences? Asked over a grid instead of at one point. Each cell is :func:`llmtrack.pipelines.recipe.run_sft` exactly as the
CLI runs it (same base model, same budget of updates; only ``family``, ``labelled_sequences`` and
the seed change), for both algorithms. Per cell and algorithm, over the seeds:

    acc          expert accuracy on 1000 sampled own generations (mean over seeds, and each seed's)
    slip         P(a generation has at least one mistake)                      (survey eq. 1, split)
    after        E[mistakes - 1 | at least one]: what a first mistake costs afterwards
    wins         seeds on which DAgger's accuracy is above SFT's

``slip`` is where a model goes wrong on the expert's path; ``after`` is exposure bias proper, the
part DAgger's labels on the student's own states are meant to remove.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/sft_vs_dagger.py                       # the grid below
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/sft_vs_dagger.py --families gpt2 --labelled 200
    ... --json FILE   also write every run's summary there

One torch thread per run (the nano models gain nothing from more); 8-27 s per run here, and the
default grid (2 families x 4 sizes x 3 seeds x 2 algorithms = 48 runs) took 826 s (benchmarks/README.md).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _mean_se(xs: list[float]) -> tuple[float, float]:
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return mean, float("nan")
    return mean, math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="gpt2,llama")
    parser.add_argument("--labelled", default="40,100,200,800", help="labelled sequences N (both algorithms)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--size", default="nano")
    parser.add_argument("--json", default=None, help="also write every run's summary to this file")
    args = parser.parse_args()

    from llmtrack.pipelines.recipe import SFTRunConfig, run_sft

    cache = os.environ.get("LLMTRACK_CACHE") or tempfile.mkdtemp(prefix="llmtrack-sft-vs-dagger-")
    families, sizes, seeds = args.families.split(","), _ints(args.labelled), _ints(args.seeds)
    runs: list[dict] = []
    start = time.perf_counter()
    for family in families:
        for n in sizes:
            for seed in seeds:
                for algo in ("bc", "dagger"):
                    # 1200 updates from N = 800 on (600 under-fit the larger data set; both algorithms get the same)
                    updates = 600 if n < 800 else 1200
                    config = SFTRunConfig(task="sort", size=args.size, family=family, algo=algo, seed=seed,
                                          labelled_sequences=n, updates=updates, threads=1, cache_dir=cache)
                    summary = run_sft(config).summary()
                    runs.append(summary)
                    print(f"  {family:5s} N={n:4d} seed {seed} {algo:6s} acc {summary['expert_accuracy']:.4f} "
                          f"({summary['wall_s']:.0f} s)", file=sys.stderr, flush=True)

    header = (f"{'family':6s} {'N':>4s}  {'SFT acc':>15s}  {'DAgger acc':>15s}  {'slip SFT/DAg':>12s}  "
              f"{'after SFT/DAg':>13s}  wins  per seed (SFT | DAgger)")
    lines = [f"sort, preset {args.size}, seeds {seeds}: expert accuracy on sampled own generations "
             f"({time.perf_counter() - start:.0f} s)", header, "-" * len(header)]
    for family in families:
        for n in sizes:
            cell = {algo: [r for r in runs if r["family"] == family and r["labelled_sequences"] == n
                           and r["algo"] == algo] for algo in ("bc", "dagger")}
            acc = {a: [r["expert_accuracy"] for r in cell[a]] for a in cell}
            slip = {a: _mean_se([r["slip_rate"] for r in cell[a]])[0] for a in cell}
            after = {a: _mean_se([r["mistakes_after_first"] for r in cell[a]])[0] for a in cell}
            stats = {a: _mean_se(acc[a]) for a in cell}
            wins = sum(d > b for b, d in zip(acc["bc"], acc["dagger"]))
            lines.append(
                f"{family:6s} {n:4d}  {stats['bc'][0]:.4f} +- {stats['bc'][1]:.4f}  "
                f"{stats['dagger'][0]:.4f} +- {stats['dagger'][1]:.4f}  {slip['bc']:5.3f}/{slip['dagger']:5.3f}  "
                f"{after['bc']:6.2f}/{after['dagger']:5.2f}  {wins}/{len(seeds)}   "
                + " ".join(f"{x:.3f}" for x in acc["bc"]) + " | " + " ".join(f"{x:.3f}" for x in acc["dagger"]))
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
