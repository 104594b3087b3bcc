"""Coached labels (minirl.algos.coaching) against an exact expert Q on a hand-built MDP, a per-state
reference of the rule, DAgger, and sort's regret against brute-force expert completions."""

import itertools

import numpy as np
import pytest
import torch

from minirl.algos import BCConfig, DAggerConfig, train_dagger
from minirl.algos.coaching import Coach, CoachConfig, coach_labels
from minirl.data import TrajectoryBatch
from minirl.envs import TabularVectorEnv, tightrope
from minirl.experts import optimal_tabular_expert
from minirl.mdp import TabularMDP, policy_evaluation
from minirl.policies import TabularPolicy
from minirl.rollout import rollout
from llmtrack.rollout import generate
from llmtrack.tasks import make_task
from llmtrack.policy import FILLERS
from llmtrack.tasks.sort import DIGIT0, EQUALS, SORT
from llmtrack.tokenizer import BOS, EOS

GAMMA = 0.9


def hand_mdp() -> TabularMDP:
    """s0: a0, a1 -> s1 with reward 1 (equally good), a2 -> the trap s2. s1: a0 / a1 / a2 -> s3 with
    reward 1 / 0 / 0.5. s2 (trap) and s3 absorb with reward 0."""
    S, A = 4, 3
    P, R = np.zeros((S, A, S)), np.zeros((S, A))
    P[0, 0, 1] = P[0, 1, 1] = P[0, 2, 2] = 1.0
    R[0, 0] = R[0, 1] = 1.0
    P[1, :, 3] = 1.0
    R[1] = [1.0, 0.0, 0.5]
    P[2, :, 2] = P[3, :, 3] = 1.0
    return TabularMDP(P=P, R=R, rho0=np.eye(S)[0], gamma=GAMMA)


def expert_regret(mdp: TabularMDP, expert_table: np.ndarray) -> np.ndarray:
    """Q^E(s, a_E) - Q^E(s, a), (S, A), with Q^E = R + gamma P V^E from one exact policy evaluation."""
    Q = mdp.R + mdp.gamma * mdp.expected_next(policy_evaluation(mdp, expert_table))
    a_e = expert_table.argmax(1)
    return Q[np.arange(mdp.n_states), a_e][:, None] - Q


STUDENT = np.array([[0.05, 0.35, 0.60],   # s0: likes the trap, then a1 (as good as the expert's a0)
                    [0.10, 0.30, 0.60],   # s1: likes a2 (regret 0.5)
                    [0.30, 0.60, 0.10],   # s2: every action equal (regret 0)
                    [0.50, 0.25, 0.25]])  # s3: already likes the expert's a0


@pytest.fixture(scope="module")
def hand():
    mdp = hand_mdp()
    expert_table = np.tile([1.0, 0.0, 0.0], (4, 1))
    regret = expert_regret(mdp, expert_table)
    expert, student = TabularPolicy.from_table(expert_table), TabularPolicy.from_table(STUDENT)
    batch = TrajectoryBatch(obs=torch.tensor([[0, 1, 2, 3]]), actions=torch.zeros(1, 4, dtype=torch.long),
                            mask=torch.ones(1, 4, dtype=torch.bool))
    regret_fn = lambda b: torch.as_tensor(regret)[b.obs]  # noqa: E731
    return mdp, regret, expert, student, batch, regret_fn


def test_exact_expert_regret_on_the_hand_built_mdp(hand):
    _, regret, *_ = hand
    # V^E(s1) = 1, V^E(s0) = 1 + gamma; the trap and the end are worth 0
    expected = np.array([[0.0, 0.0, 1.0 + GAMMA], [0.0, 1.0, 0.5], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(regret, expected, atol=1e-12)


@pytest.mark.parametrize("threshold,tolerance,labels", [
    (0.0, 0.0, [0, 0, 0, 0]),     # threshold 0: the expert's labels everywhere
    (0.0, 5.0, [0, 0, 0, 0]),
    (0.25, 0.0, [1, 0, 0, 0]),    # s0: a1 loses nothing and the student prefers it; s1: only a0 recoverable
    (0.35, 0.0, [1, 0, 1, 0]),    # s2: pi(a_E) = 0.3 < 0.35 and nothing to lose: the student's favourite
    (0.35, 0.5, [1, 2, 1, 0]),    # s1: a2 (regret 0.5) becomes recoverable
    (0.35, 1.0, [1, 2, 1, 0]),    # s0: the trap (regret 1.9) is still not
    (0.35, 2.0, [2, 2, 1, 0]),    # ... until the tolerance covers it
    (1.0, 0.0, [1, 0, 1, 0]),     # s3: the student's favourite is the expert's action anyway
])
def test_coach_labels_by_hand(hand, threshold, tolerance, labels):
    *_, expert, student, batch, regret_fn = hand
    coach = Coach(student, expert, regret_fn, CoachConfig(threshold=threshold, tolerance=tolerance))
    assert coach.label(batch).tolist() == [labels]
    changed = sum(label != 0 for label in labels)
    assert coach.last_stats["coach/relabelled"] == changed / 4 and (coach.labelled, coach.relabelled) == (4, changed)


def reference_labels(logp, a_e, regret, mask, threshold, tolerance):
    """The rule, state by state, as written in the module docstring."""
    B, T, A = logp.shape
    out = a_e.clone()
    for b, t in itertools.product(range(B), range(T)):
        if not mask[b, t] or logp[b, t, a_e[b, t]].exp() >= threshold:
            continue
        recoverable = [a for a in range(A) if regret[b, t, a] <= tolerance or a == a_e[b, t]]
        out[b, t] = max(recoverable, key=lambda a: (logp[b, t, a].item(), -a))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_labels_match_the_rule_state_by_state(seed):
    g = torch.Generator().manual_seed(seed)
    B, T, A = 6, 7, 5
    logp = torch.log_softmax(3 * torch.randn(B, T, A, generator=g, dtype=torch.float64), -1)
    a_e = torch.randint(A, (B, T), generator=g)
    regret = torch.rand(B, T, A, generator=g, dtype=torch.float64).round(decimals=1)
    regret.scatter_(-1, a_e[..., None], 0.0)
    mask = torch.rand(B, T, generator=g) < 0.8
    for threshold, tolerance in ((0.0, 0.0), (0.2, 0.0), (0.2, 0.3), (0.7, 0.5), (1.0, 1.0)):
        labels = coach_labels(logp, a_e, regret, mask, CoachConfig(threshold=threshold, tolerance=tolerance))
        assert torch.equal(labels, reference_labels(logp, a_e, regret, mask, threshold, tolerance))
        chosen_regret = regret.gather(-1, labels[..., None])[..., 0]
        assert (chosen_regret[mask] <= tolerance).all()  # never an unrecoverable label
        if threshold == 0.0:
            assert torch.equal(labels, a_e)
    same = [coach_labels(logp, a_e, regret, mask, CoachConfig(threshold=t, tolerance=0.3)) for t in (0.51, 0.8, 1.0)]
    assert torch.equal(same[0], same[1]) and torch.equal(same[0], same[2])  # above 1/2 the expert is the favourite


def test_threshold_zero_is_dagger_with_the_experts_labels():
    mdp = tightrope(horizon=20)
    expert = optimal_tabular_expert(mdp)
    envs = TabularVectorEnv(mdp, num_envs=16, hide_reward=True)
    collect = lambda pi, n, seed: rollout(envs, pi, n, seed=seed)  # noqa: E731
    regret = torch.as_tensor(expert_regret(mdp, expert.table()))
    config = DAggerConfig(n_iterations=3, episodes_per_iteration=16, beta0=0.0, bc=BCConfig(n_updates=20, lr=1.0))
    runs = []
    for coached in (False, True):
        learner = TabularPolicy(mdp.n_states, mdp.n_actions)
        labeller = Coach(learner, expert, lambda b: regret[b.obs], CoachConfig(threshold=0.0)) if coached else expert
        runs.append(train_dagger(learner, labeller, collect, config))
    (d0, h0), (d1, h1) = runs
    assert torch.equal(d0.actions, d1.actions) and torch.equal(d0.obs, d1.obs) and h0 == h1


def test_where_every_other_action_loses_the_coach_keeps_the_experts_labels():
    """Tightrope: off the footing you fall, in the pit only the climb gets you out, so every action but
    the expert's has positive regret; even at threshold 1 the coach teaches the expert's action."""
    mdp = tightrope(horizon=20)
    expert = optimal_tabular_expert(mdp)
    envs = TabularVectorEnv(mdp, num_envs=16, hide_reward=True)
    regret = torch.as_tensor(expert_regret(mdp, expert.table()))
    a_e = torch.as_tensor(expert.table().argmax(1))
    others = torch.ones_like(regret, dtype=torch.bool).scatter_(1, a_e[:, None], False)
    assert (regret[others] > 0).all()
    learner = TabularPolicy(mdp.n_states, mdp.n_actions, init_scale=1.0, generator=torch.Generator().manual_seed(0))
    coach = Coach(learner, expert, lambda b: regret[b.obs], CoachConfig(threshold=1.0, tolerance=0.0))
    dataset, _ = train_dagger(learner, coach, lambda pi, n, seed: rollout(envs, pi, n, seed=seed),
                              DAggerConfig(n_iterations=2, episodes_per_iteration=16, beta0=0.0,
                                           bc=BCConfig(n_updates=20, lr=1.0)))
    states, labels = dataset.obs[dataset.mask], dataset.actions[dataset.mask]
    assert torch.equal(labels, a_e[states]) and (states >= 8).any()  # the pit was visited
    assert coach.relabelled == 0 and coach.labelled == dataset.n_steps


def test_bad_input_names_the_field(hand):
    *_, expert, student, batch, regret_fn = hand
    for kwargs, field in (({"threshold": 1.5}, "threshold"), ({"threshold": -0.1}, "threshold"),
                          ({"tolerance": -1.0}, "tolerance"), ({"tolerance": float("inf")}, "tolerance"),
                          ({"threshold": True}, "threshold")):
        with pytest.raises(ValueError, match=f"^{field}:"):
            CoachConfig(**kwargs)
    logp, a_e, mask = torch.zeros(1, 4, 3), torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="^regret:"):
        coach_labels(logp, a_e, torch.zeros(1, 4, 2), mask)
    with pytest.raises(ValueError, match="^regret:.*expert's action"):
        coach_labels(logp, a_e, torch.ones(1, 4, 3), mask)
    with pytest.raises(ValueError, match="^regret:.*finite"):
        coach_labels(logp, a_e, torch.full((1, 4, 3), float("nan")), mask)
    with pytest.raises(ValueError, match="^expert_actions:"):
        coach_labels(logp, a_e + 3, torch.zeros(1, 4, 3), mask)
    with pytest.raises(ValueError, match="^expert_actions:"):
        coach_labels(logp, a_e.float(), torch.zeros(1, 4, 3), mask)
    with pytest.raises(ValueError, match="^mask:"):
        coach_labels(logp, a_e, torch.zeros(1, 4, 3), mask[:, :2])
    with pytest.raises(ValueError, match="^learner_log_probs:"):
        coach_labels(logp[0], a_e, torch.zeros(1, 4, 3), mask)
    with pytest.raises(ValueError, match="^config:"):
        coach_labels(logp, a_e, torch.zeros(1, 4, 3), mask, config={"threshold": 0.5})
    with pytest.raises(ValueError, match="^regret_fn:"):
        Coach(student, expert, "regret")
    with pytest.raises(ValueError, match="^expert:"):
        Coach(TabularPolicy(4, 5), expert, regret_fn)
    with pytest.raises(ValueError, match="^regret_fn:"):
        Coach(student, expert, lambda b: regret_fn(b).numpy()).label(batch)


# -- sort's regret --------------------------------------------------------------------------------

def brute_force_regret(task, batch):
    """gold(y_<t, a*, expert completion) - gold(y_<t, a, expert completion) for every step and token, from
    the expert's own greedy completions and the gold reward as defined (exactly sorted digits, then [EOS],
    within T tokens)."""
    P, T, V = batch.obs.shape[1] - batch.horizon, batch.horizon, task.vocab_size
    out = torch.zeros(batch.batch_size, T, V)
    for b in range(batch.batch_size):
        prompt = [int(x) for x in batch.obs[b, :P] if int(x) not in FILLERS]  # drop the left padding
        digits = sorted(x for x in prompt if DIGIT0 <= x < DIGIT0 + 10)
        gold_response = digits + [EOS]
        for t in range(T):
            if not batch.mask[b, t]:
                continue
            prefix = [int(x) for x in batch.actions[b, :t]]
            golds = []
            for a in range(V):
                response = prefix + [a]
                if a != EOS and len(response) < task.max_new_tokens:
                    rest = generate(task.expert, [prompt + response], task.max_new_tokens - len(response),
                                    deterministic=True)
                    response += [int(x) for x in rest.actions[0][rest.mask[0]]]
                golds.append(float(response == gold_response))
            expert_token = int(task.expert.next_token_log_probs(torch.tensor([prompt + prefix])).argmax())
            out[b, t] = golds[expert_token] - torch.tensor(golds)
    return out


def test_sort_regret_equals_brute_force_expert_completions():
    task = make_task("sort", min_len=1, max_len=4)
    assert task.expert.next_token_log_probs(torch.tensor([[BOS, SORT, DIGIT0 + 3, EQUALS]])).argmax() == DIGIT0 + 3
    g = torch.Generator().manual_seed(0)
    prompts = task.sample_prompts(12, g)
    batch = generate(task.base, prompts, task.max_new_tokens, generator=g)  # the sloppy sorter: on and off track
    regret = task.regret(batch)
    assert regret.shape == (12, batch.horizon, task.vocab_size)
    expected = brute_force_regret(task, batch)
    assert torch.equal(regret, expected)
    on_track = regret.sum(-1) > 0
    assert on_track.any() and (~on_track & batch.mask).any()  # both cases were exercised


# -- llmtrack distill's dagger options and the lab's variants ---------------------------------------

from llmtrack.cli import main  # noqa: E402
from llmtrack.experiments.distillation import LabConfig, lab_runs, lab_table, summarize_lab  # noqa: E402
from llmtrack.pipelines.base import BaseModel  # noqa: E402
from llmtrack.pipelines.distillation import DistillRunConfig, run_distill  # noqa: E402


@pytest.mark.parametrize("fields,field", [
    (dict(task="markov", method="dagger", labels="coach"), "labels"),  # markov supplies no regret
    (dict(task="sort", method="dagger", labels="hope"), "labels"),
    (dict(task="sort", method="sft", labels="coach"), "labels"),
    (dict(task="sort", method="kd", cold_start=True), "cold_start"),
    (dict(task="sort", method="dagger", cold_start=1), "cold_start"),
    (dict(task="sort", method="dagger", labels="coach", coach_threshold=1.5), "coach_threshold"),
])
def test_distill_config_refuses_bad_dagger_options(fields, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        DistillRunConfig(**fields)


@pytest.mark.parametrize("argv,option", [
    (["--task", "markov", "--method", "dagger", "--labels", "coach"], "labels"),
    (["--task", "sort", "--method", "gkd", "--cold-start"], "cold_start"),
    (["--task", "sort", "--method", "dagger", "--labels", "coach", "--coach-threshold", "2"], "--coach-threshold")])
def test_distill_cli_refuses_bad_dagger_options_before_any_work(argv, option, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMTRACK_CACHE", str(tmp_path / "cache"))
    assert main(["distill", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"error: {option}:" in err[0], err
    assert not (tmp_path / "cache").exists()


def test_the_json_records_the_dagger_options(tmp_path, monkeypatch):
    tiny = BaseModel("nano", "gpt2", seed=0, n_sequences=64, bc=BCConfig(n_updates=8, batch_size=16, lr=3e-3))
    monkeypatch.setattr(DistillRunConfig, "base_model", lambda self: tiny)
    common = dict(task="sort", labelled=8, rounds=2, updates=4, batch_size=4, n_eval=8)
    coached = run_distill(DistillRunConfig(method="dagger", labels="coach", cold_start=True, coach_threshold=0.3,
                                           **common), cache_dir=str(tmp_path))
    assert (coached["labels"], coached["cold_start"], coached["coach_threshold"]) == ("coach", True, 0.3)
    assert 0.0 <= coached["relabelled"] <= 1.0 and coached["teacher_queries"] == 8
    plain = run_distill(DistillRunConfig(method="dagger", **common), cache_dir=str(tmp_path))
    assert (plain["labels"], plain["cold_start"], plain["coach_threshold"], plain["relabelled"]) == (
        "expert", False, None, None)
    sft = run_distill(DistillRunConfig(method="sft", **common), cache_dir=str(tmp_path))
    assert sft["labels"] is None and sft["cold_start"] is None


def test_the_lab_runs_and_summarises_each_dagger_variant_apart():
    config = LabConfig(task="sort", labelled=(200,), seeds=(0, 1), full_grid_at=(), methods=("sft", "dagger"),
                       dagger_variants=("expert", "cold", "coach", "cold+coach"))
    runs = lab_runs(config)
    assert [(r.method, r.cold_start, r.labels) for r in runs[::2]] == [
        ("sft", False, "expert"), ("dagger", False, "expert"), ("dagger", True, "expert"),
        ("dagger", False, "coach"), ("dagger", True, "coach")]
    rows = [{"task": r.task, "method": r.method, "beta": None, "lmbda": None, "labelled": r.labelled,
             "seed": r.seed, "teacher_queries": 200, "expert_accuracy": 0.9 + 0.01 * i + 0.001 * r.seed,
             "labels": r.labels if r.method == "dagger" else None,
             "cold_start": r.cold_start if r.method == "dagger" else None} for i, r in enumerate(runs)]
    summary = summarize_lab(rows)
    assert [(e["method"], e.get("cold_start"), e.get("labels"), e["seeds"]) for e in summary] == [
        ("sft", None, None, 2), ("dagger", False, "expert", 2), ("dagger", True, "expert", 2),
        ("dagger", False, "coach", 2), ("dagger", True, "coach", 2)]
    assert all(e["beats_sft"] == 1.0 for e in summary[1:])
    table = lab_table(summary)
    assert "| dagger + cold start + coach |" in table and "| dagger + coach |" in table
    for fields, field in ((dict(dagger_variants=("warm",)), "dagger_variants"), (dict(methods=("ppo",)), "methods"),
                          (dict(task="markov", dagger_variants=("coach",)), "labels")):
        with pytest.raises(ValueError, match=f"^{field}:"):
            LabConfig(**{**dict(task="sort", labelled=(200,)), **fields})
