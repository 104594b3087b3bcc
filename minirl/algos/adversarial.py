"""Adversarial imitation: GAIL, AIRL and FAIRL as one trainer with a pluggable f (survey eq. 2-4, Table 4).

    min_pi max_D  E_demo[log D(s, a)] + E_pi[log(1 - D(s, a))]        the discriminator (logistic)
    r_t = r(h(s_t, a_t)),  h = logit D                                  the policy's reward (docs/equations.md §4)

One iteration, on top of PPO (:mod:`minirl.algos.ppo`):
    1. PPO collects a fragment batch from the MDP\\R (the env's reward is never read);
    2. the discriminator takes ``disc_epochs`` passes of logistic-loss steps on the batch's steps
       (label 0) against as many demonstration steps (label 1);
    3. the batch's reward becomes r(h) for the *updated* discriminator, and PPO updates on it.
Steps 2-3 are :meth:`AdversarialImitation.reward`, handed to PPO as its ``reward_fn``, so the loop
is PPO's own. Whether the discriminator judges steps (s, a, s') or whole episodes (AfD on a
language model) is the discriminator's own business (:mod:`minirl.discriminators`): the trainer
has one path for both.

The three methods differ only in the reward rule r(h) (:data:`minirl.divergences.REWARD_RULES`)
and, for AIRL, in the discriminator's structure (:class:`~minirl.discriminators.AIRLDiscriminator`,
whose logit is f(s, a, s') - log pi(a|s)). The derived rules are the defaults; the published
variants are available by name, e.g. ``reward="gail_minus_log1m_d"`` for `imitation`'s GAIL.

Termination: a reward with a sign pays an agent for dying early or staying alive, whatever it
imitates -- the survival bias. On CartPole-v1 AIRL's h - 1 is mostly negative and its agent learns
to fall at once (return ~10 after 30k-60k steps, seeds 0-2). With ``absorbing=True`` termination
becomes a move into an absorbing state that the discriminator judges like any other
(:func:`absorbing_transitions`; Kostrikov et al. 2019), so what ending an episode is worth is
learned, and constants in the reward no longer matter: the same AIRL then survives (206-449 at
30k steps).

Continuous actions: AIRL's structured logit contains -log pi(a|s), so its reward pays for entropy.
A :class:`~minirl.policies.GaussianPolicy` samples unbounded actions that the env clips, so spreading
costs nothing in the env while -log pi grows without bound: on Pendulum-v1 the policy's log-std
went to 5.0 (sigma ~ 145) and the return stayed near -1100 after 80k steps. With
``structured=False`` (AIRL's reward h - 1 on an (s, a) discriminator) the same run reached -171 to
-275 with log-std -0.74. A squashed (tanh) Gaussian, whose entropy is bounded, is the proper fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym
import torch
import torch.nn.functional as F
from gymnasium.vector import VectorEnv
from torch import Tensor, nn

from minirl import parallel
from minirl.algos.ppo import PPO, PPOConfig
from minirl.checks import check_int, check_number, check_seed
from minirl.data import TrajectoryBatch
from minirl.discriminators import (UNIT_METHODS, AIRLDiscriminator, StepDiscriminator, absorbing_transitions,
                                   discriminator_loss, transitions)
from minirl.divergences import get_divergence, get_reward_rule
from minirl.policies import Policy, ValueFunction, check_same_actions
from minirl.rollout import check_action_space
from minirl.sources import BatchSource

__all__ = ["AdversarialConfig", "AdversarialImitation", "transitions", "absorbing_transitions", "ALGORITHMS"]

ALGORITHMS = ("gail", "airl", "fairl")


@dataclass(frozen=True)
class AdversarialConfig:
    """Hyperparameters of adversarial imitation (the PPO inside has its own :class:`PPOConfig`)."""

    divergence: str = "gail"
    """Which f of survey Table 4: gail (Jensen-Shannon), airl (reverse KL), fairl (forward KL)."""
    reward: str | None = None
    """Reward rule by name (``minirl.divergences.REWARD_RULES``); None = derived from ``divergence``."""
    structured: bool | None = None
    """Use AIRL's structured discriminator g(s) + gamma v(s') - v(s) - log pi; None = only for airl."""
    hidden: tuple[int, ...] = (64, 64)
    """Discriminator MLP widths."""
    lr: float = 3e-4
    """Discriminator Adam learning rate."""
    disc_epochs: int = 1
    """Passes of the discriminator over each collected batch."""
    disc_minibatches: int = 4
    """Discriminator minibatches per pass (each pairs policy steps with as many demo steps)."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """The policy optimiser."""
    absorbing: bool = False
    """Treat termination as entering an absorbing state whose reward the discriminator learns
    (:func:`absorbing_transitions`): removes the survival bias of signed rewards. The terminating
    step's reward then gains gamma r(h_abs) / (1 - gamma), the value of staying there forever."""
    seed: int = 0
    """Seeds the discriminator's weights and demo sampling (PPO has ``ppo.seed``)."""

    def __post_init__(self) -> None:
        get_divergence(self.divergence)
        rule = get_reward_rule(self.reward or self.divergence)
        if rule.divergence != self.divergence:
            raise ValueError(f"reward: rule {rule.name!r} belongs to divergence {rule.divergence!r}, "
                             f"not {self.divergence!r}")
        for name in ("disc_epochs", "disc_minibatches"):
            check_int(getattr(self, name), name, 1)
        if isinstance(self.hidden, (int, str)) or not hasattr(self.hidden, "__iter__"):
            raise ValueError(f"hidden: must be a sequence of integers >= 1, got {self.hidden!r}")
        for width in self.hidden:
            check_int(width, "hidden", 1)
        check_number(self.lr, "lr", 0.0, strict_minimum=True)
        if not isinstance(self.ppo, PPOConfig):
            raise ValueError(f"ppo: must be a PPOConfig, got {type(self.ppo).__name__}")
        if self.structured is not None and not isinstance(self.structured, bool):
            raise ValueError(f"structured: must be True, False or None, got {self.structured!r}")
        check_seed(self.seed)


def _shard_loss(h_demo: Tensor, h_policy: Tensor, w_demo: Tensor, w_policy: Tensor, total_demo: Tensor,
                total_policy: Tensor) -> Tensor:
    """One process's part of :func:`~minirl.discriminators.discriminator_loss` on a global minibatch.

    sum_shard w_E softplus(-h) / total_demo + sum_shard w_pi softplus(h) / total_policy, with the totals
    the whole minibatch's weight sums: summed over the shards it is the one-process loss (each side
    a weighted mean), which a plain average of shard means is not when the shards' weights differ.
    With the shard's own sums as totals it is ``discriminator_loss`` (tests/test_adversarial.py).
    """
    w_demo, w_policy = w_demo.to(h_demo), w_policy.to(h_policy)
    return ((w_demo * F.softplus(-h_demo)).sum() / total_demo.to(h_demo)
            + (w_policy * F.softplus(h_policy)).sum() / total_policy.to(h_policy))  # docs/equations.md §4


class AdversarialImitation:
    """GAIL / AIRL / FAIRL with PPO as the policy optimiser, on any batch source.

    One path for every discriminator: the discriminator says what it judges (steps (s, a, s')
    or whole episodes, :mod:`minirl.discriminators`) through its ``units`` / ``judge`` /
    ``weights`` / ``rewards`` methods, and the trainer only pairs policy units (label 0) with
    demonstration units (label 1) and hands the rewards to PPO.

    Args:
        envs: the environment (its reward is ignored; wrap it in ``HideReward`` to make sure), or
            a batch source for PPO (e.g. a language model's sampled responses, ``llmtrack.rlhf``).
        policy, value_fn: the learner (:class:`~minirl.policies.Policy`, :class:`~minirl.policies.ValueFunction`).
        demos: expert demonstrations, a :class:`TrajectoryBatch` of whole episodes (or fragments).
        discriminator: None builds a step discriminator from the env's spaces (AIRL's structured
            one for ``divergence="airl"``); or bring one, e.g. a
            :class:`~minirl.discriminators.SequenceDiscriminator` (judges whole episodes: AfD).
    """

    def __init__(self, envs: VectorEnv | BatchSource, policy: Policy, value_fn: ValueFunction, demos: TrajectoryBatch,
                 config: AdversarialConfig = AdversarialConfig(), discriminator: nn.Module | None = None):
        self.envs, self.policy, self.config = envs, policy, config
        self.rule = get_reward_rule(config.reward or config.divergence)
        if discriminator is not None:
            self._check_custom(envs, demos, discriminator)
            self.disc = discriminator
        else:
            if not isinstance(envs, VectorEnv):
                raise ValueError("discriminator: a batch source has no spaces to build one from; pass discriminator=")
            self._check(envs, policy, demos)
            self.disc = self._build_discriminator(envs, config)
        parallel.broadcast_parameters(list(self.disc.parameters()))  # W processes start equal and stay so
        self.optimizer = torch.optim.Adam(self.disc.parameters(), lr=config.lr)
        self.demos = self.disc.units(demos, config.absorbing)  # what the discriminator judges, label 1
        self.generator = torch.Generator().manual_seed(config.seed)
        self.ppo = PPO(policy, value_fn, config.ppo)
        self.last_stats: dict[str, float] = {}

    @staticmethod
    def _build_discriminator(envs: VectorEnv, config: AdversarialConfig) -> nn.Module:
        obs_space, act_space = envs.single_observation_space, envs.single_action_space
        discrete_obs = isinstance(obs_space, gym.spaces.Discrete)
        obs_dim = int(obs_space.n) if discrete_obs else int(obs_space.shape[0])
        structured = config.divergence == "airl" if config.structured is None else config.structured
        if structured:
            return AIRLDiscriminator(obs_dim, discrete_obs, config.ppo.gamma, config.hidden, config.seed)
        discrete_actions = isinstance(act_space, gym.spaces.Discrete)
        act_dim = int(act_space.n) if discrete_actions else int(act_space.shape[0])
        return StepDiscriminator(obs_dim, act_dim, discrete_obs, discrete_actions, config.hidden, config.seed)

    @staticmethod
    def _check(envs: VectorEnv, policy: Policy, demos: TrajectoryBatch) -> None:
        if demos.n_steps == 0:
            raise ValueError("demos: the demonstration set is empty")
        obs_space, act_space = envs.single_observation_space, envs.single_action_space
        obs_shape = tuple(demos.obs.shape[2:])
        want = () if isinstance(obs_space, gym.spaces.Discrete) else tuple(obs_space.shape)
        if obs_shape != want:
            raise ValueError(f"demos: observation shape {obs_shape} does not match the env's {want}")
        act_shape = tuple(demos.actions.shape[2:])
        want = () if isinstance(act_space, gym.spaces.Discrete) else tuple(act_space.shape)
        if act_shape != want:
            raise ValueError(f"demos: action shape {act_shape} does not match the env's {want}")
        discrete_policy = hasattr(policy, "log_probs_all")
        if discrete_policy != isinstance(act_space, gym.spaces.Discrete):
            kind = "discrete" if discrete_policy else "continuous"
            raise ValueError(f"policy: a {kind}-action policy cannot act in an env with action space {act_space}")
        check_action_space(envs, policy)  # and as many actions as the env has

    def _check_custom(self, envs: Any, demos: TrajectoryBatch, discriminator: nn.Module) -> None:
        if demos.n_steps == 0:
            raise ValueError("demos: the demonstration set is empty")
        if not isinstance(envs, VectorEnv) and not callable(envs):
            raise ValueError("envs: must be a gymnasium VectorEnv or a callable batch source")
        if self.config.structured:
            raise ValueError("structured: AIRL's structure is a property of the step discriminator; "
                             "a custom discriminator brings its own")
        missing = [name for name in UNIT_METHODS if not callable(getattr(discriminator, name, None))]
        if missing:
            raise ValueError(f"discriminator: has no {', '.join(missing)}; subclass one of minirl.discriminators' "
                             "StepLevelDiscriminator or SequenceDiscriminator")
        check_same_actions(self.policy, discriminator, "policy", "discriminator")  # e.g. an LM scorer's vocabulary

    def logits(self, units: dict[str, Tensor] | TrajectoryBatch) -> Tensor:
        """The discriminator's logit h of each unit it judges: flattened steps (see
        :func:`~minirl.discriminators.transitions`) or the rows of an episode batch; (N,)."""
        return self.disc.judge(units, self.policy)

    def update_discriminator(self, batch: TrajectoryBatch) -> dict[str, float]:
        """``disc_epochs`` passes of logistic-loss steps: the batch's units (0) vs demonstration units (1).

        Under ``accelerate launch`` with W processes every process draws the same global minibatches
        (the generator is seeded alike) and judges about B / W of each side's units; its loss is
        :func:`_shard_loss`, both means normalised by the *whole* minibatch's weights, so the gradients
        summed over processes are the one-process gradient (two normalisers: one share each side). The
        global normalisers make any split exact, so B need not be a multiple of W.
        """
        policy_units = self.disc.units(batch, self.config.absorbing)
        self.disc.observe(policy_units, self.demos)
        n, n_demo = self.disc.count(policy_units), self.disc.count(self.demos)
        stats = {"disc/loss": 0.0, "disc/acc_demo": 0.0, "disc/acc_policy": 0.0}
        gamma, params = self.config.ppo.gamma, list(self.disc.parameters())
        with torch.enable_grad():  # PPO may call the reward function under no_grad
            for _ in range(self.config.disc_epochs):
                for index in torch.randperm(n, generator=self.generator).chunk(self.config.disc_minibatches):
                    demo_index = torch.randint(n_demo, (len(index),), generator=self.generator)
                    mb_policy, mb_demo = self.disc.take(policy_units, index), self.disc.take(self.demos, demo_index)
                    w_policy, w_demo = self.disc.weights(mb_policy, gamma), self.disc.weights(mb_demo, gamma)  # (B,)
                    if parallel.world_size() == 1:
                        h_policy, h_demo = self.logits(mb_policy), self.logits(mb_demo)
                        loss = discriminator_loss(h_demo, h_policy, w_demo, w_policy)  # docs/equations.md §4
                        self.optimizer.zero_grad()
                        loss.backward()
                        self.optimizer.step()
                        step = {"disc/loss": loss.item(), "disc/acc_demo": (h_demo > 0).float().mean().item(),
                                "disc/acc_policy": (h_policy < 0).float().mean().item()}
                    else:
                        mine = torch.tensor_split(torch.arange(len(index)), parallel.world_size())[parallel.rank()]
                        h_policy = self.logits(self.disc.take(mb_policy, mine))
                        h_demo = self.logits(self.disc.take(mb_demo, mine))
                        loss = _shard_loss(h_demo, h_policy, w_demo[mine], w_policy[mine], w_demo.sum(), w_policy.sum())
                        self.optimizer.zero_grad()
                        loss.backward()
                        parallel.all_reduce_gradients(params)  # sum over shards = the whole minibatch's gradient
                        self.optimizer.step()
                        step = parallel.reduce_metric(  # shard sums and counts -> the global loss and accuracies
                            {"disc/loss": loss.item(), "disc/acc_demo": (h_demo > 0).float().sum().item() / len(index),
                             "disc/acc_policy": (h_policy < 0).float().sum().item() / len(index)}, 1.0)
                    for key, value in step.items():
                        stats[key] += value
        return {k: v / (self.config.disc_epochs * self.config.disc_minibatches) for k, v in stats.items()}

    def reward(self, batch: TrajectoryBatch) -> Tensor:
        """Update the discriminator on ``batch``, then return r(h) on every step, (B, T). PPO's reward_fn.

        Where the reward is paid is the discriminator's business: at every step (step level, with the
        absorbing state's worth added at terminations under ``config.absorbing``), or once, at each
        row's last real step (sequence level).
        """
        self.last_stats = self.update_discriminator(batch)
        with torch.no_grad():
            rewards, stats = self.disc.rewards(batch, self.rule, self.policy, self.config.absorbing,
                                               self.config.ppo.gamma)
        if not torch.isfinite(rewards).all():
            raise ValueError(f"discriminator: produced non-finite rewards under rule {self.rule.name!r}")
        self.last_stats.update(stats)
        return rewards

    def train(self, total_steps: int, callback: Callable[[dict[str, Any]], bool | None] | None = None,
              progress: bool = False) -> list[dict[str, Any]]:
        """PPO's loop with the discriminator's reward; each record also holds the discriminator's stats."""

        def record(stats: dict[str, Any]) -> bool | None:
            stats.update(self.last_stats)
            return callback(stats) if callback is not None else None

        return self.ppo.train(self.envs, total_steps, reward_fn=self.reward, callback=record, progress=progress)
