"""The ``llmtrack`` command line. Heavy imports happen inside the commands so ``--help`` is instant.

    llmtrack sft --task {markov,sort} [--size nano|small|base] [--algo bc|dagger] [--seed N]
                 [--family gpt2|llama] [--checkpoint DIR] [--out DIR] [--device D] [--threads N] [--json]
    llmtrack distill --task {markov,sort} [--method sft|kd|dagger|gkd|rkl] [--beta B] [--lmbda L] [--labelled N]
                     [--cold-start] [--labels expert|coach] [--coach-threshold P]
                     [--size S] [--family F] [--seed N] [--json]
    llmtrack demo kl-estimators [--json]
    llmtrack demo exposure-bias [--size S] [--family F] [--seed N] [--out DIR] [--json]
    llmtrack demo reward-noise [--seeds K] [--fast] [--out DIR] [--json]
    llmtrack demo classification-vs-bt [--seeds K] [--fast] [--out DIR] [--json]
    llmtrack demo overoptimisation [--seeds K] [--fast] [--out DIR] [--json]
    llmtrack pipeline --task markov [--size S] [--family F] [--seed N] [--noise P] [--fast] [--out DIR] [--json]
    llmtrack {rm,dpo,ppo,grpo,afd,bon} --task markov [same options]   one stage of the pipeline

Arguments are validated before any work: options as they are read (:mod:`minirl.command`), then the
config (:class:`llmtrack.pipelines.recipe.SFTRunConfig` and the others), the output folder and file, and
the base-model cache ($LLMTRACK_CACHE). Bad input prints ``llmtrack: error: <field>: <rule>`` and exits
with status 2. ``--out`` is never emptied or overwritten: a model goes into a new or empty folder, or
replaces a model llmtrack saved there; anything else needs ``--force`` (and then the model's files are
written beside what is there). Ctrl-C ends with one line saying what output is complete (status 130);
``--json`` prints standard JSON on stdout while progress bars go to stderr (when it is a terminal).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable, Sequence

from minirl.checks import MAX_SEEDS
from minirl.command import (CommandParser, count_option, device_option, number_option, print_json,
                            progress_wanted, run, seed_option, threads_option)


def _sft_config(args: argparse.Namespace) -> Any:
    from llmtrack.pipelines.recipe import SFTRunConfig

    return SFTRunConfig(task=args.task, size=args.size, algo=args.algo, family=args.family, seed=args.seed,
                        checkpoint=args.checkpoint, out=args.out, force=args.force, device=args.device,
                        threads=args.threads, progress=progress_wanted())


def _sft(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    from llmtrack.pipelines.recipe import run_sft

    result = run_sft(config)
    if not args.json:
        print(result.table())
    return result.summary()


def _distill_config(args: argparse.Namespace) -> Any:
    from llmtrack.pipelines.distillation import DistillRunConfig

    return DistillRunConfig(task=args.task, method=args.method, beta=args.beta, lmbda=args.lmbda,
                            labelled=args.labelled, size=args.size, family=args.family, seed=args.seed,
                            rl_gamma=args.rl_gamma,
                            cold_start=args.cold_start, labels=args.labels, coach_threshold=args.coach_threshold,
                            progress=progress_wanted())


def _distill(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    from llmtrack.pipelines.distillation import run_distill

    result = run_distill(config)
    if not args.json:
        for key, value in result.items():
            print(f"{key}: {value}")
    return result


def _kl_estimators_config(args: argparse.Namespace) -> Any:
    from llmtrack.experiments.kl_estimators import KLEstimatorConfig

    return KLEstimatorConfig()


def _kl_estimators(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    from llmtrack.experiments.kl_estimators import kl_estimators_table, run_kl_estimators

    result = run_kl_estimators(config)
    if not args.json:
        print(kl_estimators_table(result))
    return result


def _exposure_bias_config(args: argparse.Namespace) -> Any:
    from llmtrack.experiments.exposure_bias import ExposureBiasConfig

    return ExposureBiasConfig(size=args.size, family=args.family, seed=args.seed, device=args.device,
                              progress=progress_wanted())


def _figure_path(args: argparse.Namespace) -> Path:
    """Where the command's figure goes (``FIGURES``), checked before any work: the folder can be written,
    and a file of that name is missing or one of our figures (or --force)."""
    from minirl.outputs import check_output_dir, check_output_file

    name = "pipeline" if args.command == "pipeline" else args.command
    filename = FIGURES[args.demo] if args.command == "demo" else f"{name}_frontier.png"
    out = check_output_dir(Path(args.out or "figures"), "out")
    return check_output_file(out / filename, "out", force=args.force)


def _report(args: argparse.Namespace, make_figure: Callable[[], Any], table: str) -> str:
    """How the demos report: save the figure at ``args.figure`` (checked before the work), print the table
    and its path unless --json; returns the figure's path for the JSON summary."""
    import matplotlib

    matplotlib.use("Agg")  # before the figure is made: no display needed
    from minirl.outputs import save_figure

    figure = save_figure(make_figure(), args.figure, force=args.force)
    if not args.json:
        print(table)
        print(f"figure: {figure}")
    return str(figure)


def _exposure_bias(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    from llmtrack.experiments.exposure_bias import run_exposure_bias
    from llmtrack.plots import exposure_bias_figure

    result = run_exposure_bias(config)
    figure = _report(args, lambda: exposure_bias_figure(result), result.table())
    return result.summary() | {"figure": figure}


def _reward_noise_config(args: argparse.Namespace) -> Any:
    from llmtrack.experiments.reward_noise import RewardNoiseConfig

    return RewardNoiseConfig(seeds=tuple(range(args.seeds)), fast=args.fast, device=args.device,
                             progress=progress_wanted())


def _sweep(args: argparse.Namespace, rows: list[dict[str, Any]], table: Any, summarize: Any,
           figure_of: Any) -> dict[str, Any]:
    """A sweep's rows as the demos report them: the table (unless --json), the figure, the JSON summary."""
    figure = _report(args, lambda: figure_of(rows), table(rows))
    return {"rows": rows, "summary": summarize(rows), "figure": figure}


def _reward_noise(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    from llmtrack.experiments.reward_noise import reward_noise_table, run_reward_noise, summarize_reward_noise
    from llmtrack.plots import reward_noise_figure

    return _sweep(args, run_reward_noise(config), reward_noise_table, summarize_reward_noise, reward_noise_figure)


def _annotation_config(args: argparse.Namespace) -> Any:
    from llmtrack.experiments.annotation import AnnotationConfig

    fields = dict(seeds=tuple(range(args.seeds)), device=args.device, progress=progress_wanted())
    if args.fast:  # one pair count, clean vs noisy labels: the plumbing in seconds
        fields.update(fast=True, pair_counts=(400,), flips=(0.0, 0.4), temperatures=(8.0,))
    return AnnotationConfig(**fields)


def _annotation(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    from llmtrack.experiments.annotation import annotation_table, run_annotation_sweep, summarize_annotation
    from llmtrack.plots import annotation_figure

    return _sweep(args, run_annotation_sweep(config), annotation_table, summarize_annotation, annotation_figure)


def _overoptimisation_config(args: argparse.Namespace) -> Any:
    from llmtrack.experiments.overoptimisation import OveroptimisationConfig

    fields = dict(device=args.device, progress=progress_wanted())
    config = OveroptimisationConfig.fast(**fields) if args.fast else OveroptimisationConfig(**fields)
    return config, tuple(range(args.seeds))


def _overoptimisation(prepared: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The sweep over preference seeds 0..K-1: its table, the sweep figure (with the exact optimum of the
    idealised proxy), and JSON with every seed's run."""
    import numpy as np

    from llmtrack.experiments.overoptimisation import exact_proxy_optimum, run_overoptimisation_sweep
    from llmtrack.plots import overoptimisation_sweep_figure, overoptimisation_sweep_table

    config, seeds = prepared
    sweep = run_overoptimisation_sweep(config, seeds)
    exact = exact_proxy_optimum(config, np.geomspace(100.0, 0.01, 40).tolist())
    figure = _report(args, lambda: overoptimisation_sweep_figure(sweep, exact=exact),
                     overoptimisation_sweep_table(sweep))
    runs = {seed: {**run, "fits": {m: {s: f._asdict() for s, f in by.items()} for m, by in run["fits"].items()}}
            for seed, run in sweep["runs"].items()}
    return {**sweep, "runs": runs, "exact_proxy_optimum": exact, "figure": figure}


def _pipeline_config(args: argparse.Namespace) -> Any:
    from llmtrack.pipelines.alignment import METHODS, PipelineConfig

    methods = METHODS if args.command == "pipeline" else (args.command,)
    fields = dict(task=args.task, size=args.size, family=args.family, seed=args.seed, methods=methods,
                  preference_noise=args.noise, device=args.device, progress=progress_wanted())
    return PipelineConfig.fast(**fields) if args.fast else PipelineConfig(**fields)


def _pipeline(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from minirl.outputs import save_figure
    from llmtrack.plots import optimal_frontier_figure
    from llmtrack.pipelines.alignment import run_pipeline

    result = run_pipeline(config)
    summary = result.summary()
    if result.methods:
        points = {name: [row] for name, row in result.methods.items() if row.get("kl_to_ref") is not None}
        points["base"] = [result.base]
        figure = save_figure(optimal_frontier_figure(result.frontier, points), args.figure, force=args.force)
        summary["figure"] = str(figure)
    if not args.json:
        print(result.table())
        if "figure" in summary:
            print(f"figure: {summary['figure']}")
    return summary


def _add_pipeline_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="markov (the task with an exact optimum)")
    p.add_argument("--size", default="nano", help="model size preset: nano | small | base (default nano)")
    p.add_argument("--family", default="gpt2", help="gpt2 | llama (default gpt2)")
    p.add_argument("--seed", type=seed_option, default=0, help="seed, 0..2**32-1 (default 0)")
    p.add_argument("--noise", type=number_option(0.0, 0.49), default=0.0,
                   help="preference-label flip probability, 0..0.49 (default 0)")
    p.add_argument("--fast", action="store_true", help="small budgets (tests, notebooks)")
    _add_demo_outputs(p)
    p.set_defaults(configure=_pipeline_config, run=_pipeline)


def _add_demo_outputs(d: argparse.ArgumentParser) -> None:
    """The options every demo shares: where it runs, where its figure goes, and JSON output."""
    d.add_argument("--device", type=device_option, default="cpu",
                   help="cpu (default, reproducible) | cuda | cuda:N | mps | auto; checked against what torch sees")
    d.add_argument("--out", default=None, help="folder for the figure (default ./figures; created if missing)")
    d.add_argument("--force", action="store_true",
                   help="replace a file of the figure's name that llmtrack did not write")
    d.add_argument("--json", action="store_true",
                   help="print one JSON object (standard JSON: NaN as null) instead of the table")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="llmtrack", description="Language-model post-training on toy languages.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("sft", help="SFT (BC) or on-policy distillation (DAgger) from a tiny base model",
                            description="Pre-train (or load) a tiny base model, fine-tune it with minirl's BC or "
                                        "DAgger on the task's expert, and measure it against the expert.")
    p.add_argument("--task", required=True, help="markov | sort")
    p.add_argument("--size", default="nano", help="model size preset: nano | small | base (default nano)")
    p.add_argument("--algo", default="dagger", help="bc (SFT) | dagger (on-policy distillation); default dagger")
    p.add_argument("--family", default="gpt2", help="gpt2 | llama (default gpt2)")
    p.add_argument("--seed", type=seed_option, default=0, help="seed, 0..2**32-1 (default 0)")
    p.add_argument("--checkpoint", default=None, help="start from this local causal-LM checkpoint folder")
    p.add_argument("--out", default=None,
                   help="save the fine-tuned model to this folder: new, empty, or a model llmtrack saved")
    p.add_argument("--force", action="store_true",
                   help="allow --out to be a non-empty folder llmtrack did not write (the model's files go in "
                        "beside what is there; nothing else is touched)")
    p.add_argument("--device", type=device_option, default="cpu",
                   help="cpu (default, reproducible) | cuda | cuda:N | mps | auto; checked against what torch sees")
    p.add_argument("--threads", type=threads_option, default=None,
                   help="torch CPU threads, 1..the CPU count (default: 1 for nano, whose ops are too small to "
                        "gain from more)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (standard JSON: NaN as null) instead of the report")
    p.set_defaults(configure=_sft_config, run=_sft)
    p = commands.add_parser("distill", help="distil the task's exact teacher: sft | kd | dagger | gkd | rkl",
                            description="Distil the task's exact teacher (markov: pi*_beta; sort: the sorting expert) "
                                        "into the cached base model with N labelled sequences, and score it by the "
                                        "sequence-level forward and reverse KL to the teacher and the gold reward.")
    p.add_argument("--task", required=True, help="markov | sort")
    p.add_argument("--method", default="gkd", help="sft (hard labels) | kd (soft labels, teacher samples) | dagger "
                                                   "(hard labels, own samples) | gkd (JSD(beta), lambda on-policy) | "
                                                   "rkl (sampled-token reverse KL as a PPO reward); default gkd")
    p.add_argument("--beta", type=number_option(0.0, 1.0), default=0.5,
                   help="GKD's JSD(beta), 0..1: 0 forward KL, 1 reverse KL (default 0.5; gkd only)")
    p.add_argument("--lmbda", type=number_option(0.0, 1.0), default=1.0,
                   help="GKD's on-policy fraction, 0..1 (default 1; gkd only)")
    p.add_argument("--rl-gamma", type=number_option(0.0, 1.0), default=0.0,
                   help="rkl's discount of the reward-to-go, 0..1: 0 credits each token with its own log-ratio, 1 with "
                        "the rest of the sequence's (the exact sequence-KL gradient); default 0")
    p.add_argument("--labelled", type=count_option(1, 100_000), default=None,
                   help="N, sequences the teacher labels, 1..100000 (default: markov 1000, sort 200)")
    p.add_argument("--cold-start", action="store_true",
                   help="dagger: round 1 rolls in the teacher (DAgger's beta0 = 1, an SFT start), later rounds the student")
    p.add_argument("--labels", default="expert",
                   help="dagger's labels: expert (the teacher's action at each visited state) | coach (the teacher's "
                        "action where the student gives it --coach-threshold, else the student's most likely "
                        "zero-regret action; sort only); default expert")
    p.add_argument("--coach-threshold", type=number_option(0.0, 1.0), default=0.1,
                   help="coach: the student probability of the teacher's action above which it is taught, 0..1 "
                        "(default 0.1)")
    p.add_argument("--size", default="nano", help="model size preset: nano | small | base (default nano)")
    p.add_argument("--family", default="gpt2", help="gpt2 | llama (default gpt2)")
    p.add_argument("--seed", type=seed_option, default=0, help="seed, 0..2**32-1 (default 0)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (standard JSON: NaN and infinities as null) instead of the report")
    p.set_defaults(configure=_distill_config, run=_distill)
    demo = commands.add_parser("demo", help="run a named experiment")
    demos = demo.add_subparsers(dest="demo", required=True)
    d = demos.add_parser("kl-estimators", help="k1, k2, k3 in the reward or in the loss: exact bias, variance and "
                                               "gradient against grad KL, by enumeration (no figure)")
    d.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    d.set_defaults(configure=_kl_estimators_config, run=_kl_estimators)
    d = demos.add_parser("exposure-bias", help="SFT vs on-policy distillation at equal labelled data (sort, markov)")
    d.add_argument("--size", default="nano", help="model size preset (default nano)")
    d.add_argument("--family", default="gpt2", help="gpt2 | llama (default gpt2)")
    d.add_argument("--seed", type=seed_option, default=0, help="seed, 0..2**32-1 (default 0)")
    _add_demo_outputs(d)
    d.set_defaults(configure=_exposure_bias_config, run=_exposure_bias)
    d = demos.add_parser("reward-noise", help="reward models (BT vs classification, transformer vs frozen linear "
                                              "head) against preference-label noise")
    d.add_argument("--seeds", type=count_option(1, MAX_SEEDS), default=3,
                   help=f"seeds 0..K-1, K in 1..{MAX_SEEDS} (default 3)")
    d.add_argument("--fast", action="store_true", help="small budgets (one noise pair, minutes -> seconds)")
    _add_demo_outputs(d)
    d.set_defaults(configure=_reward_noise_config, run=_reward_noise)
    d = demos.add_parser("classification-vs-bt", help="where the classification objective beats Bradley-Terry: "
                                                      "few, noisy or ambiguous labels, frozen linear head")
    d.add_argument("--seeds", type=count_option(1, MAX_SEEDS), default=5,
                   help=f"seeds 0..K-1, K in 1..{MAX_SEEDS} (default 5)")
    d.add_argument("--fast", action="store_true", help="one pair count, three label models (seconds)")
    _add_demo_outputs(d)
    d.set_defaults(configure=_annotation_config, run=_annotation)
    d = demos.add_parser("overoptimisation", help="best-of-N and PPO against a proxy fitted to a biased annotator: "
                                                  "gold vs sqrt(KL) over preference seeds, Gao et al.'s fits, an ensemble")
    d.add_argument("--seeds", type=count_option(1, MAX_SEEDS), default=5,
                   help=f"preference seeds 0..K-1, K in 1..{MAX_SEEDS} (default 5)")
    d.add_argument("--fast", action="store_true", help="small budgets")
    _add_demo_outputs(d)
    d.set_defaults(configure=_overoptimisation_config, run=_overoptimisation)
    p = commands.add_parser("pipeline", help="base -> SFT -> RM -> {DPO, PPO, GRPO, AfD, best-of-N} vs the exact optimum",
                            description="Every alignment method from one base model, scored by gold reward, "
                                        "KL to pi_ref and KL to the exact optimum pi*_beta of the Markov task.")
    _add_pipeline_options(p)
    stages = {"rm": "train and evaluate the reward model", "dpo": "DPO on preference pairs",
              "ppo": "PPO-RLHF against the reward model", "grpo": "GRPO against the reward model",
              "afd": "alignment from demonstrations (adversarial, reverse KL)",
              "bon": "best-of-N sampling with the reward model"}
    for stage, text in stages.items():
        _add_pipeline_options(commands.add_parser(stage, help=text, description=f"One pipeline stage: {text}."))
    return parser


FIGURES = {"exposure-bias": "exposure_bias.png", "reward-noise": "reward_noise.png",
           "classification-vs-bt": "classification_vs_bt.png", "overoptimisation": "overoptimisation.png"}
"""The figure each demo writes under --out; pipeline commands write ``<command>_frontier.png``."""


def _prepare(args: argparse.Namespace) -> tuple[Any, argparse.Namespace]:
    """Every check, before any work: the config (validated on construction), the outputs, the cache."""
    from llmtrack.pipelines.base import cache_root
    from minirl.outputs import check_output_dir

    config = args.configure(args)
    if args.command == "sft":
        from llmtrack.pipelines.recipe import check_outputs

        check_outputs(config)
    elif args.command == "distill":
        check_output_dir(cache_root(), "LLMTRACK_CACHE")  # the base model's cache; nothing else is written
    elif args.command == "demo" and args.demo not in FIGURES:
        pass  # a table only: nothing is written
    else:
        args.figure = _figure_path(args)
        check_output_dir(cache_root(), "LLMTRACK_CACHE")
    return config, args


def _work(prepared: tuple[Any, argparse.Namespace]) -> int:
    from transformers.utils import logging as hf_logging

    config, args = prepared
    hf_logging.disable_progress_bar()  # transformers' own save/load bars; ours cover training
    summary = args.run(config, args)
    if args.json:
        print_json(summary)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run("llmtrack", lambda: _prepare(build_parser().parse_args(argv)), _work)


if __name__ == "__main__":
    raise SystemExit(main())
