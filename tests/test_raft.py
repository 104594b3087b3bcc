"""minirl.algos.raft on a bandit: one round of RAFT with BC run to convergence moves the policy to the empirical
distribution of its winners, which is the exact Best-of-N distribution F^N - F_-^N up to sampling error
(docs/equations.md §6)."""

import math

import pytest
import torch

from minirl.algos.bc import BCConfig
from minirl.algos.best_of_n import best_of_n_distribution
from minirl.algos.raft import RAFTConfig, train_raft
from minirl.data import TrajectoryBatch
from minirl.policies import TabularPolicy

P0 = torch.tensor([0.3, 0.25, 0.2, 0.1, 0.1, 0.05], dtype=torch.float64)
REWARD = torch.tensor([0.0, 3.0, 1.0, 5.0, 2.0, 4.0], dtype=torch.float64)  # no ties


def bandit_policy() -> TabularPolicy:
    policy = TabularPolicy(1, len(P0))
    policy.theta.data = P0.float().log()[None]  # starts at P0, trainable
    return policy


def bandit_source(policy: TabularPolicy):
    """A pool source: one step per trajectory, the action drawn from the current policy."""
    def source(n_prompts: int, n: int, generator: torch.Generator) -> TrajectoryBatch:
        probs = torch.from_numpy(policy.table()[0])
        a = torch.multinomial(probs, n_prompts * n, replacement=True, generator=generator)[:, None]  # (K N, 1)
        return TrajectoryBatch(obs=torch.zeros_like(a), actions=a, mask=torch.ones_like(a, dtype=torch.bool))
    return source


def reward(batch: TrajectoryBatch) -> torch.Tensor:
    return REWARD[batch.actions[:, 0]]


def test_one_round_reaches_the_best_of_n_distribution():
    n, K = 4, 20_000
    policy = bandit_policy()
    seen = []
    source = bandit_source(policy)
    history = train_raft(policy, lambda k, m, g: seen.append(source(k, m, g)) or seen[-1], reward,
                         RAFTConfig(n_rounds=1, n=n, prompts_per_round=K, bc=BCConfig(n_updates=400, lr=0.1)))
    pool = seen[0]
    winners = reward(pool).view(K, n).argmax(1) + torch.arange(0, K * n, n)
    empirical = torch.bincount(pool.actions[winners, 0], minlength=len(P0)).double() / K
    learned = torch.from_numpy(policy.table()[0])
    torch.testing.assert_close(learned, empirical, atol=2e-3, rtol=0)  # BC's optimum: the winners' frequencies
    exact = best_of_n_distribution(P0, REWARD, n)
    tolerance = 4 * torch.sqrt(exact * (1 - exact) / K) + 2e-3
    assert ((learned - exact).abs() <= tolerance).all(), (learned, exact)
    assert history["raft/proxy_best"][0] == pytest.approx(float(REWARD[pool.actions[winners, 0]].mean()))
    assert history["raft/proxy_sampled"][0] == pytest.approx(float(reward(pool).mean()))
    assert set(history) == {"raft/proxy_sampled", "raft/proxy_best", "loss/bc"}  # no monitor: no gold keys


def test_rounds_raise_the_reward_and_a_seed_reproduces_a_run():
    config = RAFTConfig(n_rounds=3, n=4, prompts_per_round=200, bc=BCConfig(n_updates=50, lr=0.1), seed=3)
    runs = []
    for _ in range(2):
        policy = bandit_policy()
        runs.append((train_raft(policy, bandit_source(policy), reward, config, monitor=lambda b: -reward(b)), policy))
    (h, p), (h2, p2) = runs
    assert h == h2 and torch.equal(p.theta, p2.theta)
    assert h["raft/gold_sampled"] == [-x for x in h["raft/proxy_sampled"]]  # the monitor is only logged
    assert h["raft/proxy_sampled"][-1] > h["raft/proxy_sampled"][0] + 1.0
    assert all(b >= s for b, s in zip(h["raft/proxy_best"], h["raft/proxy_sampled"]))
    assert all(math.isfinite(x) for x in h["loss/bc"])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="n_rounds: must be an integer >= 1"):
        RAFTConfig(n_rounds=0)
    with pytest.raises(ValueError, match="bc: must be a BCConfig"):
        RAFTConfig(bc=None)
    fixed = TabularPolicy.from_table(P0[None].numpy())
    with pytest.raises(ValueError, match="policy: RAFT fine-tunes the policy"):
        train_raft(fixed, bandit_source(fixed), reward)
    policy = bandit_policy()
    with pytest.raises(ValueError, match="source: must return a TrajectoryBatch of"):
        train_raft(policy, lambda k, n, g: bandit_source(policy)(k, 1, g), reward, RAFTConfig(n=2))
    with pytest.raises(ValueError, match="scorer: must have .score"):
        train_raft(policy, bandit_source(policy), 3)
