"""MDPs designed to make one idea visible.

``tightrope``: the compounding-error MDP (survey §2.4, Theorems 2.1 and 2.3). The expert
walks a circular rope of ``length`` positions; at each position exactly one action keeps
its footing. Any other action drops the walker to the bottom of a pit of ``depth`` rungs.
Climbing out takes one specific action per rung, in order; any other action drops it back
to the bottom. So:
  * the expert never visits the pit, and a behaviour-cloned learner has no data there;
  * a learner acting at random in the pit climbs out with probability A^-depth per try
    (1 in 4096 for the defaults): recovery by chance is practically impossible;
  * the expert (the optimal policy for reward 1 per step on the rope) knows every rung, so
    DAgger, which asks it to label the learner's own states, learns to climb out.

``gridworld``: a grid from an ASCII layout, for notebooks and reward-transfer demos.
"""

from __future__ import annotations

import numpy as np

from minirl.mdp import TabularMDP

__all__ = ["tightrope", "gridworld", "TIGHTROPE_DEFAULTS"]

TIGHTROPE_DEFAULTS = dict(length=8, depth=6, n_actions=4, gamma=0.95, seed=0)


def tightrope(length: int = 8, depth: int = 6, n_actions: int = 4, gamma: float = 0.95,
              horizon: int | None = None, seed: int = 0) -> TabularMDP:
    """The compounding-error MDP described in the module docstring.

    States 0..length-1 are rope positions (start at 0); states length..length+depth-1 are
    pit rungs, rung 1 (just below the rope) first and the bottom last. Reward: 1 for the
    footing action on the rope, 0 elsewhere. The footing and climbing actions are drawn
    once from ``seed``, so nothing about them is guessable from the action index.
    """
    for name, value, low in (("length", length, 1), ("depth", depth, 1), ("n_actions", n_actions, 2)):
        if int(value) != value or value < low:
            raise ValueError(f"{name}: must be an integer >= {low}, got {value}")
    rng = np.random.default_rng(seed)
    footing = rng.integers(n_actions, size=length)
    climb = rng.integers(n_actions, size=depth)
    S = length + depth
    bottom = S - 1
    P = np.zeros((S, n_actions, S))
    R = np.zeros((S, n_actions))
    for i in range(length):
        P[i, :, bottom] = 1.0
        P[i, footing[i], bottom] = 0.0
        P[i, footing[i], (i + 1) % length] = 1.0
        R[i, footing[i]] = 1.0
    for j in range(depth):  # state length + j is rung j + 1
        s = length + j
        up = 0 if j == 0 else s - 1  # from rung 1 the climb lands on rope position 0
        P[s, :, bottom] = 1.0
        P[s, climb[j], bottom] = 0.0
        P[s, climb[j], up] = 1.0
    rho0 = np.eye(S)[0]
    names = tuple(f"rope{i}" for i in range(length)) + tuple(f"pit{j + 1}" for j in range(depth))
    return TabularMDP(P=P, R=R, rho0=rho0, gamma=gamma, horizon=horizon, state_names=names)


_MOVES = {"up": (-1, 0), "right": (0, 1), "down": (1, 0), "left": (0, -1)}


def gridworld(layout: str = "S...\n.#..\n...G", slip: float = 0.0, gamma: float = 0.95,
              step_reward: float = 0.0, goal_reward: float = 1.0, horizon: int | None = None) -> TabularMDP:
    """A grid from ASCII: ``S`` start, ``G`` goal (absorbing), ``#`` wall, ``.`` floor.

    Actions up/right/down/left; with probability ``slip`` the move goes to a uniformly random
    other direction. Bumping into a wall or the edge stays put. G is terminal. The reward is
    the expected one, R[s, a] = step_reward + goal_reward * P(enter G | s, a), because a
    TabularMDP stores R[s, a] only: with slip > 0 a move towards G pays its expectation
    whether or not this particular step entered G (returns are the same in expectation).
    """
    rows = [r for r in layout.strip().splitlines()]
    if len({len(r) for r in rows}) != 1:
        raise ValueError("layout: all rows must have the same length")
    if not 0.0 <= slip < 1.0:
        raise ValueError(f"slip: must be in [0, 1), got {slip}")
    cells = [(i, j) for i, r in enumerate(rows) for j, c in enumerate(r) if c != "#"]
    if any(c not in "SG.#" for r in rows for c in r):
        raise ValueError("layout: only the characters S, G, '.', '#' are allowed")
    starts = [k for k, (i, j) in enumerate(cells) if rows[i][j] == "S"]
    goals = [k for k, (i, j) in enumerate(cells) if rows[i][j] == "G"]
    if len(starts) != 1 or len(goals) < 1:
        raise ValueError("layout: needs exactly one S and at least one G")
    index = {c: k for k, c in enumerate(cells)}
    S, A = len(cells), 4
    P = np.zeros((S, A, S))
    R = np.full((S, A), step_reward, dtype=float)
    moves = list(_MOVES.values())
    for k, (i, j) in enumerate(cells):
        if k in goals:
            P[k, :, k] = 1.0
            R[k] = 0.0
            continue
        for a in range(A):
            for b, (di, dj) in enumerate(moves):
                p = (1.0 - slip) if a == b else slip / (A - 1)
                target = index.get((i + di, j + dj), k)
                P[k, a, target] += p
            R[k, a] = step_reward + goal_reward * P[k, a, goals].sum()
    terminal = np.zeros(S, dtype=bool)
    terminal[goals] = True
    names = tuple(f"({i},{j})" for i, j in cells)
    return TabularMDP(P=P, R=R, rho0=np.eye(S)[starts[0]], gamma=gamma, horizon=horizon,
                      terminal=terminal, state_names=names, action_names=tuple(_MOVES))
