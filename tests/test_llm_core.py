"""llmtrack's world: tokenizer, model presets, the LM policy adapter, TokenMDP and generation."""

import doctest
from pathlib import Path

import gymnasium as gym
from gymnasium.utils.env_checker import check_env
import pytest
import torch

import llmtrack.mdp
from llmtrack.mdp import TokenMDP
from llmtrack.models import build_model, count_parameters, load_model, save_model
from llmtrack.policy import LMPolicy, check_not_shared, frozen_reference
from llmtrack.rollout import generate, left_pad
from llmtrack.tokenizer import BOS, EOS, MASK, PAD, word_tokenizer
from minirl.algos import BCConfig, train_bc
from minirl.data import TrajectoryBatch
from minirl.policies import Policy
from minirl.rollout import rollout

WORDS = "The color of the sky is blue red green".split()


@pytest.fixture(scope="module")
def tok():
    return word_tokenizer(WORDS)


@pytest.fixture()
def policy(tok):
    return LMPolicy(build_model("nano", len(tok), seed=0), device="cpu")


def ids(tok, text):
    return tok(text, add_special_tokens=False).input_ids


def test_seed_sky_example_runs_as_written():
    failures, tried = doctest.testmod(llmtrack.mdp)
    assert tried >= 9 and failures == 0


def test_token_mdp_passes_env_checker_and_is_an_mdp_without_reward(tok):
    env = TokenMDP(tok, prompts=["The color of the sky"], context_size=7, max_new_tokens=2)
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    _, r, terminated, truncated, info = env.step(EOS)
    assert (r, terminated, truncated, info["reward_hidden"]) == (0.0, True, False, True)
    with pytest.raises(ValueError, match="action"):
        env.step(ids(tok, "blue")[0])  # EOS made the state absorbing: the episode is over
    rewarded = TokenMDP(tok, ["sky"], 4, 2, reward_fn=lambda ctx, a: float(a == ids(tok, "blue")[0]))
    rewarded.reset(seed=0)
    assert rewarded.step(ids(tok, "blue")[0])[1] == 1.0


@pytest.mark.parametrize("kwargs, field", [
    (dict(prompts=["The color of the sky"], context_size=6, max_new_tokens=2), "prompts"),
    (dict(prompts=["sky"], context_size=6, max_new_tokens=0), "max_new_tokens"),
    (dict(prompts=["sky"], context_size=6, max_new_tokens=2, gamma=1.5), "gamma"),
    (dict(prompts=["sky"], context_size=6, max_new_tokens=2, gamma=0.0), "gamma"),
    (dict(prompts=[[5, 999]], context_size=6, max_new_tokens=2), "prompts"),
    (dict(prompts=[], context_size=6, max_new_tokens=2), "prompts"),
])
def test_token_mdp_refuses_bad_input(tok, kwargs, field):
    with pytest.raises(ValueError, match=field):
        TokenMDP(tok, **kwargs)


def test_tokenizer_round_trip_and_requirements(tok, tmp_path):
    from transformers import AutoTokenizer

    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.mask_token_id) == (PAD, BOS, EOS, MASK)
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert again("sky is blue").input_ids == tok("sky is blue").input_ids and again.padding_side == "left"
    with pytest.raises(ValueError, match="words"):
        word_tokenizer(["a", "a"])
    with pytest.raises(ValueError, match="words"):
        word_tokenizer(["two words"])
    no_eos = word_tokenizer(WORDS)
    no_eos.eos_token = None
    with pytest.raises(ValueError, match="tokenizer"):
        TokenMDP(no_eos, ["sky"], 4, 2)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_presets_build_save_and_load(family, tok, tmp_path):
    model = build_model("nano", len(tok), family=family, seed=1)
    assert count_parameters(model) < 200_000
    again = build_model("nano", len(tok), family=family, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))
    path = save_model(model, tmp_path / "ckpt", tokenizer=tok)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # the temporary folder was renamed away
    loaded = load_model(path)
    x = torch.tensor([[BOS, 5, 6, 7]])
    assert torch.allclose(model.eval()(x).logits, loaded(x).logits, atol=1e-6)


def test_bad_presets_and_checkpoints_are_refused(tok, tmp_path):
    with pytest.raises(ValueError, match="preset"):
        build_model("huge", len(tok))
    with pytest.raises(ValueError, match="family"):
        build_model("nano", len(tok), family="bert")
    with pytest.raises(ValueError, match="path"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="path"):
        load_model(tmp_path / "empty")


def test_lm_policy_log_prob_is_one_forward_pass_equal_to_step_by_step(tok, policy):
    assert isinstance(policy, Policy)
    prompts = [ids(tok, "The color of the sky"), ids(tok, "sky")]
    batch = generate(policy, prompts, 4, generator=torch.Generator().manual_seed(0))
    P = batch.obs.shape[1] - batch.horizon
    assert batch.obs.shape[0] == 2 and torch.all(batch.obs[1, : P - 1] == PAD)  # left-padded prompt
    # one forward pass = the sampling log-probs = step-by-step next-token log-probs
    lp = policy.log_prob(batch)
    assert torch.allclose(lp, batch.log_probs, atol=1e-5)
    for t in range(batch.horizon):
        step = policy.next_token_log_probs(batch.obs[:, : P + t]).gather(-1, batch.actions[:, t: t + 1])[:, 0]
        assert torch.allclose(lp[:, t][batch.mask[:, t]], step[batch.mask[:, t]], atol=1e-5)
    # a right-[MASK]-padded context (the survey's layout) gives the same next-token distribution
    right = torch.full((1, 9), MASK)
    right[0, :5] = torch.tensor(prompts[0])
    assert torch.allclose(policy.next_token_log_probs(right), policy.next_token_log_probs(left_pad([prompts[0]], 7)),
                          atol=1e-5)
    # never emits fillers, BOS or UNK; entropy is that of the renormalised distribution
    assert set(batch.actions[batch.mask].tolist()).isdisjoint({PAD, BOS, MASK, 4})
    h = policy.entropy(batch)
    assert torch.all(h[batch.mask] > 0) and torch.all(h[~batch.mask] == 0)


def test_generate_agrees_with_stepping_the_token_mdp(tok, policy):
    """Same seed: minirl's rollout over TokenMDP envs and llmtrack's generate give the same tokens and log-probs."""
    prompt = ids(tok, "The color of the sky")
    n, T = 6, 4
    fast = generate(policy, [prompt] * n, T, generator=torch.Generator().manual_seed(3))
    envs = gym.vector.SyncVectorEnv([lambda: TokenMDP(tok, [prompt], 10, T) for _ in range(n)])
    slow = rollout(envs, policy, n, seed=0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(fast.mask, slow.mask[:, : fast.horizon])
    assert torch.equal(fast.actions[fast.mask], slow.actions[slow.mask])
    assert torch.allclose(fast.log_probs[fast.mask], slow.log_probs[slow.mask], atol=1e-5)
    assert torch.equal(fast.terminated, slow.terminated[:, : fast.horizon])


class _NoCache:
    """The same LM seen only through ``sample``: generate takes its cache-less path."""

    def __init__(self, policy):
        self.policy = policy

    def sample(self, obs, generator=None, deterministic=False):
        return self.policy.sample(obs, generator=generator, deterministic=deterministic)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_kv_cached_generate_equals_the_full_context_and_a_fresh_forward_pass(tok, family):
    """Left-padded prompts of 1, 3 and 5 tokens: cached and cache-less generation sample the same
    tokens with the same log-probs, and one forward pass over the finished batch gives them again."""
    policy = LMPolicy(build_model("nano", len(tok), family=family, seed=1), device="cpu")
    prompts = [ids(tok, "The color of the sky"), ids(tok, "sky"), ids(tok, "the sky is")] * 4
    assert policy.kv_decoder(left_pad(prompts)) is not None
    for seed in range(3):
        cached = generate(policy, prompts, 12, generator=torch.Generator().manual_seed(seed))
        plain = generate(_NoCache(policy), prompts, 12, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(cached.obs, plain.obs) and torch.equal(cached.mask, plain.mask)
        assert torch.allclose(cached.log_probs, plain.log_probs, atol=1e-5)
        assert torch.allclose(policy.log_prob(cached), cached.log_probs, atol=1e-5)
        assert cached.mask[:, -1].sum() < len(prompts)  # some rows stopped at [EOS] before others
    # A [MASK]-right-padded prompt tensor (the survey's layout) is cached the same way.
    right = torch.full((2, 7), MASK)
    right[0, :5], right[1, :1] = torch.tensor(prompts[0]), torch.tensor(prompts[1])
    a = generate(policy, right, 6, generator=torch.Generator().manual_seed(0))
    b = generate(_NoCache(policy), right, 6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.actions, b.actions) and torch.allclose(a.log_probs, b.log_probs, atol=1e-5)
    greedy = generate(policy, prompts, 8, deterministic=True)
    assert torch.equal(greedy.obs, generate(_NoCache(policy), prompts, 8, deterministic=True).obs)


def test_kv_cached_generate_keeps_the_bad_input_errors(tok, policy):
    with pytest.raises(ValueError, match="obs"):  # 60 prompt + 10 new tokens > the nano preset's 64 positions
        generate(policy, [[5] * 60], 10, generator=torch.Generator().manual_seed(0), deterministic=True)
    with pytest.raises(ValueError, match="obs"):
        generate(policy, torch.full((1, 3), PAD), 2)

    class Tempered(LMPolicy):  # a subclass that reshapes the distribution is never bypassed
        def sample(self, obs, generator=None, deterministic=False):
            return super().sample(obs, generator, deterministic=True)

    tempered = Tempered(policy.model, device="cpu")
    assert tempered.kv_decoder(left_pad([[5]])) is None
    assert torch.equal(generate(tempered, [[5]], 5).actions, generate(policy, [[5]], 5, deterministic=True).actions)


def test_bc_on_the_lm_is_sft_and_masks_the_prompt(tok, policy):
    """minirl's BC, unchanged, fits a response: the prompt tokens are never a target."""
    prompt, answer = ids(tok, "The color of the sky"), ids(tok, "is blue") + [EOS]
    obs = torch.tensor([prompt + answer])
    demo = TrajectoryBatch(obs=obs, actions=torch.tensor([answer]), mask=torch.ones(1, 3, dtype=torch.bool))
    train_bc(policy, demo, BCConfig(n_updates=40, lr=3e-3))
    greedy = generate(policy, [prompt], 3, deterministic=True)
    assert greedy.actions[0].tolist() == answer
    assert policy.log_prob(demo).sum().exp() > 0.9


def test_value_head_reference_and_bad_inputs(tok):
    policy = LMPolicy(build_model("nano", len(tok)), value_head=True, device="cpu")
    batch = generate(policy, [ids(tok, "sky")] * 3, 3, generator=torch.Generator().manual_seed(0))
    v = policy.values(batch)
    assert v.shape == batch.mask.shape and torch.all(v[~batch.mask] == 0)
    ref = frozen_reference(policy)
    check_not_shared(policy, ref)
    assert not any(p.requires_grad for p in ref.parameters())
    with pytest.raises(ValueError, match="reference"):
        check_not_shared(policy, policy)
    with pytest.raises(ValueError, match="value_head"):
        LMPolicy(build_model("nano", len(tok)), device="cpu").values(batch)
    with pytest.raises(ValueError, match="obs"):
        policy.sample(torch.tensor([[999]]))
    with pytest.raises(ValueError, match="obs"):
        policy.sample(torch.zeros(1, 80, dtype=torch.long) + 5)  # longer than the 64 positions
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(policy, [ids(tok, "sky")], 0)


def test_an_interrupted_save_leaves_the_last_good_checkpoint(tmp_path):
    """save_model writes to a temporary sibling and renames: a crash mid-write changes nothing."""
    good = build_model("nano", 20, seed=0)
    path = save_model(good, tmp_path / "ckpt")
    other = build_model("nano", 20, seed=1)

    def crash(folder, **kwargs):
        (Path(folder) / "model.safetensors").write_bytes(b"half a file")
        raise KeyboardInterrupt

    other.save_pretrained = crash
    with pytest.raises(KeyboardInterrupt):
        save_model(other, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folder left behind
    loaded = load_model(path)
    for a, b in zip(loaded.state_dict().values(), good.state_dict().values()):
        assert torch.equal(a, b)
