"""Do the notebooks' statistical claims hold on every seed, and under every CPU kernel set?

The notebooks assert two kinds of things (issue 12):

* **exact oracles** with a float tolerance (value iteration = policy iteration, the derived
  reward's gradient = -grad D_f, Best-of-N's KL <= log N - (N-1)/N, ...): they hold on any
  machine up to rounding, and a seed does not enter;
* **statistical claims** about a random experiment (BC's mistakes grow with slope ~2, SFT beats
  AfD, RAFT raises the gold reward, ...): the notebook runs one seed and asserts the claim, so
  the assert is only as good as the claim's margin over seeds. A different CPU is a different
  seed: it rounds differently, and PyTorch picks its CPU kernels by ``ATEN_CPU_CAPABILITY``
  (``default``, ``avx2``, ``avx512`` where the CPU has it), which changes the rounding on one
  machine too. One rounding difference early in training is enough to send a run elsewhere.

This script re-computes each notebook's asserted quantities with the library, at the notebooks'
fast-mode budgets (``--full``: the full-mode budgets), for K seeds, once per kernel set, and
prints a table claim x setting -> held / total. A claim that is not held on every seed of every
setting, with margin, is a seed's luck and must be rewritten in the notebook (sweep seeds there
and assert a fraction with margin, loosen it to what the maths guarantees, or make it an exact
oracle). The last column is the range of the asserted quantity over all runs (its margin).

Design. A *claim* is (name, notebook, kind, a function seed -> bool or (bool, value)); the
function re-computes what the notebook asserts for that seed (seed 0 is the notebook's own run,
the other seeds move every seed of the experiment). Claims of one notebook cell share one
memoised experiment (``_memo``), so a cell's work is done once per seed. Exact claims run on
seed 0 only: a seed does not enter them, the kernel set does. The runner detects the kernel sets
the CPU supports (``/proc/cpuinfo`` flags; ``torch.backends.cpu.get_cpu_capability()`` for
``native``), runs the claims in one subprocess per setting with ``ATEN_CPU_CAPABILITY`` set (torch
reads it once, at import), and collects the subprocess's JSON. Each setting gets its own cache of
pre-trained base models (``$LLMTRACK_CACHE`` under ``--cache``), apart from ``~/.cache/llmtrack``:
a setting must pre-train its base models with its own kernels (the cache key names the kernel set
too, so a shared root would also do; a separate one keeps the sweep from filling the user's).

The over-optimisation experiment (notebook 08, cells 11-13) reports its own claims:
``llmtrack.experiments.overoptimisation.overoptimisation_claims(seeds, fast=True)`` -> {name:
(held, total)}, called in each setting's subprocess when the module has it.

Usage (a seed sweep of everything costs about 5 minutes per seed and setting here)::

    .venv/bin/python benchmarks/robustness.py --seeds 5
    .venv/bin/python benchmarks/robustness.py --seeds 10 --claims '01.*,08.proxy*' --settings native,default
    .venv/bin/python benchmarks/robustness.py --list
    .venv/bin/python benchmarks/robustness.py --seeds 5 --json results.json

Options: ``--seeds K`` (seeds 0..K-1), ``--claims PATTERN`` (comma-separated fnmatch patterns on
claim names), ``--settings native,avx2,default`` (``avx512`` too; unsupported ones are skipped
with a note), ``--full`` (full-mode budgets), ``--json [FILE]``, ``--cache DIR``, ``--list``.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import fnmatch
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

FULL = False  # set by the worker from --full: the notebooks' full-mode budgets instead of the fast ones


# -- the registry -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    name: str
    notebook: str
    kind: str
    """"exact" (an oracle with a float tolerance: seed 0 only), "statistical" (every seed) or "text" (a statement
    of a markdown cell, not asserted: measured on every seed, not counted in the exit status)."""
    check: Callable[[int], Any]
    """seed -> bool, or (bool, value): value is the asserted quantity (for the margin column)."""
    asserts: str
    """What the notebook asserts, in one line."""
    modes: tuple[str, ...] = ("fast", "full")
    """The modes in which the notebook asserts it (a claim the fast budget cannot support is full-mode only)."""


CLAIMS: list[Claim] = []


def claim(name: str, notebook: str, asserts: str, kind: str = "statistical", modes: tuple[str, ...] = ("fast", "full")):
    def register(fn):
        CLAIMS.append(Claim(name, notebook, kind, fn, asserts, modes))
        return fn
    return register


_CACHE: dict[tuple, Any] = {}


def _memo(fn):
    """One experiment per (function, seed) in this process: the claims of one cell share it."""
    def wrapped(seed: int):
        key = (fn.__name__, seed, FULL)
        if key not in _CACHE:
            _CACHE[key] = fn(seed)
        return _CACHE[key]
    wrapped.__name__ = fn.__name__
    return wrapped


def _torch():
    import torch
    torch.set_num_threads(1)
    return torch


# -- 01: the MDP and its occupancy ------------------------------------------------------------------------------

@_memo
def _nb01(seed: int) -> dict[str, float]:
    torch = _torch()
    from minirl.data import empirical_occupancy
    from minirl.envs import TabularVectorEnv, gridworld
    from minirl.mdp import occupancy_measure, policy_evaluation, soft_value_iteration
    from minirl.policies import TabularPolicy
    from minirl.rollout import rollout

    layout = "\nS..#...\n.#.#.#.\n.#...#.\n.###.#.\n.....#G\n"
    mdp = gridworld(layout, slip=0.1, gamma=0.95, step_reward=-0.02, goal_reward=1.0)
    S, A = mdp.n_states, mdp.n_actions
    n_demos = 20_000 if FULL else 2_000
    expert = soft_value_iteration(mdp, alpha=0.02).pi
    rho_E = occupancy_measure(mdp, expert)
    J_E = mdp.rho0 @ policy_evaluation(mdp, expert)
    H = 200
    mdp_H = mdp.replace(horizon=H)
    demos = rollout(TabularVectorEnv(mdp_H, num_envs=500, hide_reward=True), TabularPolicy.from_table(expert),
                    n_demos, seed=seed)
    discount = mdp.gamma ** torch.arange(demos.horizon)
    G = demos.masked_sum(demos.info["gold_reward"] * discount)
    se = G.std().item() / np.sqrt(len(G))
    rho_hat = empirical_occupancy(demos, S, A, mdp.gamma)
    rho_E_H = occupancy_measure(mdp_H, expert, horizon=H)
    live = ~mdp.terminal
    tv = 0.5 * (1 - mdp.gamma) * np.abs(rho_hat[live] - rho_E_H[live]).sum()
    d = rho_hat.sum(1, keepdims=True)
    pi_hat = np.divide(rho_hat, d, out=np.full_like(rho_hat, 1 / A), where=d > 0)
    tv_pi = 0.5 * (1 - mdp.gamma) * np.abs(occupancy_measure(mdp, pi_hat) - rho_E).sum()
    return {"z": abs(G.mean().item() - J_E) / se, "tv": float(tv), "tv_pi": float(tv_pi)}


@claim("01.exact_solvers", "01 cells 5, 8, 10, 13, 23, 27", "VI = PI = linear solve (1e-6); soft-VI gap bounds; "
       "sum rho = 1/(1-gamma); same occupancy -> same value for any R; pi* optimal under scaling and shaping", "exact")
def _(seed):
    from minirl.envs import gridworld
    from minirl.mdp import occupancy_measure, policy_evaluation, policy_iteration, soft_value_iteration, value_iteration

    mdp = gridworld("\nS..#...\n.#.#.#.\n.#...#.\n.###.#.\n.....#G\n", slip=0.1, gamma=0.95, step_reward=-0.02,
                    goal_reward=1.0)
    S, A = mdp.n_states, mdp.n_actions
    V, _, pi = value_iteration(mdp)
    V_pi, _ = policy_iteration(mdp)
    err = max(np.abs(V - V_pi).max(), np.abs(V - policy_evaluation(mdp, pi)).max())
    ok = err < 1e-6
    for alpha in (1.0, 0.1, 0.01):
        gap = soft_value_iteration(mdp, alpha=alpha).V - V
        ok = ok and gap.min() >= -1e-8 and gap.max() <= alpha * np.log(A) / (1 - mdp.gamma) + 1e-8
    expert = soft_value_iteration(mdp, alpha=0.02).pi
    rho = occupancy_measure(mdp, expert)
    ok = ok and np.isclose(rho.sum(), 1 / (1 - mdp.gamma))
    d = rho.sum(1, keepdims=True)
    pi_rec = np.divide(rho, d, out=np.full_like(rho, 1 / A), where=d > 0)
    rng = np.random.default_rng(0)
    for _ in range(3):
        R = rng.normal(size=(S, A)) * ~mdp.terminal[:, None]
        ok = ok and np.isclose(mdp.rho0 @ policy_evaluation(mdp, expert, R), mdp.rho0 @ policy_evaluation(mdp, pi_rec, R),
                               atol=1e-8)
    Phi = rng.normal(size=S) * ~mdp.terminal
    for R in (3.0 * mdp.R, mdp.R + mdp.gamma * mdp.P @ Phi - Phi[:, None]):
        ok = ok and np.abs(value_iteration(mdp, R=R)[0] - policy_evaluation(mdp, pi, R)).max() < 1e-6
    return bool(ok), float(err)


@claim("01.mc_return_within_4se", "01 cell 18", "|mean discounted gold return - J(expert)| < 4 se")
def _(seed):
    z = _nb01(seed)["z"]
    return z < 4, z


@claim("01.occupancy_tv", "01 cell 20", "TV(Monte-Carlo occupancy, exact) < 0.03")
def _(seed):
    tv = _nb01(seed)["tv"]
    return tv < 0.03, tv


@claim("01.pi_hat_tv", "01 cell 25", "TV(rho of the policy read off rho_hat, rho_E) < 0.05")
def _(seed):
    tv = _nb01(seed)["tv_pi"]
    return tv < 0.05, tv


# -- 02: compounding error, tightrope and CartPole ---------------------------------------------------------------

@_memo
def _nb02_tightrope(seed: int):
    from minirl.experiments.compounding_error import CompoundingErrorConfig, run_compounding_error
    if FULL:
        config = CompoundingErrorConfig(seed=100_000 * seed)
    else:
        config = CompoundingErrorConfig(n_seeds=2, n_eval=2000, dagger_iterations=4, dagger_episodes=50,
                                        seed=100_000 * seed)
    return config, run_compounding_error(config)


@claim("02.bc_exponent", "02 cell 10", "|BC's fitted log-log exponent - 2| < 0.3")
def _(seed):
    e = _nb02_tightrope(seed)[1].summary()["bc_exponent"]
    return abs(e - 2) < 0.3, e


@claim("02.dagger_exponent", "02 cell 10", "|DAgger's fitted exponent - 1| < 0.3")
def _(seed):
    e = _nb02_tightrope(seed)[1].summary()["dagger_exponent"]
    return abs(e - 1) < 0.3, e


@claim("02.mc_vs_exact_4se", "02 cell 10", "Monte Carlo within 4 se of the exact mistakes, every seed and T")
def _(seed):
    r = _nb02_tightrope(seed)[1]
    z = max(float((np.abs(r.mistakes[m] - r.exact[m]) / r.mistakes_se[m]).max()) for m in ("bc", "dagger"))
    return z < 4, z


@claim("02.epsilon_measured", "02 cell 10", "per-state error on own training data = eps within 1e-3")
def _(seed):
    config, r = _nb02_tightrope(seed)
    err = max(float(np.abs(r.epsilon_measured[m] - config.epsilon).max()) for m in ("bc", "dagger"))
    return err < 1e-3, err


@claim("02.bc_over_dagger", "02 cell 10", "BC / DAgger mistakes at the longest T > 10")
def _(seed):
    s = _nb02_tightrope(seed)[1].summary()
    ratio = s["bc"][-1] / s["dagger"][-1]
    return ratio > 10, ratio


@_memo
def _nb02_cartpole(seed: int):
    from minirl.experiments.cartpole_imitation import CartPoleImitationConfig, run_cartpole_imitation
    if FULL:
        config = CartPoleImitationConfig(n_seeds=6, seed=1_000_000 * seed)
    else:
        config = CartPoleImitationConfig(n_demos=(1, 2, 4, 8), dagger_iterations=8, n_eval=10, n_seeds=6,
                                         seed=1_000_000 * seed)
    cp = run_cartpole_imitation(config)
    ret = {m: cp.returns[m].mean(0) for m in ("bc", "dagger")}
    return cp, ret, float(cp.expert_return.mean())


@claim("02.cartpole_round1_is_bc", "02 cell 15", "DAgger round 1 = BC with one demonstration (returns equal)")
def _(seed):
    cp = _nb02_cartpole(seed)[0]
    return bool(np.allclose(cp.returns["dagger"][:, 0], cp.returns["bc"][:, 0]))


@claim("02.cartpole_one_clip_fails", "02 cell 15", "BC from one 20-step clip < 0.75 x expert return (mean of 6 reps)")
def _(seed):
    _, ret, expert = _nb02_cartpole(seed)
    return ret["bc"][0] < 0.75 * expert, ret["bc"][0] / expert


@claim("02.cartpole_bc_enough_labels", "02 cell 15", "BC at the largest budget >= 0.95 x expert return")
def _(seed):
    _, ret, expert = _nb02_cartpole(seed)
    return ret["bc"][-1] >= 0.95 * expert, ret["bc"][-1] / expert


@claim("02.cartpole_dagger_enough_labels", "02 cell 15", "DAgger at the largest budget >= 0.95 x expert return")
def _(seed):
    _, ret, expert = _nb02_cartpole(seed)
    return ret["dagger"][-1] >= 0.95 * expert, ret["dagger"][-1] / expert


@claim("02.cartpole_train_error", "02 cell 15", "both learners' training error <= 0.05 (mean over seeds)")
def _(seed):
    cp = _nb02_cartpole(seed)[0]
    err = max(float(cp.train_error[m].mean(0).max()) for m in ("bc", "dagger"))
    return err <= 0.05, err


# -- 03: f-divergences, exact and on CartPole --------------------------------------------------------------------

@_memo
def _nb03_oracle(seed: int):
    torch = _torch()
    from minirl.algos.exact_imitation import (ExactImitationConfig, divergence_gradient, exact_occupancy,
                                              reward_gradient, train_exact)
    from minirl.divergences import DIVERGENCES, REWARD_RULES
    from minirl.envs import gridworld
    from minirl.mdp import TabularMDP, soft_value_iteration
    from minirl.policies import TabularPolicy

    rng = np.random.default_rng(0)
    S, A = 5, 3
    random_mdp = TabularMDP(P=rng.dirichlet(np.ones(S), size=(S, A)), R=rng.normal(size=(S, A)),
                            rho0=rng.dirichlet(np.ones(S)), gamma=0.9)
    grid_mdp = gridworld("S...\n.#..\n...G", slip=0.1, gamma=0.9)
    oracle = {}
    for mdp_name, (mdp, alpha) in {"R": (random_mdp, 0.5), "G": (grid_mdp, 0.3)}.items():
        rho_demo = exact_occupancy(mdp, torch.tensor(soft_value_iteration(mdp, alpha).pi))
        learner = TabularPolicy(mdp.n_states, mdp.n_actions, init_scale=1.0,
                                generator=torch.Generator().manual_seed(1)).double()
        for name, rule in REWARD_RULES.items():
            (grad_div,) = divergence_gradient(mdp, learner, rho_demo, rule.divergence)
            (grad_pg,) = reward_gradient(mdp, learner, rho_demo, name)
            cosine = torch.nn.functional.cosine_similarity(grad_pg.flatten(), -grad_div.flatten(), dim=0).item()
            oracle[mdp_name, name] = (cosine, (grad_pg + grad_div).abs().max().item())
    rho_demo = exact_occupancy(random_mdp, torch.tensor(soft_value_iteration(random_mdp, 0.5).pi))
    steps = 500 if FULL else 300
    histories = {name: train_exact(random_mdp, TabularPolicy(S, A).double(), rho_demo,
                                   ExactImitationConfig(divergence=name, steps=steps, lr=0.1)) for name in DIVERGENCES}
    return oracle, histories


@claim("03.table_and_rewards", "03 cells 3, 5", "D_f = the closed forms (1e-12); r(h) = u f'(u) - f(u) = the table's "
       "closed forms (1e-10); published variants a constant / a function apart", "exact")
def _(seed):
    torch = _torch()
    from minirl.divergences import DIVERGENCES, REWARD_RULES, f_divergence, js, kl

    gen = torch.Generator().manual_seed(0)
    p = torch.rand(6, generator=gen, dtype=torch.float64); p /= p.sum()
    q = torch.rand(6, generator=gen, dtype=torch.float64); q /= q.sum()
    closed = {"airl": kl(q, p), "gail": 2 * js(p, q), "fairl": kl(p, q)}
    err = max(float((f_divergence(n, p, q) - closed[n]).abs()) for n in DIVERGENCES)
    h = torch.linspace(-4, 4, 161, dtype=torch.float64)
    u = h.exp()
    closed_r = {"airl": h - 1, "gail": torch.log1p(u) - math.log(2), "fairl": u}
    for n, div in DIVERGENCES.items():
        err = max(err, float((div.reward(h) - (u * div.f_prime(u) - div.f(u))).abs().max()),
                  float((div.reward(h) - closed_r[n]).abs().max()))
    derived = {n: REWARD_RULES[n].reward(h) for n in DIVERGENCES}
    ok = err < 1e-10 and torch.allclose(REWARD_RULES["gail_minus_log1m_d"].reward(h) - derived["gail"],
                                        torch.full_like(h, math.log(2)))
    ok = ok and torch.allclose(REWARD_RULES["airl_logit"].reward(h) - derived["airl"], torch.ones_like(h))
    ok = ok and all((REWARD_RULES[n].reward(h) - derived[d]).std() > 0.1 for n, d in (("gail_log_d", "gail"),
                                                                                      ("fairl_h_exp_h", "fairl")))
    return bool(ok), err


@claim("03.derived_rules_are_the_gradient", "03 cell 9", "derived rewards: max |PG + grad D_f| < 1e-9", "exact")
def _(seed):
    oracle = _nb03_oracle(0)[0]
    err = max(oracle[m, n][1] for m in "RG" for n in ("airl", "gail", "fairl"))
    return err < 1e-9, err


@claim("03.constant_apart_rules", "03 cell 9", "constant-apart rules: exact without termination, off (> 1e-2) with it",
       "exact")
def _(seed):
    oracle = _nb03_oracle(0)[0]
    names = ("gail_minus_log1m_d", "airl_logit")
    ok = all(oracle["R", n][1] < 1e-9 and oracle["G", n][1] > 1e-2 for n in names)
    ok = ok and oracle["R", "gail_log_d"][1] > 1e-2 and oracle["G", "gail_log_d"][1] > 1e-2
    return ok and oracle["R", "fairl_h_exp_h"][0] < 0, oracle["R", "fairl_h_exp_h"][0]


@claim("03.exact_game_converges", "03 cell 11", "each exact game: own divergence < 1e-3 x initial; all three < 1e-3",
       "exact")
def _(seed):
    histories = _nb03_oracle(0)[1]
    worst = 0.0
    ok = True
    for name, hist in histories.items():
        first, last = hist[0][f"divergence/{name}"], hist[-1][f"divergence/{name}"]
        others = max(hist[-1][f"divergence/{n}"] for n in histories)
        ok = ok and first > 1.0 and last < 1e-3 * first and others < 1e-3
        worst = max(worst, others)
    return ok, worst


@_memo
def _nb03_modes(seed: int):
    from minirl.experiments.f_divergence import FDivergenceConfig, run_f_divergence
    return run_f_divergence(FDivergenceConfig(steps=500 if FULL else 300))


@claim("03.mode_seeking_vs_covering", "03 cell 14 (and 07 cell 3)",
       "std AIRL < GAIL < FAIRL; AIRL one mode (reverse KL log 2 +- 0.01, |mean| 2 +- 0.02); FAIRL's moments; "
       "each wins its own divergence", "exact")
def _(seed):
    modes = _nb03_modes(0)
    fairl, gail, airl = modes["fairl"], modes["gail"], modes["airl"]
    ok = (airl["std"] < gail["std"] < fairl["std"] and abs(airl["reverse_kl"] - math.log(2)) < 0.01
          and abs(abs(airl["mean"]) - 2.0) < 0.02 and abs(fairl["mean"]) < 0.02
          and abs(fairl["std"] - math.sqrt(4.25)) < 0.03 and fairl["forward_kl"] < airl["forward_kl"]
          and airl["reverse_kl"] < min(fairl["reverse_kl"], gail["reverse_kl"])
          and gail["js"] <= min(fairl["js"], airl["js"]) + 1e-6 and airl["std"] < 0.5 * fairl["std"])
    return ok, abs(airl["reverse_kl"] - math.log(2))


@_memo
def _nb03_cartpole(seed: int) -> dict[tuple[str, bool], dict[str, float]]:
    torch = _torch()
    import gymnasium as gym
    from minirl.algos.adversarial import AdversarialConfig, AdversarialImitation
    from minirl.envs import HideReward
    from minirl.experiments.ppo_experts import CARTPOLE_CONFIG, evaluate_policy
    from minirl.experts import CartPoleExpert
    from minirl.policies import MLPPolicy, ValueMLP
    from minirl.rollout import rollout

    demos = rollout(gym.make_vec("CartPole-v1", num_envs=4, vectorization_mode="sync"), CartPoleExpert(), 4,
                    seed=100 + seed, deterministic=True)
    untrained = evaluate_policy("CartPole-v1", MLPPolicy(4, 2, seed=seed), 10)
    runs = [(d, a) for d in ("gail", "fairl", "airl") for a in (False, True)] if FULL else \
        [("airl", False), ("airl", True)]
    out = {}
    for divergence, absorbing in runs:
        torch.manual_seed(seed)
        policy, value_fn = MLPPolicy(4, 2, seed=seed), ValueMLP(4, seed=seed)
        envs = gym.make_vec("CartPole-v1", num_envs=8, vectorization_mode="sync", wrappers=[HideReward])
        trainer = AdversarialImitation(envs, policy, value_fn, demos, AdversarialConfig(
            divergence=divergence, absorbing=absorbing, ppo=replace(CARTPOLE_CONFIG, seed=seed), seed=seed))
        hist = trainer.train(60_000 if FULL else 30_000)
        envs.close()
        out[divergence, absorbing] = {"return": evaluate_policy("CartPole-v1", policy, 10),
                                      "mean_reward": float(np.mean([r["reward/mean"] for r in hist[-10:]])),
                                      "untrained": untrained}
    return out


@claim("03.airl_survival_bias", "03 cell 19", "AIRL without the absorbing state: return < 30")
def _(seed):
    r = _nb03_cartpole(seed)["airl", False]["return"]
    return r < 30, r


@claim("03.airl_reward_negative", "03 cell 19", "AIRL without the absorbing state: mean reward < 0")
def _(seed):
    r = _nb03_cartpole(seed)["airl", False]["mean_reward"]
    return r < 0, r


@claim("03.absorbing_removes_bias", "03 cell 19", "AIRL with the absorbing state: return > 100 and > 5x without")
def _(seed):
    res = _nb03_cartpole(seed)
    with_abs, no_abs = res["airl", True]["return"], res["airl", False]["return"]
    return with_abs > 100 and with_abs > 5 * no_abs, with_abs


@claim("03.gail_absorbing_learns", "03 cell 19", "GAIL with the absorbing state: return > 2 x the untrained learner's",
       modes=("full",))
def _(seed):
    r = _nb03_cartpole(seed)["gail", True]
    return r["return"] > 2 * r["untrained"], r["return"] / r["untrained"]


@claim("03.fairl_gail_survive", "03 cell 18", "GAIL and FAIRL reach high returns (> 250) with and without the "
       "absorbing state", "text", modes=("full",))
def _(seed):
    res = _nb03_cartpole(seed)
    worst = min(res[d, a]["return"] for d in ("gail", "fairl") for a in (False, True)) / 500
    return worst > 0.5, worst


# -- 04: AIRL's reward transfers ------------------------------------------------------------------------------

@_memo
def _nb04(seed: int):
    """The notebook's run: 8 seeds x 100 rounds (full: 12 x 300); sweep seed k moves them to 8k .. 8k + 7."""
    from minirl.experiments.reward_transfer import RewardTransferConfig, make_transfer_mdps, run_reward_transfer
    n = 12 if FULL else 8
    config = RewardTransferConfig(rounds=300 if FULL else 100, n_seeds=n, seed=n * seed)
    result = run_reward_transfer(config)
    original = make_transfer_mdps()[0]
    return result, int(np.argmax(original.R[:, 0]))


def _ratio(run, method, key):
    return run[method][key] / run["expert"][key]


def _share(runs, condition):
    return float(np.mean([condition(run) for run in runs]))


@claim("04.every_seed_airl_transfers", "04 cell 10",
       "every seed: AIRL >= 0.9 x optimal in the original and mirrored worlds, argmax g = goal")
def _(seed):
    result, goal = _nb04(seed)
    worst = min(min(_ratio(r, "airl", "return_original"), _ratio(r, "airl", "return_mirrored")) for r in result["runs"])
    return worst >= 0.9 and all(int(np.argmax(r["airl"]["learned_reward"])) == goal for r in result["runs"]), worst


@claim("04.every_seed_bc", "04 cell 10", "every seed: BC >= 0.95 x optimal in the original world, < 0.2 mirrored")
def _(seed):
    runs = _nb04(seed)[0]["runs"]
    worst = max(_ratio(r, "bc", "return_mirrored") for r in runs)
    return min(_ratio(r, "bc", "return_original") for r in runs) >= 0.95 and worst < 0.2, worst


@claim("04.every_seed_gail_flatter", "04 cell 10", "every seed: spread of GAIL's reward < 0.5 x AIRL's")
def _(seed):
    runs = _nb04(seed)[0]["runs"]
    worst = max(np.ptp(r["gail"]["learned_reward"]) / np.ptp(r["airl"]["learned_reward"]) for r in runs)
    return worst < 0.5, worst


@claim("04.mean_airl_behind_wall", "04 cell 10", "mean over seeds: AIRL behind the wall >= 0.8 x optimal, >= BC + 0.1")
def _(seed):
    result = _nb04(seed)[0]
    e, a, b = (result[m]["return_changed"] for m in ("expert", "airl", "bc"))
    return a >= 0.8 * e and a >= b + 0.1 * e, a / e


@claim("04.share_airl_beats_gail_behind_wall", "04 cell 10", "share of seeds where AIRL beats GAIL behind the wall >= 0.5")
def _(seed):
    runs = _nb04(seed)[0]["runs"]
    v = _share(runs, lambda r: r["airl"]["return_changed"] > r["gail"]["return_changed"])
    return v >= 0.5, v


@claim("04.mean_airl_correlation", "04 cell 10", "mean over seeds: corr(AIRL's g, true) > 0.45 and > GAIL's + 0.1")
def _(seed):
    result = _nb04(seed)[0]
    a, g = result["airl"]["reward_correlation"], result["gail"]["reward_correlation"]
    return a > 0.45 and a > g + 0.1, a - g


@claim("04.share_gail_mirrored_beats_bc", "04 cell 10", "share of seeds where GAIL mirrored > 5 x BC mirrored >= 0.5")
def _(seed):
    runs = _nb04(seed)[0]["runs"]
    v = _share(runs, lambda r: r["gail"]["return_mirrored"] > 5 * r["bc"]["return_mirrored"])
    return v >= 0.5, v


@claim("04.share_gail_peaks_on_goal", "04 cell 10", "share of seeds where GAIL's reward peaks on the goal >= 0.5",
       modes=("full",))
def _(seed):
    result, goal = _nb04(seed)
    v = _share(result["runs"], lambda r: int(np.argmax(r["gail"]["learned_reward"])) == goal)
    return v >= 0.5, v


# -- 05: the token MDP, SFT vs DAgger on sort, SFT on markov ----------------------------------------------------

@_memo
def _nb05_generate(seed: int) -> bool:
    torch = _torch()
    import gymnasium as gym
    from llmtrack.models import build_model
    from llmtrack.pipelines.recipe import make_pipeline_task
    from llmtrack.policy import LMPolicy
    from llmtrack.rollout import generate
    from minirl.rollout import rollout

    sort = make_pipeline_task("sort")
    policy = LMPolicy(build_model("nano", sort.vocab_size, seed=seed), device="cpu")
    prompt = sort.sample_prompts(1, seed)[0]
    n = 8
    batched = generate(policy, [prompt] * n, sort.max_new_tokens, generator=torch.Generator().manual_seed(1 + seed))
    envs = gym.vector.SyncVectorEnv([lambda: sort.token_mdp(prompts=[prompt]) for _ in range(n)])
    stepped = rollout(envs, policy, n, seed=seed, generator=torch.Generator().manual_seed(1 + seed))
    err = (batched.log_probs[batched.mask] - stepped.log_probs[stepped.mask]).abs().max().item() \
        if torch.equal(batched.mask, stepped.mask[:, : batched.horizon]) else math.inf
    same = torch.equal(batched.actions[batched.mask], stepped.actions[stepped.mask]) if math.isfinite(err) else False
    return same and err < 1e-5, err


@claim("05.generate_is_rollout", "05 cell 11", "generate = stepping the TokenMDP (same tokens, log-probs within 1e-5)",
       "exact")
def _(seed):
    return _nb05_generate(seed)


@claim("05.markov_optimum_identity", "05 cell 9", "log pi*(y|x) - log pi_ref(y|x) = R(x,y)/beta - log Z(x) on 2000 "
       "samples (atol 1e-4)", "exact")
def _(seed):
    _torch()
    from minirl.estimators import sequence_log_prob
    from llmtrack.pipelines.recipe import make_pipeline_task

    markov = make_pipeline_task("markov")
    y = markov.demonstrations(2000, seed=seed)
    P = y.obs.shape[1] - y.horizon
    lhs = sequence_log_prob(markov.expert, y) - sequence_log_prob(markov.base, y)
    rhs = markov.gold_reward(y).double() / markov.beta - markov.log_partition(y.obs[:, :P])
    err = float((lhs - rhs).abs().max())
    return err < 1e-4, err


@_memo
def _nb05_sort_rep(rep: int):
    """One repetition of the notebook's SFT-vs-DAgger run (the notebook runs repetitions 0, 1, 2)."""
    _torch()
    from minirl.algos.bc import BCConfig
    from llmtrack.pipelines import DistillConfig, EvalConfig, SFTConfig, distill, evaluate, pretrain_base, sft
    from llmtrack.pipelines.imitation import on_policy_dagger
    from llmtrack.pipelines.recipe import make_pipeline_task

    sort = make_pipeline_task("sort")
    if FULL:
        pretrain = dict(n_sequences=4000, bc=BCConfig(n_updates=800, batch_size=64, lr=3e-3, seed=rep))
        N, updates, n_eval = 200, 600, 1000
    else:
        pretrain = dict(n_sequences=4000, bc=BCConfig(n_updates=800, batch_size=32, lr=3e-3, seed=rep))
        N, updates, n_eval = 200, 200, 400
    base = pretrain_base(sort, "nano", seed=rep, **pretrain)
    sft_model = copy.deepcopy(base)
    sft(sft_model, sort, SFTConfig(n_demos=N, bc=BCConfig(n_updates=updates, batch_size=64, lr=1e-3, seed=rep),
                                   seed=1 + rep))
    dagger_model = copy.deepcopy(base)
    aggregate, _ = distill(dagger_model, sort, DistillConfig(n_demos=N // 5, seed=1 + 10 * rep, dagger=on_policy_dagger(
        n_iterations=4, episodes_per_iteration=N // 5, seed=2 + 10 * rep,
        bc=BCConfig(n_updates=updates // 4, batch_size=64, lr=1e-3, seed=rep))))
    P = aggregate.obs.shape[1] - aggregate.horizon
    written = aggregate.replace(actions=aggregate.obs[:, P:])
    off = ((written.actions != sort.expert.label(written)) & written.mask).any(1)
    models = {"base": base, "bc": sft_model, "dagger": dagger_model}
    metrics = {name: evaluate(model, sort, EvalConfig(n_sequences=n_eval, greedy=False, seed=12345 + rep))
               for name, model in models.items()}
    return metrics, int(off.sum())


def _nb05_sort(seed: int):
    """The notebook's three repetitions (0, 1, 2); sweep seed k moves them to 3k, 3k + 1, 3k + 2."""
    return [_nb05_sort_rep(3 * seed + i) for i in range(3)]


@claim("05.dagger_data_has_mistakes", "05 cell 15", "DAgger's aggregate (seed 0 of the three) holds a student mistake")
def _(seed):
    n = _nb05_sort(seed)[0][1]
    return n > 0, n


@claim("05.base_compounds", "05 cell 18", "every rep: base mistakes, longest list > 3 x shortest, no drop > 0.5")
def _(seed):
    worst, ok = math.inf, True
    for metrics, _ in _nb05_sort(seed):
        m = metrics["base"]["mistakes_by_length"]
        v = np.array([m[n] for n in sorted(m)])
        ok = ok and bool(v[-1] > 3 * v[0] and np.all(np.diff(v[1:]) > -0.5))
        worst = min(worst, v[-1] / max(v[0], 1e-12))
    return ok, worst


@claim("05.imitation_beats_base", "05 cell 18", "every rep, SFT and DAgger: accuracy > base + 0.1, mistakes < base")
def _(seed):
    worst, ok = math.inf, True
    for m, _ in _nb05_sort(seed):
        for n in ("bc", "dagger"):
            ok = ok and m[n]["expert_accuracy"] > m["base"]["expert_accuracy"] + 0.1 and m[n]["mistakes"] < m["base"]["mistakes"]
            worst = min(worst, m[n]["expert_accuracy"] - m["base"]["expert_accuracy"])
    return ok, worst


@claim("05.dagger_slips_more", "05 cell 18", "every rep: DAgger's slip rate > SFT's")
def _(seed):
    ratio = min(m["dagger"]["slip_rate"] / max(m["bc"]["slip_rate"], 1e-12) for m, _ in _nb05_sort(seed))
    return ratio > 1, ratio


@claim("05.dagger_recovers_sooner", "05 cell 18", "mean over the 3 reps: DAgger's mistakes after a first one < SFT's")
def _(seed):
    runs = [m for m, _ in _nb05_sort(seed)]
    d = np.mean([m["bc"]["mistakes_after_first"] for m in runs]) - np.mean([m["dagger"]["mistakes_after_first"]
                                                                              for m in runs])
    return d > 0, float(d)


@_memo
def _nb05_markov(seed: int):
    from minirl.algos.bc import BCConfig
    from llmtrack.pipelines import EvalConfig, SFTConfig, evaluate, pretrain_base, sft
    from llmtrack.pipelines.recipe import make_pipeline_task

    _torch()
    markov = make_pipeline_task("markov")
    if FULL:
        pre = dict(n_sequences=4000, bc=BCConfig(n_updates=800, batch_size=64, lr=3e-3, seed=seed))
        n_demos, updates, n_eval = 4000, 300, 1000
    else:
        pre = dict(n_sequences=2000, bc=BCConfig(n_updates=300, batch_size=32, lr=3e-3, seed=seed))
        n_demos, updates, n_eval = 2000, 200, 400
    m_base = pretrain_base(markov, "nano", seed=seed, **pre)
    m_sft = copy.deepcopy(m_base)
    sft(m_sft, markov, SFTConfig(n_demos=n_demos, bc=BCConfig(n_updates=updates, batch_size=64, lr=3e-4, seed=seed),
                                 seed=1 + seed))
    return {name: evaluate(model, markov, EvalConfig(n_sequences=n_eval, greedy=False, seed=12345 + seed))
            for name, model in (("base", m_base), ("sft", m_sft), ("pi_ref", markov.base))}


@claim("05.sft_closer_both_ways", "05 cell 21",
       "SFT's KL < 0.5 x base's and 4 se below it, both directions; below pi_ref's")
def _(seed):
    kl = _nb05_markov(seed)
    ok, worst = True, math.inf
    for d in ("forward_kl", "reverse_kl"):
        b, s = kl["base"][d], kl["sft"][d]
        ok = ok and s < 0.5 * b and b - s > 4 * (kl["base"][f"{d}_se"] + kl["sft"][f"{d}_se"]) and s < kl["pi_ref"][d]
        worst = min(worst, s / b)
    return ok, worst


# -- 06: reward models, the pipeline, PPO on gold ---------------------------------------------------------------

@_memo
def _nb06_noise(seed: int):
    from minirl.algos.reward_model import RewardModelConfig
    from llmtrack.experiments.reward_noise import RewardNoiseConfig, run_reward_noise, summarize_reward_noise

    _torch()
    if FULL:
        config = RewardNoiseConfig(noises=(0.0, 0.2, 0.4), seeds=(3 * seed, 3 * seed + 1, 3 * seed + 2))
    else:
        config = RewardNoiseConfig(fast=True, seeds=(seed,), noises=(0.0, 0.4),
                                   transformer=RewardModelConfig(n_updates=60, lr=1e-3, batch_size=32))
    rows = run_reward_noise(config)
    acc = {(e["head"], e["objective"], e["noise"]): e["accuracy"] for e in summarize_reward_noise(rows)}
    heads, objectives, noises = ("transformer", "linear"), config.objectives, config.noises
    drop = {h: float(np.mean([acc[h, o, min(noises)] - acc[h, o, max(noises)] for o in objectives])) for h in heads}
    gap = max(abs(acc[h, "classification", p] - acc[h, "bt", p]) for h in heads for p in noises)
    clean = min(acc[h, o, 0.0] for h in heads for o in objectives)
    return {"drop": drop, "gap": gap, "clean": clean}


@claim("06.rm_clean_beats_chance", "06 cell 6", "every reward model at noise 0: held-out accuracy > 0.65")
def _(seed):
    v = _nb06_noise(seed)["clean"]
    return v > 0.65, v


@claim("06.linear_head_noise_robust", "06 cell 6", "accuracy lost to noise: linear head < transformer head",
       modes=("full",))
def _(seed):
    d = _nb06_noise(seed)["drop"]
    return d["linear"] < d["transformer"], d["transformer"] - d["linear"]


@claim("06.objective_moves_less_than_noise", "06 cell 6", "largest |classification - BT| < smallest noise drop")
def _(seed):
    r = _nb06_noise(seed)
    margin = min(r["drop"].values()) - r["gap"]
    return margin > 0, margin


@claim("06.cls_is_bt_plus_ridge", "06 cell 8", "|L_cls(2v) - L_BT(v) - ridge| < eps^4 < ridge", "statistical")
def _(seed):
    torch = _torch()
    from minirl.algos.reward_model import bradley_terry_loss, classification_loss
    g = torch.Generator().manual_seed(seed)
    va, vb = torch.randn(2, 1000, generator=g, dtype=torch.float64)
    worst = 0.0
    ok = True
    for eps in (0.2, 0.1, 0.05):
        rest = classification_loss(2 * eps * va, 2 * eps * vb) - bradley_terry_loss(eps * va, eps * vb)
        ridge = ((eps * va + eps * vb) ** 2).mean() / 8
        ok = ok and bool(abs(rest - ridge) < eps ** 4 < ridge)
        worst = max(worst, float(abs(rest - ridge) / eps ** 4))
    return ok, worst


def _markov_base(seed: int):
    from minirl.algos.bc import BCConfig
    from llmtrack.pipelines import pretrain_base
    from llmtrack.pipelines.recipe import TASK_TRAINING, make_pipeline_task
    task = make_pipeline_task("markov")
    t = TASK_TRAINING["markov"]
    return task, pretrain_base(task, "nano", "gpt2", seed, t["pretrain_sequences"],
                               BCConfig(n_updates=t["pretrain_updates"], batch_size=64, lr=3e-3, seed=seed))


@_memo
def _nb06_advantages(seed: int):
    torch = _torch()
    from minirl.algos.ppo import sequence_advantages
    from llmtrack.pipelines.rlhf import KLPenalisedReward
    from llmtrack.rollout import generate

    task, base = _markov_base(0)  # the notebook's base model (seed 0); the seed moves the prompts and samples
    beta, G = task.beta, 4
    g = torch.Generator().manual_seed(seed)
    prompts = [p for p in task.sample_prompts(8, g) for _ in range(G)]
    batch = generate(task.expert, prompts, task.max_new_tokens, generator=g)
    r = KLPenalisedReward(task.gold_reward, task.base, beta)(batch)
    adv = {e: sequence_advantages(r, batch.mask, G, e)[:, 0].view(-1, G) for e in ("reinforce", "rloo")}
    P = batch.obs.shape[1] - batch.horizon
    beta_log_z = beta * task.log_partition(batch.obs[:, :P])
    spread = (beta_log_z - beta_log_z.mean()).view(-1, G)
    batch_lm = generate(base, prompts, task.max_new_tokens, generator=g)
    r_lm = KLPenalisedReward(task.gold_reward, task.base, beta)(batch_lm)
    rloo, grpo = (sequence_advantages(r_lm, batch_lm.mask, G, e)[:, 0].view(-1, G) for e in ("rloo", "grpo"))
    return {"rloo_at_opt": float(adv["rloo"].abs().max()),
            "reinforce_vs_log_z": float((adv["reinforce"].double() - spread).abs().max()),
            "same_sign": bool(torch.equal(torch.sign(rloo), torch.sign(grpo))),
            "zero_sum": float(max(rloo.sum(1).abs().max(), grpo.sum(1).abs().max()))}


@claim("06.frontier_identities", "06 cell 3", "identity I (1e-7); the frontier falls with beta; bound II exact (1e-9), "
       "met only at beta", "exact")
def _(seed):
    from llmtrack.tasks.answer_key import expected_gold_reward, optimal_frontier
    from llmtrack.pipelines.recipe import make_pipeline_task

    _torch()
    task = make_pipeline_task("markov")
    beta = task.beta
    frontier = optimal_frontier(task, [beta * f for f in (0.5, 0.6, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 8.0)])
    err = max(abs(r["kl_to_ref"] - (r["gold_reward"] / r["beta"] - r["log_partition"])) for r in frontier)
    ok = err < 1e-7 and np.all(np.diff([r["gold_reward"] for r in frontier]) < 0) \
        and np.all(np.diff([r["kl_to_ref"] for r in frontier]) < 0)
    (at_beta,) = [r for r in frontier if r["beta"] == beta]
    bound = beta * at_beta["log_partition"]
    for r in frontier:
        objective = r["gold_reward"] - beta * r["kl_to_ref"]
        ok = ok and objective <= bound + 1e-9 and (objective > bound - 1e-6) == (r["beta"] == beta)
    return bool(ok and expected_gold_reward(task, task.base) < bound), err


@claim("06.kl_reward_bookkeeping", "06 cell 10", "sum_t r_t = R - beta log pi*/pi_ref = beta log Z(x) on a batch "
       "from pi* (atol 1e-5)", "exact")
def _(seed):
    torch = _torch()
    from minirl.estimators import sequence_log_prob
    from llmtrack.pipelines.recipe import make_pipeline_task
    from llmtrack.pipelines.rlhf import KLPenalisedReward
    from llmtrack.rollout import generate

    task = make_pipeline_task("markov")
    g = torch.Generator().manual_seed(seed)
    prompts = [p for p in task.sample_prompts(8, g) for _ in range(4)]
    batch = generate(task.expert, prompts, task.max_new_tokens, generator=g)
    returns = KLPenalisedReward(task.gold_reward, task.base, task.beta)(batch).sum(1).double()
    P = batch.obs.shape[1] - batch.horizon
    log_ratio = sequence_log_prob(task.expert, batch) - sequence_log_prob(task.base, batch)
    err = max(float((returns - (task.gold_reward(batch).double() - task.beta * log_ratio)).abs().max()),
              float((returns - task.beta * task.log_partition(batch.obs[:, :P])).abs().max()))
    return err < 1e-5, err


@claim("06.rloo_zero_at_optimum", "06 cell 12", "RLOO advantages at pi* < 1e-5", "exact")
def _(seed):
    v = _nb06_advantages(seed)["rloo_at_opt"]
    return v < 1e-5, v


@claim("06.reinforce_keeps_log_z_spread", "06 cell 12", "REINFORCE advantages at pi* = beta log Z(x) - batch mean "
       "(atol 1e-4)", "exact")
def _(seed):
    v = _nb06_advantages(seed)["reinforce_vs_log_z"]
    return v < 1e-4, v


@claim("06.rloo_grpo_same_ranking", "06 cell 12", "on the base model: sign(RLOO) = sign(GRPO), zero-sum per prompt",
       "exact")
def _(seed):
    a = _nb06_advantages(seed)
    return a["same_sign"] and a["zero_sum"] < 1e-4, a["zero_sum"]


@_memo
def _nb06_pipeline(seed: int):
    from llmtrack.tasks.answer_key import optimal_frontier
    from llmtrack.pipelines.alignment import PipelineConfig, run_pipeline
    from llmtrack.pipelines.recipe import make_pipeline_task

    _torch()
    methods = ("sft", "dpo", "ppo", "grpo")
    config = PipelineConfig(methods=methods, seed=seed) if FULL else PipelineConfig.fast(methods=methods, seed=seed)
    result = run_pipeline(config)
    task = make_pipeline_task("markov")
    (at_beta,) = optimal_frontier(task, [task.beta])
    return result, task.beta * at_beta["log_partition"], config


def _clearly_above(rows, a, b, key="gold_reward", k=3.0):
    diff = rows[a][key] - rows[b][key]
    noise = rows[a][f"{key}_se"] + rows[b][f"{key}_se"]
    return diff > k * noise, diff / noise


@claim("06.rm_accuracy", "06 cell 16", "reward model held-out accuracy > 0.6")
def _(seed):
    v = _nb06_pipeline(seed)[0].reward_model["accuracy"]
    return v > 0.6, v


@claim("06.bound_II_sampled", "06 cells 16, 18", "every method: E[R] - beta KL <= beta E log Z + 4 se; KL(pi||pi*) > -3 se")
def _(seed):
    result, bound, _ = _nb06_pipeline(seed)
    beta = result.optimum["beta"]
    worst, ok = -math.inf, True
    for row in [result.base, *result.methods.values()]:
        slack = 4 * (row["gold_reward_se"] + beta * row["kl_to_ref_se"])
        excess = (row["gold_reward"] - beta * row["kl_to_ref"] - bound) / slack * 4  # in standard errors
        ok = ok and excess < 4 and row["kl_to_optimum"] > -3 * row["kl_to_optimum_se"]
        worst = max(worst, excess)
    return ok, worst


@claim("06.dpo_above_sft", "06 cell 16", "DPO's gold reward > SFT's by 3 se")
def _(seed):
    result = _nb06_pipeline(seed)[0]
    return _clearly_above({"base": result.base, **result.methods}, "dpo", "sft")


@claim("06.dpo_closer_to_optimum", "06 cell 16", "DPO's KL to pi* < base's by 2 se")
def _(seed):
    result = _nb06_pipeline(seed)[0]
    return _clearly_above({"base": result.base, **result.methods}, "base", "dpo", "kl_to_optimum", 2)


@claim("06.ppo_on_rm_above_base", "06 cell 16", "PPO on the RM: gold reward > base's by 1.5 (se + se)")
def _(seed):
    result = _nb06_pipeline(seed)[0]
    return _clearly_above({"base": result.base, **result.methods}, "ppo", "base", k=1.5)


@claim("06.grpo_on_rm_above_base", "06 cell 16", "GRPO on the RM: gold reward > base's by 1.5 (se + se)")
def _(seed):
    result = _nb06_pipeline(seed)[0]
    return _clearly_above({"base": result.base, **result.methods}, "grpo", "base", k=1.5)


@_memo
def _nb06_gold(seed: int):
    from minirl.algos.ppo import PPOConfig
    from llmtrack.tasks.answer_key import sampled_point
    from llmtrack.pipelines.rlhf import RLHFConfig, train_rlhf

    result, bound, config = _nb06_pipeline(seed)
    task, base = _markov_base(seed)
    out = {}
    for advantage in ("gae", "rloo", "grpo") if FULL else ("gae",):
        G_rl = 1 if advantage == "gae" else 4
        policy = copy.deepcopy(base)
        rl = RLHFConfig(beta=task.beta, total_tokens=config.rl_tokens, n_prompts=64 // G_rl, group_size=G_rl,
                        seed=seed, ppo=PPOConfig(lr=3e-4, gamma=1.0, gae_lambda=0.95, n_epochs=4, n_minibatches=4,
                                                 anneal_lr=False, max_grad_norm=1.0, advantage=advantage))
        train_rlhf(policy, task, None, rl, reference=task.base)
        out[advantage] = sampled_point(policy, task, n=config.n_eval, seed=10_000 + seed)
    return out, result.base, bound, task.beta


@claim("06.rl_on_gold_rises", "06 cell 18", "PPO (GAE) on the gold reward: gold > base's by 3 se")
def _(seed):
    out, base, _, _ = _nb06_gold(seed)
    worst = min(_clearly_above({"x": row, "base": base}, "x", "base")[1] for row in out.values())
    return worst > 3, worst


@claim("06.rl_on_gold_towards_optimum", "06 cell 18", "PPO on gold: KL to pi* < base's by 2 se; bound II + 4 se")
def _(seed):
    out, base, bound, beta = _nb06_gold(seed)
    worst, ok = math.inf, True
    for row in out.values():
        above, z = _clearly_above({"x": row, "base": base}, "base", "x", "kl_to_optimum", 2)
        ok = ok and above and row["gold_reward"] - beta * row["kl_to_ref"] <= \
            bound + 4 * (row["gold_reward_se"] + beta * row["kl_to_ref_se"])
        worst = min(worst, z)
    return ok, worst


# -- 07: AfD's discriminator, SFT vs AfD ------------------------------------------------------------------------

def _discriminator_vs_exact(task, policy, demonstrator, rounds, seed=0):
    """Notebook 07's helper, with every seed offset by ``seed`` (the notebook's is seed 0)."""
    torch = _torch()
    from minirl.algos.adversarial import AdversarialConfig, AdversarialImitation
    from minirl.algos.ppo import PPOConfig
    from minirl.discriminators import SequenceDiscriminator
    from minirl.estimators import sequence_log_prob
    from llmtrack.pipelines.rlhf import ResponseSource
    from llmtrack.reward_model import LMRewardModel

    policy = copy.deepcopy(policy).add_value_head()
    demos = task.rollout(demonstrator, 2000, seed=5 + 10 * seed)
    source = ResponseSource(policy, task, n_prompts=256, seed=seed)
    config = AdversarialConfig(divergence="airl", reward="airl_logit", structured=False, lr=3e-3, disc_epochs=2,
                               disc_minibatches=4, ppo=PPOConfig(gamma=1.0), seed=seed)
    trainer = AdversarialImitation(source, policy, policy, demos, config,
                                   discriminator=SequenceDiscriminator(LMRewardModel.from_policy(policy, seed=seed)))
    held_out = task.rollout(policy, 1000, seed=7 + 10 * seed)
    h_star = sequence_log_prob(demonstrator, held_out) - sequence_log_prob(policy, held_out)
    held_demos = task.rollout(demonstrator, 1000, seed=8 + 10 * seed)
    h_star_demos = sequence_log_prob(demonstrator, held_demos) - sequence_log_prob(policy, held_demos)

    def correlation() -> float:
        with torch.no_grad():
            h = trainer.logits(held_out).double()
        return float(torch.corrcoef(torch.stack([h, h_star]))[0, 1])

    before = correlation()
    for _ in range(rounds):
        trainer.update_discriminator(source())
    bayes = 0.5 * float((h_star_demos > 0).double().mean() + (h_star < 0).double().mean())
    return {"before": before, "after": correlation(), "bayes_accuracy": bayes}


@_memo
def _nb07_disc_rep(rep: int):
    from minirl.algos.bc import BCConfig
    from llmtrack.pipelines import pretrain_base
    from llmtrack.pipelines.alignment import PipelineConfig
    from llmtrack.tasks import MarkovTask

    _torch()
    rounds = 30 if FULL else 12
    small = MarkovTask(n_words=8, branching=8, max_new_tokens=5, beta=0.5)
    small_base = pretrain_base(small, "nano", seed=rep, n_sequences=1000,
                               bc=BCConfig(n_updates=300, batch_size=64, lr=3e-3, seed=rep))
    task, base = _markov_base(rep)
    return (_discriminator_vs_exact(small, small_base, small.expert, rounds, rep),
            _discriminator_vs_exact(task, base, task.optimal_policy(PipelineConfig().demo_beta), rounds, rep))


def _nb07_disc(seed: int):
    """Means over the notebook's three seeds (0, 1, 2); sweep seed k moves them to 3k .. 3k + 2."""
    reps = [_nb07_disc_rep(3 * seed + i) for i in range(3)]
    mean = lambda i, key: float(np.mean([r[i][key] for r in reps]))  # noqa: E731
    return {"easy_after": mean(0, "after"), "easy_gain": mean(0, "after") - mean(0, "before"),
            "hard_after": mean(1, "after"),
            "bayes_ordered": all(r[1]["bayes_accuracy"] < r[0]["bayes_accuracy"] for r in reps),
            "bayes_gap": min(r[0]["bayes_accuracy"] - r[1]["bayes_accuracy"] for r in reps)}


@claim("07.disc_learns_log_ratio", "07 cell 7", "mean over 3 seeds, small task: corr(h, h*) after > 0.5, gain > 0.3")
def _(seed):
    d = _nb07_disc(seed)
    return d["easy_after"] > 0.5 and d["easy_gain"] > 0.3, d["easy_after"]


@claim("07.disc_weaker_when_close", "07 cell 7", "mean over 3 seeds: corr on the pipeline task < small task's - 0.2")
def _(seed):
    d = _nb07_disc(seed)
    return d["hard_after"] < d["easy_after"] - 0.2, d["easy_after"] - d["hard_after"]


@claim("07.close_distributions_less_separable", "07 cell 7", "every seed: accuracy of sign(h*), pipeline < small task")
def _(seed):
    d = _nb07_disc(seed)
    return d["bayes_ordered"], d["bayes_gap"]


@_memo
def _nb07_pipeline_rep(rep: int):
    from llmtrack.pipelines.alignment import PipelineConfig, run_pipeline
    _torch()
    methods = ("sft", "afd")
    config = PipelineConfig(methods=methods, seed=rep) if FULL else PipelineConfig.fast(methods=methods, seed=rep)
    r = run_pipeline(config)
    return {"base": r.base, **r.methods}


FWD, REV = "forward_kl_to_demonstrator", "reverse_kl_to_demonstrator"


def _nb07_pipeline(seed: int):
    """Means over the notebook's three seeds of {method: {key: value}}, and the per-seed rows."""
    reps = [_nb07_pipeline_rep(3 * seed + i) for i in range(3)]
    means = {m: {k: float(np.mean([r[m][k] for r in reps])) for k in (FWD, REV)} for m in ("base", "sft", "afd")}
    return means, reps


@claim("07.sft_approaches_demonstrator", "07 cell 11", "mean over 3 seeds: SFT's forward and reverse KL < base's - 0.1")
def _(seed):
    m, _ = _nb07_pipeline(seed)
    gain = min(m["base"][k] - m["sft"][k] for k in (FWD, REV))
    return gain > 0.1, gain


@claim("07.sft_forward_below_afd", "07 cell 11", "mean over 3 seeds: SFT's forward KL < AfD's")
def _(seed):
    m, _ = _nb07_pipeline(seed)
    d = m["afd"][FWD] - m["sft"][FWD]
    return d > 0, d


@claim("07.sft_reverse_below_afd", "07 cell 11", "mean over 3 seeds: SFT's reverse KL < AfD's")
def _(seed):
    m, _ = _nb07_pipeline(seed)
    d = m["afd"][REV] - m["sft"][REV]
    return d > 0, d


@claim("07.sft_keeps_entropy", "07 cell 11", "every seed: |SFT's entropy/token - base's| < 0.1")
def _(seed):
    _, reps = _nb07_pipeline(seed)
    d = max(abs(r["sft"]["entropy_per_token"] - r["base"]["entropy_per_token"]) for r in reps)
    return d < 0.1, d


# -- 08 (cells 0-10): Best-of-N exactly, the bag-of-words proxy, RAFT ------------------------------------------

@claim("08.bon_exact_vs_bound", "08 cell 4", "exact KL <= bound; gold rises with N; KL(N=256) < 0.8 bound", "exact")
def _(seed):
    from llmtrack.pipelines.best_of_n import exact_best_of_n
    from llmtrack.tasks import MarkovTask
    _torch()
    rows = exact_best_of_n(MarkovTask(n_words=4, max_new_tokens=3, branching=3, seed=0), [1, 2, 4, 8, 16, 64, 256])
    gold = [r["gold_reward"] for r in rows]
    ok = all(r["kl"] <= r["kl_bound"] + 1e-9 for r in rows) and all(b > a for a, b in zip(gold, gold[1:]))
    return ok and rows[-1]["kl"] < 0.8 * rows[-1]["kl_bound"], rows[-1]["kl"] / rows[-1]["kl_bound"]


@claim("08.bon_monte_carlo_4se", "08 cell 4", "sampled Best-of-N KL within 4 se + 1e-3 of the exact KL (N = 2, 4, 16, 64)")
def _(seed):
    torch = _torch()
    from llmtrack.pipelines.best_of_n import best_of_n_distributions, exact_best_of_n, generate_best_of_n
    from llmtrack.tasks import MarkovTask

    tiny = MarkovTask(n_words=4, max_new_tokens=3, branching=3, seed=0)
    reps = 2000 if FULL else 300
    worst = 0.0
    for row in exact_best_of_n(tiny, [2, 4, 16, 64]):
        n = row["n"]
        table = best_of_n_distributions(tiny, n)
        prompts = tiny.prompt_support()[0]
        winners = generate_best_of_n(tiny.base, tiny, [p for p in prompts for _ in range(reps)], n, generator=seed)
        log_ratio = []
        for i, (responses, p, q) in enumerate(table):
            index = {tuple(a[m].tolist()): j for j, (a, m) in enumerate(zip(responses.actions, responses.mask))}
            won = winners[torch.arange(i * reps, (i + 1) * reps)]
            j = torch.tensor([index[tuple(a[m].tolist())] for a, m in zip(won.actions, won.mask)])
            log_ratio.append((q[j] / p[j]).log())
        log_ratio = torch.cat(log_ratio)
        mean, se = float(log_ratio.mean()), float(log_ratio.std()) / math.sqrt(len(log_ratio))
        worst = max(worst, (abs(mean - row["kl"]) - 1e-3) / se)
    return worst < 4, worst


def _proxy_curve(pref_seed: int):
    from minirl.algos.reward_model import RewardModelConfig
    from llmtrack.pipelines.best_of_n import exact_best_of_n
    from llmtrack.reward_model import bag_of_tokens_proxy
    from llmtrack.tasks import MarkovTask

    _torch()
    small = MarkovTask(n_words=8, max_new_tokens=4, branching=8, seed=0)
    bag = bag_of_tokens_proxy(small, small.preferences(50, noise=0.3, seed=pref_seed),
                              RewardModelConfig(n_updates=300, lr=0.05))
    rows = exact_best_of_n(small, [2 ** k for k in range(21)], bag)
    return rows, np.array([r["proxy_reward"] for r in rows]), np.array([r["gold_reward"] for r in rows])


@claim("08.proxy_example", "08 cell 6", "the proxy of preference seed 1: |KL - bound| < 0.01 (N = 2..64), proxy rises, "
       "gold peaks inside and falls > 0.5, Gao fit alpha, beta > 0, R^2 > 0.9", "exact")
def _(seed):
    from minirl.scaling_laws import fit_gao
    rows, proxy_r, gold_r = _proxy_curve(1)
    fit = fit_gao([r["kl"] for r in rows], gold_r - gold_r[0], "bon")
    peak = int(gold_r.argmax())
    ok = (max(abs(r["kl"] - r["kl_bound"]) for r in rows[1:7]) < 0.01 and bool(np.all(np.diff(proxy_r) > 0))
          and 0 < peak < len(rows) - 1 and gold_r[peak] - gold_r[-1] > 0.5 and fit.alpha > 0 and fit.beta > 0
          and fit.r2 > 0.9)
    return ok, float(gold_r[peak] - gold_r[-1])


@_memo
def _nb08_proxy_sweep(seed: int):
    """The notebook's 16 preference seeds (1 .. 16); sweep seed k moves them to 16k + 1 .. 16k + 16."""
    falls, rises = [], True
    for pref_seed in range(16 * seed + 1, 16 * seed + 17):
        _, proxy_r, gold_r = _proxy_curve(pref_seed)
        rises = rises and bool(np.all(np.diff(proxy_r) > 0))
        top = int(gold_r.argmax())
        falls.append(float(gold_r[top] - gold_r[-1]) if 0 < top < len(gold_r) - 1 else 0.0)
    return falls, rises


@claim("08.proxy_share_overoptimises", "08 cell 6", "of 16 proxies, 2 to 10 have gold peak inside and fall > 0.3; "
       "every proxy's Best-of-N score rises with N")
def _(seed):
    falls, rises = _nb08_proxy_sweep(seed)
    n = sum(f > 0.3 for f in falls)
    return rises and 2 <= n <= 10, n


@claim("08.oracle_bon_monotone", "08 cell 8", "pooled Best-of-N with the gold scorer: gold never falls with N")
def _(seed):
    from llmtrack.pipelines.best_of_n import best_of_n_curve
    task, base = _markov_base(0)
    rows = best_of_n_curve(base, task, None, [1, 2, 4, 8, 16, 32], n_prompts=128 if FULL else 32, seed=1 + seed)
    drops = [a["gold"] - b["gold"] for a, b in zip(rows, rows[1:])]
    return max(drops) <= 0, max(drops)


@_memo
def _nb08_raft(seed: int):
    from minirl.algos.bc import BCConfig
    from minirl.algos.raft import RAFTConfig
    from llmtrack.pipelines.best_of_n import train_raft
    from llmtrack.tasks.answer_key import sampled_point

    task, base = _markov_base(seed)
    policy = copy.deepcopy(base)
    raft = train_raft(policy, task, None, RAFTConfig(n_rounds=6 if FULL else 3, n=8, prompts_per_round=64,
                                                     bc=BCConfig(n_updates=30, batch_size=64, lr=1e-3, seed=seed),
                                                     seed=seed))
    n_eval = 2000 if FULL else 400
    return raft, sampled_point(base, task, n=n_eval, seed=5 + seed), sampled_point(policy, task, n=n_eval, seed=5 + seed)


@claim("08.raft_policy_improves", "08 cell 10", "RAFT: gold of the policy's samples, last round > first + 0.3")
def _(seed):
    raft = _nb08_raft(seed)[0]
    d = raft["raft/gold_sampled"][-1] - raft["raft/gold_sampled"][0]
    return d > 0.3, d


@claim("08.raft_winners_beat_samples", "08 cell 10", "every round: gold of the winners > gold of the samples")
def _(seed):
    raft = _nb08_raft(seed)[0]
    d = min(b - s for s, b in zip(raft["raft/gold_sampled"], raft["raft/gold_best"]))
    return d > 0, d


@claim("08.raft_moves_along_frontier", "08 cell 10", "RAFT vs pi_0: gold + 0.3 or more, and more KL to pi_ref")
def _(seed):
    _, before, after = _nb08_raft(seed)
    d = after["gold_reward"] - before["gold_reward"]
    return d > 0.3 and after["kl_to_ref"] > before["kl_to_ref"], d


# -- the worker: one setting, in this process -------------------------------------------------------------------

def _selected(patterns: str | None, full: bool = False) -> list[Claim]:
    mode = "full" if full else "fast"
    claims = [c for c in CLAIMS if mode in c.modes]
    if not patterns:
        return claims
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    return [c for c in claims if any(fnmatch.fnmatch(c.name, p) for p in pats)]


def _overoptimisation_hook(seeds: list[int], fast: bool) -> dict[str, Any]:
    """The over-optimisation experiment's own claims, if its module exposes them."""
    try:
        from llmtrack.experiments import overoptimisation
    except ImportError as err:  # pragma: no cover - the module is part of the library
        return {"note": f"llmtrack.experiments.overoptimisation not importable: {err}"}
    fn = getattr(overoptimisation, "overoptimisation_claims", None)
    if fn is None:
        return {"note": "llmtrack.experiments.overoptimisation has no overoptimisation_claims(seeds, fast) yet: skipped"}
    return {"claims": {name: list(ht) for name, ht in fn(seeds, fast=fast).items()}}


def worker(args: argparse.Namespace) -> dict[str, Any]:
    global FULL
    FULL = args.full
    torch = _torch()
    from tqdm.auto import tqdm
    try:  # the base models' "Loading weights" bars would drown the progress bar
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except ImportError:
        pass

    claims = _selected(args.claims, args.full)
    seeds = list(range(args.seeds))
    jobs = [(c, s) for c in claims for s in (seeds[:1] if c.kind == "exact" else seeds)]
    out: dict[str, Any] = {"capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
                           "claims": {}}
    bar = tqdm(jobs, desc=f"{args.setting} ({out['capability']})", file=sys.stderr, mininterval=5.0)
    start = time.perf_counter()
    for c, s in bar:
        bar.set_postfix_str(f"{c.name} seed {s}")
        t0 = time.perf_counter()
        try:
            r = c.check(s)
            held, value = (bool(r[0]), float(r[1])) if isinstance(r, tuple) else (bool(r), None)
            error = None
        except Exception as err:  # a crash is a claim not held, recorded with its message
            held, value, error = False, None, f"{type(err).__name__}: {err}"
        entry = out["claims"].setdefault(c.name, {"notebook": c.notebook, "kind": c.kind, "asserts": c.asserts,
                                                  "seeds": [], "held": [], "values": [], "errors": []})
        entry["seeds"].append(s)
        entry["held"].append(held)
        entry["values"].append(None if value is None or not math.isfinite(value) else value)
        if error:
            entry["errors"].append(f"seed {s}: {error}")
        entry.setdefault("seconds", 0.0)
        entry["seconds"] += time.perf_counter() - t0
    if args.overoptimisation and (not args.claims or any(fnmatch.fnmatch("08.overoptimisation", p.strip())
                                                         for p in args.claims.split(","))):
        t0 = time.perf_counter()
        out["overoptimisation"] = _overoptimisation_hook(seeds, fast=not args.full)
        out["overoptimisation"]["seconds"] = time.perf_counter() - t0
    out["wall_s"] = time.perf_counter() - start
    return out


# -- the runner: one subprocess per setting ---------------------------------------------------------------------

CAPABILITY_FLAGS = {"default": (), "avx2": ("avx2", "fma"), "avx512": ("avx512f", "avx512bw", "avx512vl", "avx512dq")}


def supported_settings() -> list[str]:
    """``native`` (unset ATEN_CPU_CAPABILITY) plus every kernel set the CPU's flags allow."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []))
    except OSError:
        flags = set()
    if not flags:  # not Linux: ask torch what the best one is, and assume the ones below it
        import torch
        best = torch.backends.cpu.get_cpu_capability().lower()
        order = ["default", "avx2", "avx512"]
        return ["native"] + order[: order.index(best) + 1] if best in order else ["native", "default"]
    return ["native"] + [name for name, need in CAPABILITY_FLAGS.items() if all(f in flags for f in need)]


def run_setting(setting: str, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("ATEN_CPU_CAPABILITY", None)
    if setting != "native":
        env["ATEN_CPU_CAPABILITY"] = setting
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg",
               HF_HUB_DISABLE_PROGRESS_BARS="1", TRANSFORMERS_VERBOSITY="error", MINIRL_FAST="0" if args.full else "1")
    # A cache per kernel set ("native" is whichever set torch picks, so it shares that one's).
    cap = setting if setting != "native" else _native_capability()
    env["LLMTRACK_CACHE"] = os.path.join(args.cache, cap)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--setting", setting, "--seeds", str(args.seeds),
           "--out", path] + (["--claims", args.claims] if args.claims else []) + (["--full"] if args.full else []) \
        + ([] if args.overoptimisation else ["--no-overoptimisation"])
    proc = subprocess.run(cmd, env=env)
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, json.JSONDecodeError):
        result = {"error": f"worker exited with {proc.returncode} and wrote no result"}
    finally:
        if os.path.exists(path):
            os.unlink(path)
    return result


def _native_capability() -> str:
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                         env={k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"},
                         capture_output=True, text=True)
    return out.stdout.strip().lower() or "native"


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"


def table(report: dict[str, Any]) -> str:
    settings = list(report["settings"])
    heads = [f"{s} ({report['settings'][s].get('capability', '?').lower()})" for s in settings]
    lines = ["| claim | notebook | kind | " + " | ".join(heads) + " | asserted quantity, min … max |",
             "|---|---|---|" + "---|" * len(settings) + "---|"]
    names = []
    for s in settings:
        for name in report["settings"][s].get("claims", {}):
            if name not in names:
                names.append(name)
    for name in names:
        cells, values, meta = [], [], None
        for s in settings:
            entry = report["settings"][s].get("claims", {}).get(name)
            if entry is None:
                cells.append("–")
                continue
            meta = entry
            held, total = sum(entry["held"]), len(entry["held"])
            cells.append(f"{held}/{total}" + ("" if held == total else " ✗") + (" (error)" if entry["errors"] else ""))
            values += [v for v in entry["values"] if v is not None]
        rng = f"{_fmt(min(values))} … {_fmt(max(values))}" if values else ""
        lines.append(f"| `{name}` | {meta['notebook']} | {meta['kind']} | " + " | ".join(cells) + f" | {rng} |")
    over = {s: report["settings"][s].get("overoptimisation") for s in settings}
    over_claims = []
    for s, o in over.items():
        for name in (o or {}).get("claims", {}):
            if name not in over_claims:
                over_claims.append(name)
    for name in over_claims:
        cells = []
        for s in settings:
            ht = (over[s] or {}).get("claims", {}).get(name)
            cells.append("–" if ht is None else f"{ht[0]}/{ht[1]}")
        lines.append(f"| `08.overopt.{name}` | 08 cells 11–13 | statistical | " + " | ".join(cells) + " | |")
    notes = {o["note"] for o in over.values() if o and "note" in o}
    for note in sorted(notes):
        lines.append(f"\nOver-optimisation claims: {note}.")
    errors = [f"- `{name}` under {s}: {e}" for s in settings
              for name, entry in report["settings"][s].get("claims", {}).items() for e in entry["errors"]]
    if errors:
        lines += ["", "Errors (counted as not held):", *errors]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..K-1 per statistical claim (default 5)")
    p.add_argument("--claims", default=None, help="comma-separated fnmatch patterns on claim names (default all)")
    p.add_argument("--settings", default=None, help="comma-separated: native, default, avx2, avx512 (default: native "
                                                    "and every other kernel set the CPU supports)")
    p.add_argument("--full", action="store_true", help="the notebooks' full-mode budgets (slow)")
    p.add_argument("--json", nargs="?", const="-", default=None, help="write the report as JSON to FILE (or stdout)")
    p.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "minirl-robustness-cache"),
                   help="root of the per-setting base-model caches")
    p.add_argument("--list", action="store_true", help="list the claims and exit")
    p.add_argument("--no-overoptimisation", dest="overoptimisation", action="store_false",
                   help="skip the over-optimisation experiment's claims")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--setting", default="native", help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error("--seeds must be >= 1")

    if args.list:
        for c in _selected(args.claims, args.full):
            print(f"{c.name:40} {c.notebook:22} {c.kind:11} {c.asserts}")
        return 0
    if args.worker:
        result = worker(args)
        with open(args.out, "w") as f:
            json.dump(result, f)
        return 0

    available = supported_settings()
    if args.settings:
        wanted = [s.strip() for s in args.settings.split(",")]
    else:  # "native" is one of the kernel sets already: run the others beside it, not it twice
        native = _native_capability()
        wanted = [s for s in available if s != native]
    skipped = [s for s in wanted if s not in available]
    for s in skipped:
        print(f"setting {s!r} is not supported by this CPU (available: {', '.join(available)}): skipped", file=sys.stderr)
    settings = [s for s in wanted if s in available]
    if not _selected(args.claims, args.full):
        p.error(f"--claims {args.claims!r} matches no claim (see --list)")
    import torch
    report: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {_cpu_name()}, {os.cpu_count()} CPUs", "python": platform.python_version(),
        "torch": torch.__version__, "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
        "seeds": args.seeds, "mode": "full" if args.full else "fast", "skipped_settings": skipped, "settings": {}}
    for s in settings:
        report["settings"][s] = run_setting(s, args)
    print(table(report))
    if args.json == "-":
        print(json.dumps(report, indent=1))
    elif args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    failed = any(not all(e["held"]) for r in report["settings"].values() for e in r.get("claims", {}).values()
                 if e["kind"] != "text")
    return 1 if failed or any("error" in r for r in report["settings"].values()) else 0


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
