"""Test-session settings shared by unit tests and notebooks (nbval kernels inherit os.environ).

MINIRL_FAST=1 puts the notebooks in their fast mode (minutes on a 2-core CPU); students who
open them in Jupyter get the full version. Nothing may reach a model hub at test time.
"""

import os

os.environ.setdefault("MINIRL_FAST", "1")
# One torch thread: the tests' tensors are tiny, and a second OpenMP thread only adds
# synchronisation (on a loaded 2-core machine it made small ops 100x slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
