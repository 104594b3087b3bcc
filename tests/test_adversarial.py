"""The sample-based adversarial trainer (GAIL / AIRL / FAIRL on PPO): plumbing, bad input, and CartPole."""

import gymnasium as gym
import pytest
import torch

from minirl.algos.adversarial import AdversarialConfig, AdversarialImitation, transitions
from minirl.data import TrajectoryBatch
from minirl.envs import HideReward
from minirl.experiments.ppo_experts import CARTPOLE_CONFIG, evaluate_policy
from minirl.experts import CartPoleExpert
from minirl.policies import GaussianPolicy, MLPPolicy, ValueMLP
from minirl.rollout import rollout


@pytest.fixture(scope="module")
def demos():
    envs = gym.make_vec("CartPole-v1", num_envs=4, vectorization_mode="sync")
    return rollout(envs, CartPoleExpert(), 4, seed=100, deterministic=True)  # 4 x 500 steps


def cartpole(n=8):
    return gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="sync", wrappers=[HideReward])


def test_transitions_pair_each_step_with_its_successor():
    obs = torch.arange(10.0).reshape(2, 5, 1)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    terminated = torch.tensor([[0, 0, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    steps = transitions(TrajectoryBatch(obs=obs, actions=torch.zeros(2, 5, dtype=torch.long), mask=mask,
                                        terminated=terminated))
    # row 0 ends by termination at t = 2 (kept: s' is not needed); row 1 is cut at t = 4 (dropped)
    assert steps["obs"].squeeze(-1).tolist() == [0, 1, 2, 5, 6, 7, 8]
    assert steps["next_obs"].squeeze(-1).tolist()[:2] == [1, 2]
    assert steps["next_obs"].squeeze(-1).tolist()[3:] == [6, 7, 8, 9]
    assert steps["done"].tolist() == [False, False, True, False, False, False, False]


def test_bad_input_is_refused_before_training(demos):
    with pytest.raises(ValueError, match="divergence: unknown divergence 'wgan'; valid: \\['airl', 'fairl', 'gail'\\]"):
        AdversarialConfig(divergence="wgan")
    with pytest.raises(ValueError, match="reward: rule 'fairl_h_exp_h' belongs to divergence 'fairl'"):
        AdversarialConfig(divergence="gail", reward="fairl_h_exp_h")
    envs = cartpole(2)
    policy, value = MLPPolicy(4, 2), ValueMLP(4)
    with pytest.raises(ValueError, match="demos: the demonstration set is empty"):
        AdversarialImitation(envs, policy, value, demos.replace(mask=torch.zeros_like(demos.mask)))
    with pytest.raises(ValueError, match="demos: observation shape \\(3,\\) does not match the env's \\(4,\\)"):
        AdversarialImitation(envs, policy, value, demos.replace(obs=demos.obs[..., :3]))
    with pytest.raises(ValueError, match="demos: action shape"):
        AdversarialImitation(envs, policy, value, demos.replace(actions=demos.actions[..., None].float()))
    pendulum = gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync")
    pendulum_demos = TrajectoryBatch(obs=torch.zeros(1, 3, 3), actions=torch.zeros(1, 3, 1),
                                     mask=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="policy: a discrete-action policy cannot act"):
        AdversarialImitation(pendulum, MLPPolicy(3, 2), ValueMLP(3), pendulum_demos)
    AdversarialImitation(pendulum, GaussianPolicy(3, 1), ValueMLP(3), pendulum_demos)  # the right pairing is fine


def test_non_finite_rewards_are_refused(demos):
    trainer = AdversarialImitation(cartpole(2), MLPPolicy(4, 2), ValueMLP(4), demos, AdversarialConfig(
        ppo=CARTPOLE_CONFIG))
    with torch.no_grad():
        trainer.disc.net[-1].bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="discriminator: produced non-finite rewards"):
        trainer.train(256)


def test_gail_imitates_the_cartpole_expert_from_four_demonstrations(demos):
    """The environment's reward is hidden (MDP\\R); only the discriminator's reward trains PPO."""
    torch.manual_seed(0)
    policy = MLPPolicy(4, 2, seed=0)
    trainer = AdversarialImitation(cartpole(), policy, ValueMLP(4, seed=0), demos,
                                   AdversarialConfig(divergence="gail", disc_minibatches=1, ppo=CARTPOLE_CONFIG))
    history = trainer.train(60_000)
    assert all("disc/loss" in record for record in history)
    assert evaluate_policy("CartPole-v1", policy, n_episodes=10) >= 0.9 * 500


def test_same_seed_same_discriminator(demos):
    def run():
        trainer = AdversarialImitation(cartpole(2), MLPPolicy(4, 2, seed=0), ValueMLP(4, seed=0), demos,
                                       AdversarialConfig(divergence="airl", ppo=CARTPOLE_CONFIG))
        trainer.train(512)
        return [p.detach().clone() for p in trainer.disc.parameters()]

    for a, b in zip(run(), run()):
        assert torch.equal(a, b)


def test_a_categorical_policy_refuses_float_actions():
    batch = TrajectoryBatch(obs=torch.zeros(1, 2, 4), actions=torch.tensor([[0.0, 1.0]]),
                            mask=torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="actions: a categorical policy needs integer actions"):
        MLPPolicy(4, 2).log_prob(batch)
