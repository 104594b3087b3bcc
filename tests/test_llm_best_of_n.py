"""Best-of-N, RAFT and over-optimisation on the Markov task (docs/equations.md §6, §8; survey §4.4-4.5).

Oracles: exact pi_BoN by enumeration against log N - (N-1)/N and against sampled Best-of-N; the
pooled (unbiased) Best-of-N curve against the exact one; the frontier as an upper bound for Best-of-N
and RAFT. minirl's pieces are tested on their own: pool weights against exhaustive subsets
(tests/test_best_of_n.py), Gao fits (tests/test_scaling_laws.py), the ensemble scorer (tests/test_scorers.py),
RAFT on a bandit (tests/test_raft.py).
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from minirl.algos.bc import BCConfig
from minirl.algos.raft import RAFTConfig
from minirl.algos.reward_model import RewardModelConfig
from minirl.scaling_laws import fit_gao
from minirl.scorers import EnsembleScorer
from llmtrack.pipelines.best_of_n import (best_of_n_curve, best_of_n_distributions, exact_best_of_n,
                                          generate_best_of_n, train_raft)
from llmtrack.plots import best_of_n_kl_figure, optimal_frontier_figure, overoptimisation_figure
from llmtrack.reward_model import bag_of_tokens, bag_of_tokens_proxy
from llmtrack.tasks.answer_key import exact_kl, expected_gold_reward, optimal_frontier
from llmtrack.models import build_model
from llmtrack.policy import LMPolicy
from llmtrack.tasks import ExactPolicy, MarkovTask
from llmtrack.tasks.base import context_state


@pytest.fixture(scope="module")
def tiny():
    return MarkovTask(n_words=4, max_new_tokens=3, branching=3, seed=0)


@pytest.fixture(scope="module")
def small():
    return MarkovTask(n_words=8, max_new_tokens=4, branching=8, seed=0)  # 4681 responses per prompt


@pytest.fixture(scope="module")
def proxy(small):
    """A bag-of-tokens proxy fitted to 50 pairs with 30% of labels flipped (module ``over-optimisation`` test)."""
    prefs = small.preferences(50, noise=0.3, seed=1)
    return bag_of_tokens_proxy(small, prefs, RewardModelConfig(n_updates=300, lr=0.05))


def rewards_under_frontier(task, points, betas=(0.25, 0.5, 1.0, 2.0, 4.0)):
    """Bound II of llmtrack.tasks.answer_key: E[R] - beta KL <= beta E log Z for every beta."""
    for row in optimal_frontier(task, betas):
        for kl, gold in points:
            assert gold - row["beta"] * kl <= row["beta"] * row["log_partition"] + 1e-6


# -- exact Best-of-N ---------------------------------------------------------------------------

def test_exact_best_of_n_kl_respects_the_bound_and_rewards_rise(tiny, small, proxy):
    ns = [1, 2, 4, 8, 16, 64, 256]
    rows = exact_best_of_n(tiny, ns)  # gold scorer
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-12)
    assert rows[0]["gold_reward"] == pytest.approx(expected_gold_reward(tiny, tiny.base), abs=1e-6)  # float32 gold
    for row in rows:
        assert row["kl"] <= row["kl_bound"] + 1e-9
    gold = [r["gold_reward"] for r in rows]
    assert all(b > a for a, b in zip(gold, gold[1:]))
    rewards_under_frontier(tiny, [(r["kl"], r["gold_reward"]) for r in rows])
    # with few ties and no heavy response, the bound is met (Beirami et al. 2024)
    for row in exact_best_of_n(small, [2, 4, 16, 64], proxy):
        assert row["kl"] == pytest.approx(row["kl_bound"], abs=0.01)


def test_exact_best_of_n_matches_sampled_best_of_n(tiny):
    n, reps = 4, 1500
    table = best_of_n_distributions(tiny, n)
    prompts = tiny.prompt_support()[0]
    winners = generate_best_of_n(tiny.base, tiny, [p for p in prompts for _ in range(reps)], n, generator=0)
    log_ratio, exact_kl_, exact_gold = [], 0.0, 0.0
    for i, (responses, p, q) in enumerate(table):
        index = {tuple(a[m].tolist()): j for j, (a, m) in enumerate(zip(responses.actions, responses.mask))}
        rows = winners[torch.arange(i * reps, (i + 1) * reps)]
        j = torch.tensor([index[tuple(a[m].tolist())] for a, m in zip(rows.actions, rows.mask)])
        log_ratio.append((q[j] / p[j]).log())
        keep = q > 0
        exact_kl_ += float((q[keep] * (q[keep] / p[keep]).log()).sum()) / len(table)
        exact_gold += float(q @ responses.info["gold_reward"].double()) / len(table)
    log_ratio = torch.cat(log_ratio)
    se = float(log_ratio.std()) / math.sqrt(len(log_ratio))
    assert exact_kl_ == pytest.approx(exact_best_of_n(tiny, [n])[0]["kl"], abs=1e-12)
    assert abs(float(log_ratio.mean()) - exact_kl_) < 4 * se
    gold = winners.info["gold_reward"]
    assert abs(float(gold.mean()) - exact_gold) < 4 * float(gold.std()) / math.sqrt(len(gold))


def test_generate_best_of_n_keeps_the_best_and_is_seeded(tiny, proxy):
    task = MarkovTask(n_words=8, max_new_tokens=4, branching=8, seed=0)
    w = generate_best_of_n(task.base, task, 16, 5, proxy, generator=7)
    assert w.batch_size == 16 and w.info["proxy_pool"].shape == (16, 5)
    torch.testing.assert_close(w.info["proxy_reward"], w.info["proxy_pool"].max(1).values)
    torch.testing.assert_close(w.info["proxy_reward"], proxy.score(w).detach().double())
    torch.testing.assert_close(w.info["gold_reward"], task.gold_reward(w).double())
    again = generate_best_of_n(task.base, task, 16, 5, proxy.score, generator=7)  # a callable scorer
    assert torch.equal(w.actions, again.actions) and torch.equal(w.obs, again.obs)
    one = generate_best_of_n(task.base, task, 16, 1, generator=7)
    torch.testing.assert_close(one.info["gold_reward"], one.info["proxy_reward"])  # None = the gold reward


# -- RAFT -----------------------------------------------------------------------------------------

class SoftmaxBigram(ExactPolicy):
    """A trainable bigram pi(a | prev) = softmax(logits[prev]) on pi_ref's support, initialised at pi_ref."""

    def __init__(self, pi_ref: np.ndarray):
        super().__init__(pi_ref.shape[0])
        pi_ref = torch.as_tensor(pi_ref, dtype=torch.float32)
        self.logits = nn.Parameter(pi_ref.clamp_min(1e-12).log())
        self.register_buffer("off", torch.where(pi_ref > 0, 0.0, -math.inf))

    def column_log_probs(self, ids, columns):
        prev = context_state(ids)[0][:, columns]
        return torch.log_softmax(self.logits + self.off, -1)[prev]  # (N, C, V)

    def table(self) -> np.ndarray:
        return torch.softmax(self.logits.detach().double() + self.off.double(), -1).numpy()


def test_raft_raises_the_gold_reward_under_the_frontier_and_is_seeded():
    task = MarkovTask(n_words=20, branching=20, max_new_tokens=10, seed=0)
    config = RAFTConfig(n_rounds=3, n=8, prompts_per_round=64, bc=BCConfig(n_updates=30, lr=3e-2), seed=1)
    policy = SoftmaxBigram(task.pi_ref)
    history = train_raft(policy, task, None, config)
    assert set(history) == {"raft/proxy_sampled", "raft/gold_sampled", "raft/proxy_best", "raft/gold_best", "loss/bc"}
    assert all(len(v) == 3 for v in history.values())
    assert history["raft/gold_sampled"][0] < history["raft/gold_sampled"][-1]
    assert all(b >= s for b, s in zip(history["raft/gold_best"], history["raft/gold_sampled"]))
    # the answer key evaluates the trained policy exactly
    base_gold, gold, kl = expected_gold_reward(task, task.base), expected_gold_reward(task, policy.table()), \
        exact_kl(task, policy.table())
    assert gold > base_gold + 1.0 and 0 < kl < math.inf
    rewards_under_frontier(task, [(kl, gold)])
    again = SoftmaxBigram(task.pi_ref)
    assert train_raft(again, task, None, config) == history
    assert torch.equal(again.logits, policy.logits)


def test_raft_fine_tunes_a_transformer():
    task = MarkovTask(n_words=20, branching=20, max_new_tokens=10, seed=0)
    lm = LMPolicy(build_model("nano", task.vocab_size, seed=0), device="cpu")
    before = [p.detach().clone() for p in lm.parameters()]
    history = train_raft(lm, task, lambda b: task.gold_reward(b),
                         RAFTConfig(n_rounds=1, n=2, prompts_per_round=8, bc=BCConfig(n_updates=2, lr=1e-3)))
    assert len(history["loss/bc"]) == 1 and math.isfinite(history["loss/bc"][0])
    assert any(not torch.equal(a, b) for a, b in zip(before, lm.parameters()))


# -- over-optimisation -----------------------------------------------------------------------------

def test_pooled_curve_matches_exact_best_of_n(small, proxy):
    ns = [1, 2, 8, 32]
    pooled = best_of_n_curve(small.base, small, proxy, ns, n_prompts=200, pool_size=128, seed=0)
    exact = exact_best_of_n(small, ns, proxy)
    for p, e in zip(pooled, exact):
        assert p["n"] == e["n"] and p["kl"] == pytest.approx(e["kl_bound"])
        assert abs(p["gold"] - e["gold_reward"]) < 4 * p["gold_se"]
        assert abs(p["proxy"] - e["proxy_reward"]) < 4 * p["proxy_se"]
    assert best_of_n_curve(small.base, small, proxy, ns, n_prompts=4, seed=3) == \
        best_of_n_curve(small.base, small, proxy, ns, n_prompts=4, seed=3)


def test_gold_peaks_while_the_proxy_keeps_rising(small, proxy):
    # Exact (no sampling): this proxy's Best-of-N gold reward peaks at N = 64 (+1.53 over pi_ref) and
    # falls to +0.53 by N = 2^20, while the proxy rises throughout. Not every proxy does this: of 16
    # preference seeds (50 pairs, 30% flipped) 5 show an interior peak with a fall > 0.3; the mean
    # curve over seeds flattens rather than falls (see the report of issue 5).
    ns = [2 ** k for k in range(21)]
    rows = exact_best_of_n(small, ns, proxy)
    proxy_r, gold = np.array([r["proxy_reward"] for r in rows]), np.array([r["gold_reward"] for r in rows])
    assert np.all(np.diff(proxy_r) > 0)
    peak = int(gold.argmax())
    assert 0 < peak < len(ns) - 1 and gold[peak] - gold[-1] > 0.5
    fit = fit_gao([r["kl"] for r in rows], gold - gold[0], "bon")
    assert fit.alpha > 0 and fit.beta > 0 and fit.r2 > 0.9
    assert (fit.alpha / (2 * fit.beta)) ** 2 == pytest.approx(rows[peak]["kl"], rel=0.3)  # the fitted peak


def test_ensemble_scorer_is_mean_minus_k_std(small):
    batch = small.rollout(small.base, 6, seed=0)
    members = [lambda b, c=c: torch.full((b.batch_size,), c) + small.gold_reward(b) for c in (0.0, 1.0, 2.0)]
    ens = EnsembleScorer(members, k=2.0)
    expected = small.gold_reward(batch).double() + 1.0 - 2.0 * math.sqrt(2 / 3)
    torch.testing.assert_close(ens.score(batch), expected)
    torch.testing.assert_close(EnsembleScorer(members[:1], k=5.0)(batch), small.gold_reward(batch).double())
    phi = bag_of_tokens(small.vocab_size)(batch)
    assert phi.shape == (6, small.vocab_size) and torch.equal(phi.sum(1), batch.lengths.float())


def test_figures_draw(tiny, small, proxy):
    import matplotlib.pyplot as plt

    bon = exact_best_of_n(tiny, [1, 2, 4, 8])
    figs = [optimal_frontier_figure(optimal_frontier(tiny, [0.5, 1.0, 2.0]), {"BoN (gold)": bon}),
            best_of_n_kl_figure([dict(r, kl_mc=r["kl"], kl_mc_se=0.01) for r in bon])]
    rows = exact_best_of_n(small, [1, 4, 16, 64, 256], proxy)
    gold = np.array([r["gold_reward"] for r in rows])
    fit = fit_gao([r["kl"] for r in rows], gold - gold[0])
    figs.append(overoptimisation_figure(rows, fit, gold_key="gold_reward", proxy_key="proxy_reward"))
    assert all(len(f.axes) >= 1 for f in figs)
    for f in figs:
        plt.close(f)


def test_bad_input_is_refused(tiny):
    with pytest.raises(ValueError, match="n: must be an integer >= 1"):
        generate_best_of_n(tiny.base, tiny, 4, 0)
    with pytest.raises(ValueError, match="scorer: must have .score"):
        generate_best_of_n(tiny.base, tiny, 4, 2, scorer=3)
    with pytest.raises(ValueError, match="scorer: must return"):
        generate_best_of_n(tiny.base, tiny, 4, 2, scorer=lambda b: torch.zeros(3))
    with pytest.raises(ValueError, match="ns: must be"):
        exact_best_of_n(tiny, [])
    with pytest.raises(ValueError, match="n_rounds: must be an integer >= 1"):
        RAFTConfig(n_rounds=0)
    with pytest.raises(ValueError, match="policy: RAFT fine-tunes the policy"):
        train_raft(tiny.base, tiny)
    with pytest.raises(ValueError, match="pool_size: must be >= max"):
        best_of_n_curve(tiny.base, tiny, None, [1, 8], pool_size=4)
    with pytest.raises(ValueError, match="models: need a non-empty"):
        EnsembleScorer([])
    with pytest.raises(ValueError, match="k: must be a finite number >= 0"):
        EnsembleScorer([lambda b: b.lengths], k=-1)
