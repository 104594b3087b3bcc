"""llmtrack.pipelines: base pre-training (deterministic, cached), SFT and on-policy distillation through
minirl's BC and DAgger, the evaluation estimators against exact answers, and the ``llmtrack sft`` CLI."""

import itertools
import json
import math

import pytest
import torch

import llmtrack.pipelines.base as base_module
from llmtrack.cli import main
from llmtrack.models import build_model, save_model
from llmtrack.pipelines import (DistillConfig, EvalConfig, SampledExpert, SFTConfig, distill, evaluate,
                                expert_accuracy, forward_kl, pretrain_base, reverse_kl, sft)
from llmtrack.pipelines import recipe
from llmtrack.pipelines.imitation import on_policy_dagger
from minirl.estimators import sequence_log_prob
from llmtrack.pipelines.evaluate import mistakes_by_length
from llmtrack.pipelines.recipe import SFTRunConfig
from llmtrack.policy import LMPolicy
from llmtrack.rollout import generate, left_pad
from llmtrack.tasks import MarkovTask, SortTask
from llmtrack.tokenizer import BOS, EOS, PAD
from minirl.algos import BCConfig
from minirl.data import TrajectoryBatch
from minirl.mistakes import count_mistakes

TINY_BC = BCConfig(n_updates=8, batch_size=16, lr=3e-3)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test gets an empty model cache."""
    path = tmp_path / "cache"
    monkeypatch.setenv("LLMTRACK_CACHE", str(path))
    return path


@pytest.fixture(scope="module")
def sort_task():
    return SortTask(min_len=2, max_len=4)


def weights(policy):
    return [p.detach().clone() for p in policy.model.parameters()]


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


# -- base pre-training ----------------------------------------------------------------------------

def test_pretrain_base_is_deterministic_and_cached(sort_task, cache, monkeypatch):
    first = pretrain_base(sort_task, "nano", seed=3, n_sequences=64, bc=TINY_BC)
    (folder,) = (cache / "base").iterdir()  # one checkpoint, no temporary folders left
    assert (folder / "config.json").is_file() and json.loads((folder / "llmtrack_base.json").read_text())["seed"] == 3
    uncached = pretrain_base(sort_task, "nano", seed=3, n_sequences=64, bc=TINY_BC, cache=False)
    assert same(weights(first), weights(uncached))  # same inputs, independently trained: identical weights

    def no_training(*args, **kwargs):
        raise AssertionError("a cache hit must not train")

    monkeypatch.setattr(base_module, "train_bc", no_training)
    loaded = pretrain_base(sort_task, "nano", seed=3, n_sequences=64, bc=TINY_BC)
    assert same(weights(first), weights(loaded))
    with pytest.raises(AssertionError, match="cache hit"):  # any other input is another key: it trains
        pretrain_base(sort_task, "nano", seed=4, n_sequences=64, bc=TINY_BC)
    key = base_module.base_cache_key
    assert key(sort_task, "nano", "gpt2", 3, 64, TINY_BC)[0] != key(SortTask(min_len=2, max_len=5), "nano", "gpt2",
                                                                      3, 64, TINY_BC)[0]
    assert key(sort_task, "nano", "gpt2", 3, 64, TINY_BC)[0] != key(sort_task, "nano", "gpt2", 3, 64,
                                                                      BCConfig(n_updates=9, batch_size=16, lr=3e-3))[0]


def test_pretrain_base_refuses_bad_input(sort_task):
    with pytest.raises(ValueError, match="size"):
        pretrain_base(sort_task, "huge")
    with pytest.raises(ValueError, match="family"):
        pretrain_base(sort_task, "nano", family="bert")
    with pytest.raises(ValueError, match="n_sequences"):
        pretrain_base(sort_task, "nano", n_sequences=0)


# -- SFT and on-policy distillation are minirl's BC and DAgger -------------------------------------

@pytest.fixture(scope="module")
def tiny_base(sort_task):
    return pretrain_base(sort_task, "nano", seed=0, n_sequences=128, bc=BCConfig(n_updates=30, batch_size=32, lr=3e-3),
                         cache=False)


def test_sft_raises_the_likelihood_of_held_out_demonstrations(sort_task, tiny_base):
    held_out = sort_task.demonstrations(200, seed=99)
    before = sequence_log_prob(tiny_base, held_out).mean()
    policy = LMPolicy(build_model("nano", sort_task.vocab_size), device="cpu")
    policy.load_state_dict(tiny_base.state_dict())
    demos, history = sft(policy, sort_task, SFTConfig(n_demos=64, bc=BCConfig(n_updates=30, batch_size=32, lr=3e-3)))
    after = sequence_log_prob(policy, held_out).mean()
    assert demos.batch_size == 64 and len(history["loss/bc"]) == 30
    assert after > before + 1.0, (before, after)
    assert forward_kl(policy, sort_task, expert_samples=held_out).value < forward_kl(
        tiny_base, sort_task, expert_samples=held_out).value  # for sort, forward KL = NLL of the sorted answer


def test_distillation_labels_the_students_own_contexts(sort_task, tiny_base):
    policy = LMPolicy(build_model("nano", sort_task.vocab_size), device="cpu")
    policy.load_state_dict(tiny_base.state_dict())
    config = DistillConfig(n_demos=8, dagger=on_policy_dagger(n_iterations=2, episodes_per_iteration=24,
                                                               bc=BCConfig(n_updates=3, batch_size=16)))
    data, history = distill(policy, sort_task, config)
    assert data.batch_size == config.labelled_sequences == 8 + 2 * 24
    assert history["data/beta"] == [0.0, 0.0]  # the student rolls in alone
    # Every label is the expert's answer at the (student-written) context.
    labels = sort_task.expert.label(data)
    assert torch.equal(data.actions[data.mask], labels[data.mask])
    # The contexts are the student's: after the demonstrations, rows hold tokens the expert would never write.
    P = data.obs.shape[1] - data.horizon
    written = data.replace(actions=data.obs[:, P:])
    expert_logp = sequence_log_prob(sort_task.expert, written)  # (B,)
    assert torch.all(expert_logp[:8] == 0)  # demonstrations: the expert's own tokens
    assert torch.isinf(expert_logp[8:]).sum() >= 5  # student generations with mistakes, relabelled
    wrong = (written.actions != data.actions) & data.mask
    assert wrong[8:].any() and not wrong[:8].any()


def test_sampled_expert_labels_are_expert_samples():
    markov = MarkovTask(n_words=6, max_new_tokens=3, branching=6, seed=1)
    n = 4000
    ctx = torch.tensor([[BOS, 7, 9]] * n)  # one state, repeated: labels at response step 1
    batch = TrajectoryBatch(obs=torch.cat([ctx[:, :2], ctx[:, 2:], torch.zeros(n, 1, dtype=torch.long)], 1),
                            actions=torch.tensor([[9, 5]] * n), mask=torch.ones(n, 2, dtype=torch.bool))
    labels = SampledExpert(markov.expert, seed=0).label(batch)[:, 1]
    p = markov.expert.next_token_log_probs(ctx[:1]).exp()[0].double()
    freq = torch.bincount(labels, minlength=markov.vocab_size).double() / n
    assert (freq - p).abs().max() < 4 * math.sqrt(0.25 / n) and freq[p == 0].sum() == 0
    sort_task = SortTask(min_len=2, max_len=4)
    demos = generate(LMPolicy(build_model("nano", sort_task.vocab_size), device="cpu"),
                     sort_task.sample_prompts(32, 0), sort_task.max_new_tokens, generator=torch.Generator().manual_seed(0))
    assert torch.equal(SampledExpert(sort_task.expert).label(demos), sort_task.expert.label(demos))  # deterministic


# -- evaluation: the estimators against exact answers ----------------------------------------------

def all_responses(task):
    words = range(5, task.vocab_size)
    out = []
    for length in range(task.max_new_tokens + 1):
        for ws in itertools.product(words, repeat=length):
            out.append([*ws, EOS] if length < task.max_new_tokens else list(ws))
    return out


def exact_kls(task, policy):
    """KL(d* || d^pi) and KL(d^pi || d*) by enumerating every prompt and response (float64)."""
    responses = all_responses(task)
    T = task.max_new_tokens
    actions = torch.full((len(responses), T), PAD, dtype=torch.long)
    mask = torch.zeros(len(responses), T, dtype=torch.bool)
    for i, y in enumerate(responses):
        actions[i, : len(y)], mask[i, : len(y)] = torch.tensor(y), True
    prompts, probs = task.prompt_support()
    forward = reverse = 0.0
    for prompt, rho in zip(prompts, probs):
        batch = TrajectoryBatch(obs=torch.cat([left_pad([prompt] * len(responses)), actions], 1), actions=actions,
                                mask=mask)
        lp_star, lp_pi = sequence_log_prob(task.expert, batch), sequence_log_prob(policy, batch)
        p_star, p_pi = lp_star.exp(), lp_pi.exp()
        assert p_star.sum().item() == pytest.approx(1.0, abs=1e-5) and p_pi.sum().item() == pytest.approx(1.0, abs=1e-5)
        on = p_star > 0
        forward += rho * float((p_star[on] * (lp_star[on] - lp_pi[on])).sum())
        on = p_pi > 0
        reverse += rho * float((p_pi[on] * (lp_pi[on] - lp_star[on])).sum())
    return forward, reverse


def test_kl_estimators_agree_with_exact_enumeration():
    """Oracle: Monte-Carlo KL between the exact expert pi* and the base pi_ref vs summing over every response."""
    task = MarkovTask(n_words=5, max_new_tokens=3, beta=0.7, branching=3, seed=1)
    fwd_exact, rev_exact = exact_kls(task, task.base)
    fwd, rev = forward_kl(task.base, task, n=4000, seed=0), reverse_kl(task.base, task, n=4000, seed=1)
    assert fwd_exact > 0.05 and rev_exact > 0.05
    assert abs(fwd.value - fwd_exact) < 4 * fwd.se and fwd.se < 0.1 * fwd_exact, (fwd, fwd_exact)
    assert abs(rev.value - rev_exact) < 4 * rev.se and rev.se < 0.1 * rev_exact, (rev, rev_exact)
    assert fwd.off_support == rev.off_support == 0.0
    # A softmax student puts mass everywhere: against the sparse expert its reverse KL is +inf.
    student = LMPolicy(build_model("nano", task.vocab_size), device="cpu")
    rev_student = reverse_kl(student, task, n=200, seed=0)
    assert rev_student.value == math.inf and rev_student.off_support > 0
    assert math.isfinite(forward_kl(student, task, n=200, seed=0).value)


def test_the_expert_scores_perfectly(sort_task):
    out = evaluate(sort_task.expert, sort_task, EvalConfig(n_sequences=200))
    assert out["expert_accuracy"] == 1.0 and out["expert_accuracy_greedy"] == 1.0
    assert out["mistakes"] == 0.0 and out["slip_rate"] == 0.0 and out["gold_reward"] == 1.0
    assert out["forward_kl"] == 0.0 and out["reverse_kl"] == 0.0
    markov = MarkovTask(n_words=8, max_new_tokens=4, seed=2)
    out = evaluate(markov.expert, markov, EvalConfig(n_sequences=500))
    assert out["forward_kl"] == pytest.approx(0.0, abs=1e-5) and out["reverse_kl"] == pytest.approx(0.0, abs=1e-5)
    # the stochastic expert's own score is E sum_a pi*(a|s)^2, the reference the CLI reports
    assert abs(out["expert_accuracy"] - out["expert_accuracy_reference"]) < 4 * out["expert_accuracy_se"] + 0.01


def test_expert_accuracy_is_label_agreement_and_mistakes_are_seed_eq_1(sort_task, tiny_base):
    own = sort_task.rollout(tiny_base, 300, seed=5)
    agree = ((own.actions == sort_task.expert.label(own)) & own.mask).sum().double() / own.mask.sum()
    acc, se = expert_accuracy(sort_task, own)
    assert acc == pytest.approx(float(agree), abs=1e-9) and 0 < se < 0.05 and acc < 0.99
    by_length = mistakes_by_length(sort_task, own)
    mistakes = count_mistakes(own, sort_task.expert)
    assert sum(c for _, _, c in by_length.values()) == 300
    total = sum(m * c for m, _, c in by_length.values())
    assert total == pytest.approx(float(mistakes.sum()))
    assert 1 - float(mistakes.sum()) / own.n_steps == pytest.approx(acc)


# -- the CLI ----------------------------------------------------------------------------------------

TINY_RUN = dict(labelled_sequences=40, updates=8, lr=1e-3, pretrain_sequences=64, pretrain_updates=10, n_eval=64)
REQUIRED = ("task", "size", "algo", "params", "train_tokens_per_s", "expert_accuracy", "forward_kl", "reverse_kl",
            "wall_s")
TIMINGS = ("train_s", "train_tokens_per_s", "wall_s", "eval_s")


@pytest.fixture()
def tiny_cli(monkeypatch):
    monkeypatch.setattr(recipe, "TASK_TRAINING", {t: dict(TINY_RUN) for t in recipe.TASK_TRAINING})


def run_json(capsys, *argv):
    assert main(["sft", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def numbers(out):
    out = {k: v for k, v in out.items() if k not in TIMINGS}
    out["base"] = {k: v for k, v in out["base"].items() if k not in ("pretrain_s", "cached")}
    return out


def test_cli_json_keys_and_same_seed_same_numbers(tiny_cli, capsys, cache):
    threads = torch.get_num_threads()
    a = run_json(capsys, "--task", "sort", "--algo", "dagger")
    assert torch.get_num_threads() == threads  # nano runs on one thread; the count is restored afterwards
    for key in REQUIRED:
        assert key in a, key
    assert (a["task"], a["size"], a["algo"], a["labelled_sequences"]) == ("sort", "nano", "dagger", 40)
    assert a["dagger_demos"] + a["dagger_iterations"] * ((40 - a["dagger_demos"]) // a["dagger_iterations"]) == 40
    assert a["params"] > 50_000 and a["train_tokens_per_s"] > 0 and 0 <= a["expert_accuracy"] <= 1
    assert a["reverse_kl"] is None and a["forward_kl"] > 0 and a["notes"]  # sort: deterministic expert
    assert a["base"]["cached"] is False
    b = run_json(capsys, "--task", "sort", "--algo", "dagger")  # base now loads from the cache
    assert b["base"]["cached"] is True
    assert numbers(a) == numbers(b)
    m = run_json(capsys, "--task", "markov", "--algo", "bc", "--seed", "1")
    assert m["forward_kl"] > 0 and m["reverse_kl"] > 0 and m["forward_kl_se"] > 0  # full-support language: finite
    assert m["seed"] == 1 and m["algo"] == "bc"


def test_cli_checkpoint_and_out(tiny_cli, capsys, tmp_path):
    task = recipe.make_pipeline_task("sort")
    start = save_model(build_model("nano", task.vocab_size, family="llama", seed=5), tmp_path / "start",
                       tokenizer=task.tokenizer)
    out = run_json(capsys, "--task", "sort", "--algo", "bc", "--checkpoint", str(start), "--out", str(tmp_path / "ft"))
    assert out["base"]["source"] == str(start) and out["checkpoint_out"] == str(tmp_path / "ft")
    assert (tmp_path / "ft" / "config.json").is_file() and (tmp_path / "ft" / "tokenizer.json").is_file()
    again = run_json(capsys, "--task", "sort", "--algo", "bc", "--checkpoint", str(tmp_path / "ft"))
    assert again["params"] == out["params"]


@pytest.mark.parametrize("argv, field", [
    (["--task", "poems"], "task"),
    (["--task", "sort", "--size", "huge"], "size"),
    (["--task", "sort", "--algo", "ppo"], "algo"),
    (["--task", "sort", "--family", "bert"], "family"),
    (["--task", "sort", "--threads", "0"], "threads"),
    (["--task", "sort", "--checkpoint", "{tmp}/missing"], "checkpoint"),
    (["--task", "sort", "--checkpoint", "{tmp}/junk"], "checkpoint"),
    (["--task", "sort", "--checkpoint", "{tmp}/vit"], "checkpoint"),
    (["--task", "sort", "--checkpoint", "{tmp}/config_only"], "checkpoint"),
    (["--task", "markov", "--checkpoint", "{tmp}/sort_lm"], "checkpoint"),
])
def test_cli_refuses_bad_input_before_any_work(argv, field, tmp_path, capsys, cache):
    from transformers import GPT2Config, ViTConfig

    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("not a model")
    ViTConfig().save_pretrained(tmp_path / "vit")
    GPT2Config(vocab_size=17).save_pretrained(tmp_path / "config_only")
    save_model(build_model("nano", SortTask().vocab_size), tmp_path / "sort_lm")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["sft", *argv, "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and (captured.err.startswith(f"llmtrack: error: {field}:")
                                   or captured.err.startswith(f"llmtrack: error: --{field}:")), captured.err
    assert not cache.exists()  # nothing was pre-trained or written
    kwargs = {a.lstrip("-"): b for a, b in zip(argv[::2], argv[1::2])}
    with pytest.raises(ValueError, match=f"^{field}:"):
        SFTRunConfig(**kwargs)


def test_exposure_bias_experiment_reports_and_plots(tiny_cli, tmp_path):
    from llmtrack.experiments.exposure_bias import ExposureBiasConfig, run_exposure_bias
    from llmtrack.plots import exposure_bias_figure

    with pytest.raises(ValueError, match="size"):
        ExposureBiasConfig(size="huge")
    result = run_exposure_bias(ExposureBiasConfig(n_seeds=1, n_eval=64))
    s = result.summary()
    assert s["labelled_sequences"] == {"sort": 40, "markov": 40}
    for model in ("base", "bc", "dagger"):
        assert 0 <= s["sort"][model]["expert_accuracy"] <= 1 and s["sort"][model]["mistakes_by_length"]
        assert s["markov"][model]["forward_kl"] > 0 and s["markov"][model]["reverse_kl"] > 0
    assert "sort" in result.table() and "markov" in result.table()
    exposure_bias_figure(result).savefig(tmp_path / "figure.png")
    assert (tmp_path / "figure.png").stat().st_size > 10_000


def test_monte_carlo_kl_matches_the_exact_kl_and_knows_when_it_is_infinite():
    """minirl.estimators.monte_carlo_kl on two categorical distributions over a few outcomes: the estimate
    agrees with the exact KL within 4 standard errors, and one sample of zero probability under q makes it +inf."""
    from minirl.estimators import monte_carlo_kl

    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    q = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    exact = float((p * (p / q).log()).sum())
    y = torch.multinomial(p, 20_000, replacement=True, generator=torch.Generator().manual_seed(0))
    est = monte_carlo_kl(p.log()[y], q.log()[y])
    assert abs(est.value - exact) < 4 * est.se and est.off_support == 0 and est.n == 20_000
    q0 = torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64)
    inf = monte_carlo_kl(p.log()[y], q0.log()[y])
    assert inf.value == math.inf and abs(inf.off_support - float((y == 0).double().mean())) < 1e-12
