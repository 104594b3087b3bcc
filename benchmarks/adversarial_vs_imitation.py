"""minirl's GAIL and AIRL against HumanCompatibleAI `imitation`'s, on CartPole-v1, same demonstrations.

    demonstrations  minirl.experts.CartPoleExpert (deterministic), --demos episodes of 500 steps
                    from minirl.rollout.rollout, env seeds 100 + i; written once to an .npz
                    (flat obs, acts, next_obs, dones + per-episode lengths) that both sides load.
    ours            AdversarialImitation(AdversarialConfig(divergence, disc_minibatches=1,
                    ppo=CARTPOLE_CONFIG)) on 8 sync CartPole-v1 envs wrapped in HideReward (the
                    env's reward never reaches the learner), 256 env steps per iteration.
    imitation       imitation 1.0.1's GAIL (BasicRewardNet) / AIRL (BasicShapedRewardNet), both
                    with RunningNorm, SB3 PPO learner, hyperparameters of imitation's CartPole
                    tutorials with n_steps=128 (1024 env steps per round), allow_variable_horizon;
                    run by benchmarks/_imitation_runner.py in imitation's own virtualenv.
    evaluation      the same for both, every --eval-every env steps (20 of our iterations, 5 of
                    imitation's rounds) and at the end: mean return of the greedy policy over 10
                    CartPole-v1 episodes with resets seeded 10000 + i. Its time is excluded.

Columns: env steps and training wall time (s) when the evaluation first reaches --target (475 =
95% of the expert's 500), the return at the last evaluation (after --max-steps, the same budget
for both), and ours/imitation for steps and wall time (< 1: ours needs fewer / is faster).
Every method runs alone, one after the other, on one torch thread.

Run (from the repository root, with imitation installed in its own venv):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/adversarial_vs_imitation.py \
        --seeds 0,1 --imitation-python /work/venvs/imitation/bin/python --json results.json

Not part of the test suite (pytest's testpaths are tests/ and notebooks/).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, also where it is not installed

import gymnasium as gym
import numpy as np
import torch

from minirl.algos.adversarial import AdversarialConfig, AdversarialImitation
from minirl.data import TrajectoryBatch
from minirl.envs import HideReward
from minirl.experiments.ppo_experts import CARTPOLE_CONFIG, evaluate_policy
from minirl.experts import CartPoleExpert
from minirl.policies import MLPPolicy, ValueMLP
from minirl.rollout import rollout

RUNNER = Path(__file__).with_name("_imitation_runner.py")
DEMO_SEED = 100
EVAL_SEED = 10_000
OURS = {  # row name -> AdversarialConfig fields (beyond disc_minibatches=1, ppo, seed)
    "gail": dict(divergence="gail"),
    "airl": dict(divergence="airl"),
    # --variants: the published reward rules instead of the derived ones
    "gail -log(1-D)": dict(divergence="gail", reward="gail_minus_log1m_d"),  # imitation's GAIL reward, > 0
    "airl (h)": dict(divergence="airl", reward="airl_logit"),  # Fu et al.'s AIRL reward h (no - 1)
    # the library's recommended setting (minirl.experiments.imitate): derived rewards with the
    # absorbing-state treatment of termination, 4 discriminator minibatches, PPO lr 3e-4
    "gail absorbing": dict(divergence="gail", absorbing=True, disc_minibatches=4, ppo_lr=3e-4, ppo_ent=0.01),
    "airl absorbing": dict(divergence="airl", absorbing=True, disc_minibatches=4, ppo_lr=3e-4, ppo_ent=0.01),
}
VARIANTS = {"gail": ["gail -log(1-D)"], "airl": ["airl (h)"]}


# -- demonstrations --------------------------------------------------------------------------------
def make_demos(n_episodes: int, path: Path) -> dict[str, np.ndarray]:
    """Expert episodes from rollout(), with each episode's final s' recovered by replaying it; saved to ``path``."""
    envs = gym.make_vec("CartPole-v1", num_envs=n_episodes, vectorization_mode="sync")
    batch = rollout(envs, CartPoleExpert(), n_episodes, seed=DEMO_SEED, deterministic=True)  # sub-env i: seed 100 + i
    envs.close()
    obs, acts, next_obs, dones, terminated, lengths = [], [], [], [], [], []
    for b in range(batch.batch_size):
        T = int(batch.mask[b].sum())
        o, a = batch.obs[b, :T].numpy(), batch.actions[b, :T].numpy()  # (T, 4), (T,)
        env = gym.make("CartPole-v1")  # replay: rollout() keeps s_t but not the s' of the last step
        s, _ = env.reset(seed=DEMO_SEED + b)
        nxt = np.zeros_like(o)
        term = np.zeros(T, dtype=bool)
        for t in range(T):
            if not np.array_equal(s, o[t]):
                raise RuntimeError(f"demo replay diverged: episode {b}, step {t}")
            s, _, term[t], trunc, _ = env.step(int(a[t]))
            nxt[t] = s
        if not (term[-1] or trunc):
            raise RuntimeError(f"demo replay: episode {b} did not end at step {T}")
        env.close()
        done = np.zeros(T, dtype=bool)
        done[-1] = True
        obs.append(o), acts.append(a), next_obs.append(nxt), dones.append(done), terminated.append(term)
        lengths.append(T)
    data = {"obs": np.concatenate(obs).astype(np.float32), "acts": np.concatenate(acts).astype(np.int64),
            "next_obs": np.concatenate(next_obs).astype(np.float32), "dones": np.concatenate(dones),
            "terminated": np.concatenate(terminated), "lengths": np.asarray(lengths, dtype=np.int64)}
    np.savez(path, **data)
    return data


def demos_batch(data: dict[str, np.ndarray]) -> TrajectoryBatch:
    """The .npz's episodes as a padded TrajectoryBatch (B, T); info['next_obs'] keeps every step's s'."""
    lengths = data["lengths"]
    B, T = len(lengths), int(lengths.max())
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    obs, next_obs = torch.zeros(B, T, 4), torch.zeros(B, T, 4)
    actions, mask, terminated = (torch.zeros(B, T, dtype=torch.long), torch.zeros(B, T, dtype=torch.bool),
                                 torch.zeros(B, T, dtype=torch.bool))
    for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        n = hi - lo
        obs[b, :n], next_obs[b, :n] = torch.from_numpy(data["obs"][lo:hi]), torch.from_numpy(data["next_obs"][lo:hi])
        actions[b, :n], mask[b, :n] = torch.from_numpy(data["acts"][lo:hi]), True
        terminated[b, :n] = torch.from_numpy(data["terminated"][lo:hi])
    return TrajectoryBatch(obs=obs, actions=actions, mask=mask, terminated=terminated, info={"next_obs": next_obs})


# -- ours ------------------------------------------------------------------------------------------
def run_ours(name: str, demos: TrajectoryBatch, seed: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(seed)
    fields = {"disc_minibatches": 1, **OURS[name]}
    ppo = replace(CARTPOLE_CONFIG, seed=seed, lr=fields.pop("ppo_lr", CARTPOLE_CONFIG.lr),
                  ent_coef=fields.pop("ppo_ent", CARTPOLE_CONFIG.ent_coef))
    config = AdversarialConfig(**fields, ppo=ppo, seed=seed)
    envs = gym.make_vec("CartPole-v1", num_envs=8, vectorization_mode="sync", wrappers=[HideReward])
    policy = MLPPolicy(4, 2, seed=seed)
    trainer = AdversarialImitation(envs, policy, ValueMLP(4, seed=seed), demos, config)
    per_iteration = config.ppo.n_steps * envs.num_envs
    eval_iterations = max(1, round(args.eval_every / per_iteration))
    n_iterations = math.ceil(args.max_steps / per_iteration)
    curve: list[dict] = []
    state = {"eval_s": 0.0, "reached": None, "iteration": 0}
    start = time.perf_counter()

    def callback(record: dict) -> bool:
        state["iteration"] += 1
        if state["iteration"] % eval_iterations and state["iteration"] != n_iterations:
            return False
        wall = time.perf_counter() - start - state["eval_s"]
        t = time.perf_counter()
        ret = evaluate_policy("CartPole-v1", policy, args.eval_episodes, seed=EVAL_SEED, deterministic=True)
        state["eval_s"] += time.perf_counter() - t
        curve.append({"env_steps": record["env_steps"], "wall_s": wall, "return": ret})
        if state["reached"] is None and ret >= args.target:
            state["reached"] = {"env_steps": record["env_steps"], "wall_s": wall}
            return args.stop_at_target
        return False

    trainer.train(n_iterations * per_iteration, callback=callback)
    envs.close()
    reached = state["reached"]
    return {"library": "minirl", "method": name, "seed": seed,
            "steps_to_target": reached and reached["env_steps"], "wall_to_target": reached and reached["wall_s"],
            "final_return": curve[-1]["return"], "env_steps": curve[-1]["env_steps"],
            "train_wall_s": curve[-1]["wall_s"], "eval_wall_s": state["eval_s"],
            "steps_per_round": per_iteration, "curve": curve}


# -- imitation -------------------------------------------------------------------------------------
def run_imitation(method: str, demo_path: Path, seed: int, args: argparse.Namespace, workdir: Path) -> dict:
    out = workdir / f"imitation_{method}_{seed}.json"
    log = workdir / f"imitation_{method}_{seed}.log"
    cmd = [args.imitation_python, str(RUNNER), "--demos", str(demo_path), "--method", method, "--seed", str(seed),
           "--max-steps", str(args.max_steps), "--eval-every", str(args.eval_every),
           "--eval-episodes", str(args.eval_episodes), "--eval-seed", str(EVAL_SEED), "--target", str(args.target),
           "--threads", "1", "--out", str(out)] + (["--stop-at-target"] if args.stop_at_target else [])
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"imitation runner failed (exit {proc.returncode}); last lines of {log}:\n"
                           + "\n".join(log.read_text().splitlines()[-20:]))
    return json.loads(out.read_text())


# -- report ----------------------------------------------------------------------------------------
def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def table(results: list[dict], target: float, max_steps: int) -> str:
    def fmt_steps(r):
        return f"{r['steps_to_target']:,}" if r["steps_to_target"] is not None else f">{r['env_steps']:,}"

    def fmt_wall(r):
        return f"{r['wall_to_target']:.1f}" if r["wall_to_target"] is not None else f">{r['train_wall_s']:.1f}"

    theirs = {(r["method"], r["seed"]): r for r in results if r["library"] == "imitation"}
    head = ["seed", "method", "library", f"steps to {target:g}", f"wall to {target:g} (s)", "final return",
            "train wall (s)", "steps ours/imit", "wall ours/imit"]
    rows = []
    order = ["gail", "airl"]
    for r in sorted(results, key=lambda r: (r["seed"], order.index(r["method"].split()[0]), r["library"] != "minirl",
                                            r["method"])):
        ratio_steps = ratio_wall = ""
        other = theirs.get((r["method"].split()[0], r["seed"]))
        if r["library"] == "minirl" and other is not None:
            if r["steps_to_target"] is not None and other["steps_to_target"] is not None:
                ratio_steps = f"{r['steps_to_target'] / other['steps_to_target']:.2f}"
                ratio_wall = f"{r['wall_to_target'] / other['wall_to_target']:.2f}"
            elif r["steps_to_target"] is None and other["steps_to_target"] is not None:
                ratio_steps = ratio_wall = "n/r (ours)"
            elif r["steps_to_target"] is not None:
                ratio_steps = ratio_wall = "n/r (imit)"
            else:
                ratio_steps = ratio_wall = "n/r (both)"
        rows.append([str(r["seed"]), r["method"], r["library"], fmt_steps(r), fmt_wall(r), f"{r['final_return']:.1f}",
                     f"{r['train_wall_s']:.1f}", ratio_steps, ratio_wall])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
    lines.append(f"\n'>N': not reached within the budget of {max_steps:,} env steps (N = steps / wall actually run); "
                 "n/r: no ratio, not reached by the side named.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    parser.add_argument("--methods", default="gail,airl", help="comma-separated: gail, airl")
    parser.add_argument("--variants", action="store_true",
                        help="also run ours with the published reward rules (GAIL -log(1 - D), AIRL h) as extra rows")
    parser.add_argument("--ours-rows", default=None,
                        help=f"comma-separated rows of ours to run instead (of {', '.join(OURS)})")
    parser.add_argument("--max-steps", type=int, default=300_000, help="env-step budget, the same for both sides")
    parser.add_argument("--eval-every", type=int, default=5_120, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--target", type=float, default=475.0, help="return to reach (95%% of the expert's 500)")
    parser.add_argument("--demos", type=int, default=8, help="expert episodes (500 steps each)")
    parser.add_argument("--stop-at-target", action="store_true",
                        help="stop each run once it reaches the target (final return = that evaluation)")
    parser.add_argument("--imitation-python", default="/work/venvs/imitation/bin/python",
                        help="python of the virtualenv with imitation==1.0.1 ('' = skip imitation)")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--json", default=None, help="also write all results (with learning curves) to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = [m.strip() for m in args.methods.split(",")]
    if not set(methods) <= {"gail", "airl"}:
        parser.error(f"--methods: unknown method in {methods}")

    load_before = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="adv_vs_imitation_"))
    demo_path = workdir / "cartpole_expert_demos.npz"
    data = make_demos(args.demos, demo_path)
    demos = demos_batch(data)
    print(f"demonstrations: {len(data['lengths'])} episodes, {int(data['lengths'].sum())} steps "
          f"(lengths {sorted(set(data['lengths'].tolist()))}) -> {demo_path}", flush=True)

    results: list[dict] = []
    started = time.perf_counter()
    for seed in seeds:
        for method in methods:
            names = [method] + (VARIANTS[method] if args.variants else [])
            if args.ours_rows is not None:
                names = [n for n in args.ours_rows.split(",") if n and n.split()[0] == method]
            if not args.skip_ours:
                for name in names:
                    r = run_ours(name, demos, seed, args)
                    results.append(r)
                    print(f"  seed {seed} minirl {name:9s} to target: {r['steps_to_target']} steps, "
                          f"{r['wall_to_target']} s; final {r['final_return']:.1f}", flush=True)
            if args.imitation_python:
                r = run_imitation(method, demo_path, seed, args, workdir)
                results.append(r)
                print(f"  seed {seed} imitation {method:6s} to target: {r['steps_to_target']} steps, "
                      f"{r['wall_to_target']} s; final {r['final_return']:.1f}", flush=True)
    load_after = load_average()
    imitation_versions = next((r["versions"] for r in results if "versions" in r), {})
    header = (f"CartPole-v1, {len(data['lengths'])} expert demos, budget {args.max_steps:,} env steps, "
              f"eval every {args.eval_every} steps ({args.eval_episodes} greedy episodes); "
              f"load average before {load_before}, after {load_after}; {time.perf_counter() - started:.0f} s in all\n"
              f"minirl: torch {torch.__version__}, gymnasium {gym.__version__}; imitation: "
              + ", ".join(f"{k} {v}" for k, v in imitation_versions.items()))
    print()
    print(header)
    print(table(results, args.target, args.max_steps))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "args": vars(args), "load_before": load_before, "load_after": load_after, "platform": platform.platform(),
            "versions": {"minirl": {"torch": torch.__version__, "gymnasium": gym.__version__},
                         "imitation": imitation_versions},
            "results": results}, indent=1))


if __name__ == "__main__":
    main()
