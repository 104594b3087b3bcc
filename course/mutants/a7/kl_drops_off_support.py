"""Samples off q's support are dropped and the finite terms averaged: a finite KL where it is infinite."""
# BLOCK minirl/estimators.py::monte_carlo_kl
off = ~torch.isfinite(logp_other)
value, se = mean_se((logp_sampler - logp_other)[~off])
return KLEstimate(value, se, float(off.double().mean()), len(off))
