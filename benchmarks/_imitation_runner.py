"""The `imitation` half of adversarial_vs_imitation.py: one GAIL or AIRL run, results as JSON.

Runs in its own virtualenv (imitation 1.0.1 pins gymnasium ~0.29 and stable-baselines3 2.2.1),
so it imports nothing from this repository. The driver calls it as

    OMP_NUM_THREADS=1 /work/venvs/imitation/bin/python benchmarks/_imitation_runner.py \
        --demos DEMOS.npz --method gail --seed 0 --max-steps 300000 --out RESULT.json

DEMOS.npz holds flat step arrays (obs, acts, next_obs, dones) and per-trajectory ``lengths``;
each trajectory becomes an ``imitation.data.types.Trajectory`` with obs = its T observations
plus the last next_obs, ``infos=None`` and ``terminal=True``.

Hyperparameters are the ones of imitation's CartPole tutorials (docs/tutorials/3_train_gail
and 4_train_airl), with the learner's ``n_steps=128`` (8 envs: 1024 env steps per round) in
place of SB3's default 2048, and ``allow_variable_horizon=True`` because CartPole-v1's episodes
end when the pole falls (the tutorials use seals/CartPole-v0, which has a fixed horizon).

Evaluation, every ``--eval-every`` env steps (rounded to whole rounds) and after the last round:
the mean return of the greedy policy (``deterministic=True``) over ``--eval-episodes`` episodes
of CartPole-v1 whose resets are seeded ``eval_seed + i`` -- the same start states as
``minirl.experiments.ppo_experts.evaluate_policy``. Evaluation time is excluded from wall time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

# Per imitation's CartPole tutorials; the learner's n_steps is ours to pick (module docstring).
HYPERPARAMETERS = {
    "gail": dict(
        learner=dict(batch_size=64, ent_coef=0.0, learning_rate=4e-4, gamma=0.95, n_epochs=5, n_steps=128),
        trainer=dict(demo_batch_size=1024, gen_replay_buffer_capacity=512, n_disc_updates_per_round=8),
    ),
    "airl": dict(
        learner=dict(batch_size=64, ent_coef=0.0, learning_rate=5e-4, gamma=0.95, clip_range=0.1, vf_coef=0.1,
                     n_epochs=5, n_steps=128),
        trainer=dict(demo_batch_size=2048, gen_replay_buffer_capacity=512, n_disc_updates_per_round=16),
    ),
}
N_ENVS = 8


class _Stop(Exception):
    """Raised from the round callback to end training once the target is reached."""


def load_trajectories(path: str) -> list:
    from imitation.data.types import Trajectory

    data = np.load(path)
    bounds = np.cumsum(np.concatenate([[0], data["lengths"]]))
    trajectories = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        obs = np.concatenate([data["obs"][start:end], data["next_obs"][end - 1:end]])  # (T + 1, 4)
        trajectories.append(Trajectory(obs=obs.astype(np.float32), acts=data["acts"][start:end].astype(np.int64),
                                       infos=None, terminal=True))
    return trajectories


def evaluate(policy, n_episodes: int, seed: int, env_id: str = "CartPole-v1") -> float:
    """Mean return of the greedy policy over ``n_episodes`` episodes, run side by side (resets seeded seed + i)."""
    envs = [gym.make(env_id) for _ in range(n_episodes)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])  # (n, 4)
    returns = np.zeros(n_episodes)
    alive = np.ones(n_episodes, dtype=bool)
    while alive.any():
        actions, _ = policy.predict(obs, deterministic=True)
        for i in np.flatnonzero(alive):
            next_obs, reward, terminated, truncated, _ = envs[i].step(int(actions[i]))
            returns[i] += reward
            obs[i] = next_obs
            alive[i] = not (terminated or truncated)
    for env in envs:
        env.close()
    return float(returns.mean())


def run(args: argparse.Namespace) -> dict:
    from imitation.algorithms.adversarial.airl import AIRL
    from imitation.algorithms.adversarial.gail import GAIL
    from imitation.rewards.reward_nets import BasicRewardNet, BasicShapedRewardNet
    from imitation.util import logger as imit_logger
    from imitation.util.networks import RunningNorm
    from imitation.util.util import make_vec_env
    from stable_baselines3 import PPO
    from stable_baselines3.ppo import MlpPolicy

    torch.manual_seed(args.seed)
    hp = HYPERPARAMETERS[args.method]
    demos = load_trajectories(args.demos)
    venv = make_vec_env("CartPole-v1", rng=np.random.default_rng(args.seed), n_envs=N_ENVS)
    learner = PPO(env=venv, policy=MlpPolicy, seed=args.seed, device="cpu", **hp["learner"])
    net_cls = BasicRewardNet if args.method == "gail" else BasicShapedRewardNet
    reward_net = net_cls(observation_space=venv.observation_space, action_space=venv.action_space,
                         normalize_input_layer=RunningNorm)
    log_dir = tempfile.mkdtemp(prefix="imitation_log_")
    trainer_cls = GAIL if args.method == "gail" else AIRL
    trainer = trainer_cls(demonstrations=demos, venv=venv, gen_algo=learner, reward_net=reward_net,
                          allow_variable_horizon=True,
                          custom_logger=imit_logger.configure(folder=log_dir, format_strs=[]), **hp["trainer"])
    per_round = trainer.gen_train_timesteps
    eval_rounds = max(1, round(args.eval_every / per_round))
    n_rounds = args.max_steps // per_round

    curve: list[dict] = []
    state = {"eval_s": 0.0, "reached": None}
    start = time.perf_counter()

    def callback(round_index: int) -> None:
        done_rounds = round_index + 1
        if done_rounds % eval_rounds and done_rounds != n_rounds:
            return
        wall = time.perf_counter() - start - state["eval_s"]
        t = time.perf_counter()
        ret = evaluate(learner.policy, args.eval_episodes, args.eval_seed)
        state["eval_s"] += time.perf_counter() - t
        steps = done_rounds * per_round
        curve.append({"env_steps": steps, "wall_s": wall, "return": ret})
        if state["reached"] is None and ret >= args.target:
            state["reached"] = {"env_steps": steps, "wall_s": wall}
            if args.stop_at_target:
                raise _Stop

    try:
        trainer.train(total_timesteps=n_rounds * per_round, callback=callback)
    except _Stop:
        pass
    reached = state["reached"]
    return {
        "library": "imitation", "method": args.method, "seed": args.seed,
        "steps_to_target": reached and reached["env_steps"], "wall_to_target": reached and reached["wall_s"],
        "final_return": curve[-1]["return"], "env_steps": curve[-1]["env_steps"], "train_wall_s": curve[-1]["wall_s"],
        "eval_wall_s": state["eval_s"], "steps_per_round": per_round, "curve": curve,
        "hyperparameters": hp, "n_demo_trajectories": len(demos),
        "n_demo_steps": int(sum(len(d.acts) for d in demos)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demos", required=True, help=".npz written by adversarial_vs_imitation.py")
    parser.add_argument("--method", choices=sorted(HYPERPARAMETERS), required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=300_000)
    parser.add_argument("--eval-every", type=int, default=5_120)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--eval-seed", type=int, default=10_000)
    parser.add_argument("--target", type=float, default=475.0)
    parser.add_argument("--stop-at-target", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = run(args)
    import imitation
    import stable_baselines3

    result["versions"] = {"imitation": imitation.__version__, "stable_baselines3": stable_baselines3.__version__,
                          "gymnasium": gym.__version__, "torch": torch.__version__, "numpy": np.__version__}
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
