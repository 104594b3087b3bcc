"""The Markov task's exact answer key (docs/equations.md §6): the forward recursion against brute-force
enumeration, the identity KL(pi* || pi_ref) = E[R]/beta - E log Z, the frontier as an upper bound,
and Monte-Carlo estimates within their standard errors."""

import itertools
import math

import numpy as np
import pytest
import torch

from llmtrack.tasks.answer_key import (enumerate_responses, exact_kl, expected_gold_reward, kl_to_optimum,
                                           optimal_frontier, policy_table, sampled_kl, sampled_point)
from llmtrack.models import build_model
from llmtrack.policy import LMPolicy
from llmtrack.tasks import MarkovTask, SortTask
from llmtrack.tokenizer import EOS


@pytest.fixture(scope="module")
def tiny():
    return MarkovTask(n_words=4, max_new_tokens=3, branching=3, beta=1.0, seed=0)  # sparse pi_ref


@pytest.fixture(scope="module")
def full():
    return MarkovTask(n_words=20, branching=20, max_new_tokens=10, beta=1.0, seed=0)  # TASK_SETTINGS["markov"]


def brute_force(task, pi, q):
    """E[R] and KL(pi || q) over rho0 by listing every token sequence (independent of the library)."""
    T, V = task.max_new_tokens, task.vocab_size
    prompts, probs = task.prompt_support()
    reward = kl = 0.0
    for prompt, w in zip(prompts, probs):
        for length in range(1, T + 1):
            for y in itertools.product(range(V), repeat=length):
                if EOS in y[:-1] or (length < T and y[-1] != EOS):
                    continue  # not a complete response: [EOS] only last; shorter than T must end in [EOS]
                prev, p, log_ratio, r = prompt[-1], 1.0, 0.0, 0.0
                for t, a in enumerate(y):
                    p *= pi[t, prev, a]
                    if p == 0:
                        break
                    log_ratio += math.log(pi[t, prev, a]) - math.log(q[t, prev, a])
                    r += task.R[prev, a]
                    prev = a
                if p > 0:
                    reward += w * p * r
                    kl += w * p * log_ratio
    return reward, kl


def random_table(task, seed):
    """A time-indexed policy with pi_ref's support and random weights (T, V, V)."""
    g = np.random.default_rng(seed)
    support = task.pi_ref > 0
    table = np.where(support, g.exponential(size=(task.max_new_tokens, *support.shape)), 0.0)
    return table / table.sum(-1, keepdims=True)


def test_recursion_equals_brute_force_enumeration(tiny):
    ref = policy_table(tiny, tiny.base)
    for name, pi in [("pi*", policy_table(tiny, tiny.optimal_policy(0.7))), ("random", random_table(tiny, 3))]:
        reward, kl = brute_force(tiny, pi, ref)
        assert expected_gold_reward(tiny, pi) == pytest.approx(reward, abs=1e-10), name
        assert exact_kl(tiny, pi) == pytest.approx(kl, abs=1e-10), name
    # KL to the optimum, and the per-prompt values averaging to the total
    pi, star = random_table(tiny, 4), policy_table(tiny, tiny.optimal_policy(1.0))
    assert kl_to_optimum(tiny, pi, 1.0) == pytest.approx(brute_force(tiny, pi, star)[1], abs=1e-10)
    per_prompt = exact_kl(tiny, pi, per_prompt=True)
    assert per_prompt.shape == (4,) and float(per_prompt.mean()) == pytest.approx(exact_kl(tiny, pi))
    assert kl_to_optimum(tiny, tiny.optimal_policy(1.0), 1.0) == pytest.approx(0.0, abs=1e-12)
    # off pi_ref's support: KL = +inf
    off = np.full((tiny.vocab_size, tiny.vocab_size), 1.0 / tiny.vocab_size)
    assert exact_kl(tiny, off) == math.inf


def test_enumerated_responses_are_a_distribution_with_exact_log_probs(tiny):
    prompt = tiny.prompt_support()[0][2]
    batch, log_p = enumerate_responses(tiny, prompt, tiny.optimal_policy(1.0))
    assert float(log_p.exp().sum()) == pytest.approx(1.0, abs=1e-6)
    own = (tiny.optimal_policy(1.0).log_prob(batch).double() * batch.mask).sum(1)
    torch.testing.assert_close(own, log_p, atol=1e-5, rtol=0)
    torch.testing.assert_close(batch.info["gold_reward"], tiny.gold_reward(batch))
    assert len({tuple(r[m].tolist()) for r, m in zip(batch.actions, batch.mask)}) == batch.batch_size


@pytest.mark.parametrize("beta", [0.3, 1.0, 3.0])
def test_kl_of_the_optimum_is_reward_over_beta_minus_log_partition(full, beta):
    prompts, probs = full.prompt_support()
    log_z = float(full.log_partition(prompts, beta).numpy() @ np.asarray(probs))
    star = full.optimal_policy(beta)
    assert exact_kl(full, star) == pytest.approx(expected_gold_reward(full, star) / beta - log_z, abs=1e-5)


def test_frontier_is_monotone_and_bounds_every_policy(full):
    betas = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    rows = optimal_frontier(full, betas)
    gold, kl = np.array([r["gold_reward"] for r in rows]), np.array([r["kl_to_ref"] for r in rows])
    # as beta grows both fall: the reward rises with the KL spent
    assert np.all(np.diff(gold) < 0) and np.all(np.diff(kl) < 0) and kl[-1] > 0
    # bound II: E_pi[R] - beta KL(pi || pi_ref) <= beta E log Z for any policy and any beta
    others = [random_table(full, s) for s in range(3)] + [policy_table(full, full.base)]
    others += [policy_table(full, full.optimal_policy(b)) for b in (0.35, 3.0)]
    for pi in others:
        r, k = expected_gold_reward(full, pi), exact_kl(full, pi)
        for row in rows:
            assert r - row["beta"] * k <= row["beta"] * row["log_partition"] + 1e-6


def test_monte_carlo_estimates_agree_with_the_exact_values(full):
    star = full.optimal_policy(0.5)
    mc = sampled_point(star, full, n=3000, seed=0, beta=1.0)
    exact = {"gold_reward": expected_gold_reward(full, star), "kl_to_ref": exact_kl(full, star),
             "kl_to_optimum": kl_to_optimum(full, star, 1.0)}
    for key, value in exact.items():
        assert abs(mc[key] - value) < 4 * mc[key + "_se"], (key, mc[key], value, mc[key + "_se"])
    assert sampled_point(star, full, n=50, seed=3) == sampled_point(star, full, n=50, seed=3)  # seeded


def test_sampled_point_of_a_transformer_policy(full):
    lm = LMPolicy(build_model("nano", full.vocab_size, seed=0), device="cpu")
    point = sampled_point(lm, full, n=64, seed=0)
    assert all(math.isfinite(v) for v in point.values())
    assert point["kl_to_ref"] > 0 and point["kl_to_optimum"] > 0  # an untrained LM is far from both
    # a sample the reference cannot produce makes the KL infinite, and says how often
    sparse = MarkovTask(n_words=20, branching=3, max_new_tokens=10, seed=0)
    y = sparse.rollout(lm, 64, seed=0)
    est = sampled_kl(lm, sparse.base, y)
    assert est.value == math.inf and 0 < est.off_support <= 1


def test_bad_input_is_refused(tiny):
    with pytest.raises(ValueError, match="task: the exact answer key needs a MarkovTask"):
        expected_gold_reward(SortTask(), tiny.base)
    with pytest.raises(ValueError, match="policy: table must have shape"):
        exact_kl(tiny, np.ones((2, 3)))
    with pytest.raises(ValueError, match="policy: every row"):
        exact_kl(tiny, np.ones((tiny.vocab_size, tiny.vocab_size)))
    with pytest.raises(ValueError, match="policy: must be a BigramPolicy"):
        exact_kl(tiny, "pi")
    with pytest.raises(ValueError, match="betas: need a non-empty sequence"):
        optimal_frontier(tiny, [])
    with pytest.raises(ValueError, match="beta: must be a finite number > 0"):
        optimal_frontier(tiny, [1.0, -1.0])
    with pytest.raises(ValueError, match="prompt: must be a task prompt"):
        enumerate_responses(tiny, [1, 5, 6])
    with pytest.raises(ValueError, match="n: must be an integer >= 2"):
        sampled_point(tiny.base, tiny, n=1)
