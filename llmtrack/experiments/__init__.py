"""llmtrack's named experiments; each returns data, figures live in llmtrack.plots."""
