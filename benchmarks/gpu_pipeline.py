"""Every stage of the alignment pipeline on one device: tokens/s, wall time and peak memory per stage.

The same :func:`llmtrack.pipelines.alignment.run_pipeline` the CLI runs (base pre-training,
SFT, reward model, DPO, PPO, GRPO, AfD, best-of-N), one stage per run -- so a stage that fails on
the device is reported with its traceback while the others still run (the base model is cached
after the first run; SFT and the RM are re-trained by the stages that start from them) -- with
budgets cut so that the "base" preset (85M parameters, GPT-2) finishes in a few minutes on one
GPU. Per stage:

    train tok/s   real tokens through the policy's forward passes with gradients, per second
                  of the stage's training (TokenCounter; sampling, the reward model and
                  discriminators are not counted, their cost is in the wall time)
    train s       the stage's own training
    stage s       the whole run of the stage (with what it needs, and its evaluation)
    peak MiB      torch.cuda.max_memory_allocated during the stage (CUDA only)
    gold, KL      the stage's gold reward and KL(pi || pi_ref), KL(pi || pi*) (the answer key)

On CUDA every forward pass runs under bf16 autocast (LMPolicy, LMRewardModel). CPU stays the
default of everything else; this script is for a GPU session:

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/gpu_pipeline.py                  # cuda if present
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/gpu_pipeline.py --device cpu --size nano
    ... --json FILE   also writes the JSON summary to FILE

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", default=None, help="preset (default: base on cuda, nano on cpu)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", default=None, help="comma-separated subset of the stages (default all)")
    parser.add_argument("--json", default=None, help="also write the summary here")
    args = parser.parse_args()
    size = args.size or ("base" if args.device.startswith("cuda") else "nano")

    from llmtrack.pipelines.alignment import STAGES, PipelineConfig, run_pipeline

    base_config = PipelineConfig(size=size, device=args.device, seed=args.seed, n_demos=2000, sft_updates=200,
                                 n_preferences=2000, rm_updates=200, dpo_updates=200, rl_tokens=8000,
                                 afd_tokens=8000, afd_demos=1000, bon_pool=256, n_eval=500,
                                 cache_dir=os.environ.get("LLMTRACK_CACHE")
                                 or tempfile.mkdtemp(prefix="llmtrack-bench-"))
    stages = args.stages.split(",") if args.stages else list(STAGES)
    # One run per stage (the base model is cached after the first): a stage that fails on this
    # device is reported with its traceback and the others still run.
    rows: dict[str, dict] = {}
    start = time.perf_counter()
    for stage in stages:
        t0 = time.perf_counter()
        try:
            result = run_pipeline(dataclasses.replace(base_config, methods=(stage,)))
        except Exception:  # noqa: BLE001 -- report and go on
            rows[stage] = {"error": traceback.format_exc(limit=6)}
            print(f"[{stage}] FAILED after {time.perf_counter() - t0:.1f} s\n{rows[stage]['error']}", flush=True)
            continue
        rows[stage] = result.reward_model if stage == "rm" else result.methods[stage]
        rows[stage]["stage_wall_s"] = time.perf_counter() - t0
        optimum = result.optimum
        print(f"[{stage}] done in {rows[stage]['stage_wall_s']:.1f} s", flush=True)
    wall = time.perf_counter() - start
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"\nalignment pipeline stages on {name} ({args.device}), preset {size}, seed {args.seed}; "
          f"total {wall:.1f} s (one base pre-training; SFT and the RM re-run by the stages that start from them)")
    print(f"{'stage':6} {'train tok/s':>12} {'train s':>8} {'stage s':>8} {'peak MiB':>9} {'gold':>7} {'KL ref':>7} "
          f"{'KL opt':>7}")
    for stage, row in rows.items():
        if "error" in row:
            print(f"{stage:6} FAILED")
            continue
        if stage == "rm":
            print(f"{'rm':6} {'':>12} {row['wall_s']:>8.1f} {row['stage_wall_s']:>8.1f} {'':>9}   accuracy "
                  f"{row['accuracy']:.3f}, gold correlation {row['gold_correlation']:.3f}")
            continue
        peak = f"{row['peak_memory_mb']:>9.0f}" if "peak_memory_mb" in row else f"{'-':>9}"
        tps = f"{row['train_tokens_per_s']:>12,.0f}" if row.get("train_tokens") else f"{'-':>12}"

        def num(key: str) -> str:
            v = row.get(key)
            return f"{v:>7.3f}" if isinstance(v, float) else f"{'-':>7}"

        print(f"{stage:6} {tps} {row['train_s']:>8.1f} {row['stage_wall_s']:>8.1f} {peak} {num('gold_reward')} "
              f"{num('kl_to_ref')} {num('kl_to_optimum')}")
    if "optimum" in locals():
        print(f"{'optimum':6} {'':>12} {'':>8} {'':>8} {'':>9} {optimum['gold_reward']:>7.3f} "
              f"{optimum['kl_to_ref']:>7.3f} {0.0:>7.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "size": size, "seed": args.seed, "wall_s": wall,
                                               "stages": rows}, indent=1))
    return 1 if any("error" in r for r in rows.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
