"""The best-of-N distribution ranks outcomes, not reward levels: tied outcomes get different masses."""
# BLOCK minirl/algos/best_of_n.py::best_of_n_distribution
order = torch.argsort(rewards, stable=True)
F_upper = torch.zeros_like(p)
F_upper[order] = torch.cumsum(p[order], 0)
F_lower = F_upper - p
return best_of_n_mass(F_upper, F_lower, n)
