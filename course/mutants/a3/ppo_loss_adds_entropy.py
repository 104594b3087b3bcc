"""The PPO loss adds the entropy bonus instead of subtracting it (it would minimise entropy)."""
# BLOCK minirl/algos/ppo.py::ppo_loss
log_ratio = torch.where(mask, log_probs - old_log_probs, torch.zeros_like(log_probs))
ratio = log_ratio.exp()
policy_loss = mean(clipped_surrogate(ratio, advantages, clip_eps))
value_loss = mean(clipped_value_loss(values, old_values, returns, clip_value))
mean_entropy = mean(entropy)
loss = policy_loss + vf_coef * value_loss + ent_coef * mean_entropy
