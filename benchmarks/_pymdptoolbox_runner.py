"""The pymdptoolbox half of mdp_solvers.py: its constructor and its Bellman backup, timed.

Runs in its own virtualenv (pymdptoolbox 4.0b3 is unmaintained; it never enters the library's
dependencies), so it imports nothing from this repository. The driver calls it as

    OMP_NUM_THREADS=1 /work/venvs/pymdptoolbox/bin/python benchmarks/_pymdptoolbox_runner.py \
        --mdp MDP.npz --backups 20 --repeats 3 --out RESULT.json

MDP.npz holds ``P`` (A, S, S) -- pymdptoolbox's own layout, transposed by the driver before any
clock starts -- ``R`` (S, A) and ``gamma``. Timed: the whole ``ValueIteration`` constructor
(its ``_util.check`` validation of P and R and its own copies), best of ``--repeats``; then
``--backups`` calls of ``_bellmanOperator`` from V = 0 (the loop body of its ``run``), best of
``--repeats`` per backup; then ``run()`` itself with its span stopping rule. The values after
the timed backups and after ``run()`` go back in RESULT.npz so the driver can check both libraries computed the same.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from mdptoolbox.mdp import ValueIteration


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mdp", required=True)
    p.add_argument("--backups", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epsilon", type=float, default=0.01)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    data = np.load(args.mdp)
    P, R, gamma = data["P"], data["R"], float(data["gamma"])
    setup = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        vi = ValueIteration(P, R, gamma, epsilon=args.epsilon)
        setup.append(time.perf_counter() - t0)
    per_backup = []
    for _ in range(args.repeats):
        V = np.zeros(vi.S)
        t0 = time.perf_counter()
        for _ in range(args.backups):
            _, V = vi._bellmanOperator(V)
        per_backup.append((time.perf_counter() - t0) / args.backups)
    t0 = time.perf_counter()
    vi.run()
    run_s = time.perf_counter() - t0
    np.savez(args.out.replace(".json", ".npz"), V_backups=V, V_run=np.asarray(vi.V, dtype=np.float64))
    with open(args.out, "w") as f:
        json.dump({"setup_s": min(setup), "backup_s": min(per_backup), "run_s": run_s,
                   "run_iters": int(vi.iter)}, f)


if __name__ == "__main__":
    main()
