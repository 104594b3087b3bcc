"""SFT and on-policy distillation: minirl's BC and DAgger on the token MDP (survey §2.4; docs/equations.md §3).

    SFT          pi_SFT = argmax_pi E_{(s, a) ~ D_demo} log pi(a | s)      = minirl.algos.bc.train_bc
                 on ``task.demonstrations`` (prompt positions are outside the mask)
    distillation DAgger (Ross et al. 2011; survey Theorem 2.3)               = minirl.algos.dagger.train_dagger
                 with the student's own generations as the roll-in and the task's programmatic
                 expert as the labeller: on-policy distillation

Nothing here trains: both functions build the data sources minirl's algorithms ask for
(demonstrations; ``collect(policy, n, seed)`` over ``task.sample_prompts``) and call them.

Choices, and why:
  * Roll-in beta. DAgger's roll-in is pi_i = beta_i pi* + (1 - beta_i) pi_hat_i. On-policy
    distillation rolls in with the student only (beta = 0): the student is a pre-trained
    base model that already writes well-formed responses, so the expert is not needed to keep
    states meaningful, and every labelled token then lies on the distribution the student
    will actually be run on -- the point of DAgger. Expert demonstrations may enter as D_demo
    (``n_demos``, the role of Ross et al.'s beta_1 = 1 round); minirl's DAgger aggregates them
    with round 1's roll-in, which is the base model's own. ``beta0`` / ``beta_decay`` remain
    available for an expert-led roll-in.
  * Labels from a stochastic expert. minirl's DAgger asks ``expert.label(batch)``. The sort
    expert is deterministic (its label is its action). The Markov expert pi* is a
    distribution; labelling every visited state with its mode would distil the mode (a
    different, deterministic policy). :class:`minirl.experts.SampledExpert` labels each visited state with a
    *sample* a ~ pi*(. | s) instead, so BC on the aggregate maximises
    E_{s ~ d^pi_i} E_{a ~ pi*(.|s)} log pi(a | s), whose optimum on visited states is pi* itself;
    for a deterministic expert the sample is the label.
  * Equal data. A *labelled sequence* is one response whose every token carries an expert
    label: SFT's budget is ``n_demos``; DAgger's is ``n_demos + dagger.n_iterations *
    dagger.episodes_per_iteration`` (``DistillConfig.labelled_sequences``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from minirl.algos.bc import BCConfig, train_bc
from minirl.algos.dagger import DAggerConfig, train_dagger
from minirl.checks import check_int, check_seed
from minirl.data import TrajectoryBatch
from minirl.experts import SampledExpert
from minirl.policies import Policy
from llmtrack.rollout import generate
from llmtrack.tasks import Task
from llmtrack.tasks.base import as_generator

__all__ = ["SFTConfig", "DistillConfig", "on_policy_dagger", "SampledExpert", "task_collector", "sft", "distill"]

DEFAULT_BC = BCConfig(n_updates=600, batch_size=64, lr=1e-3)


def _check_bc(bc: BCConfig) -> None:
    if not isinstance(bc, BCConfig):
        raise ValueError(f"bc: must be a BCConfig, got {type(bc).__name__}")


@dataclass(frozen=True)
class SFTConfig:
    """Supervised fine-tuning = behaviour cloning on expert demonstrations."""

    n_demos: int = 200
    """Expert demonstrations (labelled sequences)."""
    bc: BCConfig = DEFAULT_BC
    """minirl's BC settings (updates, minibatch, learning rate, minibatch seed)."""
    seed: int = 0
    """Seeds the demonstrations' prompts and sampling."""

    def __post_init__(self) -> None:
        check_int(self.n_demos, "n_demos", 1)
        _check_bc(self.bc)
        check_seed(self.seed)

    @property
    def labelled_sequences(self) -> int:
        return self.n_demos


def on_policy_dagger(**changes) -> DAggerConfig:
    """minirl's DAggerConfig for on-policy distillation: the student rolls in alone (beta0 = 0; module
    docstring), 4 rounds of 40 generations, each refit by 150 BC steps of 64 sequences at lr 1e-3,
    roll-outs seeded from 1; ``changes`` replace any of these fields."""
    return replace(DAggerConfig(n_iterations=4, episodes_per_iteration=40, beta0=0.0, beta_decay=0.5,
                                bc=BCConfig(n_updates=150, batch_size=64, lr=1e-3), seed=1), **changes)


@dataclass(frozen=True)
class DistillConfig:
    """On-policy distillation = DAgger with the student's roll-in and the task's expert as labeller."""

    n_demos: int = 40
    """Expert demonstrations in D_demo before round 1 (0: start from the student's roll-in)."""
    dagger: DAggerConfig = field(default_factory=on_policy_dagger)
    """minirl's DAgger settings: rounds, generations labelled per round (``episodes_per_iteration``),
    roll-in beta, the BC refit, the roll-outs' seed and the progress bar."""
    seed: int = 0
    """Seeds the demonstrations and the expert's sampled labels (``dagger.seed`` the roll-outs)."""

    def __post_init__(self) -> None:
        check_int(self.n_demos, "n_demos", 0)
        if not isinstance(self.dagger, DAggerConfig):
            raise ValueError(f"dagger: must be a DAggerConfig, got {type(self.dagger).__name__}")
        check_seed(self.seed, "seed")

    @property
    def labelled_sequences(self) -> int:
        """Sequences the expert labels in all: demonstrations + student generations."""
        return self.n_demos + self.dagger.n_iterations * self.dagger.episodes_per_iteration


def task_collector(task: Task) -> Callable[[Policy, int, int], TrajectoryBatch]:
    """DAgger's ``collect(policy, n, seed)``: n fresh prompts from rho0 and ``policy``'s sampled responses."""

    def collect(policy: Policy, n: int, seed: int) -> TrajectoryBatch:
        g = as_generator(seed)
        return generate(policy, task.sample_prompts(n, g), task.max_new_tokens, generator=g)

    return collect


def sft(policy: Policy, task: Task, config: SFTConfig = SFTConfig()) -> tuple[TrajectoryBatch, dict[str, list[float]]]:
    """Fine-tune ``policy`` in place on ``config.n_demos`` expert demonstrations with minirl's BC.

    Returns:
        (demos, history): the labelled data and BC's ``{"loss/bc": [...]}``.
    """
    demos = task.demonstrations(config.n_demos, seed=config.seed)
    return demos, train_bc(policy, demos, config.bc)


def distill(policy: Policy, task: Task, config: DistillConfig = DistillConfig(),
            on_iteration: Callable[[int, Policy, TrajectoryBatch], dict[str, float]] | None = None,
            ) -> tuple[TrajectoryBatch, dict[str, list[float]]]:
    """On-policy distillation of ``task.expert`` into ``policy`` (in place) with minirl's DAgger.

    Returns:
        (dataset, history) from :func:`minirl.algos.dagger.train_dagger`: the aggregated data
        (demonstrations, then the student's generations with the expert's labels as actions)
        and per-round metrics.
    """
    demos = task.demonstrations(config.n_demos, seed=config.seed) if config.n_demos else None
    expert = SampledExpert(task.expert, seed=config.seed)
    return train_dagger(policy, expert, task_collector(task), config.dagger, demos=demos,
                        on_iteration=on_iteration)
