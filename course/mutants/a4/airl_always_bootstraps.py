"""AIRL's f bootstraps v(s') even where the episode terminated."""
# BLOCK minirl/discriminators.py::AIRLDiscriminator.f
v_next = self.v(self.encoder.obs(next_obs, next_absorbing)).squeeze(-1)
v_now = self.v(self.encoder.obs(obs, absorbing)).squeeze(-1)
return self.reward(obs, absorbing) + self.gamma * v_next - v_now
