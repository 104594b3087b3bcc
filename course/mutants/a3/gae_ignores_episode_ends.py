"""GAE that ignores episode ends: the recursion carries the next episode's advantage back across the end."""
# BLOCK minirl/algos/ppo.py::gae
m = mask.to(values.dtype)
delta = (rewards + gamma * next_values - values) * m
advantages = torch.zeros_like(delta)
next_advantage = torch.zeros_like(delta[:, 0])
for t in reversed(range(delta.shape[1])):
    next_advantage = delta[:, t] + gamma * lam * next_advantage
    next_advantage = next_advantage * m[:, t]
    advantages[:, t] = next_advantage
returns = (advantages + values) * m
