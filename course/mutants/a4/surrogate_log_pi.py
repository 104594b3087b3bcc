"""The score-function form without its sampling weight: sum d log(pi) A instead of sum d pi A."""
# BLOCK minirl/algos/exact_imitation.py::policy_gradient_surrogate
with torch.no_grad():
    d = exact_occupancy(mdp, pi).sum(-1)
    Q, V = q_values(mdp, pi, reward)
    advantage = Q - V[:, None]
return (d[:, None] * pi.log() * advantage).sum()
