"""Reward models on language models (docs/equations.md §5): oracles on the markov task, pooling, refusals."""

import math
import time

import pytest
import torch

from llmtrack.models import build_model
from llmtrack.pipelines.recipe import make_pipeline_task
from llmtrack.policy import FILLERS
from llmtrack.reward_model import (FrozenLMFeatures, LMRewardModel, evaluate_reward_model, frozen_linear_reward_model,
                                   gold_accuracy, gold_correlation, gold_slope, sequence_ids)
from llmtrack.tasks.base import context_state
from llmtrack.tokenizer import MASK, PAD
from minirl.algos.reward_model import LinearRewardModel, RewardModelConfig, train_reward_model
from minirl.data import Preferences, TrajectoryBatch


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test gets an empty model cache."""
    monkeypatch.setenv("LLMTRACK_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def task():
    return make_pipeline_task("markov")  # the pipelines' markov settings: 20 words, T = 10, full support


def nano_rm(task, seed=0):
    return LMRewardModel(build_model("nano", task.vocab_size, seed=seed), device="cpu", seed=seed)


def bigram_counts(task):
    """phi(x, y)[prev * V + a] = how often (prev, a) occurs in the response: the markov gold reward
    R = sum_t r(prev_t, a_t) is exactly w* . phi with w* = task.R flattened."""
    V = task.vocab_size
    cache = {}

    def features(batch):
        if id(batch) not in cache:  # the batch is kept with its features, so its id is not reused
            P = batch.obs.shape[1] - batch.horizon
            prev = context_state(batch.obs)[0][:, P - 1:P - 1 + batch.horizon]  # (B, T)
            index = prev * V + batch.actions.long().clamp(0, V - 1)
            cache[id(batch)] = batch, torch.zeros(batch.batch_size, V * V, dtype=torch.float64).scatter_add_(
                1, index, batch.mask.double())  # (B, V * V)
        return cache[id(batch)][1]
    return features


def test_linear_reward_on_exact_features_recovers_the_gold_reward_up_to_the_bt_shift(task):
    """Noiseless BT labels (p = sigma(R+ - R-)) on features that represent R exactly: the BT optimum is R
    itself on every direction the pairs identify, so held-out reward *differences* match the gold ones."""
    features = bigram_counts(task)
    R = torch.from_numpy(task.R).flatten()
    prefs = task.preferences(3000, seed=1)
    assert torch.allclose(features(prefs.chosen) @ R, prefs.chosen.info["gold_reward"].double(), atol=1e-5)
    p = torch.sigmoid(prefs.chosen.info["gold_reward"] - prefs.rejected.info["gold_reward"]).double()
    model = LinearRewardModel(features, task.vocab_size ** 2).double()
    train_reward_model(model, Preferences(prefs.chosen, prefs.rejected, p),
                       RewardModelConfig(objective="bt", n_updates=200, lr=0.1, use_strength=True))
    held_out = task.preferences(1000, seed=2)
    with torch.no_grad():
        learned = model.score(held_out.chosen) - model.score(held_out.rejected)
    gold = (held_out.chosen.info["gold_reward"] - held_out.rejected.info["gold_reward"]).double()
    assert torch.corrcoef(torch.stack([learned, gold]))[0, 1] > 0.99  # measured 0.9986
    assert gold_accuracy(model, held_out) > 0.99  # measured 1.0


def test_lm_reward_model_learns_noiseless_markov_preferences(task):
    """A fresh nano transformer (no pre-training) with the scalar head, 100 minibatch steps on noiseless pairs:
    held-out accuracy against the gold order measured 0.896 (0.878 and 0.868 with model seeds 1 and 2; a
    constant scores 0.5, the untrained model 0.49)."""
    model = nano_rm(task)
    held_out = task.preferences(500, seed=2)
    before = gold_accuracy(model, held_out)
    start = time.perf_counter()
    train_reward_model(model, task.preferences(2000, seed=1),
                       RewardModelConfig(objective="bt", n_updates=100, lr=3e-3, batch_size=64))
    after = gold_accuracy(model, held_out)
    assert after > 0.82 and after > before + 0.25
    assert time.perf_counter() - start < 30  # ~3 s alone on one CPU thread


def test_refuses_a_model_without_llmtracks_pad_id_and_out_of_vocab_tokens(task):
    lm = build_model("nano", task.vocab_size)
    lm.config.pad_token_id = None
    with pytest.raises(ValueError, match="pad_token_id"):
        LMRewardModel(lm, device="cpu")
    with pytest.raises(ValueError, match="pad_token_id"):
        FrozenLMFeatures(lm, device="cpu")
    lm.config.pad_token_id = 7
    with pytest.raises(ValueError, match="pad_token_id"):
        LMRewardModel(lm, device="cpu")
    model = nano_rm(task)
    batch = task.preferences(4, seed=0).chosen
    for bad in (task.vocab_size, -1):
        with pytest.raises(ValueError, match="obs: token ids"):
            model.score(batch.replace(obs=torch.where(batch.obs == PAD, batch.obs, torch.full_like(batch.obs, bad))))
        actions = batch.actions.clone()
        actions[0, 0] = bad  # a real response step
        with pytest.raises(ValueError, match="obs: token ids"):
            model.score(batch.replace(actions=actions))
    empty = TrajectoryBatch(obs=torch.full((1, 3), PAD), actions=torch.full((1, 1), PAD),
                            mask=torch.zeros(1, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="obs: every sequence"):
        model.score(empty)


def test_same_seed_gives_identical_scores(task):
    prefs, held_out = task.preferences(200, seed=1), task.preferences(50, seed=2).chosen
    scores = []
    for _ in range(2):
        model = nano_rm(task, seed=3)
        train_reward_model(model, prefs, RewardModelConfig(n_updates=5, lr=1e-3, batch_size=32, seed=4))
        with torch.no_grad():
            scores.append(model.score(held_out))
    assert torch.equal(scores[0], scores[1])
    with torch.no_grad():
        assert not torch.equal(nano_rm(task, seed=3).score(held_out), nano_rm(task, seed=5).score(held_out))


def _repad(batch, left, right, generator, vocab):
    """The same (prompt, response) pairs with ``left`` more filler columns before the prompt and ``right``
    more response columns off the mask (holding junk tokens: they must be ignored)."""
    B = batch.batch_size
    fillers = torch.tensor(FILLERS)[torch.randint(len(FILLERS), (B, left), generator=generator)]
    junk = torch.randint(vocab, (B, right), generator=generator)
    P = batch.obs.shape[1] - batch.horizon
    off_mask = torch.randint(vocab, batch.actions.shape, generator=generator)
    actions = torch.cat([torch.where(batch.mask, batch.actions, off_mask), junk], 1)
    mask = torch.cat([batch.mask, torch.zeros(B, right, dtype=torch.bool)], 1)
    obs = torch.cat([fillers, batch.obs[:, :P], torch.where(mask, actions, torch.full_like(actions, MASK))], 1)
    return TrajectoryBatch(obs=obs, actions=actions, mask=mask)


def test_score_is_invariant_to_padding_and_reads_the_last_real_token(task):
    """Oracle: each sequence run alone, without fillers or attention mask; its last position's hidden state
    through the head is the score, whatever padding the batch adds ([PAD] or [MASK], left or right)."""
    model = nano_rm(task, seed=1)
    torch.nn.init.normal_(model.head.weight)  # a head that reads every hidden direction
    batch = task.preferences(16, seed=3).chosen
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        alone = []
        for ids in sequence_ids(batch):
            real = ids[~torch.isin(ids, torch.tensor(FILLERS))][None]  # (1, n)
            h = model.model.base_model(input_ids=real).last_hidden_state[:, -1]  # (1, H)
            alone.append(model.head(h).squeeze())
        alone = torch.stack(alone)
        torch.testing.assert_close(model.score(batch), alone, atol=1e-5, rtol=0)
        for left, right in ((3, 0), (0, 4), (5, 2)):
            padded = _repad(batch, left, right, g, task.vocab_size)
            torch.testing.assert_close(model.score(padded), alone, atol=1e-5, rtol=0)
        features = FrozenLMFeatures(model.model, device="cpu")
        torch.testing.assert_close(features(padded), features(batch), atol=1e-5, rtol=0)


def test_gold_metrics_by_hand(task):
    """A model that scores the gold reward is right on every pair and correlates 1; its negative, 0 and -1;
    a constant, 1/2 (ties count half) and an undefined correlation."""
    prefs = task.preferences(300, noise=0.3, seed=4)  # labels flipped: the metrics must ignore them
    samples = task.rollout(task.base, 300, seed=5)

    class Scored(torch.nn.Module):
        def __init__(self, sign):
            super().__init__()
            self.sign = sign

        def score(self, batch):
            return self.sign * task.gold_reward(batch)

    assert gold_accuracy(Scored(1.0), prefs) == 1.0 and gold_accuracy(Scored(-1.0), prefs) == 0.0
    assert gold_accuracy(Scored(0.0), prefs) == 0.5
    assert gold_correlation(Scored(1.0), samples) == pytest.approx(1.0)
    assert gold_correlation(Scored(-1.0), samples, task.gold_reward) == pytest.approx(-1.0)
    assert math.isnan(gold_correlation(Scored(0.0), samples))
    with pytest.raises(ValueError, match="gold_reward"):
        gold_accuracy(Scored(1.0), Preferences(prefs.chosen.replace(info={}), prefs.rejected))
    metrics = evaluate_reward_model(Scored(1.0), task, task.expert, n_pairs=50, n_samples=50)
    assert metrics == {"eval/accuracy": 1.0, "eval/correlation": pytest.approx(1.0)}


def test_minibatches_of_all_pairs_are_full_batch_training(task):
    """batch_size >= B is the full-batch trainer, step for step; smaller batches are seeded."""
    prefs = task.preferences(100, seed=6)
    model = frozen_linear_reward_model(build_model("nano", task.vocab_size), device="cpu")
    w0 = model.w.detach().clone()
    histories = []
    for batch_size in (None, 100, 500):
        model.w.data.copy_(w0)
        histories.append(train_reward_model(model, prefs, RewardModelConfig(n_updates=5, batch_size=batch_size)))
    assert histories[0] == histories[1] == histories[2]
    minibatched = []
    for _ in range(2):
        model.w.data.copy_(w0)
        minibatched.append(train_reward_model(model, prefs, RewardModelConfig(n_updates=5, batch_size=10, seed=1)))
    assert minibatched[0] == minibatched[1] != histories[0]
    with pytest.raises(ValueError, match="batch_size"):
        RewardModelConfig(batch_size=0)


def test_noise_sweep_reports_and_plots(tmp_path):
    from llmtrack.experiments.reward_noise import RewardNoiseConfig, reward_noise_table, run_reward_noise
    from llmtrack.plots import reward_noise_figure

    rows = run_reward_noise(RewardNoiseConfig(fast=True, seeds=(0,), noises=(0.0, 0.4), objectives=("bt",)))
    assert [(r["noise"], r["head"]) for r in rows] == [(0.0, "transformer"), (0.0, "linear"),
                                                       (0.4, "transformer"), (0.4, "linear")]
    assert rows[0]["flipped"] == 0.0 and 0.3 < rows[2]["flipped"] < 0.5
    for clean, noisy in ((rows[0], rows[2]), (rows[1], rows[3])):
        assert clean["accuracy"] > 0.7 and clean["accuracy"] > noisy["accuracy"]
    assert "transformer" in reward_noise_table(rows)
    reward_noise_figure(rows).savefig(tmp_path / "figure.png")
    with pytest.raises(ValueError, match="heads"):
        RewardNoiseConfig(heads=("mlp",))


def test_gold_slope_reads_the_scale_within_prompts(task):
    """r = a * gold + c(x): the per-prompt shift c is invisible to Bradley-Terry and to the slope, which is a."""
    samples = task.rollout(task.base, 400, seed=6)
    P = samples.obs.shape[1] - samples.horizon

    class Scaled(torch.nn.Module):
        def __init__(self, a):
            super().__init__()
            self.a = a

        def score(self, batch):
            shift = 0.37 * batch.obs[:, :P].double().sum(1) ** 2  # any function of the prompt
            return self.a * task.gold_reward(batch).double() + shift

    for a in (0.5, 1.0, -2.0):
        assert gold_slope(Scaled(a), samples) == pytest.approx(a, rel=1e-9)
    assert gold_correlation(Scaled(1.0), samples) < 0.99  # the shift spoils the pooled correlation, not the slope
