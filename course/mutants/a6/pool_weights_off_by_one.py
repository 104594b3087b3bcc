"""Pool weights C(i, N - 1) / C(M, N): the rank counted from 1 where the binomial needs i - 1."""
# BLOCK minirl/algos/best_of_n.py::pool_best_of_n_weights
def log_choose(a, b):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return torch.lgamma(a + 1) - torch.lgamma(b + 1) - torch.lgamma(a - b + 1)

log_w = log_choose(i, n - 1) - log_choose(M, n)
return torch.where(i >= n, log_w.exp(), torch.zeros_like(i))
