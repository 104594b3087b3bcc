"""The named demos behind the CLI and the notebooks; each returns data, plots live in minirl.plots."""
