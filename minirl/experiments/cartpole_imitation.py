"""BC vs DAgger on CartPole-v1 with a hand-written expert, compared at equal expert labels.

Seed §2.4 in a continuous world. Theorem 2.1 says behaviour cloning, trained to a small error
on the *expert's* states, can still go wrong on its *own* states: each mistake leads further
from anything the demonstrations showed, so mistakes can compound quadratically in the
horizon. Theorem 2.3 says DAgger avoids this by letting the learner drive, having the
expert label the states the learner actually visits, and refitting on the aggregate; its
mistakes grow only linearly. Here the horizon is CartPole-v1's 500 steps, the expert is
:class:`~minirl.experts.CartPoleExpert` (return 500 from every start), and the question is
how many expert-labelled states each method needs to balance the pole for the full episode:

* BC: ``n`` expert demonstrations, n in ``n_demos``; return against n.
* DAgger: round 1 rolls the expert in (beta = 1, so it is BC on that round's episodes), later
  rounds mostly the learner (beta = ``beta_decay``^(i-1)); return after each round.

Both are also placed on one axis, the number of states the expert labelled: the cost both pay.

Short demonstrations. Every episode the expert labels -- a BC demonstration or a DAgger
roll-out -- is cut at ``episode_steps`` (default 20 steps, the first 0.4 s of a 10 s episode),
while the learners are evaluated on the full 500 steps. With whole 500-step demonstrations
BC balances the pole from one or two of them and every curve is flat after its first point;
short clips make the expert's data scarce and close to the start states, so the learner must
generalise to the rest of the episode -- the setting of Theorem 2.1.

Fair comparison. Per repetition, both learners start from the same initial weights and fit
their data with the same :class:`~minirl.algos.bc.BCConfig`, and DAgger's k-th labelled
episode starts from the same initial state as BC's k-th demonstration (same env seed), so
DAgger after round i and BC with i demonstrations (one episode per round) differ only in who
drove. Round 1 of DAgger *is* BC with one demonstration. The learner acts greedily (argmax)
in DAgger's roll-ins and in evaluation, as the deterministic expert does. Both fits must
converge -- the ``train error`` column checks it: DAgger refits warm-started, so it accumulates
``dagger_iterations`` times more gradient steps than one BC fit, and an under-trained BC (e.g.
``lr=1e-2`` with 300 updates for this MLP) makes DAgger look better for that reason alone.

MDP\\R. The learner sees CartPole through :class:`~minirl.envs.HideReward` only: its batches
carry no rewards. Returns are summed from ``info["gold_reward"]`` by the evaluation code.
We also report the per-step mistake rate along the learner's own evaluation roll-outs,
l(pi) / T of survey eq. 1 with the expert as the oracle.

What happens (default config, checked on 10 seeds): no DAgger advantage. With one 20-step
clip both learners fall within ~150 steps on most seeds. BC averages ~497 from 4 clips = 80
labelled states and 500 on every seed from 8 clips = 160; DAgger averages ~487 after 5 rounds
= 100 labels and >= 492 from 120 on. The two return curves lie within seed-to-seed noise of
each other, and from ~160 labels on BC's mistake rate along its own roll-outs is *lower*
(~3-5% vs ~7-10%). The expert keeps CartPole in a small region where the rule learned from a
few clips extrapolates well, so compounding error barely starts, while DAgger spends labels
on the states of its early, failing learners. The tabular ``compounding-error`` demo shows
the regime where the theorems bite.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv
from tqdm.auto import tqdm

from minirl.algos.bc import BCConfig, train_bc
from minirl.algos.dagger import DAggerConfig, train_dagger
from minirl.data import TrajectoryBatch
from minirl.envs import HideReward
from minirl.experts import CartPoleExpert
from minirl.policies import CategoricalPolicy, MLPPolicy, Policy
from minirl.rollout import episode_returns, rollout

__all__ = [
    "CartPoleImitationConfig",
    "CartPoleImitationResult",
    "run_cartpole_imitation",
    "make_cartpole_envs",
    "evaluate",
    "training_error",
]

METHODS = ("bc", "dagger")
ENV_ID = "CartPole-v1"
MAX_STEPS = 500  # CartPole-v1's time limit: the horizon the learners are evaluated on
_SEED_STRIDE = 10_000  # repetition k uses seed + k * _SEED_STRIDE
_EVAL_OFFSET = 5_000  # evaluation starts from env seeds never used for training data


@dataclass(frozen=True)
class CartPoleImitationConfig:
    """Settings of the CartPole BC-vs-DAgger experiment."""

    n_demos: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12)
    """Numbers of expert demonstrations BC is trained on (increasing; each a nested superset)."""
    episode_steps: int = 20
    """Length at which every expert-labelled episode (demo or DAgger roll-out) is cut; <= 500."""
    dagger_iterations: int = 12
    """DAgger rounds (round 1 rolls in the expert: it equals BC on that round's episodes)."""
    episodes_per_iteration: int = 1
    """Episodes collected and expert-labelled per DAgger round."""
    beta_decay: float = 0.5
    """DAgger roll-in: the expert acts with probability beta_decay^(i - 1) in round i."""
    n_eval: int = 20
    """Full-length (500-step) evaluation episodes per learner."""
    n_seeds: int = 3
    """Independent repetitions (demos, learner init, DAgger roll-outs, evaluation starts)."""
    seed: int = 0
    """Base seed; repetition k uses seed + 10000 k."""
    hidden: tuple[int, ...] = (32,)
    """Hidden layer sizes of the MLP learner, the same for BC and DAgger (() = a linear policy)."""
    bc: BCConfig = field(default_factory=lambda: BCConfig(n_updates=300, lr=0.1))
    """How both learners fit their data, to convergence (DAgger refits warm-started each round)."""
    progress: bool = False
    """Show a progress bar over (seed, point)."""

    def __post_init__(self) -> None:
        demos = tuple(self.n_demos)
        if not demos or any(int(n) != n or n < 1 for n in demos) or list(demos) != sorted(set(demos)):
            raise ValueError(f"n_demos: must be a non-empty increasing list of integers >= 1, got {self.n_demos}")
        if not 1 <= self.episode_steps <= MAX_STEPS:
            raise ValueError(f"episode_steps: must be in [1, {MAX_STEPS}], got {self.episode_steps}")
        for name in ("dagger_iterations", "episodes_per_iteration", "n_eval", "n_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"seed: must be >= 0 (gymnasium env seeds), got {self.seed}")
        if not 0.0 <= self.beta_decay <= 1.0:
            raise ValueError(f"beta_decay: must be in [0, 1], got {self.beta_decay}")
        if any(int(h) != h or h < 1 for h in self.hidden):
            raise ValueError(f"hidden: layer sizes must be integers >= 1, got {self.hidden}")
        # Training episodes use env seeds [s, s + count), evaluation [s + 5000, s + 5000 + n_eval).
        for name, count in (("n_demos", max(demos)), ("n_eval", self.n_eval),
                            ("dagger_iterations", self.dagger_iterations * self.episodes_per_iteration)):
            if count > _EVAL_OFFSET:
                raise ValueError(f"{name}: at most {_EVAL_OFFSET} episodes per repetition, got {count}")


@dataclass
class CartPoleImitationResult:
    """Measurements, indexed [seed, point]: points are ``n_demos`` for BC, rounds for DAgger."""

    config: CartPoleImitationConfig
    returns: dict[str, np.ndarray]
    """Mean 500-step return of the learner over ``n_eval`` episodes, (n_seeds, n_points)."""
    labelled_steps: dict[str, np.ndarray]
    """States the expert labelled to train that learner (cumulative for DAgger), (n_seeds, n_points)."""
    mistake_rate: dict[str, np.ndarray]
    """Fraction of the learner's evaluation steps where it disagrees with the expert, (n_seeds, n_points)."""
    train_error: dict[str, np.ndarray]
    """Fraction of the learner's own training states it gets wrong: how well it fit its data, (n_seeds, n_points)."""
    expert_return: np.ndarray
    """The expert's mean return on the same evaluation starts, (n_seeds,)."""
    wall_s: float

    @property
    def iterations(self) -> list[int]:
        return list(range(1, self.config.dagger_iterations + 1))

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict of means / stds over seeds. Same seed -> same dict, except ``wall_s``."""

        def stats(m: str) -> dict[str, list[float]]:
            return {"return_mean": self.returns[m].mean(0).round(2).tolist(),
                    "return_std": self.returns[m].std(0).round(2).tolist(),
                    "labelled_steps": self.labelled_steps[m].mean(0).round(1).tolist(),
                    "mistake_rate": self.mistake_rate[m].mean(0).round(5).tolist(),
                    "train_error": self.train_error[m].mean(0).round(5).tolist()}

        c = self.config
        return {
            "env": ENV_ID, "n_seeds": c.n_seeds, "episode_steps": c.episode_steps, "eval_steps": MAX_STEPS,
            "hidden": list(c.hidden),
            "expert_return": round(float(self.expert_return.mean()), 2),
            "bc": {"n_demos": list(c.n_demos), **stats("bc")},
            "dagger": {"iteration": self.iterations, "episodes_per_iteration": c.episodes_per_iteration,
                       **stats("dagger")},
            "wall_s": round(self.wall_s, 2),
        }

    def table(self) -> str:
        """A readable plain-text table: BC by demonstrations, DAgger by rounds, with label counts."""
        s, c = self.summary(), self.config
        header = f"{'labels':>7} | {'return':>16} {'mistakes/step':>13} {'train error':>11}"
        lines = [
            f"BC vs DAgger on {ENV_ID} (expert-labelled episodes cut at {c.episode_steps} steps, evaluation "
            f"over {MAX_STEPS}; MLP {c.hidden}; {c.n_seeds} seeds, mean +- std; expert return "
            f"{s['expert_return']:.1f})",
        ]
        for m, points, name in (("bc", s["bc"]["n_demos"], "BC demos"), ("dagger", s["dagger"]["iteration"], "DAgger it")):
            lines.append(f"{name:>9} {header}")
            d = s[m]
            for j, point in enumerate(points):
                lines.append(f"{point:>9} {d['labelled_steps'][j]:>7.0f} | {d['return_mean'][j]:>7.1f} +- "
                             f"{d['return_std'][j]:<6.1f} {d['mistake_rate'][j]:>13.4f} {d['train_error'][j]:>11.4f}")
        lines.append("labels: expert-labelled states (DAgger: cumulative, mean over seeds); mistakes/step: disagreement "
                     "with the expert along the learner's own evaluation roll-outs; train error: on its own "
                     f"training states. Wall time {self.wall_s:.1f} s")
        return "\n".join(lines)


def make_cartpole_envs(num_envs: int, max_episode_steps: int = MAX_STEPS) -> VectorEnv:
    """CartPole-v1 as the learner sees it: an MDP\\R (rewards hidden, gold reward in ``info``)."""
    return gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="sync", wrappers=[HideReward],
                        max_episode_steps=max_episode_steps)


def evaluate(envs: VectorEnv, policy: Policy, expert: CategoricalPolicy, n_episodes: int,
             seed: int) -> tuple[float, float]:
    """(mean gold return, per-step disagreement with the expert) over greedy roll-outs. Evaluation only."""
    batch = rollout(envs, policy, n_episodes, seed=seed, deterministic=True)
    returns = episode_returns(batch, "gold_reward")
    wrong = (batch.actions != expert.label(batch)) & batch.mask
    return float(returns.mean()), float(wrong.sum() / batch.mask.sum())


def training_error(learner: CategoricalPolicy, data: TrajectoryBatch) -> float:
    """Fraction of the real steps of ``data`` where the learner's greedy action differs from the label."""
    wrong = (learner.label(data) != data.actions) & data.mask
    return float(wrong.sum() / data.mask.sum())


def _one_seed(config: CartPoleImitationConfig, seed: int, bar: Any) -> dict[str, Any]:
    expert = CartPoleExpert()
    H, epi = config.episode_steps, config.episodes_per_iteration
    # Sub-env i of a vector env reset with seed s starts from env seed s + i.
    demo_envs = make_cartpole_envs(max(config.n_demos), H)
    dagger_envs = make_cartpole_envs(epi, H)
    eval_envs = make_cartpole_envs(config.n_eval)
    eval_seed = seed + _EVAL_OFFSET

    def new_learner() -> MLPPolicy:
        return MLPPolicy(4, 2, hidden=config.hidden, seed=seed)

    out: dict[str, Any] = {m: {"ret": [], "steps": [], "mistakes": [], "train_error": []} for m in METHODS}
    out["expert"] = evaluate(eval_envs, expert, expert, config.n_eval, eval_seed)[0]

    # BC: demos[:n] are the first n of one expert batch, episode k starting from env seed seed + k.
    all_demos = rollout(demo_envs, expert, max(config.n_demos), seed=seed, deterministic=True)
    for n in config.n_demos:
        demos = all_demos[:n]
        learner = new_learner()
        train_bc(learner, demos, config.bc)
        ret, mistakes = evaluate(eval_envs, learner, expert, config.n_eval, eval_seed)
        out["bc"]["ret"].append(ret)
        out["bc"]["steps"].append(demos.n_steps)
        out["bc"]["mistakes"].append(mistakes)
        out["bc"]["train_error"].append(training_error(learner, demos))
        bar.update()

    # DAgger: round i (0-based) runs episodes i * epi ... (i + 1) * epi - 1, same env seeds as BC's demos.
    def collect(policy: Policy, n: int, round_seed: int) -> TrajectoryBatch:
        return rollout(dagger_envs, policy, n, seed=seed + (round_seed - seed) * epi, deterministic=True)

    def on_iteration(i: int, policy: Policy, dataset: TrajectoryBatch) -> dict[str, float]:
        ret, mistakes = evaluate(eval_envs, policy, expert, config.n_eval, eval_seed)
        bar.update()
        return {"eval/return": ret, "eval/mistake_rate": mistakes, "eval/train_error": training_error(policy, dataset)}

    dagger_cfg = DAggerConfig(n_iterations=config.dagger_iterations, episodes_per_iteration=epi, beta0=1.0,
                              beta_decay=config.beta_decay, bc=config.bc, seed=seed)
    _, history = train_dagger(new_learner(), expert, collect, dagger_cfg, on_iteration=on_iteration)
    out["dagger"] = {"ret": history["eval/return"], "steps": history["data/steps"],
                     "mistakes": history["eval/mistake_rate"], "train_error": history["eval/train_error"]}
    for envs in (demo_envs, dagger_envs, eval_envs):
        envs.close()
    return out


def run_cartpole_imitation(config: CartPoleImitationConfig = CartPoleImitationConfig()) -> CartPoleImitationResult:
    """Run the experiment; see the module docstring. Deterministic given ``config.seed``."""
    start = time.perf_counter()
    n_points = {"bc": len(config.n_demos), "dagger": config.dagger_iterations}
    keys = ("ret", "steps", "mistakes", "train_error")
    fields = {k: {m: np.zeros((config.n_seeds, n_points[m])) for m in METHODS} for k in keys}
    expert_return = np.zeros(config.n_seeds)
    with tqdm(total=config.n_seeds * sum(n_points.values()), desc="cartpole imitation",
              disable=not config.progress) as bar:
        for k in range(config.n_seeds):
            out = _one_seed(config, config.seed + _SEED_STRIDE * k, bar)
            expert_return[k] = out["expert"]
            for m in METHODS:
                for key in fields:
                    fields[key][m][k] = out[m][key]
    return CartPoleImitationResult(config=config, returns=fields["ret"], labelled_steps=fields["steps"],
                                   mistake_rate=fields["mistakes"], train_error=fields["train_error"],
                                   expert_return=expert_return,
                                   wall_s=time.perf_counter() - start)
