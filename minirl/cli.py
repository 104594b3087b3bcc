"""The ``minirl`` command line: named demos that print a table, write a figure and, with --json,
print one JSON object. Heavy imports happen inside the commands so ``minirl --help`` is instant.

Every option is checked as it is read (:mod:`minirl.command`), and the figure's folder and file before
any work (:mod:`minirl.outputs`): an existing file that is not one of our figures is replaced only with
``--force``. Ctrl-C ends with one line and status 130; ``--json`` prints standard JSON on stdout, and
progress bars go to stderr whenever it is a terminal.

    minirl demo compounding-error [--seed N] [--seeds K] [--out DIR] [--json]
    minirl demo cartpole-imitation [--seed N] [--out DIR] [--json]
    minirl demo f-divergence [--out DIR] [--json]                    (exact: no seed)
    minirl demo reward-transfer [--seed N] [--seeds K] [--out DIR] [--json]
    minirl demo imitate --algo {bc,dagger,gail,airl,fairl,all} --env {CartPole-v1,Pendulum-v1} [--demos N]
                        [--steps N] [--seed N] [--seeds K] [--out DIR] [--json]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from minirl.checks import MAX_SEEDS
from minirl.command import CommandParser, count_option, print_json, progress_wanted, run, seed_option
from minirl.outputs import check_output_dir, check_output_file

MAX_DEMOS = 1000
"""Most expert demonstrations ``minirl demo imitate --demos`` takes."""
MAX_STEPS = 100_000_000
"""Largest env-step budget ``--steps`` takes."""


def _prepare(args: argparse.Namespace) -> tuple[argparse.Namespace, Any, Path]:
    """Everything that can be refused, before any work: the config (validated on construction) and the figure's path."""
    import importlib

    module, config_cls, *_, filename = DEMOS[args.demo][:5]
    experiment = importlib.import_module(module)
    extra = {field: getattr(args, field) for _, field, *_ in EXTRA_OPTIONS.get(args.demo, [])}
    seeds = {"seed": args.seed, "n_seeds": args.seeds} if SEEDED[args.demo] else {}
    config = getattr(experiment, config_cls)(progress=progress_wanted(), **seeds, **extra)
    out = check_output_dir(args.out, "out")
    figure = check_output_file(out / filename, "out", force=args.force)
    return args, config, figure


def _work(prepared: tuple[argparse.Namespace, Any, Path]) -> int:
    """Run one experiment, print its table (or its JSON), save its figure."""
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    import torch

    import minirl.plots
    from minirl.outputs import save_figure

    args, config, figure = prepared
    # The demos' tensors are tiny: a second intra-op thread only adds synchronisation, and
    # on a busy 2-core machine it made them several times slower.
    torch.set_num_threads(1)
    module, _, run_name, figure_name, _ = DEMOS[args.demo][:5]
    result = getattr(importlib.import_module(module), run_name)(config)
    path = save_figure(getattr(minirl.plots, figure_name)(result), figure, force=args.force)
    if args.json:
        print_json(result.summary() | {"figure": str(path)})
    else:
        print(result.table())
        print(f"figure: {path}")
    return 0


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
                     "mass-covering FAIRL vs mode-seeking AIRL (and GAIL) on a two-mode expert (seed Table 4); "
                     "an exact game, so it takes no seed"),
    "reward-transfer": ("minirl.experiments.reward_transfer", "RewardTransferConfig", "run_reward_transfer",
                        "reward_transfer_figure", "reward_transfer.png", 3,
                        "AIRL's learned reward transfers to new dynamics, GAIL's does not (Fu et al. 2017)"),
    "imitate": ("minirl.experiments.imitate", "ImitateConfig", "run_imitation", "imitation_figure", "imitate.png", 1,
                "BC, DAgger, GAIL, AIRL or FAIRL on CartPole-v1 / Pendulum-v1 from a few demonstrations"),
}
SEEDED = {name: name != "f-divergence" for name in DEMOS}
"""Which demos have randomness (f-divergence solves its game exactly: a --seed would be ignored, so it has none)."""
# Extra options of some demos: demo -> [(flag, config field, type, default, help)]
EXTRA_OPTIONS = {
    "imitate": [("--algo", "algo", str, "gail", "bc, dagger, gail, airl, fairl, or all (one table and figure)"),
                ("--env", "env", str, "CartPole-v1", "CartPole-v1 or Pendulum-v1"),
                ("--demos", "n_demos", count_option(1, MAX_DEMOS), 4,
                 f"expert demonstrations, 1..{MAX_DEMOS} (default 4)"),
                ("--steps", "total_steps", count_option(1, MAX_STEPS), None,
                 f"env-step budget of the adversarial methods, 1..{MAX_STEPS:.0e}")],
}


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="minirl", description="Learning from behaviour on small MDPs.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a named demo")
    demos = demo.add_subparsers(dest="demo", required=True)
    for name, (*_, default_seeds, help_text) in DEMOS.items():
        p = demos.add_parser(name, help=help_text, description=help_text)
        if SEEDED[name]:
            p.add_argument("--seed", type=seed_option, default=0, help="base seed, 0..2**32-1 (default 0)")
            p.add_argument("--seeds", type=count_option(1, MAX_SEEDS), default=default_seeds,
                           help=f"independent repetitions for error bars, 1..{MAX_SEEDS} (default {default_seeds})")
        p.add_argument("--out", type=Path, default=Path("figures"),
                       help="folder for the figure (default ./figures; created if missing)")
        p.add_argument("--force", action="store_true",
                       help="replace a file of the figure's name that minirl did not write")
        p.add_argument("--json", action="store_true",
                       help="print one JSON object (standard JSON: NaN as null) instead of the table")
        for flag, field, kind, default, help_extra in EXTRA_OPTIONS.get(name, []):
            p.add_argument(flag, dest=field, type=kind, default=default, help=help_extra)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run("minirl", lambda: _prepare(build_parser().parse_args(argv)), _work)


if __name__ == "__main__":
    raise SystemExit(main())
