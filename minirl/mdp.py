"""Tabular MDPs, with and without reward, and their exact solvers.

An MDP is {S, A, T, R, rho0, gamma} (survey §2.1); an MDP\\R is the same tuple
without R (survey §2.3): the learner sees behaviour, not reward. Everything here
is exact linear algebra on small tables, in numpy, so it can serve as the
answer key for the learning algorithms elsewhere in the library.

Symbols (docs/equations.md §1):
    P[s, a, s']   transition probabilities, shape (S, A, S)
    R[s, a]       expected reward, shape (S, A); ``None`` for an MDP\\R
    rho0[s]       initial state distribution, shape (S,)
    gamma         discount in (0, 1]
    pi[s, a]      a stochastic policy, shape (S, A); time-indexed ones are (T, S, A)

Occupancy convention (used everywhere in the library): the *unnormalised*
discounted occupancy rho(s, a) = sum_t gamma^t Pr(s_t = s, a_t = a). It sums to
1 / (1 - gamma) over an infinite horizon and to sum_{t<T} gamma^t over a finite
horizon T; multiply by (1 - gamma) (or divide by that sum) for a distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minirl.checks import check_int, check_number

_BACKUP_ROWS = 4096
"""Rows of P's (S·A, S) view per matrix-vector product in ``TabularMDP.expected_next``."""


__all__ = [
    "TabularMDP",
    "policy_evaluation",
    "value_iteration",
    "policy_iteration",
    "soft_value_iteration",
    "SoftSolution",
    "state_distributions",
    "occupancy_measure",
    "greedy_policy",
    "from_gymnasium",
]

_ATOL = 1e-6  # tolerance for "sums to one"


def _fail(field_name: str, rule: str) -> None:
    raise ValueError(f"{field_name}: {rule}")


def _frozen(arr: np.ndarray) -> bool:
    """True when neither ``arr`` nor any array it views can be written (safe to share)."""
    while isinstance(arr, np.ndarray):
        if arr.flags.writeable:
            return False
        arr = arr.base
    return True


@dataclass(frozen=True)
class TabularMDP:
    """A finite MDP (or MDP\\R when ``R is None``), validated on construction.

    Attributes:
        P: transition tensor P[s, a, s'], shape (S, A, S); each P[s, a] a distribution.
        R: expected reward R[s, a], shape (S, A), or ``None`` for an MDP without reward.
        rho0: initial state distribution, shape (S,).
        gamma: discount factor in (0, 1].
        horizon: episode length T (an int >= 1; not a bool, not 3.0), or ``None`` for an unbounded episode.
        terminal: boolean mask (S,) of states that end an episode on entry. Such a
            state must be absorbing with zero reward, so that the exact solvers (which
            never look at this mask) agree with the environment (which stops there).
        state_names / action_names: optional labels for printing and plots.
    """

    P: np.ndarray
    R: np.ndarray | None
    rho0: np.ndarray
    gamma: float
    horizon: int | None = None
    terminal: np.ndarray | None = None
    state_names: tuple[str, ...] | None = None
    action_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # Validation reads P in a few passes and allocates nothing of its size: at S = 5000,
        # A = 10, P is 2 GB, and every temporary the size of P (an isfinite mask, a
        # renormalised copy) costs as much as a pass. The row sums are finite iff every entry
        # is (a NaN or an infinity reaches its row's sum), so one sum checks both.
        given = self.P
        P = np.ascontiguousarray(given, dtype=np.float64)  # (S, A, S); a copy only if dtype/layout differ
        if P.ndim != 3 or P.shape[0] != P.shape[2] or P.shape[0] == 0 or P.shape[1] == 0:
            _fail("P", f"must have shape (S, A, S) with S, A >= 1, got {P.shape}")
        S, A, _ = P.shape
        row_sums = P.sum(axis=2)  # (S, A)
        if not np.all(np.isfinite(row_sums)) and not np.all(np.isfinite(P)):
            _fail("P", "entries must be finite")
        if not P.min() >= 0:
            _fail("P", "probabilities must be non-negative")
        if not np.allclose(row_sums, 1.0, atol=_ATOL):
            s, a = np.argwhere(~np.isclose(row_sums, 1.0, atol=_ATOL))[0]
            _fail("P", f"each row P[s, a, :] must sum to 1; P[{s}, {a}, :] sums to {row_sums[s, a]:.6g}")
        R = None
        if self.R is not None:
            R = np.asarray(self.R, dtype=np.float64)
            if R.shape != (S, A):
                _fail("R", f"must have shape (S, A) = {(S, A)}, got {R.shape}")
            if not np.all(np.isfinite(R)):
                _fail("R", "entries must be finite")
        rho0 = np.asarray(self.rho0, dtype=np.float64)
        if rho0.shape != (S,):
            _fail("rho0", f"must have shape (S,) = {(S,)}, got {rho0.shape}")
        if np.any(rho0 < 0) or not np.isclose(rho0.sum(), 1.0, atol=_ATOL):
            _fail("rho0", "must be a probability distribution (non-negative, sums to 1)")
        gamma = check_number(self.gamma, "gamma")  # a real number: True is not gamma = 1
        if not (0.0 < gamma <= 1.0):
            _fail("gamma", f"must be in (0, 1], got {self.gamma}")
        if self.horizon is not None:  # an integer, not a bool: horizon=True is not horizon 1
            check_int(self.horizon, "horizon", 1)
        terminal = None
        if self.terminal is not None:
            terminal = np.asarray(self.terminal, dtype=bool)
            if terminal.shape != (S,):
                _fail("terminal", f"must have shape (S,) = {(S,)}, got {terminal.shape}")
            for s in np.flatnonzero(terminal):
                if not np.allclose(P[s, :, s], 1.0):
                    _fail("terminal", f"terminal state {s} must be absorbing (P[{s}, a, {s}] = 1)")
                if R is not None and np.any(R[s] != 0):
                    _fail("terminal", f"terminal state {s} must have zero reward")
        if self.state_names is not None and len(self.state_names) != S:
            _fail("state_names", f"must have {S} entries")
        if self.action_names is not None and len(self.action_names) != A:
            _fail("action_names", f"must have {A} entries")
        # Renormalise what passed the 1e-6 check but is off by more than rounding: samplers
        # (numpy's Generator.choice) demand sums within ~1e-8, so a row off by 1e-7 would pass
        # here and crash TabularEnv.step. Rows already exact are left bit-for-bit unchanged.
        # Store validated, read-only copies: the MDP is a value, not a mutable buffer. P is
        # copied once, and not at all when it is already another MDP's frozen P (replace,
        # with_reward, without_reward).
        off = np.abs(row_sums - 1.0) > 1e-12  # (S, A): rows to renormalise
        if not _frozen(P) or off.any():
            if P is given or _frozen(P):  # never write into the caller's array
                P = P.copy()
            P[off] /= row_sums[off][:, None]
            P.setflags(write=False)
        if abs(rho0.sum() - 1.0) > 1e-12:
            rho0 = rho0 / rho0.sum()
        for name, arr in (("P", P), ("R", R), ("rho0", rho0), ("terminal", terminal)):
            if arr is not None and not _frozen(arr):
                arr = arr.copy()
                arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "gamma", gamma)
        if self.horizon is not None:
            object.__setattr__(self, "horizon", int(self.horizon))

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]

    def without_reward(self) -> "TabularMDP":
        """The MDP\\R: the same dynamics with the reward removed (survey §2.3)."""
        return self.replace(R=None)

    def with_reward(self, R: np.ndarray) -> "TabularMDP":
        """The same dynamics with another reward (e.g. a learned one)."""
        return self.replace(R=R)

    def replace(self, **changes) -> "TabularMDP":
        kwargs = dict(
            P=self.P, R=self.R, rho0=self.rho0, gamma=self.gamma, horizon=self.horizon,
            terminal=self.terminal, state_names=self.state_names, action_names=self.action_names,
        )
        kwargs.update(changes)
        return TabularMDP(**kwargs)

    def expected_next(self, V: np.ndarray) -> np.ndarray:
        """(P V)[s, a] = sum_s' P(s'|s, a) V(s'), shape (S, A): the expectation in every backup.

        Matrix-vector products over the (S·A, S) view of P, which read P once, in blocks of
        ``_BACKUP_ROWS`` rows written straight into the result. Written ``gamma * P @ V``, numpy
        evaluates ``(gamma * P) @ V``: a scaled copy of P on every backup (320 MB at S = 2000,
        A = 10), and ``P @ V`` on a 3-d P runs one small product per state; either costs more
        than the one pass. Blocks rather than one tall product: the pass is bound by memory
        bandwidth, and the BLAS kernel streams a block of a few thousand rows faster than the
        whole (S·A, S) matrix at large S (benchmarks/README.md); the sums are the same.
        """
        S, A = self.n_states, self.n_actions
        rows = self.P.reshape(S * A, S)
        out = np.empty(S * A, dtype=np.result_type(rows, V))
        for start in range(0, S * A, _BACKUP_ROWS):
            np.matmul(rows[start:start + _BACKUP_ROWS], V, out=out[start:start + _BACKUP_ROWS])
        return out.reshape(S, A)

    def policy_matrix(self, pi: np.ndarray) -> np.ndarray:
        """P_pi[s, s'] = sum_a pi(a|s) P(s'|s, a), shape (S, S)."""
        return np.einsum("sa,sat->st", self._check_policy(pi), self.P)

    def next_distribution(self, d: np.ndarray, pi: np.ndarray) -> np.ndarray:
        """d'(s') = sum_{s,a} d(s) pi(a|s) P(s'|s, a): one step of the state distribution.

        ``d`` is (S,) or a stack (X, S), ``pi`` is (S, A); returns d's shape. One product of
        the (X, S·A) state-action mass with the (S·A, S) view of P, without forming P_pi.
        """
        S, A = self.n_states, self.n_actions
        mass = d[..., :, None] * pi  # (..., S, A)
        return mass.reshape(*d.shape[:-1], S * A) @ self.P.reshape(S * A, S)

    def _check_policy(self, pi: np.ndarray, time_indexed: bool = False) -> np.ndarray:
        pi = np.asarray(pi, dtype=np.float64)
        shape = (self.n_states, self.n_actions)
        ok = pi.shape == shape or (time_indexed and pi.ndim == 3 and pi.shape[1:] == shape)
        if not ok:
            want = f"{shape} or (T, *{shape})" if time_indexed else f"{shape}"
            _fail("pi", f"must have shape {want}, got {pi.shape}")
        if np.any(pi < -_ATOL) or not np.allclose(pi.sum(axis=-1), 1.0, atol=_ATOL):
            _fail("pi", "each pi[s, :] must be a probability distribution")
        return pi

    def _reward(self, R: np.ndarray | None) -> np.ndarray:
        R = self.R if R is None else np.asarray(R, dtype=np.float64)
        if R is None:
            _fail("R", "this is an MDP without reward (MDP\\R); pass a reward to solve it")
        if R.shape != (self.n_states, self.n_actions):
            _fail("R", f"must have shape {(self.n_states, self.n_actions)}, got {R.shape}")
        return R

    def _discounted(self, what: str) -> None:
        if self.gamma >= 1.0:
            _fail("gamma", f"{what} solves the infinite-horizon discounted problem and needs gamma < 1")


# ----------------------------------------------------------------------------
# Exact solvers (docs/equations.md §1)
# ----------------------------------------------------------------------------

def policy_evaluation(mdp: TabularMDP, pi: np.ndarray, R: np.ndarray | None = None) -> np.ndarray:
    """V^pi = (I - gamma P_pi)^{-1} r_pi, by one linear solve (docs/equations.md §1).

    Args:
        mdp: the MDP (gamma < 1).
        pi: policy pi[s, a], shape (S, A).
        R: reward to evaluate with (default: ``mdp.R``; required for an MDP\\R).
    Returns:
        V, shape (S,).
    """
    mdp._discounted("policy_evaluation")
    R = mdp._reward(R)
    pi = mdp._check_policy(pi)
    r_pi = (pi * R).sum(axis=1)  # (S,)
    return np.linalg.solve(np.eye(mdp.n_states) - mdp.gamma * mdp.policy_matrix(pi), r_pi)


def greedy_policy(Q: np.ndarray) -> np.ndarray:
    """The deterministic policy argmax_a Q[s, a] as a one-hot table (S, A); ties -> lowest index."""
    pi = np.zeros_like(Q)
    pi[np.arange(Q.shape[0]), Q.argmax(axis=1)] = 1.0
    return pi


def value_iteration(
    mdp: TabularMDP,
    R: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 100_000,
    stop: str = "sup",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """V <- max_a [R(s,a) + gamma sum_s' P(s'|s,a) V(s')] until the update is below ``tol``.

    Two stopping rules for the update u = V_{k+1} - V_k (Puterman 1994, §6.3 and §6.6):

    - ``stop="sup"``: stop when max_s |u(s)| < tol. Then ||V_{k+1} - V*||_inf
      < gamma tol / (1 - gamma), and the greedy policy is 2 gamma tol / (1 - gamma)-optimal.
    - ``stop="span"``: stop when the span sp(u) = max_s u(s) - min_s u(s) < tol, which
      ignores a shift shared by every state and so often stops far sooner (pymdptoolbox's
      rule). MacQueen's bounds V_{k+1} + gamma/(1-gamma) min u <= V* <= V_{k+1} + gamma/(1-gamma)
      max u hold at every k; V is returned at their midpoint, so ||V - V*||_inf
      <= gamma tol / (2 (1 - gamma)), and the greedy policy is gamma tol / (1 - gamma)-optimal.

    Each backup is one product with P (``mdp.expected_next``).

    Returns:
        (V, Q, pi): V (S,), Q (S, A) and the greedy deterministic policy (S, A).
    """
    mdp._discounted("value_iteration")
    tol, max_iter = check_number(tol, "tol", 0.0, strict_minimum=True), check_int(max_iter, "max_iter", 1)
    if stop not in ("sup", "span"):
        _fail("stop", f"must be 'sup' or 'span', got {stop!r}")
    R = mdp._reward(R)
    converged = _StoppingRule(stop, tol)
    # BEGIN SOLUTION
    V = np.zeros(mdp.n_states)
    for _ in range(max_iter):
        Q = R + mdp.gamma * mdp.expected_next(V)  # (S, A)
        V_new = Q.max(axis=1)
        if converged(V_new - V):
            V = V_new
            break
        V = V_new
    Q = R + mdp.gamma * mdp.expected_next(V)
    # END SOLUTION
    shift = converged.shift(mdp.gamma)  # 0 under the sup-norm rule
    if shift:  # P's rows sum to one, so P (V + c) = P V + c: no second backup needed
        V, Q = V + shift, Q + mdp.gamma * shift
    return V, Q, greedy_policy(Q)


class _StoppingRule:
    """``rule(u) -> bool`` for an update u = V_{k+1} - V_k: sup-norm or span below ``tol``.

    Remembers the last update so that the span rule can move V to the midpoint of
    MacQueen's bounds afterwards (``shift``), since the span is blind to a common shift.
    """

    def __init__(self, stop: str, tol: float) -> None:
        self.stop, self.tol, self.last = stop, tol, None

    def __call__(self, u: np.ndarray) -> bool:
        self.last = u
        if self.stop == "span":
            return float(u.max() - u.min()) < self.tol
        return float(np.max(np.abs(u))) < self.tol

    def shift(self, gamma: float) -> float:
        if self.stop != "span" or self.last is None:
            return 0.0
        return gamma / (1.0 - gamma) * 0.5 * float(self.last.max() + self.last.min())


def policy_iteration(
    mdp: TabularMDP, R: np.ndarray | None = None, max_iter: int = 10_000
) -> tuple[np.ndarray, np.ndarray]:
    """Howard's policy iteration: exact evaluation, greedy improvement, until stable.

    Returns:
        (V, pi): the optimal values (S,) and a deterministic optimal policy (S, A).
    """
    mdp._discounted("policy_iteration")
    max_iter = check_int(max_iter, "max_iter", 1)
    R = mdp._reward(R)
    pi = greedy_policy(R)
    for _ in range(max_iter):
        V = policy_evaluation(mdp, pi, R)
        Q = R + mdp.gamma * mdp.expected_next(V)
        # Improve only where strictly better, so ties cannot make it cycle.
        current = (pi * Q).sum(axis=1)
        better = Q.max(axis=1) > current + 1e-12
        if not better.any():
            return V, pi
        pi = pi.copy()
        pi[better] = greedy_policy(Q[better])
    raise RuntimeError("policy_iteration did not converge")


@dataclass(frozen=True)
class SoftSolution:
    """Output of :func:`soft_value_iteration`.

    Infinite horizon: Q (S, A), V (S,), pi (S, A).
    Finite horizon T: Q (T, S, A), V (T + 1, S) with V[T] = 0, pi (T, S, A); index t is the step.
    """

    Q: np.ndarray
    V: np.ndarray
    pi: np.ndarray


def _soft_backup(Q: np.ndarray, alpha: float, log_prior: np.ndarray | None,
                 terminal: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """V = alpha log sum_a prior(a|s) exp(Q/alpha), pi = prior exp((Q - V)/alpha), stably.

    A terminal state ends the episode, so it earns no entropy bonus: V = 0 there (otherwise
    an absorbing state would collect alpha log|A| / (1 - gamma) that the environment never pays).
    """
    # BEGIN SOLUTION
    logits = Q / alpha if log_prior is None else Q / alpha + log_prior
    m = logits.max(axis=-1, keepdims=True)
    lse = m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))  # (S, 1)
    pi = np.exp(logits - lse)
    V = alpha * lse[..., 0]
    # END SOLUTION
    if terminal is not None:
        V = np.where(terminal, 0.0, V)
    return V, pi


def soft_value_iteration(
    mdp: TabularMDP,
    alpha: float,
    R: np.ndarray | None = None,
    prior: np.ndarray | None = None,
    horizon: int | None = None,
    tol: float = 1e-10,
    max_iter: int = 100_000,
) -> SoftSolution:
    """Soft (maximum-entropy / KL-regularised) value iteration.

    Without a prior (docs/equations.md §1): Q = R + gamma P V, V = alpha log sum_a exp(Q/alpha),
    pi(a|s) = exp((Q - V)/alpha).
    Terminal states (``mdp.terminal``) have V = 0: the episode stops there.
    With a prior pi_ref (docs/equations.md §6, with alpha = beta): V = alpha log sum_a pi_ref(a|s)
    exp(Q/alpha) and pi = pi_ref exp((Q - V)/alpha), the optimum of reward minus alpha KL(pi || pi_ref).

    Args:
        alpha: temperature > 0; as alpha -> 0 this tends to value iteration.
        R: reward (default ``mdp.R``).
        prior: pi_ref[s, a], shape (S, A), or None for the plain entropy bonus.
        horizon: None for the discounted fixed point (needs gamma < 1); an int T for
            backward induction over T steps with V_T = 0 (any gamma in (0, 1]).
    """
    check_number(alpha, "alpha")
    if not alpha > 0:
        _fail("alpha", f"temperature must be > 0, got {alpha}")
    tol, max_iter = check_number(tol, "tol", 0.0, strict_minimum=True), check_int(max_iter, "max_iter", 1)
    R = mdp._reward(R)
    log_prior = None
    if prior is not None:
        prior = mdp._check_policy(prior)
        with np.errstate(divide="ignore"):
            log_prior = np.log(prior)
    if horizon is not None:
        horizon = check_int(horizon, "horizon", 1)
        S, A = mdp.n_states, mdp.n_actions
        Q = np.zeros((horizon, S, A))
        V = np.zeros((horizon + 1, S))
        pi = np.zeros((horizon, S, A))
        for t in reversed(range(horizon)):  # backward induction from V_T = 0
            Q[t] = R + mdp.gamma * mdp.expected_next(V[t + 1])
            V[t], pi[t] = _soft_backup(Q[t], alpha, log_prior, mdp.terminal)
        return SoftSolution(Q=Q, V=V, pi=pi)
    mdp._discounted("soft_value_iteration without a horizon")
    V = np.zeros(mdp.n_states)
    for _ in range(max_iter):
        Q = R + mdp.gamma * mdp.expected_next(V)
        V_new, _ = _soft_backup(Q, alpha, log_prior, mdp.terminal)
        if np.max(np.abs(V_new - V)) < tol:
            V = V_new
            break
        V = V_new
    Q = R + mdp.gamma * mdp.expected_next(V)
    V, pi = _soft_backup(Q, alpha, log_prior, mdp.terminal)
    return SoftSolution(Q=Q, V=V, pi=pi)


def state_distributions(mdp: TabularMDP, pi: np.ndarray, horizon: int) -> np.ndarray:
    """d_t(s) = Pr(s_t = s) for t = 0..T-1 under pi (undiscounted), shape (T, S).

    ``pi`` may be stationary (S, A) or time-indexed (T, S, A).
    """
    horizon = check_int(horizon, "horizon", 1)
    pi = mdp._check_policy(pi, time_indexed=True)
    if pi.ndim == 3 and pi.shape[0] < horizon:
        _fail("pi", f"time-indexed policy covers {pi.shape[0]} steps, fewer than horizon {horizon}")
    d = np.zeros((horizon, mdp.n_states))
    d[0] = mdp.rho0
    for t in range(horizon - 1):
        pi_t = pi[t] if pi.ndim == 3 else pi
        d[t + 1] = mdp.next_distribution(d[t], pi_t)
    return d


def occupancy_measure(mdp: TabularMDP, pi: np.ndarray, horizon: int | None = None) -> np.ndarray:
    """Unnormalised discounted state-action occupancy rho(s, a), shape (S, A) (docs/equations.md §1).

    Infinite horizon (``horizon=None``, gamma < 1): d^T = rho0^T (I - gamma P_pi)^{-1},
    rho(s, a) = d(s) pi(a|s); sums to 1 / (1 - gamma).
    Finite horizon T: rho(s, a) = sum_{t<T} gamma^t Pr(s_t = s) pi_t(a|s); sums to sum_{t<T} gamma^t.
    """
    if horizon is None:
        mdp._discounted("occupancy_measure without a horizon")
        pi = mdp._check_policy(pi)
        # BEGIN SOLUTION
        d = np.linalg.solve((np.eye(mdp.n_states) - mdp.gamma * mdp.policy_matrix(pi)).T, mdp.rho0)
        return d[:, None] * pi
        # END SOLUTION
    d = state_distributions(mdp, pi, horizon)  # (T, S)
    pi = np.asarray(pi, dtype=np.float64)
    # BEGIN SOLUTION
    pi_t = pi[:horizon] if pi.ndim == 3 else np.broadcast_to(pi, (horizon, *pi.shape))
    discounts = mdp.gamma ** np.arange(horizon)  # (T,)
    return np.einsum("t,ts,tsa->sa", discounts, d, pi_t)
    # END SOLUTION


# ----------------------------------------------------------------------------
# From gymnasium's toy-text environments
# ----------------------------------------------------------------------------

def from_gymnasium(env, gamma: float = 0.99, horizon: int | None = None) -> TabularMDP:
    """Read the transition table of a gymnasium toy-text env (FrozenLake, CliffWalking, Taxi).

    These envs expose ``env.unwrapped.P[s][a] = [(p, s', r, done), ...]``. The reward
    R[s, a] is the expected immediate reward. A transition flagged ``done`` is sent to one
    added absorbing, zero-reward terminal state (index S), because in gymnasium the episode
    stops on such a transition whatever s' is; the exact solvers then see the same returns
    as the environment. ``horizon`` defaults to the env's ``max_episode_steps``.
    """
    u = getattr(env, "unwrapped", env)
    table = getattr(u, "P", None)
    if not isinstance(table, dict):
        _fail("env", "must expose a transition table env.unwrapped.P[s][a] = [(p, s', r, done), ...]")
    S, A = int(u.observation_space.n), int(u.action_space.n)
    P = np.zeros((S + 1, A, S + 1))
    R = np.zeros((S + 1, A))
    for s in range(S):
        for a in range(A):
            for p, s_next, r, done in table[s][a]:
                P[s, a, S if done else int(s_next)] += p
                R[s, a] += p * r
    P[S, :, S] = 1.0  # the absorbing terminal state
    rho0 = np.zeros(S + 1)
    rho0[:S] = getattr(u, "initial_state_distrib", np.eye(S)[0])
    terminal = np.zeros(S + 1, dtype=bool)
    terminal[S] = True
    if horizon is None and getattr(env, "spec", None) is not None:
        horizon = env.spec.max_episode_steps
    return TabularMDP(P=P, R=R, rho0=rho0, gamma=gamma, horizon=horizon, terminal=terminal)
