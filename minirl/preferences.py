"""Labelling pairs: which of two trajectories an annotator prefers (survey §4.1; docs/equations.md §5).

Every preference data set in the library is made by one labeller. Given each pair's two rewards
r_a, r_b (a gold reward, or an annotator's own rubric), a temperature tau >= 0 and a flip probability eps:

    tau = 0:   prefer a  iff  r_a >= r_b                     (a tie keeps a: the caller's order)
    tau > 0:   prefer a  iff  u < sigma((r_a - r_b) / tau)   u ~ U(0, 1): Bradley-Terry sampling
    then:      flipped   iff  v < eps                        v ~ U(0, 1): random label noise
               prefer a  <-   prefer a XOR flipped

The temperature makes errors concentrate on close pairs (an ambiguous annotator); the flips are
uniform over pairs (a careless one). A systematic annotator is a different *reward* passed in
(r_a = gold + a bonus), not a different labeller.

Design: the uniforms u and v are arguments, not drawn here, so that every caller keeps its own order of
random draws (a data set made with one seed stays the same data set); :func:`draw_uniforms` draws both,
u first, for callers without an order of their own. Shapes: every tensor (B,), one entry per pair.
:func:`resample_pairs` is the bootstrap of a labelled set (ensemble members that see different data).
"""

from __future__ import annotations

import torch
from torch import Tensor

from minirl.checks import check_number, check_probability
from minirl.data import Preferences

__all__ = ["label_pairs", "draw_uniforms", "resample_pairs"]


def draw_uniforms(n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """(u, v): n uniforms for the Bradley-Terry draw, then n for the flips, from ``generator``."""
    return torch.rand(n, generator=generator), torch.rand(n, generator=generator)


def label_pairs(r_a: Tensor, r_b: Tensor, temperature: float = 0.0, noise: float = 0.0,
                u_choice: Tensor | None = None, u_flip: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(prefer_a, flipped), both bool (B,), by the rule of the module docstring.

    Args:
        r_a, r_b: the two rewards of each pair, (B,).
        temperature: tau >= 0; 0 is the deterministic "larger reward wins".
        noise: eps in [0, 1], the probability of flipping a label.
        u_choice: uniforms (B,) for the Bradley-Terry draw; needed when temperature > 0.
        u_flip: uniforms (B,) for the flips; needed when noise > 0 (without them nothing is flipped).
    """
    temperature = check_number(temperature, "temperature", 0.0)
    noise = check_probability(noise, "noise")
    if r_a.ndim != 1 or r_b.shape != r_a.shape:
        raise ValueError(f"r_a, r_b: need two reward vectors of the same length, got {tuple(r_a.shape)} and "
                         f"{tuple(r_b.shape)}")
    for name, u, needed in (("u_choice", u_choice, temperature > 0), ("u_flip", u_flip, noise > 0)):
        if u is None and needed:
            raise ValueError(f"{name}: uniforms are needed for {'temperature > 0' if name == 'u_choice' else 'noise > 0'}")
        if u is not None and u.shape != r_a.shape:
            raise ValueError(f"{name}: must have the pairs' shape {tuple(r_a.shape)}, got {tuple(u.shape)}")
    if temperature == 0.0:
        prefer_a = r_a >= r_b
    else:
        prefer_a = u_choice < torch.sigmoid((r_a - r_b) / temperature)  # docs/equations.md §5
    flipped = u_flip < noise if u_flip is not None else torch.zeros_like(prefer_a)
    prefer_a = prefer_a ^ flipped
    return prefer_a, flipped


def resample_pairs(prefs: Preferences, generator: torch.Generator | None = None) -> Preferences:
    """A bootstrap resample of ``prefs``: as many pairs, drawn uniformly with replacement (one randint draw)."""
    idx = torch.randint(len(prefs), (len(prefs),), generator=generator)  # (B,)
    return Preferences(chosen=prefs.chosen[idx], rejected=prefs.rejected[idx])
