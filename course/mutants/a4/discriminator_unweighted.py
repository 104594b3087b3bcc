"""The discriminator loss ignores its weights (a plain mean, as if every sample counted once)."""
# BLOCK minirl/discriminators.py::discriminator_loss
loss_demo = F.softplus(-h_demo).mean()
loss_policy = F.softplus(h_policy).mean()
return loss_demo + loss_policy
