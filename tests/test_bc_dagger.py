"""BC and DAgger on the tightrope MDP, checked against the expert and the exact solvers."""

import numpy as np
import pytest
import torch

from minirl.algos import BCConfig, DAggerConfig, aggregate, bc_loss, train_bc, train_dagger
from minirl.data import TrajectoryBatch
from minirl.envs import TabularVectorEnv, tightrope
from minirl.experts import optimal_tabular_expert
from minirl.mdp import state_distributions
from minirl.policies import SlipPolicy, TabularPolicy
from minirl.rollout import rollout

FAST_BC = BCConfig(n_updates=60, lr=1.0)


@pytest.fixture(scope="module")
def world():
    mdp = tightrope(horizon=20)
    expert = optimal_tabular_expert(mdp)
    envs = TabularVectorEnv(mdp, num_envs=64, hide_reward=True)
    return mdp, expert, envs


def collector(envs):
    return lambda policy, n, seed: rollout(envs, policy, n, seed=seed)


def test_bc_loss_is_the_mean_negative_log_likelihood():
    pi = TabularPolicy(2, 2)
    pi.theta.data = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    b = TrajectoryBatch(obs=torch.tensor([[0, 1, 1]]), actions=torch.tensor([[1, 0, 1]]),
                        mask=torch.tensor([[True, True, False]]))
    logp = torch.log_softmax(pi.theta, -1)
    assert bc_loss(pi, b).item() == pytest.approx(-(logp[0, 1] + logp[1, 0]).item() / 2, abs=1e-6)


def test_bc_recovers_a_deterministic_expert_on_its_states(world):
    mdp, expert, envs = world
    demos = rollout(envs, expert, 10, seed=0)
    learner = TabularPolicy(mdp.n_states, mdp.n_actions)
    history = train_bc(learner, demos, FAST_BC)
    assert history["loss/bc"][-1] < 1e-3 < history["loss/bc"][0]
    seen = torch.unique(demos.obs[demos.mask])
    assert set(seen.tolist()) == set(range(8))  # the expert walks the rope, never the pit
    table, expert_table = learner.table(), expert.table()
    assert np.array_equal(table[seen].argmax(1), expert_table[seen].argmax(1))
    assert table[seen].max(1).min() > 0.99
    # no data in the pit: BC's table stays uniform there
    pit = [s for s in range(mdp.n_states) if s not in seen.tolist()]
    assert np.allclose(table[pit], 0.25)


def test_dagger_labels_learner_visited_states_with_the_expert(world):
    mdp, expert, envs = world
    learner = SlipPolicy(TabularPolicy(mdp.n_states, mdp.n_actions), 0.05)
    config = DAggerConfig(n_iterations=5, episodes_per_iteration=64, bc=FAST_BC, seed=0)
    dataset, history = train_dagger(learner, expert, collector(envs), config)
    states = dataset.obs[dataset.mask]
    labels = dataset.actions[dataset.mask]
    # every label is the expert's action at that state
    expert_actions = torch.as_tensor(expert.table().argmax(1))
    assert torch.equal(labels, expert_actions[states])
    # the learner's own rollouts reached pit states the expert never visits, all of them
    assert set(range(8, mdp.n_states)) <= set(states.tolist())
    assert history["data/beta"] == [1.0, 0.5, 0.25, 0.125, 0.0625]
    assert history["data/steps"] == sorted(history["data/steps"])  # aggregation only grows
    # and it learned to climb out: expert's action everywhere
    assert np.array_equal(learner.policy.table().argmax(1), expert.table().argmax(1))


def test_aggregate_appends_relabelled_visits(world):
    mdp, expert, envs = world
    visited = rollout(envs, TabularPolicy(mdp.n_states, mdp.n_actions), 8, seed=1)
    first = aggregate(None, visited, expert)
    both = aggregate(first, visited, expert)
    assert both.batch_size == 2 * visited.batch_size and first.log_probs is None
    assert torch.equal(first.actions, expert.label(visited))


def test_dagger_has_linear_and_bc_quadratic_mistakes_exactly(world):
    """Exact l(pi) from state distributions: DAgger's = eps T; BC's = eps T + ((A-1)/A) eps T(T-1)/2."""
    mdp, expert, envs = world
    eps, T, A = 0.02, 20, mdp.n_actions
    bc = SlipPolicy(TabularPolicy(mdp.n_states, A), eps)
    train_bc(bc, rollout(envs, expert, 10, seed=0), FAST_BC)
    dagger = SlipPolicy(TabularPolicy(mdp.n_states, A), eps)
    train_dagger(dagger, expert, collector(envs), DAggerConfig(n_iterations=6, episodes_per_iteration=64, bc=FAST_BC))
    a_star = expert.table().argmax(1)

    def exact(policy):
        pi = policy.probs(torch.arange(mdp.n_states)).detach().double().numpy()
        d = state_distributions(mdp, pi, T)
        return (d * (1 - pi[np.arange(mdp.n_states), a_star])).sum()

    assert exact(dagger) == pytest.approx(eps * T, rel=1e-3)
    # BC: off the rope (prob 1 - (1-eps)^t at step t, ignoring the 4^-6 chance of climbing out)
    # it errs with prob (A-1)/A; on the rope with prob eps.
    t = np.arange(T)
    on = (1 - eps) ** t
    assert exact(bc) == pytest.approx(np.sum(on * eps + (1 - on) * (A - 1) / A), rel=1e-3)


def test_same_seed_same_numbers(world):
    mdp, expert, envs = world

    def run():
        learner = TabularPolicy(mdp.n_states, mdp.n_actions)
        dataset, history = train_dagger(learner, expert, collector(envs),
                                        DAggerConfig(n_iterations=3, episodes_per_iteration=16, bc=FAST_BC, seed=7))
        return learner.theta.detach().clone(), dataset, history

    (t1, d1, h1), (t2, d2, h2) = run(), run()
    assert torch.equal(t1, t2) and torch.equal(d1.obs, d2.obs) and h1 == h2


def test_bad_inputs_are_refused(world):
    mdp, expert, envs = world
    empty = TrajectoryBatch(obs=torch.zeros(1, 2, dtype=torch.long), actions=torch.zeros(1, 2, dtype=torch.long),
                            mask=torch.zeros(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="demos"):
        train_bc(TabularPolicy(2, 2), empty)
    with pytest.raises(ValueError, match="demos"):
        train_dagger(TabularPolicy(2, 2), expert, collector(envs), demos=empty)
    with pytest.raises(ValueError, match="n_updates"):
        BCConfig(n_updates=0)
    with pytest.raises(ValueError, match="lr"):
        BCConfig(lr=0)
    with pytest.raises(ValueError, match="beta0"):
        DAggerConfig(beta0=2)
    with pytest.raises(ValueError, match="episodes_per_iteration"):
        DAggerConfig(episodes_per_iteration=0)
    with pytest.raises(ValueError, match="policy"):
        train_bc(TabularPolicy.from_table(np.eye(2)), rollout(envs, expert, 2, seed=0))


def test_sampled_expert_labels_a_table_with_samples_of_its_distribution():
    """minirl.experts.SampledExpert on a stochastic table: label frequencies at a state match pi*(.|s)
    (20,000 draws, standard error < 0.004, tolerance 0.02); a deterministic table's label is its action."""
    from minirl.experts import SampledExpert

    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    expert = SampledExpert(TabularPolicy.from_table(probs), seed=0)
    obs = torch.tensor([[0, 1]] * 10_000)  # (B, T): state 0 at step 0, state 1 at step 1
    batch = TrajectoryBatch(obs=obs, actions=torch.zeros_like(obs), mask=torch.ones_like(obs, dtype=torch.bool))
    labels = expert.label(batch)
    for s in (0, 1):
        freq = np.bincount(labels[:, s].numpy(), minlength=3) / len(labels)
        assert np.abs(freq - probs[s]).max() < 0.02, (s, freq)
    one_hot = np.eye(3)[[2, 0]]
    assert torch.equal(SampledExpert(TabularPolicy.from_table(one_hot)).label(batch)[0], torch.tensor([2, 0]))
