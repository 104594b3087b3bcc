"""RLOO with the plain group mean as its baseline (the sample's own score included: biased, shrunk by (G-1)/G)."""
# BLOCK minirl/algos/group_advantages.py::group_advantages
if estimator == "reinforce":
    return scores - scores.mean()
group_mean = scores.mean(dim=1, keepdim=True)
if estimator == "rloo":
    return scores - group_mean
return (scores - group_mean) / (scores.std(dim=1, keepdim=True) + eps)
