"""The tabular adversarial-imitation experiments: mode-seeking vs mass-covering, and reward transfer."""

import math

import numpy as np
import pytest
import torch

from minirl.discriminators import AIRLDiscriminator, StepDiscriminator
from minirl.experiments.f_divergence import FDivergenceConfig, run_f_divergence
from minirl.experiments.reward_transfer import (RewardTransferConfig, make_transfer_mdps, run_reward_transfer,
                                                 run_reward_transfer_once)
from minirl.mdp import value_iteration


@pytest.fixture(scope="module")
def modes():
    return run_f_divergence(FDivergenceConfig(steps=300))


def test_fairl_covers_both_modes_and_airl_commits_to_one(modes):
    fairl, gail, airl = modes["fairl"], modes["gail"], modes["airl"]
    # FAIRL: forward KL's optimum over Gaussians matches the moments: mean 0, std sqrt(2^2 + 0.5^2)
    assert fairl["mean"] == pytest.approx(0.0, abs=0.02)
    assert fairl["std"] == pytest.approx(math.sqrt(4.25), abs=0.03)
    # AIRL: one mode, exactly (mean 2, std 0.5); its reverse KL is then log 2 (half the expert's mass)
    assert abs(airl["mean"]) == pytest.approx(2.0, abs=0.02)
    assert airl["std"] == pytest.approx(0.5, abs=0.02)
    assert airl["reverse_kl"] == pytest.approx(math.log(2), abs=0.01)
    # each method is best on its own divergence among the three
    assert fairl["forward_kl"] < airl["forward_kl"]
    assert airl["reverse_kl"] < min(fairl["reverse_kl"], gail["reverse_kl"])
    assert gail["js"] <= min(fairl["js"], airl["js"]) + 1e-6
    # GAIL sits between: narrower than FAIRL, wider than AIRL
    assert airl["std"] < gail["std"] < fairl["std"]


def test_discriminators_accept_tables_and_features():
    table = StepDiscriminator(6, 4, discrete_obs=True, discrete_actions=True, hidden=())
    h = table.logits(torch.tensor([[0, 5]]), torch.tensor([[1, 3]]))
    assert h.shape == (1, 2)
    mlp = StepDiscriminator(4, 1, discrete_obs=False, discrete_actions=False, hidden=(8,))
    assert mlp.logits(torch.randn(2, 3, 4), torch.randn(2, 3, 1)).shape == (2, 3)
    airl = AIRLDiscriminator(6, discrete_obs=True, gamma=0.9, hidden=())
    s, s2 = torch.tensor([[0, 1]]), torch.tensor([[1, 2]])
    done = torch.tensor([[False, True]])
    f = airl.f(s, s2, done)
    g, v = airl.reward(s), airl.v(airl.encoder.obs(s)).squeeze(-1)
    v2 = airl.v(airl.encoder.obs(s2)).squeeze(-1)
    torch.testing.assert_close(f, g + 0.9 * v2 * torch.tensor([[1.0, 0.0]]) - v)  # no potential after the end
    with pytest.raises(ValueError, match="needs next_obs, done and log_pi"):
        airl.logits(s, s)
    with pytest.raises(ValueError, match="gamma"):
        AIRLDiscriminator(6, discrete_obs=True, gamma=0.0)


def test_transfer_mdps_share_states_and_the_changes_cost_the_expert():
    original, walled, mirrored = make_transfer_mdps()
    assert original.n_states == walled.n_states == mirrored.n_states
    v = {name: float(m.rho0 @ value_iteration(m)[0]) for name, m in
         (("original", original), ("walled", walled), ("mirrored", mirrored))}
    assert v["walled"] < v["original"]  # the wall makes the goal farther
    assert v["mirrored"] == pytest.approx(v["original"])  # the same moves exist, under other names


@pytest.fixture(scope="module")
def transfer():
    return run_reward_transfer(RewardTransferConfig(rounds=100))


def test_airl_reward_transfers_past_the_wall_and_gail_reward_does_not(transfer):
    expert, airl, gail, bc = (transfer[k] for k in ("expert", "airl", "gail", "bc"))
    for key in ("return_original", "return_changed", "return_mirrored"):
        assert airl[key] >= 0.9 * expert[key]  # AIRL's g, re-optimised, is near-expert everywhere
    assert gail["return_changed"] < airl["return_changed"] - 0.5
    assert bc["return_original"] >= 0.95 * expert["return_original"]  # BC imitates where it was trained ...
    assert bc["return_mirrored"] < 0.2 * expert["return_mirrored"]  # ... but its actions do not transfer
    assert airl["reward_correlation"] > 0.6
    assert airl["reward_correlation"] > gail["reward_correlation"] + 0.2
    # the recovered reward singles out the goal: its largest entry is the goal cell
    goal = int(np.argmax(make_transfer_mdps()[0].R[:, 0]))
    assert int(np.argmax(airl["learned_reward"])) == goal


def test_reward_transfer_is_reproducible():
    a = run_reward_transfer_once(RewardTransferConfig(rounds=5, n_demos=20))
    b = run_reward_transfer_once(RewardTransferConfig(rounds=5, n_demos=20))
    assert a["airl"]["learned_reward"] == b["airl"]["learned_reward"]
    with pytest.raises(ValueError, match="rounds"):
        RewardTransferConfig(rounds=0)


def test_cli_f_divergence_json(tmp_path, capsys):
    import json

    from minirl.cli import main

    assert main(["demo", "f-divergence", "--json", "--out", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"gail", "airl", "fairl"}
    for method in ("gail", "airl", "fairl"):
        assert set(out[method]) >= {"forward_kl", "reverse_kl", "js"}
    assert out["airl"]["reverse_kl"] < out["fairl"]["reverse_kl"]
    assert (tmp_path / "f_divergence.png").stat().st_size > 0


def test_cli_imitate_json_and_bad_input(tmp_path, capsys):
    import json

    from minirl.cli import main

    assert main(["demo", "imitate", "--algo", "bc", "--demos", "2", "--json", "--out", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"algo", "env", "expert_return", "learner_return", "env_steps", "wall_s", "n_demos"}
    assert out["algo"] == "bc" and out["env"] == "CartPole-v1" and out["n_demos"] == 2
    assert out["expert_return"] == 500.0 and out["env_steps"] == 0
    assert main(["demo", "imitate", "--algo", "gial", "--json", "--out", str(tmp_path)]) == 2
    assert "algo: unknown algorithm 'gial'" in capsys.readouterr().err
    assert main(["demo", "imitate", "--env", "Acrobot-v1", "--json", "--out", str(tmp_path)]) == 2
    assert "env: unknown env 'Acrobot-v1'" in capsys.readouterr().err
