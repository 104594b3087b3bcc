"""Forward and reverse swapped: the mean of log q - log p under samples of p (that is -KL(p || q), not KL(q || p))."""
# BLOCK minirl/estimators.py::monte_carlo_kl
off = ~torch.isfinite(logp_other)
if off.any():
    return KLEstimate(math.inf, math.inf, float(off.double().mean()), len(off))
value, se = mean_se(logp_other - logp_sampler)
return KLEstimate(value, se, 0.0, len(off))
