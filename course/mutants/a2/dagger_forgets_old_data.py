"""DAgger without aggregation: each round keeps only the newest labelled visits."""
# BLOCK minirl/algos/dagger.py::aggregate
return visited.replace(actions=expert.label(visited), log_probs=None, rewards=None, values=None)
