"""The Bradley-Terry loss ignores the label: every pair is treated as a certain preference."""
# BLOCK minirl/algos/reward_model.py::bradley_terry_loss
d = r_chosen - r_rejected
return -F.logsigmoid(d).mean()
