"""DAgger: dataset aggregation (Ross et al. 2011; survey Theorem 2.3; docs/equations.md §3).

    D <- D_demo
    for i = 1..N:
        roll out pi_i = beta_i pi* + (1 - beta_i) pi_hat_i           (the learner's own states)
        D_i = {(s, pi*(s)) : s visited}                             (the expert labels them)
        D <- D u D_i;  pi_hat_{i+1} <- BC on D                        (aggregate and refit)

Because the learner is trained on the states *it* visits, a mistake leads to states that
are in its data, with the expert's way back as label: mistakes grow as C + T eps instead
of BC's C + T^2 eps. DAgger needs an expert that can be queried at any state.

Everything goes through the shared protocols: ``rollout`` (any vector env, or a
llmtrack sampler with the same signature), ``expert.label(batch)`` and ``train_bc``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from tqdm.auto import tqdm

from minirl.algos.bc import BCConfig, train_bc
from minirl.checks import check_int, check_probability, check_seed
from minirl.data import TrajectoryBatch
from minirl.policies import Expert, MixturePolicy, Policy, check_same_actions

__all__ = ["DAggerConfig", "aggregate", "train_dagger"]

# collect(policy, n_episodes, seed) -> TrajectoryBatch: how DAgger gets the learner's own states.
Collector = Callable[[Policy, int, int], TrajectoryBatch]


@dataclass(frozen=True)
class DAggerConfig:
    """Hyperparameters of DAgger."""

    n_iterations: int = 10
    """Roll-out / label / refit rounds."""
    episodes_per_iteration: int = 20
    """Learner episodes collected and labelled each round."""
    beta0: float = 1.0
    """Probability that the expert acts in round 1's roll-in (Ross et al. use 1)."""
    beta_decay: float = 0.5
    """beta_i = beta0 * beta_decay^(i - 1): the expert's share of the roll-in fades out."""
    bc: BCConfig = field(default_factory=BCConfig)
    """How the learner is refit on the aggregated dataset each round (warm-started)."""
    seed: int = 0
    """Seeds the roll-outs (round i uses seed + i)."""
    progress: bool = False
    """Show a tqdm progress bar over rounds."""

    def __post_init__(self) -> None:
        check_int(self.n_iterations, "n_iterations", 1)
        check_int(self.episodes_per_iteration, "episodes_per_iteration", 1)
        check_probability(self.beta0, "beta0")
        check_probability(self.beta_decay, "beta_decay")
        if not isinstance(self.bc, BCConfig):
            raise ValueError(f"bc: must be a BCConfig, got {type(self.bc).__name__}")
        check_seed(self.seed)


def aggregate(dataset: TrajectoryBatch | None, visited: TrajectoryBatch, expert: Expert) -> TrajectoryBatch:
    """D <- D u {(s, pi*(s))}: label the visited states with the expert's actions and append."""
    # BEGIN SOLUTION
    labelled = visited.replace(actions=expert.label(visited), log_probs=None, rewards=None, values=None)
    return labelled if dataset is None else TrajectoryBatch.cat([dataset, labelled])  # docs/equations.md §3
    # END SOLUTION


def train_dagger(
    policy: Policy,
    expert: Expert,
    collect: Collector,
    config: DAggerConfig = DAggerConfig(),
    demos: TrajectoryBatch | None = None,
    on_iteration: Callable[[int, Policy, TrajectoryBatch], dict[str, float]] | None = None,
) -> tuple[TrajectoryBatch, dict[str, list[float]]]:
    """Train ``policy`` in place with DAgger.

    Args:
        policy: the learner (any trainable Policy).
        expert: labels every visited state (``expert.label``) and acts in the roll-in.
        collect: ``collect(behaviour_policy, n_episodes, seed) -> TrajectoryBatch``; e.g.
            ``lambda pi, n, seed: rollout(envs, pi, n, seed=seed)``.
        demos: optional initial expert demonstrations (D_demo); without them round 1's
            roll-in (beta0 = 1) plays that role.
        on_iteration: optional ``f(i, policy, dataset) -> metrics`` called after each refit,
            e.g. to evaluate the learner; its metrics join the history.
    Returns:
        (dataset, history): the aggregated labelled dataset and per-round metrics
        (``data/steps``, ``data/beta``, ``loss/bc`` and whatever ``on_iteration`` returns).
    """
    if demos is not None and demos.n_steps == 0:
        raise ValueError("demos: the demonstration set has no real steps")
    check_same_actions(policy, expert, "policy", "expert")  # the teacher's labels must be the student's actions
    dataset = demos
    history: dict[str, list[float]] = {"data/steps": [], "data/beta": [], "loss/bc": []}
    for i in tqdm(range(config.n_iterations), desc="DAgger", disable=not config.progress):
        beta = config.beta0 * config.beta_decay**i
        visited = collect(MixturePolicy(expert, policy, beta), config.episodes_per_iteration, config.seed + i)
        dataset = aggregate(dataset, visited, expert)
        bc_history = train_bc(policy, dataset, config.bc)
        history["data/steps"].append(float(dataset.n_steps))
        history["data/beta"].append(beta)
        history["loss/bc"].append(bc_history["loss/bc"][-1])
        if on_iteration is not None:
            for key, value in on_iteration(i, policy, dataset).items():
                history.setdefault(key, []).append(float(value))
    assert dataset is not None
    return dataset, history
