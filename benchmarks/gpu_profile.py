"""Where a GPU's seconds go: SFT tokens/s and MFU, generation ours vs HF, one PPO iteration profiled.

One script for one device call of at most ~8 minutes (the sections are timed; --budget-s stops
adding sections once the budget is spent, and whatever was measured is printed and written).

    train       SFT as the library runs it (LMPolicy.log_prob -> bc_loss -> Adam) on random token
                demonstrations, B rows x L columns (default 64 x 256 = 16,384 tokens per step,
                the whole response in the loss), bf16 autocast on CUDA (LMPolicy's), the model's
                attention implementation as configured (SDPA by default in transformers 5),
                torch.compile off and on (``model.compile()``; its warm-up steps include the
                compilation and are not timed). tokens/s = B x L / step time.
                MFU = 6 N tokens/s / peak, N = all parameters (attention's own FLOPs left out, so
                this slightly understates the work), peak = the device's dense bf16 FLOP/s from
                PEAK_TFLOPS by device name or --peak-tflops; no peak, no MFU (a CPU).
    generate    B prompts of 2 tokens, exactly N new tokens (no early stop), N = 32 and 256:
                llmtrack.rollout.generate (KV cache) against HF model.generate (KV cache), best of
                --gen-reps; the same function llm_throughput.py uses. The model is built with
                max_positions = 2 + 256 so both N fit (the preset's 256 would not).
    ppo         one iteration of the RLHF pipeline's PPO on the Markov task (what
                llmtrack.pipelines.rlhf.train_rlhf runs): generation and values
                (ResponseSource), the KL-penalised reward (the gold score plus the frozen
                reference's log-probs), and PPO's update (4 epochs x 4 minibatches). Each phase is
                timed (device synchronised) and inside torch.profiler with a record_function
                label; the top operators by self time are printed, and --trace FILE writes the
                Chrome trace. The reference here is a frozen copy of the LM (the pipeline's
                default); the alignment pipeline's exact bigram reference is not used.

Run (the device tool: see benchmarks/README.md for the wheel carry):
    HF_HUB_OFFLINE=1 python benchmarks/gpu_profile.py --device cuda --json $OUT/gpu_profile.json
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/gpu_profile.py --device cpu --tiny    # seconds, CPU

Not part of the test suite (pytest's testpaths are tests/ and notebooks/); tests/test_gpu_profile.py
runs ``--device cpu --tiny``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, also where it is not installed
sys.path.insert(0, str(Path(__file__).resolve().parent))  # llm_throughput's generation benchmark

import torch

from minirl.algos.bc import bc_loss
from minirl.data import TrajectoryBatch

PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "L4": 121.0}
"""Dense bf16 tensor-core peak (TFLOP/s, no sparsity) by a substring of the device name (SXM parts)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def random_demos(B: int, L: int, vocab: int, seed: int) -> TrajectoryBatch:
    """B rows of L tokens: a 2-token prompt and an (L - 2)-token response, every response token real."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randint(5, vocab, (B, L), generator=g)  # (B, L), no special tokens
    return TrajectoryBatch(obs=obs, actions=obs[:, 2:].clone(), mask=torch.ones(B, L - 2, dtype=torch.bool))


def bench_train(args, device: torch.device, compile_model: bool) -> dict:
    from llmtrack.models import build_model, count_parameters
    from llmtrack.policy import LMPolicy

    model = build_model(args.preset, args.vocab, family=args.family, seed=0)
    policy = LMPolicy(model, device=str(device))
    if compile_model:
        policy.model.compile()
    demos = random_demos(args.batch, args.length, args.vocab, seed=0)
    demos = demos.replace(obs=demos.obs.to(device), actions=demos.actions.to(device), mask=demos.mask.to(device))
    opt = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        loss = bc_loss(policy, demos)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for _ in range(args.warmup):
        step()
    _sync(device)
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    _sync(device)
    per_step = (time.perf_counter() - t0) / args.steps
    n_params = count_parameters(model)
    tokens = args.batch * args.length
    row = {"compile": compile_model, "params": n_params, "tokens_per_step": tokens, "ms_per_step": 1e3 * per_step,
           "tokens_per_s": tokens / per_step, "warmup_s": warmup_s,
           "attention": getattr(model.config, "_attn_implementation", "?")}
    peak = peak_tflops(device, args.peak_tflops)
    row["mfu"] = None if peak is None else 6 * n_params * row["tokens_per_s"] / (peak * 1e12)
    if device.type == "cuda":
        row["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    del policy, model, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def bench_generation(args, device: torch.device) -> list[dict]:
    from llm_throughput import Settings, bench_generate
    from llmtrack.models import build_model
    from llmtrack.policy import LMPolicy

    rows = []
    policy = LMPolicy(build_model(args.preset, args.vocab, family=args.family, seed=0,
                                  max_positions=2 + max(args.gen_tokens)), device=str(device))
    prompts = torch.randint(5, args.vocab, (args.gen_batch, 2), generator=torch.Generator().manual_seed(1))
    for n in args.gen_tokens:
        r = bench_generate(policy, prompts, Settings(steps=0, warmup=0, gen_reps=args.gen_reps, new_tokens=n), seed=0)
        rows.append({"new_tokens": n, "ours_tokens_per_s": r["gen/ours_tokens_per_s"],
                     "hf_tokens_per_s": r["gen/hf_tokens_per_s"], "ours_over_hf": r["gen/ours_over_hf"]})
    return rows


def bench_ppo(args, device: torch.device) -> dict:
    from torch.profiler import ProfilerActivity, profile, record_function

    from minirl.algos.kl_penalty import KLPenalisedReward
    from minirl.algos.ppo import PPO
    from minirl.rollout import with_reward
    from minirl.scorers import as_scorer
    from llmtrack.models import build_model
    from llmtrack.pipelines.rlhf import ResponseSource, lm_ppo_config
    from llmtrack.policy import LMPolicy, frozen_reference
    from llmtrack.tasks import make_task

    task = make_task("markov")
    policy = LMPolicy(build_model(args.preset, task.vocab_size, family=args.family, seed=0), value_head=True,
                      device=str(device))
    reference = frozen_reference(policy)
    reward = KLPenalisedReward(as_scorer(None, task.gold_reward), reference, 0.1)
    source = ResponseSource(policy, task, n_prompts=args.ppo_prompts, seed=0)
    ppo = PPO(policy, policy, lm_ppo_config())
    ppo.update(with_reward(source(), reward))  # warm-up iteration (allocator, kernels), untimed
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    phases = {}

    def timed(name: str, fn):
        _sync(device)
        t0 = time.perf_counter()
        with record_function(f"ppo/{name}"):
            out = fn()
        _sync(device)
        phases[name] = time.perf_counter() - t0
        return out

    with profile(activities=activities) as prof:
        batch = timed("generate+values", source)
        batch = timed("reward (reference + score)", lambda: with_reward(batch, reward))
        stats = timed("update (4 epochs x 4 minibatches)", lambda: ppo.update(batch))
    if args.trace:
        prof.export_chrome_trace(args.trace)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    top = prof.key_averages().table(sort_by=sort, row_limit=args.top_ops)
    total = sum(phases.values())
    return {"tokens": int(batch.n_steps), "rows": batch.batch_size, "phases_s": phases, "total_s": total,
            "shares": {k: v / total for k, v in phases.items()}, "top_ops": top,
            "approx_kl": stats.get("stats/approx_kl")}


def format_report(meta: dict, result: dict) -> str:
    out = [f"device: {meta['device_name']} ({meta['device']}), torch {meta['torch']}, transformers "
           f"{meta['transformers']}; preset {meta['preset']} {meta['family']}; {meta['date']}"]
    if result.get("train"):
        out += ["", "train (SFT: LMPolicy.log_prob + bc_loss + Adam)",
                "compile  attention  params   B x L   ms/step  tokens/s      MFU  warm-up s"]
        for r in result["train"]:
            mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
            out.append(f"{str(r['compile']):>7}  {r['attention']:>9}  {r['params'] / 1e6:5.1f}M  "
                       f"{meta['batch']}x{meta['length']}  {r['ms_per_step']:7.1f}  {r['tokens_per_s']:8.0f}  "
                       f"{mfu:>7}  {r['warmup_s']:9.1f}")
    if result.get("generate"):
        out += ["", f"generate ({meta['gen_batch']} prompts of 2 tokens, best of {meta['gen_reps']})",
                "  N  ours tok/s  HF tok/s  ours/HF"]
        for r in result["generate"]:
            out.append(f"{r['new_tokens']:3d}  {r['ours_tokens_per_s']:10.0f}  {r['hf_tokens_per_s']:8.0f}  "
                       f"{r['ours_over_hf']:7.2f}")
    if result.get("ppo"):
        p = result["ppo"]
        out += ["", f"one PPO iteration ({p['rows']} responses, {p['tokens']} tokens), {p['total_s']:.2f} s"]
        out += [f"  {k:<36} {v:7.3f} s  {100 * p['shares'][k]:5.1f}%" for k, v in p["phases_s"].items()]
        out += ["", p["top_ops"]]
    if result.get("skipped"):
        out += ["", "skipped (budget spent): " + ", ".join(result["skipped"])]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--tiny", action="store_true", help="CPU-sized shapes: nano, 4 x 32, 2 steps, N = 8 and 16")
    p.add_argument("--preset", default="base")
    p.add_argument("--family", default="gpt2")
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--compile", default="off,on", help="which of off,on to measure")
    p.add_argument("--gen-tokens", default="32,256")
    p.add_argument("--gen-batch", type=int, default=32)
    p.add_argument("--gen-reps", type=int, default=2)
    p.add_argument("--ppo-prompts", type=int, default=64)
    p.add_argument("--sections", default="train,generate,ppo")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, if not in the table")
    p.add_argument("--budget-s", type=float, default=420.0, help="start no new section after this many seconds")
    p.add_argument("--top-ops", type=int, default=15)
    p.add_argument("--trace", default=None, help="write the PPO iteration's Chrome trace here")
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args(argv)
    if args.tiny:
        args.preset, args.batch, args.length, args.steps, args.warmup = "nano", 4, 32, 2, 1
        args.gen_tokens, args.gen_batch, args.gen_reps, args.ppo_prompts = "8,16", 4, 1, 4
    from minirl.checks import check_device

    device = check_device(args.device, "device")  # before any work: 'cuda' without a GPU is refused
    args.gen_tokens = [int(n) for n in args.gen_tokens.split(",")]
    sections = args.sections.split(",")
    modes = [m == "on" for m in args.compile.split(",")]
    import transformers

    meta = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or platform.machine(), "torch": torch.__version__,
            "transformers": transformers.__version__, "preset": args.preset, "family": args.family,
            "batch": args.batch, "length": args.length, "gen_batch": args.gen_batch, "gen_reps": args.gen_reps,
            "date": time.strftime("%Y-%m-%d")}
    result: dict = {"skipped": []}
    start = time.perf_counter()

    def within_budget(name: str) -> bool:
        if time.perf_counter() - start > args.budget_s:
            result["skipped"].append(name)
            return False
        return True

    autocast = nullcontext()
    with autocast:
        if "train" in sections:
            result["train"] = [bench_train(args, device, m) for m in modes if within_budget(f"train compile={m}")]
        if "generate" in sections and within_budget("generate"):
            result["generate"] = bench_generation(args, device)
        if "ppo" in sections and within_budget("ppo"):
            result["ppo"] = bench_ppo(args, device)
    result["wall_s"] = time.perf_counter() - start
    print(format_report(meta, result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, **result}, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
