"""The KL penalty is charged on padding too (the mask is forgotten)."""
# BLOCK minirl/algos/kl_penalty.py::kl_penalised_reward
log_ratio = log_probs - ref_log_probs
rewards = -beta * log_ratio
rewards[last_step(mask)] += score[mask.long().sum(1) > 0]
