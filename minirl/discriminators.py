"""Discriminators for adversarial imitation (survey eq. 3; docs/equations.md §4).

A discriminator returns a *logit* h for each step of a trajectory batch; D = sigma(h) is its
belief that the step came from the demonstrations (label 1). The reward shown to the policy is a
function of h only (:mod:`minirl.divergences`), so the two kinds below plug into one trainer:

    StepDiscriminator   h(s, a) = MLP([s, a])                                     GAIL, FAIRL, AIRL on (s, a)
    AIRLDiscriminator   h(s, a, s') = f(s, a, s') - log pi(a|s),                  AIRL (Fu et al. 2017)
                        f = g(s) + gamma (1 - done) v(s') - v(s)
    SequenceDiscriminator  h(tau) = scorer(whole episode)                         AfD (survey §4.3)

A sequence-level discriminator judges whole episodes, not steps: on a language model's token MDP
the episode is the response y to a prompt x, and D(y|x) compares the *sequence* distributions
d^beta(y|x) and d^pi(y|x) directly (docs/equations.md §7). Its reward is paid once, at the episode's
last step.

AIRL's D = e^f / (e^f + pi(a|s)) is a logistic discriminator with logit f - log pi. At the optimum
f recovers the advantage of the expert's reward; the state-only g recovers the reward itself up to
a constant (deterministic dynamics), and the potential v absorbs the shaping, so g transfers to
new dynamics where a reward learned on (s, a) does not.

Step vs sequence is the discriminator's business, not the trainer's: both kinds provide the same
*unit* methods (:data:`UNIT_METHODS`) -- ``units(batch)`` what it judges in a batch (flattened
transitions with s', or the rows themselves), ``count`` / ``take`` to minibatch them, ``judge``
their logits, ``weights`` their occupancy weights, ``observe`` to update input statistics, and
``rewards(batch, rule, ...)`` -> (B, T) where it pays r(h): on every step, or at each row's last
step. :class:`~minirl.algos.adversarial.AdversarialImitation` calls only these.

Inputs are encoded once: integer state ids (a ``Discrete`` space) become one-hot vectors, so with
``hidden=()`` each network is a linear function of one-hots, i.e. a table: the tabular case is the
same class. Discrete actions are one-hot too; continuous actions enter as they are.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minirl.checks import check_int, check_number, check_seed
from minirl.data import TrajectoryBatch, last_step

__all__ = ["discriminator_loss", "StepLevelDiscriminator", "StepDiscriminator", "AIRLDiscriminator",
           "SequenceDiscriminator", "mlp", "transitions", "absorbing_transitions", "absorbing_state",
           "redirect_to_absorbing", "UNIT_METHODS"]

UNIT_METHODS = ("units", "count", "take", "observe", "judge", "weights", "rewards")
"""What a discriminator provides so that one adversarial trainer serves steps and sequences."""


def discriminator_loss(h_demo: Tensor, h_policy: Tensor, w_demo: Tensor | None = None,
                       w_policy: Tensor | None = None) -> Tensor:
    """Logistic loss of a discriminator with logits h: demonstrations are label 1, policy steps label 0.

    L = -E_demo[log sigma(h)] - E_pi[log(1 - sigma(h))]    (survey eq. 3 with the GAN's f)
    The expectations are weighted means (weights: e.g. masks, or exact occupancy measures); its
    minimiser is h* = log rho_demo / rho_pi, the density ratio every reward rule is built on.
    """
    w_demo = torch.ones_like(h_demo) if w_demo is None else w_demo.to(h_demo)
    w_policy = torch.ones_like(h_policy) if w_policy is None else w_policy.to(h_policy)
    # BEGIN SOLUTION
    loss_demo = (w_demo * F.softplus(-h_demo)).sum() / w_demo.sum()  # -log sigma(h)
    loss_policy = (w_policy * F.softplus(h_policy)).sum() / w_policy.sum()  # -log(1 - sigma(h))
    return loss_demo + loss_policy  # docs/equations.md §4
    # END SOLUTION


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.Tanh()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class _Encoder(nn.Module):
    """Turns (obs, actions) of any space into float features: one-hots for ids, standardised floats.

    Continuous observations are standardised with running statistics of everything the
    discriminator is trained on (demonstrations and policy steps alike): an expert's states can
    be 100x more concentrated than a beginner's (CartPole's pole angle), and raw features would
    leave a tanh network either blind to the difference or saturated by it.
    """

    def __init__(self, obs_dim: int, discrete_obs: bool, action_dim: int, discrete_actions: bool):
        super().__init__()
        self.obs_dim, self.discrete_obs = obs_dim, discrete_obs
        self.action_dim, self.discrete_actions = action_dim, discrete_actions
        self.register_buffer("count", torch.zeros(()))
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("var", torch.ones(obs_dim))

    @torch.no_grad()
    def observe(self, obs: Tensor) -> None:
        """Fold a batch of observations (N, d) into the running mean and variance (Chan et al.'s update)."""
        if self.discrete_obs or len(obs) == 0:
            return
        x = obs.float().reshape(-1, self.obs_dim)
        n, mean, var = len(x), x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = mean - self.mean
        self.var = (self.var * self.count + var * n + delta ** 2 * self.count * n / total) / total
        self.mean = self.mean + delta * n / total
        self.count = total

    def obs(self, obs: Tensor, absorbing: Tensor | None = None) -> Tensor:
        """Features (..., width): the state's, then an absorbing-state flag (see ``AdversarialConfig.absorbing``).

        The absorbing state is its own point: zero state features (after standardisation: the
        average state, not any particular one) and flag 1.
        """
        if self.discrete_obs:
            x = F.one_hot(obs.long(), self.obs_dim).float()  # (..., S)
        elif self.count == 0:
            x = obs.float()
        else:
            x = (obs.float() - self.mean) / (self.var.sqrt() + 1e-6)  # (..., d)
        flag = torch.zeros(*x.shape[:-1], 1)
        if absorbing is not None:
            x = torch.where(absorbing[..., None], torch.zeros_like(x), x)
            flag = absorbing[..., None].float()
        return torch.cat([x, flag], dim=-1)  # (..., width + 1)

    def actions(self, actions: Tensor, absorbing: Tensor | None = None) -> Tensor:
        """One-hot or raw action features; zero in the absorbing state, where actions do nothing."""
        if self.discrete_actions:
            x = F.one_hot(actions.long(), self.action_dim).float()  # (..., A)
        else:
            x = actions.float() if actions.shape[-1:] == (self.action_dim,) else actions.float()[..., None]
        return x if absorbing is None else torch.where(absorbing[..., None], torch.zeros_like(x), x)


# -- transitions: the units a step discriminator judges ----------------------------

def transitions(batch: TrajectoryBatch) -> dict[str, Tensor]:
    """Flatten a batch to its real steps with s' and the termination flag: (N, ...) tensors.

    s' comes from ``batch.next_obs`` when present (PPO's fragments); otherwise from the next
    step of the same episode (whole-episode batches such as demonstrations), and a last step
    whose s' is unknown (the episode was cut by a time limit) is dropped.
    """
    m = batch.mask
    done = batch.terminated if batch.terminated is not None else torch.zeros_like(m)
    if batch.next_obs is not None:
        keep, next_obs = m, batch.next_obs
    else:
        next_obs = torch.cat([batch.obs[:, 1:], batch.obs[:, -1:]], dim=1)  # (B, T, ...) obs of t + 1
        has_next = torch.cat([m[:, 1:], torch.zeros_like(m[:, :1])], dim=1)
        keep = m & (has_next | done)  # a terminal step needs no s' (v(s') is multiplied by 0)
    n = int(keep.sum())
    return {"obs": batch.obs[keep], "actions": batch.actions[keep], "next_obs": next_obs[keep], "done": done[keep],
            "absorbing": torch.zeros(n, dtype=torch.bool), "next_absorbing": torch.zeros(n, dtype=torch.bool)}


def redirect_to_absorbing(steps: dict[str, Tensor]) -> dict[str, Tensor]:
    """The same steps, with every terminating one leading to the absorbing state instead of ending."""
    ends = steps["done"]
    return dict(steps, done=torch.zeros_like(ends), next_absorbing=steps["next_absorbing"] | ends)


def absorbing_state(steps: dict[str, Tensor], k: int) -> dict[str, Tensor]:
    """k copies of the absorbing self-transition, in the layout of ``steps``.

    Its observation and action fields are placeholders: the discriminator's encoder replaces
    them by the absorbing state's own features (zero state features, flag 1, no action).
    """
    out = {key: torch.zeros((k, *value.shape[1:]), dtype=value.dtype) for key, value in steps.items()}
    out["absorbing"] = out["next_absorbing"] = torch.ones(k, dtype=torch.bool)
    return out


def absorbing_transitions(steps: dict[str, Tensor]) -> dict[str, Tensor]:
    """Termination as a move into an absorbing state (Kostrikov et al. 2019), for the discriminator.

    Each terminating step now leads to the absorbing state (``done`` False, ``next_absorbing``
    True), and for each one an absorbing self-transition is appended: the state the agent
    would occupy forever after. The discriminator then *learns* what ending an episode is worth
    (demonstrations that never end never show it) instead of every reward rule building in 0.
    """
    redirected, tail = redirect_to_absorbing(steps), absorbing_state(steps, int(steps["done"].sum()))
    return {key: torch.cat([redirected[key], tail[key]]) for key in steps}


class StepLevelDiscriminator(nn.Module):
    """The unit methods of a discriminator of transitions (s, a, s'); subclasses define ``logits``
    and an ``encoder`` (module docstring). Units are dicts of (N, ...) tensors (:func:`transitions`)."""

    structured = False
    level = "step"

    def units(self, batch: TrajectoryBatch, absorbing: bool = False) -> dict[str, Tensor]:
        """The real steps of ``batch`` with s'; with ``absorbing``, ends lead to the absorbing state."""
        steps = transitions(batch)
        return absorbing_transitions(steps) if absorbing else steps

    @staticmethod
    def count(units: dict[str, Tensor]) -> int:
        return len(units["obs"])

    @staticmethod
    def take(units: dict[str, Tensor], index: Tensor) -> dict[str, Tensor]:
        return {k: v[index] for k, v in units.items()}

    def observe(self, units: dict[str, Tensor], demo_units: dict[str, Tensor]) -> None:
        """Fold the real states of both sides into the encoder's running statistics."""
        self.encoder.observe(torch.cat([units["obs"][~units["absorbing"]], demo_units["obs"][~demo_units["absorbing"]]]))

    def judge(self, units: dict[str, Tensor], policy: Any) -> Tensor:
        """h for every unit, (N,). A structured (AIRL) logit needs the current log pi(a|s) of ``policy``."""
        log_pi = None
        if self.structured:  # AIRL's D = e^f / (e^f + pi) needs the current pi(a|s)
            one_step = TrajectoryBatch(obs=units["obs"][:, None], actions=units["actions"][:, None],
                                       mask=torch.ones(len(units["obs"]), 1, dtype=torch.bool))
            with torch.no_grad():
                log_pi = policy.log_prob(one_step)[:, 0]
            log_pi = torch.where(units["absorbing"], torch.zeros_like(log_pi), log_pi)  # one "no-op" action there
        return self.logits(units["obs"], units["actions"], units["next_obs"], units["done"], log_pi,
                           units["absorbing"], units["next_absorbing"])

    @staticmethod
    def weights(units: dict[str, Tensor], gamma: float) -> Tensor:
        """Occupancy weights: an absorbing sample stands for every step after the end, sum_k gamma^k = 1 / (1 - gamma)."""
        return torch.where(units["absorbing"], 1.0 / (1.0 - gamma), 1.0)

    def rewards(self, batch: TrajectoryBatch, rule: Any, policy: Any, absorbing: bool, gamma: float
                ) -> tuple[Tensor, dict[str, float]]:
        """r(h(s_t, a_t, s_{t+1})) on every real step, (B, T); with ``absorbing``, a terminating step also
        earns gamma r(h_abs) / (1 - gamma), the worth of staying in the absorbing state forever."""
        if batch.next_obs is None:
            raise ValueError("batch: needs next_obs (collect it with minirl.rollout.collect_fragments)")
        steps, m, stats = transitions(batch), batch.mask, {}
        rewards = torch.zeros(m.shape)
        if absorbing:
            value_abs = rule.reward(self.judge(absorbing_state(steps, 1), policy))[0] / (1.0 - gamma)
            steps = redirect_to_absorbing(steps)
        rewards[m] = rule.reward(self.judge(steps, policy))  # (N,) in the order of batch[m]
        if absorbing and batch.terminated is not None:
            rewards[m & batch.terminated] += gamma * value_abs
            stats["reward/absorbing"] = (value_abs * (1.0 - gamma)).item()
        stats["reward/mean"] = rewards[m].mean().item()
        return rewards, stats


class StepDiscriminator(StepLevelDiscriminator):
    """h(s, a) = MLP([phi(s), phi(a)]): the discriminator of GAIL / FAIRL (and AIRL without structure).

    Args:
        obs_dim: number of states (``discrete_obs``) or observation width.
        action_dim: number of actions (``discrete_actions``) or action width.
        hidden: MLP widths; ``()`` with discrete inputs is a table h[s, a].
    """

    structured = False

    def __init__(self, obs_dim: int, action_dim: int, discrete_obs: bool, discrete_actions: bool,
                 hidden: tuple[int, ...] = (64, 64), seed: int = 0):
        super().__init__()
        obs_dim, action_dim, seed = check_int(obs_dim, "obs_dim", 1), check_int(action_dim, "action_dim", 1), check_seed(seed)
        self.encoder = _Encoder(obs_dim, discrete_obs, action_dim, discrete_actions)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = mlp(obs_dim + 1 + action_dim, hidden)

    def logits(self, obs: Tensor, actions: Tensor, next_obs: Tensor | None = None, done: Tensor | None = None,
               log_pi: Tensor | None = None, absorbing: Tensor | None = None,
               next_absorbing: Tensor | None = None) -> Tensor:
        """h for every step: obs (..., [d]), actions (..., [k]) -> (...); ``absorbing`` marks absorbing-state steps."""
        x = torch.cat([self.encoder.obs(obs, absorbing), self.encoder.actions(actions, absorbing)], dim=-1)
        return self.net(x).squeeze(-1)  # (...)


class AIRLDiscriminator(StepLevelDiscriminator):
    """AIRL's structured logit f(s, a, s') - log pi(a|s) with f = g(s) + gamma (1 - done) v(s') - v(s).

    ``reward(obs)`` is the learned state-only reward g(s), the part meant to transfer.
    """

    structured = True

    def __init__(self, obs_dim: int, discrete_obs: bool, gamma: float, hidden: tuple[int, ...] = (64, 64),
                 seed: int = 0):
        super().__init__()
        obs_dim, seed = check_int(obs_dim, "obs_dim", 1), check_seed(seed)
        if not 0.0 < check_number(gamma, "gamma") <= 1.0:
            raise ValueError(f"gamma: must be in (0, 1], got {gamma}")
        self.gamma = gamma
        self.encoder = _Encoder(obs_dim, discrete_obs, 0, False)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.g = mlp(obs_dim + 1, hidden)  # reward approximator g(s)
            self.v = mlp(obs_dim + 1, hidden)  # shaping potential v(s)

    def reward(self, obs: Tensor, absorbing: Tensor | None = None) -> Tensor:
        """g(s), shape obs.shape[:-1] (features) or obs.shape (state ids)."""
        return self.g(self.encoder.obs(obs, absorbing)).squeeze(-1)

    def f(self, obs: Tensor, next_obs: Tensor, done: Tensor, absorbing: Tensor | None = None,
          next_absorbing: Tensor | None = None) -> Tensor:
        """f(s, a, s') = g(s) + gamma (1 - done) v(s') - v(s); done = the episode *terminated* at s'."""
        # BEGIN SOLUTION
        v_next = self.v(self.encoder.obs(next_obs, next_absorbing)).squeeze(-1)
        v_now = self.v(self.encoder.obs(obs, absorbing)).squeeze(-1)
        return self.reward(obs, absorbing) + self.gamma * (1.0 - done.float()) * v_next - v_now  # docs/equations.md §4
        # END SOLUTION

    def logits(self, obs: Tensor, actions: Tensor, next_obs: Tensor | None = None, done: Tensor | None = None,
               log_pi: Tensor | None = None, absorbing: Tensor | None = None,
               next_absorbing: Tensor | None = None) -> Tensor:
        if next_obs is None or done is None or log_pi is None:
            raise ValueError("AIRLDiscriminator.logits: needs next_obs, done and log_pi")
        return self.f(obs, next_obs, done, absorbing, next_absorbing) - log_pi  # D = e^f / (e^f + pi)


class SequenceDiscriminator(nn.Module):
    """h(tau) for whole episodes: any scorer with ``score(batch) -> (B,)`` read as a logit.

    The adversarial trainer then trains it on rows (demonstration episodes, label 1, against the
    policy's, label 0) and pays r(h) at each row's last real step; every other step earns 0.
    With the airl_logit rule r = h = log D - log(1 - D), AfD's reward (survey §4.3): at the optimal
    discriminator h* = log d^beta(y|x) / d^pi(y|x), and the policy gradient of E_pi[h*] is
    -grad KL(d^pi || d^beta) (E_pi[grad log pi] = 0 removes the log d^pi term's derivative).
    On a token MDP (Concat transitions) the last step's context already holds the whole
    response, so this is a step discriminator restricted to final steps; judging the row is
    what lets it be a transformer over the full sequence.
    """

    structured = False
    level = "sequence"

    def __init__(self, scorer: nn.Module):
        super().__init__()
        if not callable(getattr(scorer, "score", None)):
            raise ValueError("scorer: must have a score(batch) -> (B,) method (e.g. a reward model)")
        self.scorer = scorer

    def logits(self, batch: TrajectoryBatch) -> Tensor:
        """h for each row of a TrajectoryBatch of whole episodes, (B,)."""
        return self.scorer.score(batch)

    # -- the unit methods: a unit is a row (a whole episode) ---------------------
    @staticmethod
    def units(batch: TrajectoryBatch, absorbing: bool = False) -> TrajectoryBatch:
        if absorbing:
            raise ValueError("absorbing: a sequence-level discriminator judges whole episodes, so it has no "
                             "absorbing state to learn (and no survival bias: one reward per episode)")
        return batch

    @staticmethod
    def count(units: TrajectoryBatch) -> int:
        return units.batch_size

    @staticmethod
    def take(units: TrajectoryBatch, index: Tensor) -> TrajectoryBatch:
        return units[index]

    def observe(self, units: TrajectoryBatch, demo_units: TrajectoryBatch) -> None:
        """Nothing to standardise: the scorer reads token ids."""

    def judge(self, units: TrajectoryBatch, policy: Any = None) -> Tensor:
        return self.logits(units)

    @staticmethod
    def weights(units: TrajectoryBatch, gamma: float) -> Tensor:
        return torch.ones(units.batch_size)

    def rewards(self, batch: TrajectoryBatch, rule: Any, policy: Any = None, absorbing: bool = False,
                gamma: float = 1.0) -> tuple[Tensor, dict[str, float]]:
        """r(h(row)) at each row's last real step, 0 elsewhere, (B, T)."""
        r = rule.reward(self.logits(batch)).float().cpu()  # (B,)
        rewards = torch.zeros(batch.mask.shape)
        rewards[last_step(batch.mask.cpu())] = r[batch.lengths.cpu() > 0]
        return rewards, {"reward/mean": r.mean().item()}
