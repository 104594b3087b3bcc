"""Reward models on language models (survey §4.1; docs/equations.md §5).

A reward model scores a whole (prompt, response) sequence, ``score(batch) -> (B,)``, so both
models here train with minirl's :func:`~minirl.algos.reward_model.train_reward_model` under
either objective of docs/equations.md §5 (Bradley-Terry, or classification):

    LMRewardModel          r(x, y) = w . h_L(x, y)[last real token] + b: a causal-LM backbone
                           (fine-tuned) with a scalar linear head on the final hidden state of
                           the sequence's last real token -- the usual RLHF reward model.
    frozen_linear_reward_model
                           r(x, y) = w . phi(x, y), phi = [sum of a *frozen* LM's final hidden
                           states over the response, 1] (:class:`FrozenLMFeatures`): minirl's
                           LinearRewardModel, "BT regression on embeddings" (docs/equations.md §5).

Training a transformer full-batch is slow (one step over 1000 pairs costs ~15 minibatch steps
of 64 pairs), so minirl's trainer takes ``RewardModelConfig(batch_size=...)``; the linear model
trains full-batch, its features computed once.

The sequence scored is the prompt (the first P columns of ``obs``) followed by the response
``actions`` on the mask, in llmtrack's token layout (llmtrack.policy). Fillers ([PAD],
[MASK]) are never attended to and positions count real tokens only (``attention_inputs``, as in
LMPolicy), so extra left or right padding does not change a score. The last real token is
found from that attention mask, not through ``config.pad_token_id`` alone: HuggingFace's
sequence-classification heads take the rightmost token that is not the pad id, so with no pad
id they pool the last column (a filler, for any right-padded row) and they would pool a
[MASK] filler. A model without llmtrack's pad id is refused: it was not built for this layout.

    bag_of_tokens_proxy
                           r(x, y) = w . counts(y): a deliberately simple proxy (token counts of the
                           response), which cannot represent the markov gold reward's bigrams ("not"
                           negates) -- the over-optimising proxy of the Best-of-N tests and notebook.

Evaluation (the gold reward is the task's, never seen in training), thin wrappers that score the
task's batches and call minirl.estimators:
    gold_accuracy      held-out pairs ordered by the noiseless gold reward: P(r(y_good) > r(y_bad))
    gold_correlation   Pearson correlation of r with the gold reward on samples of a policy
    gold_slope         the RM's scale on gold within prompts
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from contextlib import nullcontext
from typing import Callable

import torch
from torch import Tensor, nn

from minirl.algos.reward_model import LinearRewardModel, RewardModelConfig, train_reward_model
from minirl.checks import check_device, check_int, check_seed
from minirl.data import Preferences, TrajectoryBatch
from minirl.estimators import correlation, pair_accuracy, within_group_slope
from minirl.preferences import resample_pairs
from llmtrack.policy import LMPolicy, attention_inputs
from llmtrack.tokenizer import PAD

__all__ = ["LMRewardModel", "FrozenLMFeatures", "frozen_linear_reward_model", "sequence_ids", "score_batch",
           "gold_accuracy", "gold_correlation", "gold_slope", "evaluate_reward_model", "bag_of_tokens",
           "bag_of_tokens_proxy", "fit_linear_head"]


def sequence_ids(batch: TrajectoryBatch) -> Tensor:
    """The scored sequences, (B, P + T): prompt columns of ``obs``, then ``actions`` with [PAD] off the mask.

    Reading the response from ``actions`` (not ``obs``) scores exactly the labelled pair, and
    makes whatever sits past the mask irrelevant (docs/equations.md §5: r(x, y) of the pair).
    """
    P = batch.obs.shape[1] - batch.horizon
    if batch.obs.ndim != 2 or P < 0:
        raise ValueError(f"obs: a token batch needs obs (B, P + T) with T = {batch.horizon}, "
                         f"got {tuple(batch.obs.shape)}")
    response = torch.where(batch.mask, batch.actions.long(), torch.full_like(batch.actions.long(), PAD))
    return torch.cat([batch.obs[:, :P].long(), response], dim=1)  # (B, P + T)


def _check_model(model: nn.Module) -> None:
    pad = getattr(model.config, "pad_token_id", None)
    if pad is None:
        raise ValueError("pad_token_id: the model's config has pad_token_id = None; llmtrack models pad with "
                         f"[PAD] = {PAD} (build_model sets it), and a reward model must know its filler")
    if pad != PAD:
        raise ValueError(f"pad_token_id: the model's config has pad_token_id = {pad}, but llmtrack's token "
                         f"layout pads with [PAD] = {PAD}")


def _hidden_states(model: nn.Module, ids: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
    """Final hidden states (B, L, H) float32 (with gradients if enabled) and the last real token's index (B,)."""
    ids = ids.to(device).long()
    vocab = int(model.config.vocab_size)
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab):
        raise ValueError(f"obs: token ids must lie in [0, {vocab})")
    max_pos = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings")
    if ids.shape[1] > max_pos:
        raise ValueError(f"obs: sequence of {ids.shape[1]} tokens exceeds the model's {max_pos} positions")
    attn, positions = attention_inputs(ids)  # (B, L) each: fillers masked, positions over real tokens
    if not attn.bool().any(-1).all():
        raise ValueError("obs: every sequence needs at least one real (non-filler) token")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    with autocast:
        # the transformer body only: the LM head's (B, L, V) logits are not needed
        h = model.base_model(input_ids=ids, attention_mask=attn, position_ids=positions).last_hidden_state
    last = attn.shape[1] - 1 - attn.flip(-1).argmax(-1)  # (B,): index of the last real token
    return h.float(), last


def _hidden_size(model: nn.Module) -> int:
    return int(getattr(model.config, "hidden_size", getattr(model.config, "n_embd", 0)))


class LMRewardModel(nn.Module):
    """r(x, y) = w . h(x, y) + b, h the backbone's final hidden state at the last real token (docs/equations.md §5).

    The backbone is trained with the head (a fine-tuned reward model). It stays in eval mode,
    as in LMPolicy: the presets have no dropout, and a score must not depend on a mask draw.

    Args:
        model: a HuggingFace causal LM (``build_model``, ``load_model``, or a copy of a policy's:
            :meth:`from_policy`). It is used, not copied: training moves its weights.
        device: "auto" (CUDA if present, else CPU), "cpu", "cuda", ...; bf16 autocast on CUDA.
        seed: seeds the head's initial weights (normal, std 1 / sqrt(H + 1), bias 0: the
            scores start small and different, as in Ziegler et al. 2019).
    Raises:
        ValueError naming ``pad_token_id`` if the model's config has none or not llmtrack's [PAD].
    """

    def __init__(self, model: nn.Module, device: str = "auto", seed: int = 0):
        super().__init__()
        _check_model(model)
        self.device = check_device(device, "device")
        seed = check_seed(seed)
        self.model = model.to(self.device).eval()
        H = _hidden_size(model)
        self.head = nn.Linear(H, 1)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(1, H, generator=g) / math.sqrt(H + 1))
            self.head.bias.zero_()
        self.head.to(self.device)

    @classmethod
    def from_policy(cls, policy: LMPolicy, device: str | None = None, seed: int = 0) -> "LMRewardModel":
        """A reward model whose backbone starts as a *copy* of ``policy``'s LM (the policy is left untouched)."""
        return cls(copy.deepcopy(policy.model), device=str(policy.device) if device is None else device, seed=seed)

    def hidden(self, batch: TrajectoryBatch) -> Tensor:
        """h(x, y): the final hidden state at each sequence's last real token, (B, H)."""
        h, last = _hidden_states(self.model, sequence_ids(batch), self.device)  # (B, L, H), (B,)
        return h[torch.arange(len(last), device=self.device), last]

    def score(self, batch: TrajectoryBatch) -> Tensor:
        """r(x, y) for each of the B sequences, (B,) on ``self.device`` (docs/equations.md §5)."""
        return self.head(self.hidden(batch)).squeeze(-1)

    @property
    def n_actions(self) -> int:
        """The backbone's vocabulary size: the token ids it can score (compared with a policy's)."""
        return int(self.model.config.vocab_size)


class FrozenLMFeatures:
    """phi(x, y) = [sum_t h_t(x, y), 1]: a frozen LM's final hidden states summed over the response tokens.

    The features a linear reward model reads (docs/equations.md §5, BT regression on embeddings).
    Why a sum over the response: then w . phi = sum_t w . h_t is a per-token reward linear in
    each position's hidden state, summed -- the additive form of the markov gold reward
    (R = sum_t r(y_{t-1}, y_t), a sentiment per word and a cost per token). The last real
    token's state (what :class:`LMRewardModel`'s head reads) is the wrong summary of a
    *frozen* next-token predictor: at [EOS] it encodes what comes next, not what came before.
    Measured on the markov pipeline task (nano GPT-2 base, 1000 noiseless pairs, held-out
    accuracy / gold correlation, BT): last token 0.62 / 0.25, mean over the response
    0.77 / 0.62, sum 0.80 / 0.76. The constant 1 lets the classification objective place its
    threshold; Bradley-Terry ignores it (it cancels in r+ - r-).

    Computed under no_grad and cached per batch object (training calls ``features`` on the same
    two batches every full-batch step); returns (B, H + 1) float32 on the CPU. Extra left or
    right padding leaves phi unchanged (fillers are not attended to, and padded response
    columns are off the mask).

    Args:
        model: a HuggingFace causal LM or an LMPolicy; a frozen *copy* is kept.
        device: where the LM runs ("auto", "cpu", ...).
        cache_size: batches remembered (least recently used dropped first).
    """

    def __init__(self, model: nn.Module | LMPolicy, device: str = "auto", cache_size: int = 8):
        lm = model.model if isinstance(model, LMPolicy) else model
        _check_model(lm)
        self.device = check_device(device, "device")
        cache_size = check_int(cache_size, "cache_size", 1)
        self.model = copy.deepcopy(lm).to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.dim = _hidden_size(lm) + 1
        self.n_actions = int(lm.config.vocab_size)  # the token ids it reads (compared with a policy's)
        self.cache_size = cache_size
        self._cache: OrderedDict[int, tuple[TrajectoryBatch, Tensor]] = OrderedDict()

    @torch.no_grad()
    def __call__(self, batch: TrajectoryBatch) -> Tensor:
        hit = self._cache.get(id(batch))
        if hit is not None and hit[0] is batch:  # the batch is held, so its id cannot be reused meanwhile
            self._cache.move_to_end(id(batch))
            return hit[1]
        h, _ = _hidden_states(self.model, sequence_ids(batch), self.device)  # (B, P + T, H)
        T = batch.horizon
        mask = batch.mask.to(self.device)[..., None]  # (B, T, 1): response tokens, [EOS] included
        summed = (h[:, h.shape[1] - T:] * mask).sum(1).cpu()  # (B, H)
        phi = torch.cat([summed, torch.ones(len(summed), 1)], dim=1)  # (B, H + 1)
        self._cache[id(batch)] = (batch, phi)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return phi


def frozen_linear_reward_model(model: nn.Module | LMPolicy, device: str = "auto") -> LinearRewardModel:
    """r(x, y) = w . phi(x, y) on :class:`FrozenLMFeatures` of ``model`` (docs/equations.md §5); w starts at 0.

    Only w (H + 1 numbers, on the CPU) is trained; train it full-batch (the features of the two
    preference batches are then computed once).
    """
    features = FrozenLMFeatures(model, device=device)
    linear = LinearRewardModel(features, features.dim)
    linear.n_actions = features.n_actions  # a vocabulary, like every llmtrack reward model
    return linear


def fit_linear_head(features: FrozenLMFeatures, prefs: Preferences, config: RewardModelConfig) -> LinearRewardModel:
    """A linear head w . phi on ``features`` fitted to ``prefs`` by minirl's trainer, then frozen (a scorer)."""
    model = LinearRewardModel(features, features.dim)
    train_reward_model(model, prefs, config)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# -- evaluation -------------------------------------------------------------------------------

@torch.no_grad()
def score_batch(model: nn.Module, batch: TrajectoryBatch, chunk: int = 1024) -> Tensor:
    """``model.score`` over ``batch`` in chunks of ``chunk`` sequences, without gradients: (B,) float64 on the CPU."""
    chunk = check_int(chunk, "chunk", 1)
    parts = [model.score(batch[torch.arange(i, min(i + chunk, batch.batch_size))]).double().cpu()
             for i in range(0, batch.batch_size, chunk)]
    return torch.cat(parts)


def _gold(batch: TrajectoryBatch, gold_reward: Callable[[TrajectoryBatch], Tensor] | None, field: str) -> Tensor:
    if gold_reward is not None:
        return gold_reward(batch).double().cpu()
    if "gold_reward" not in batch.info:
        raise ValueError(f"{field}: has no info['gold_reward']; pass gold_reward (e.g. task.gold_reward)")
    return batch.info["gold_reward"].double().cpu()


def gold_accuracy(model: nn.Module, prefs: Preferences,
                  gold_reward: Callable[[TrajectoryBatch], Tensor] | None = None) -> float:
    """Held-out preference accuracy against the noiseless gold ordering (docs/equations.md §5).

    Each pair is ordered by the gold reward, whatever its (possibly flipped) label says; the
    accuracy is the share of pairs where the model's score orders them the same way, a tie in
    score counting 1/2 (a constant model scores 0.5). Pairs tied in gold are left out
    (:func:`minirl.estimators.pair_accuracy`). ``gold_reward`` defaults to the batches' ``info["gold_reward"]``
    (``Task.preferences`` sets it).
    """
    g_c, g_r = _gold(prefs.chosen, gold_reward, "chosen"), _gold(prefs.rejected, gold_reward, "rejected")
    if not (g_c != g_r).any():
        raise ValueError("prefs: every pair is tied in gold reward")
    return pair_accuracy(score_batch(model, prefs.chosen), score_batch(model, prefs.rejected), g_c, g_r)


def gold_correlation(model: nn.Module, batch: TrajectoryBatch,
                     gold_reward: Callable[[TrajectoryBatch], Tensor] | None = None) -> float:
    """Pearson correlation of r(x, y) with the gold reward over the B sequences of ``batch`` (docs/equations.md §5).

    Both BT (a shift) and the classification objective (a monotone, not affine, calibration)
    leave the scale of r free, so the correlation, not the error, is the comparable number.
    NaN if either is constant. ``gold_reward`` defaults to ``batch.info["gold_reward"]``.
    """
    return correlation(score_batch(model, batch), _gold(batch, gold_reward, "batch"))


def gold_slope(model: nn.Module, batch: TrajectoryBatch,
               gold_reward: Callable[[TrajectoryBatch], Tensor] | None = None) -> float:
    """The reward model's scale: least-squares slope of r(x, y) on the gold reward *within* prompts.

    Both are centred per prompt (the rows of ``batch`` that share a prompt), since Bradley-Terry
    identifies r only up to a per-prompt shift. With labels drawn as P(y1 > y2) = sigmoid(R1 - R2)
    a perfect BT fit has slope 1; an RM that is right in direction but too flat has slope s < 1, and
    maximising E[r] - beta KL against it is, to first order, maximising E[R] - (beta / s) KL: the
    policy stops at pi*_{beta/s}, short of pi*_beta (docs/equations.md §6). Meaningless for the
    classification objective, whose scale is not tied to the labels' model. NaN if the gold reward
    does not vary within any prompt. ``gold_reward`` defaults to ``batch.info["gold_reward"]``.
    """
    gold = _gold(batch, gold_reward, "batch")
    score = score_batch(model, batch).to(gold.dtype)
    P = batch.obs.shape[1] - batch.horizon
    _, group = torch.unique(batch.obs[:, :P], dim=0, return_inverse=True)  # rows that share a prompt
    return within_group_slope(gold, score, group)


def evaluate_reward_model(model: nn.Module, task, policy=None, n_pairs: int = 1000, n_samples: int = 1000,
                          seed: int = 12345) -> dict[str, float]:
    """Held-out metrics of a reward model on ``task`` (docs/equations.md §5); a flat dict.

    ``eval/accuracy``: :func:`gold_accuracy` on ``n_pairs`` fresh noiseless pairs from ``policy``;
    ``eval/correlation``: :func:`gold_correlation` on ``n_samples`` fresh samples of ``policy``.
    ``policy`` defaults to the task's base generator (where its preference pairs come from);
    ``seed`` draws the held-out data (keep it apart from the training seeds).
    """
    n_pairs, n_samples = check_int(n_pairs, "n_pairs", 1), check_int(n_samples, "n_samples", 2)
    seed = check_seed(seed)
    sampler = task.base if policy is None else policy
    prefs = task.preferences(n_pairs, noise=0.0, seed=seed, policy=sampler)
    samples = task.rollout(sampler, n_samples, seed=seed + 1)
    return {"eval/accuracy": gold_accuracy(model, prefs, task.gold_reward),
            "eval/correlation": gold_correlation(model, samples, task.gold_reward)}


# -- a deliberately simple proxy ----------------------------------------------------------------------

def bag_of_tokens(vocab_size: int):
    """phi(batch) = counts of each token id in the response (real steps only), (B, V) float32."""
    V = check_int(vocab_size, "vocab_size", 1)

    def features(batch: TrajectoryBatch) -> Tensor:
        one_hot = torch.nn.functional.one_hot(batch.actions.long().clamp(0, V - 1), V)  # (B, T, V)
        return (one_hot * batch.mask[..., None]).sum(1).float()

    return features


def bag_of_tokens_proxy(task, prefs: Preferences, config: RewardModelConfig = RewardModelConfig(),
                        bootstrap: int | None = None) -> LinearRewardModel:
    """A proxy reward r(y) = w . counts(y) (docs/equations.md §5) fitted to ``prefs`` with minirl's trainer.

    ``bootstrap`` (a seed) resamples the pairs with replacement first: members of an ensemble that
    see different data (a linear model from w = 0 with full-batch Adam is otherwise deterministic).
    """
    if not isinstance(prefs, Preferences):
        raise ValueError(f"prefs: must be minirl Preferences, got {type(prefs).__name__}")
    if bootstrap is not None:
        prefs = resample_pairs(prefs, torch.Generator().manual_seed(check_seed(bootstrap, "bootstrap")))
    model = LinearRewardModel(bag_of_tokens(task.vocab_size), task.vocab_size)
    train_reward_model(model, prefs, config)
    return model
