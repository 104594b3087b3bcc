"""BC loss summed over steps instead of averaged (its scale grows with the data)."""
# BLOCK minirl/algos/bc.py::bc_loss
return -batch.masked_sum(policy.log_prob(batch)).sum()
