"""DPO without the reference model: Bradley-Terry on beta log pi instead of beta log pi / pi_ref."""
# BLOCK minirl/algos/dpo.py::dpo_loss
reward_chosen = beta * logp_chosen
reward_rejected = beta * logp_rejected
loss = bradley_terry_loss(reward_chosen, reward_rejected, label)
