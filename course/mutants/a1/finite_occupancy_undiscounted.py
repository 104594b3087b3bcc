"""The finite-horizon occupancy forgets the discount (it counts visits, not discounted visits)."""
# BLOCK minirl/mdp.py::occupancy_measure#1
pi_t = pi[:horizon] if pi.ndim == 3 else np.broadcast_to(pi, (horizon, *pi.shape))
return np.einsum("ts,tsa->sa", d, pi_t)
