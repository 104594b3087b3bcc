"""The soft backup forgets the prior: a plain entropy bonus where KL to pi_ref was asked for."""
# BLOCK minirl/mdp.py::_soft_backup
logits = Q / alpha
m = logits.max(axis=-1, keepdims=True)
lse = m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))
pi = np.exp(logits - lse)
V = alpha * lse[..., 0]
