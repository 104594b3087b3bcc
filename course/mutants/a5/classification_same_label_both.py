"""The classification loss gives the rejected response the chosen one's label p instead of 1 - p."""
# BLOCK minirl/algos/reward_model.py::classification_loss
p = torch.ones_like(r_chosen) if label is None else label.to(r_chosen.dtype)
loss_chosen = -(p * F.logsigmoid(r_chosen) + (1 - p) * F.logsigmoid(-r_chosen))
loss_rejected = -(p * F.logsigmoid(r_rejected) + (1 - p) * F.logsigmoid(-r_rejected))
return (loss_chosen + loss_rejected).mean() / 2
