"""Public tests of a4 (adversarial imitation): the discriminator's weighted logistic loss, AIRL's
structured f(s, a, s'), and the exact policy-gradient surrogate.

Oracles: the loss summed in plain Python with math.log; f assembled from the discriminator's own
networks g and v read one state at a time; the policy gradient by central finite differences of the
exact return J(theta) = rho0^T (I - gamma P_pi)^{-1} r_pi, solved here with numpy.
"""

import math

import numpy as np
import pytest
import torch

from minirl.algos.exact_imitation import policy_gradient_surrogate
from minirl.discriminators import AIRLDiscriminator, discriminator_loss
from minirl.mdp import TabularMDP


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))


@pytest.mark.points(2)
def test_discriminator_loss_is_the_weighted_logistic_loss():
    h_demo, w_demo = [0.3, -1.2, 2.0], [1.0, 0.5, 2.0]
    h_pol, w_pol = [-0.4, 1.5], [3.0, 1.0]
    expected = (-sum(w * log_sigmoid(h) for h, w in zip(h_demo, w_demo)) / sum(w_demo)
                - sum(w * log_sigmoid(-h) for h, w in zip(h_pol, w_pol)) / sum(w_pol))
    got = discriminator_loss(torch.tensor(h_demo, dtype=torch.float64), torch.tensor(h_pol, dtype=torch.float64),
                             torch.tensor(w_demo, dtype=torch.float64), torch.tensor(w_pol, dtype=torch.float64))
    assert float(got) == pytest.approx(expected, abs=1e-12)


def networks(disc: AIRLDiscriminator, s: int) -> tuple[float, float]:
    """(g(s), v(s)) of state id s, read from the discriminator's two networks with a hand-made one-hot."""
    x = torch.zeros(1, disc.encoder.obs_dim + 1)
    x[0, s] = 1.0
    return float(disc.g(x)), float(disc.v(x))


@pytest.mark.points(2)
def test_airl_f_is_reward_plus_shaping():
    disc = AIRLDiscriminator(obs_dim=4, discrete_obs=True, gamma=0.9, hidden=(8,), seed=1)
    obs, nxt = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 3, 3])
    done = torch.tensor([False, False, True, False])
    with torch.no_grad():
        f = disc.f(obs, nxt, done)
    for i in range(4):
        g_s, v_s = networks(disc, int(obs[i]))
        _, v_next = networks(disc, int(nxt[i]))
        expected = g_s + (0.0 if done[i] else 0.9 * v_next) - v_s
        assert float(f[i]) == pytest.approx(expected, abs=1e-5)


def chain_mdp(gamma=0.9) -> TabularMDP:
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(3), size=(3, 2))
    return TabularMDP(P=P, R=None, rho0=np.array([0.5, 0.3, 0.2]), gamma=gamma)


def exact_return(mdp: TabularMDP, theta: np.ndarray, reward: np.ndarray) -> float:
    pi = np.exp(theta - theta.max(1, keepdims=True))
    pi /= pi.sum(1, keepdims=True)
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    V = np.linalg.solve(np.eye(mdp.n_states) - mdp.gamma * P_pi, (pi * reward).sum(1))
    return float(mdp.rho0 @ V)


def finite_difference_gradient(mdp, theta, reward, h=1e-6):
    grad = np.zeros_like(theta)
    for idx in np.ndindex(theta.shape):
        up, down = theta.copy(), theta.copy()
        up[idx] += h
        down[idx] -= h
        grad[idx] = (exact_return(mdp, up, reward) - exact_return(mdp, down, reward)) / (2 * h)
    return grad


@pytest.mark.points(3)
def test_policy_gradient_surrogate_has_the_exact_gradient():
    mdp = chain_mdp()
    theta0 = np.array([[0.2, -0.4], [1.0, 0.0], [-0.3, 0.6]])
    reward = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.5]])
    theta = torch.tensor(theta0, requires_grad=True)
    surrogate = policy_gradient_surrogate(mdp, torch.softmax(theta, -1), torch.tensor(reward))
    surrogate.backward()
    np.testing.assert_allclose(theta.grad.numpy(), finite_difference_gradient(mdp, theta0, reward), rtol=0, atol=1e-7)
