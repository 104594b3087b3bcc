"""Reward recovery and transfer (Fu et al. 2017, in miniature): AIRL's reward survives new dynamics.

Seed §2.4 / docs/equations.md §4. On a gridworld whose true reward is state-only (1 per step spent
on the goal cell, 0 elsewhere), an expert acts soft-optimally. From its demonstrations we learn

    AIRL   g(s) in the structured discriminator  f = g(s) + gamma v(s') - v(s),  logit f - log pi
    GAIL   a discriminator h(s, a), reward r(h) = log(1 + e^h) - log 2
    BC     a policy, by maximum likelihood

Then the dynamics change: a wall cuts the expert's routes to the goal, leaving one gap on the
far side. Each learned reward is optimised by value iteration in the *changed* MDP and the
resulting policy is scored with the true reward; BC's policy is run there as it is.

Why AIRL transfers: at its optimum f recovers the expert's advantage, and because g may only
depend on the state, the dynamics-dependent part is pushed into the potential v, leaving
g = r + const (deterministic dynamics). GAIL's h(s, a) converges to log rho_demo / rho_pi ~ 0
once the policy imitates: a reward for "doing what the expert did *under the old dynamics*",
which says nothing about where to go when the old routes are closed.

The game is played in tabular form: the demonstrations are sampled trajectories (an empirical
occupancy over (s, a, s')), the learner's occupancy is exact (what infinitely many rollouts
would estimate), and the policy step is exact: each round the policy is the soft-optimal
(temperature 1) policy for the current reward, which is what AIRL's objective E[f - log pi]
asks for. The discriminators are the same classes the gymnasium trainer uses, with ``hidden=()``
(tables over one-hot states).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from minirl.algos.bc import BCConfig, train_bc
from minirl.algos.exact_imitation import exact_occupancy
from minirl.discriminators import AIRLDiscriminator, StepDiscriminator, discriminator_loss
from minirl.divergences import get_reward_rule
from minirl.envs import TabularVectorEnv, gridworld
from minirl.mdp import TabularMDP, policy_evaluation, soft_value_iteration, value_iteration
from minirl.policies import TabularPolicy
from minirl.rollout import rollout

__all__ = ["RewardTransferConfig", "RewardTransferResult", "make_transfer_mdps", "run_reward_transfer",
           "run_reward_transfer_once"]

ORIGINAL = """
S.....
......
......
......
......
.....G
"""
CHANGED = """
S.....
......
......
.#####
......
.....G
"""
"""The changed grid: a wall across the row above the goal, with a gap on the far (left) side."""


@dataclass(frozen=True)
class RewardTransferConfig:
    """Settings of the reward-transfer experiment."""

    gamma: float = 0.9
    """Discount of both MDPs."""
    expert_temperature: float = 0.1
    """The expert is soft-optimal at this temperature for the true reward (nearly deterministic)."""
    n_demos: int = 100
    """Expert trajectories, each ``demo_length`` steps from a uniformly random start cell."""
    demo_length: int = 30
    rounds: int = 300
    """Discriminator / policy rounds."""
    disc_steps: int = 10
    """Adam steps of the discriminator per round."""
    disc_lr: float = 0.05
    n_seeds: int = 1
    """Independent repetitions (seeds seed, seed + 1, ...): the table shows mean +- std."""
    progress: bool = False
    gail_temperature: float = 0.1
    """Entropy temperature of GAIL's policy step (AIRL's is 1 by construction: its reward is f - log pi)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma < 1.0:
            raise ValueError(f"gamma: must be in (0, 1), got {self.gamma}")
        for name in ("n_demos", "demo_length", "rounds", "disc_steps", "n_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not self.expert_temperature > 0 or not self.disc_lr > 0:
            raise ValueError("expert_temperature, disc_lr: must be > 0")


def _state_reward_mdp(layout: str, gamma: float) -> TabularMDP:
    """A grid whose goal is absorbing but not terminal, paying 1 per step spent there: r depends on s only."""
    grid = gridworld(layout, gamma=gamma)
    goal = np.flatnonzero(grid.terminal)
    R = np.zeros((grid.n_states, grid.n_actions))
    R[goal] = 1.0
    start = np.ones(grid.n_states) / grid.n_states  # every cell a start: the reward is identifiable everywhere
    return grid.replace(R=R, terminal=None, rho0=start)


def make_transfer_mdps(gamma: float = 0.9) -> tuple[TabularMDP, TabularMDP, TabularMDP]:
    """(original, walled, mirrored) gridworlds over the same cells.

    walled: the wall of ``CHANGED`` (its cells become unreachable; moving into one bumps).
    mirrored: the controls are reversed (up <-> down, left <-> right) -- every action now has
    another effect, as a disabled leg changes what a motor command does (Fu et al.'s ant).

    Both grids are built on the original's cells, so state ids agree and a reward learned in one
    can be used in the other: in the changed grid the wall cells become unreachable and moving
    into one bumps.
    """
    original = _state_reward_mdp(ORIGINAL, gamma)
    rows = ORIGINAL.strip().splitlines()
    cells = [(i, j) for i, r in enumerate(rows) for j, _ in enumerate(r)]
    walls = {(i, j) for i, r in enumerate(CHANGED.strip().splitlines()) for j, c in enumerate(r) if c == "#"}
    P = np.array(original.P)
    for k, cell in enumerate(cells):
        for a in range(original.n_actions):
            target = int(np.argmax(P[k, a]))
            if cells[target] in walls and cell not in walls:
                P[k, a] = 0.0
                P[k, a, k] = 1.0  # bump: stay put
    rho0 = np.array([0.0 if c in walls else 1.0 for c in cells])
    mirrored = original.replace(P=np.array(original.P)[:, [2, 3, 0, 1]])  # actions: up, right, down, left
    return original, original.replace(P=P, rho0=rho0 / rho0.sum()), mirrored


def _true_return(mdp: TabularMDP, pi: np.ndarray) -> float:
    """Expected discounted true return from the start distribution."""
    return float(mdp.rho0 @ policy_evaluation(mdp, pi))


def _optimise(mdp: TabularMDP, R: np.ndarray) -> np.ndarray:
    """The greedy policy of value iteration on a (learned) reward table R(s, a)."""
    return value_iteration(mdp, R)[2]


def _demonstrations(mdp: TabularMDP, config: RewardTransferConfig) -> tuple[Any, np.ndarray]:
    """Sampled expert trajectories, and their discounted empirical occupancy over (s, a, s'), normalised."""
    expert = soft_value_iteration(mdp, config.expert_temperature).pi
    envs = TabularVectorEnv(mdp.replace(horizon=config.demo_length), num_envs=config.n_demos)
    demos = rollout(envs, TabularPolicy.from_table(expert), config.n_demos, seed=config.seed)
    S, A = mdp.n_states, mdp.n_actions
    rho = np.zeros((S, A, S))
    s, a, m = demos.obs.numpy(), demos.actions.numpy(), demos.mask.numpy()
    for t in range(demos.horizon - 1):  # the last step's s' is not observed
        ok = m[:, t] & m[:, t + 1]
        np.add.at(rho, (s[ok, t], a[ok, t], s[ok, t + 1]), mdp.gamma ** t)
    return demos, expert, rho / rho.sum()


def _train(mdp: TabularMDP, rho_demo: np.ndarray, method: str, config: RewardTransferConfig) -> np.ndarray:
    """Play the adversarial game; return the learned reward table R(s, a) to transfer."""
    S, A = mdp.n_states, mdp.n_actions
    P = torch.as_tensor(np.array(mdp.P))
    s_idx, a_idx, s2_idx = torch.meshgrid(torch.arange(S), torch.arange(A), torch.arange(S), indexing="ij")
    s_idx, a_idx, s2_idx = s_idx.reshape(1, -1), a_idx.reshape(1, -1), s2_idx.reshape(1, -1)  # (1, S A S)
    done = torch.zeros_like(s_idx, dtype=torch.bool)
    w_demo = torch.as_tensor(rho_demo, dtype=torch.float32).reshape(1, -1)
    if method == "airl":
        disc = AIRLDiscriminator(S, discrete_obs=True, gamma=mdp.gamma, hidden=(), seed=config.seed)
    else:
        disc = StepDiscriminator(S, A, discrete_obs=True, discrete_actions=True, hidden=(), seed=config.seed)
    optimiser = torch.optim.Adam(disc.parameters(), lr=config.disc_lr)
    gail_reward = get_reward_rule("gail").reward

    def reward_table() -> torch.Tensor:
        with torch.no_grad():
            if method == "airl":
                return disc.reward(torch.arange(S))[:, None].expand(S, A)  # g(s), state-only
            return gail_reward(disc.logits(torch.arange(S)[:, None].expand(S, A), torch.arange(A)[None, :].expand(S, A)))

    pi = np.full((S, A), 1.0 / A)
    for _ in range(config.rounds):
        with torch.no_grad():
            pi_t = torch.as_tensor(pi)
            w_policy = (exact_occupancy(mdp, pi_t)[:, :, None] * P).reshape(1, -1).float()  # rho_pi(s, a) P(s'|s, a)
            log_pi = torch.log(pi_t)[s_idx, a_idx].float()
        for _ in range(config.disc_steps):
            h = disc.logits(s_idx, a_idx, s2_idx, done, log_pi)  # (1, S A S)
            loss = discriminator_loss(h, h, w_demo, w_policy)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        # The policy step: soft-optimal for the current reward (AIRL: f - log pi, i.e. temperature 1
        # on g up to shaping; GAIL: r(h) with the same temperature).
        temperature = 1.0 if method == "airl" else config.gail_temperature
        pi = soft_value_iteration(mdp.with_reward(reward_table().double().numpy()), temperature).pi
    return reward_table().double().numpy()


METHODS = ("expert", "airl", "gail", "bc")
COLUMNS = ("return_original", "return_changed", "return_mirrored", "reward_correlation")


class RewardTransferResult(dict):
    """Per-method metrics (mean over seeds) plus ``runs`` (one :func:`run_reward_transfer_once` dict per seed)."""

    def table(self) -> str:
        lines = ["method  return original  return walled  return mirrored  reward corr.",
                 "------  ---------------  -------------  ---------------  ------------"]
        for m in METHODS:
            cells = []
            for c in COLUMNS:
                runs = [run[m][c] for run in self["runs"] if c in run[m]]
                cells.append(f"{np.mean(runs):.3f} +- {np.std(runs):.3f}" if runs else "")
            lines.append(f"{m:>6}  {cells[0]:>15}  {cells[1]:>13}  {cells[2]:>15}  {cells[3]:>12}")
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        return {m: self[m] for m in METHODS} | {"n_seeds": len(self["runs"]), "wall_s": self["wall_s"]}


def run_reward_transfer(config: RewardTransferConfig = RewardTransferConfig()) -> RewardTransferResult:
    """:func:`run_reward_transfer_once` for seeds seed .. seed + n_seeds - 1, averaged per method and column."""
    from dataclasses import replace

    start = time.perf_counter()
    runs = [run_reward_transfer_once(replace(config, seed=config.seed + i, n_seeds=1)) for i in range(config.n_seeds)]
    out = RewardTransferResult(runs=runs, wall_s=time.perf_counter() - start)
    for m in METHODS:
        out[m] = {c: float(np.mean([run[m][c] for run in runs])) for c in COLUMNS if c in runs[0][m]}
        if "learned_reward" in runs[0][m]:
            out[m]["learned_reward"] = runs[0][m]["learned_reward"]
    return out


def run_reward_transfer_once(config: RewardTransferConfig = RewardTransferConfig()) -> dict[str, Any]:
    """The table of the issue: true return in the original and changed MDP for expert, AIRL, GAIL, BC.

    Returns a dict keyed by method, each with ``return_original`` and ``return_changed`` (expected
    discounted true return from a uniform start), and ``reward_correlation`` (Pearson, over the
    cells, of the learned reward with the true one: g(s) for AIRL, max_a r(h(s, a)) for GAIL).
    """
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    original, changed, mirrored = make_transfer_mdps(config.gamma)
    demos, expert, rho_demo = _demonstrations(original, config)
    true_r = original.R[:, 0]
    result: dict[str, Any] = {"expert": {
        "return_original": _true_return(original, value_iteration(original)[2]),
        "return_changed": _true_return(changed, value_iteration(changed)[2]),
        "return_mirrored": _true_return(mirrored, value_iteration(mirrored)[2]),
        "return_demonstrator": _true_return(original, expert),
    }}
    for method in ("airl", "gail"):
        R = _train(original, rho_demo, method, config)
        state_r = R.max(axis=1)
        result[method] = {
            "return_original": _true_return(original, _optimise(original, R)),
            "return_changed": _true_return(changed, _optimise(changed, R)),
            "return_mirrored": _true_return(mirrored, _optimise(mirrored, R)),
            "reward_correlation": float(np.corrcoef(state_r, true_r)[0, 1]),
            "learned_reward": state_r.tolist(),
        }
    bc = TabularPolicy(original.n_states, original.n_actions)
    train_bc(bc, demos, BCConfig(n_updates=300, lr=0.5, seed=config.seed))
    result["bc"] = {"return_original": _true_return(original, bc.table()),
                    "return_changed": _true_return(changed, bc.table()),
                    "return_mirrored": _true_return(mirrored, bc.table())}
    result["wall_s"] = time.perf_counter() - start
    return result
