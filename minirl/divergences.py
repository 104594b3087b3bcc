"""f-divergences and the imitation rewards derived from them (survey eq. 2-4, Table 4; docs/equations.md §4).

    D_f(P || Q) = sum_x Q(x) f(P(x) / Q(x)),   f convex, f(1) = 0

Adversarial imitation takes P = rho_demo, Q = rho_pi (occupancy measures) and trains a logistic
discriminator D = sigma(h) with the demonstrations as label 1. Its optimal logit is
h* = log rho_demo / rho_pi; write u = e^h for the estimated density ratio. The reward that makes
the policy gradient equal -grad_pi D_f is (derivation: d/dq [q f(p/q)] = f(u) - u f'(u))

    r(h) = u f'(u) - f(u)          (= f*(f'(u)), the convex conjugate at f'(u))

Seed Table 4, worked out:

    name    f(u)                              divergence               r(h)
    airl    -log u                            reverse KL(rho_pi||rho_demo)   h - 1
    gail    -(u+1) log((1+u)/2) + u log u     2 * Jensen-Shannon       log(1 + e^h) - log 2
    fairl   u log u                           forward KL(rho_demo||rho_pi)   e^h

Published code rewards differently; each variant is here under its own name so that the oracle
(``tests/test_adversarial.py``: autograd through an exact occupancy measure) can show which ones
follow the gradient of their divergence:

    gail_minus_log1m_d  -log(1 - D) = log(1 + e^h)   `imitation`'s GAIL: the derived rule + log 2
    gail_log_d          log D = -log(1 + e^-h)      GAN's "non-saturating" variant: same fixed point,
                                                     a different gradient away from it
    airl_logit          h = log D - log(1 - D)      Fu et al.'s AIRL: the derived rule + 1
    fairl_h_exp_h       -h e^h                      Ghasemipour et al.'s FAIRL code: right *value*
                                                     (E_pi[-h* e^h*] = -KL(rho_demo||rho_pi)), wrong
                                                     gradient

Constants do not change a policy gradient, but they do change what an agent that can end its
episode prefers: a positive reward pays for staying alive, a negative one for dying early (the
survival bias; ``AdversarialConfig(absorbing=True)`` removes it).

Everything here is a pure function of tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["FDivergence", "DIVERGENCES", "RewardRule", "REWARD_RULES", "get_divergence", "get_reward_rule",
           "f_divergence", "kl", "js"]

_LOG2 = math.log(2.0)


@dataclass(frozen=True)
class FDivergence:
    """One member of the family: its generator f, derivative f', and the derived reward r(h)."""

    name: str
    divergence: str
    """What D_f(rho_demo || rho_pi) is, in words."""
    f: Callable[[Tensor], Tensor]
    """f(u), u = P / Q > 0."""
    f_prime: Callable[[Tensor], Tensor]
    """f'(u)."""
    reward: Callable[[Tensor], Tensor]
    """r(h) = u f'(u) - f(u) with u = e^h, written in h for numerical stability."""


def _gail_f(u: Tensor) -> Tensor:
    return -(u + 1) * torch.log((1 + u) / 2) + torch.xlogy(u, u)


DIVERGENCES: dict[str, FDivergence] = {
    "airl": FDivergence(
        "airl", "reverse KL, KL(rho_pi || rho_demo)",
        f=lambda u: -torch.log(u),
        f_prime=lambda u: -1.0 / u,
        reward=lambda h: h - 1.0,  # u * (-1/u) - (-log u) = log u - 1
    ),
    "gail": FDivergence(
        "gail", "Jensen-Shannon (2 JS(rho_demo, rho_pi))",
        f=_gail_f,
        f_prime=lambda u: torch.log(2 * u / (1 + u)),
        reward=lambda h: F.softplus(h) - _LOG2,  # log(1 + u) - log 2
    ),
    "fairl": FDivergence(
        "fairl", "forward KL, KL(rho_demo || rho_pi)",
        f=lambda u: torch.xlogy(u, u),
        f_prime=lambda u: torch.log(u) + 1.0,
        reward=torch.exp,  # u (log u + 1) - u log u = u
    ),
}
"""Seed Table 4 (docs/equations.md §4). Add an f here and every trainer and oracle picks it up."""


@dataclass(frozen=True)
class RewardRule:
    """A reward r(h) computed from the discriminator's logit, and the divergence it belongs to."""

    name: str
    divergence: str
    reward: Callable[[Tensor], Tensor]
    source: str


REWARD_RULES: dict[str, RewardRule] = {
    **{name: RewardRule(name, name, d.reward, "derived: r(h) = u f'(u) - f(u), docs/equations.md §4")
       for name, d in DIVERGENCES.items()},
    "gail_minus_log1m_d": RewardRule("gail_minus_log1m_d", "gail", F.softplus,
                                     "-log(1 - D), the `imitation` library's GAIL"),
    "gail_log_d": RewardRule("gail_log_d", "gail", lambda h: -F.softplus(-h),
                             "log D, GAN's non-saturating variant (Ghasemipour et al.'s GAIL code)"),
    "airl_logit": RewardRule("airl_logit", "airl", lambda h: h, "log D - log(1 - D), Fu et al. 2017"),
    "fairl_h_exp_h": RewardRule("fairl_h_exp_h", "fairl", lambda h: -h * torch.exp(h),
                                "-h e^h, Ghasemipour et al.'s FAIRL code"),
}
"""Every reward rule by name: the derived default of each divergence, and the published variants."""


def get_divergence(name: str) -> FDivergence:
    """The divergence called ``name``; an unknown one is a ValueError listing the valid names."""
    if not isinstance(name, str) or name not in DIVERGENCES:
        raise ValueError(f"divergence: unknown divergence {name!r}; valid: {sorted(DIVERGENCES)}")
    return DIVERGENCES[name]


def get_reward_rule(name: str) -> RewardRule:
    """The reward rule called ``name``; an unknown one is a ValueError listing the valid names."""
    if not isinstance(name, str) or name not in REWARD_RULES:
        raise ValueError(f"reward: unknown reward rule {name!r}; valid: {sorted(REWARD_RULES)}")
    return REWARD_RULES[name]


def f_divergence(name: str, p: Tensor, q: Tensor) -> Tensor:
    """D_f(p || q) = sum q f(p / q) over all entries of two non-negative arrays.

    For measures of equal mass this is the f-divergence (>= 0, 0 iff p = q). Occupancy measures of
    an MDP whose episodes can end have policy-dependent mass (the expected discounted length); the
    sum is then still the objective whose gradient the derived reward follows (the oracle holds),
    but it can be negative and its minimum need not be 0.

    Entries where both p and q vanish contribute nothing. Where q = 0 < p the divergence is +inf
    for every f here. Differentiable in both arguments where finite.
    """
    div = get_divergence(name)
    p, q = torch.as_tensor(p), torch.as_tensor(q)
    if p.shape != q.shape:
        raise ValueError(f"p, q: must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    support = q > 0
    if bool(((~support) & (p > 0)).any()):
        return torch.tensor(math.inf, dtype=q.dtype)
    u = torch.where(support, p / torch.where(support, q, torch.ones_like(q)), torch.ones_like(q))
    if name == "airl":  # -log(p/q) blows up where p = 0 < q: reverse KL is +inf there
        if bool((support & (p == 0)).any()):
            return torch.tensor(math.inf, dtype=q.dtype)
    return torch.where(support, q * div.f(u), torch.zeros_like(q)).sum()


def kl(p: Tensor, q: Tensor) -> Tensor:
    """KL(p || q) = sum p log(p / q) for two distributions (normalised here); +inf off q's support."""
    p, q = torch.as_tensor(p) / torch.as_tensor(p).sum(), torch.as_tensor(q) / torch.as_tensor(q).sum()
    if bool(((q == 0) & (p > 0)).any()):
        return torch.tensor(math.inf, dtype=p.dtype)
    return (torch.xlogy(p, p) - torch.xlogy(p, torch.where(q > 0, q, torch.ones_like(q)))).sum()


def js(p: Tensor, q: Tensor) -> Tensor:
    """Jensen-Shannon divergence JS(p, q) = (KL(p||m) + KL(q||m)) / 2, m = (p + q) / 2, in nats (<= log 2)."""
    p, q = torch.as_tensor(p) / torch.as_tensor(p).sum(), torch.as_tensor(q) / torch.as_tensor(q).sum()
    m = (p + q) / 2
    return (kl(p, m) + kl(q, m)) / 2
