"""The clipped value loss takes the min of the two errors instead of the pessimistic max."""
# BLOCK minirl/algos/ppo.py::clipped_value_loss
loss = (values - returns) ** 2
if clip_eps is not None:
    clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
    loss = torch.min(loss, (clipped - returns) ** 2)
return 0.5 * loss
