"""The algorithms, each in a module named after its idea; all written against minirl.policies."""

from minirl.algos.bc import BCConfig, bc_loss, train_bc
from minirl.algos.dagger import DAggerConfig, aggregate, train_dagger

__all__ = ["BCConfig", "bc_loss", "train_bc", "DAggerConfig", "aggregate", "train_dagger"]
