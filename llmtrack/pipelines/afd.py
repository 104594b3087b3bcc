"""Alignment from demonstrations (AfD; survey §4.3, Sun & van der Schaar 2024; docs/equations.md §7).

SFT on demonstrations minimises the *forward* KL(d^beta || d^pi) -- mass-covering. AfD minimises
the *reverse* KL(d^pi || d^beta) -- mode-seeking -- with a discriminator between demonstrations
(label 1) and the policy's own responses (label 0), and the reward

    r(x, y) = log D(y|x) - log(1 - D(y|x)) = h(x, y)        (the logit; at the optimum
                                                           h* = log d^beta(y|x) / d^pi(y|x))

optimised with PPO. This is adversarial imitation with a sequence-level discriminator, so it is
minirl's trainer, unchanged: :class:`minirl.algos.adversarial.AdversarialImitation` with
``divergence="airl"`` (reverse KL, survey Table 4), the published rule ``reward="airl_logit"``
(r = h), a :class:`minirl.discriminators.SequenceDiscriminator` around a transformer scorer
(:class:`llmtrack.reward_model.LMRewardModel`, a copy of the policy's own backbone), and the
LM's responses as PPO's batch source (:class:`llmtrack.pipelines.rlhf.ResponseSource`).
Each sequence gets one reward, at its last token: with every response ending, the constant in
AIRL's derived rule h - 1 would not matter, and the survival bias of step rewards cannot arise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from minirl.algos.adversarial import AdversarialConfig, AdversarialImitation
from minirl.checks import check_int, check_seed
from minirl.data import TrajectoryBatch
from minirl.discriminators import SequenceDiscriminator
from minirl.policies import check_same_actions
from llmtrack.pipelines.rlhf import ResponseSource, lm_ppo_config
from llmtrack.policy import LMPolicy
from llmtrack.reward_model import LMRewardModel
from llmtrack.tasks import Task

__all__ = ["AfDConfig", "afd_adversarial", "train_afd"]


def afd_adversarial(**changes) -> AdversarialConfig:
    """minirl's AdversarialConfig for AfD: reverse KL (``divergence="airl"``) with the published rule
    r = h (``reward="airl_logit"``) on an unstructured sequence discriminator; Adam at 1e-4, one pass of
    2 minibatches per batch; PPO with :func:`~llmtrack.pipelines.rlhf.lm_ppo_config`. ``changes``
    replace any of these fields (e.g. ``lr``, ``disc_epochs``, ``ppo``, ``seed``)."""
    return replace(AdversarialConfig(divergence="airl", reward="airl_logit", structured=False, lr=1e-4, disc_epochs=1,
                                     disc_minibatches=2, ppo=lm_ppo_config()), **changes)


@dataclass(frozen=True)
class AfDConfig:
    """One AfD run (module docstring)."""

    total_tokens: int = 20_000
    """Response tokens the policy samples in all (PPO's step budget)."""
    n_prompts: int = 64
    """Responses per batch (one per prompt)."""
    adversarial: AdversarialConfig = field(default_factory=afd_adversarial)
    """minirl's adversarial-imitation settings: the discriminator's optimiser and passes, the reward
    rule, PPO's settings (``adversarial.ppo``), the demonstration minibatches' seed."""
    seed: int = 0
    """Seeds prompts, sampling and the discriminator's head (``adversarial.seed`` its demonstration
    minibatches, ``adversarial.ppo.seed`` PPO's)."""
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("total_tokens", "n_prompts"):
            check_int(getattr(self, name), name, 1)
        check_seed(self.seed)
        if not isinstance(self.adversarial, AdversarialConfig):
            raise ValueError(f"adversarial: must be an AdversarialConfig, got {type(self.adversarial).__name__}")
        if self.adversarial.ppo.advantage != "gae":
            raise ValueError("adversarial: AfD optimises its reward with PPO (ppo.advantage='gae')")


def train_afd(policy: LMPolicy, task: Task, demos: TrajectoryBatch, config: AfDConfig = AfDConfig(),
              callback: Callable[[dict[str, Any]], bool | None] | None = None
              ) -> tuple[AdversarialImitation, list[dict[str, Any]]]:
    """Train ``policy`` in place by AfD on ``demos`` (the same demonstrations SFT would use).

    Returns (trainer, history): the minirl trainer (its ``disc`` is the learned discriminator)
    and PPO's per-iteration records with the discriminator's stats; 'episode_return' is the
    batch's mean gold reward (logging only).
    """
    if demos.batch_size == 0:
        raise ValueError("demos: the demonstration set is empty")
    check_same_actions(task.expert, policy, "task", "policy")
    if policy.value_head is None:
        policy.add_value_head()
    scorer = LMRewardModel.from_policy(policy, seed=config.seed)
    source = ResponseSource(policy, task, config.n_prompts, 1, config.seed)
    trainer = AdversarialImitation(source, policy, policy, demos, config.adversarial,
                                   discriminator=SequenceDiscriminator(scorer))
    history = trainer.train(config.total_tokens, callback=callback, progress=config.progress)
    return trainer, history
