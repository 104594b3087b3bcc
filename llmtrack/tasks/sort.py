"""Sorting digits: a verifiable task with a programmatic expert that can be queried anywhere.

    prompt    x = [BOS, sort, d_1 ... d_n, =], n uniform in [min_len, max_len], digits iid uniform
    answer    y* = sorted(d_1 ... d_n), then [EOS]; T = max_len + 1
    gold      r(x, y) = 1 if y == y* exactly (digits and the final [EOS]), else 0;
              ``accuracy`` is a graded version (fraction of the n + 1 answer positions right)

State of a context: the multiset still to emit,
    rem = max(count(prompt digits) - count(digits emitted after '='), 0)   (per digit),
so a digit that was not available when emitted is ignored (it subtracts nothing).
Expert (DAgger's oracle, survey Theorem 2.3): a*(s) = min(rem), or [EOS] when rem is empty --
after a mistake it sorts what remains. Deterministic: log-probs 0 for a*, -inf otherwise.
Base generator ("a sloppy sorter"): knows the format and the multiset but only partly the
order; with probability ``base_skill`` it emits min(rem), otherwise a uniformly random element
of rem (a random remaining position), then [EOS]:
    pi_base(d | s) = base_skill 1[d = min rem] + (1 - base_skill) rem_d / |rem|.
base_skill = 0 is a uniformly random permutation of the prompt's digits (right with
probability prod_d n_d! / n!), 1 is the expert. The default 0.5 gets short lists right often
and long ones rarely (~75% at n = 2, ~4% at n = 8 for distinct digits), which gives
best-of-N and GRPO something to find and preferences a mix of right and wrong answers.
Regret (what coached labels read, :mod:`minirl.algos.coaching`): with the expert completing after a,
    regret(s_t, a) = gold(y_<t, a*(s_t), expert completion) - gold(y_<t, a, expert completion).
Under the exact-match gold reward it is exact in closed form. On track (y_<t equals the first t
target tokens) the completion after a* = y*_t is y* (gold 1) and after any other token it is wrong
(gold 0): regret = 1[a != y*_t]. Off track (an earlier token wrong) every completion scores 0:
regret = 0 for every token -- nothing is left to lose, so every token is "recoverable" there.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from minirl.checks import check_int, check_probability
from minirl.data import TrajectoryBatch
from llmtrack.tasks.base import ExactPolicy, Task, as_generator, register_task
from llmtrack.tokenizer import BOS, EOS, PAD, SPECIAL_TOKENS, word_tokenizer

__all__ = ["SortTask", "SortPolicy", "DIGIT0", "SORT", "EQUALS"]

DIGIT0 = len(SPECIAL_TOKENS)  # ids of "0".."9" are DIGIT0 .. DIGIT0 + 9
SORT, EQUALS = DIGIT0 + 10, DIGIT0 + 11
VOCAB = [str(d) for d in range(10)] + ["sort", "="]


def remaining(ids: Tensor, columns: slice) -> Tensor:
    """rem (N, C, 10): digits of the prompt not yet emitted, for the context ending at each column."""
    is_eq = ids == EQUALS
    after = is_eq.long().cumsum(1) > 0  # at or after the (first) '='
    if not after[:, columns].all():
        raise ValueError("obs: every sort context must contain the prompt's '=' (a complete prompt)")
    is_digit = (ids >= DIGIT0) & (ids < DIGIT0 + 10)
    onehot = F.one_hot((ids - DIGIT0).clamp(0, 9), 10) * is_digit[..., None]  # (N, L, 10)
    prompt = (onehot * ~after[..., None]).cumsum(1)[:, columns]
    emitted = (onehot * after[..., None]).cumsum(1)[:, columns]
    return (prompt - emitted).clamp_min(0)


class SortPolicy(ExactPolicy):
    """pi(d | s) = skill 1[d = min rem] + (1 - skill) rem_d / |rem|; [EOS] when rem is empty.

    skill = 1: the expert (sorts what remains); skill < 1: the base generator (module docstring).
    """

    def __init__(self, vocab_size: int, skill: float = 1.0):
        super().__init__(vocab_size)
        self.skill = float(skill)

    def column_log_probs(self, ids: Tensor, columns: slice) -> Tensor:
        rem = remaining(ids, columns).double()  # (N, C, 10)
        k = rem.sum(-1, keepdim=True)
        smallest = F.one_hot((rem > 0).double().argmax(-1), 10).double()
        digit_probs = self.skill * smallest + (1.0 - self.skill) * rem / k.clamp_min(1.0)
        probs = torch.zeros(*rem.shape[:2], self.n_actions, dtype=torch.float64)
        probs[..., DIGIT0: DIGIT0 + 10] = torch.where(k > 0, digit_probs, torch.zeros_like(digit_probs))
        probs[..., EOS] = (k[..., 0] == 0).double()
        return probs.log().float()


@register_task
class SortTask(Task):
    """Sort a list of digits (module docstring).

    Args:
        min_len, max_len: prompt lengths n, 1 <= min_len <= max_len <= 20.
        base_skill: the base generator's probability of emitting the right digit, in [0, 1].
    """

    name = "sort"

    def __init__(self, min_len: int = 2, max_len: int = 8, base_skill: float = 0.5):
        self.min_len = check_int(min_len, "min_len", 1)
        self.max_len = check_int(max_len, "max_len", 1)
        if not self.min_len <= self.max_len <= 20:
            raise ValueError(f"max_len: must satisfy min_len <= max_len <= 20, got min_len={min_len}, max_len={max_len}")
        self.base_skill = check_probability(base_skill, "base_skill")
        self.tokenizer = word_tokenizer(VOCAB)
        self.max_new_tokens = self.max_len + 1
        self.context_size = (self.max_len + 3) + self.max_new_tokens
        self._expert = SortPolicy(self.vocab_size, 1.0)
        self._base = SortPolicy(self.vocab_size, self.base_skill)

    @property
    def expert(self) -> SortPolicy:
        return self._expert

    @property
    def base(self) -> SortPolicy:
        return self._base

    def sample_prompts(self, n: int, generator=None) -> list[list[int]]:
        n = check_int(n, "n", 1)
        g = as_generator(generator)
        lengths = torch.randint(self.min_len, self.max_len + 1, (n,), generator=g)
        digits = torch.randint(0, 10, (n, self.max_len), generator=g) + DIGIT0
        return [[BOS, SORT, *digits[i, : lengths[i]].tolist(), EQUALS] for i in range(n)]

    def targets(self, batch: TrajectoryBatch, width: int | None = None) -> tuple[Tensor, Tensor]:
        """(target (B, W), n (B,)): sorted prompt digits then [EOS], [PAD] after; W = width or T."""
        P = batch.obs.shape[1] - batch.horizon
        prompt = batch.obs[:, :P].long().cpu()
        is_digit = (prompt >= DIGIT0) & (prompt < DIGIT0 + 10)
        n = is_digit.sum(1)
        W = max(width or batch.horizon, int(n.max()) + 1)
        key = torch.where(is_digit, prompt, torch.full_like(prompt, 10**6)).sort(1).values
        key = torch.cat([key, torch.full((len(n), W), 10**6)], 1)[:, :W]
        col = torch.arange(W)[None]
        target = torch.where(col < n[:, None], key, torch.full_like(key, PAD))
        return torch.where(col == n[:, None], torch.full_like(target, EOS), target), n

    def _aligned(self, batch: TrajectoryBatch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        target, n = self.targets(batch)
        W, T = target.shape[1], batch.horizon
        actions = F.pad(batch.actions.long().cpu(), (0, W - T), value=PAD)
        mask = F.pad(batch.mask.cpu(), (0, W - T), value=False)
        return target, n, torch.where(mask, actions, torch.full_like(actions, -1)), mask

    def gold_reward(self, batch: TrajectoryBatch) -> Tensor:
        """1.0 where the response is exactly the sorted digits followed by [EOS], else 0.0; (B,)."""
        target, n, response, mask = self._aligned(batch)
        answer = torch.arange(target.shape[1])[None] <= n[:, None]
        return ((response == target) & answer | ~answer & ~mask).all(1).float()

    def accuracy(self, batch: TrajectoryBatch) -> Tensor:
        """Fraction of the n + 1 answer positions (digits and [EOS]) the response gets right, (B,)."""
        target, n, response, _ = self._aligned(batch)
        answer = torch.arange(target.shape[1])[None] <= n[:, None]
        return ((response == target) & answer).sum(1).float() / (n + 1).float()

    def regret(self, batch: TrajectoryBatch) -> Tensor:
        """The expert's regret at every response step, (B, T, V) float32 (module docstring):
        1 for every token but the target where the response so far is right, 0 elsewhere (and on padding)."""
        target, _ = self.targets(batch)
        target = target[:, : batch.horizon]  # (B, T)
        mask = batch.mask.cpu()
        right = (batch.actions.long().cpu() == target) & mask
        on_track = torch.cat([torch.ones(len(target), 1, dtype=torch.long), right.long().cumprod(1)[:, :-1]], 1)
        on_track = on_track.bool() & mask  # (B, T): every earlier token right
        wrong = torch.arange(self.vocab_size)[None, None] != target[..., None]  # (B, T, V)
        return (on_track[..., None] & wrong).float()

    def step_reward(self, context: np.ndarray, action: int) -> float:
        if int(action) != EOS:
            return 0.0
        context = [int(t) for t in context]
        eq = context.index(EQUALS)
        digits = [t for t in context[:eq] if DIGIT0 <= t < DIGIT0 + 10]
        return float(context[eq + 1:] == sorted(digits))
