"""BC and DAgger on CartPole-v1 against the oracle they imitate: the hand-written expert."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from minirl.algos.bc import BCConfig, train_bc
from minirl.algos.dagger import DAggerConfig, train_dagger
from minirl.data import TrajectoryBatch
from minirl.experiments.cartpole_imitation import (
    CartPoleImitationConfig,
    evaluate,
    make_cartpole_envs,
    run_cartpole_imitation,
)
from minirl.experts import CartPoleExpert
from minirl.policies import MLPPolicy
from minirl.rollout import episode_returns, rollout

# x, x_dot, theta, theta_dot: CartPole-v1 ends an episode at |x| > 2.4 or |theta| > 0.2095.
THETA = 2


def expert_rule(obs: torch.Tensor) -> torch.Tensor:
    """The expert's action written out independently of the class: push right iff k . s > 0."""
    return (obs.double() @ torch.tensor([0.5, 1.0, 10.0, 2.0], dtype=torch.float64) > 0).long()


TINY = CartPoleImitationConfig(n_demos=(1, 2), episode_steps=20, dagger_iterations=2, episodes_per_iteration=1,
                               n_eval=3, n_seeds=2, hidden=(8,), bc=BCConfig(n_updates=30))


@pytest.fixture(scope="module")
def tiny_result():
    return run_cartpole_imitation(TINY)


def test_expert_balances_the_pole_for_500_steps_and_the_learner_sees_no_reward():
    batch = rollout(make_cartpole_envs(10), CartPoleExpert(), 20, seed=0, deterministic=True)
    assert batch.rewards is None  # MDP\R: the reward only travels in info, for evaluation
    returns = episode_returns(batch, "gold_reward")
    assert returns.shape == (20,)
    assert torch.all(returns == 500.0)
    assert torch.equal(batch.actions[batch.mask], expert_rule(batch.obs[batch.mask]))


def test_bc_on_enough_expert_demonstrations_balances_the_pole():
    expert = CartPoleExpert()
    demos = rollout(make_cartpole_envs(4), expert, 4, seed=1, deterministic=True)
    assert demos.rewards is None and demos.n_steps == 4 * 500
    learner = MLPPolicy(4, 2, hidden=(32,), seed=0)
    eval_envs = make_cartpole_envs(20)
    untrained_return, _ = evaluate(eval_envs, learner, expert, 20, seed=5000)
    train_bc(learner, demos, BCConfig(n_updates=300))
    ret, mistake_rate = evaluate(eval_envs, learner, expert, 20, seed=5000)
    assert untrained_return < 100  # the learner cannot do it before seeing the demonstrations
    assert ret >= 475
    # It acts as the expert would on most of its own states (the rest lie near the expert's
    # decision boundary k . s = 0, where either push keeps the pole up).
    assert mistake_rate < 0.3


def test_dagger_aggregates_learner_states_labelled_by_the_expert():
    expert = CartPoleExpert()
    envs = make_cartpole_envs(2)
    visited: list[TrajectoryBatch] = []

    def collect(policy, n, seed):
        batch = rollout(envs, policy, n, seed=seed, deterministic=True)
        visited.append(batch)
        return batch

    learner = MLPPolicy(4, 2, hidden=(8,), seed=0)
    config = DAggerConfig(n_iterations=3, episodes_per_iteration=2, beta_decay=0.0, bc=BCConfig(n_updates=20))
    dataset, history = train_dagger(learner, expert, collect, config)

    # The dataset is exactly the visited states, in order, with the behaviour's actions replaced by the expert's.
    assert len(visited) == 3 and history["data/beta"] == [1.0, 0.0, 0.0]
    obs, labels = dataset.flat_steps()
    assert torch.equal(obs, torch.cat([b.flat_steps()[0] for b in visited]))
    assert torch.equal(labels, expert.label(dataset)[dataset.mask])
    assert torch.equal(labels, expert_rule(obs))
    learner_obs, learner_actions = (torch.cat(x) for x in zip(*(b.flat_steps() for b in visited[1:])))
    relabelled = learner_actions != expert_rule(learner_obs)
    assert relabelled.sum() >= 5  # rounds 2-3 were driven by the learner, and its mistakes got the expert's label

    # The learner drove into states the expert never visits from any of 50 starts (including these).
    expert_runs = rollout(make_cartpole_envs(10), expert, 50, seed=0, deterministic=True)
    expert_obs = expert_runs.flat_steps()[0]
    low, high = expert_obs.min(0).values, expert_obs.max(0).values
    outside = ((learner_obs < low) | (learner_obs > high)).any(-1)
    assert outside.sum() >= 10
    # e.g. a falling pole: the expert keeps |theta| far below the 0.21 rad at which an episode ends.
    assert expert_obs[:, THETA].abs().max() < 0.1
    assert learner_obs[:, THETA].abs().max() > 0.15
    round1_obs = visited[0].flat_steps()[0]  # round 1 is the expert's roll-in: inside the box
    assert not ((round1_obs < low) | (round1_obs > high)).any()


def test_run_is_deterministic_given_the_seed(tiny_result):
    again = run_cartpole_imitation(TINY)
    first, second = tiny_result.summary(), again.summary()
    first.pop("wall_s"), second.pop("wall_s")
    assert first == second
    for name in ("returns", "labelled_steps", "mistake_rate"):
        for m in ("bc", "dagger"):
            assert np.array_equal(getattr(tiny_result, name)[m], getattr(again, name)[m])
    other = run_cartpole_imitation(CartPoleImitationConfig(**{**TINY.__dict__, "seed": 1}))
    assert not np.array_equal(other.mistake_rate["bc"], tiny_result.mistake_rate["bc"])


def test_result_reports_labels_returns_and_the_expert(tiny_result):
    r, s = tiny_result, tiny_result.summary()
    json.dumps(s)
    assert r.returns["bc"].shape == r.labelled_steps["bc"].shape == (2, 2)
    assert r.returns["dagger"].shape == r.mistake_rate["dagger"].shape == (2, 2)
    assert s["expert_return"] == 500.0 and np.all(r.expert_return == 500.0)
    # The expert never fails within a 20-step clip: n demos cost exactly 20 n labels.
    assert s["bc"]["n_demos"] == [1, 2] and s["bc"]["labelled_steps"] == [20.0, 40.0]
    # DAgger labels at most one 20-step episode per round, cumulatively; round 1 is the expert's full clip.
    steps = r.labelled_steps["dagger"]
    assert np.all(steps[:, 0] == 20) and np.all(np.diff(steps, axis=1) >= 1) and np.all(steps[:, 1] <= 40)
    # Round 1 of DAgger is BC on the same demonstration with the same initial learner.
    assert np.array_equal(r.returns["dagger"][:, 0], r.returns["bc"][:, 0])
    assert np.all((r.returns["bc"] >= 1) & (r.returns["bc"] <= 500))
    for name in ("mistake_rate", "train_error"):
        for m in ("bc", "dagger"):
            assert np.all((getattr(r, name)[m] >= 0) & (getattr(r, name)[m] <= 1))
    table = r.table().splitlines()
    # a title, then per method a header and one row per point, then a footnote
    assert len(table) == 1 + (1 + 2) + (1 + 2) + 1
    assert table[1].split()[:2] == ["BC", "demos"] and table[4].split()[:2] == ["DAgger", "it"]


def test_figure_plots_the_means_over_seeds(tiny_result):
    from minirl.plots import cartpole_imitation_figure

    fig = cartpole_imitation_figure(tiny_result)
    returns_ax = fig.axes[0]
    bc_line, dagger_line = returns_ax.lines[:2]
    np.testing.assert_allclose(bc_line.get_xdata(), [20, 40])
    np.testing.assert_allclose(bc_line.get_ydata(), tiny_result.returns["bc"].mean(0))
    np.testing.assert_allclose(dagger_line.get_ydata(), tiny_result.returns["dagger"].mean(0))
    assert any(np.allclose(line.get_ydata(), 500.0) for line in returns_ax.lines[2:])  # the expert's line
    np.testing.assert_allclose(fig.axes[1].lines[1].get_ydata(), tiny_result.mistake_rate["dagger"].mean(0))


@pytest.mark.parametrize("field, value", [
    ("n_demos", ()), ("n_demos", (2, 1)), ("n_demos", (0, 1)), ("episode_steps", 0), ("episode_steps", 501),
    ("dagger_iterations", 0), ("episodes_per_iteration", 0), ("n_eval", 0), ("n_seeds", 0),
    ("beta_decay", 1.5), ("hidden", (0,)), ("seed", -1),
])
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field}:"):
        CartPoleImitationConfig(**{field: value})
