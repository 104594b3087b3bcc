"""Training and generation throughput of llmtrack's model presets on this machine.

For each preset (nano, small, base) x family (gpt2, llama), freshly initialised (build_model):

    params          count_parameters(model)
    train           SFT = behaviour cloning: minirl's bc_loss + Adam on one batch of expert
                    demonstrations of the Markov task (B rows x L = P + T tokens). Warm-up steps
                    are run first and not timed. Two rates:
                      real tok/s   real (unmasked) response tokens per second -- the tokens the
                                   loss is made of
                      total tok/s  B x L per second -- every position the forward and backward
                                   passes actually process (prompt and padding included)
    generate        B prompts, exactly N new tokens each (no early stop at [EOS]), sampled:
                      ours  llmtrack.rollout.generate: LMPolicy's KV cache (one pass over the
                            prompts, then one new column per token; before issue 16 it re-ran
                            the whole context every step, ~ sum_t (P + t) token-forwards)
                      HF    model.generate(do_sample=True, attention_mask=..., KV cache), same
                            prompts, same N (min_new_tokens = N), top_k=0 (full distribution),
                            the fillers and [BOS]/[UNK] suppressed as LMPolicy does
                    ours/HF = ours tok/s / HF tok/s (< 1: ours is slower); best of --gen-reps runs.
    peak memory     CUDA: torch.cuda.max_memory_allocated per phase (reset before it; weights
                    included); CPU: the highest RSS above the phase's starting RSS (weights
                    excluded), sampled every 5 ms -- approximate, short spikes can be missed.

On CUDA, LMPolicy runs under bf16 autocast; the HF generate calls get the same autocast.
On CPU the base preset (85M parameters as GPT-2, 113M as Llama) is skipped unless named in --presets, and then runs
with at most 2 timed steps, 1 warm-up step, 1 generation run and 16 new tokens (the table says so).

Run (from the repository root; no network needed):
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/llm_throughput.py                  # CPU: nano, small
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/llm_throughput.py --device cuda    # all presets
    ... --json          prints one JSON object instead of the table
    ... --json FILE     also writes it to FILE

Not part of the test suite (pytest's testpaths are tests/ and notebooks/).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import resource
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, also where it is not installed
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is built from configs: never touch the hub

import torch

from minirl.algos.bc import bc_loss
from minirl.data import TrajectoryBatch
from llmtrack.models import FAMILIES, PRESETS, build_model, count_parameters, resolve_device
from llmtrack.policy import LMPolicy
from llmtrack.rollout import generate, left_pad
from llmtrack.tasks import make_task
from llmtrack.tokenizer import BOS, MASK, PAD, UNK

NEVER_EMIT = (PAD, BOS, MASK, UNK)  # LMPolicy never samples these; HF generate is told the same
CPU_DEFAULT_PRESETS = ("nano", "small")
CPU_BASE_LIMITS = dict(steps=2, warmup=1, gen_reps=1, new_tokens=16)  # base on a CPU: keep it to ~a minute


@dataclass(frozen=True)
class Settings:
    """What one (preset, family) measurement runs with."""

    steps: int
    """Timed training steps."""
    warmup: int
    """Untimed training steps (and one short untimed generation each) before timing."""
    gen_reps: int
    """Timed generation runs per method; the fastest is reported."""
    new_tokens: int
    """N: new tokens per prompt in generation."""
    reduced: bool = False
    """True when CPU_BASE_LIMITS cut the settings down."""


# -- measuring ---------------------------------------------------------------------------------

def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mb() -> float | None:
    """Current resident set size in MiB (Linux /proc), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def _release_freed_memory() -> None:
    """Hand freed heap memory back to the OS (glibc), so a phase's RSS grows when it allocates."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_high_water_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


class PeakMemory:
    """Peak memory of a phase, in MiB.

    CUDA: torch.cuda.max_memory_allocated (weights included), reset on entry.
    CPU: the highest RSS seen above the RSS on entry (weights excluded: optimizer state, gradients,
    activations), sampled every 5 ms by a thread; without /proc, the growth of ru_maxrss.
    """

    def __init__(self, device: torch.device, interval: float = 0.005):
        self.device, self.interval, self.mb = device, interval, float("nan")

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, _rss_mb() or 0.0)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        _release_freed_memory()
        self._start, self._high_water = _rss_mb(), _rss_high_water_mb()
        if self._start is not None:
            self._peak, self._stop = self._start, threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self._start is not None:
            self._stop.set()
            self._thread.join()
            self.mb = max(self._peak, _rss_mb() or 0.0) - self._start
        else:
            self.mb = _rss_high_water_mb() - self._high_water


def bench_train(policy: LMPolicy, batch: TrajectoryBatch, s: Settings) -> dict[str, float]:
    """SFT steps (bc_loss + Adam on one fixed batch), as the body of minirl's train_bc."""
    device = policy.device
    batch = batch.to(device)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)

    def step() -> float:
        loss = bc_loss(policy, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()  # train_bc logs the loss every step, which synchronises like this

    with PeakMemory(device) as mem:
        for _ in range(s.warmup):
            step()
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(s.steps):
            step()
        _sync(device)
        seconds = time.perf_counter() - t0
    real = batch.n_steps * s.steps  # unmasked response tokens
    total = batch.obs.numel() * s.steps  # B x (P + T) positions through forward + backward
    return {"train/seconds": seconds, "train/ms_per_step": 1e3 * seconds / s.steps,
            "train/real_tokens_per_s": real / seconds, "train/total_tokens_per_s": total / seconds,
            "train/peak_mb": mem.mb}


def _best_time(run, reps: int, device: torch.device) -> float:
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        run()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


@torch.no_grad()
def bench_generate(policy: LMPolicy, prompts: torch.Tensor, s: Settings, seed: int) -> dict[str, float]:
    """Ours (llmtrack.rollout.generate, KV cache) against HF model.generate (KV cache)."""
    device, model = policy.device, policy.model
    B, N = prompts.shape[0], s.new_tokens
    generator = torch.Generator().manual_seed(seed)

    def ours(n: int = N) -> None:
        # eos_id=-1 is never sampled, so every row runs all n steps, as min_new_tokens does for HF
        out = generate(policy, prompts, n, generator=generator, eos_id=-1)
        assert out.actions.shape == (B, n)

    ids = prompts.to(device)
    attention_mask = (ids != PAD).long()  # (B, P)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))

    def hf(n: int = N) -> None:
        torch.manual_seed(seed)
        with autocast:
            out = model.generate(input_ids=ids, attention_mask=attention_mask, max_new_tokens=n,
                                 min_new_tokens=n, do_sample=True, top_k=0, top_p=1.0, temperature=1.0,
                                 pad_token_id=PAD, suppress_tokens=list(NEVER_EMIT))
        assert out.shape == (B, ids.shape[1] + n)

    with PeakMemory(device) as mem:
        ours(min(4, N))  # warm-up, untimed
        t_ours = _best_time(ours, s.gen_reps, device)
        hf(min(4, N))
        t_hf = _best_time(hf, s.gen_reps, device)
    new, P = B * N, prompts.shape[1]
    # positions run through the model per row: both P (prefill) + N - 1 (one per step) with the KV cache;
    # the cache-less loop ran sum_{t<N} (P + t), (N P + N (N - 1) / 2) / (P + N - 1) times as many
    work_ratio = 1.0
    return {"gen/new_tokens": N, "gen/ours_work_over_hf": work_ratio,
            "gen/ours_seconds": t_ours, "gen/hf_seconds": t_hf,
            "gen/ours_tokens_per_s": new / t_ours, "gen/hf_tokens_per_s": new / t_hf,
            "gen/ours_over_hf": t_hf / t_ours, "gen/peak_mb": mem.mb}


def bench_one(preset: str, family: str, vocab_size: int, demos: TrajectoryBatch, prompts: torch.Tensor,
              s: Settings, device: str, seed: int) -> dict:
    model = build_model(preset, vocab_size, family=family, seed=seed)
    policy = LMPolicy(model, device=device)
    row = {"preset": preset, "family": family, "params": count_parameters(model),
           "train/steps": s.steps, "train/warmup": s.warmup, "train/batch": demos.batch_size,
           "train/width": demos.obs.shape[1], "train/real_tokens_per_batch": demos.n_steps,
           "gen/reps": s.gen_reps, "reduced": s.reduced}
    row.update(bench_train(policy, demos, s))
    row.update(bench_generate(policy, prompts, s, seed))
    del policy, model
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    return row


# -- reporting ---------------------------------------------------------------------------------

def _fmt_rate(x: float) -> str:
    if x < 1e3:
        return f"{x:.1f}" if x < 100 else f"{x:.0f}"
    return f"{x / 1e3:.1f}k" if x < 1e6 else f"{x / 1e6:.2f}M"


def format_table(meta: dict, rows: list[dict]) -> str:
    head = ["preset", "family", "params", "steps", "B x L (real)", "ms/step", "train real tok/s", "train total tok/s",
            "train MB", "N", "gen ours tok/s", "gen HF tok/s", "ours/HF", "work", "gen MB"]
    body = []
    for r in rows:
        body.append([r["preset"] + ("*" if r["reduced"] else ""), r["family"], f"{r['params'] / 1e6:.2f}M",
                     str(r["train/steps"]),
                     f"{r['train/batch']}x{r['train/width']} ({r['train/real_tokens_per_batch']})",
                     f"{r['train/ms_per_step']:.1f}",
                     _fmt_rate(r["train/real_tokens_per_s"]), _fmt_rate(r["train/total_tokens_per_s"]),
                     f"{r['train/peak_mb']:.0f}", str(r["gen/new_tokens"]),
                     _fmt_rate(r["gen/ours_tokens_per_s"]), _fmt_rate(r["gen/hf_tokens_per_s"]),
                     f"{r['gen/ours_over_hf']:.2f}", f"{r['gen/ours_work_over_hf']:.1f}x",
                     f"{r['gen/peak_mb']:.0f}"])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    mem = ("CUDA max_memory_allocated, weights included" if meta["device"].startswith("cuda")
           else "peak RSS above the phase's start, weights excluded, sampled every 5 ms")
    out = [f"device: {meta['device_name']} ({meta['device']}), torch {meta['torch']}, transformers "
           f"{meta['transformers']}, torch uses {meta['threads']} of {meta['cpu_count']} CPU threads",
           f"load average (1 min) before / after: {meta['load_before']:.2f} / {meta['load_after']:.2f}; "
           f"total wall time {meta['wall_seconds']:.0f} s",
           "train: SFT (bc_loss + Adam) on B demonstrations of the Markov task, L = P + T columns, "
           "(real) = unmasked response tokens per batch; warm-up steps not timed",
           f"generate: {meta['batch']} prompts of {meta['prompt_len']} tokens, N new tokens each, "
           f"best of {meta['gen_reps']} runs (* rows: see below); ours/HF = our tokens/s over HF's (KV cache); "
           f"work = positions ours runs through the model / HF's",
           f"memory (MB): {mem}", "", line(head), line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    notes = []
    if any(r["reduced"] for r in rows):
        notes.append("* reduced on CPU: " + ", ".join(f"{k} {v}" for k, v in CPU_BASE_LIMITS.items()))
    if meta["skipped"]:
        notes.append(f"skipped on CPU by default: {', '.join(meta['skipped'])} (name it in --presets to run it)")
    return "\n".join(out + ([""] + notes if notes else []))


# -- main --------------------------------------------------------------------------------------

def _csv(choices):
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"unknown {bad or text!r}; valid: {','.join(choices)}")
        return items
    return parse


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda (auto: CUDA if present)")
    ap.add_argument("--presets", type=_csv(list(PRESETS)), default=None,
                    help="comma-separated; default: all on CUDA, nano,small on CPU")
    ap.add_argument("--families", type=_csv(list(FAMILIES)), default=list(FAMILIES), help="comma-separated")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed training steps first (default 3)")
    ap.add_argument("--batch", type=int, default=32, help="demonstrations per step = prompts generated (32)")
    ap.add_argument("--response-len", type=int, default=18,
                    help="the task's max response length T; demonstrations are L = 2 + T wide (18)")
    ap.add_argument("--new-tokens", type=int, default=32, help="N new tokens per prompt in generation (32)")
    ap.add_argument("--gen-reps", type=int, default=3, help="timed generation runs per method, best kept (3)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice). On a busy machine 1 can be much faster")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                    help="alone: print one JSON object instead of the table; with PATH: also write it there")
    args = ap.parse_args(argv)
    for name in ("steps", "batch", "response_len", "new_tokens", "gen_reps"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        ap.error("--warmup must be >= 0")

    import transformers

    if args.threads is not None:
        if args.threads < 1:
            ap.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: this torch sees no CUDA device")
    on_cpu = device.type == "cpu"
    presets = args.presets or (list(CPU_DEFAULT_PRESETS) if on_cpu else list(PRESETS))
    skipped = [p for p in PRESETS if p not in presets] if on_cpu and args.presets is None else []
    task = make_task("markov", max_new_tokens=args.response_len, seed=args.seed)
    demos = task.demonstrations(args.batch, seed=args.seed)  # obs (B, 2 + T'), T' = longest response
    prompts = left_pad(task.sample_prompts(args.batch, torch.Generator().manual_seed(args.seed + 1)))  # (B, P)
    for p in presets:
        longest = prompts.shape[1] + args.new_tokens
        if longest > PRESETS[p].max_positions:
            ap.error(f"--new-tokens: {p} holds {PRESETS[p].max_positions} positions, "
                     f"prompt + N = {longest}")

    load_before, t_start = os.getloadavg()[0], time.perf_counter()
    rows = []
    for preset in presets:
        s = Settings(args.steps, args.warmup, args.gen_reps, args.new_tokens)
        if on_cpu and preset == "base":
            lim = CPU_BASE_LIMITS
            s = Settings(min(s.steps, lim["steps"]), min(s.warmup, lim["warmup"]), min(s.gen_reps, lim["gen_reps"]),
                         min(s.new_tokens, lim["new_tokens"]), reduced=True)
        for family in args.families:
            rows.append(bench_one(preset, family, task.vocab_size, demos, prompts, s, str(device), args.seed))
            if args.json != "-":
                print(f"  done {preset}/{family} ({time.perf_counter() - t_start:.0f} s)", file=sys.stderr)
    meta = {"device": str(device), "device_name": _device_name(device), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "threads": torch.get_num_threads(), "python": platform.python_version(),
            "load_before": load_before, "load_after": os.getloadavg()[0],
            "wall_seconds": time.perf_counter() - t_start, "batch": args.batch, "prompt_len": prompts.shape[1],
            "gen_reps": args.gen_reps, "seed": args.seed, "skipped": skipped,
            "reduced_on_cpu": CPU_BASE_LIMITS if any(r["reduced"] for r in rows) else None}
    result = {"meta": meta, "rows": rows}
    if args.json == "-":
        print(json.dumps(result, indent=1))
        return result
    if args.json is not None:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    print(format_table(meta, rows))
    return result


if __name__ == "__main__":
    main()
