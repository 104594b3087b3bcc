"""Demonstrations labelled 0 and policy steps 1: the discriminator learns the negative log ratio."""
# BLOCK minirl/discriminators.py::discriminator_loss
loss_demo = (w_demo * F.softplus(h_demo)).sum() / w_demo.sum()
loss_policy = (w_policy * F.softplus(-h_policy)).sum() / w_policy.sum()
return loss_demo + loss_policy
