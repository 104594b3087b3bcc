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

    minirl course list                                  the assignments of course/manifest.toml
    minirl course build ID --out DIR [--cumulative] [--force]   a student tree (see minirl.course)
    minirl course grade DIR [--json] [--public-only] [--results FILE] [--force]
    minirl course check [--only ID ...] [--jobs N] [--json]     the graders' proof, run in CI
    minirl course submit DIR [--out FILE] [--force]     pack a student's regions for upload
"""

from __future__ import annotations

import argparse
import sys
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

    if args.command == "course":
        return args, _prepare_course(args), Path()

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

    if prepared[0].command == "course":
        return _work_course(prepared[0], prepared[1])

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
                          "BC's mistakes grow as T^2, DAgger's as T (survey Theorems 2.1, 2.3)"),
    "cartpole-imitation": ("minirl.experiments.cartpole_imitation", "CartPoleImitationConfig", "run_cartpole_imitation",
                           "cartpole_imitation_figure", "cartpole_imitation.png", 3,
                           "BC return vs demonstrations, DAgger return vs iterations on CartPole-v1"),
    "f-divergence": ("minirl.experiments.f_divergence", "FDivergenceConfig", "run_f_divergence",
                     "f_divergence_figure", "f_divergence.png", 1,
                     "mass-covering FAIRL vs mode-seeking AIRL (and GAIL) on a two-mode expert (survey Table 4); "
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
    _course_parser(commands)
    return parser


# ----------------------------------------------------------------------------------------------
# minirl course: assignments from the solution markers (minirl.course)
# ----------------------------------------------------------------------------------------------

def _course_parser(commands: Any) -> None:
    course = commands.add_parser("course", help="course assignments: build student trees, grade, check",
                                 description="Course assignments built from the library's solution markers "
                                             "(see docs/instructors.md).")
    actions = course.add_subparsers(dest="action", required=True)
    root_help = "the repository holding course/manifest.toml (default: the checkout minirl runs from)"
    p = actions.add_parser("list", help="the assignments of course/manifest.toml")
    p.add_argument("--root", type=Path, default=None, help=root_help)
    p = actions.add_parser("build", help="a student tree for one assignment",
                           description="Copy the repository (no history, tests or graders) with the assignment's "
                                       "solution blocks replaced by stubs, its public tests and its questions.")
    p.add_argument("id", help="the assignment's id (see: minirl course list)")
    p.add_argument("--out", type=Path, required=True, help="the new student tree (a missing or empty folder)")
    p.add_argument("--cumulative", action="store_true", help="stub every later assignment too")
    p.add_argument("--force", action="store_true", help="replace a student tree minirl built there before")
    p.add_argument("--root", type=Path, default=None, help=root_help)
    p = actions.add_parser("grade", help="grade a student tree: points per test and results.json")
    p.add_argument("dir", type=Path, help="a tree made by 'minirl course build'")
    p.add_argument("--json", action="store_true", help="print the Gradescope results as JSON instead of the table")
    p.add_argument("--public-only", action="store_true", help="leave out the hidden tests even where they are")
    p.add_argument("--results", type=Path, default=None, help="where to write results.json (default DIR/results.json)")
    p.add_argument("--force", action="store_true", help="replace a results file minirl did not write")
    p.add_argument("--root", type=Path, default=None, help=root_help)
    p = actions.add_parser("check", help="prove the graders: reference passes, stubs fail, mutants are caught")
    p.add_argument("--only", nargs="+", default=None, metavar="ID", help="check only these assignments")
    p.add_argument("--jobs", type=count_option(1, 64), default=2, help="test runs at a time, 1..64 (default 2)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    p.add_argument("--root", type=Path, default=None, help=root_help)
    p = actions.add_parser("submit", help="check a student tree and pack its regions for upload")
    p.add_argument("dir", type=Path, help="a tree made by 'minirl course build'")
    p.add_argument("--out", type=Path, default=None, help="the archive (default DIR/<id>-submission.zip)")
    p.add_argument("--force", action="store_true", help="replace an existing archive")


def _prepare_course(args: argparse.Namespace) -> Any:
    """Everything ``minirl course`` can refuse, before anything is written or run."""
    import minirl.course as course

    if args.action == "submit":
        return course.prepare_submit(args.dir, args.out, args.force)
    root = course.find_root(args.root)
    if args.action == "list":
        return course.load_course(root)
    if args.action == "build":
        return course.prepare_build(root, args.id, args.out, args.cumulative, args.force)
    if args.action == "grade":
        return course.prepare_grade(args.dir, root, args.public_only, args.results, args.force)
    loaded = course.load_course(root)
    for aid in args.only or []:
        loaded.get(aid, "--only")
    return loaded


def _work_course(args: argparse.Namespace, prepared: Any) -> int:
    import minirl.course as course

    if args.action == "list":
        print(course.list_table(prepared))
        return 0
    if args.action == "build":
        try:
            built = course.build(prepared)
        except course.BuildError as err:  # the tree was made but failed its verification: nothing is kept
            print(f"minirl: error: build: {err}", file=sys.stderr)
            return 1
        print(f"built {built.assignment.id} ({built.assignment.title}) in {built.path}")
        for aid, block, line in built.stubbed:
            print(f"  stub  {aid} · {block.label:<28} {block.file}:{line}")
        print(f"  public tests: {len(built.public_tests)} file(s) in assignment/tests; questions: assignment/QUESTIONS.md")
        print("  verified: every file parses, minirl and llmtrack import, no solution line is left")
        return 0
    if args.action == "grade":
        result, data, text = course.grade(prepared)
        if args.json:
            print_json(data)
        else:
            print(text)
            if prepared.results is not None:
                print(f"results: {prepared.results}")
        return 0
    if args.action == "submit":
        tree, record, out = prepared
        files = course.submit(tree, record, out)
        print(f"packed {len(files)} file(s) of {record['assignment']} into {out}")
        return 0
    from minirl.course.check import check_course

    def say(line: str) -> None:
        if not args.json:
            print(line, flush=True)

    report = check_course(prepared, args.only, args.jobs, progress=say)
    if args.json:
        print_json({"ok": report.ok, "course_problems": report.course_problems, "problems": report.problems,
                    "lines": report.lines, "seconds": report.seconds, "total_seconds": report.total_seconds})
    else:
        for problem in report.course_problems:
            print(f"problem: {problem}")
        for aid, problems in report.problems.items():
            for problem in problems:
                print(f"{aid}: problem: {problem}")
        for aid, seconds in report.seconds.items():
            print(f"{aid}: {seconds:.1f} s of test runs")
        print(f"course check {'passed' if report.ok else 'FAILED'} in {report.total_seconds:.0f} s")
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    return run("minirl", lambda: _prepare(build_parser().parse_args(argv)), _work)


if __name__ == "__main__":
    raise SystemExit(main())
