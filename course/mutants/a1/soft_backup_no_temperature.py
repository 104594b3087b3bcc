"""The soft value without its temperature: V = log sum prior exp(Q / alpha), not alpha times it."""
# BLOCK minirl/mdp.py::_soft_backup
logits = Q / alpha if log_prior is None else Q / alpha + log_prior
m = logits.max(axis=-1, keepdims=True)
lse = m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))
pi = np.exp(logits - lse)
V = lse[..., 0]
