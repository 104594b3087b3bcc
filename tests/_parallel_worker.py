"""One process of tests/test_parallel.py: a BC / SFT step and a short SFT run through minibatch_training.

Run as ``python tests/_parallel_worker.py OUT`` (one process) or under ``accelerate launch
--multi_gpu --num_processes 2`` on a machine without a GPU (two gloo processes); the main process
writes OUT (torch.save): for each mode, the parameters after it and its history, or the error.
Modes: ``step`` (one update, batch 8), ``run`` (6 updates of ``train_bc``, batch 4), ``bad`` (batch 7: does not
split over 2 processes), ``ppo`` (one ``PPO.update`` with GRPO advantages and a KL regulariser: 2 epochs of 2
minibatches of 6 responses), ``ppo_bad`` (4 minibatches of 3 responses: do not split over 2 processes),
``disc`` (one discriminator update of GAIL with the absorbing state on CartPole: 2 passes of 3 minibatches,
absorbing units weighing 1 / (1 - gamma), shards of unequal weight and size), ``gather`` (one iteration of
``PPO.train`` on a bandit whose rows each process samples with its own seed: the gathered batch and the update).
"""

from __future__ import annotations

import sys

import torch

from minirl import parallel
from minirl.algos.bc import BCConfig, bc_loss, train_bc
from minirl.algos.minibatch import minibatch_training
from minirl.data import TrajectoryBatch


def demos(n: int = 12, P: int = 2, T: int = 6, vocab: int = 16) -> TrajectoryBatch:
    """n responses of 1..T real tokens (different token counts per shard: the weighting matters)."""
    g = torch.Generator().manual_seed(7)
    obs = torch.randint(6, vocab, (n, P + T), generator=g)  # (n, P + T), no special tokens
    lengths = torch.arange(n) % T + 1  # (n,)
    mask = torch.arange(T)[None, :] < lengths[:, None]  # (n, T)
    return TrajectoryBatch(obs=obs, actions=obs[:, P:].clone(), mask=mask)


def ppo_update(n_minibatches: int):
    """One PPO update of a nano LM on 12 sampled-looking responses of 1..6 tokens (3 prompts x 4), GRPO
    advantages from fixed random rewards, a k3 KL to a second nano LM; the same batch on every process."""
    from llmtrack.models import build_model
    from llmtrack.policy import LMPolicy
    from minirl.algos.kl_penalty import KLLoss
    from minirl.algos.ppo import PPO, PPOConfig

    policy = LMPolicy(build_model("nano", 16, seed=0), device="cpu")
    reference = LMPolicy(build_model("nano", 16, seed=1), device="cpu")
    data = demos()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # the sampling policy a little off the current one, so the ratio is not 1
        log_probs = policy.log_prob(data) + 0.1 * torch.randn(data.mask.shape, generator=g) * data.mask
    batch = data.replace(log_probs=log_probs, rewards=torch.randn(data.mask.shape, generator=g) * data.mask,
                         group_size=4)
    config = PPOConfig(advantage="grpo", n_epochs=2, n_minibatches=n_minibatches, lr=1e-2, max_grad_norm=0.5, seed=3)
    stats = PPO(policy, None, config, regularizer=KLLoss(reference, 0.1)).update(batch)
    return {"params": [p.detach().clone() for p in policy.parameters()], "history": [stats]}


def discriminator_update():
    """One ``update_discriminator`` of GAIL (absorbing state) on 4 CartPole episodes of a random MLP policy
    against two expert episodes; the same batch on every process (nothing here depends on the rank)."""
    import gymnasium as gym

    from minirl.algos.adversarial import AdversarialConfig, AdversarialImitation
    from minirl.algos.ppo import PPOConfig
    from minirl.envs import HideReward
    from minirl.experts import CartPoleExpert
    from minirl.policies import MLPPolicy, ValueMLP
    from minirl.rollout import rollout

    demos = rollout(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"), CartPoleExpert(), 2,
                    seed=100, deterministic=True)
    envs = gym.make_vec("CartPole-v1", num_envs=4, vectorization_mode="sync", wrappers=[HideReward])
    config = AdversarialConfig(divergence="gail", absorbing=True, disc_epochs=2, disc_minibatches=3, lr=1e-2,
                               ppo=PPOConfig(n_steps=64, seed=1), seed=2)
    trainer = AdversarialImitation(envs, MLPPolicy(4, 2, seed=0), ValueMLP(4, seed=0), demos, config)
    # the policy's episodes drawn with one seed on every process (PPO's own sampler differs per process)
    batch = rollout(gym.make_vec("CartPole-v1", num_envs=4, vectorization_mode="sync"), MLPPolicy(4, 2, seed=0), 4,
                    seed=5)
    stats = trainer.update_discriminator(batch)
    return {"params": [p.detach().clone() for p in trainer.disc.parameters()], "history": [stats]}


GATHER_SEED = 7


def bandit_batch(seed: int) -> TrajectoryBatch:
    """2 groups of 4 pulls of a 4-armed bandit by the uniform initial table, drawn with ``seed``."""
    from minirl.policies import TabularPolicy

    obs = torch.zeros(8, 1, dtype=torch.long)
    actions, log_probs = TabularPolicy(1, 4).sample(obs[:, 0], generator=torch.Generator().manual_seed(seed))
    return TrajectoryBatch(obs=obs, actions=actions[:, None], mask=torch.ones(8, 1, dtype=torch.bool),
                           log_probs=log_probs[:, None], group_size=4)


def bandit_reward(batch: TrajectoryBatch) -> torch.Tensor:
    return torch.tensor([1.0, 0.5, 0.0, -0.5])[batch.actions]  # (B, 1)


GATHER_CONFIG = dict(advantage="grpo", n_epochs=2, n_minibatches=2, lr=0.05, seed=3)


def gather_train():
    """One ``PPO.train`` iteration: each process samples its own 8 rows (seed ``process_seed(GATHER_SEED)``);
    returns the gathered batch's actions as the reward function saw them and the parameters after."""
    from minirl.algos.ppo import PPO, PPOConfig
    from minirl.policies import TabularPolicy

    policy, seen = TabularPolicy(1, 4), []

    def reward(batch):
        seen.append(batch.actions.clone())
        return bandit_reward(batch)

    PPO(policy, None, PPOConfig(**GATHER_CONFIG)).train(lambda: bandit_batch(parallel.process_seed(GATHER_SEED)), 1,
                                                        reward_fn=reward)
    return {"params": [p.detach().clone() for p in policy.parameters()], "history": [], "seen": seen}


def run(mode: str):
    from llmtrack.models import build_model
    from llmtrack.policy import LMPolicy

    torch.manual_seed(parallel.process_seed(0))  # differs per process; the model below must not depend on it
    if mode == "disc":
        return discriminator_update()
    if mode == "gather":
        return gather_train()
    if mode in ("ppo", "ppo_bad"):
        return ppo_update({"ppo": 2, "ppo_bad": 4}[mode])
    policy = LMPolicy(build_model("nano", 16, seed=0), device="cpu")
    data = demos()
    batch_size, n_updates = {"step": (8, 1), "run": (4, 6), "bad": (7, 1)}[mode]
    config = BCConfig(n_updates=n_updates, batch_size=batch_size, lr=1e-2, seed=3)
    params = [p for p in policy.parameters() if p.requires_grad]

    def loss_fn(index):
        loss = bc_loss(policy, data if index is None else data[index])
        return loss, {"loss/bc": loss.item()}

    if mode == "run":  # SFT as users call it: train_bc weights the shards by real tokens itself
        history = [{"loss/bc": v} for v in train_bc(policy, data, config)["loss/bc"]]
    else:
        history = minibatch_training(params, data.batch_size, config, loss_fn, weights=data.mask.sum(1))
    return {"params": [p.detach().clone() for p in params], "history": history}


def run_all() -> dict:
    results = {}
    for mode in ("step", "run", "bad", "ppo", "ppo_bad", "disc", "gather"):
        try:
            results[mode] = run(mode)
        except ValueError as err:
            results[mode] = {"error": str(err)}
    return results


if __name__ == "__main__":
    results = run_all()
    parallel.on_main_process(lambda: torch.save(results, sys.argv[1]))
    parallel.shutdown()
