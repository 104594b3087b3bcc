"""The token-level MDP of a language model (survey §2.2, Table 2; docs/equations.md §2).

    S = V^C (a context window of C tokens), A = V (the vocabulary),
    s' = Concat(s, a), any state containing [EOS] is absorbing,
    at most T new tokens, rho0 = the prompt distribution, gamma <= 1,
    R missing (an MDP\\R) unless a reward function is plugged in.

Observations follow the survey's worked example: the context, right-padded with [MASK] to C.

>>> from llmtrack.tokenizer import word_tokenizer
>>> tok = word_tokenizer("The color of the sky is blue".split())
>>> env = TokenMDP(tok, prompts=["The color of the sky"], context_size=7, max_new_tokens=2)
>>> s0, _ = env.reset(seed=0)
>>> env.render_tokens(s0)
'The | color | of | the | sky | [MASK] | [MASK]'
>>> s1, r, terminated, truncated, _ = env.step(tok.convert_tokens_to_ids("is"))
>>> env.render_tokens(s1)
'The | color | of | the | sky | is | [MASK]'
>>> s2, r, terminated, truncated, _ = env.step(tok.convert_tokens_to_ids("blue"))
>>> env.render_tokens(s2), truncated
('The | color | of | the | sky | is | blue', True)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np

from llmtrack.tokenizer import MASK, check_tokenizer

__all__ = ["TokenMDP"]

RewardFn = Callable[[np.ndarray, int], float]  # (context ids so far, action) -> reward


class TokenMDP(gym.Env):
    """A gymnasium env over token ids; see the module docstring.

    Args:
        tokenizer: a tokenizer with EOS and PAD (see :mod:`llmtrack.tokenizer`).
        prompts: the support of rho0, as strings or lists of token ids.
        prompt_probs: rho0's probabilities (default uniform).
        context_size: C, the window (prompt + response must fit: len(prompt) + T <= C).
        max_new_tokens: T >= 1.
        gamma: discount in (0, 1], kept for solvers and returns (gamma < 1 prefers short answers).
        reward_fn: r(context, action); None makes this an MDP\\R (reward 0.0, info["reward_hidden"]).
    """

    metadata = {"render_modes": []}

    def __init__(self, tokenizer, prompts: Sequence[str | Sequence[int]], context_size: int, max_new_tokens: int,
                 prompt_probs: Sequence[float] | None = None, gamma: float = 1.0, reward_fn: RewardFn | None = None):
        check_tokenizer(tokenizer)
        if int(max_new_tokens) != max_new_tokens or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: T must be an integer >= 1, got {max_new_tokens}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma: must be in (0, 1], got {gamma}")
        if len(prompts) == 0:
            raise ValueError("prompts: rho0 needs at least one prompt")
        self.tokenizer, self.vocab_size = tokenizer, len(tokenizer)
        self.prompts = [np.asarray(tokenizer(p, add_special_tokens=False).input_ids if isinstance(p, str) else p,
                                   dtype=np.int64) for p in prompts]
        for i, p in enumerate(self.prompts):
            if len(p) == 0:
                raise ValueError(f"prompts: prompt {i} is empty")
            if p.min() < 0 or p.max() >= self.vocab_size:
                raise ValueError(f"prompts: prompt {i} has a token id outside the vocabulary [0, {self.vocab_size})")
            if len(p) + max_new_tokens > context_size:
                raise ValueError(f"prompts: prompt {i} has {len(p)} tokens; with T = {max_new_tokens} new tokens "
                                 f"it does not fit the context window C = {context_size}")
        probs = np.full(len(self.prompts), 1 / len(self.prompts)) if prompt_probs is None else np.asarray(prompt_probs, float)
        if probs.shape != (len(self.prompts),) or np.any(probs < 0) or not np.isclose(probs.sum(), 1.0):
            raise ValueError("prompt_probs: must be a distribution over the prompts")
        self.prompt_probs = probs / probs.sum()
        self.context_size, self.max_new_tokens, self.gamma = int(context_size), int(max_new_tokens), float(gamma)
        self.eos_id = int(tokenizer.eos_token_id)
        self.reward_fn = reward_fn
        self.observation_space = gym.spaces.Box(0, self.vocab_size - 1, shape=(self.context_size,), dtype=np.int64)
        self.action_space = gym.spaces.Discrete(self.vocab_size)
        self._context = np.full(self.context_size, MASK, dtype=np.int64)
        self._length, self._t = 0, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        prompt = self.prompts[int(self.np_random.choice(len(self.prompts), p=self.prompt_probs))]
        self._context = np.full(self.context_size, MASK, dtype=np.int64)
        self._context[: len(prompt)] = prompt
        self._length, self._t = len(prompt), 0
        return self._context.copy(), {"prompt_length": len(prompt)}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action: must be a token id in [0, {self.vocab_size}), got {action!r}")
        if self._t >= self.max_new_tokens or self.eos_id in self._context[: self._length]:
            raise ValueError("action: the episode has ended (EOS emitted or T tokens generated); call reset()")
        info: dict[str, Any] = {}
        if self.reward_fn is None:
            reward, info["reward_hidden"] = 0.0, True
        else:
            reward = float(self.reward_fn(self._context[: self._length].copy(), int(action)))
        self._context[self._length] = int(action)  # s' = Concat(s, a)
        self._length += 1
        self._t += 1
        terminated = int(action) == self.eos_id  # [EOS] makes the state absorbing: the episode ends
        truncated = self._t >= self.max_new_tokens and not terminated
        return self._context.copy(), reward, terminated, truncated, info

    def render_tokens(self, obs: np.ndarray) -> str:
        """The context as ' | '-separated tokens, as the survey writes states."""
        return " | ".join(self.tokenizer.convert_ids_to_tokens([int(i) for i in obs]))
