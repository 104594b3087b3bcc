"""The exact answer key of the Markov task: reward and KL of any bigram policy, and the optimal frontier.

Symbols (docs/equations.md §6; survey §4.4). A prompt x = [BOS, w0] is drawn from rho0; a policy pi_t(a | prev)
reads the previous token and the step t (a :class:`~llmtrack.tasks.markov.BigramPolicy` table); the
gold reward is R(x, y) = sum_t r(y_{t-1}, y_t) with y_{-1} = w0; [EOS] ends the response; at most T tokens.

The task's bigram MDP (``MarkovTask.tabular_mdp``: state = previous token, [EOS] the absorbing end) is
evaluated exactly by minirl's forward pass (:func:`minirl.finite_horizon.evaluate_finite_horizon`),
one initial distribution d_0(s | x) = 1[s = w0] per prompt:

    E_pi[R | x]            = sum_{t<T} sum_s d_t(s | x) sum_a pi_t(a|s) r(s, a)
    KL(pi || q | x)        = sum_{t<T} sum_s d_t(s | x) sum_a pi_t(a|s) log(pi_t(a|s) / q_t(a|s))
    d_{t+1}(a | x)         = sum_s d_t(s | x) pi_t(a|s)   for a != [EOS],   d_{t+1}([EOS] | x) = 0

The second line is the chain rule of the KL between the two sequence distributions
d^pi(y|x) = prod_t pi_t(y_t | y_{t-1}) (docs/equations.md §2, eq. 5-6) and d^q; averaged over rho0 it is
KL(pi || q) as every other module reports it (an expectation over prompts of a per-prompt KL).
With q = pi_ref this is the KL of the RLHF objective; with q = pi*_beta the distance to the optimum.

The optimum pi*_beta ∝ pi_ref exp(R / beta) satisfies log pi*/pi_ref = R/beta - log Z(x), hence

    KL(pi*_beta || pi_ref) = E_{pi*}[R] / beta - E_x log Z(x)                           (identity I)

and for every policy pi and every beta > 0 (the optimum maximises E[R] - beta KL, docs/equations.md §6)

    E_pi[R] - beta KL(pi || pi_ref) <= beta E_x log Z(x)                                  (bound II)

so the curve beta -> (KL(pi*_beta || pi_ref), E_{pi*_beta}[R]) -- :func:`optimal_frontier` -- is the
upper envelope that every method's (KL, gold reward) point lies under. Along it both coordinates fall
as beta grows (beta -> inf gives pi_ref: KL 0), i.e. the reward rises with the KL spent.

For a policy whose probabilities are not a bigram table (a transformer), :func:`sampled_point`
estimates the same three numbers by Monte Carlo with exact log-probabilities of pi_ref and pi*,
reusing :func:`minirl.estimators.sequence_log_prob` and :func:`minirl.estimators.monte_carlo_kl`.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from minirl.checks import check_int, check_seed
from minirl.data import TrajectoryBatch
from minirl.policies import Policy, check_same_actions
from minirl.estimators import KLEstimate, monte_carlo_kl, sequence_log_prob
from minirl.finite_horizon import FiniteHorizonEvaluation, evaluate_finite_horizon
from llmtrack.tasks.markov import BigramPolicy, MarkovTask
from llmtrack.tokenizer import EOS, PAD

__all__ = ["policy_table", "expected_gold_reward", "exact_kl", "kl_to_optimum", "optimal_frontier",
           "enumerate_responses", "sampled_kl", "sampled_point"]


# -- inputs ---------------------------------------------------------------------------------------

def check_markov_task(task) -> MarkovTask:
    """``task`` if it is a MarkovTask (the task with an exact answer key); else a ValueError naming task."""
    if not isinstance(task, MarkovTask):
        raise ValueError(f"task: the exact answer key needs a MarkovTask, got {type(task).__name__}")
    return task


def policy_table(task: MarkovTask, policy: BigramPolicy | np.ndarray | Tensor) -> np.ndarray:
    """pi_t(a | prev) for t = 0..T-1 as float64 numpy, shape (T, V, V).

    ``policy`` is a :class:`BigramPolicy` (its ``log_table``), or a probability table of shape
    (V, V) / (1, V, V) (stationary, like pi_ref) or (H, V, V) with H >= T (time-indexed, like pi*).
    Rows must be distributions (to 1e-5; renormalised in float64).
    """
    task = check_markov_task(task)
    V, T = task.vocab_size, task.max_new_tokens
    if isinstance(policy, BigramPolicy):
        table = policy.log_table.detach().double().exp().cpu().numpy()
    elif isinstance(policy, (np.ndarray, Tensor)):
        table = np.asarray(policy.detach().cpu() if isinstance(policy, Tensor) else policy, dtype=np.float64)
    else:
        raise ValueError(f"policy: must be a BigramPolicy or a probability table, got {type(policy).__name__}")
    if table.ndim == 2:
        table = table[None]
    if table.ndim != 3 or table.shape[1:] != (V, V) or not (table.shape[0] == 1 or table.shape[0] >= T):
        raise ValueError(f"policy: table must have shape (V, V), (1, V, V) or (H >= T, V, V) with V = {V}, "
                         f"T = {T}; got {tuple(table.shape)}")
    if not np.all(np.isfinite(table)) or (table < 0).any() or not np.allclose(table.sum(-1), 1.0, atol=1e-5):
        raise ValueError("policy: every row pi_t(. | prev) must be a probability distribution")
    table = table / table.sum(-1, keepdims=True)  # float32 tables: rows sum to 1 exactly in float64
    return np.broadcast_to(table, (T, V, V)) if table.shape[0] == 1 else table[:T]


def _prompt_states(task: MarkovTask) -> tuple[np.ndarray, np.ndarray]:
    """rho0's support as (last prompt token (X,), probability (X,))."""
    prompts, probs = task.prompt_support()
    return np.array([p[-1] for p in prompts]), np.asarray(probs, dtype=np.float64)


# -- the forward recursion ---------------------------------------------------------------------------

def _evaluate(task: MarkovTask, pi: np.ndarray, q: np.ndarray | None) -> FiniteHorizonEvaluation:
    """Per-prompt E_pi[R | x] and KL(pi || q | x), each (X,): minirl's forward pass over (prev token, t)
    from each prompt's last word, [EOS] the absorbing end (module docstring)."""
    first, _ = _prompt_states(task)
    d0 = np.zeros((len(first), task.vocab_size))  # d_0(s | x) = 1[s = w0], (X, V)
    d0[np.arange(len(first)), first] = 1.0
    return evaluate_finite_horizon(task.tabular_mdp(), pi, q, d0=d0)


def expected_gold_reward(task: MarkovTask, policy, per_prompt: bool = False) -> float | np.ndarray:
    """E_{x ~ rho0, y ~ pi}[R(x, y)] exactly (module docstring; docs/equations.md §6); (X,) if ``per_prompt``."""
    pi = policy_table(task, policy)
    reward = _evaluate(task, pi, None).reward
    return reward if per_prompt else float(reward @ _prompt_states(task)[1])


def exact_kl(task: MarkovTask, policy, other=None, per_prompt: bool = False) -> float | np.ndarray:
    """KL(pi || q) of the sequence distributions, averaged over rho0, exactly (module docstring).

    ``other`` is q as a policy or table; default pi_ref (``task.base``). +inf where pi gives a
    response probability that q gives zero. (X,) per prompt if ``per_prompt``.
    """
    pi = policy_table(task, policy)
    q = policy_table(task, task.base if other is None else other)
    kl = _evaluate(task, pi, q).kl
    return kl if per_prompt else float(kl @ _prompt_states(task)[1])


def kl_to_optimum(task: MarkovTask, policy, beta: float | None = None) -> float:
    """KL(pi || pi*_beta), pi*_beta ∝ pi_ref exp(R / beta) (docs/equations.md §6); beta defaults to the task's."""
    task = check_markov_task(task)
    return exact_kl(task, policy, task.optimal_policy(beta))


def optimal_frontier(task: MarkovTask, betas: Sequence[float]) -> list[dict[str, float]]:
    """The exact optimum's (KL, gold reward) for each beta: rows {beta, gold_reward, kl_to_ref, log_partition}.

    pi*_beta from soft value iteration with prior pi_ref (``task.optimal_policy``, docs/equations.md §6);
    ``log_partition`` = E_x log Z(x). No method's point can lie above this curve (bound II, module
    docstring). Both gold reward and KL decrease as beta grows.
    """
    task = check_markov_task(task)
    if isinstance(betas, (int, float)) or len(betas) == 0:
        raise ValueError("betas: need a non-empty sequence of numbers > 0")
    for b in betas:
        task.check_beta(b)
    prompts, probs = task.prompt_support()
    rows = []
    for beta in betas:
        pi_star = task.optimal_policy(beta)
        log_z = float(task.log_partition(prompts, beta).numpy() @ np.asarray(probs))
        rows.append({"beta": float(beta), "gold_reward": expected_gold_reward(task, pi_star),
                     "kl_to_ref": exact_kl(task, pi_star), "log_partition": log_z})
    return rows


# -- brute force: every response ------------------------------------------------------------------

def enumerate_responses(task: MarkovTask, prompt: Sequence[int], policy=None,
                        max_responses: int = 200_000) -> tuple[TrajectoryBatch, Tensor]:
    """Every response y with pi(y | x) > 0 for one prompt, and log pi(y | x) (float64, (B,)).

    ``policy`` defaults to pi_ref. The batch uses llmtrack's token layout (as
    :func:`llmtrack.rollout.generate` makes it: obs (B, P + T), [PAD] after [EOS]) with
    info["gold_reward"]. For tiny instances only (n_words ~ 4-6, T ~ 3); more than
    ``max_responses`` responses is a ValueError.
    """
    task = check_markov_task(task)
    max_responses = check_int(max_responses, "max_responses", 1)
    pi = policy_table(task, task.base if policy is None else policy)
    prompt = [int(t) for t in prompt]
    if len(prompt) != 2 or not 0 <= prompt[-1] < task.vocab_size:
        raise ValueError(f"prompt: must be a task prompt [BOS, word], got {prompt}")
    T = task.max_new_tokens
    done: list[tuple[list[int], float]] = []
    frontier: list[tuple[list[int], float]] = [([], 0.0)]
    for t in range(T):
        grown = []
        for y, logp in frontier:
            prev = y[-1] if y else prompt[-1]
            for a in np.flatnonzero(pi[t, prev] > 0):
                item = (y + [int(a)], logp + math.log(pi[t, prev, a]))
                (done if a == EOS or t == T - 1 else grown).append(item)
        frontier = grown
        if len(done) + len(frontier) > max_responses:
            raise ValueError(f"max_responses: more than {max_responses} responses; use a smaller instance")
    B, width = len(done), max(len(y) for y, _ in done)
    actions = torch.full((B, width), PAD, dtype=torch.long)
    for i, (y, _) in enumerate(done):
        actions[i, : len(y)] = torch.tensor(y)
    mask = torch.arange(width)[None] < torch.tensor([len(y) for y, _ in done])[:, None]  # (B, T)
    obs = torch.cat([torch.tensor(prompt).expand(B, -1), actions], dim=1)  # (B, P + T)
    batch = TrajectoryBatch(obs=obs, actions=actions, mask=mask, terminated=mask & (actions == EOS))
    batch = batch.replace(info={"gold_reward": task.gold_reward(batch)})
    return batch, torch.tensor([lp for _, lp in done], dtype=torch.float64)


# -- Monte Carlo for any sampling policy ---------------------------------------------------------------

def sampled_kl(policy: Policy, other: Policy, samples: TrajectoryBatch) -> KLEstimate:
    """KL(d^pi || d^q) ≈ mean over samples y ~ pi of log d^pi(y|x) - log d^q(y|x), with its standard error.

    ``samples`` must come from ``policy``; both log-probs are recomputed exactly
    (:func:`minirl.estimators.sequence_log_prob`). If q gives a sample probability 0 the
    estimate is +inf and ``off_support`` says how often.
    """
    if samples.batch_size < 2:
        raise ValueError(f"samples: need at least 2 trajectories for a standard error, got {samples.batch_size}")
    check_same_actions(policy, other, "policy", "other")  # a log-ratio of one token id across vocabularies is meaningless
    return monte_carlo_kl(sequence_log_prob(policy, samples), sequence_log_prob(other, samples))


def sampled_point(policy: Policy, task: MarkovTask, n: int = 1000, seed: int = 0, beta: float | None = None,
                  samples: TrajectoryBatch | None = None) -> dict[str, float]:
    """Monte-Carlo (KL, gold reward) of any sampling policy, to set beside :func:`optimal_frontier`.

    Returns {gold_reward, gold_reward_se, kl_to_ref, kl_to_ref_se, kl_to_optimum, kl_to_optimum_se, n}:
    E[R], KL(pi || pi_ref) and KL(pi || pi*_beta) from ``n`` samples of ``policy`` (or ``samples``,
    which must be the policy's own).
    """
    task = check_markov_task(task)
    n = check_int(n, "n", 2)
    seed = check_seed(seed)
    beta = task.beta if beta is None else task.check_beta(beta)
    check_same_actions(task.expert, policy, "task", "policy")
    y = task.rollout(policy, n, seed=seed) if samples is None else samples
    gold = task.gold_reward(y).double()
    to_ref = sampled_kl(policy, task.base, y)
    to_opt = sampled_kl(policy, task.optimal_policy(beta), y)
    return {"gold_reward": float(gold.mean()), "gold_reward_se": float(gold.std() / math.sqrt(len(gold))),
            "kl_to_ref": to_ref.value, "kl_to_ref_se": to_ref.se,
            "kl_to_optimum": to_opt.value, "kl_to_optimum_se": to_opt.se, "n": y.batch_size}
