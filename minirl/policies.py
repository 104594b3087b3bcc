"""Policies: one protocol over the trajectory batch, several implementations.

A policy is anything that can (docs/concepts.md):
    log_prob(batch) -> (B, T)   log pi(a_t | s_t) of the batch's actions, in one call,
                                zero on padded steps; the sequence log-prob is its masked sum
    entropy(batch)  -> (B, T)   H(pi(. | s_t)), zero on padded steps
    sample(obs)     -> (actions (N,), log_probs (N,)) for one step of N observations
An expert additionally labels states: ``label(batch) -> (B, T)`` the expert's action at
every step of any trajectory (the oracle that DAgger queries, survey Theorem 2.3). A teacher may
answer with its whole distribution instead, ``label_distribution(batch) -> (B, T, A)`` log-probabilities
(:class:`DistributionExpert`, :func:`distribution_labels`): what soft-label BC and GKD read
(docs/equations.md §10).

Algorithms are written against these protocols only, so a table, an MLP and a
HuggingFace language model (``llmtrack``) are interchangeable.

Here: discrete-action policies built on one small base, :class:`CategoricalPolicy`,
which turns per-state logits into all of the above:
    TabularPolicy   logits[s, a], a free table (or a fixed one from an exact solver)
    MLPPolicy       logits = MLP(features)
    SlipPolicy      another policy that slips to a uniformly random *other* action with
                    probability epsilon: a controlled per-state error rate
and, for any two policies, MixturePolicy: beta * expert + (1 - beta) * learner, DAgger's roll-in.

Continuous actions: :class:`GaussianPolicy`, a ~ N(MLP(s), diag(exp(log_std))^2), whose
actions are (N, act_dim) floats and whose log-probs sum over action dimensions.

Value functions, for actor-critic methods (PPO, :mod:`minirl.algos.ppo`), follow a second
protocol, :class:`ValueFunction`: ``values(batch) -> (B, T)`` V(s_t) at every step (zero on
padding) and ``value(obs) -> (N,)`` for N observations. Implementations: :class:`ValueMLP`
and :class:`TabularValue` (a free table V[s]).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from minirl.checks import check_int, check_number, check_probability, check_seed
from minirl.data import TrajectoryBatch

__all__ = [
    "Policy",
    "Expert",
    "DistributionExpert",
    "distribution_labels",
    "CategoricalPolicy",
    "sample_categorical",
    "TabularPolicy",
    "MLPPolicy",
    "SlipPolicy",
    "MixturePolicy",
    "GaussianPolicy",
    "ValueFunction",
    "ValueMLP",
    "TabularValue",
    "check_not_shared",
    "action_count",
    "check_same_actions",
]


@runtime_checkable
class Policy(Protocol):
    """What every algorithm needs from a policy (see module docstring)."""

    def log_prob(self, batch: TrajectoryBatch) -> Tensor: ...

    def entropy(self, batch: TrajectoryBatch) -> Tensor: ...

    def sample(
        self, obs: Tensor, generator: torch.Generator | None = None, deterministic: bool = False
    ) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class Expert(Protocol):
    """A policy that can also be queried for its action at any state (DAgger's labeller)."""

    def label(self, batch: TrajectoryBatch) -> Tensor: ...

    def sample(
        self, obs: Tensor, generator: torch.Generator | None = None, deterministic: bool = False
    ) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class DistributionExpert(Protocol):
    """A teacher that answers with its whole action distribution at any state (docs/equations.md §10)."""

    def label_distribution(self, batch: TrajectoryBatch) -> Tensor: ...


def distribution_labels(policy: object, batch: TrajectoryBatch, field: str = "teacher") -> Tensor:
    """log pi(. | s_t) of ``policy`` at every step of ``batch``, (B, T, A) log-probabilities.

    Read from ``label_distribution(batch)`` (:class:`DistributionExpert`: minirl's categorical policies,
    llmtrack's exact task experts), else from ``log_probs_all(batch)`` -- the reading of a policy over
    token contexts (a language model), whose state is the whole context in ``batch.obs``. A policy with
    neither (an expert that only names its action, a Gaussian) is a ValueError naming ``field``:
    soft labels need a distribution.
    """
    read = getattr(policy, "label_distribution", None)
    if read is None and not isinstance(policy, CategoricalPolicy):
        read = getattr(policy, "log_probs_all", None)
    if read is None:
        raise ValueError(f"{field}: gives no action distribution (needs label_distribution(batch) -> (B, T, A), "
                         f"e.g. a categorical policy, a task's exact expert or a language model); "
                         f"{type(policy).__name__} can only be asked for hard labels")
    logp = read(batch)  # (B, T, A)
    if logp.ndim != 3 or logp.shape[:2] != batch.mask.shape:
        raise ValueError(f"{field}: label_distribution must return (B, T, A) = ({batch.batch_size}, "
                         f"{batch.horizon}, A), got {tuple(logp.shape)}")
    return logp


def sample_categorical(logp: Tensor, generator: torch.Generator | None = None,
                       deterministic: bool = False) -> tuple[Tensor, Tensor]:
    """One action per row of log-probabilities logp (N, A): (actions (N,), their log-probs (N,)).

    The one sampler behind every discrete policy (tables, MLPs, language models, exact experts),
    so a seed means the same thing everywhere.
    """
    if deterministic:
        actions = logp.argmax(-1)
    else:
        actions = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
    return actions, logp.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


class CategoricalPolicy(nn.Module, ABC):
    """Shared plumbing for discrete-action policies: subclasses define ``log_probs_all``."""

    n_actions: int

    @abstractmethod
    def log_probs_all(self, obs: Tensor) -> Tensor:
        """log pi(. | s) for observations obs (..., obs_shape) -> (..., A)."""

    def _check_actions(self, actions: Tensor) -> None:
        if actions.dtype.is_floating_point:
            raise ValueError("actions: a categorical policy needs integer actions")
        if actions.numel() and (actions.min() < 0 or actions.max() >= self.n_actions):
            raise ValueError(f"actions: must lie in [0, {self.n_actions}), got range "
                             f"[{int(actions.min())}, {int(actions.max())}]")

    def log_prob(self, batch: TrajectoryBatch) -> Tensor:
        self._check_actions(batch.actions[batch.mask])  # before the cast: float actions are refused
        actions = batch.actions.long()
        logp = self.log_probs_all(batch.obs)  # (B, T, A)
        chosen = logp.gather(-1, actions.clamp(0, self.n_actions - 1).unsqueeze(-1)).squeeze(-1)  # (B, T)
        return torch.where(batch.mask, chosen, torch.zeros_like(chosen))

    def entropy(self, batch: TrajectoryBatch) -> Tensor:
        logp = self.log_probs_all(batch.obs)  # (B, T, A)
        h = -(logp.exp() * torch.nan_to_num(logp, neginf=0.0)).sum(-1)  # 0 * log 0 = 0
        return torch.where(batch.mask, h, torch.zeros_like(h))

    def probs(self, obs: Tensor) -> Tensor:
        return self.log_probs_all(obs).exp()

    def label_distribution(self, batch: TrajectoryBatch) -> Tensor:
        """log pi(. | s_t) at every step, (B, T, A): the soft label of a categorical teacher (docs/equations.md §10)."""
        obs = batch.obs if batch.obs.dtype.is_floating_point else torch.where(
            batch.mask.view(batch.mask.shape + (1,) * (batch.obs.ndim - 2)), batch.obs, torch.zeros_like(batch.obs))
        return self.log_probs_all(obs)

    @torch.no_grad()
    def sample(
        self, obs: Tensor, generator: torch.Generator | None = None, deterministic: bool = False
    ) -> tuple[Tensor, Tensor]:
        return sample_categorical(self.log_probs_all(obs), generator, deterministic)  # (N, A) -> (N,), (N,)

    @torch.no_grad()
    def label(self, batch: TrajectoryBatch) -> Tensor:
        """The most likely action at every step, (B, T): any categorical policy can serve as an expert."""
        return self.log_probs_all(batch.obs).argmax(-1)


class TabularPolicy(CategoricalPolicy):
    """pi(a|s) = softmax(theta[s])_a over integer state ids; obs are long tensors (..., )."""

    def __init__(self, n_states: int, n_actions: int, init_scale: float = 0.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.n_states, self.n_actions = check_int(n_states, "n_states", 1), check_int(n_actions, "n_actions", 1)
        init_scale = check_number(init_scale, "init_scale")
        theta = torch.randn(n_states, n_actions, generator=generator) * init_scale
        # init_scale = 0: a state without data keeps the uniform policy, the uninformed learner.
        self.theta = nn.Parameter(theta)

    @classmethod
    def from_table(cls, pi: np.ndarray | Tensor) -> "TabularPolicy":
        """A fixed policy from a table pi[s, a] (e.g. the optimal policy of value iteration)."""
        pi = torch.as_tensor(np.asarray(pi), dtype=torch.float32)
        if pi.ndim != 2 or not torch.allclose(pi.sum(-1), torch.ones(pi.shape[0]), atol=1e-5):
            raise ValueError("pi: must be a (S, A) table whose rows are distributions")
        policy = cls(*pi.shape)
        policy.theta.data = pi.log()  # log 0 = -inf: zero-probability actions stay impossible
        policy.theta.requires_grad_(False)
        return policy

    def log_prob(self, batch: TrajectoryBatch) -> Tensor:
        # Same result as the base class, but indexes theta[s, a] directly: 3x faster backward
        # than materialising (B, T, A) and gathering, which matters for large tabular datasets.
        self._check_actions(batch.actions[batch.mask])
        actions = batch.actions.long()
        obs = self._check_obs(batch.obs)
        logp = torch.log_softmax(self.theta, dim=-1)[obs, actions.clamp(0, self.n_actions - 1)]  # (B, T)
        return torch.where(batch.mask, logp, torch.zeros_like(logp))

    def _check_obs(self, obs: Tensor) -> Tensor:
        obs = obs.long()
        if obs.numel() and (obs.min() < 0 or obs.max() >= self.n_states):
            raise ValueError(f"obs: state ids must lie in [0, {self.n_states})")
        return obs

    def log_probs_all(self, obs: Tensor) -> Tensor:
        obs = self._check_obs(obs)
        return torch.log_softmax(self.theta, dim=-1)[obs]  # (..., A)

    def table(self) -> np.ndarray:
        """pi[s, a] as a numpy array, for the exact solvers in :mod:`minirl.mdp`."""
        return torch.softmax(self.theta.detach(), dim=-1).double().numpy()


class MLPPolicy(CategoricalPolicy):
    """pi(. | s) = softmax(MLP(s)) over feature-vector observations (..., obs_dim)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...] = (64, 64), seed: int = 0):
        super().__init__()
        self.obs_dim, self.n_actions = check_int(obs_dim, "obs_dim", 1), check_int(n_actions, "n_actions", 1)
        hidden, seed = _check_hidden(hidden), check_seed(seed)
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)  # weights depend on the seed only, not on global state
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        layers.append(nn.Linear(width, n_actions))
        self.net = nn.Sequential(*layers)
        torch.random.set_rng_state(gen_state)

    def log_probs_all(self, obs: Tensor) -> Tensor:
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"obs: last dimension must be obs_dim = {self.obs_dim}, got {obs.shape[-1]}")
        return torch.log_softmax(self.net(obs.float()), dim=-1)


class SlipPolicy(CategoricalPolicy):
    """pi_eps(a|s) = (1 - eps) pi(a|s) + eps (1 - pi(a|s)) / (A - 1).

    For a deterministic pi this takes pi's action with probability 1 - eps and a uniformly
    random *other* action otherwise: a learner whose per-state error is exactly eps on the
    states it has learned. A uniform pi (a state never trained on) stays uniform.
    Used by the compounding-error experiment to fix the epsilon of survey Theorems 2.1 / 2.3.
    """

    def __init__(self, policy: CategoricalPolicy, epsilon: float):
        super().__init__()
        epsilon = check_probability(epsilon, "epsilon")
        if policy.n_actions < 2:
            raise ValueError("policy: slipping needs at least 2 actions")
        self.policy, self.epsilon, self.n_actions = policy, epsilon, policy.n_actions

    def _slip(self, p: Tensor) -> Tensor:
        return (1 - self.epsilon) * p + self.epsilon * (1 - p) / (self.n_actions - 1)

    def log_probs_all(self, obs: Tensor) -> Tensor:
        return self._slip(self.policy.probs(obs)).log()

    def log_prob(self, batch: TrajectoryBatch) -> Tensor:
        # The formula acts action by action, so the wrapped policy's log_prob is all we need.
        logp = self._slip(self.policy.log_prob(batch).exp()).log()
        return torch.where(batch.mask, logp, torch.zeros_like(logp))


class MixturePolicy(nn.Module):
    """Roll-in policy pi_i = beta pi* + (1 - beta) pi_hat of DAgger (Ross et al. 2011).

    At every step and for every row independently, the expert acts with probability beta and
    the learner otherwise. Works with any two policies that can ``sample`` (a table, an MLP, a
    language model). The log-probs it returns are those of whichever policy acted, not of the
    mixture: DAgger relabels these steps and never trains on them.
    """

    def __init__(self, expert: Policy, learner: Policy, beta: float):
        super().__init__()
        beta = check_probability(beta, "beta")
        self.expert, self.learner, self.beta = expert, learner, beta

    @torch.no_grad()
    def sample(
        self, obs: Tensor, generator: torch.Generator | None = None, deterministic: bool = False
    ) -> tuple[Tensor, Tensor]:
        a_learner, lp_learner = self.learner.sample(obs, generator=generator, deterministic=deterministic)
        if self.beta == 0.0:
            return a_learner, lp_learner
        a_expert, lp_expert = self.expert.sample(obs, generator=generator, deterministic=deterministic)
        use_expert = torch.rand(a_learner.shape[0], generator=generator) < self.beta  # (N,)
        shape = (-1,) + (1,) * (a_learner.ndim - 1)
        return (torch.where(use_expert.view(shape), a_expert, a_learner),
                torch.where(use_expert, lp_expert, lp_learner))


# ----------------------------------------------------------------------------
# Continuous actions and value functions (actor-critic methods, docs/equations.md §6)
# ----------------------------------------------------------------------------

def _check_hidden(hidden: tuple[int, ...]) -> tuple[int, ...]:
    """Hidden widths: a sequence of integers >= 1 (possibly empty: a linear model)."""
    if isinstance(hidden, (int, np.integer, str)) or not hasattr(hidden, "__iter__"):
        raise ValueError(f"hidden: must be a sequence of integers >= 1, got {hidden!r}")
    return tuple(check_int(h, "hidden", 1) for h in hidden)


def _mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, out_gain: float, seed: int) -> nn.Sequential:
    """tanh MLP with orthogonal weights (gain sqrt 2 hidden, ``out_gain`` last) and zero biases.

    The usual actor-critic initialisation (Andrychowicz et al. 2021): a small ``out_gain`` on a
    policy head starts it near its mean action. Weights depend on ``seed`` only.
    """
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    widths = (in_dim, *hidden, out_dim)
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layer = nn.Linear(widths[i], widths[i + 1])
        last = i == len(widths) - 2
        nn.init.orthogonal_(layer.weight, gain=out_gain if last else math.sqrt(2))
        nn.init.zeros_(layer.bias)
        layers += [layer] if last else [layer, nn.Tanh()]
    torch.random.set_rng_state(gen_state)
    return nn.Sequential(*layers)


def _check_features(obs: Tensor, obs_dim: int) -> Tensor:
    if obs.shape[-1] != obs_dim:
        raise ValueError(f"obs: last dimension must be obs_dim = {obs_dim}, got {obs.shape[-1]}")
    return obs.float()


class GaussianPolicy(nn.Module):
    """a ~ N(mu(s), diag(sigma^2)): mean mu = tanh MLP(s), state-independent log sigma (a parameter).

    Observations are feature vectors (..., obs_dim); actions are (..., act_dim) floats,
    sampled *unbounded*: a bounded action space is the environment's business (the PPO
    collector clips what it sends to the env to the action space, as CleanRL's ``ClipAction``
    does, and keeps the unclipped action, whose log-prob this policy knows). ``log_prob``
    sums log N(a_i; mu_i, sigma_i) over the action dimensions, so it is (B, T).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (64, 64),
                 log_std_init: float = 0.0, seed: int = 0):
        super().__init__()
        self.obs_dim, self.act_dim = check_int(obs_dim, "obs_dim", 1), check_int(act_dim, "act_dim", 1)
        log_std_init = check_number(log_std_init, "log_std_init")
        self.net = _mlp(obs_dim, _check_hidden(hidden), act_dim, out_gain=0.01, seed=check_seed(seed))
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def mean(self, obs: Tensor) -> Tensor:
        """mu(s), (..., act_dim)."""
        return self.net(_check_features(obs, self.obs_dim))

    @torch.no_grad()
    def label(self, batch: TrajectoryBatch) -> Tensor:
        """The mean action at every step, (B, T, act_dim): a trained Gaussian policy can be DAgger's expert."""
        return self.mean(batch.obs)

    def _check_actions(self, actions: Tensor) -> None:
        if not actions.dtype.is_floating_point:
            raise ValueError("actions: a Gaussian policy needs float (continuous) actions, got integers")
        if actions.shape[-1] != self.act_dim:
            raise ValueError(f"actions: last dimension must be act_dim = {self.act_dim}, "
                             f"got shape {tuple(actions.shape)}")

    def log_prob(self, batch: TrajectoryBatch) -> Tensor:
        if batch.actions.ndim != 3:
            raise ValueError(f"actions: must have shape (B, T, act_dim), got {tuple(batch.actions.shape)}")
        self._check_actions(batch.actions)
        z = (batch.actions - self.mean(batch.obs)) * torch.exp(-self.log_std)  # (B, T, act_dim)
        logp = (-0.5 * z**2 - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)  # (B, T)
        return torch.where(batch.mask, logp, torch.zeros_like(logp))

    def entropy(self, batch: TrajectoryBatch) -> Tensor:
        h = (0.5 * math.log(2 * math.pi * math.e) + self.log_std).sum()  # H of N(mu, sigma^2), summed over dims
        return torch.where(batch.mask, h.expand(batch.mask.shape), torch.zeros((), dtype=h.dtype))

    @torch.no_grad()
    def sample(
        self, obs: Tensor, generator: torch.Generator | None = None, deterministic: bool = False
    ) -> tuple[Tensor, Tensor]:
        mu = self.mean(obs)  # (N, act_dim)
        std = self.log_std.exp()
        eps = torch.zeros_like(mu) if deterministic else torch.randn(mu.shape, generator=generator)
        actions = mu + std * eps  # (N, act_dim)
        logp = (-0.5 * eps**2 - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)  # (N,)
        return actions, logp


@runtime_checkable
class ValueFunction(Protocol):
    """A state-value estimate V(s) (see module docstring)."""

    def values(self, batch: TrajectoryBatch) -> Tensor: ...

    def value(self, obs: Tensor) -> Tensor: ...


class ValueMLP(nn.Module):
    """V(s) = tanh MLP(s) over feature-vector observations (..., obs_dim)."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...] = (64, 64), seed: int = 0):
        super().__init__()
        self.obs_dim = check_int(obs_dim, "obs_dim", 1)
        self.net = _mlp(obs_dim, _check_hidden(hidden), 1, out_gain=1.0, seed=check_seed(seed))

    def value(self, obs: Tensor) -> Tensor:
        return self.net(_check_features(obs, self.obs_dim)).squeeze(-1)  # (...,)

    def values(self, batch: TrajectoryBatch) -> Tensor:
        v = self.value(batch.obs)  # (B, T)
        return torch.where(batch.mask, v, torch.zeros_like(v))


class TabularValue(nn.Module):
    """V(s) = v[s], a free table over integer state ids (initialised to zero)."""

    def __init__(self, n_states: int):
        super().__init__()
        self.n_states = check_int(n_states, "n_states", 1)
        self.v = nn.Parameter(torch.zeros(n_states))

    def value(self, obs: Tensor) -> Tensor:
        obs = obs.long()
        if obs.numel() and (obs.min() < 0 or obs.max() >= self.n_states):
            raise ValueError(f"obs: state ids must lie in [0, {self.n_states})")
        return self.v[obs]

    def values(self, batch: TrajectoryBatch) -> Tensor:
        v = self.value(torch.where(batch.mask, batch.obs.long(), 0))  # (B, T); padding may hold any id
        return torch.where(batch.mask, v, torch.zeros_like(v))


def _storage_spans(module: nn.Module) -> list[tuple[torch.device, int, int]]:
    """(device, start, end) of the memory behind each parameter's *storage* (not just its first element)."""
    spans = []
    for p in module.parameters():
        storage = p.untyped_storage()
        if storage.nbytes() > 0:
            spans.append((p.device, storage.data_ptr(), storage.data_ptr() + storage.nbytes()))
    return spans


def check_not_shared(policy: nn.Module, reference: nn.Module) -> None:
    """Refuse a reference model that shares parameter memory with the policy (it would move with it).

    Compared by storage, not by ``data_ptr``: a reference parameter that is a slice or view of a
    policy parameter (``nn.Parameter(policy.theta[1:])``, ``theta.view(...)``) starts elsewhere but
    lives in the same storage, and any overlap of two storages counts.
    """
    ours = _storage_spans(policy)
    for device, start, end in _storage_spans(reference):
        if any(device == d and start < e and s < end for d, s, e in ours):
            raise ValueError("reference: shares parameters with the policy; pass a frozen copy (frozen_reference)")


def action_count(model: object) -> int | None:
    """How many discrete actions (tokens) ``model`` acts over or reads, where it says; else None.

    Read from ``n_actions`` (categorical and token policies, exact experts, reward tables), else a
    HuggingFace config's ``vocab_size``, else from what the model wraps (``model``, ``policy``,
    ``scorer``, ``features``: an LM reward model's backbone, a discriminator's scorer, ...).
    """
    seen: set[int] = set()

    def find(obj: object, depth: int) -> int | None:
        if obj is None or id(obj) in seen or depth > 3:
            return None
        seen.add(id(obj))
        n = getattr(obj, "n_actions", None)
        if isinstance(n, (int, np.integer)) and not isinstance(n, bool):
            return int(n)
        vocab = getattr(getattr(obj, "config", None), "vocab_size", None)
        if isinstance(vocab, (int, np.integer)) and not isinstance(vocab, bool):
            return int(vocab)
        for name in ("model", "policy", "scorer", "features"):
            inner = obj.__dict__.get(name) if hasattr(obj, "__dict__") else None
            if inner is None and isinstance(obj, nn.Module):
                inner = obj._modules.get(name)
            found = find(inner, depth + 1)
            if found is not None:
                return found
        return None

    return find(model, 0)


def check_same_actions(first: object, second: object, first_name: str = "policy",
                       second_name: str = "reference") -> None:
    """Refuse two models that meet (a policy and its reference, teacher or reward model) but act over
    different action sets / vocabularies: a token id means another token to each, and log-ratios or
    scores across them are meaningless. A model that does not say its count (``action_count``) passes."""
    a, b = action_count(first), action_count(second)
    if a is not None and b is not None and a != b:
        raise ValueError(f"{second_name}: has {b} actions (vocabulary size) but the {first_name} has {a}; "
                         "both must act over the same vocabulary")
