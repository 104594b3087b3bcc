"""Tests for minirl.envs and minirl.rollout: the environments sample the MDP they claim to,
their episode flags follow the documented rules, and rollout() cuts episodes exactly.

Oracles: gymnasium's env checker, the transition table P (chi-square on empirical counts),
exact state distributions of the designed MDPs, an independent progress-chain model of the
tightrope pit, and a step-by-step recording of the vector env that rollout() is cut against.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

from minirl.envs import HideReward, TabularEnv, TabularVectorEnv, gridworld, tightrope
from minirl.envs.designed import TIGHTROPE_DEFAULTS
from minirl.mdp import state_distributions, value_iteration
from minirl.policies import TabularPolicy
from minirl.rollout import episode_returns, rollout

UP, RIGHT, DOWN, LEFT = range(4)


def uniform_policy(mdp) -> TabularPolicy:
    return TabularPolicy.from_table(np.full((mdp.n_states, mdp.n_actions), 1 / mdp.n_actions))


# ----------------------------------------------------------------------------
# gymnasium's env checker
# ----------------------------------------------------------------------------

_CHECKED = {
    "tightrope": lambda: TabularEnv(tightrope()),
    "gridworld": lambda: TabularEnv(gridworld()),
    "gridworld slippery with horizon": lambda: TabularEnv(gridworld(slip=0.2, horizon=20)),
    "Tightrope-v0": lambda: gym.make("minirl/Tightrope-v0").unwrapped,
    "GridWorld-v0": lambda: gym.make("minirl/GridWorld-v0").unwrapped,
    "HideReward": lambda: HideReward(TabularEnv(gridworld(slip=0.2))),
    "HideReward(tightrope)": lambda: HideReward(TabularEnv(tightrope())),
}


@pytest.mark.parametrize("name", list(_CHECKED))
def test_env_checker_passes(name):
    env = _CHECKED[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker's soft complaints fail the test too ...
        # ... except the one every wrapper triggers: "is different from the unwrapped version".
        warnings.filterwarnings("ignore", message=r".*different from the unwrapped version")
        check_env(env, skip_render_check=True)


def test_registered_ids_pass_kwargs_through():
    env = gym.make("minirl/GridWorld-v0", slip=0.1, horizon=7)
    mdp = env.unwrapped.mdp
    np.testing.assert_array_equal(mdp.P, gridworld(slip=0.1).P)
    assert mdp.horizon == 7
    env = gym.make("minirl/Tightrope-v0", length=5, depth=3)
    assert env.unwrapped.mdp.n_states == 8
    np.testing.assert_array_equal(env.unwrapped.mdp.P, tightrope(length=5, depth=3).P)


# ----------------------------------------------------------------------------
# Sampling: empirical transition frequencies match P
# ----------------------------------------------------------------------------

def _assert_counts_match(P: np.ndarray, counts: np.ndarray) -> None:
    """counts[s, a, s'] ~ Multinomial(n_sa, P[s, a]): no impossible transition, and a pooled
    chi-square statistic within mean + 6 sd of its chi-square(df) reference; each cell within 5 SE."""
    n_sa = counts.sum(axis=2)
    visited = n_sa >= 200
    assert visited.mean() > 0.9, "too few (s, a) pairs were sampled to test anything"
    assert np.all(counts[P == 0] == 0), "a transition of probability 0 happened"
    expected = n_sa[..., None] * P
    cells = visited[..., None] & (P > 0)
    chi2 = (((counts - expected) ** 2)[cells] / expected[cells]).sum()
    df = int(cells.sum() - visited.sum())
    assert df > 50
    assert chi2 < df + 6 * np.sqrt(2 * df), (chi2, df)
    # Cell by cell: |freq - P| within 5 binomial standard errors (about 130 cells tested).
    n = n_sa[visited][:, None]
    freq, p = counts[visited] / n, P[visited]
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12)


def _slippery_grid():
    mdp = gridworld(slip=0.3, step_reward=-0.1)
    start_anywhere = np.where(mdp.terminal, 0.0, 1.0)
    return mdp.replace(rho0=start_anywhere / start_anywhere.sum())  # visit every (s, a) often


def test_tabular_env_transition_frequencies_match_P():
    mdp = _slippery_grid()
    env = TabularEnv(mdp)
    rng = np.random.default_rng(0)
    counts = np.zeros(mdp.P.shape)
    s, _ = env.reset(seed=0)
    for _ in range(30_000):
        a = int(rng.integers(mdp.n_actions))
        s_next, r, terminated, truncated, _ = env.step(a)
        counts[s, a, s_next] += 1
        assert r == mdp.R[s, a]
        assert terminated == bool(mdp.terminal[s_next]) and not truncated
        s = env.reset()[0] if terminated else s_next
    _assert_counts_match(mdp.P, counts)


def test_vector_env_transition_frequencies_match_P():
    mdp = _slippery_grid()
    N = 2000
    env = TabularVectorEnv(mdp, N)
    rng = np.random.default_rng(0)
    counts = np.zeros(mdp.P.shape)
    start_counts = np.zeros(mdp.n_states)
    s, _ = env.reset(seed=0)
    start_counts += np.bincount(s, minlength=mdp.n_states)
    for _ in range(25):
        a = rng.integers(mdp.n_actions, size=N)
        obs, r, terminated, truncated, info = env.step(a)
        s_next = np.where(terminated | truncated, info.get("final_obs", obs), obs)
        np.add.at(counts, (s, a, s_next), 1)
        np.testing.assert_array_equal(r, mdp.R[s, a])
        np.testing.assert_array_equal(terminated, mdp.terminal[s_next])
        if terminated.any():
            start_counts += np.bincount(obs[terminated], minlength=mdp.n_states)
        s = obs
    _assert_counts_match(mdp.P, counts)
    # Starts (initial and after autoreset) follow rho0: chi-square over the 10 non-goal states.
    n, p = start_counts.sum(), mdp.rho0
    assert start_counts[p == 0].sum() == 0
    chi2 = ((start_counts[p > 0] - n * p[p > 0]) ** 2 / (n * p[p > 0])).sum()
    df = int((p > 0).sum() - 1)
    assert chi2 < df + 6 * np.sqrt(2 * df)


# ----------------------------------------------------------------------------
# Episode flags: truncation at the horizon, termination on entering a terminal state
# ----------------------------------------------------------------------------

def _grid(horizon):
    mdp = gridworld(step_reward=-0.1, horizon=horizon)  # deterministic; S at (0,0), G at (2,3)
    names = mdp.state_names
    return mdp, names.index("(0,0)"), names.index("(2,3)")


TO_GOAL = [RIGHT, RIGHT, RIGHT, DOWN, DOWN]  # 5 steps from S to G in the default layout


def test_tabular_env_truncates_at_horizon():
    mdp, start, _ = _grid(horizon=4)
    env = TabularEnv(mdp)
    assert env.reset(seed=0)[0] == start
    flags = [env.step(UP)[2:4] for _ in range(4)]  # UP bumps the edge: stays at S
    assert flags == [(False, False)] * 3 + [(False, True)]
    # Reset starts a fresh count.
    env.reset()
    assert [env.step(UP)[3] for _ in range(4)] == [False, False, False, True]


def test_tabular_env_terminates_on_goal():
    mdp, start, goal = _grid(horizon=10)
    env = TabularEnv(mdp)
    env.reset(seed=0)
    steps = [env.step(a) for a in TO_GOAL]
    assert [s[0] for s in steps][-1] == goal
    assert [s[2] for s in steps] == [False] * 4 + [True]
    assert not any(s[3] for s in steps)
    assert [s[1] for s in steps] == pytest.approx([-0.1] * 4 + [0.9])
    # Without a horizon an episode never truncates.
    env = TabularEnv(gridworld())
    env.reset(seed=0)
    assert not any(env.step(UP)[3] for _ in range(300))
    # The tightrope has no terminal state and no horizon: nothing ever ends.
    env = TabularEnv(tightrope())
    env.reset(seed=0)
    assert not any(any(env.step(a % 4)[2:4]) for a in range(300))


def test_tabular_env_goal_reached_at_the_horizon_is_terminated():
    mdp, _, goal = _grid(horizon=5)
    env = TabularEnv(mdp)
    env.reset(seed=0)
    *_, last = [env.step(a) for a in TO_GOAL]
    assert last[0] == goal and last[2] is True  # terminated wins: it reached a terminal state


def test_vector_env_flags_and_same_step_autoreset():
    mdp, start, goal = _grid(horizon=6)
    env = TabularVectorEnv(mdp, num_envs=3)
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [start] * 3)
    # env 0 bumps UP forever (truncated at t = 6, 12), env 1 walks to the goal in 5 steps and
    # then bumps, env 2 walks to the goal in 5 steps, whose 6th step coincides with the horizon.
    plan = [[UP] * 12, TO_GOAL + [UP] * 7, [UP] + TO_GOAL + [UP] * 6]
    log = []
    for t in range(12):
        obs, r, terminated, truncated, info = env.step(np.array([p[t] for p in plan]))
        log.append((obs.copy(), r.copy(), terminated.copy(), truncated.copy(), info))
    term = np.array([x[2] for x in log])  # (12, 3)
    trunc = np.array([x[3] for x in log])
    np.testing.assert_array_equal(term[:, 0], False)
    np.testing.assert_array_equal(np.flatnonzero(trunc[:, 0]), [5, 11])  # steps 6 and 12
    np.testing.assert_array_equal(np.flatnonzero(term[:, 1]), [4])  # step 5
    np.testing.assert_array_equal(np.flatnonzero(trunc[:, 1]), [10])  # 6 steps after the reset
    np.testing.assert_array_equal(np.flatnonzero(term[:, 2]), [5])  # the goal, at the horizon:
    np.testing.assert_array_equal(np.flatnonzero(trunc[:, 2]), [11])  # terminated, not truncated
    assert log[4][1][1] == pytest.approx(0.9) and log[5][1][2] == pytest.approx(0.9)
    # SAME_STEP autoreset: the done step returns the next episode's first state; the last
    # state of the finished episode is in info["final_obs"], flagged by info["_final_obs"].
    for t, (obs, _, te, tr, info) in enumerate(log):
        done = te | tr
        if not done.any():
            assert "final_obs" not in info
            continue
        np.testing.assert_array_equal(info["_final_obs"], done)
        np.testing.assert_array_equal(obs[done], start)
    assert log[4][4]["final_obs"][1] == goal and log[5][4]["final_obs"][2] == goal
    assert log[5][4]["final_obs"][0] == start  # truncated while bumping at S
    # The autoreset env starts its next episode from scratch: env 1 is back at S after step 5.
    assert log[5][0][1] == start


# ----------------------------------------------------------------------------
# MDP\R: HideReward and hide_reward=True
# ----------------------------------------------------------------------------

def test_hide_reward_wrapper_keeps_gold_reward():
    mdp = gridworld(slip=0.2, step_reward=-0.1, horizon=30)
    plain, hidden = TabularEnv(mdp), HideReward(TabularEnv(mdp))
    plain.reset(seed=4)
    hidden.reset(seed=4)
    rng = np.random.default_rng(0)
    rewards = []
    for _ in range(30):
        a = int(rng.choice([RIGHT, DOWN]))  # heads for the goal, slipping now and then
        s = plain.unwrapped._state
        o1, r1, te1, tr1, info1 = plain.step(a)
        assert r1 == mdp.R[s, a]  # the expected reward R[s, a] (0.7 into G: 1 * 0.8 - 0.1)
        o2, r2, te2, tr2, info2 = hidden.step(a)
        assert (o1, te1, tr1) == (o2, te2, tr2)  # same dynamics, same random stream
        assert r2 == 0.0 and isinstance(r2, float)
        assert info2["gold_reward"] == r1 and info2["reward_hidden"] is True
        assert "gold_reward" not in info1
        rewards.append(r1)
        if te1 or tr1:
            break
    assert te2 and r1 > 0 and set(rewards[:-1]) != {r1}  # the goal step was exercised
    # An MDP\R (R is None) itself: reward 0.0, flagged hidden, and no gold to give.
    bare = TabularEnv(mdp.without_reward())
    bare.reset(seed=0)
    _, r, _, _, info = bare.step(0)
    assert r == 0.0 and info == {"reward_hidden": True}


def test_rollout_hide_reward_gives_gold_reward_only_in_info():
    mdp = gridworld(slip=0.2, step_reward=-0.05, horizon=30)
    policy = uniform_policy(mdp)
    shown = rollout(TabularVectorEnv(mdp, 25), policy, n_episodes=50, seed=3)
    hidden = rollout(TabularVectorEnv(mdp, 25, hide_reward=True), policy, n_episodes=50, seed=3)
    assert hidden.rewards is None and shown.rewards is not None
    assert "gold_reward" not in shown.info
    for field in ("obs", "actions", "mask", "log_probs", "terminated"):  # identical trajectories
        assert torch.equal(getattr(hidden, field), getattr(shown, field)), field
    gold = hidden.info["gold_reward"]
    assert torch.equal(gold, shown.rewards)
    assert torch.equal(episode_returns(hidden, "gold_reward"), episode_returns(shown))
    # ... and the gold reward is the MDP's reward of each real step.
    m = shown.mask.numpy()
    np.testing.assert_allclose(gold.numpy()[m], mdp.R[shown.obs.numpy()[m], shown.actions.numpy()[m]], rtol=1e-6)
    assert np.all(gold.numpy()[~m] == 0)


def test_rollout_through_sync_vector_env_of_hide_reward():
    mdp = gridworld(slip=0.2, step_reward=-0.05, horizon=12)
    envs = gym.vector.SyncVectorEnv([lambda: HideReward(TabularEnv(mdp)) for _ in range(3)])
    batch = rollout(envs, uniform_policy(mdp), n_episodes=7, seed=1)
    assert batch.rewards is None and batch.batch_size == 7
    m = batch.mask.numpy()
    gold = batch.info["gold_reward"].numpy()
    np.testing.assert_allclose(gold[m], mdp.R[batch.obs.numpy()[m], batch.actions.numpy()[m]], rtol=1e-6)


# ----------------------------------------------------------------------------
# The tightrope
# ----------------------------------------------------------------------------

def test_tightrope_optimal_policy_stays_on_the_rope_and_climbs_out():
    mdp = tightrope()
    L, D = TIGHTROPE_DEFAULTS["length"], TIGHTROPE_DEFAULTS["depth"]
    bottom = L + D - 1
    V, _, pi = value_iteration(mdp)
    # From the start, zero mass in the pit at every step (exactly), and reward 1 per step.
    d = state_distributions(mdp, pi, horizon=200)
    assert np.all(d[:, L:] == 0.0)
    assert V[0] == pytest.approx(1 / (1 - mdp.gamma), abs=1e-8)
    # From the bottom: exactly D steps of climbing, rung by rung, then rope position 0.
    d = state_distributions(mdp.replace(rho0=np.eye(mdp.n_states)[bottom]), pi, horizon=D + 1)
    np.testing.assert_array_equal(d[np.arange(D + 1), [bottom - k for k in range(D)] + [0]], 1.0)
    assert np.all(d[:D, :L] == 0.0)
    # Equivalently by following the greedy action through the (deterministic) table.
    s, path = bottom, []
    while s >= L:
        s = int(mdp.P[s, pi[s].argmax()].argmax())
        path.append(s)
    assert len(path) == D and path[-1] == 0
    assert V[bottom] == pytest.approx(mdp.gamma ** D / (1 - mdp.gamma), abs=1e-8)


def test_tightrope_random_policy_rarely_climbs_out():
    mdp = tightrope()
    L, D, A = TIGHTROPE_DEFAULTS["length"], TIGHTROPE_DEFAULTS["depth"], TIGHTROPE_DEFAULTS["n_actions"]
    bottom, K = L + D - 1, 100
    P = mdp.P.copy()
    P[0] = np.eye(mdp.n_states)[0]  # the climb always lands on rope position 0: make it absorbing
    trapped = mdp.replace(P=P, rho0=np.eye(mdp.n_states)[bottom])
    uniform = np.full((mdp.n_states, A), 1 / A)
    d = state_distributions(trapped, uniform, horizon=K + 1)
    p_out = d[K, :L].sum()  # Pr(reached the rope within K steps)
    # Independent model from the description alone: progress k = rungs climbed; each step
    # succeeds with probability 1/A, any other action sends the walker back to progress 0.
    q = np.zeros(D + 1)
    q[0] = 1.0
    for _ in range(K):
        new = np.zeros(D + 1)
        new[1:D] += q[:D - 1] / A
        new[D] += q[D - 1] / A + q[D]
        new[0] += q[:D].sum() * (1 - 1 / A)
        q = new
    assert p_out == pytest.approx(q[D], abs=1e-12)
    assert 0.005 < p_out < 0.05  # small, but not zero: the pit is a trap, not a wall


# ----------------------------------------------------------------------------
# rollout()
# ----------------------------------------------------------------------------

class _Recorder(gym.vector.VectorWrapper):
    """Records every step of a vector env: the obs fed to the policy and what came back."""

    def __init__(self, env):
        super().__init__(env)
        self.steps = []

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.obs = np.array(obs)
        return obs, info

    def step(self, actions):
        obs, r, te, tr, info = self.env.step(actions)
        self.steps.append((self.obs, np.array(actions), np.array(r), np.array(te), np.array(tr)))
        self.obs = np.array(obs)
        return obs, r, te, tr, info


def _episodes_from_record(rec: _Recorder, next_step: bool):
    """Independent oracle: split each sub-env's recorded steps into episodes, in env order."""
    per_env = []
    for i in range(rec.num_envs):
        episodes, current, skip = [], [], False
        for obs, act, r, te, tr in rec.steps:
            if skip:  # NEXT_STEP: this step only reset sub-env i
                skip = False
                continue
            current.append((obs[i], act[i], r[i], te[i]))
            if te[i] or tr[i]:
                episodes.append(current)
                current, skip = [], next_step
        per_env.append(episodes)
    return per_env


def _assert_batch_matches_record(batch, rec, n_episodes, next_step):
    per_env = _episodes_from_record(rec, next_step)
    quota = -(-n_episodes // rec.num_envs)
    expected = [ep for episodes in per_env for ep in episodes[:quota]][:n_episodes]  # row b = i * quota + e
    assert all(len(episodes) >= quota for episodes in per_env)
    assert batch.batch_size == n_episodes == len(expected)
    lengths = batch.lengths.numpy()
    assert lengths.tolist() == [len(ep) for ep in expected]
    assert batch.horizon == max(lengths)
    mask = batch.mask.numpy()
    np.testing.assert_array_equal(mask, np.arange(batch.horizon)[None, :] < lengths[:, None])  # a prefix
    for b, ep in enumerate(expected):
        L = len(ep)
        np.testing.assert_array_equal(batch.obs[b, :L].numpy(), np.stack([x[0] for x in ep]))
        np.testing.assert_array_equal(batch.actions[b, :L].numpy(), [x[1] for x in ep])
        np.testing.assert_array_equal(batch.terminated[b, :L].numpy(), [x[3] for x in ep])
        if batch.rewards is not None:
            np.testing.assert_allclose(batch.rewards[b, :L].numpy(), [x[2] for x in ep], rtol=1e-6)
    # Padding is zeros.
    assert not batch.actions[~batch.mask].any() and not batch.terminated[~batch.mask].any()
    assert not batch.log_probs[~batch.mask].any()


@pytest.mark.parametrize("n_episodes, num_envs", [(37, 5), (5, 5), (3, 8)])
def test_rollout_cuts_tabular_episodes_exactly(n_episodes, num_envs):
    mdp = gridworld(slip=0.2, horizon=15)
    rec = _Recorder(TabularVectorEnv(mdp, num_envs))
    batch = rollout(rec, uniform_policy(mdp), n_episodes=n_episodes, seed=2)
    _assert_batch_matches_record(batch, rec, n_episodes, next_step=False)
    # Consistency with the MDP itself.
    obs, act, m = batch.obs.numpy(), batch.actions.numpy(), batch.mask.numpy()
    lengths = m.sum(1)
    start = int(np.flatnonzero(mdp.rho0)[0])
    assert np.all(obs[:, 0] == start)
    for b in range(n_episodes):
        L = lengths[b]
        assert np.all(mdp.P[obs[b, :L - 1], act[b, :L - 1], obs[b, 1:L]] > 0)  # real transitions
        assert not mdp.terminal[obs[b, :L]].any()  # a terminal state is never acted in
        assert batch.terminated[b, L - 1] or L == mdp.horizon
    np.testing.assert_allclose(batch.log_probs.numpy()[m], np.log(0.25), rtol=1e-6)
    np.testing.assert_allclose(batch.rewards.numpy()[m], mdp.R[obs[m], act[m]], rtol=1e-6)
    assert 0 < batch.terminated.sum() < n_episodes or n_episodes <= 5  # both endings occur


def test_rollout_same_seed_is_bit_identical():
    mdp = gridworld(slip=0.2, horizon=20)
    policy = uniform_policy(mdp)
    a, b, c = (rollout(TabularVectorEnv(mdp, 5, hide_reward=True), policy, n_episodes=10, seed=s)
               for s in (7, 7, 8))
    for field in ("obs", "actions", "mask", "log_probs", "terminated"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert torch.equal(a.info["gold_reward"], b.info["gold_reward"])
    assert a.obs.shape != c.obs.shape or not torch.equal(a.obs, c.obs)  # the seed matters


class _RandomCartPolePolicy:
    """A uniformly random 2-action policy: the minimal ``sample`` protocol rollout() needs."""

    def sample(self, obs, generator=None, deterministic=False):
        actions = torch.randint(0, 2, (obs.shape[0],), generator=generator)
        return actions, torch.full((obs.shape[0],), float(np.log(0.5)))


def test_rollout_cartpole_next_step_autoreset():
    envs = gym.make_vec("CartPole-v1", num_envs=4, vectorization_mode="sync")
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    rec = _Recorder(envs)
    n = 10  # not divisible by 4: quota 3 per sub-env, the last two episodes are dropped
    batch = rollout(rec, _RandomCartPolePolicy(), n_episodes=n, seed=0)
    _assert_batch_matches_record(batch, rec, n, next_step=True)
    assert batch.obs.shape == (n, batch.horizon, 4) and batch.obs.dtype == torch.float32
    lengths = batch.lengths
    for b in range(n):
        L = int(lengths[b])
        # A random CartPole policy falls long before the 500-step limit: terminated, at the end only.
        assert batch.terminated[b, L - 1] and not batch.terminated[b, :L - 1].any()
        # Every step acted from is a live state (|x| <= 2.4, |theta| <= 12 deg): the terminal
        # obs that NEXT_STEP autoreset returns before the reset step never leaks in.
        assert np.all(np.abs(batch.obs[b, :L, 0].numpy()) <= 2.4)
        assert np.all(np.abs(batch.obs[b, :L, 2].numpy()) <= 12 * 2 * np.pi / 360)
        assert np.all(np.abs(batch.obs[b, 0].numpy()) <= 0.05)  # starts are reset states
    assert torch.all(batch.rewards[batch.mask] == 1.0)
    # Same seed again: bit-identical.
    again = rollout(gym.make_vec("CartPole-v1", num_envs=4, vectorization_mode="sync"),
                    _RandomCartPolePolicy(), n_episodes=n, seed=0)
    assert torch.equal(again.obs, batch.obs) and torch.equal(again.actions, batch.actions)


def test_rollout_rejects_bad_arguments():
    mdp = gridworld(horizon=5)
    with pytest.raises(ValueError, match=r"^n_episodes: "):
        rollout(TabularVectorEnv(mdp, 2), uniform_policy(mdp), n_episodes=0)
    with pytest.raises(RuntimeError, match=r"^max_steps: "):
        rollout(TabularVectorEnv(tightrope(), 2), uniform_policy(tightrope()), n_episodes=1, max_steps=5)


def test_import_minirl_registers_its_gymnasium_ids():
    """As users of gymnasium packages expect: ``import minirl`` alone makes ``gym.make`` work (fresh process)."""
    import subprocess
    import sys

    code = ("import gymnasium as gym, minirl; e = gym.make('minirl/Tightrope-v0', length=5, depth=3); "
            "print(e.reset(seed=0)[0], gym.make('minirl/GridWorld-v0').unwrapped.mdp.n_states)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "0"
