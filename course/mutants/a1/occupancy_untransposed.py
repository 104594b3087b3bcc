"""The occupancy solve without the transpose: (I - gamma P_pi) d = rho0 instead of d^T (I - gamma P_pi) = rho0^T."""
# BLOCK minirl/mdp.py::occupancy_measure
d = np.linalg.solve(np.eye(mdp.n_states) - mdp.gamma * mdp.policy_matrix(pi), mdp.rho0)
return d[:, None] * pi
