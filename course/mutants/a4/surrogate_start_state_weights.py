"""The surrogate weights states by the start distribution rho0 instead of the discounted visits d(s)."""
# BLOCK minirl/algos/exact_imitation.py::policy_gradient_surrogate
with torch.no_grad():
    d = torch.as_tensor(mdp.rho0, dtype=pi.dtype)
    Q, V = q_values(mdp, pi, reward)
    advantage = Q - V[:, None]
return (d[:, None] * pi * advantage).sum()
