"""The ``minirl`` command line: named demos that print a table, write a figure and, with --json,
print one JSON object. Heavy imports happen inside the commands so ``minirl --help`` is instant.

    minirl demo compounding-error [--seed N] [--seeds K] [--out DIR] [--json]
    minirl demo cartpole-imitation [--seed N] [--out DIR] [--json]
    minirl demo f-divergence [--out DIR] [--json]
    minirl demo reward-transfer [--seed N] [--seeds K] [--out DIR] [--json]
    minirl demo imitate --algo {bc,dagger,gail,airl,fairl,all} --env {CartPole-v1,Pendulum-v1} [--demos N]
                        [--steps N] [--seed N] [--seeds K] [--out DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence


def _save_figure(fig: Any, out: Path, name: str) -> Path:
    """Write a PNG atomically: to a temp file in the same folder, then rename."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=out)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a figure is for everyone
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _run_demo(args: argparse.Namespace, module: str, config_cls: str, run: str, figure: str,
              filename: str) -> dict[str, Any]:
    """Run one experiment, print its table (or stay quiet for --json), save its figure."""
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    import minirl.plots

    experiment = importlib.import_module(module)
    extra = {field: getattr(args, field) for _, field, *_ in EXTRA_OPTIONS.get(args.demo, [])}
    config = getattr(experiment, config_cls)(seed=args.seed, n_seeds=args.seeds, progress=not args.json, **extra)
    result = getattr(experiment, run)(config)
    path = _save_figure(getattr(minirl.plots, figure)(result), args.out, filename)
    if not args.json:
        print(result.table())
        print(f"figure: {path}")
    return result.summary() | {"figure": str(path)}


# name -> (experiment module, config class, run function, figure function, file, default seeds, help)
DEMOS = {
    "compounding-error": ("minirl.experiments.compounding_error", "CompoundingErrorConfig", "run_compounding_error",
                          "compounding_error_figure", "compounding_error.png", 5,
                          "BC's mistakes grow as T^2, DAgger's as T (seed Theorems 2.1, 2.3)"),
    "cartpole-imitation": ("minirl.experiments.cartpole_imitation", "CartPoleImitationConfig", "run_cartpole_imitation",
                           "cartpole_imitation_figure", "cartpole_imitation.png", 3,
                           "BC return vs demonstrations, DAgger return vs iterations on CartPole-v1"),
    "f-divergence": ("minirl.experiments.f_divergence", "FDivergenceConfig", "run_f_divergence",
                     "f_divergence_figure", "f_divergence.png", 1,
                     "mass-covering FAIRL vs mode-seeking AIRL (and GAIL) on a two-mode expert (seed Table 4)"),
    "reward-transfer": ("minirl.experiments.reward_transfer", "RewardTransferConfig", "run_reward_transfer",
                        "reward_transfer_figure", "reward_transfer.png", 3,
                        "AIRL's learned reward transfers to new dynamics, GAIL's does not (Fu et al. 2017)"),
    "imitate": ("minirl.experiments.imitate", "ImitateConfig", "run_imitation", "imitation_figure", "imitate.png", 1,
                "BC, DAgger, GAIL, AIRL or FAIRL on CartPole-v1 / Pendulum-v1 from a few demonstrations"),
}
# Extra options of some demos: demo -> [(flag, config field, type, default, help)]
EXTRA_OPTIONS = {
    "imitate": [("--algo", "algo", str, "gail", "bc, dagger, gail, airl, fairl, or all (one table and figure)"),
                ("--env", "env", str, "CartPole-v1", "CartPole-v1 or Pendulum-v1"),
                ("--demos", "n_demos", int, 4, "expert demonstrations (default 4)"),
                ("--steps", "total_steps", int, None, "env-step budget of the adversarial methods")],
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minirl", description="Learning from behaviour on small MDPs.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a named demo")
    demos = demo.add_subparsers(dest="demo", required=True)
    for name, (*_, default_seeds, help_text) in DEMOS.items():
        p = demos.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
        p.add_argument("--seeds", type=int, default=default_seeds,
                       help=f"independent repetitions for error bars (default {default_seeds})")
        p.add_argument("--out", type=Path, default=Path("figures"), help="folder for the figure (default ./figures)")
        p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
        for flag, field, kind, default, help_extra in EXTRA_OPTIONS.get(name, []):
            p.add_argument(flag, dest=field, type=kind, default=default, help=help_extra)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.seeds < 1:
        print("minirl: error: --seeds: must be >= 1", file=sys.stderr)
        return 2
    import torch

    # The demos' tensors are tiny: a second intra-op thread only adds synchronisation, and
    # on a busy 2-core machine it made them several times slower.
    torch.set_num_threads(1)
    try:
        summary = _run_demo(args, *DEMOS[args.demo][:5])
    except ValueError as error:  # bad input, refused before any work
        print(f"minirl: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
