"""The ``minirl`` command line: named demos that print a table, write a figure and, with --json,
print one JSON object. Heavy imports happen inside the commands so ``minirl --help`` is instant.

    minirl demo compounding-error [--seed N] [--seeds K] [--out DIR] [--json]
    minirl demo cartpole-imitation [--seed N] [--out DIR] [--json]
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


def _compounding_error(args: argparse.Namespace) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from minirl.experiments.compounding_error import CompoundingErrorConfig, run_compounding_error
    from minirl.plots import compounding_error_figure

    config = CompoundingErrorConfig(seed=args.seed, n_seeds=args.seeds, progress=not args.json)
    result = run_compounding_error(config)
    figure = _save_figure(compounding_error_figure(result), args.out, "compounding_error.png")
    summary = result.summary() | {"figure": str(figure)}
    if not args.json:
        print(result.table())
        print(f"figure: {figure}")
    return summary


def _cartpole_imitation(args: argparse.Namespace) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from minirl.experiments.cartpole_imitation import CartPoleImitationConfig, run_cartpole_imitation
    from minirl.plots import cartpole_imitation_figure

    config = CartPoleImitationConfig(seed=args.seed, n_seeds=args.seeds, progress=not args.json)
    result = run_cartpole_imitation(config)
    figure = _save_figure(cartpole_imitation_figure(result), args.out, "cartpole_imitation.png")
    summary = result.summary() | {"figure": str(figure)}
    if not args.json:
        print(result.table())
        print(f"figure: {figure}")
    return summary


DEMOS = {
    "compounding-error": (_compounding_error, 5, "BC's mistakes grow as T^2, DAgger's as T (seed Theorems 2.1, 2.3)"),
    "cartpole-imitation": (_cartpole_imitation, 3, "BC return vs demonstrations, DAgger return vs iterations on CartPole-v1"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minirl", description="Learning from behaviour on small MDPs.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a named demo")
    demos = demo.add_subparsers(dest="demo", required=True)
    for name, (_, default_seeds, help_text) in DEMOS.items():
        p = demos.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
        p.add_argument("--seeds", type=int, default=default_seeds,
                       help=f"independent repetitions for error bars (default {default_seeds})")
        p.add_argument("--out", type=Path, default=Path("figures"), help="folder for the figure (default ./figures)")
        p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
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
    run = DEMOS[args.demo][0]
    summary = run(args)
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
