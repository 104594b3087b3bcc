"""Tests for llmtrack.tasks: the Markov answer key (exact oracles), the sort expert, the generators."""

import itertools
import math

import numpy as np
import pytest
import torch

from minirl.data import TrajectoryBatch
from minirl.policies import Expert, Policy
from llmtrack.rollout import generate, left_pad
from llmtrack.tasks import MarkovTask, SortTask, make_task
from llmtrack.tasks.sort import DIGIT0, EQUALS, SORT
from llmtrack.tokenizer import BOS, EOS, MASK, PAD


@pytest.fixture(scope="module")
def markov():
    return MarkovTask(seed=0)


@pytest.fixture(scope="module")
def small():
    """6 words, T = 3: small enough to enumerate every response."""
    return MarkovTask(n_words=6, max_new_tokens=3, beta=0.7, branching=3, seed=1)


@pytest.fixture(scope="module")
def sort_task():
    return SortTask(min_len=2, max_len=6)


def token_batch(prompts, responses, T):
    """The token layout by hand: left-padded prompts, then responses right-padded to T."""
    prompt_ids = left_pad(prompts)
    actions = torch.full((len(responses), T), PAD, dtype=torch.long)
    mask = torch.zeros(len(responses), T, dtype=torch.bool)
    for i, y in enumerate(responses):
        actions[i, : len(y)] = torch.tensor(y)
        mask[i, : len(y)] = True
    return TrajectoryBatch(obs=torch.cat([prompt_ids, actions], 1), actions=actions, mask=mask)


def all_responses(task):
    """Every response of the finite-horizon language: words then [EOS] (< T tokens), or T words."""
    words = range(5, task.vocab_size)
    out = []
    for length in range(task.max_new_tokens + 1):
        for ws in itertools.product(words, repeat=length):
            if length < task.max_new_tokens:
                out.append([*ws, EOS])
            else:
                out.append(list(ws))
    return out


# -- Markov: the tabular answer key is the token-level optimum -----------------------------------

def test_markov_tabular_solution_is_the_token_level_optimum(small):
    T, beta = small.max_new_tokens, small.beta
    responses = all_responses(small)
    for w0 in range(5, small.vocab_size):
        batch = token_batch([[BOS, w0]] * len(responses), responses, T)
        P = batch.obs.shape[1] - T
        # Token by token through the sampling path (one context at a time, as generate does).
        logp_tokens = torch.zeros(len(responses), dtype=torch.float64)
        for t in range(T):
            lp = small.expert.next_token_log_probs(batch.obs[:, : P + t]).double()
            step = lp.gather(1, batch.actions[:, t: t + 1]).squeeze(1)
            logp_tokens += torch.where(batch.mask[:, t], step, torch.zeros_like(step))
        p_tokens = logp_tokens.exp()
        assert p_tokens.sum().item() == pytest.approx(1.0, abs=1e-5)
        # pi*(y|x) = pi_ref(y|x) exp(R(y)/beta) / Z(x), from the numpy tables directly.
        prev = [[w0, *y[:-1]] for y in responses]
        ref = np.array([np.prod([small.pi_ref[s, a] for s, a in zip(p, y)]) for p, y in zip(prev, responses)])
        R = np.array([sum(small.R[s, a] for s, a in zip(p, y)) for p, y in zip(prev, responses)])
        logZ = small.log_partition([[BOS, w0]]).item()
        assert np.exp(logZ) == pytest.approx((ref * np.exp(R / beta)).sum(), rel=1e-9)
        np.testing.assert_allclose(p_tokens.numpy(), ref * np.exp(R / beta - logZ), atol=1e-6)
        # The batch path (one call over the token layout) equals the per-token product.
        seq = small.expert.log_prob(batch).double().sum(1)
        finite = ref > 0
        assert torch.isinf(seq[~torch.from_numpy(finite)]).all()
        np.testing.assert_allclose(seq[finite].numpy(), logp_tokens[finite].numpy(), atol=1e-5)
        np.testing.assert_allclose(small.base.log_prob(batch).double().sum(1)[finite].exp().numpy(), ref[finite],
                                   rtol=1e-5)
        np.testing.assert_allclose(small.gold_reward(batch).numpy(), R, atol=1e-6)


def test_markov_log_ratio_identity_on_demonstrations(markov):
    """log pi* = log pi_ref + R/beta - log Z on sampled demonstrations (the DPO answer key)."""
    demos = markov.demonstrations(200, seed=3)
    lhs = markov.expert.log_prob(demos).sum(1)
    prompts = demos.obs[:, : demos.obs.shape[1] - demos.horizon]
    rhs = markov.base.log_prob(demos).sum(1) + demos.info["gold_reward"] / markov.beta - markov.log_partition(prompts)
    torch.testing.assert_close(lhs.double(), rhs.double(), atol=1e-4, rtol=0)


def test_markov_beta_limits(small):
    words = slice(5, None)
    pi_inf = small.optimal_policy(1e6).probs_table()  # beta -> infinity: the KL term wins
    np.testing.assert_allclose(pi_inf[:, words], np.broadcast_to(small.pi_ref[words], pi_inf[:, words].shape),
                               atol=1e-5)
    responses = all_responses(small)
    for w0 in range(5, small.vocab_size):
        batch = token_batch([[BOS, w0]] * len(responses), responses, small.max_new_tokens)
        R = small.gold_reward(batch).double()
        best = R[small.base.log_prob(batch).sum(1) > -math.inf].max()
        expected = [(small.optimal_policy(b).log_prob(batch).double().sum(1).exp() * R).sum().item()
                    for b in (10.0, 1.0, 0.1, 0.01)]
        assert all(x <= y + 1e-9 for x, y in zip(expected, expected[1:]))  # more reward as beta falls
        assert expected[-1] == pytest.approx(best.item(), abs=1e-3)  # beta -> 0: the best response


def test_markov_samples_match_exact_first_token_probabilities(markov):
    N, prompt = 4000, [BOS, 5 + 7]
    batch = generate(markov.expert, [prompt] * N, markov.max_new_tokens, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(batch.actions[:, 0], minlength=markov.vocab_size).double() / N
    p = markov.expert.next_token_log_probs(torch.tensor([prompt])).exp()[0].double()
    assert (freq - p).abs().max() < 4 * math.sqrt(0.25 / N)
    assert freq[p == 0].sum() == 0


def test_markov_language_and_gold_reward_by_hand(markov):
    ids = markov.tokenizer.convert_tokens_to_ids
    words = range(5, markov.vocab_size)
    pi = markov.pi_ref[5:]
    np.testing.assert_allclose(pi.sum(1), 1.0)
    assert ((pi > 0).sum(1) == markov.branching + 1).all() and np.allclose(pi[:, EOS], markov.eos_prob)
    assert (pi[:, [PAD, BOS, MASK, 4]] == 0).all()
    reach = (markov.pi_ref[np.ix_(words, words)] > 0).astype(float)
    assert (np.linalg.matrix_power(np.eye(len(words)) + reach, len(words)) > 0).all()  # every word reachable
    c = markov.length_cost
    cases = [([BOS, ids("the")], [ids("great"), EOS], 1.0 - c),
             ([BOS, ids("not")], [ids("great"), EOS], -1.0 - c),  # negation
             ([BOS, ids("the")], [ids("not"), ids("bad"), ids("food"), EOS], -2 * c + 0.5 - c),
             ([BOS, ids("the")], [EOS], 0.0)]
    batch = token_batch([p for p, _, _ in cases], [y for _, y, _ in cases], 4)
    torch.testing.assert_close(markov.gold_reward(batch), torch.tensor([r for _, _, r in cases]))


def test_markov_reads_either_padding_layout(markov):
    left = torch.tensor([[PAD, PAD, BOS, 9, 12]])
    right = torch.tensor([[BOS, 9, 12, MASK, MASK]])
    torch.testing.assert_close(markov.expert.next_token_log_probs(left), markov.expert.next_token_log_probs(right))
    assert isinstance(markov.expert, Policy) and isinstance(markov.expert, Expert)


# -- sort ---------------------------------------------------------------------------------------

def digits(ds):
    return [DIGIT0 + d for d in ds]


def test_sort_demonstrations_are_sorted(sort_task):
    demos = sort_task.demonstrations(100, seed=0)
    P = demos.obs.shape[1] - demos.horizon
    for i in range(100):
        prompt = [int(t) for t in demos.obs[i, :P] if DIGIT0 <= t < DIGIT0 + 10]
        assert demos.actions[i][demos.mask[i]].tolist() == sorted(prompt) + [EOS]
    assert (demos.info["gold_reward"] == 1).all()
    assert (sort_task.expert.log_prob(demos) == 0).all()


def test_sort_expert_sorts_what_remains_after_mistakes(sort_task):
    prompts = [[BOS, SORT, *digits([3, 1, 2]), EQUALS], [BOS, SORT, *digits([5, 5, 0, 9]), EQUALS]]
    responses = [digits([2, 1, 3]) + [EOS], digits([7, 0, 5, 9, 5]) + [EOS]]  # 7 was never available
    batch = token_batch(prompts, responses, 6)
    labels = sort_task.expert.label(batch)
    assert labels[0, :4].tolist() == digits([1, 1, 3]) + [EOS]
    assert labels[1].tolist() == digits([0, 0, 5, 5, 5]) + [EOS]
    # Single contexts (generate's path) agree with the batch path.
    P = batch.obs.shape[1] - 6
    for t in range(6):
        action, logp = sort_task.expert.sample(batch.obs[1:, : P + t])
        assert action.item() == labels[1, t].item() and logp.item() == 0.0
    logp = sort_task.expert.log_prob(batch)
    assert logp[0, 0] == -math.inf and logp[0, 1] == 0.0


def test_sort_gold_reward_and_accuracy_by_hand(sort_task):
    prompt = [BOS, SORT, *digits([3, 1, 2]), EQUALS]
    responses = [digits([1, 2, 3]) + [EOS], digits([1, 2, 3]), digits([1, 3, 2]) + [EOS], digits([1, 2]) + [EOS],
                 digits([1, 2, 3, 3]) + [EOS], [EOS]]
    batch = token_batch([prompt] * len(responses), responses, 5)
    assert sort_task.gold_reward(batch).tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    torch.testing.assert_close(sort_task.accuracy(batch), torch.tensor([1.0, 0.75, 0.5, 0.5, 0.75, 0.0]))


def test_sort_base_generator_probabilities(sort_task):
    ctx = torch.tensor([[BOS, SORT, *digits([4, 1, 4]), EQUALS, DIGIT0 + 4]])  # remaining {1, 4}
    p = sort_task.base.next_token_log_probs(ctx).exp()[0]
    s = sort_task.base_skill
    assert p[DIGIT0 + 1].item() == pytest.approx(s + (1 - s) / 2)
    assert p[DIGIT0 + 4].item() == pytest.approx((1 - s) / 2)
    assert p.sum().item() == pytest.approx(1.0)
    corpus = sort_task.base_corpus(300, seed=0)  # right format, mixed correctness
    assert 0.1 < corpus.info["gold_reward"].mean() < 0.9
    assert (corpus.terminated.any(1)).all()


# -- shared generators -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["markov", "sort"])
def test_preferences_follow_gold_reward_and_noise(name, markov, sort_task):
    task = markov if name == "markov" else sort_task
    prefs = task.preferences(300, noise=0.0, seed=1)
    assert (prefs.chosen.info["gold_reward"] > prefs.rejected.info["gold_reward"]).all()
    P = prefs.chosen.obs.shape[1] - prefs.chosen.horizon
    assert torch.equal(prefs.chosen.obs[:, :P], prefs.rejected.obs[:, :P])  # same prompt in row i
    torch.testing.assert_close(prefs.chosen.info["gold_reward"], task.gold_reward(prefs.chosen))
    noise, n = 0.25, 2000
    noisy = task.preferences(n, noise=noise, seed=2)
    worse = (noisy.chosen.info["gold_reward"] < noisy.rejected.info["gold_reward"]).float()
    assert torch.equal(worse.bool(), noisy.chosen.info["flipped"])
    assert abs(worse.mean().item() - noise) < 4 * math.sqrt(noise * (1 - noise) / n)


def test_bradley_terry_temperature(markov):
    n, temp = 2000, 0.5
    prefs = markov.preferences(n, seed=4, temperature=temp)
    gap = prefs.chosen.info["gold_reward"] - prefs.rejected.info["gold_reward"]
    agree = (gap > 0).float().mean().item()
    expected = torch.sigmoid(gap.abs() / temp).mean().item()  # P(label agrees with the gold order)
    assert abs(agree - expected) < 4 * math.sqrt(0.25 / n)


@pytest.mark.parametrize("name", ["markov", "sort"])
def test_same_seed_same_data(name, markov, sort_task):
    task = markov if name == "markov" else sort_task
    for make in (lambda s: task.demonstrations(20, seed=s), lambda s: task.base_corpus(20, seed=s),
                 lambda s: task.preferences(20, noise=0.1, seed=s).chosen):
        a, b, c = make(5), make(5), make(6)
        assert torch.equal(a.obs, b.obs) and torch.equal(a.mask, b.mask)
        assert not torch.equal(a.obs, c.obs)
    assert task.sample_prompts(10, 3) == task.sample_prompts(10, torch.Generator().manual_seed(3))


@pytest.mark.parametrize("name", ["markov", "sort"])
def test_token_mdp_rewards_sum_to_gold(name, markov, sort_task):
    task = markov if name == "markov" else sort_task
    env = task.token_mdp(reward=True, n_prompts=8)
    hidden = task.token_mdp()
    for episode in range(4):
        obs, info = env.reset(seed=episode)
        hidden.reset(seed=episode)
        prompt = [int(t) for t in obs[: info["prompt_length"]]]
        for policy in (task.expert, task.base):
            env.reset(seed=episode)
            hidden.reset(seed=episode)
            batch = generate(policy, [prompt], task.max_new_tokens, generator=torch.Generator().manual_seed(episode))
            total = 0.0
            for a in batch.actions[0][batch.mask[0]].tolist():
                _, r, terminated, truncated, _ = env.step(a)
                _, r_hidden, _, _, info_hidden = hidden.step(a)
                total += r
                assert r_hidden == 0.0 and info_hidden["reward_hidden"]
            assert terminated or truncated
            assert total == pytest.approx(task.gold_reward(batch).item(), abs=1e-5)


def test_bad_input_is_refused(markov, sort_task):
    with pytest.raises(ValueError, match="name: unknown task 'nope'.*markov.*sort"):
        make_task("nope")
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="noise"):
            markov.preferences(10, noise=bad)
    with pytest.raises(ValueError, match="temperature"):
        markov.preferences(10, temperature=-1.0)
    with pytest.raises(ValueError, match="^n:"):
        sort_task.demonstrations(0)
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="beta"):
            markov.optimal_policy(bad)
        with pytest.raises(ValueError, match="beta"):
            MarkovTask(n_words=4, beta=bad)
    with pytest.raises(ValueError, match="n_words"):
        MarkovTask(n_words=1000)
    with pytest.raises(ValueError, match="eos_prob"):
        MarkovTask(n_words=4, eos_prob=1.0)
    with pytest.raises(ValueError, match="max_len"):
        SortTask(min_len=5, max_len=3)
    with pytest.raises(ValueError, match="base_skill"):
        SortTask(base_skill=2.0)
    with pytest.raises(ValueError, match="policy"):  # a deterministic sampler never gives a distinct pair
        sort_task.preferences(5, policy=sort_task.expert, max_rounds=3)
    with pytest.raises(ValueError, match="obs"):  # longer than the horizon the answer key was solved for
        markov.expert.next_token_log_probs(torch.tensor([[BOS, 5] + [6] * markov.max_new_tokens]))
