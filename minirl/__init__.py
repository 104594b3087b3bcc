"""minirl: learning from behaviour on small MDPs -- with and without reward.

Import the parts you need: ``minirl.mdp`` (tabular MDPs and exact solvers, numpy only),
``minirl.envs`` (gymnasium environments), ``minirl.data`` / ``minirl.policies`` /
``minirl.rollout`` (the trajectory currency), ``minirl.algos`` (BC, DAgger, ...),
``minirl.experiments`` (the named demos) and ``minirl.plots``. Importing ``minirl`` itself
loads nothing heavy, so the tabular half and the CLI start fast.
"""

__version__ = "0.1.0"
