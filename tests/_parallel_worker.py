"""One process of tests/test_parallel.py: a BC / SFT step and a short SFT run through minibatch_training.

Run as ``python tests/_parallel_worker.py OUT`` (one process) or under ``accelerate launch
--multi_gpu --num_processes 2`` on a machine without a GPU (two gloo processes); the main process
writes OUT (torch.save): for each mode, the parameters after it and its history, or the error.
Modes: ``step`` (one update, batch 8), ``run`` (6 updates of ``train_bc``, batch 4), ``bad`` (batch 7: does not
split over 2 processes).
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


def run(mode: str):
    from llmtrack.models import build_model
    from llmtrack.policy import LMPolicy

    torch.manual_seed(parallel.process_seed(0))  # differs per process; the model below must not depend on it
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
    for mode in ("step", "run", "bad"):
        try:
            results[mode] = run(mode)
        except ValueError as err:
            results[mode] = {"error": str(err)}
    return results


if __name__ == "__main__":
    results = run_all()
    parallel.on_main_process(lambda: torch.save(results, sys.argv[1]))
