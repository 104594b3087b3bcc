"""The f-divergence family against closed forms, and the gradient oracle of docs/equations.md §4.

The oracle: in a tabular MDP, autograd through the exact occupancy measure gives
grad_theta D_f(rho_demo || rho_pi); the policy gradient of the return under r(h*) must be its
negative. The derived rule passes for all three divergences; the published variants show which
ones do not follow their divergence's gradient.
"""

import math

import numpy as np
import pytest
import torch

from minirl.algos.exact_imitation import (ExactImitationConfig, divergence_gradient, exact_occupancy,
                                          optimal_logit, policy_gradient_surrogate, q_values, reward_gradient,
                                          train_exact)
from minirl.divergences import DIVERGENCES, f_divergence, get_divergence, get_reward_rule, js, kl
from minirl.envs import gridworld
from minirl.mdp import TabularMDP, occupancy_measure, policy_evaluation, soft_value_iteration
from minirl.policies import TabularPolicy


def random_mdp(seed=0, S=5, A=3, gamma=0.9):
    rng = np.random.default_rng(seed)
    return TabularMDP(P=rng.dirichlet(np.ones(S), size=(S, A)), R=rng.normal(size=(S, A)),
                      rho0=rng.dirichlet(np.ones(S)), gamma=gamma)


def soft_expert_occupancy(mdp, alpha=0.5):
    return exact_occupancy(mdp, torch.tensor(soft_value_iteration(mdp, alpha).pi))


def random_policy(mdp, seed=1):
    return TabularPolicy(mdp.n_states, mdp.n_actions, init_scale=1.0,
                         generator=torch.Generator().manual_seed(seed)).double()


# -- closed forms -------------------------------------------------------------------------------------

def test_divergences_match_their_closed_forms():
    p = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    q = torch.tensor([0.25, 0.25, 0.4, 0.1], dtype=torch.float64)
    forward = (p * (p / q).log()).sum()
    reverse = (q * (q / p).log()).sum()
    m = (p + q) / 2
    jensen_shannon = 0.5 * (p * (p / m).log()).sum() + 0.5 * (q * (q / m).log()).sum()
    assert f_divergence("fairl", p, q).item() == pytest.approx(forward.item(), abs=1e-12)
    assert f_divergence("airl", p, q).item() == pytest.approx(reverse.item(), abs=1e-12)
    assert f_divergence("gail", p, q).item() == pytest.approx(2 * jensen_shannon.item(), abs=1e-12)
    assert kl(p, q).item() == pytest.approx(forward.item(), abs=1e-12)
    assert js(p, q).item() == pytest.approx(jensen_shannon.item(), abs=1e-12)
    for name in DIVERGENCES:
        assert f_divergence(name, p, p).item() == pytest.approx(0.0, abs=1e-12)  # f(1) = 0


def test_support_mismatch_gives_infinity_where_the_divergence_is_infinite():
    p = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    q = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    assert math.isinf(f_divergence("airl", p, q).item())  # pi puts mass where the expert has none
    assert math.isfinite(f_divergence("fairl", p, q).item())
    assert math.isinf(f_divergence("fairl", q, p).item())
    assert js(p, q).item() <= math.log(2)


@pytest.mark.parametrize("name", sorted(DIVERGENCES))
def test_derived_reward_is_u_fprime_minus_f(name):
    """r(h) = u f'(u) - f(u) with u = e^h, and f' is the derivative of f (autograd)."""
    div = get_divergence(name)
    h = torch.linspace(-3, 3, 13, dtype=torch.float64)
    u = h.exp().requires_grad_(True)
    (grad,) = torch.autograd.grad(div.f(u).sum(), u)
    torch.testing.assert_close(div.f_prime(u.detach()), grad)
    torch.testing.assert_close(div.reward(h), u.detach() * grad - div.f(u.detach()))


def test_published_variants_differ_from_the_derived_rule_by_what_the_docs_say():
    h = torch.linspace(-3, 3, 13, dtype=torch.float64)
    torch.testing.assert_close(get_reward_rule("gail_minus_log1m_d").reward(h),
                               get_reward_rule("gail").reward(h) + math.log(2))
    torch.testing.assert_close(get_reward_rule("airl_logit").reward(h), get_reward_rule("airl").reward(h) + 1)
    D = torch.sigmoid(h)
    torch.testing.assert_close(get_reward_rule("gail_log_d").reward(h), D.log())


# -- exact occupancy ----------------------------------------------------------------------------------

def test_exact_occupancy_equals_the_numpy_solver_and_is_differentiable():
    mdp = random_mdp()
    pi = torch.softmax(torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), -1)
    np.testing.assert_allclose(exact_occupancy(mdp, pi).numpy(), occupancy_measure(mdp, pi.numpy()), atol=1e-12)
    Q, V = q_values(mdp, pi, torch.tensor(mdp.R))
    np.testing.assert_allclose(V.numpy(), policy_evaluation(mdp, pi.numpy()), atol=1e-10)


def test_terminal_states_take_no_actions_in_the_occupancy():
    mdp = gridworld("S..\n..G", gamma=0.9)
    pi = torch.full((mdp.n_states, 4), 0.25, dtype=torch.float64)
    rho = exact_occupancy(mdp, pi)
    assert torch.all(rho[torch.tensor(np.array(mdp.terminal))] == 0)
    # the expected episode length (discounted) is what the acting states hold
    assert 0 < rho.sum().item() < 1 / (1 - mdp.gamma)


def test_optimal_logit_is_the_log_density_ratio_and_minimises_the_discriminator_loss():
    from minirl.discriminators import discriminator_loss

    mdp = random_mdp()
    rho_demo = soft_expert_occupancy(mdp)
    rho_pi = exact_occupancy(mdp, torch.full((5, 3), 1 / 3, dtype=torch.float64))
    h_star = optimal_logit(rho_demo, rho_pi)
    torch.testing.assert_close(h_star, (rho_demo / rho_pi).log())
    h = h_star.clone().requires_grad_(True)
    loss = discriminator_loss(h, h, rho_demo, rho_pi)  # the same logits, weighted by each measure
    (grad,) = torch.autograd.grad(loss, h)
    assert grad.abs().max().item() < 1e-12  # a stationary point of a convex loss: the minimum


# -- the oracle ---------------------------------------------------------------------------------------

ORACLE_MDPS = {
    "random": lambda: random_mdp(seed=0),
    "random_gamma_0.5": lambda: random_mdp(seed=3, S=4, A=4, gamma=0.5),
    "gridworld_terminal_slip": lambda: gridworld("S...\n.#..\n...G", slip=0.1, gamma=0.9),
}


@pytest.mark.parametrize("mdp_name", sorted(ORACLE_MDPS))
@pytest.mark.parametrize("divergence", sorted(DIVERGENCES))
def test_oracle_policy_gradient_of_the_derived_reward_is_minus_the_divergence_gradient(divergence, mdp_name):
    mdp = ORACLE_MDPS[mdp_name]()
    rho_demo = soft_expert_occupancy(mdp, alpha=0.3)
    policy = random_policy(mdp)
    (grad_div,) = divergence_gradient(mdp, policy, rho_demo, divergence)
    (grad_pg,) = reward_gradient(mdp, policy, rho_demo, divergence)
    assert grad_div.abs().max() > 1e-3  # not trivially zero
    torch.testing.assert_close(grad_pg, -grad_div, atol=1e-9, rtol=1e-7)


def test_oracle_rejects_ghasemipour_fairl_reward():
    """-h e^h has the right value but its gradient points away from -grad KL(rho_demo || rho_pi)."""
    mdp = random_mdp(seed=0)
    rho_demo = soft_expert_occupancy(mdp)
    policy = random_policy(mdp)
    (grad_div,) = divergence_gradient(mdp, policy, rho_demo, "fairl")
    (grad_pg,) = reward_gradient(mdp, policy, rho_demo, "fairl_h_exp_h")
    cosine = torch.nn.functional.cosine_similarity((-grad_div).flatten(), grad_pg.flatten(), dim=0).item()
    assert cosine < 0  # in this instance: a direction that *increases* the forward KL
    # ... although its value is right: E_pi[-h* e^h*] = -KL(rho_demo || rho_pi)
    rho_pi = exact_occupancy(mdp, policy.log_probs_all(torch.arange(5)).exp().detach())
    h = optimal_logit(rho_demo, rho_pi)
    value = (rho_pi * get_reward_rule("fairl_h_exp_h").reward(h)).sum()
    assert value.item() == pytest.approx(-f_divergence("fairl", rho_demo, rho_pi).item(), rel=1e-9)


def test_oracle_shows_constants_matter_when_episodes_can_end():
    """With terminal states, -log(1 - D) (= derived + log 2) no longer follows -grad JS: the survival bias."""
    mdp = ORACLE_MDPS["gridworld_terminal_slip"]()
    rho_demo = soft_expert_occupancy(mdp, alpha=0.3)
    policy = random_policy(mdp)
    (grad_div,) = divergence_gradient(mdp, policy, rho_demo, "gail")
    (grad_pg,) = reward_gradient(mdp, policy, rho_demo, "gail_minus_log1m_d")
    assert (grad_pg + grad_div).abs().max().item() > 1e-2
    # without termination the constant is harmless
    mdp = random_mdp(seed=0)
    rho_demo = soft_expert_occupancy(mdp)
    policy = random_policy(mdp)
    (grad_div,) = divergence_gradient(mdp, policy, rho_demo, "gail")
    (grad_pg,) = reward_gradient(mdp, policy, rho_demo, "gail_minus_log1m_d")
    torch.testing.assert_close(grad_pg, -grad_div, atol=1e-9, rtol=1e-7)


def test_policy_gradient_surrogate_is_the_exact_return_gradient():
    """Policy gradient theorem check: its gradient equals autograd of rho0^T V^pi."""
    mdp = random_mdp(seed=2)
    policy = random_policy(mdp)
    pi = policy.log_probs_all(torch.arange(5)).exp()
    R = torch.tensor(mdp.R)
    (g1,) = torch.autograd.grad(policy_gradient_surrogate(mdp, pi, R), policy.theta)
    pi = policy.log_probs_all(torch.arange(5)).exp()
    _, V = q_values(mdp, pi, R)
    (g2,) = torch.autograd.grad(torch.tensor(mdp.rho0) @ V, policy.theta)
    torch.testing.assert_close(g1, g2, atol=1e-10, rtol=1e-8)


# -- exact training -----------------------------------------------------------------------------------

@pytest.mark.parametrize("divergence", sorted(DIVERGENCES))
def test_exact_training_drives_its_own_divergence_to_zero_when_the_class_holds_the_expert(divergence):
    mdp = random_mdp(seed=0)
    rho_demo = soft_expert_occupancy(mdp)
    policy = TabularPolicy(5, 3).double()
    history = train_exact(mdp, policy, rho_demo, ExactImitationConfig(divergence=divergence, steps=300, lr=0.1))
    values = [h[f"divergence/{divergence}"] for h in history]
    assert values[0] > 1.0
    assert values[-1] < 1e-3 * values[0]
    assert values[-1] <= min(values[:50])  # it decreases along training (Adam may wiggle, not climb)


def test_bad_input_is_refused_with_the_field_named():
    with pytest.raises(ValueError, match="divergence: unknown divergence 'kl'.*airl.*fairl.*gail"):
        ExactImitationConfig(divergence="kl")
    with pytest.raises(ValueError, match="reward: unknown reward rule"):
        ExactImitationConfig(reward="nope")
    with pytest.raises(ValueError, match="steps"):
        ExactImitationConfig(steps=0)
    mdp = random_mdp()
    with pytest.raises(ValueError, match="rho_demo: must have shape"):
        train_exact(mdp, TabularPolicy(5, 3).double(), np.ones((4, 3)))
    with pytest.raises(ValueError, match="rho_demo: must be a non-negative, non-empty"):
        train_exact(mdp, TabularPolicy(5, 3).double(), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="gamma"):
        exact_occupancy(mdp.replace(gamma=1.0), torch.full((5, 3), 1 / 3))
