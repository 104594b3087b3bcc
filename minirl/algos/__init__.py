"""The algorithms, each in a module named after its idea; all written against minirl.policies."""

from minirl.algos.adversarial import AdversarialConfig, AdversarialImitation
from minirl.algos.bc import BCConfig, bc_loss, train_bc
from minirl.algos.coaching import Coach, CoachConfig, coach_labels
from minirl.algos.best_of_n import best_of_n_distribution, best_of_n_kl, pool_best_of_n, select_best
from minirl.algos.dagger import DAggerConfig, aggregate, train_dagger
from minirl.algos.distillation import GKDConfig, ReverseKLReward, gkd_loss, soft_bc_loss, train_gkd
from minirl.algos.dpo import DPOConfig, dpo_loss, train_dpo
from minirl.algos.exact_imitation import ExactImitationConfig, train_exact
from minirl.algos.ppo import PPO, PPOConfig, gae
from minirl.algos.raft import RAFTConfig, train_raft
from minirl.algos.reward_model import RewardModelConfig, bradley_terry_loss, classification_loss, train_reward_model

__all__ = ["BCConfig", "bc_loss", "train_bc", "DAggerConfig", "aggregate", "train_dagger", "PPO", "PPOConfig", "gae",
           "AdversarialConfig", "AdversarialImitation", "ExactImitationConfig", "train_exact",
           "DPOConfig", "dpo_loss", "train_dpo", "RewardModelConfig", "bradley_terry_loss",
           "classification_loss", "train_reward_model"]
__all__ += ["best_of_n_distribution", "best_of_n_kl", "pool_best_of_n", "select_best", "RAFTConfig", "train_raft"]
__all__ += ["Coach", "CoachConfig", "coach_labels", "GKDConfig", "ReverseKLReward", "gkd_loss", "soft_bc_loss",
            "train_gkd"]
