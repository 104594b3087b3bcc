"""The sequence score is added at every real step instead of once at the last."""
# BLOCK minirl/algos/kl_penalty.py::kl_penalised_reward
log_ratio = (log_probs - ref_log_probs) * mask
rewards = -beta * log_ratio + score[:, None] * mask
