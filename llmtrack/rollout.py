"""Batched generation that returns minirl's TrajectoryBatch (the token layout of llmtrack.policy).

``generate`` steps all B prompts together: at step t every row's context (left-padded prompt
plus its tokens so far) gives one next-token distribution, sampled by the one sampler every
policy shares (``minirl.policies.sample_categorical``). It needs nothing but ``sample``, so it
drives an LM, a task's exact expert, or DAgger's expert/learner mixture alike, and it consumes
the generator exactly as stepping B copies of :class:`llmtrack.mdp.TokenMDP` through
``minirl.rollout.rollout`` does (a test checks the two agree token for token).

Design: a policy that offers ``kv_decoder(prompts)`` (:class:`llmtrack.policy.LMPolicy`) is
stepped through its KV cache: one forward pass over the prompts, then one new column per token,
instead of re-running the whole context every step (Σ_t (P + t) positions against P + T). The
distributions are the same to float rounding, so the tokens and the log-probs are those of
``policy.sample`` on the full context, and those a fresh forward pass over the finished sequence
gives (tests/test_llm_core.py). Other policies keep the plain loop.
"""

from __future__ import annotations

from typing import Sequence

import torch

from minirl.data import TrajectoryBatch
from minirl.policies import Policy, sample_categorical
from llmtrack.tokenizer import EOS, PAD

__all__ = ["generate", "left_pad"]


def left_pad(prompts: Sequence[Sequence[int]], width: int | None = None) -> torch.Tensor:
    """Prompts as a (B, P) tensor, left-padded with [PAD] to the longest (or to ``width``)."""
    if len(prompts) == 0:
        raise ValueError("prompts: need at least one prompt")
    P = max(len(p) for p in prompts) if width is None else width
    out = torch.full((len(prompts), P), PAD, dtype=torch.long)
    for i, p in enumerate(prompts):
        if len(p) == 0:
            raise ValueError(f"prompts: prompt {i} is empty")
        if len(p) > P:
            raise ValueError(f"prompts: prompt {i} is longer than the width {P}")
        out[i, P - len(p):] = torch.as_tensor(list(p), dtype=torch.long)
    return out


@torch.no_grad()
def generate(policy: Policy, prompts: Sequence[Sequence[int]] | torch.Tensor, max_new_tokens: int,
             generator: torch.Generator | None = None, deterministic: bool = False,
             eos_id: int = EOS) -> TrajectoryBatch:
    """Sample up to ``max_new_tokens`` tokens after each prompt; stop a row at [EOS].

    Returns a TrajectoryBatch: obs (B, P + T) = prompts then responses (after [EOS]: [PAD]),
    actions (B, T), mask (B, T), log_probs (B, T) of the sampling policy, terminated (B, T)
    (True at the [EOS] step). T is the longest response actually generated.
    """
    if int(max_new_tokens) != max_new_tokens or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: must be an integer >= 1, got {max_new_tokens}")
    ctx = prompts.clone().long() if isinstance(prompts, torch.Tensor) else left_pad(prompts)
    B, P = ctx.shape
    ctx = torch.cat([ctx, torch.full((B, max_new_tokens), PAD, dtype=torch.long)], dim=1)  # (B, P + T)
    log_probs = torch.zeros(B, max_new_tokens)
    mask = torch.zeros(B, max_new_tokens, dtype=torch.bool)
    alive = torch.ones(B, dtype=torch.bool)
    T = 0
    start = getattr(policy, "kv_decoder", None)
    decoder = start(ctx[:, :P]) if callable(start) else None
    for t in range(max_new_tokens):
        if decoder is None:
            actions, logp = policy.sample(ctx[:, : P + t], generator=generator, deterministic=deterministic)
        else:  # what policy.sample gives on the full context, from the cache
            actions, logp = sample_categorical(decoder.log_probs(), generator, deterministic)
        actions, logp = actions.cpu(), logp.cpu()
        ctx[alive, P + t] = actions[alive]
        log_probs[alive, t] = logp[alive].float()
        mask[:, t] = alive
        alive = alive & (actions != eos_id)
        T = t + 1
        if not alive.any():
            break
        if decoder is not None and t + 1 < max_new_tokens:
            decoder.append(ctx[:, P + t], real=mask[:, t])  # a finished row's [PAD] is not attended to
    terminated = mask[:, :T] & (ctx[:, P: P + T] == eos_id)
    return TrajectoryBatch(obs=ctx[:, : P + T], actions=ctx[:, P: P + T].clone(), mask=mask[:, :T],
                           log_probs=log_probs[:, :T], terminated=terminated)
