"""Pipelines: thin compositions of minirl's algorithms with llmtrack's world (docs/concepts.md).

    base       pretrain_base: BC on the task's base generator, cached on disk
    imitation  sft (= minirl BC on demonstrations), distill (= minirl DAgger, the task's expert labelling
               the student's own generations: on-policy distillation)
    evaluate   expert accuracy on own generations, mistakes vs length (seed eq. 1), forward / reverse KL
    recipe     the ``llmtrack sft`` run: base -> SFT or distillation -> evaluation
    rlhf       PPO-RLHF (= minirl PPO on sampled responses, RM score - beta per-token KL) and the
               Monte-Carlo estimators (REINFORCE / RLOO / GRPO) on the same update
    afd        alignment from demonstrations (= minirl's adversarial trainer, sequence discriminator)
    alignment  the ``llmtrack pipeline`` run: base -> SFT -> RM -> DPO / PPO / GRPO / AfD / best-of-N,
               scored against the Markov task's exact optimum
"""

from llmtrack.pipelines.base import cache_root, pretrain_base
from llmtrack.pipelines.evaluate import EvalConfig, evaluate, expert_accuracy, forward_kl, reverse_kl
from llmtrack.pipelines.imitation import DistillConfig, SampledExpert, SFTConfig, distill, sft
from llmtrack.pipelines.recipe import SFTRunConfig, SFTRunResult, run_sft

__all__ = ["cache_root", "pretrain_base", "EvalConfig", "evaluate", "expert_accuracy", "forward_kl", "reverse_kl",
           "DistillConfig", "SampledExpert", "SFTConfig", "distill", "sft", "SFTRunConfig", "SFTRunResult", "run_sft"]
