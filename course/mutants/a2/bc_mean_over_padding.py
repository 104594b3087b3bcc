"""BC loss averaged over every cell of the batch, padding included."""
# BLOCK minirl/algos/bc.py::bc_loss
return -policy.log_prob(batch).mean()
