"""What every toy task shares: exact policies on token contexts, and the data generators.

A task (docs/concepts.md) is a prompt
distribution rho0, an **expert** whose token probabilities are known exactly, a **base**
generator (what a tiny base model is pre-trained on), and a **gold reward** kept for
evaluation (learners never see it). From these, shared code here makes:

    demonstrations(n, seed)   expert samples: D_demo for BC / SFT (docs/equations.md §3)
    base_corpus(n, seed)      base-generator samples: the "pre-training" corpus
    preferences(n, noise, seed)
        two responses per prompt from a sampling policy (default: the base generator),
        labelled by Bradley-Terry on the gold reward (minirl.preferences; docs/equations.md §5):
            P(a > b | x) = sigma((r(x, a) - r(x, b)) / temperature),
        temperature = 0 meaning "the higher gold reward wins"; then each label is flipped
        with probability ``noise``. A pair with identical responses or equal gold rewards
        carries no preference: it is dropped and a fresh prompt and pair are drawn, so pairs
        follow rho0(x) pi(y_a|x) pi(y_b|x) conditioned on the pair being informative.
    token_mdp(...)            the token MDP of survey §2.2 (docs/equations.md §2) over a finite
                              prompt support, optionally with the gold reward plugged in.

All batches use llmtrack's token layout (llmtrack.policy): obs (B, P + T) = left-[PAD]-padded
prompt, then the response; actions (B, T); mask (B, T). Response step t's context is
obs[:, :P + t]; the *state* always comes from obs, the action from actions (so a
DAgger-relabelled batch, whose obs are the learner's tokens, is read correctly).

:class:`ExactPolicy` is the shared plumbing of the tasks' exact policies: a subclass says
how a context maps to next-token log-probs (``column_log_probs``), and gets minirl's Policy /
Expert protocol (log_prob, entropy, sample, label) on both batches and single contexts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from minirl.checks import check_int, check_number, check_probability, check_seed
from minirl.data import Preferences, TrajectoryBatch
from minirl.policies import Policy, check_same_actions
from minirl.preferences import draw_uniforms, label_pairs
from llmtrack.mdp import TokenMDP
from llmtrack.policy import FILLERS, TokenPolicy
from llmtrack.rollout import generate
from llmtrack.tokenizer import PAD

__all__ = ["Task", "ExactPolicy", "make_task", "register_task", "TASKS", "context_state",
           "as_generator"]

TASKS: dict[str, type["Task"]] = {}


def register_task(cls: type["Task"]) -> type["Task"]:
    """Class decorator: make ``cls`` available as ``make_task(cls.name)``."""
    TASKS[cls.name] = cls
    return cls


def make_task(name: str, **kwargs) -> "Task":
    """The task called ``name`` ("markov", "sort"), built with ``kwargs``."""
    if name not in TASKS:
        raise ValueError(f"name: unknown task {name!r}; valid names: {sorted(TASKS)}")
    return TASKS[name](**kwargs)


# -- small checks and helpers ---------------------------------------------------------------

def as_generator(seed: int | torch.Generator | None, field: str = "seed") -> torch.Generator | None:
    """A CPU torch.Generator from an int seed in [0, 2**32) (a Generator or None passes through)."""
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(check_seed(seed, field))


def context_state(ids: Tensor) -> tuple[Tensor, Tensor]:
    """For every column c of ids (N, L): the last real token of ids[:, :c + 1] and how many
    real tokens it holds, both (N, L). Fillers ([PAD], [MASK]) are skipped, so left-padded
    and [MASK]-right-padded contexts read alike (as in llmtrack.policy)."""
    real = ~torch.isin(ids, torch.tensor(FILLERS, device=ids.device))
    col = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
    last_idx = torch.where(real, col, torch.full_like(col, -1)).cummax(dim=1).values
    last = torch.where(last_idx >= 0, ids.gather(1, last_idx.clamp_min(0)), torch.full_like(ids, PAD))
    return last, real.long().cumsum(dim=1)


# -- exact policies ---------------------------------------------------------------------------

class ExactPolicy(TokenPolicy):
    """A policy over token contexts whose probabilities are known in closed form.

    Subclasses implement :meth:`column_log_probs`. Everything is computed on the CPU in
    float32 and returned on the device of the input.
    """

    def __init__(self, vocab_size: int):
        super().__init__()
        self.n_actions = int(vocab_size)

    @abstractmethod
    def column_log_probs(self, ids: Tensor, columns: slice) -> Tensor:
        """log pi(. | ids[:, :c + 1]) for every column c in ``columns``: (N, C, V)."""

    def _check_ids(self, ids: Tensor) -> Tensor:
        if ids.ndim != 2:
            raise ValueError(f"obs: token contexts must have shape (N, L), got {tuple(ids.shape)}")
        ids = ids.detach().cpu().long()
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.n_actions):
            raise ValueError(f"obs: token ids must lie in [0, {self.n_actions})")
        return ids

    @torch.no_grad()
    def next_token_log_probs(self, obs: Tensor) -> Tensor:
        """log pi(. | context) for N contexts (N, L) in either padding layout, (N, V) on the CPU."""
        ids = self._check_ids(obs)
        return self.column_log_probs(ids, slice(ids.shape[1] - 1, ids.shape[1]))[:, 0]

    def log_probs_all(self, batch: TrajectoryBatch) -> Tensor:
        """log pi(. | s_t) at every response step, (B, T, V); step t reads obs[:, :P + t]."""
        ids = self._check_ids(batch.obs)
        return self.column_log_probs(ids, self._response_slice(batch)).to(batch.obs.device)


# -- the task ---------------------------------------------------------------------------------

class Task(ABC):
    """A toy language: subclasses set ``name``, ``tokenizer``, ``max_new_tokens`` (T),
    ``context_size`` and implement the abstract members; the generators below are shared."""

    name: str = ""
    tokenizer = None
    max_new_tokens: int
    context_size: int

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @abstractmethod
    def sample_prompts(self, n: int, generator: torch.Generator | int | None = None) -> list[list[int]]:
        """n prompts (token-id lists, starting with [BOS]) drawn from rho0."""

    @property
    @abstractmethod
    def expert(self) -> ExactPolicy:
        """The expert: exact token probabilities; ``label`` gives its answer at any context."""

    @property
    @abstractmethod
    def base(self) -> ExactPolicy:
        """The base generator a tiny base model is pre-trained on."""

    @abstractmethod
    def gold_reward(self, batch: TrajectoryBatch) -> Tensor:
        """r(x, y) of each trajectory, (B,), float32. For evaluation only."""

    @abstractmethod
    def step_reward(self, context: np.ndarray, action: int) -> float:
        """The gold reward of one token-MDP step (context = prompt + response so far, no fillers);
        summed over an episode it equals ``gold_reward``."""

    def prompt_support(self) -> tuple[list[list[int]], list[float]] | None:
        """rho0 as (prompts, probabilities) when its support is small enough to list; else None."""
        return None

    # -- shared generators ---------------------------------------------------------------------
    def rollout(self, policy: Policy, n: int, seed: int = 0, deterministic: bool = False) -> TrajectoryBatch:
        """n fresh prompts and ``policy``'s responses; info["gold_reward"] (B,) for evaluation."""
        n = check_int(n, "n", 1)
        g = as_generator(seed)
        check_same_actions(self.expert, policy, "task", "policy")  # its token ids must be the task's
        batch = generate(policy, self.sample_prompts(n, g), self.max_new_tokens, generator=g,
                         deterministic=deterministic)
        return batch.replace(info={"gold_reward": self.gold_reward(batch)})

    def demonstrations(self, n: int, seed: int = 0) -> TrajectoryBatch:
        """n expert demonstrations (D_demo)."""
        return self.rollout(self.expert, n, seed)

    def base_corpus(self, n: int, seed: int = 0) -> TrajectoryBatch:
        """n samples of the base generator (the pre-training corpus)."""
        return self.rollout(self.base, n, seed)

    def preferences(self, n: int, noise: float = 0.0, seed: int = 0, policy: Policy | None = None,
                    temperature: float = 0.0, max_rounds: int = 1000) -> Preferences:
        """n labelled pairs (see the module docstring): Bradley-Terry on the gold reward, then noise.

        Returns Preferences whose row i is one prompt's (chosen, rejected) pair, both batches in
        one token layout (same P and T). Hidden from learners, in ``info``: "gold_reward" on both
        batches and chosen.info["flipped"] (B,) -- True where the noise flipped the label.
        """
        n = check_int(n, "n", 1)
        noise = check_probability(noise, "noise")
        temperature = check_number(temperature, "temperature", 0.0)
        max_rounds = check_int(max_rounds, "max_rounds", 1)
        policy = self.base if policy is None else policy
        check_same_actions(self.expert, policy, "task", "policy")
        g = as_generator(seed)
        pending = torch.arange(n)  # slots still without a pair
        parts: list[tuple[Tensor, TrajectoryBatch, TrajectoryBatch, Tensor]] = []
        for _ in range(max_rounds):
            m = len(pending)
            rows = self.sample_prompts(m, g)
            both = generate(policy, rows + rows, self.max_new_tokens, generator=g)
            a, b = both[:m], both[m:]
            ra, rb = self.gold_reward(a), self.gold_reward(b)
            same = (a.mask == b.mask).all(1) & ((a.actions == b.actions) | ~a.mask).all(1)
            ok = ~same & ~torch.isclose(ra, rb, atol=1e-6, rtol=0.0)
            u_bt, u_noise = draw_uniforms(m, g)  # drawn for every candidate pair, kept or not
            prefer_a, flipped = label_pairs(ra, rb, temperature, noise, u_bt, u_noise)  # minirl's labeller
            pick = prefer_a[:, None]
            chosen = a.replace(obs=torch.where(pick, a.obs, b.obs), actions=torch.where(pick, a.actions, b.actions),
                               mask=torch.where(pick, a.mask, b.mask), log_probs=None, terminated=None)
            rejected = a.replace(obs=torch.where(pick, b.obs, a.obs), actions=torch.where(pick, b.actions, a.actions),
                                 mask=torch.where(pick, b.mask, a.mask), log_probs=None, terminated=None)
            parts.append((pending[ok], chosen[ok], rejected[ok], flipped[ok]))
            pending = pending[~ok]
            if len(pending) == 0:
                break
        else:
            raise ValueError(f"policy: after {max_rounds} rounds, {len(pending)} of {n} pairs still had identical "
                             "responses or tied gold rewards; use a more varied sampling policy")
        index = torch.cat([p[0] for p in parts])
        merged = TrajectoryBatch.cat([p[1] for p in parts] + [p[2] for p in parts])
        order = index.argsort()
        chosen, rejected = merged[:n][order], merged[n:][order]
        flipped = torch.cat([p[3] for p in parts])[order]
        chosen = chosen.replace(info={"gold_reward": self.gold_reward(chosen), "flipped": flipped})
        rejected = rejected.replace(info={"gold_reward": self.gold_reward(rejected)})
        return Preferences(chosen=chosen, rejected=rejected)

    def token_mdp(self, prompts: Sequence[Sequence[int]] | None = None, n_prompts: int = 64, seed: int = 0,
                  reward: bool = False, gamma: float = 1.0) -> TokenMDP:
        """The task's token MDP (docs/equations.md §2) over a finite prompt support.

        The support is ``prompts`` (uniform) if given, else the task's whole support when it is
        small (``prompt_support``), else ``n_prompts`` prompts drawn with ``seed``. With
        ``reward=False`` (default) it is an MDP\\R; ``reward=True`` plugs in the gold reward.
        """
        probs = None
        if prompts is None:
            support = self.prompt_support()
            if support is None:
                prompts = self.sample_prompts(check_int(n_prompts, "n_prompts", 1), as_generator(seed))
            else:
                prompts, probs = support
        return TokenMDP(self.tokenizer, [list(p) for p in prompts], context_size=self.context_size,
                        max_new_tokens=self.max_new_tokens, prompt_probs=probs, gamma=gamma,
                        reward_fn=self.step_reward if reward else None)

    def decode(self, batch: TrajectoryBatch) -> list[str]:
        """Each trajectory as text, 'prompt => response', for printing."""
        P = batch.obs.shape[1] - batch.horizon
        out = []
        for i in range(batch.batch_size):
            prompt = [int(t) for t in batch.obs[i, :P] if int(t) not in FILLERS]
            response = [int(t) for t in batch.actions[i][batch.mask[i]]]
            words = self.tokenizer.convert_ids_to_tokens
            out.append(" ".join(words(prompt)) + " => " + " ".join(words(response)))
        return out
