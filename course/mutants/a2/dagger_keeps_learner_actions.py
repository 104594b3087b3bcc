"""DAgger's aggregation forgets to relabel: it stores the learner's own actions."""
# BLOCK minirl/algos/dagger.py::aggregate
labelled = visited.replace(log_probs=None, rewards=None, values=None)
return labelled if dataset is None else TrajectoryBatch.cat([dataset, labelled])
