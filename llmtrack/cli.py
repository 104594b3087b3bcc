"""The ``llmtrack`` command line. Heavy imports happen inside the commands so ``--help`` is instant.

    llmtrack sft --task {markov,sort} [--size nano|small|base] [--algo bc|dagger] [--seed N]
                 [--family gpt2|llama] [--checkpoint DIR] [--out DIR] [--device D] [--threads N] [--json]
    llmtrack demo exposure-bias [--size S] [--family F] [--seed N] [--out DIR] [--json]

Arguments are validated before any work (:class:`llmtrack.pipelines.recipe.SFTRunConfig`):
bad input prints ``llmtrack: error: <field>: <rule>`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence


def _sft_config(args: argparse.Namespace) -> Any:
    from llmtrack.pipelines.recipe import SFTRunConfig

    return SFTRunConfig(task=args.task, size=args.size, algo=args.algo, family=args.family, seed=args.seed,
                        checkpoint=args.checkpoint, out=args.out, device=args.device, threads=args.threads,
                        progress=not args.json)


def _sft(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    from llmtrack.pipelines.recipe import run_sft

    result = run_sft(config)
    if not args.json:
        print(result.table())
    return result.summary()


def _exposure_bias_config(args: argparse.Namespace) -> Any:
    from llmtrack.experiments.exposure_bias import ExposureBiasConfig

    return ExposureBiasConfig(size=args.size, family=args.family, seed=args.seed, device=args.device,
                              progress=not args.json)


def _exposure_bias(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from minirl.cli import _save_figure
    from llmtrack.experiments.exposure_bias import run_exposure_bias
    from llmtrack.plots import exposure_bias_figure

    result = run_exposure_bias(config)
    figure = _save_figure(exposure_bias_figure(result), Path(args.out or "figures"), "exposure_bias.png")
    summary = result.summary() | {"figure": str(figure)}
    if not args.json:
        print(result.table())
        print(f"figure: {figure}")
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmtrack", description="Language-model post-training on toy languages.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("sft", help="SFT (BC) or on-policy distillation (DAgger) from a tiny base model",
                            description="Pre-train (or load) a tiny base model, fine-tune it with minirl's BC or "
                                        "DAgger on the task's expert, and measure it against the expert.")
    p.add_argument("--task", required=True, help="markov | sort")
    p.add_argument("--size", default="nano", help="model size preset: nano | small | base (default nano)")
    p.add_argument("--algo", default="dagger", help="bc (SFT) | dagger (on-policy distillation); default dagger")
    p.add_argument("--family", default="gpt2", help="gpt2 | llama (default gpt2)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--checkpoint", default=None, help="start from this local causal-LM checkpoint directory")
    p.add_argument("--out", default=None, help="save the fine-tuned model to this directory")
    p.add_argument("--device", default="cpu", help="cpu (default, reproducible) | cuda | auto")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: 1 for nano, whose ops are too small to gain from more)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    p.set_defaults(configure=_sft_config, run=_sft)
    demo = commands.add_parser("demo", help="run a named experiment")
    demos = demo.add_subparsers(dest="demo", required=True)
    d = demos.add_parser("exposure-bias", help="SFT vs on-policy distillation at equal labelled data (sort, markov)")
    d.add_argument("--size", default="nano", help="model size preset (default nano)")
    d.add_argument("--family", default="gpt2", help="gpt2 | llama (default gpt2)")
    d.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    d.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    d.add_argument("--out", default=None, help="folder for the figure (default ./figures)")
    d.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    d.set_defaults(configure=_exposure_bias_config, run=_exposure_bias)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = args.configure(args)  # every check happens here, before any work
    except ValueError as err:
        print(f"llmtrack: error: {err}", file=sys.stderr)
        return 2
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # transformers' own save/load bars; ours cover training (none with --json)
    summary = args.run(config, args)
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
