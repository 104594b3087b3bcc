"""Imitation on gymnasium control tasks: BC, DAgger, GAIL, AIRL and FAIRL from a few demonstrations.

Seed §2.4. Every learner sees the task as an MDP\\R (:class:`~minirl.envs.HideReward`): its only
information about the goal is ``n_demos`` expert episodes (BC, and the adversarial methods), or
an expert it may query at any state (DAgger). The true return is measured by the evaluator.

    bc      maximum likelihood on the demonstrations (no env interaction)
    dagger  roll in the learner, the expert labels, refit (env steps = the states it labelled)
    gail / airl / fairl   :class:`~minirl.algos.adversarial.AdversarialImitation` on PPO, with the
            absorbing-state treatment of termination (``absorbing=True``; the survival bias)

Experts: CartPole-v1 has the hand-written :class:`~minirl.experts.CartPoleExpert` (500 from every
start); Pendulum-v1 gets a PPO expert trained here first (:func:`train_pendulum_expert`, about
80 s), whose mean action is its label. Learners are MLPs (categorical on CartPole, Gaussian on
Pendulum), evaluated greedily on env seeds training never used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from minirl.algos.adversarial import ALGORITHMS, AdversarialConfig, AdversarialImitation
from minirl.algos.bc import BCConfig, train_bc
from minirl.algos.dagger import DAggerConfig, train_dagger
from minirl.algos.ppo import PPOConfig
from minirl.envs import HideReward
from minirl.experiments.ppo_experts import CARTPOLE_CONFIG, PENDULUM_CONFIG, evaluate_policy, train_pendulum_expert
from minirl.experts import CartPoleExpert
from minirl.policies import GaussianPolicy, MLPPolicy, Policy, ValueMLP
from minirl.rollout import rollout

__all__ = ["ENVS", "ALGOS", "ImitateConfig", "ImitateResult", "run_imitation", "make_expert"]

ALGOS = ("bc", "dagger", *ALGORITHMS)
ENVS: dict[str, dict[str, Any]] = {
    "CartPole-v1": dict(total_steps=150_000, ppo=replace(CARTPOLE_CONFIG, lr=3e-4, ent_coef=0.01), expert_seed=None),
    "Pendulum-v1": dict(total_steps=300_000, ppo=PENDULUM_CONFIG, expert_seed=0),
}
"""Per-env defaults: adversarial env-step budget and the PPO inside. On CartPole the PPO learning rate is
3e-4, not the 1e-3 that trains an expert on the env's reward, with an entropy bonus of 0.01: against
a moving discriminator reward GAIL's return climbed to 500 and fell back to ~130 on 2 of 3 seeds at
1e-3 (100k steps), and without the bonus FAIRL's seed 0 collapsed to a policy that falls at once
(9.2 at 150k steps); with both, all three methods end at 448-500 on seeds 0-2."""
_DEMO_SEED, _EVAL_SEED = 100, 10_000


@dataclass(frozen=True)
class ImitateConfig:
    """One imitation run (``minirl demo imitate``)."""

    algo: str = "gail"
    """One of bc, dagger, gail, airl, fairl; or "all" for the five, one table and one figure."""
    env: str = "CartPole-v1"
    """CartPole-v1 or Pendulum-v1."""
    n_demos: int = 4
    """Expert episodes given to the learner (DAgger: its first round's roll-ins)."""
    total_steps: int | None = None
    """Adversarial methods' env-step budget (None = the env's default in ``ENVS``)."""
    absorbing: bool = True
    """Absorbing-state treatment of termination for the adversarial methods."""
    reward: str | None = None
    """Reward rule for the adversarial methods (None = derived from the divergence)."""
    n_eval: int = 10
    """Evaluation episodes."""
    eval_every: int = 10_000
    """Adversarial methods: evaluate every this many env steps (the learning curve)."""
    seed: int = 0
    n_seeds: int = 1
    """Repetitions (seeds seed, seed + 1, ...)."""
    progress: bool = False

    def __post_init__(self) -> None:
        if self.algo not in (*ALGOS, "all"):
            raise ValueError(f"algo: unknown algorithm {self.algo!r}; valid: {[*ALGOS, 'all']}")
        if self.env not in ENVS:
            raise ValueError(f"env: unknown env {self.env!r}; valid: {sorted(ENVS)}")
        for name in ("n_demos", "n_eval", "eval_every", "n_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.total_steps is not None and self.total_steps < 1:
            raise ValueError(f"total_steps: must be >= 1, got {self.total_steps}")

    @property
    def steps(self) -> int:
        return self.total_steps or ENVS[self.env]["total_steps"]


def make_expert(env: str) -> Policy:
    """CartPole: the hand-written controller. Pendulum: a PPO expert trained now (deterministic for its seed)."""
    if env == "CartPole-v1":
        return CartPoleExpert()
    return train_pendulum_expert(seed=ENVS[env]["expert_seed"]).policy


def _envs(env: str, n: int, hide: bool = True) -> gym.vector.VectorEnv:
    return gym.make_vec(env, num_envs=n, vectorization_mode="sync", wrappers=[HideReward] if hide else [])


def _learner(env: str, seed: int) -> tuple[Policy, ValueMLP]:
    probe = gym.make(env)  # only to read the spaces
    obs_space, act_space = probe.observation_space, probe.action_space
    probe.close()
    obs_dim = int(obs_space.shape[0])
    if isinstance(act_space, gym.spaces.Discrete):
        return MLPPolicy(obs_dim, int(act_space.n), seed=seed), ValueMLP(obs_dim, seed=seed)
    return GaussianPolicy(obs_dim, int(act_space.shape[0]), seed=seed), ValueMLP(obs_dim, seed=seed)


@dataclass
class ImitateResult:
    """Runs of one (algo, env) over seeds."""

    config: ImitateConfig
    runs: list[dict[str, Any]]
    expert_return: float

    def summary(self) -> dict[str, Any]:
        returns = [r["learner_return"] for r in self.runs]
        return {"algo": self.config.algo, "env": self.config.env, "n_demos": self.config.n_demos,
                "expert_return": self.expert_return, "learner_return": float(np.mean(returns)),
                "learner_return_std": float(np.std(returns)), "seeds": [r["seed"] for r in self.runs],
                "learner_returns": returns, "env_steps": int(np.mean([r["env_steps"] for r in self.runs])),
                "wall_s": float(np.mean([r["wall_s"] for r in self.runs])), "absorbing": self.config.absorbing,
                "curves": [r["curve"] for r in self.runs]}

    def table(self) -> str:
        s = self.summary()
        lines = ["algo    env           demos  expert  learner (mean +- std over seeds)  env steps  wall s",
                 "------  ------------  -----  ------  --------------------------------  ---------  ------",
                 f"{s['algo']:<6}  {s['env']:<12}  {s['n_demos']:>5}  {s['expert_return']:6.1f}  "
                 f"{s['learner_return']:16.1f} +- {s['learner_return_std']:<13.1f}  {s['env_steps']:>9}  "
                 f"{s['wall_s']:6.1f}"]
        return "\n".join(lines)


def _run_once(config: ImitateConfig, expert: Policy, seed: int) -> dict[str, Any]:
    torch.manual_seed(seed)
    demo_envs = _envs(config.env, config.n_demos, hide=False)
    demos = rollout(demo_envs, expert, config.n_demos, seed=_DEMO_SEED + 1000 * seed, deterministic=True)
    policy, value_fn = _learner(config.env, seed)
    curve: list[tuple[int, float]] = []
    eval_s, start = 0.0, time.perf_counter()

    def evaluate(steps: int) -> None:
        nonlocal eval_s
        t = time.perf_counter()
        curve.append((steps, evaluate_policy(config.env, policy, config.n_eval, seed=_EVAL_SEED)))
        eval_s += time.perf_counter() - t

    bc = BCConfig(n_updates=1000, lr=3e-3, batch_size=None, seed=seed)
    if config.algo == "bc":
        train_bc(policy, demos, bc)
        env_steps = 0
    elif config.algo == "dagger":
        steps = [0]

        def collect(learner: Policy, n: int, s: int):
            batch = rollout(_envs(config.env, n), learner, n, seed=s)
            steps[0] += batch.n_steps
            return batch

        # DAgger's refits are warm-started: 300 updates per round on the aggregate suffice.
        train_dagger(policy, expert, collect, DAggerConfig(n_iterations=4, episodes_per_iteration=config.n_demos,
                                                           bc=replace(bc, n_updates=300),
                                                           seed=_DEMO_SEED + 1000 * seed + 1), demos=demos)
        env_steps = steps[0]
    else:
        ppo: PPOConfig = replace(ENVS[config.env]["ppo"], seed=seed)
        trainer = AdversarialImitation(_envs(config.env, 8), policy, value_fn, demos, AdversarialConfig(
            divergence=config.algo, reward=config.reward, absorbing=config.absorbing, ppo=ppo, seed=seed))
        next_eval = [config.eval_every]

        def callback(record: dict[str, Any]) -> None:
            if record["env_steps"] >= next_eval[0]:
                evaluate(record["env_steps"])
                next_eval[0] += config.eval_every

        history = trainer.train(config.steps, callback=callback, progress=config.progress)
        env_steps = history[-1]["env_steps"]
    wall = time.perf_counter() - start - eval_s
    final = evaluate_policy(config.env, policy, config.n_eval, seed=_EVAL_SEED)
    curve.append((env_steps, final))
    return {"seed": seed, "learner_return": final, "env_steps": env_steps, "wall_s": wall, "curve": curve}


@dataclass
class ImitateTable:
    """``algo="all"``: one :class:`ImitateResult` per algorithm, on the same expert and seeds."""

    results: dict[str, ImitateResult]

    def summary(self) -> dict[str, Any]:
        return {algo: result.summary() for algo, result in self.results.items()}

    def table(self) -> str:
        lines = [next(iter(self.results.values())).table().splitlines()[0],
                 next(iter(self.results.values())).table().splitlines()[1]]
        lines += [result.table().splitlines()[2] for result in self.results.values()]
        return "\n".join(lines)


def run_imitation(config: ImitateConfig = ImitateConfig()) -> ImitateResult | ImitateTable:
    """Train ``config.algo`` on ``config.env`` from ``n_demos`` expert episodes, for ``n_seeds`` seeds."""
    expert = make_expert(config.env)
    expert_return = evaluate_policy(config.env, expert, config.n_eval, seed=_EVAL_SEED)
    algos = ALGOS if config.algo == "all" else (config.algo,)
    results = {}
    for algo in algos:
        algo_config = replace(config, algo=algo)
        runs = [_run_once(algo_config, expert, config.seed + k) for k in range(config.n_seeds)]
        results[algo] = ImitateResult(algo_config, runs, expert_return)
    return results[config.algo] if config.algo != "all" else ImitateTable(results)
