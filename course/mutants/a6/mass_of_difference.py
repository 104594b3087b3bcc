"""The best-of-N mass as (F(y) - F(y-))^N: the chance that all N draws land in the block, not the best one."""
# BLOCK minirl/algos/best_of_n.py::best_of_n_mass
return (F_upper - F_lower) ** n
