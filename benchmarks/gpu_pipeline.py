"""Every stage of the alignment pipeline on one device: tokens/s, wall time and peak memory per stage.

The same :func:`llmtrack.pipelines.alignment.run_pipeline` the CLI runs (base pre-training,
SFT, reward model, DPO, PPO, GRPO, AfD, best-of-N), with budgets cut so that the "base" preset
(85M parameters, GPT-2) finishes in a few minutes on one GPU. Per stage:

    train tok/s   real tokens through the policy's forward passes with gradients, per second
                  of the stage's training (TokenCounter; sampling, the reward model and
                  discriminators are not counted, their cost is in the wall time)
    wall s        training plus that stage's evaluation samples
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
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", default=None, help="preset (default: base on cuda, nano on cpu)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the summary here")
    args = parser.parse_args()
    size = args.size or ("base" if args.device.startswith("cuda") else "nano")

    from llmtrack.pipelines.alignment import PipelineConfig, run_pipeline

    config = PipelineConfig(size=size, device=args.device, seed=args.seed, n_demos=2000, sft_updates=200,
                            n_preferences=2000, rm_updates=200, dpo_updates=200, rl_tokens=8000, afd_tokens=8000,
                            afd_demos=1000, bon_pool=256, n_eval=500,
                            cache_dir=os.environ.get("LLMTRACK_CACHE") or tempfile.mkdtemp(prefix="llmtrack-bench-"))
    start = time.perf_counter()
    result = run_pipeline(config)
    wall = time.perf_counter() - start
    summary = result.summary() | {"device_name": torch.cuda.get_device_name() if args.device.startswith("cuda")
                                  else "cpu", "benchmark_wall_s": wall}
    print(f"alignment pipeline on {summary['device_name']} ({args.device}), preset {size}, seed {args.seed}; "
          f"total {wall:.1f} s (base pre-training included)")
    print(f"{'stage':6} {'train tok/s':>12} {'wall s':>8} {'peak MiB':>9} {'gold':>7} {'KL ref':>7} {'KL opt':>7}")
    if result.reward_model is not None:
        rm = result.reward_model
        print(f"{'rm':6} {'':>12} {rm['wall_s']:>8.1f} {'':>9}   acc {rm['accuracy']:.3f}, gold corr "
              f"{rm['gold_correlation']:.3f}")
    for name, row in result.methods.items():
        peak = f"{row['peak_memory_mb']:>9.0f}" if "peak_memory_mb" in row else f"{'-':>9}"
        tps = f"{row['train_tokens_per_s']:>12,.0f}" if row.get("train_tokens") else f"{'-':>12}"

        def num(key: str) -> str:
            v = row.get(key)
            return f"{v:>7.3f}" if isinstance(v, float) else f"{'-':>7}"

        print(f"{name:6} {tps} {row['wall_s']:>8.1f} {peak} {num('gold_reward')} {num('kl_to_ref')} "
              f"{num('kl_to_optimum')}")
    print(f"{'optimum':6} {'':>12} {'':>8} {'':>9} {result.optimum['gold_reward']:>7.3f} "
          f"{result.optimum['kl_to_ref']:>7.3f} {0.0:>7.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
