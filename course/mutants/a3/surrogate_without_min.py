"""The clipped surrogate without the min: always the clipped term, which is optimistic when A < 0."""
# BLOCK minirl/algos/ppo.py::clipped_surrogate
return -ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantages
