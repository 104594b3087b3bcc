"""A HuggingFace causal LM as a minirl policy over the token MDP (survey §2.2, Table 2).

State = the context (prompt + tokens so far), action = the next token. The adapter
satisfies :class:`minirl.policies.Policy`, so minirl's BC *is* SFT and minirl's DAgger
*is* on-policy distillation, with no second implementation.

Token batches (what :func:`llmtrack.rollout.generate` returns and tasks build):
    obs      (B, P + T)  prompt ids left-padded with [PAD] into the first P columns, then
                         the response in the last T columns (right-padded after [EOS])
    actions  (B, T)      the response tokens
    mask     (B, T)      True on real response tokens ([EOS] included)
So response step t is predicted from the logits at column P + t - 1, with P = obs.shape[1] - T:
one forward pass gives every step's log-prob (prompt positions are outside the mask).

A single-step observation (``sample``) is any context row: left-padded with [PAD] as above,
or right-padded with [MASK] as in the survey's worked example and :class:`llmtrack.mdp.TokenMDP`.
Fillers ([PAD], [MASK]) are never attended to; positions count real tokens only, so both
layouts give the same logits. The policy never emits a filler, [BOS] or [UNK]: those logits
are set to -inf, keeping generated contexts unambiguous.
"""

from __future__ import annotations

import copy
import inspect
from abc import ABC, abstractmethod
from contextlib import nullcontext

import torch
from torch import Tensor, nn

from minirl import parallel
from minirl.checks import check_device
from minirl.data import TrajectoryBatch
from minirl.policies import check_not_shared, sample_categorical
from llmtrack.tokenizer import BOS, MASK, PAD, UNK

__all__ = ["TokenPolicy", "LMPolicy", "KVDecoder", "frozen_reference", "check_not_shared", "check_same_vocabulary",
           "attention_inputs", "FILLERS"]

FILLERS = (PAD, MASK)
_NEVER_EMIT = (PAD, BOS, MASK, UNK)


def attention_inputs(ids: Tensor) -> tuple[Tensor, Tensor]:
    """attention_mask (B, L) = not a filler; position_ids (B, L) = index among real tokens."""
    attn = ~torch.isin(ids, torch.tensor(FILLERS, device=ids.device))
    positions = (attn.long().cumsum(-1) - 1).clamp_min(0)
    return attn.long(), positions


class TokenPolicy(nn.Module, ABC):
    """What every policy over token contexts shares (an LM here, a task's exact expert in
    :mod:`llmtrack.tasks`): from its two readings -- all response steps of a token batch, or
    the next token of N contexts -- the rest of minirl's Policy / Expert protocol follows."""

    n_actions: int

    @abstractmethod
    def log_probs_all(self, batch: TrajectoryBatch) -> Tensor:
        """log pi(. | s_t) at every response step, (B, T, V)."""

    @abstractmethod
    def next_token_log_probs(self, obs: Tensor) -> Tensor:
        """log pi(. | context) for N contexts (N, L) in either padding layout, (N, V) on the CPU."""

    @staticmethod
    def _response_slice(batch: TrajectoryBatch) -> slice:
        """The logit columns that predict the T response tokens: P - 1 .. P + T - 2."""
        P = batch.obs.shape[1] - batch.horizon
        if P < 1:
            raise ValueError("obs: a token batch needs at least one prompt column before the T response columns")
        return slice(P - 1, P - 1 + batch.horizon)

    def log_prob(self, batch: TrajectoryBatch) -> Tensor:
        """log pi(a_t | s_t), (B, T), zero on padding; the sequence log-prob is its masked sum."""
        logp = self.log_probs_all(batch)  # (B, T, V)
        mask = batch.mask.to(logp.device)
        actions = batch.actions.to(logp.device).long()
        if actions[mask].numel() and (actions[mask].min() < 0 or actions[mask].max() >= self.n_actions):
            raise ValueError(f"actions: token ids must lie in [0, {self.n_actions})")
        chosen = logp.gather(-1, actions.clamp(0, self.n_actions - 1).unsqueeze(-1)).squeeze(-1)
        return torch.where(mask, chosen, torch.zeros_like(chosen))

    def entropy(self, batch: TrajectoryBatch) -> Tensor:
        logp = self.log_probs_all(batch)
        h = -(logp.exp() * torch.nan_to_num(logp, neginf=0.0)).sum(-1)  # (B, T); 0 log 0 = 0
        return torch.where(batch.mask.to(h.device), h, torch.zeros_like(h))

    @torch.no_grad()
    def sample(self, obs: Tensor, generator: torch.Generator | None = None,
               deterministic: bool = False) -> tuple[Tensor, Tensor]:
        """Next token for each of N contexts: (actions (N,), log_probs (N,)) on the CPU."""
        return sample_categorical(self.next_token_log_probs(obs), generator, deterministic)

    @torch.no_grad()
    def label(self, batch: TrajectoryBatch) -> Tensor:
        """The most likely token at every response step, (B, T): a policy can teach another."""
        return self.log_probs_all(batch).argmax(-1).to(batch.actions.device)


class LMPolicy(TokenPolicy):
    """pi(a | context) = softmax(LM(context)[last position]), with an optional value head.

    Args:
        model: a HuggingFace causal LM (``build_model`` / ``load_model``).
        value_head: add a linear value head V(s_t) on the last hidden state (for PPO-style use).
        device: "auto" (CUDA if present, else CPU), "cpu", "cuda", ...; bf16 autocast on CUDA. A device
            this machine does not have ("tpu", "cuda" without a GPU) is a ValueError naming ``device``.
    """

    def __init__(self, model: nn.Module, value_head: bool = False, device: str = "auto"):
        super().__init__()
        # before the model is moved anywhere; under accelerate launch a bare "cuda" is this process's GPU
        self.device = parallel.local_device(check_device(device, "device"))
        vocab = getattr(getattr(model, "config", None), "vocab_size", None)
        if isinstance(vocab, bool) or not isinstance(vocab, int) or vocab <= max(_NEVER_EMIT):
            raise ValueError(f"model: must be a HuggingFace causal LM whose config.vocab_size covers llmtrack's "
                             f"special tokens (> {max(_NEVER_EMIT)}), got {vocab!r}")
        # Left-padded prompts shift every real token right by its row's padding: an absolute-position
        # model (GPT-2) reads the wrong positions unless it is told them, so it must accept position_ids.
        if "position_ids" not in inspect.signature(model.forward).parameters:
            raise ValueError(f"model: {type(model).__name__}.forward takes no position_ids, so left-padded "
                             "prompts would shift its positions; llmtrack needs a causal LM that accepts them")
        # Eval mode for good: dropout would give the same token different log-probs at
        # sampling and training time (this adapter never needs it; presets have none).
        self.model = model.to(self.device).eval()
        self.n_actions = int(model.config.vocab_size)
        hidden = int(getattr(model.config, "hidden_size", getattr(model.config, "n_embd", 0)))
        self.value_head = nn.Linear(hidden, 1).to(self.device) if value_head else None
        never = torch.zeros(self.n_actions, dtype=torch.bool)
        never[list(_NEVER_EMIT)] = True
        self.register_buffer("_never", never.to(self.device), persistent=False)

    def add_value_head(self) -> "LMPolicy":
        """Attach a fresh linear value head V(s_t) (zero-initialised, so it starts at V = 0); returns self.

        For PPO on a pre-trained model that was built without one. Zero init keeps the first
        advantages equal to the rewards' TD errors instead of noise from a random head.
        """
        hidden = int(getattr(self.model.config, "hidden_size", getattr(self.model.config, "n_embd", 0)))
        head = nn.Linear(hidden, 1)
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        self.value_head = head.to(self.device)
        return self

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    @property
    def max_positions(self) -> int:
        config = self.model.config
        return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings")

    def _check_ids(self, ids: Tensor) -> Tensor:
        ids = ids.to(self.device).long()
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.n_actions):
            raise ValueError(f"obs: token ids must lie in [0, {self.n_actions})")
        if ids.shape[1] > self.max_positions:
            raise ValueError(f"obs: context of {ids.shape[1]} tokens exceeds the model's {self.max_positions} positions")
        return ids

    def _forward(self, ids: Tensor, hidden: bool = False):
        ids = self._check_ids(ids)
        attn, positions = attention_inputs(ids)
        with self._autocast():
            out = self.model(input_ids=ids, attention_mask=attn, position_ids=positions, output_hidden_states=hidden)
        logits = out.logits.float().masked_fill(self._never, float("-inf"))  # (B, L, V)
        return logits, (out.hidden_states[-1].float() if hidden else None)

    def log_probs_all(self, batch: TrajectoryBatch) -> Tensor:
        """log pi(. | s_t) at every response step, (B, T, V), from one forward pass."""
        logits, _ = self._forward(batch.obs)
        return torch.log_softmax(logits[:, self._response_slice(batch)], dim=-1)

    def values(self, batch: TrajectoryBatch) -> Tensor:
        """V(s_t) at every response step, (B, T), from the value head."""
        if self.value_head is None:
            raise ValueError("value_head: this policy was built without a value head")
        _, h = self._forward(batch.obs, hidden=True)  # (B, L, H)
        v = self.value_head(h[:, self._response_slice(batch)]).squeeze(-1)
        return torch.where(batch.mask.to(self.device), v, torch.zeros_like(v))

    @torch.no_grad()
    def next_token_log_probs(self, obs: Tensor) -> Tensor:
        """log pi(. | context) for N contexts (N, L) in either padding layout, (N, V) on the CPU."""
        logits, _ = self._forward(obs)
        attn, _ = attention_inputs(obs.to(self.device))
        last = attn.shape[1] - 1 - attn.flip(-1).argmax(-1)  # index of the last real token, (N,)
        if not attn.any(-1).all():
            raise ValueError("obs: every context needs at least one real (non-filler) token")
        return torch.log_softmax(logits[torch.arange(len(last)), last], dim=-1).cpu()

    def kv_decoder(self, obs: Tensor) -> "KVDecoder | None":
        """A :class:`KVDecoder` over the contexts ``obs`` (N, L), or None where this policy's
        ``sample`` is not the plain softmax of the LM (a subclass that reshapes the distribution
        keeps the cache-less path, so ``generate`` never bypasses it)."""
        if type(self).sample is not TokenPolicy.sample or type(self).next_token_log_probs is not LMPolicy.next_token_log_probs:
            return None
        return KVDecoder(self, obs)


class KVDecoder:
    """Next-token log-probs of N growing contexts, each new token one cached forward step.

    The idea: the keys and values of every past position are kept (HuggingFace's ``DynamicCache``),
    so step t runs the model on one new column instead of the whole (N, L + t) context. The
    distribution is the one :meth:`LMPolicy.next_token_log_probs` gives for the full context, to
    float rounding: the attention mask grows by one column per step (0 for a finished row's
    [PAD]), and each new token's position id is its index among the real tokens, as
    :func:`attention_inputs` counts them, so left-padded (and [MASK]-padded) prompts of different
    lengths see the positions they would see alone, which matters for absolute-position models.

    Shapes: ``log_probs()`` -> (N, V) on the CPU; ``append(tokens (N,), real (N,) bool)``.
    """

    def __init__(self, policy: LMPolicy, obs: Tensor) -> None:
        self.policy = policy
        model = policy.model
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"  # transformers >= 5.2x renamed it
        ids = policy._check_ids(obs)  # (N, L)
        attn, positions = attention_inputs(ids)
        if not attn.any(-1).all():
            raise ValueError("obs: every context needs at least one real (non-filler) token")
        last = attn.shape[1] - 1 - attn.flip(-1).argmax(-1)  # last real token, (N,)
        self.attn = attn  # (N, L), grows by one column per append
        self.n_real = attn.sum(-1, keepdim=True)  # (N, 1): real tokens so far
        self._run(ids, positions, cache=None, last=last)

    def _run(self, ids: Tensor, positions: Tensor, cache, last: Tensor | None = None) -> None:
        with torch.inference_mode(), self.policy._autocast():  # the cache never meets autograd
            out = self.policy.model(input_ids=ids, attention_mask=self.attn, position_ids=positions,
                                    use_cache=True, logits_to_keep=1 if cache is not None else 0,
                                    **{self._cache_arg: cache})
        self.cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        logits = out.logits[:, -1] if last is None else out.logits[torch.arange(len(last)), last]  # (N, V)
        self._logits = logits.float().masked_fill(self.policy._never, float("-inf"))  # out of inference mode

    def log_probs(self) -> Tensor:
        """log pi(. | context) for the N current contexts, (N, V) on the CPU."""
        return torch.log_softmax(self._logits, dim=-1).cpu()

    def append(self, tokens: Tensor, real: Tensor) -> None:
        """Extend every context by one token (N,); ``real`` False marks a filler (a finished row)."""
        N = len(tokens)
        if self.attn.shape[1] + 1 > self.policy.max_positions:
            raise ValueError(f"obs: context of {self.attn.shape[1] + 1} tokens exceeds the model's "
                             f"{self.policy.max_positions} positions")
        tokens = tokens.to(self.policy.device).long().view(N, 1)  # (N, 1)
        real = real.to(self.attn).view(N, 1)  # (N, 1)
        self.attn = torch.cat([self.attn, real], dim=1)  # (N, L + 1)
        self.n_real = self.n_real + real
        positions = (self.n_real - 1).clamp_min(0)  # (N, 1): index among real tokens, as attention_inputs counts
        self._run(tokens, positions, self.cache)


def check_same_vocabulary(policy: TokenPolicy, other: TokenPolicy, field: str = "reference") -> None:
    """Refuse a pair over different vocabularies (policy / reference, student / teacher): their
    log-probs would be compared token id by token id. A ValueError naming ``field``."""
    if policy.n_actions != other.n_actions:
        raise ValueError(f"{field}: has a vocabulary of {other.n_actions} tokens, the policy {policy.n_actions}; "
                         "a KL or a distillation loss compares them id by id, so they must share the tokenizer")


def frozen_reference(policy: LMPolicy) -> LMPolicy:
    """A frozen copy of ``policy`` (pi_ref for KL penalties and DPO): no gradients, eval mode."""
    ref = copy.deepcopy(policy)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref
