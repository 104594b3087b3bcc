"""PPO (docs/equations.md §6): GAE against a loop oracle, the losses against hand-computed numbers,
the Gaussian policy against torch.distributions, the fragment collector against the envs' own
rules, tabular PPO against value iteration, CartPole to 500, determinism and input errors."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from minirl.algos.ppo import (
    PPO,
    PPOConfig,
    clipped_surrogate,
    clipped_value_loss,
    gae,
    ppo_loss,
)
from minirl.algos.group_advantages import reward_to_go
from minirl.data import TrajectoryBatch
from minirl.envs import HideReward, TabularVectorEnv, gridworld
from minirl.experiments.ppo_experts import train_cartpole_expert
from minirl.mdp import policy_evaluation, value_iteration
from minirl.policies import (
    GaussianPolicy,
    MLPPolicy,
    Policy,
    TabularPolicy,
    TabularValue,
    ValueFunction,
    ValueMLP,
)
from minirl.rollout import collect_fragments

# -- GAE ---------------------------------------------------------------------

def gae_oracle(r, v, nv, end, mask, gamma, lam):
    """The recursion of docs/equations.md §6 in plain Python, one step at a time."""
    B, T = len(r), len(r[0])
    A = [[0.0] * T for _ in range(B)]
    for b in range(B):
        a_next = 0.0
        for t in reversed(range(T)):
            if not mask[b][t]:
                a_next = 0.0
                continue
            delta = r[b][t] + gamma * nv[b][t] - v[b][t]
            a_next = delta + gamma * lam * (0.0 if end[b][t] else 1.0) * a_next
            A[b][t] = a_next
    R = [[A[b][t] + v[b][t] if mask[b][t] else 0.0 for t in range(T)] for b in range(B)]
    return A, R


def test_gae_matches_loop_oracle_with_episode_ends_truncation_and_padding():
    g = torch.Generator().manual_seed(0)
    B, T = 6, 17
    r, v, nv = (torch.randn(B, T, generator=g, dtype=torch.float64) for _ in range(3))
    terminated = torch.rand(B, T, generator=g) < 0.15
    truncated = (torch.rand(B, T, generator=g) < 0.1) & ~terminated
    nv = torch.where(terminated, 0.0, nv)  # absorbing; truncated steps keep V(final obs)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 12:] = False  # trailing padding (a whole-episode / LM batch)
    mask[2, 5] = False  # a NEXT_STEP reset slot in the middle of a fragment ...
    terminated[2, 4] = True  # ... right after an episode's end
    end = terminated | truncated
    A, R = gae(r, v, nv, end, mask, gamma=0.97, lam=0.9)
    A_ref, R_ref = gae_oracle(r.tolist(), v.tolist(), nv.tolist(), end.tolist(), mask.tolist(), 0.97, 0.9)
    assert torch.allclose(A, torch.tensor(A_ref, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(R, torch.tensor(R_ref, dtype=torch.float64), atol=1e-12)
    assert (A[~mask] == 0).all() and (R[~mask] == 0).all()


def test_gae_lambda_one_is_the_bootstrapped_discounted_return():
    """lambda = 1: R_t = sum of discounted rewards to the episode's end + gamma^k V(final) if truncated."""
    gamma = 0.5
    r = torch.tensor([[1.0, 2.0, 4.0, 8.0, 16.0]])
    v = torch.tensor([[0.3, -1.0, 2.0, 0.7, 5.0]])
    # steps 0-1: an episode truncated at step 1 with V(final obs) = 10; steps 2-3 terminated
    # at step 3; step 4 is cut by the fragment's end and bootstraps from V(s_5) = 6.
    nv = torch.tensor([[-1.0, 10.0, 0.7, 0.0, 6.0]])
    end = torch.tensor([[False, True, False, True, False]])
    _, R = gae(r, v, nv, end, torch.ones(1, 5, dtype=torch.bool), gamma, lam=1.0)
    expected = [1 + 0.5 * (2 + 0.5 * 10), 2 + 0.5 * 10, 4 + 0.5 * 8, 8, 16 + 0.5 * 6]
    assert R[0].tolist() == pytest.approx(expected)


def test_reward_to_go_sums_the_discounted_rewards_after_each_step_within_its_episode():
    """G_t by hand: an episode ends at step 1 (no bootstrap: V = 0), the next runs to the row's end;
    padding stays 0; gamma = 0 leaves each step its own reward."""
    r = torch.tensor([[1.0, 2.0, 4.0, 8.0, 0.0]])
    end = torch.tensor([[False, True, False, False, False]])
    mask = torch.tensor([[True, True, True, True, False]])
    assert reward_to_go(r, end, mask, 0.5)[0].tolist() == pytest.approx([2.0, 2.0, 8.0, 8.0, 0.0])
    assert reward_to_go(r, end, mask, 0.0)[0].tolist() == pytest.approx([1.0, 2.0, 4.0, 8.0, 0.0])
    zeros = torch.zeros_like(r)  # the oracle: GAE with V = 0 and lambda = 1
    assert torch.allclose(reward_to_go(r, end, mask, 0.7), gae(r, zeros, zeros, end, mask, 0.7, lam=1.0)[0])


# -- losses ------------------------------------------------------------------

def test_clipped_surrogate_hand_numbers():
    ratio = torch.tensor([0.5, 1.0, 1.5, 1.5, 0.5])
    adv = torch.tensor([1.0, 2.0, 1.0, -1.0, -1.0])
    # -min(rA, clip(r)A): clipping only ever removes the incentive to move further
    assert clipped_surrogate(ratio, adv, 0.2).tolist() == pytest.approx([-0.5, -2.0, -1.2, 1.5, 0.8])


def test_clipped_value_loss_hand_numbers():
    values, old, returns = torch.tensor([1.0, 3.0, 1.0]), torch.tensor([0.0, 2.0, 0.0]), torch.tensor([0.5, 2.0, 1.0])
    assert clipped_value_loss(values, old, returns, None).tolist() == pytest.approx([0.125, 0.5, 0.0])
    # clipped V = [0.2, 2.2, 0.2]: the third step's clipped error 0.8^2 dominates
    assert clipped_value_loss(values, old, returns, 0.2).tolist() == pytest.approx([0.125, 0.5, 0.32])


def test_ppo_loss_combines_terms_over_real_steps_only():
    mask = torch.tensor([[True, True, False]])
    logp = torch.tensor([[math.log(1.5), 0.0, 9.0]])
    old = torch.zeros(1, 3)
    adv = torch.tensor([[1.0, 2.0, 100.0]])
    values, old_v, returns = torch.tensor([[1.0, 0.0, 7.0]]), torch.zeros(1, 3), torch.tensor([[0.0, 2.0, 0.0]])
    entropy = torch.tensor([[0.4, 0.6, 50.0]])
    loss, stats = ppo_loss(logp, old, adv, values, old_v, returns, entropy, mask, 0.2, None, vf_coef=0.5, ent_coef=0.1)
    assert stats["loss/policy"] == pytest.approx((-1.2 - 2.0) / 2)
    assert stats["loss/value"] == pytest.approx((0.5 + 2.0) / 2)
    assert stats["loss/entropy"] == pytest.approx(0.5)
    assert loss.item() == pytest.approx(-1.6 + 0.5 * 1.25 - 0.1 * 0.5)
    assert stats["stats/clip_fraction"] == pytest.approx(0.5)
    assert stats["stats/approx_kl"] == pytest.approx((0.5 - math.log(1.5)) / 2)


# -- policies ----------------------------------------------------------------

def test_gaussian_policy_matches_torch_normal():
    pi = GaussianPolicy(3, 2, log_std_init=-0.5, seed=1)
    pi.log_std.data = torch.tensor([-0.5, 0.3])
    obs, actions = torch.randn(2, 4, 3), torch.randn(2, 4, 2)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    batch = TrajectoryBatch(obs=obs, actions=actions, mask=mask)
    dist = torch.distributions.Normal(pi.mean(obs), pi.log_std.exp())
    expected = torch.where(mask, dist.log_prob(actions).sum(-1), 0.0)
    assert torch.allclose(pi.log_prob(batch), expected, atol=1e-6)
    assert torch.allclose(pi.entropy(batch), torch.where(mask, dist.entropy().sum(-1), 0.0), atol=1e-6)
    a, lp = pi.sample(obs[0], generator=torch.Generator().manual_seed(0))  # (4, 2), (4,)
    assert a.shape == (4, 2) and lp.shape == (4,)
    step_dist = torch.distributions.Normal(pi.mean(obs[0]), pi.log_std.exp())
    assert torch.allclose(lp, step_dist.log_prob(a).sum(-1), atol=1e-5)
    assert torch.equal(pi.sample(obs[0], deterministic=True)[0], pi.mean(obs[0]).detach())
    assert isinstance(pi, Policy) and isinstance(ValueMLP(3), ValueFunction) and isinstance(TabularValue(3), ValueFunction)
    # weights depend only on the seed
    assert torch.equal(GaussianPolicy(3, 2, seed=4).net[0].weight, GaussianPolicy(3, 2, seed=4).net[0].weight)


def test_gaussian_policy_refuses_discrete_or_misshaped_actions():
    pi = GaussianPolicy(3, 2)
    for actions in (torch.zeros(1, 4, 2, dtype=torch.long), torch.zeros(1, 4, 3), torch.zeros(1, 4)):
        with pytest.raises(ValueError, match="actions"):
            pi.log_prob(TrajectoryBatch(obs=torch.zeros(1, 4, 3), actions=actions, mask=torch.ones(1, 4)))


def test_value_functions_mask_padding():
    table = TabularValue(4)
    table.v.data = torch.tensor([1.0, 2.0, 3.0, 4.0])
    batch = TrajectoryBatch(obs=torch.tensor([[3, 1, 99]]), actions=torch.zeros(1, 3, dtype=torch.long),
                            mask=torch.tensor([[True, True, False]]))
    assert table.values(batch).tolist() == [[4.0, 2.0, 0.0]]
    assert ValueMLP(2).values(TrajectoryBatch(obs=torch.ones(1, 2, 2), actions=torch.zeros(1, 2),
                                              mask=torch.tensor([[True, False]])))[0, 1] == 0.0


# -- the fragment collector --------------------------------------------------

def _out_of_bounds(s):
    """CartPole-v1's termination rule on observations (B, T, 4)."""
    return (s[..., 0].abs() > 2.4) | (s[..., 2].abs() > 12 * 2 * math.pi / 360)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_fragments_on_cartpole_keep_true_next_observations(mode):
    envs = gym.make_vec("CartPole-v1", num_envs=3, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": mode})
    pi, vf = MLPPolicy(4, 2, seed=0), ValueMLP(4, seed=1)
    seen = {}

    def reward_fn(b):  # an adversarial trainer's reward: sees s, a, s' and log pi(a|s)
        seen.update(next_obs=b.next_obs, log_probs=b.log_probs, env_reward=b.rewards)
        return b.next_obs[..., 0]

    batch, state = collect_fragments(envs, pi, vf, 60, None, torch.Generator().manual_seed(0), reward_fn, seed=0)
    batch2, _ = collect_fragments(envs, pi, vf, 60, state, torch.Generator().manual_seed(1))
    for b in (batch, batch2):
        m, nxt, end = b.mask, b.next_obs, b.episode_end
        assert b.terminated[m].any()  # the random policy drops the pole within 60 steps
        assert (_out_of_bounds(nxt) == b.terminated).all()  # s' of a terminal step is the final obs
        assert not _out_of_bounds(b.obs[m]).any()
        follow = m[:, :-1] & m[:, 1:] & ~end[:, :-1]  # s_{t+1} of a step inside an episode is the next obs
        assert torch.equal(nxt[:, :-1][follow], b.obs[:, 1:][follow])
        if mode == AutoresetMode.NEXT_STEP:  # the step after an end only resets: masked, not a transition
            assert torch.equal(~m[:, 1:], end[:, :-1])
        else:
            assert m.all()
        assert torch.allclose(b.next_values, torch.where(m & ~b.terminated, vf.value(nxt), 0.0).detach())
        assert torch.allclose(b.values, torch.where(m, vf.value(b.obs), 0.0).detach())
    assert torch.equal(batch.rewards, torch.where(batch.mask, seen["next_obs"][..., 0], 0.0))
    assert seen["env_reward"][batch.mask].eq(1.0).all()  # the reward_fn saw the env's own reward, then replaced it
    assert len(state.finished_returns) == int(batch.episode_end.sum())  # logging, not batch data
    assert not {"next_obs", "next_values", "episode_end", "truncated", "env_reward", "episode_returns"} & set(b.info)


def test_fragments_refuse_hidden_reward_without_reward_fn():
    envs = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync", wrappers=[HideReward])
    batch, _ = collect_fragments(envs, MLPPolicy(4, 2), ValueMLP(4), 5, seed=0)
    assert batch.rewards is None  # an MDP\R shows the learner no reward ...
    with pytest.raises(ValueError, match="reward_fn"):  # ... so PPO refuses to train without one, before any update
        PPO(MLPPolicy(4, 2), ValueMLP(4)).train(envs, 10)
    batch, _ = collect_fragments(envs, MLPPolicy(4, 2), ValueMLP(4), 30, seed=0,
                                 reward_fn=lambda b: torch.zeros(b.mask.shape))
    assert batch.info["gold_reward"][batch.mask].eq(1.0).all()


# -- PPO end to end ------------------------------------------------------------

def test_ratio_is_one_before_the_first_step():
    envs = gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync")
    ppo = PPO(GaussianPolicy(3, 1, seed=0), ValueMLP(3, seed=1), PPOConfig(n_steps=16, n_epochs=1, n_minibatches=1))
    stats = ppo.update(ppo.collect(envs))
    assert abs(stats["stats/approx_kl"]) < 1e-6 and stats["stats/clip_fraction"] == 0.0


def test_tabular_ppo_reaches_the_value_iteration_optimum():
    """Oracle: the exact value of PPO's final policy (linear solve) vs V* of value iteration."""
    mdp = gridworld("S...\n.#..\n...G", slip=0.1, gamma=0.9, step_reward=-0.1, horizon=12)
    V_star, _, _ = value_iteration(mdp)
    pi, vf = TabularPolicy(mdp.n_states, mdp.n_actions), TabularValue(mdp.n_states)
    config = PPOConfig(n_steps=16, n_epochs=4, n_minibatches=4, lr=0.05, gamma=mdp.gamma, gae_lambda=0.95)
    envs = TabularVectorEnv(mdp, num_envs=16)
    PPO(pi, vf, config).train(envs, 30_000)
    optimum = mdp.rho0 @ V_star
    uniform = mdp.rho0 @ policy_evaluation(mdp, np.full((mdp.n_states, mdp.n_actions), 1 / mdp.n_actions))
    learned = mdp.rho0 @ policy_evaluation(mdp, pi.table())
    assert optimum - uniform > 0.9  # the uniform start is far from the optimum (0.17 vs -0.81) ...
    assert learned == pytest.approx(optimum, abs=0.02 * (optimum - uniform))  # ... PPO closes 98% of the gap


def test_cartpole_reaches_475():
    """The default budget, 50k steps (~15 s on one thread); seeds 0-4 all evaluate at 500 (see ppo_experts)."""
    result = train_cartpole_expert(seed=0)
    assert result.eval_deterministic >= 475 and result.eval_stochastic >= 475


def test_same_seed_gives_bit_identical_parameters():
    def run():
        envs = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
        pi, vf = MLPPolicy(4, 2, seed=3), ValueMLP(4, seed=4)
        history = PPO(pi, vf, PPOConfig(n_steps=32, seed=7)).train(envs, 256)
        return [p.detach().clone() for p in (*pi.parameters(), *vf.parameters())], history

    (p1, h1), (p2, h2) = run(), run()
    assert all(torch.equal(a, b) for a, b in zip(p1, p2))
    drop_time = [{k: v for k, v in h.items() if k != "wall_s"} for h in (*h1, *h2)]
    assert drop_time[: len(h1)] == drop_time[len(h1):]


# -- input errors --------------------------------------------------------------

@pytest.mark.parametrize("field, value", [("n_steps", 0), ("n_epochs", 0), ("n_minibatches", 1.5), ("lr", 0.0),
                                          ("gamma", 1.5), ("gae_lambda", -0.1), ("clip_eps", 0.0),
                                          ("clip_value", -1.0), ("ent_coef", -0.1), ("max_grad_norm", 0.0)])
def test_config_refuses_bad_fields(field, value):
    with pytest.raises(ValueError, match=field):
        PPOConfig(**{field: value})


def test_policy_must_match_the_action_space():
    cartpole = gym.make_vec("CartPole-v1", num_envs=1, vectorization_mode="sync")
    pendulum = gym.make_vec("Pendulum-v1", num_envs=1, vectorization_mode="sync")
    for envs, policy, vf in ((cartpole, GaussianPolicy(4, 1), ValueMLP(4)), (pendulum, MLPPolicy(3, 2), ValueMLP(3)),
                             (pendulum, GaussianPolicy(3, 2), ValueMLP(3))):
        with pytest.raises(ValueError, match="policy"):
            PPO(policy, vf).train(envs, 10)
    with pytest.raises(ValueError, match="batch"):
        PPO(MLPPolicy(4, 2), ValueMLP(4)).update(TrajectoryBatch(obs=torch.zeros(1, 2, 4),
                                                                 actions=torch.zeros(1, 2, dtype=torch.long),
                                                                 mask=torch.ones(1, 2)))


def test_gaussian_policy_labels_with_its_mean_action():
    from minirl.policies import GaussianPolicy

    policy = GaussianPolicy(3, 2, seed=0)
    obs = torch.randn(2, 4, 3)
    batch = TrajectoryBatch(obs=obs, actions=torch.zeros(2, 4, 2), mask=torch.ones(2, 4, dtype=torch.bool))
    torch.testing.assert_close(policy.label(batch), policy.mean(obs))
    assert policy.label(batch).shape == (2, 4, 2)


@pytest.mark.parametrize("estimator", ["reinforce", "rloo", "grpo", "reward_to_go"])
def test_monte_carlo_estimators_reach_the_kl_regularised_optimum_of_a_bandit(estimator):
    """On a K-armed bandit with reward r - beta (log pi_old - log pi_ref) (docs/equations.md §6), PPO's
    update with each Monte-Carlo advantage, fed by a batch source, converges to
    pi* = pi_ref exp(r / beta) / Z -- the same fixed point, another estimator."""
    r = torch.tensor([1.0, 0.5, 0.0, -0.5])
    pi_ref = torch.tensor([0.1, 0.2, 0.3, 0.4])
    beta, G = 0.5, 8
    target = pi_ref * torch.exp(r / beta)
    target = target / target.sum()
    policy = TabularPolicy(1, 4)
    generator = torch.Generator().manual_seed(0)

    def source() -> TrajectoryBatch:
        obs = torch.zeros(32 * G, 1, dtype=torch.long)
        actions, log_probs = policy.sample(obs[:, 0], generator=generator)
        return TrajectoryBatch(obs=obs, actions=actions[:, None], mask=torch.ones(32 * G, 1, dtype=torch.bool),
                               log_probs=log_probs[:, None], group_size=G)

    def reward(batch: TrajectoryBatch) -> torch.Tensor:
        a = batch.actions[:, 0]
        return (r[a] - beta * (batch.log_probs[:, 0] - pi_ref[a].log()))[:, None]

    config = PPOConfig(advantage=estimator, lr=0.05, n_epochs=2, n_minibatches=2, seed=0)
    PPO(policy, None, config).train(source, 256 * 300, reward_fn=reward)
    pi = torch.softmax(policy.theta[0].detach(), -1)
    assert torch.allclose(pi, target, atol=0.03), (estimator, pi, target)
