"""Bad input through the Python API is refused before any work (issue 12, the API half).

Every case: a ValueError whose message starts with the field's name (``"n_updates: ..."``), and,
where the call could have trained, sampled or stepped something, proof that nothing happened
(parameters, generators and envs untouched). One parametrized test per hole of the probe:

    1 masks that are not exactly 0/1           6 integers that are not integers, seeds, devices
    2 NaN / inf in a batch, labels, PPO         7 horizon=True and other non-integer MDP fields
    3 models with different vocabularies meet   8 a policy with more actions than the env
    4 label strengths outside [0, 1]            9 a reference sharing a slice of the policy's storage
    5 out-of-range ids in a reward table        + upper bounds where a typo would run forever
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from minirl.algos.adversarial import AdversarialConfig
from minirl.algos.bc import BCConfig, train_bc
from minirl.algos.best_of_n import best_of_n_distribution
from minirl.algos.dagger import DAggerConfig, train_dagger
from minirl.algos.dpo import DPOConfig, train_dpo
from minirl.algos.exact_imitation import ExactImitationConfig
from minirl.algos.ppo import PPO, PPOConfig, sequence_advantages
from minirl.algos.reward_model import RewardModelConfig, TabularRewardModel, train_reward_model
from minirl.checks import MAX_SEEDS
from minirl.data import Preferences, TrajectoryBatch
from minirl.envs import TabularVectorEnv, tightrope
from minirl.mdp import TabularMDP, soft_value_iteration, state_distributions, value_iteration
from minirl.policies import (GaussianPolicy, MixturePolicy, MLPPolicy, TabularPolicy, TabularValue,
                             check_not_shared)
from minirl.rollout import collect_fragments, rollout

# -- tiny inputs -------------------------------------------------------------------------------------


def _batch(**changes) -> dict:
    """Fields of a valid 2 x 3 tabular batch (state ids < 3, actions < 2), with ``changes``."""
    fields = dict(obs=torch.tensor([[0, 1, 2], [2, 1, 0]]), actions=torch.tensor([[0, 1, 0], [1, 1, 0]]),
                  mask=torch.tensor([[True, True, True], [True, True, False]]))
    return {**fields, **changes}


def _prefs(strength=None) -> Preferences:
    chosen = TrajectoryBatch(**_batch())
    rejected = TrajectoryBatch(**_batch(actions=torch.tensor([[1, 0, 1], [0, 0, 1]])))
    return Preferences(chosen, rejected, strength)


def _params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _unchanged(module: nn.Module, before: list[torch.Tensor]) -> bool:
    return all(torch.equal(a, b) for a, b in zip(module.parameters(), before))


def _mdp(**changes) -> dict:
    P = np.zeros((2, 2, 2))
    P[:, 0, 0] = P[:, 1, 1] = 1.0
    return {**dict(P=P, R=np.array([[1.0, 0.0], [0.0, 1.0]]), rho0=np.array([1.0, 0.0]), gamma=0.9), **changes}


def _refused(call, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}:"):
        call()


# -- 1. masks are exactly 0/1 ------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0.5, 2.0, -1.0])
def test_1_mask_that_is_not_0_or_1_is_refused(value):
    mask = torch.ones(2, 3)
    mask[0, 1] = value  # before the fix: bool() read it as True
    _refused(lambda: TrajectoryBatch(**_batch(mask=mask)), "mask")


# -- 2. NaN / inf at the batch boundary -------------------------------------------------------------

NAN_BATCHES = {
    "rewards nan": dict(rewards=torch.tensor([[0.0, float("nan"), 0.0], [0.0, 0.0, 0.0]])),
    "rewards inf": dict(rewards=torch.tensor([[0.0, 0.0, float("inf")], [0.0, 0.0, 0.0]])),
    "obs nan": dict(obs=torch.tensor([[[0.0], [float("nan")], [0.0]], [[0.0], [0.0], [0.0]]])),
    "log_probs nan": dict(log_probs=torch.full((2, 3), float("nan"))),
    "values -inf": dict(values=torch.tensor([[0.0, -float("inf"), 0.0], [0.0, 0.0, 0.0]])),
    "actions nan": dict(actions=torch.tensor([[[0.0], [float("nan")], [0.0]], [[0.0], [0.0], [0.0]]])),
}


@pytest.mark.parametrize("case", list(NAN_BATCHES))
def test_2_nan_or_inf_in_a_batch_is_refused(case):
    changes = NAN_BATCHES[case]
    _refused(lambda: TrajectoryBatch(**_batch(**changes)), next(iter(changes)))


def _ppo_batch(**fields) -> TrajectoryBatch:
    return TrajectoryBatch(**_batch(), rewards=torch.zeros(2, 3), log_probs=torch.full((2, 3), -0.69),
                           values=torch.zeros(2, 3), **{"next_values": torch.zeros(2, 3), **fields})


def test_2_nan_rewards_never_reach_a_ppo_update():
    """The probe: a reward_fn returning NaN made PPO's policy NaN. Now the batch refuses it; nothing moves."""
    policy, value_fn = TabularPolicy(3, 2), TabularValue(3)
    before = _params(policy) + _params(value_fn)
    ppo = PPO(policy, value_fn, PPOConfig(n_epochs=1, n_minibatches=1))
    nan_reward = lambda batch: torch.full(batch.mask.shape, float("nan"))  # noqa: E731
    _refused(lambda: ppo.train(lambda: _ppo_batch(), 6, reward_fn=nan_reward), "rewards")
    assert _unchanged(policy, before[:1]) and _unchanged(value_fn, before[1:])


def test_2_nan_next_values_are_refused_by_ppo_update():
    policy, value_fn = TabularPolicy(3, 2), TabularValue(3)
    before = _params(policy)
    ppo = PPO(policy, value_fn, PPOConfig(n_epochs=1, n_minibatches=1))
    _refused(lambda: ppo.update(_ppo_batch(next_values=torch.full((2, 3), float("nan")))), "next_values")
    assert _unchanged(policy, before)


@pytest.mark.parametrize("strength", [float("nan"), float("inf")])
def test_2_nan_label_strength_is_refused(strength):
    _refused(lambda: _prefs(torch.tensor([0.5, strength])), "strength")


# -- 3. vocabularies compared where two models meet ---------------------------------------------------

@pytest.fixture(scope="module")
def lms():
    """Two nano LMs: vocabulary 17 (the sort task's) and 25."""
    from llmtrack.models import build_model
    from llmtrack.policy import LMPolicy, frozen_reference

    torch.manual_seed(0)
    return {17: LMPolicy(build_model("nano", 17, seed=0), device="cpu"),
            25: frozen_reference(LMPolicy(build_model("nano", 25, seed=1), device="cpu"))}


@pytest.fixture(scope="module")
def sort_task():
    from llmtrack.tasks import SortTask

    return SortTask(min_len=2, max_len=3)


def test_3_dpo_refuses_a_reference_with_another_vocabulary():
    policy, reference = TabularPolicy(3, 17), TabularPolicy(3, 25)  # the probe's 17 vs 25
    before = _params(policy)
    _refused(lambda: train_dpo(policy, reference, _prefs(), DPOConfig(n_updates=1)), "reference")
    assert _unchanged(policy, before)


def test_3_dpo_on_language_models_refuses_another_vocabulary(lms, sort_task):
    prefs = sort_task.preferences(2, seed=0)
    before = _params(lms[17])
    _refused(lambda: train_dpo(lms[17], lms[25], prefs, DPOConfig(n_updates=1)), "reference")
    assert _unchanged(lms[17], before)


def test_3_rlhf_refuses_a_reference_with_another_vocabulary(lms, sort_task):
    from llmtrack.pipelines.rlhf import RLHFConfig, train_rlhf

    before = _params(lms[17])
    _refused(lambda: train_rlhf(lms[17], sort_task, None, RLHFConfig(total_tokens=8, n_prompts=2),
                                reference=lms[25]), "reference")
    assert _unchanged(lms[17], before) and lms[17].value_head is None  # not even a value head was added


def test_3_rlhf_refuses_a_reward_model_with_another_vocabulary(lms, sort_task):
    from llmtrack.models import build_model
    from llmtrack.pipelines.rlhf import KLPenalisedReward, RLHFConfig, train_rlhf
    from llmtrack.reward_model import LMRewardModel

    scorer = LMRewardModel(build_model("nano", 25, seed=2), device="cpu")
    before = _params(lms[17])
    _refused(lambda: train_rlhf(lms[17], sort_task, scorer, RLHFConfig(total_tokens=8, n_prompts=2)), "scorer")
    assert _unchanged(lms[17], before) and lms[17].value_head is None
    _refused(lambda: KLPenalisedReward(scorer, lms[17], beta=0.1), "scorer")


def test_3_dagger_refuses_a_teacher_with_another_action_count():
    calls = []
    policy, expert = TabularPolicy(3, 4), TabularPolicy(3, 6)
    before = _params(policy)
    _refused(lambda: train_dagger(policy, expert, lambda *args: calls.append(args)), "expert")
    assert calls == [] and _unchanged(policy, before)  # no roll-out was collected


def test_3_a_task_refuses_a_policy_with_another_vocabulary(lms, sort_task):
    from llmtrack.pipelines.best_of_n import generate_best_of_n
    from llmtrack.tasks.answer_key import sampled_kl
    from llmtrack.pipelines.evaluate import EvalConfig, evaluate

    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    _refused(lambda: sort_task.rollout(lms[25], 2), "policy")
    _refused(lambda: generate_best_of_n(lms[25], sort_task, 2, n=2, generator=generator), "policy")
    assert torch.equal(generator.get_state(), state)  # nothing was sampled
    _refused(lambda: evaluate(lms[25], sort_task, EvalConfig(n_sequences=2, greedy=False)), "policy")
    samples = sort_task.rollout(lms[17], 2, seed=0)
    _refused(lambda: sampled_kl(lms[17], lms[25], samples), "other")


# -- 4. label strengths are probabilities --------------------------------------------------------------

@pytest.mark.parametrize("strength", [3.0, -2.0])
def test_4_label_strength_outside_0_1_is_refused_for_every_trainer(strength):
    _refused(lambda: _prefs(torch.tensor([0.5, strength])), "strength")  # train_dpo refused it; the RM took it
    _refused(lambda: dataclasses.replace(_prefs(), strength=torch.tensor([strength, 1.0])), "strength")


# -- 5. a reward table refuses ids out of range ---------------------------------------------------------

@pytest.mark.parametrize("changes, field", [
    (dict(obs=torch.tensor([[0, 1, 3], [2, 1, 0]])), "obs"),  # state 3 of 3: it was clamped to state 2
    (dict(obs=torch.tensor([[0, -1, 2], [2, 1, 0]])), "obs"),
    (dict(actions=torch.tensor([[0, 2, 0], [1, 1, 0]])), "actions"),
], ids=["obs too large", "obs negative", "action too large"])
def test_5_reward_table_refuses_out_of_range_ids(changes, field):
    model = TabularRewardModel(3, 2)
    _refused(lambda: model.score(TrajectoryBatch(**_batch(**changes))), field)
    chosen = TrajectoryBatch(**_batch(**changes))
    prefs = Preferences(chosen, TrajectoryBatch(**_batch(actions=torch.tensor([[1, 0, 1], [0, 0, 1]]))))
    before = _params(model)
    _refused(lambda: train_reward_model(model, prefs, RewardModelConfig(n_updates=1)), field)
    assert _unchanged(model, before)


# -- 6. integers are integers, seeds are seeds, devices exist ------------------------------------------

def _lm_config_cases():
    from minirl.algos.raft import RAFTConfig
    from llmtrack.experiments.annotation import AnnotationConfig
    from llmtrack.experiments.exposure_bias import ExposureBiasConfig
    from llmtrack.experiments.reward_noise import RewardNoiseConfig
    from minirl.algos.ppo import PPOConfig
    from llmtrack.pipelines.afd import AfDConfig, afd_adversarial
    from llmtrack.pipelines.alignment import PipelineConfig
    from llmtrack.pipelines.evaluate import EvalConfig
    from llmtrack.pipelines.imitation import DistillConfig, SFTConfig, on_policy_dagger
    from llmtrack.pipelines.recipe import SFTRunConfig
    from llmtrack.pipelines.rlhf import RLHFConfig

    return {
        "EvalConfig n_sequences True": (lambda: EvalConfig(n_sequences=True), "n_sequences"),
        "EvalConfig seed -1": (lambda: EvalConfig(seed=-1), "seed"),
        "SFTConfig n_demos 2.5": (lambda: SFTConfig(n_demos=2.5), "n_demos"),
        "DistillConfig n_iterations '4'": (lambda: DistillConfig(dagger=on_policy_dagger(n_iterations="4")),
                                           "n_iterations"),
        "DistillConfig beta0 2": (lambda: DistillConfig(dagger=on_policy_dagger(beta0=2)), "beta0"),
        "DistillConfig dagger dict": (lambda: DistillConfig(dagger={"n_iterations": 4}), "dagger"),
        "DistillConfig n_demos -1": (lambda: DistillConfig(n_demos=-1), "n_demos"),
        "RLHFConfig total_tokens 1e4": (lambda: RLHFConfig(total_tokens=1e4), "total_tokens"),
        "RLHFConfig seed 2**32": (lambda: RLHFConfig(seed=2**32), "seed"),
        "AfDConfig n_prompts 64.0": (lambda: AfDConfig(n_prompts=64.0), "n_prompts"),
        "AfDConfig adversarial lr inf": (lambda: AfDConfig(adversarial=afd_adversarial(lr=float("inf"))), "lr"),
        "AfDConfig adversarial grpo": (lambda: AfDConfig(adversarial=afd_adversarial(ppo=PPOConfig(advantage="grpo"))),
                                       "adversarial"),
        "RAFTConfig n True": (lambda: RAFTConfig(n=True), "n"),
        "RAFTConfig seed -1": (lambda: RAFTConfig(seed=-1), "seed"),
        "RewardNoiseConfig n_pairs 400.0": (lambda: RewardNoiseConfig(n_pairs=400.0), "n_pairs"),
        "RewardNoiseConfig seeds (0, 1.0)": (lambda: RewardNoiseConfig(seeds=(0, 1.0)), "seeds"),
        "RewardNoiseConfig 101 seeds": (lambda: RewardNoiseConfig(seeds=tuple(range(MAX_SEEDS + 1))), "seeds"),
        "AnnotationConfig bon_prompts 400.0": (lambda: AnnotationConfig(bon_prompts=400.0), "bon_prompts"),
        "ExposureBiasConfig n_seeds 1000": (lambda: ExposureBiasConfig(n_seeds=1000), "n_seeds"),
        "ExposureBiasConfig n_seeds 2.0": (lambda: ExposureBiasConfig(n_seeds=2.0), "n_seeds"),
        "PipelineConfig rm_updates 1.5": (lambda: PipelineConfig(rm_updates=1.5), "rm_updates"),
        "PipelineConfig n_eval True": (lambda: PipelineConfig(n_eval=True), "n_eval"),
        "SFTRunConfig updates '600'": (lambda: SFTRunConfig(updates="600"), "updates"),
        "SFTRunConfig seed 2**32": (lambda: SFTRunConfig(seed=2**32), "seed"),
        "SFTRunConfig threads 100000": (lambda: SFTRunConfig(threads=100_000), "threads"),
        "SFTRunConfig device tpu": (lambda: SFTRunConfig(device="tpu"), "device"),
        "SFTRunConfig device cuda:99": (lambda: SFTRunConfig(device="cuda:99"), "device"),
        "PipelineConfig device tpu": (lambda: PipelineConfig(device="tpu"), "device"),
        "ExposureBiasConfig device tpu": (lambda: ExposureBiasConfig(device="tpu"), "device"),
        "RewardNoiseConfig device tpu": (lambda: RewardNoiseConfig(device="tpu"), "device"),
    }


MINIRL_CONFIGS = {
    "BCConfig n_updates 2.5": (lambda: BCConfig(n_updates=2.5), "n_updates"),
    "BCConfig n_updates '10'": (lambda: BCConfig(n_updates="10"), "n_updates"),
    "BCConfig n_updates True": (lambda: BCConfig(n_updates=True), "n_updates"),
    "BCConfig batch_size 1.5": (lambda: BCConfig(batch_size=1.5), "batch_size"),
    "BCConfig lr True": (lambda: BCConfig(lr=True), "lr"),
    "BCConfig seed 2**32": (lambda: BCConfig(seed=2**32), "seed"),
    "DAggerConfig n_iterations True": (lambda: DAggerConfig(n_iterations=True), "n_iterations"),
    "DAggerConfig episodes 2.0": (lambda: DAggerConfig(episodes_per_iteration=2.0), "episodes_per_iteration"),
    "DAggerConfig beta0 nan": (lambda: DAggerConfig(beta0=float("nan")), "beta0"),
    "DPOConfig n_updates 2.5": (lambda: DPOConfig(n_updates=2.5), "n_updates"),
    "DPOConfig beta '0.1'": (lambda: DPOConfig(beta="0.1"), "beta"),
    "DPOConfig seed -1": (lambda: DPOConfig(seed=-1), "seed"),
    "RewardModelConfig n_updates '10'": (lambda: RewardModelConfig(n_updates="10"), "n_updates"),
    "RewardModelConfig batch_size True": (lambda: RewardModelConfig(batch_size=True), "batch_size"),
    "RewardModelConfig seed 1.5": (lambda: RewardModelConfig(seed=1.5), "seed"),
    "PPOConfig n_epochs 2.0": (lambda: PPOConfig(n_epochs=2.0), "n_epochs"),
    "PPOConfig n_minibatches True": (lambda: PPOConfig(n_minibatches=True), "n_minibatches"),
    "PPOConfig gamma nan": (lambda: PPOConfig(gamma=float("nan")), "gamma"),
    "PPOConfig seed -1": (lambda: PPOConfig(seed=-1), "seed"),
    "AdversarialConfig disc_epochs 1.5": (lambda: AdversarialConfig(disc_epochs=1.5), "disc_epochs"),
    "AdversarialConfig hidden (64, 2.5)": (lambda: AdversarialConfig(hidden=(64, 2.5)), "hidden"),
    "AdversarialConfig seed True": (lambda: AdversarialConfig(seed=True), "seed"),
    "ExactImitationConfig steps True": (lambda: ExactImitationConfig(steps=True), "steps"),
    "TabularPolicy n_actions True": (lambda: TabularPolicy(3, True), "n_actions"),
    "MLPPolicy hidden (2.5,)": (lambda: MLPPolicy(4, 2, hidden=(2.5,)), "hidden"),
    "sequence_advantages group_size 2.0": (
        lambda: sequence_advantages(torch.zeros(4, 2), torch.ones(4, 2, dtype=torch.bool), 2.0, "rloo"), "group_size"),
    "best_of_n n 2.5": (lambda: best_of_n_distribution(torch.tensor([0.5, 0.5]), torch.tensor([0.0, 1.0]), 2.5), "n"),
}


@pytest.mark.parametrize("case", list(MINIRL_CONFIGS))
def test_6_minirl_integers_seeds_and_numbers(case):
    call, field = MINIRL_CONFIGS[case]
    _refused(call, field)


@pytest.mark.parametrize("case", list(_lm_config_cases()))
def test_6_llmtrack_integers_seeds_and_devices(case):
    call, field = _lm_config_cases()[case]
    _refused(call, field)


def test_6_language_models_refuse_a_device_this_machine_lacks():
    from llmtrack.models import build_model, resolve_device
    from llmtrack.policy import LMPolicy
    from llmtrack.reward_model import LMRewardModel

    model = build_model("nano", 17, seed=0)
    _refused(lambda: LMPolicy(model, device="tpu"), "device")
    _refused(lambda: LMRewardModel(model, device="tpu"), "device")
    _refused(lambda: resolve_device("tpu"), "device")
    assert resolve_device("cpu") == torch.device("cpu")  # still works for the good case
    assert next(model.parameters()).device == torch.device("cpu")  # the model was not moved


def test_6_a_training_call_with_a_bad_count_does_nothing():
    policy = TabularPolicy(3, 2)
    before = _params(policy)
    with pytest.raises(ValueError, match=r"^n_updates: must be an integer >= 1, got 2\.5 \(float\)"):
        train_bc(policy, TrajectoryBatch(**_batch()), BCConfig(n_updates=2.5))
    assert _unchanged(policy, before)


@pytest.mark.parametrize("call, field", [
    (lambda: __import__("llmtrack.tasks", fromlist=["MarkovTask"]).MarkovTask(seed=-1), "seed"),
    (lambda: __import__("llmtrack.tasks", fromlist=["SortTask"]).SortTask(base_skill=True), "base_skill"),
    (lambda: __import__("llmtrack.tasks", fromlist=["SortTask"]).SortTask().preferences(2, noise=True), "noise"),
    (lambda: __import__("llmtrack.tasks", fromlist=["SortTask"]).SortTask().rollout(
        __import__("llmtrack.tasks", fromlist=["SortTask"]).SortTask().expert, 2, seed=2**32), "seed"),
], ids=["markov seed -1", "sort base_skill True", "preferences noise True", "rollout seed 2**32"])
def test_6_tasks_take_real_numbers_and_seeds(call, field):
    _refused(call, field)


# -- 7. MDP fields: horizon=True is not horizon 1 ---------------------------------------------------------

@pytest.mark.parametrize("call, field", [
    (lambda: TabularMDP(**_mdp(horizon=True)), "horizon"),
    (lambda: TabularMDP(**_mdp(horizon=3.0)), "horizon"),
    (lambda: TabularMDP(**_mdp(horizon="3")), "horizon"),
    (lambda: TabularMDP(**_mdp(horizon=np.bool_(True))), "horizon"),
    (lambda: TabularMDP(**_mdp(gamma=True)), "gamma"),
    (lambda: soft_value_iteration(TabularMDP(**_mdp()), 1.0, horizon=True), "horizon"),
    (lambda: state_distributions(TabularMDP(**_mdp()), np.full((2, 2), 0.5), 2.0), "horizon"),
    (lambda: value_iteration(TabularMDP(**_mdp()), max_iter=2.5), "max_iter"),
], ids=["horizon True", "horizon 3.0", "horizon '3'", "horizon np.bool_", "gamma True", "soft VI horizon True",
        "state_distributions horizon 2.0", "value_iteration max_iter 2.5"])
def test_7_mdp_integer_fields_refuse_bools_and_floats(call, field):
    _refused(call, field)


# -- 8. the policy's action count matches the env's ----------------------------------------------------------

@pytest.fixture()
def four_action_env():
    mdp = tightrope(length=3, depth=2, n_actions=4, horizon=5)
    return mdp, TabularVectorEnv(mdp, 2)


@pytest.mark.parametrize("make_policy", [
    lambda S: TabularPolicy(S, 6),  # the probe: 6 actions in a 4-action env
    lambda S: TabularPolicy(S, 3),
    lambda S: MixturePolicy(TabularPolicy(S, 4), TabularPolicy(S, 6), 0.5),  # DAgger's roll-in
    lambda S: GaussianPolicy(1, 1),
], ids=["6 actions", "3 actions", "mixture with 6", "gaussian"])
def test_8_rollout_refuses_a_policy_with_another_action_count(four_action_env, make_policy):
    mdp, envs = four_action_env
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    _refused(lambda: rollout(envs, make_policy(mdp.n_states), 2, seed=0, generator=generator), "policy")
    assert torch.equal(generator.get_state(), state)  # not a single action was sampled


def test_8_ppo_collection_refuses_a_policy_with_another_action_count(four_action_env):
    mdp, envs = four_action_env
    policy, value_fn = TabularPolicy(mdp.n_states, 6), TabularValue(mdp.n_states)
    _refused(lambda: collect_fragments(envs, policy, value_fn, 4, seed=0), "policy")
    _refused(lambda: PPO(policy, value_fn, PPOConfig(n_steps=4)).collect(envs), "policy")


# -- 9. a reference sharing storage with the policy ---------------------------------------------------------

def _sharing_reference(policy: TabularPolicy, how: str) -> TabularPolicy:
    reference = TabularPolicy(1, policy.n_actions)
    theta = policy.theta.detach()
    part = {"row slice": theta[1:2], "column slice": theta[:, 1:], "transpose": theta.t()[:1]}[how]
    reference.theta = nn.Parameter(part, requires_grad=False)  # a view: starts elsewhere, same storage
    return reference


@pytest.mark.parametrize("how", ["row slice", "column slice", "transpose"])
def test_9_a_reference_that_is_a_view_of_the_policy_is_refused(how):
    policy = TabularPolicy(3, 3)
    reference = _sharing_reference(policy, how)
    assert reference.theta.data_ptr() != policy.theta.data_ptr() or how == "transpose"
    _refused(lambda: check_not_shared(policy, reference), "reference")


def test_9_dpo_refuses_a_sliced_reference_before_any_update():
    policy = TabularPolicy(4, 2, init_scale=1.0, generator=torch.Generator().manual_seed(0))
    reference = TabularPolicy(3, 2)
    reference.theta = nn.Parameter(policy.theta.detach()[1:], requires_grad=False)  # rows 1-3 of the policy's table
    assert reference.theta.data_ptr() != policy.theta.data_ptr()  # what the old check compared
    before = _params(policy)
    _refused(lambda: train_dpo(policy, reference, _prefs(), DPOConfig(n_updates=1)), "reference")
    assert _unchanged(policy, before)


def test_9_separate_copies_still_pass():
    policy = TabularPolicy(3, 3)
    check_not_shared(policy, TabularPolicy.from_table(np.full((3, 3), 1 / 3)))
