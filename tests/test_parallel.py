"""Data parallelism (minirl.parallel, docs/scale.md): two gloo processes under ``accelerate launch``
take the step one process takes on the whole minibatch.

The worker (tests/_parallel_worker.py) fits a nano LM to responses of 1..6 tokens, so the two
shards of a minibatch hold different numbers of tokens: the loss is normalised by the global
token count only if each shard is weighted by its share (a plain average of the two shard means
would differ). One launch runs five things: one BC / SFT update on 2 x 4 against 1 x 8, a
six-update SFT run's gathered metrics, a batch of 7 that does not split over 2 processes, one PPO
update (GRPO, KL regulariser, clipped global gradient norm; 4 minibatches of 2 x 3 responses
against 1 x 6), PPO minibatches of 3 that do not split, one update of GAIL's discriminator (two
normalisers, shards of unequal weight), and one PPO.train iteration whose rows each process samples itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import _parallel_worker as worker  # noqa: E402

from minirl import parallel  # noqa: E402
from minirl.algos.minibatch import minibatch_training  # noqa: E402
from minirl.algos.bc import BCConfig  # noqa: E402
from minirl.data import TrajectoryBatch  # noqa: E402

ACCELERATE = Path(sys.executable).with_name("accelerate")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    # accelerate is a dependency (pyproject): a missing launcher is a broken install, not a reason to skip
    assert ACCELERATE.exists(), "accelerate's launcher is missing: run scripts/setup.sh"
    out = tmp_path_factory.mktemp("parallel") / "two.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
           str(Path(worker.__file__)), str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out)


@pytest.fixture(scope="module")
def one_process():
    assert parallel.world_size() == 1
    return worker.run_all()


def test_one_step_on_two_half_batches_is_the_step_on_the_whole_batch(two_processes, one_process):
    two, one = two_processes["step"], one_process["step"]
    for a, b in zip(two["params"], one["params"]):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=0)
    assert two["history"][0]["loss/bc"] == pytest.approx(one["history"][0]["loss/bc"], abs=1e-5)


def test_a_short_sft_run_gathers_the_same_metrics(two_processes, one_process):
    two, one = two_processes["run"], one_process["run"]
    got = [h["loss/bc"] for h in two["history"]]
    want = [h["loss/bc"] for h in one["history"]]
    assert got == pytest.approx(want, abs=1e-4)
    # Adam divides by sqrt(v): a coordinate whose gradient is ~0 moves by up to lr on rounding alone,
    # so after 6 steps at lr 1e-2 the parameters agree to ~1e-3, not 1e-6.
    for a, b in zip(two["params"], one["params"]):
        torch.testing.assert_close(a, b, atol=2e-3, rtol=0)


def test_a_batch_that_does_not_split_is_refused_naming_the_field(two_processes, one_process):
    assert "batch_size" in two_processes["bad"]["error"] and "multiple of 2" in two_processes["bad"]["error"]
    assert "error" not in one_process["bad"]  # one process: any batch size


def test_one_ppo_update_on_two_processes_is_the_one_process_update(two_processes, one_process):
    """GRPO-PPO on responses of 1..6 tokens: the shards' token means weighted by their share of the
    minibatch's real tokens, the gradients summed, the global norm clipped -- the one-process update."""
    two, one = two_processes["ppo"], one_process["ppo"]
    for a, b in zip(two["params"], one["params"]):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=0)
    for key in ("loss/policy", "loss/entropy", "stats/approx_kl", "stats/clip_fraction"):
        assert two["history"][0][key] == pytest.approx(one["history"][0][key], abs=1e-5), key


def test_ppo_minibatches_that_do_not_split_are_refused_naming_the_field(two_processes, one_process):
    assert "n_minibatches" in two_processes["ppo_bad"]["error"]
    assert "multiple of the 2 processes" in two_processes["ppo_bad"]["error"]
    assert "error" not in one_process["ppo_bad"]


def test_one_discriminator_update_on_two_processes_is_the_one_process_update(two_processes, one_process):
    """GAIL's discriminator with the absorbing state: each side's mean normalised by the whole minibatch's
    weights (absorbing units weigh 1 / (1 - gamma)), the gradients summed -- the one-process update, with
    the gathered loss and accuracies."""
    two, one = two_processes["disc"], one_process["disc"]
    assert "error" not in two, two.get("error")
    for a, b in zip(two["params"], one["params"]):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=0)
    for key in ("disc/loss", "disc/acc_demo", "disc/acc_policy"):
        assert two["history"][0][key] == pytest.approx(one["history"][0][key], abs=1e-5), key


def test_ppo_train_gathers_each_processs_own_samples_and_updates_on_all_of_them(two_processes, one_process):
    """Under two processes each samples its own rows (seed process_seed: 7 and 7 + 1_000_003); PPO.train hands
    the reward function and the update their concatenation in rank order, on every process, and the
    parameters after are those of one process updating on that whole batch."""
    from minirl.algos.ppo import PPO, PPOConfig
    from minirl.policies import TabularPolicy
    from minirl.rollout import with_reward

    two = two_processes["gather"]
    assert "error" not in two, two.get("error")
    share0, share1 = worker.bandit_batch(worker.GATHER_SEED), worker.bandit_batch(worker.GATHER_SEED + 1_000_003)
    assert not torch.equal(share0.actions, share1.actions)  # the processes sampled different rows
    assert torch.equal(two["seen"][0], torch.cat([share0.actions, share1.actions]))
    assert torch.equal(one_process["gather"]["seen"][0], share0.actions)  # one process: its own batch only
    reference = TabularPolicy(1, 4)
    whole = with_reward(TrajectoryBatch.cat([share0, share1]), worker.bandit_reward)
    PPO(reference, None, PPOConfig(**worker.GATHER_CONFIG)).update(whole)
    for a, b in zip(two["params"], reference.parameters()):
        torch.testing.assert_close(a, b.detach(), atol=2e-6, rtol=0)


def test_one_process_never_loads_accelerate_and_weights_are_checked_only_when_sharding():
    assert parallel.accelerator() is None and parallel.process_seed(5) == 5 and parallel.is_main_process()
    assert parallel.local_device(torch.device("cpu")) == torch.device("cpu")
    calls = []
    config = BCConfig(n_updates=2, batch_size=3, lr=1e-3, seed=0)
    w = torch.nn.Parameter(torch.zeros(2))

    def loss_fn(index):
        calls.append(index)
        return (w - 1).pow(2).sum(), 0.0

    minibatch_training([w], 10, config, loss_fn)
    assert [len(i) for i in calls] == [3, 3]
