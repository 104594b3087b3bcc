"""Pipelines: thin compositions of minirl's algorithms with llmtrack's world (docs/concepts.md).

    base       pretrain_base: BC on the task's base generator, cached on disk
    imitation  sft (= minirl BC on demonstrations), distill (= minirl DAgger, the task's expert labelling
               the student's own generations: on-policy distillation)
    evaluate   expert accuracy on own generations, mistakes vs length (survey eq. 1), forward / reverse KL
               (minirl.estimators, minirl.mistakes)
    recipe     the ``llmtrack sft`` run: base -> SFT or distillation -> evaluation
    rlhf       PPO-RLHF (= minirl PPO on sampled responses, RM score - beta per-token KL) and the
               Monte-Carlo estimators (REINFORCE / RLOO / GRPO) on the same update
    afd        alignment from demonstrations (= minirl's adversarial trainer, sequence discriminator)
    best_of_n  sampled and exact Best-of-N on a task, the pooled Best-of-N curve, RAFT (= minirl's
               best_of_n estimators and RAFT trainer, the task's prompts as the pool source)
    alignment  the ``llmtrack pipeline`` run: base -> SFT -> RM -> DPO / PPO / GRPO / AfD / best-of-N,
               scored against the Markov task's exact optimum
"""

from llmtrack.pipelines.afd import AfDConfig, train_afd
from llmtrack.pipelines.alignment import PipelineConfig, PipelineResult, run_pipeline
from llmtrack.pipelines.base import cache_root, pretrain_base
from llmtrack.pipelines.best_of_n import (best_of_n_curve, best_of_n_distributions, exact_best_of_n,
                                          generate_best_of_n, sample_pool, train_raft)
from llmtrack.pipelines.evaluate import EvalConfig, evaluate, expert_accuracy, forward_kl, reverse_kl
from llmtrack.pipelines.imitation import DistillConfig, SampledExpert, SFTConfig, distill, sft
from llmtrack.pipelines.recipe import SFTRunConfig, SFTRunResult, run_sft
from llmtrack.pipelines.rlhf import RLHFConfig, train_rlhf

__all__ = ["cache_root", "pretrain_base", "EvalConfig", "evaluate", "expert_accuracy", "forward_kl", "reverse_kl",
           "DistillConfig", "SampledExpert", "SFTConfig", "distill", "sft", "SFTRunConfig", "SFTRunResult", "run_sft",
           "RLHFConfig", "train_rlhf", "AfDConfig", "train_afd", "sample_pool", "generate_best_of_n",
           "best_of_n_distributions", "exact_best_of_n", "best_of_n_curve", "train_raft", "PipelineConfig",
           "PipelineResult", "run_pipeline"]
