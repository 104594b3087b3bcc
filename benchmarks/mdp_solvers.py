"""minirl's exact solvers against pymdptoolbox 4.0b3: setup and value-iteration backups, one thread.

    MDP         dense random: P[s, a] = U(0, 1)^S normalised, R ~ N(0, 1), gamma (0.9 default),
                the same arrays for both (pymdptoolbox gets P transposed to its (A, S, S) layout
                before any clock starts).
    setup       ours: ``TabularMDP(P, R, rho0, gamma)`` (validation, one read-only copy of P);
                peer: the whole ``ValueIteration(P, R, gamma)`` constructor. Best of --repeats x --rounds.
    backup      ours: ``value_iteration(mdp, max_iter=k - 1)`` = k backups (k - 1 in the loop, one
                for the returned Q) / k; peer: k calls of ``_bellmanOperator`` / k. Best of
                --repeats. Both start from V = 0; |dV| is the largest difference of the values
                after the k backups (the same arithmetic up to rounding).
    old         the expression every backup used before issue 16, ``(R + gamma * P @ V).max(1)``,
                which numpy evaluates as ``(gamma * P) @ V`` (a scaled copy of P), 3 backups.
    run         each library's own run to convergence with the span stopping rule at
                pymdptoolbox's threshold epsilon (1 - gamma) / gamma (``stop="span"`` for ours);
                |V-V*| against a sup-norm run to tol 1e-10 (ours returns the midpoint of
                MacQueen's bounds, pymdptoolbox the last iterate).

Ratios are ours / pymdptoolbox, measured in the same run (< 1: ours is faster). Run (from the
repository root, pymdptoolbox in its own venv, see benchmarks/README.md):

    .venv/bin/python benchmarks/mdp_solvers.py --sizes 2000x10,5000x10

Not part of the test suite (pytest's testpaths are tests/ and notebooks/).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads BLAS
    os.environ.setdefault(_var, "1")

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, also where it is not installed

import numpy as np

from minirl.mdp import TabularMDP, value_iteration

RUNNER = Path(__file__).with_name("_pymdptoolbox_runner.py")


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def one_size(S: int, A: int, args) -> dict:
    rng = np.random.default_rng(args.seed)
    P = rng.random((S, A, S))  # (S, A, S)
    P /= P.sum(axis=2, keepdims=True)
    R = rng.normal(size=(S, A))
    rho0 = np.full(S, 1.0 / S)
    row = {"S": S, "A": A, "P_MB": P.nbytes / 2**20}
    mdp = TabularMDP(P=P, R=R, rho0=rho0, gamma=args.gamma)
    k = args.backups
    peer, setup, backup = None, [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mdp.npz"
        if args.peer_python:
            np.savez(path, P=np.ascontiguousarray(P.transpose(1, 0, 2)), R=R, gamma=args.gamma)
        for _ in range(args.rounds):  # peer, then ours, alternately: a change of load hits both
            if args.peer_python:
                out = Path(tmp) / "peer.json"
                subprocess.run([args.peer_python, str(RUNNER), "--mdp", str(path), "--backups", str(k),
                                "--repeats", str(args.repeats), "--epsilon", str(args.epsilon), "--out", str(out)],
                               check=True, env=os.environ.copy())
                this = json.loads(out.read_text())
                arrays = np.load(str(out).replace(".json", ".npz"))
                this["V_backups"], this["V_run"] = arrays["V_backups"], arrays["V_run"]
                if peer is not None:
                    for key in ("setup_s", "backup_s", "run_s"):
                        this[key] = min(this[key], peer[key])
                peer = this
            setup.append(best(lambda: TabularMDP(P=P, R=R, rho0=rho0, gamma=args.gamma), args.repeats))
            backup.append(best(lambda: value_iteration(mdp, tol=1e-300, max_iter=k - 1), args.repeats) / k)
    row["setup_ours_s"], row["backup_ours_ms"] = min(setup), 1e3 * min(backup)
    _, Q, _ = value_iteration(mdp, tol=1e-300, max_iter=k - 1)
    V_ours = Q.max(axis=1)  # after k backups

    def old(n: int = 3) -> None:
        V = np.zeros(S)
        for _ in range(n):
            V = (R + args.gamma * mdp.P @ V).max(axis=1)

    row["backup_old_ms"] = 1e3 * best(old, 1) / 3
    tol = args.epsilon * (1 - args.gamma) / args.gamma  # pymdptoolbox's threshold on the span
    t0 = time.perf_counter()
    V_run, _, pi_run = value_iteration(mdp, tol=tol, stop="span")
    row["run_ours_s"] = time.perf_counter() - t0
    V_star, _, _ = value_iteration(mdp, tol=1e-10)  # the reference for both runs' errors
    row["err_run_ours"] = float(np.max(np.abs(V_run - V_star)))
    if peer is not None:
        row.update(setup_peer_s=peer["setup_s"], backup_peer_ms=1e3 * peer["backup_s"], run_peer_s=peer["run_s"],
                   run_peer_iters=peer["run_iters"])
        row["setup_ratio"] = row["setup_ours_s"] / row["setup_peer_s"]
        row["backup_ratio"] = row["backup_ours_ms"] / row["backup_peer_ms"]
        row["max_dV_backups"] = float(np.max(np.abs(V_ours - peer["V_backups"])))
        row["err_run_peer"] = float(np.max(np.abs(peer["V_run"] - V_star)))
    return row


COLUMNS = [  # (key, header, format)
    ("S", "S", "{:d}"), ("A", "A", "{:d}"), ("P_MB", "P MB", "{:.0f}"),
    ("setup_ours_s", "setup ours s", "{:.2f}"), ("setup_peer_s", "setup pymdp s", "{:.2f}"),
    ("setup_ratio", "ours/pymdp", "{:.2f}"),
    ("backup_ours_ms", "backup ours ms", "{:.1f}"), ("backup_peer_ms", "backup pymdp ms", "{:.1f}"),
    ("backup_ratio", "ours/pymdp", "{:.2f}"), ("backup_old_ms", "old ms", "{:.1f}"),
    ("max_dV_backups", "|dV| k backups", "{:.1e}"),
    ("run_ours_s", "run ours s", "{:.2f}"), ("run_peer_s", "run pymdp s", "{:.2f}"),
    ("run_peer_iters", "pymdp iters", "{:d}"),
    ("err_run_ours", "|V-V*| ours", "{:.1e}"), ("err_run_peer", "|V-V*| pymdp", "{:.1e}"),
]


def table(rows: list[dict]) -> str:
    cells = [[h for _, h, _ in COLUMNS]]
    for r in rows:
        cells.append([f.format(r[k]) if k in r else "-" for k, _, f in COLUMNS])
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="2000x10,5000x10", help="comma-separated SxA")
    p.add_argument("--gamma", type=float, default=0.9)
    p.add_argument("--backups", type=int, default=20, help="k: timed backups per repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2, help="peer then ours, this many times; best of all")
    p.add_argument("--epsilon", type=float, default=0.01, help="pymdptoolbox's epsilon for the runs to convergence")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--peer-python", default="/work/venvs/pymdptoolbox/bin/python",
                   help="python of pymdptoolbox's venv; '' skips the peer")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    args = p.parse_args()
    if args.peer_python and not Path(args.peer_python).exists():
        p.error(f"--peer-python: {args.peer_python} does not exist (see benchmarks/README.md), or pass ''")
    rows = []
    for size in args.sizes.split(","):
        S, A = (int(x) for x in size.lower().split("x"))
        rows.append(one_size(S, A, args))
        print(table(rows[-1:]) if len(rows) == 1 else table(rows).splitlines()[-1], flush=True)
    print(f"\n{platform.processor() or platform.machine()}, numpy {np.__version__}, "
          f"OMP/OPENBLAS threads {os.environ['OPENBLAS_NUM_THREADS']}, gamma {args.gamma}, k = {args.backups}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
