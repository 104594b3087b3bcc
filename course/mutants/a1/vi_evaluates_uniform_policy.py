"""Value iteration that averages over actions instead of maximising (it evaluates the uniform policy)."""
# BLOCK minirl/mdp.py::value_iteration
V = np.zeros(mdp.n_states)
for _ in range(max_iter):
    Q = R + mdp.gamma * mdp.P @ V
    V_new = Q.mean(axis=1)
    if np.max(np.abs(V_new - V)) < tol:
        V = V_new
        break
    V = V_new
Q = R + mdp.gamma * mdp.P @ V
