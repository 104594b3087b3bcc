"""Alignment against a reward on token tasks: the exact answer key, Best-of-N / RAFT, over-optimisation.

    answer_key        exact E[R], KL(pi || pi_ref), KL(pi || pi*) of bigram policies on the Markov task,
                      the optimal reward-KL frontier, brute-force enumeration, Monte-Carlo estimates
                      for any sampling policy (docs/equations.md §6)
    best_of_n         exact Best-of-N on enumerable instances, sampled Best-of-N, RAFT (docs/equations.md §6)
    overoptimisation  Gao et al.'s fits, the pooled Best-of-N curve, the ensemble scorer (docs/equations.md §8)
    plots             the figures (imported on demand; matplotlib stays out of the algorithms)
"""

from llmtrack.alignment.answer_key import (enumerate_responses, exact_kl, expected_gold_reward, kl_to_optimum,
                                           optimal_frontier, policy_table, sampled_kl, sampled_point)
from llmtrack.alignment.best_of_n import (RAFTConfig, as_scorer, best_of_n_distributions, exact_best_of_n,
                                          generate_best_of_n, sample_pool, select_best, train_raft)
from llmtrack.alignment.overoptimisation import (GAO_FORMS, EnsembleScorer, GaoFit, bag_of_tokens,
                                                 bag_of_tokens_proxy, best_of_n_curve, fit_gao,
                                                 pool_best_of_n_weights)

__all__ = ["policy_table", "expected_gold_reward", "exact_kl", "kl_to_optimum", "optimal_frontier",
           "enumerate_responses", "sampled_kl", "sampled_point",
           "as_scorer", "best_of_n_distributions", "exact_best_of_n", "sample_pool", "select_best",
           "generate_best_of_n", "RAFTConfig", "train_raft",
           "GaoFit", "fit_gao", "GAO_FORMS", "pool_best_of_n_weights", "best_of_n_curve", "EnsembleScorer",
           "bag_of_tokens", "bag_of_tokens_proxy"]
