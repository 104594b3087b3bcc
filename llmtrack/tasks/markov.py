"""A Markov language of short "reviews", solved exactly (docs/concepts.md).

The language (all tables seeded, ids as in llmtrack.tokenizer: specials 0-4, words 5...):
    prompt      x = [BOS, w0], w0 uniform over the words (fixed length 2)
    pi_ref      a sparse random bigram pi_ref(a | prev) over words + [EOS]: each word has
                ``branching`` successors (one of them its successor on a random cycle through
                all words, so every word is reachable) with Dirichlet(1) weights summing to
                1 - eos_prob, and [EOS] with probability eos_prob. Specials other than [EOS]
                have zero probability; rows of special states put mass 1 on [EOS].
    gold reward per token (a "sentiment" reward with a length term):
                r(prev, w)   = sign(prev) * sentiment[w] - length_cost   for a word w,
                               sign(prev) = -1 if prev is "not", else +1 (negation);
                r(prev, EOS) = 0, and r = 0 in the absorbing [EOS] state.
                R(x, y) = sum_t r(y_{t-1}, y_t) with y_{-1} = w0.
    expert      the KL-regularised optimum at the task's beta (docs/equations.md §6):
                pi*(y | x) = pi_ref(y | x) exp(R(x, y) / beta) / Z(x).

The answer key. Because pi_ref and r read the context only through the previous token, the
token MDP (survey §2.2) collapses to a tabular MDP with state = previous token (S = A = V,
P[s, a, a] = 1, [EOS] absorbing, gamma = 1) and the optimum is finite-horizon soft value
iteration with prior pi_ref (minirl.mdp.soft_value_iteration, alpha = beta, horizon = T):
    V_T = 0,  Q_t(s, a) = r(s, a) + V_{t+1}(s'),  V_t(s) = beta log sum_a pi_ref(a|s) exp(Q_t(s, a)/beta),
    pi*_t(a | s) = pi_ref(a | s) exp((Q_t(s, a) - V_t(s)) / beta),
so log pi*(y | x) = log pi_ref(y | x) + R(x, y)/beta - V_0(w0)/beta, i.e. log Z(x) = V_0(w0)/beta.
Time index of a response step: t = (real tokens in its context) - 2. A response cut at T
tokens without [EOS] is a complete episode of the finite-horizon problem (V_T = 0).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from minirl.checks import check_int, check_number, check_seed
from minirl.data import TrajectoryBatch
from minirl.mdp import SoftSolution, TabularMDP, soft_value_iteration
from llmtrack.tasks.base import ExactPolicy, Task, as_generator, context_state, register_task
from llmtrack.tokenizer import BOS, EOS, SPECIAL_TOKENS, word_tokenizer

__all__ = ["MarkovTask", "BigramPolicy", "WORDS"]

_POSITIVE = [("great", 1.0), ("excellent", 1.0), ("wonderful", 1.0), ("amazing", 1.0), ("superb", 1.0),
             ("brilliant", 1.0), ("delightful", 1.0), ("loved", 1.0), ("perfect", 1.0), ("stunning", 1.0),
             ("good", 0.5), ("nice", 0.5), ("fun", 0.5), ("charming", 0.5), ("solid", 0.5), ("pleasant", 0.5),
             ("clever", 0.5), ("fresh", 0.5), ("tasty", 0.5), ("friendly", 0.5), ("cozy", 0.5), ("warm", 0.5)]
_NEGATIVE = [("awful", -1.0), ("terrible", -1.0), ("horrible", -1.0), ("disgusting", -1.0), ("worst", -1.0),
             ("boring", -1.0), ("hated", -1.0), ("rude", -1.0), ("dreadful", -1.0), ("painful", -1.0),
             ("bad", -0.5), ("bland", -0.5), ("slow", -0.5), ("noisy", -0.5), ("dull", -0.5), ("cold", -0.5),
             ("stale", -0.5), ("messy", -0.5), ("pricey", -0.5), ("weak", -0.5), ("odd", -0.5), ("meh", -0.5)]
_NEUTRAL = ["the", "food", "service", "movie", "place", "was", "is", "and", "but", "very", "really", "a",
            "staff", "plot", "music", "it", "so", "quite", "ending", "room", "this", "acting"]
# "not" first (so even tiny instances have negation), then positive / negative / neutral in turn.
WORDS: list[tuple[str, float]] = [("not", 0.0)] + [
    w for triple in zip(_POSITIVE, _NEGATIVE, [(n, 0.0) for n in _NEUTRAL]) for w in triple]
_NOT = len(SPECIAL_TOKENS)  # token id of "not"


class BigramPolicy(ExactPolicy):
    """pi_t(a | prev) from a table log_table[t, prev, a] of shape (H, V, V); t = real tokens - prompt_len.

    H = 1 is a stationary bigram (pi_ref); H = T is the time-indexed optimum pi*_t.
    """

    def __init__(self, log_table: Tensor, prompt_len: int = 2):
        super().__init__(log_table.shape[-1])
        self.register_buffer("log_table", log_table.float())
        self.prompt_len = prompt_len

    def column_log_probs(self, ids: Tensor, columns: slice) -> Tensor:
        last, n_real = context_state(ids)
        prev, t = last[:, columns], n_real[:, columns] - self.prompt_len  # (N, C)
        H = self.log_table.shape[0]
        if H == 1:
            t = torch.zeros_like(t)
        elif t.numel() and (t.min() < 0 or t.max() >= H):
            raise ValueError(f"obs: contexts must hold the {self.prompt_len}-token prompt and at most "
                             f"{H - 1} response tokens (time index in [0, {H})), got range "
                             f"[{int(t.min())}, {int(t.max())}]")
        return self.log_table[t, prev]  # (N, C, V)

    def probs_table(self) -> np.ndarray:
        """pi[t, prev, a] as float64 numpy, (H, V, V)."""
        return self.log_table.double().exp().numpy()


@register_task
class MarkovTask(Task):
    """Short reviews from a sparse bigram pi_ref, per-token sentiment reward, exact optimum (module docstring).

    Args:
        n_words: vocabulary size without specials (2 .. len(WORDS)).
        max_new_tokens: T, the response horizon.
        beta: KL weight of the expert pi* (docs/equations.md §6, convention exp(r / beta)); > 0.
        eos_prob: pi_ref's probability of [EOS] after each word, in (0, 1).
        branching: successors per word in pi_ref (1 .. n_words).
        length_cost: subtracted from every word's reward (negative: a length bonus).
        seed: seeds pi_ref.
    """

    name = "markov"

    def __init__(self, n_words: int = 60, max_new_tokens: int = 10, beta: float = 1.0, eos_prob: float = 0.2,
                 branching: int = 8, length_cost: float = 0.1, seed: int = 0):
        n_words = check_int(n_words, "n_words", 2)
        if n_words > len(WORDS):
            raise ValueError(f"n_words: at most {len(WORDS)} words are available, got {n_words}")
        self.max_new_tokens = check_int(max_new_tokens, "max_new_tokens", 1)
        self.beta = self.check_beta(beta)
        if not 0.0 < check_number(eos_prob, "eos_prob") < 1.0:
            raise ValueError(f"eos_prob: must be in (0, 1), got {eos_prob!r}")
        branching = check_int(branching, "branching", 1)
        if branching > n_words:
            raise ValueError(f"branching: must be <= n_words = {n_words}, got {branching}")
        length_cost = check_number(length_cost, "length_cost")
        seed = check_seed(seed)
        self.words = [w for w, _ in WORDS[:n_words]]
        self.tokenizer = word_tokenizer(self.words)
        self.context_size = 2 + self.max_new_tokens
        self.eos_prob, self.branching, self.length_cost, self.seed = float(eos_prob), branching, float(length_cost), seed
        V, first = len(SPECIAL_TOKENS) + n_words, len(SPECIAL_TOKENS)
        self.sentiment = np.zeros(V)
        self.sentiment[first:] = [s for _, s in WORDS[:n_words]]
        rng = np.random.default_rng(seed)
        # pi_ref: sparse random bigram; special states and [EOS] put all mass on [EOS].
        pi_ref = np.zeros((V, V))
        pi_ref[:first, EOS] = 1.0
        cycle = first + rng.permutation(n_words)
        nxt = dict(zip(cycle, np.roll(cycle, -1)))
        for w in range(first, V):
            others = rng.permutation([u for u in range(first, V) if u != nxt[w]])[: branching - 1]
            succ = np.array([nxt[w], *others])
            weights = rng.exponential(size=branching)  # Dirichlet(1) after normalising
            pi_ref[w, succ] = (1.0 - eos_prob) * weights / weights.sum()
            pi_ref[w, EOS] = eos_prob
        self.pi_ref = pi_ref
        # r(prev, a): sentiment (negated after "not") minus the length cost, for word actions only.
        sign = np.where(np.arange(V) == _NOT, -1.0, 1.0)
        R = sign[:, None] * self.sentiment[None, :] - self.length_cost
        R[:, :first] = 0.0
        R[EOS, :] = 0.0
        self.R = R
        self.prompt_probs = np.full(n_words, 1.0 / n_words)
        self._solutions: dict[float, tuple[SoftSolution, BigramPolicy]] = {}
        with np.errstate(divide="ignore"):  # log 0 = -inf: impossible tokens stay impossible
            self._base = BigramPolicy(torch.from_numpy(np.log(pi_ref))[None])

    @staticmethod
    def check_beta(beta) -> float:
        """``beta`` as a float if it is a finite number > 0; else a ValueError naming beta."""
        if isinstance(beta, (bool, np.bool_)) or not isinstance(beta, (int, float, np.integer, np.floating)) \
                or not 0 < beta < math.inf:
            raise ValueError(f"beta: must be a finite number > 0, got {beta!r}")
        return float(beta)

    # -- the answer key -------------------------------------------------------------------------
    def tabular_mdp(self) -> TabularMDP:
        """The bigram token MDP: state = previous token, P[s, a, a] = 1, [EOS] absorbing, gamma = 1."""
        V = self.vocab_size
        P = np.zeros((V, V, V))
        P[:, np.arange(V), np.arange(V)] = 1.0
        P[EOS] = 0.0
        P[EOS, :, EOS] = 1.0
        rho0 = np.zeros(V)
        rho0[len(SPECIAL_TOKENS):] = self.prompt_probs
        terminal = np.zeros(V, dtype=bool)
        terminal[EOS] = True
        return TabularMDP(P=P, R=self.R, rho0=rho0, gamma=1.0, horizon=self.max_new_tokens, terminal=terminal)

    def solve(self, beta: float | None = None) -> SoftSolution:
        """Soft value iteration with prior pi_ref (docs/equations.md §6): Q (T, V, V), V (T + 1, V), pi (T, V, V)."""
        return self._solved(beta)[0]

    def optimal_policy(self, beta: float | None = None) -> BigramPolicy:
        """The exact optimum pi*_t(a | prev) for ``beta`` (default the task's) as a policy; cached."""
        return self._solved(beta)[1]

    def _solved(self, beta: float | None) -> tuple[SoftSolution, BigramPolicy]:
        beta = self.beta if beta is None else self.check_beta(beta)
        if beta not in self._solutions:
            sol = soft_value_iteration(self.tabular_mdp(), alpha=beta, R=self.R, prior=self.pi_ref,
                                       horizon=self.max_new_tokens)  # minirl's solver: the task only calls it
            with np.errstate(divide="ignore"):
                log_pi = torch.from_numpy(np.log(sol.pi))
            self._solutions[beta] = (sol, BigramPolicy(log_pi))
        return self._solutions[beta]

    def log_partition(self, prompts, beta: float | None = None) -> Tensor:
        """log Z(x) = V_0(x) / beta for each prompt (list of id lists, or left-padded (N, P)), float64 (N,)."""
        beta = self.beta if beta is None else self.check_beta(beta)
        if not isinstance(prompts, Tensor):
            prompts = torch.tensor([list(p)[-1] for p in prompts], dtype=torch.long)[:, None]
        last = context_state(prompts.long().cpu())[0][:, -1]
        return torch.from_numpy(self.solve(beta).V[0])[last] / beta

    # -- Task interface ---------------------------------------------------------------------------
    @property
    def expert(self) -> BigramPolicy:
        return self.optimal_policy(self.beta)

    @property
    def base(self) -> BigramPolicy:
        return self._base

    def sample_prompts(self, n: int, generator=None) -> list[list[int]]:
        n = check_int(n, "n", 1)
        first = torch.multinomial(torch.from_numpy(self.prompt_probs), n, replacement=True,
                                  generator=as_generator(generator))
        return [[BOS, len(SPECIAL_TOKENS) + int(w)] for w in first]

    def prompt_support(self) -> tuple[list[list[int]], list[float]]:
        first = len(SPECIAL_TOKENS)
        return [[BOS, first + i] for i in range(len(self.words))], self.prompt_probs.tolist()

    def _step_rewards64(self, batch: TrajectoryBatch) -> Tensor:
        P = batch.obs.shape[1] - batch.horizon
        prev = context_state(batch.obs.long().cpu())[0][:, P - 1: P - 1 + batch.horizon]
        r = torch.from_numpy(self.R)[prev, batch.actions.long().cpu().clamp(0, self.vocab_size - 1)]
        return torch.where(batch.mask.cpu(), r, torch.zeros_like(r))

    def step_rewards(self, batch: TrajectoryBatch) -> Tensor:
        """r(s_t, a_t) at every step, (B, T), zero on padding; s_t = last real token of obs[:, :P + t]."""
        return self._step_rewards64(batch).float()

    def gold_reward(self, batch: TrajectoryBatch) -> Tensor:
        """R(x, y) = sum_t r(prev_t, y_t), (B,) (summed in float64)."""
        return self._step_rewards64(batch).sum(1).float()

    def step_reward(self, context: np.ndarray, action: int) -> float:
        return float(self.R[int(context[-1]), int(action)])
