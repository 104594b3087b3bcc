"""Dissolved (issue 13): answer key -> llmtrack.tasks.answer_key, Best-of-N / RAFT -> llmtrack.pipelines.best_of_n
and minirl, figures -> llmtrack.plots. Only a temporary shim is left (see best_of_n.py)."""
