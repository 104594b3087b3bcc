"""Hidden tests of a4: the discriminator loss is minimised by the log density ratio (its gradient vanishes
there), a constant shift of AIRL's potential v matters only where episodes end, and the exact
policy-gradient surrogate on a second MDP with a state-only reward."""

import numpy as np
import pytest
import torch

from minirl.algos.exact_imitation import policy_gradient_surrogate
from minirl.discriminators import AIRLDiscriminator, discriminator_loss
from minirl.mdp import TabularMDP


@pytest.mark.points(2)
def test_discriminator_loss_is_minimised_by_the_log_density_ratio():
    rho_demo = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    rho_pi = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    h = torch.log(rho_demo / rho_pi).requires_grad_(True)  # h* = log rho_demo / rho_pi
    discriminator_loss(h, h, rho_demo, rho_pi).backward()
    torch.testing.assert_close(h.grad, torch.zeros(4, dtype=torch.float64), rtol=0, atol=1e-12)
    moved = (torch.log(rho_demo / rho_pi) + 0.3).requires_grad_(True)
    discriminator_loss(moved, moved, rho_demo, rho_pi).backward()
    assert moved.grad.abs().max() > 1e-3


@pytest.mark.points(2)
def test_a_constant_shift_of_v_matters_only_where_episodes_end():
    gamma, c = 0.9, 2.5
    disc = AIRLDiscriminator(obs_dim=3, discrete_obs=True, gamma=gamma, hidden=(8,), seed=4)
    obs, nxt = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 2, 2, 2])
    done = torch.tensor([False, True, False, True])
    with torch.no_grad():
        before = disc.f(obs, nxt, done)
        disc.v[-1].bias += c  # v -> v + c
        after = disc.f(obs, nxt, done)
    expected_shift = torch.where(done, torch.tensor(-c), torch.tensor((gamma - 1.0) * c))
    torch.testing.assert_close(after - before, expected_shift, rtol=0, atol=1e-5)


@pytest.mark.points(3)
def test_policy_gradient_surrogate_on_a_second_mdp():
    rng = np.random.default_rng(9)
    S, A, gamma = 4, 3, 0.8
    mdp = TabularMDP(P=rng.dirichlet(np.ones(S), size=(S, A)), R=None, rho0=rng.dirichlet(np.ones(S)), gamma=gamma)
    reward = np.repeat(rng.normal(size=(S, 1)), A, axis=1)  # state-only
    theta0 = rng.normal(size=(S, A))

    def J(theta):
        pi = np.exp(theta) / np.exp(theta).sum(1, keepdims=True)
        P_pi = np.einsum("sa,sat->st", pi, mdp.P)
        return float(mdp.rho0 @ np.linalg.solve(np.eye(S) - gamma * P_pi, (pi * reward).sum(1)))

    grad = np.zeros_like(theta0)
    for idx in np.ndindex(theta0.shape):
        e = np.zeros_like(theta0)
        e[idx] = 1e-6
        grad[idx] = (J(theta0 + e) - J(theta0 - e)) / 2e-6
    theta = torch.tensor(theta0, requires_grad=True)
    policy_gradient_surrogate(mdp, torch.softmax(theta, -1), torch.tensor(reward)).backward()
    np.testing.assert_allclose(theta.grad.numpy(), grad, rtol=0, atol=1e-7)
