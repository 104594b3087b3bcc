"""Reward over-optimisation on a language model: Best-of-N and PPO against a biased proxy, watched with the gold reward.

Survey §4.5 and Fig. 2 after Gao et al. (2023); docs/equations.md §8. A policy is optimised against a *proxy*
reward model fitted to preferences, and the task's *gold* reward (never seen by the learner) is measured
along the way, against d = sqrt(KL(pi || pi_0)), with Gao et al.'s forms (:mod:`minirl.scaling_laws`):

    Best-of-N   R_gold(d) - R_gold(0) ≈ d (alpha - beta d)          fit_gao(form="bon")
    RL (PPO)    R_gold(d) - R_gold(0) ≈ d (alpha - beta log d)      fit_gao(form="rl")

The annotator and its systematic error. Pairs (two samples of pi_ref per prompt) are labelled by an
annotator that pays a bonus b (``annotator_bonus``) to a review that *mentions* a spurious word w_s
(``spurious_word``, default "food": neutral in gold, so a use costs the length cost, -0.1):

    A(x, y) = R_gold(x, y) + b 1[w_s in y],        chosen = the response with the larger A

(a tie keeps the gold order; ``noise`` flips labels at random on top; :func:`minirl.preferences.label_pairs`).
The proxy is additive over the response, r(x, y) = w . [sum_t h_t(x, y), 1] on the frozen base model's
hidden states (:func:`~llmtrack.reward_model.frozen_linear_reward_model`), fitted by Bradley-Terry, so it
cannot represent "once": it pays about b per *use* of w_s, more than any real word earns (1 - 0.1 in gold).
Near pi_0 it is nearly right; its maximiser repeats w_s, ten uses worth -1 in gold. So the gold gain of a
policy optimised against it rises, then falls once the policy spends its KL on w_s -- a consequence of the
bias and the proxy's form, not of one seed's noise. :func:`exact_proxy_optimum` solves the KL-regularised
optimum of the idealised proxy r + b 1[y_t = w_s] exactly: its gold gain peaks inside and ends at ten uses
for any b > 1, and only rises for b = 0 (the honest control). The bias is in the labels, so more pairs make
the proxy *more* reliably wrong (``n_pairs`` 1000). Random label noise alone (the earlier design) made the
outcome depend on the seed and even on the CPU's float rounding (docs/results/overoptimisation.md).

The world (the pipelines' markov task, ``make_pipeline_task("markov")``: 20 words, T = 10, beta = 1):

    pi_0      the nano GPT-2 base model pre-trained on pi_ref's corpus (cached): BoN samples it, PPO starts
              from it, every KL is measured against it (as Gao et al. do)
    proxy     the linear head above on pi_0's features, Bradley-Terry on ``n_pairs`` annotated pairs
    ensemble  ``ensemble_size`` heads on the same pairs, member m on the features of a base model pre-trained
              with seed ``base_seed + m`` (member 0 is the proxy) -- or "bootstrap": heads on pi_0's features,
              each on a resample of the pairs -- scored mean - k std (:class:`minirl.scorers.EnsembleScorer`;
              Coste et al. 2024). The members share the annotator's bias, so it is not expected to remove it.
    BoN       one pool of max(bon_ns) samples of pi_0 for each of ``bon_prompts`` prompts, every N estimated
              from it without bias (:func:`minirl.algos.best_of_n.pool_best_of_n`), KL = log N - (N - 1)/N;
              against the proxy, the ensemble and the gold reward itself ("oracle")
    PPO       :func:`~llmtrack.pipelines.rlhf.train_rlhf` from pi_0 against the proxy (or the ensemble) with a
              small KL coefficient ``ppo_beta``; every ``eval_every`` iterations ``n_eval`` fresh samples (same
              prompts and seed at every checkpoint) give proxy and gold means, uses of w_s and KL(pi || pi_0)
              from exact log-probs of both (:func:`~llmtrack.tasks.answer_key.sampled_kl`)

Best-of-N only re-weights pi_0's samples: N = 256 costs at most 4.5 nats (d = 2.1), and pi_0's responses use
w_s at most two or three times, so its winners drift towards w_s but its gold gain does not turn down within
reach; PPO pays its KL where the proxy is wrong and traces the whole curve.

Over-optimised (:func:`curve_summary`): with g_i the gold gain at checkpoint (or N) i, s_i its standard error
(s_0 = 0) and p = argmax_i g_i, a curve over-optimises if

    g_p - g_0 > Z sqrt(s_p^2 + s_0^2)   and   g_p - g_last > Z sqrt(s_p^2 + s_last^2),   Z = 2.

Seed sweeps (:func:`run_overoptimisation_sweep`) redraw the pairs, the BoN pool, PPO's samples and the
evaluation samples per seed; the base models stay. Each claim of :data:`CLAIMS` is counted as (held, total);
:func:`overoptimisation_claims` is the entry point for cross-CPU checks. Tables and figures:
:mod:`llmtrack.plots`; measurements with their commands: docs/results/overoptimisation.md.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from minirl.algos.bc import BCConfig
from minirl.algos.best_of_n import pool_best_of_n
from minirl.algos.reward_model import LinearRewardModel, RewardModelConfig
from minirl.checks import check_int, check_number, check_seed_list
from minirl.data import Preferences, TrajectoryBatch
from minirl.estimators import mean_se
from minirl.finite_horizon import evaluate_finite_horizon
from minirl.mdp import soft_value_iteration
from minirl.preferences import label_pairs, resample_pairs
from minirl.scaling_laws import GaoFit, fit_gao, fitted_peak
from minirl.scorers import EnsembleScorer, as_scorer
from llmtrack.models import FAMILIES, PRESETS
from llmtrack.pipelines.base import BaseModel
from llmtrack.pipelines.best_of_n import sample_pool
from llmtrack.pipelines.recipe import TASK_SETTINGS, make_pipeline_task
from llmtrack.pipelines.rlhf import RLHFConfig, lm_ppo_config, train_rlhf
from llmtrack.policy import LMPolicy, frozen_reference
from llmtrack.reward_model import FrozenLMFeatures, fit_linear_head, gold_accuracy, gold_correlation, score_batch
from llmtrack.tasks.answer_key import sampled_kl
from llmtrack.tasks.base import as_generator
from llmtrack.tasks.markov import WORDS
from llmtrack.tokenizer import SPECIAL_TOKENS

__all__ = ["OveroptimisationConfig", "run_overoptimisation", "run_overoptimisation_sweep", "overoptimisation_claims",
           "annotator_reward", "annotated_preferences", "mentions", "exact_proxy_optimum", "curve_summary",
           "member_features", "ensemble_members", "SCORERS", "METHODS", "ENSEMBLE_MEMBERS", "VOCABULARY", "Z",
           "CLAIMS", "EFFECTS", "World", "bon_row"]

SCORERS = ("proxy", "ensemble")
"""What is optimised: the single proxy, or the ensemble's mean - k std."""
ENSEMBLE_MEMBERS = ("base_seeds", "bootstrap")
"""How the ensemble's members differ: their base model's pretraining seed, or a bootstrap of the pairs."""
METHODS = ("bon", "ppo")
"""How: Best-of-N (Gao's "bon" form) or PPO (Gao's "rl" form)."""
GAO_FORM = {"bon": "bon", "ppo": "rl"}
VOCABULARY = tuple(w for w, _ in WORDS[:TASK_SETTINGS["markov"]["n_words"]])
"""The words of the experiment's task (the pipelines' markov task): the candidates for ``spurious_word``."""
Z = 2.0
"""A rise or fall counts when it exceeds Z standard errors of the difference (module docstring)."""

# keep every stage's randomness apart from the others' (and from the base model's corpus, seed base_seed)
_PREF_SEED, _FLIP_SEED, _BOOT_SEED, _HELD_SEED, _BON_SEED, _EVAL_SEED = 1000, 10_000, 50_000, 20_000, 30_000, 40_000


@dataclass(frozen=True)
class OveroptimisationConfig:
    """Settings of the over-optimisation experiment (module docstring); a bad field is a ValueError naming it.

    ``OveroptimisationConfig.fast()`` gives the small budgets of the tests and the notebook's fast mode.
    """

    seed: int = 0
    """Seeds the pairs and their flips, the bootstrap resamples, the BoN pool, PPO and the evaluation
    samples (a sweep varies it; :func:`run_overoptimisation_sweep`)."""
    base_seed: int = 0
    """Seed of the base model pi_0 (its corpus, initial weights and pre-training minibatches)."""
    spurious_word: str = "food"
    """The word whose mention the annotator rewards (one of ``VOCABULARY``; "food" is neutral in gold)."""
    annotator_bonus: float = 2.5
    """b: what the annotator adds to the gold reward of a response that mentions ``spurious_word`` (once,
    however often); >= 0, 0 being an honest annotator (the control)."""
    n_pairs: int = 1000
    """Annotated pairs (two samples of pi_ref per prompt) the proxy and every ensemble member are fitted to."""
    noise: float = 0.0
    """Probability of flipping each annotated label at random on top of the bias, in [0, 0.5)."""
    rm: RewardModelConfig = RewardModelConfig(n_updates=300, lr=5e-2)
    """Training of each linear head: full-batch Adam, Bradley-Terry (its seed is unused: full-batch)."""
    ensemble_size: int = 5
    """Members of the ensemble (module docstring)."""
    ensemble_members: str = "base_seeds"
    """How the members differ (``ENSEMBLE_MEMBERS``): "base_seeds" -- member m is a linear head on the frozen
    features of the base model pre-trained with seed ``base_seed + m`` (m = 0 is pi_0, so member 0 is the
    proxy); "bootstrap" -- heads on pi_0's features, each on a bootstrap resample of the pairs."""
    ensemble_k: float = 1.0
    """The ensemble scores mean - k std over members (k = 0: the plain mean)."""
    bon_ns: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    """N of Best-of-N (at least three values, for the fit)."""
    bon_prompts: int = 32
    """Prompts of the Best-of-N pool; each has max(bon_ns) samples of pi_0."""
    ppo_beta: float = 0.05
    """PPO's KL coefficient: small, so the policy can run far from pi_0."""
    ppo_lr: float = 6e-4
    """PPO's Adam learning rate: twice the alignment pipeline's, so that PPO reaches the proxy's maximiser
    (d ≈ 5, the policy nearly deterministic) within ``ppo_tokens``."""
    ppo_tokens: int = 12_000
    """Response tokens PPO samples in all (per run: one against the proxy, one against the ensemble)."""
    ppo_prompts: int = 64
    """Prompts (one response each) per PPO iteration."""
    eval_every: int = 2
    """Measure the policy every this many PPO iterations (and before the first and after the last)."""
    n_eval: int = 400
    """Samples per checkpoint (the same prompts and sampling seed at every checkpoint)."""
    n_eval_pairs: int = 1000
    """Held-out pairs for the reward models' accuracy against the gold order (and pi_0 samples for their
    correlation with gold)."""
    pretrain_sequences: int = 4000
    """Base model: pi_ref samples it is pre-trained on (the pipelines' setting: 4000)."""
    pretrain_updates: int = 800
    """Base model: BC updates of pre-training, minibatches of 64 at 3e-3 (the pipelines' setting: 800)."""
    size: str = "nano"
    """Model size preset of the base model."""
    family: str = "gpt2"
    """Model family: "gpt2" or "llama"."""
    device: str = "cpu"
    """"cpu" (bit-reproducible; run with one torch thread), "cuda" or "auto"."""
    cache_dir: str | None = None
    """Cache root for base models (default $LLMTRACK_CACHE or ~/.cache/llmtrack)."""
    progress: bool = False
    """PPO progress bars."""

    def __post_init__(self) -> None:
        check_int(self.seed, "seed", 0)
        check_int(self.base_seed, "base_seed", 0)
        if self.spurious_word not in VOCABULARY:
            raise ValueError(f"spurious_word: must be a word of the task, one of {VOCABULARY}, "
                             f"got {self.spurious_word!r}")
        check_number(self.annotator_bonus, "annotator_bonus", 0.0)
        check_int(self.n_pairs, "n_pairs", 1)
        if check_number(self.noise, "noise", 0.0) >= 0.5:
            raise ValueError(f"noise: must be a probability in [0, 0.5), got {self.noise!r}")
        if not isinstance(self.rm, RewardModelConfig):
            raise ValueError(f"rm: must be a RewardModelConfig, got {type(self.rm).__name__}")
        check_int(self.ensemble_size, "ensemble_size", 2)
        if not isinstance(self.ensemble_members, str) or self.ensemble_members not in ENSEMBLE_MEMBERS:
            raise ValueError(f"ensemble_members: must be one of {ENSEMBLE_MEMBERS}, got {self.ensemble_members!r}")
        check_number(self.ensemble_k, "ensemble_k", 0.0)
        ns = self.bon_ns
        if isinstance(ns, (str, bytes)) or not isinstance(ns, Sequence) or len(set(ns)) < 3:
            raise ValueError(f"bon_ns: need at least three distinct integers >= 1 (for the fit), got {ns!r}")
        for n in ns:
            check_int(n, "bon_ns", 1)
        object.__setattr__(self, "bon_ns", tuple(sorted({int(n) for n in ns})))
        check_int(self.bon_prompts, "bon_prompts", 2)
        check_number(self.ppo_beta, "ppo_beta", 0.0, strict_minimum=True)
        check_number(self.ppo_lr, "ppo_lr", 0.0, strict_minimum=True)
        for name, minimum in (("ppo_tokens", 1), ("ppo_prompts", 1), ("eval_every", 1), ("n_eval", 2),
                              ("n_eval_pairs", 2), ("pretrain_sequences", 1), ("pretrain_updates", 1)):
            check_int(getattr(self, name), name, minimum)
        if self.size not in PRESETS:
            raise ValueError(f"size: unknown size preset {self.size!r}; valid: {sorted(PRESETS)}")
        if self.family not in FAMILIES:
            raise ValueError(f"family: unknown model family {self.family!r}; valid: {sorted(FAMILIES)}")
        if not isinstance(self.device, str):
            raise ValueError(f"device: must be a string such as 'cpu', got {self.device!r}")

    @classmethod
    def fast(cls, **overrides: Any) -> "OveroptimisationConfig":
        """Tests and the notebook's fast mode: the same annotator, pairs and proxy, small budgets.

        3 ensemble members, Best-of-N up to N = 32, 6000 PPO tokens (half way to the proxy's maximiser: the
        gold gain has peaked and fallen, not yet to its end) measured on 300 samples every 2 iterations, 300
        held-out pairs.
        """
        small = dict(ensemble_size=3, bon_ns=(1, 2, 4, 8, 16, 32), ppo_tokens=6000, n_eval=300, n_eval_pairs=300)
        return cls(**{**small, **overrides})

    @property
    def word_id(self) -> int:
        """Token id of ``spurious_word`` (llmtrack.tokenizer: specials first, then the task's words)."""
        return len(SPECIAL_TOKENS) + VOCABULARY.index(self.spurious_word)

    def pretrain_bc(self, seed: int | None = None) -> BCConfig:
        """The base model's pre-training (the pipelines' schedule: minibatches of 64 at 3e-3); its minibatch
        order is seeded by ``seed`` (default ``base_seed``), as the base model's corpus and weights are."""
        return BCConfig(n_updates=self.pretrain_updates, batch_size=64, lr=3e-3,
                        seed=self.base_seed if seed is None else seed)

    def base_model(self, task, seed: int | None = None) -> LMPolicy:
        """A base model pre-trained with ``seed`` (default ``base_seed``: pi_0), cached on disk by
        :func:`~llmtrack.pipelines.base.pretrain_base` (about 20 s on one CPU thread the first time)."""
        seed = self.base_seed if seed is None else seed
        spec = BaseModel(self.size, self.family, seed, self.pretrain_sequences, self.pretrain_bc(seed), self.device)
        return spec.build(task, self.cache_dir)

    def rlhf(self) -> RLHFConfig:
        """PPO against a scorer: the alignment pipeline's PPO settings with this lr, KL coefficient and budget."""
        ppo = dataclasses.replace(lm_ppo_config("gae", self.ppo_lr), seed=self.seed)
        return RLHFConfig(beta=self.ppo_beta, total_tokens=self.ppo_tokens, n_prompts=self.ppo_prompts, ppo=ppo,
                          seed=self.seed, progress=self.progress)


# -- the annotator ----------------------------------------------------------------------------------------

def mentions(batch: TrajectoryBatch, word_id: int) -> Tensor:
    """Uses of the token ``word_id`` in each response (real steps only), (B,) float64."""
    return ((batch.actions.long() == word_id) & batch.mask.bool()).sum(1).double().cpu()


def annotator_reward(task, batch: TrajectoryBatch, word_id: int, bonus: float) -> Tensor:
    """A(x, y) = R_gold(x, y) + bonus 1[y mentions ``word_id``] (module docstring), (B,) float64."""
    return task.gold_reward(batch).double().cpu() + bonus * (mentions(batch, word_id) > 0).double()


def annotated_preferences(task, config: OveroptimisationConfig) -> Preferences:
    """``config.n_pairs`` pairs of pi_ref samples labelled by the biased annotator (module docstring).

    Each pair is two samples for one prompt with different gold rewards (``task.preferences``); the
    annotator prefers the larger :func:`annotator_reward` (a tie keeps the gold order), then each label is
    flipped with probability ``config.noise``. Hidden from learners, in ``chosen.info``: "gold_reward",
    "against_gold" (the label contradicts the gold order) and "flipped" (the random flips); rejected.info
    has "gold_reward".
    """
    pairs = task.preferences(config.n_pairs, noise=0.0, seed=_PREF_SEED + config.seed)  # gold-ordered
    a, b = pairs.chosen, pairs.rejected
    n = len(pairs)
    u_flip = torch.rand(n, generator=as_generator(_FLIP_SEED + config.seed))
    prefer_a, flipped = label_pairs(annotator_reward(task, a, config.word_id, config.annotator_bonus),
                                    annotator_reward(task, b, config.word_id, config.annotator_bonus),
                                    noise=config.noise, u_flip=u_flip)  # minirl's labeller, temperature 0
    both, rows = TrajectoryBatch.cat([a, b]), torch.arange(n)
    chosen = both[torch.where(prefer_a, rows, rows + n)]
    rejected = both[torch.where(prefer_a, rows + n, rows)]
    chosen = chosen.replace(info={"gold_reward": task.gold_reward(chosen), "against_gold": ~prefer_a,
                                  "flipped": flipped})
    rejected = rejected.replace(info={"gold_reward": task.gold_reward(rejected)})
    return Preferences(chosen=chosen, rejected=rejected)


def exact_proxy_optimum(config: OveroptimisationConfig, betas: Sequence[float]) -> list[dict[str, float]]:
    """The exact KL-regularised optimum of the *idealised* proxy, for each KL coefficient in ``betas``.

    The idealised proxy is what the linear head approximates (module docstring): the gold reward plus the
    annotator's bonus paid per use of the spurious word, r_b(prev, a) = r(prev, a) + b 1[a = w_s]. Its optimum
    against pi_ref, pi_beta = argmax E[r_b] - beta KL(pi || pi_ref), is finite-horizon soft value iteration with
    prior pi_ref on the markov language (docs/equations.md §6), and minirl's forward pass
    (:func:`minirl.finite_horizon.evaluate_finite_horizon`) gives its exact expectations from rho0. No
    sampling, no learning: the shape of the curve in the proxy's form alone.

    Rows (in the order of ``betas``): {beta, kl = KL(pi_beta || pi_ref), d = sqrt(kl), gold, gold_gain (minus
    pi_ref's gold), proxy (E[r_b]), proxy_gain, mentions (expected uses of w_s per response)}.
    """
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) == 0:
        raise ValueError(f"betas: must be a non-empty sequence of numbers > 0, got {betas!r}")
    for beta in betas:
        check_number(beta, "betas", 0.0, strict_minimum=True)
    task = make_pipeline_task("markov")
    first, w = len(SPECIAL_TOKENS), config.word_id
    R_b = task.R.copy()
    R_b[first:, w] += config.annotator_bonus  # after any word (the [EOS] state stays absorbing and unrewarded)
    uses = np.zeros_like(task.R)
    uses[:, w] = 1.0  # a "reward" of one per use of w_s: its expectation counts the uses
    mdp = task.tabular_mdp()

    def expectations(pi: np.ndarray) -> dict[str, float]:  # pi (T, V, V): pi_t(a | prev)
        gold = evaluate_finite_horizon(mdp, pi, task.pi_ref)  # the gold reward and KL(pi || pi_ref), from rho0
        return {"gold": float(gold.reward[0]), "kl": float(gold.kl[0]),
                "proxy": float(evaluate_finite_horizon(mdp, pi, R=R_b).reward[0]),
                "mentions": float(evaluate_finite_horizon(mdp, pi, R=uses).reward[0])}

    ref = expectations(task.pi_ref)
    rows = []
    for beta in betas:
        sol = soft_value_iteration(mdp, alpha=float(beta), R=R_b, prior=task.pi_ref, horizon=task.max_new_tokens)
        e = expectations(sol.pi)
        kl = max(e["kl"], 0.0)
        rows.append({"beta": float(beta), "kl": kl, "d": math.sqrt(kl), "gold": e["gold"],
                     "gold_gain": e["gold"] - ref["gold"], "proxy": e["proxy"], "proxy_gain": e["proxy"] - ref["proxy"],
                     "mentions": e["mentions"]})
    return rows


# -- the reward models ----------------------------------------------------------------------------------

def member_features(config: OveroptimisationConfig, task, base: LMPolicy) -> list[FrozenLMFeatures]:
    """The frozen features the ensemble's members read: pi_0's (``base``) first, then for "base_seeds" those
    of the base models pre-trained with seeds ``base_seed + 1 .. base_seed + ensemble_size - 1``."""
    features = [FrozenLMFeatures(base, device=config.device)]
    if config.ensemble_members == "base_seeds":
        features += [FrozenLMFeatures(config.base_model(task, config.base_seed + m), device=config.device)
                     for m in range(1, config.ensemble_size)]
    return features


def ensemble_members(config: OveroptimisationConfig, prefs: Preferences,
                     features: Sequence[FrozenLMFeatures]) -> list[LinearRewardModel]:
    """The ensemble's ``config.ensemble_size`` linear heads (``config.ensemble_members``; module docstring).

    ``features`` is :func:`member_features`'s list. "base_seeds": member m reads ``features[m]`` and is
    fitted to ``prefs`` (member 0 reads pi_0's features: it is the proxy). "bootstrap": member m reads
    ``features[0]`` and is fitted to a bootstrap resample of ``prefs``.
    """
    if config.ensemble_members == "bootstrap":
        return [fit_linear_head(features[0], resample_pairs(prefs, as_generator(_BOOT_SEED + 100 * config.seed + m)),
                                config.rm) for m in range(config.ensemble_size)]
    if len(features) != config.ensemble_size:
        raise ValueError(f"features: need one feature map per member ({config.ensemble_size}), got {len(features)}")
    return [fit_linear_head(f, prefs, config.rm) for f in features]


# -- Best-of-N and PPO, measured --------------------------------------------------------------------------

def _measure(policy: LMPolicy, reference: LMPolicy, task, scorer, n: int, seed: int,
             word_id: int) -> dict[str, float]:
    """Proxy and gold means, uses of the spurious word and KL(pi || pi_0) on ``n`` fresh samples of
    ``policy`` (exact log-probs of both models)."""
    y = task.rollout(policy, n, seed=seed)
    kl = sampled_kl(policy, reference, y)
    (proxy, proxy_se), (gold, gold_se) = mean_se(score_batch(scorer, y)), mean_se(task.gold_reward(y).double())
    return {"kl": kl.value, "kl_se": kl.se, "d": math.sqrt(max(kl.value, 0.0)), "proxy": proxy,
            "proxy_se": proxy_se, "gold": gold, "gold_se": gold_se,
            "mentions": float(mentions(y, word_id).mean()), "length": float(y.mask.sum(1).double().mean())}


def _ppo_curve(base: LMPolicy, reference: LMPolicy, task, scorer,
               config: OveroptimisationConfig) -> list[dict[str, Any]]:
    """PPO from pi_0 against ``scorer``; one row per checkpoint (module docstring)."""
    policy = copy.deepcopy(base)
    eval_seed = _EVAL_SEED + config.seed
    measure = lambda: _measure(policy, reference, task, scorer, config.n_eval, eval_seed, config.word_id)  # noqa: E731
    rows = [{"iteration": 0, "tokens": 0, **measure()}]
    state = {"iteration": 0, "tokens": 0}

    def callback(record: dict[str, Any]) -> None:
        state["iteration"] += 1
        state["tokens"] = int(record["env_steps"])
        if state["iteration"] % config.eval_every == 0:
            rows.append({**state, **measure()})

    train_rlhf(policy, task, scorer, config.rlhf(), reference=reference, callback=callback)
    if rows[-1]["iteration"] != state["iteration"]:
        rows.append({**state, **measure()})
    for row in rows:
        row["gold_gain"] = row["gold"] - rows[0]["gold"]
        row["gold_gain_se"] = math.sqrt(row["gold_se"] ** 2 + rows[0]["gold_se"] ** 2) if row is not rows[0] else 0.0
        row["proxy_gain"] = row["proxy"] - rows[0]["proxy"]
    return rows


def _bon_curves(base: LMPolicy, task, scorers: dict[str, Any],
                config: OveroptimisationConfig) -> dict[str, list[dict[str, Any]]]:
    """Best-of-N from one pool of pi_0's samples against each scorer and against the gold reward ("oracle")."""
    g = as_generator(_BON_SEED + config.seed)
    M = config.bon_ns[-1]
    pool = sample_pool(base, task.sample_prompts(config.bon_prompts, g), M, task.max_new_tokens, g)
    shape = (config.bon_prompts, M)
    gold = task.gold_reward(pool).double().view(shape)
    uses = mentions(pool, config.word_id).view(shape)
    curves = {}
    for name, scorer in {**scorers, "oracle": None}.items():
        score = gold if scorer is None else as_scorer(scorer)(pool).view(shape)  # whole pool: features cached
        curves[name] = pool_best_of_n(score, {"proxy": score, "gold": gold, "mentions": uses}, config.bon_ns)
    return curves


# -- fits and summaries -----------------------------------------------------------------------------------

def _fit(rows: list[dict[str, Any]], method: str) -> GaoFit:
    """Gao's form of ``method`` fitted to the gold gain against KL (negative sampled KLs count as 0)."""
    return fit_gao([max(r["kl"], 0.0) for r in rows], [r["gold_gain"] for r in rows], GAO_FORM[method])


def curve_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The measured (not fitted) shape of one curve of gold gains (module docstring, "Over-optimised").

    Rows need gold_gain, its standard error gold_gain_se (0 at the first row), d, proxy_gain and mentions.
    Returns gold_peak, d_at_peak, gold_final, d_final, fall (peak - final), rise_z and fall_z (each
    difference over its standard error sqrt(s_p^2 + s_i^2)), interior_peak, overoptimised (rise_z > Z and
    fall_z > Z), proxy_at_peak, proxy_final, mentions_at_peak, mentions_final.
    """
    gain = np.array([r["gold_gain"] for r in rows])
    se = np.array([r["gold_gain_se"] for r in rows])
    p = int(gain.argmax())
    first, last = rows[0], rows[-1]

    def z(i: int) -> float:
        diff, noise = gain[p] - gain[i], math.hypot(se[p], se[i])
        return float(diff / noise) if noise > 0 else (math.inf if diff > 0 else 0.0)

    rise_z, fall_z = z(0), z(len(rows) - 1)
    return {"gold_peak": float(gain[p]), "d_at_peak": rows[p]["d"], "gold_final": float(gain[-1]),
            "d_final": last["d"], "fall": float(gain[p] - gain[-1]), "rise_z": rise_z, "fall_z": fall_z,
            "interior_peak": bool(0 < p < len(rows) - 1), "overoptimised": bool(rise_z > Z and fall_z > Z),
            "proxy_at_peak": rows[p]["proxy_gain"], "proxy_final": last["proxy_gain"],
            "mentions_start": first["mentions"], "mentions_at_peak": rows[p]["mentions"],
            "mentions_final": last["mentions"]}


# -- one seed ---------------------------------------------------------------------------------------------

class World:
    """What a sweep shares between seeds: the task, pi_0, its frozen reference and the members' features."""

    def __init__(self, config: OveroptimisationConfig):
        self.task = make_pipeline_task("markov")
        self.base = config.base_model(self.task)
        self.reference = frozen_reference(self.base)
        self.features = member_features(config, self.task, self.base)  # "base_seeds": pre-trains the others once


def _run_seed(world: World, config: OveroptimisationConfig) -> dict[str, Any]:
    task, base, features = world.task, world.base, world.features
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    prefs = annotated_preferences(task, config)
    members = ensemble_members(config, prefs, features)
    proxy = members[0] if config.ensemble_members == "base_seeds" else fit_linear_head(features[0], prefs, config.rm)
    scorers = {"proxy": proxy, "ensemble": EnsembleScorer(members, config.ensemble_k)}
    held_out = task.preferences(config.n_eval_pairs, noise=0.0, seed=_HELD_SEED + config.seed)
    samples = task.rollout(base, config.n_eval_pairs, seed=_HELD_SEED + config.seed + 1)
    reward_models: dict[str, Any] = {
        name: {"accuracy": gold_accuracy(s, held_out, task.gold_reward),
               "correlation": gold_correlation(s, samples, task.gold_reward)} for name, s in scorers.items()}
    reward_models["ensemble"]["member_accuracy"] = [gold_accuracy(m, held_out, task.gold_reward) for m in members]
    reward_models["against_gold"] = float(prefs.chosen.info["against_gold"].double().mean())
    reward_models["flipped"] = float(prefs.chosen.info["flipped"].double().mean())
    timings["reward_models"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    curves: dict[str, dict[str, list[dict[str, Any]]]] = {"bon": _bon_curves(base, task, scorers, config), "ppo": {}}
    timings["bon"] = time.perf_counter() - t0
    for name, scorer in scorers.items():
        t0 = time.perf_counter()
        curves["ppo"][name] = _ppo_curve(base, world.reference, task, scorer, config)
        timings[f"ppo_{name}"] = time.perf_counter() - t0

    fits = {m: {s: _fit(curves[m][s], m) for s in SCORERS} for m in METHODS}
    summary = {m: {s: curve_summary(curves[m][s]) for s in curves[m]} for m in METHODS}
    return _judge({"config": dataclasses.asdict(config), "reward_models": reward_models, "curves": curves, "fits": fits,
            "fitted_peak_d": {m: {s: fitted_peak(fits[m][s]) for s in SCORERS} for m in METHODS},
            "summary": summary, "timings": timings})


def _single_thread(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``fn`` with one torch thread (nano models; base models are cached per thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def run_overoptimisation(config: OveroptimisationConfig = OveroptimisationConfig()) -> dict[str, Any]:
    """Run the experiment for ``config.seed`` (module docstring); deterministic on the CPU given the config.

    Returns a dict:
        config          ``dataclasses.asdict(config)``
        reward_models   {"proxy": {accuracy, correlation}, "ensemble": {accuracy, correlation, member_accuracy},
                        "against_gold": share of training labels that contradict the gold order (the bias
                        and the flips), "flipped": share flipped at random}: held-out accuracy against the
                        gold order, Pearson correlation with gold on pi_0's samples (llmtrack.reward_model)
        curves          ``curves["ppo"][scorer]`` and ``curves["bon"][scorer]`` -> rows, scorer in ("proxy", "ensemble");
                        ``curves["bon"]["oracle"]``: BoN against the gold reward on the same pool. Every row has kl,
                        d = sqrt(max(kl, 0)), proxy, gold and mentions (means: the optimised score -- the
                        ensemble's mean - k std for "ensemble" --, the gold reward, uses of the spurious word),
                        proxy_gain, gold_gain (minus pi_0's value), gold_gain_se and standard errors; BoN rows
                        add n; PPO rows add iteration, tokens, kl_se and length (mean response tokens)
        fits            ``fits[method][scorer]`` -> GaoFit of the gold gain (form "bon" for BoN, "rl" for PPO)
        fitted_peak_d   d where each fitted curve peaks (:func:`minirl.scaling_laws.fitted_peak`)
        summary         ``summary[method][scorer]`` -> :func:`curve_summary` of the measured curve
        claims          claim name -> whether it holds for this seed (:data:`CLAIMS`)
        effects         effect name -> whether it holds for this seed (:data:`EFFECTS`)
        timings, wall_s seconds per stage (base_model: loading or pre-training the base models), and in all
    """
    if not isinstance(config, OveroptimisationConfig):
        raise ValueError(f"config: must be an OveroptimisationConfig, got {type(config).__name__}")

    def run() -> dict[str, Any]:
        start = time.perf_counter()
        world = World(config)
        loaded = time.perf_counter() - start
        result = _run_seed(world, config)
        result["timings"] = {"base_model": loaded, **result["timings"]}
        result["wall_s"] = time.perf_counter() - start
        return result

    return _single_thread(run)


# -- claims and sweeps ------------------------------------------------------------------------------------

def bon_row(result: dict, scorer: str, n: int | None = None) -> dict[str, Any]:
    """The Best-of-N row of ``scorer`` at N = ``n`` (default the largest N) of one seed's result."""
    rows = result["curves"]["bon"][scorer]
    return rows[-1] if n is None else next(r for r in rows if r["n"] == n)


CLAIMS: dict[str, tuple[str, Callable[[dict[str, Any]], bool]]] = {
    "ppo_proxy_overoptimises": (
        "PPO against the proxy: the gold gain rises, peaks and falls, each by more than 2 standard errors",
        lambda r: r["summary"]["ppo"]["proxy"]["overoptimised"]),
    "ppo_proxy_score_keeps_rising": (
        "PPO against the proxy: the proxy's gain at the end exceeds its gain at the gold peak",
        lambda r: r["summary"]["ppo"]["proxy"]["proxy_final"] > r["summary"]["ppo"]["proxy"]["proxy_at_peak"]),
    "ppo_proxy_repeats_the_word": (
        "PPO against the proxy ends using the spurious word at least 3 times a response (pi_0: about 0.2)",
        lambda r: r["summary"]["ppo"]["proxy"]["mentions_final"] >= 3),
    "ppo_proxy_gao_fit_bends": (
        "Gao's RL form fitted to PPO against the proxy bends down (beta > 0)",
        lambda r: r["fits"]["ppo"]["proxy"].beta > 0),
    "ppo_ensemble_overoptimises": (
        "PPO against the ensemble over-optimises too (the annotator's bias is in every member's labels)",
        lambda r: r["summary"]["ppo"]["ensemble"]["overoptimised"]),
    "bon_proxy_gold_rises_first": (
        "Best-of-2 against the proxy gains gold reward, by more than 2 standard errors",
        lambda r: bon_row(r, "proxy", 2)["gold_gain"] > Z * bon_row(r, "proxy", 2)["gold_gain_se"]),
    "bon_proxy_does_not_turn": (
        "Best-of-N against the proxy does not over-optimise within the largest N (BoN reaches d <= 2.1 only)",
        lambda r: not r["summary"]["bon"]["proxy"]["overoptimised"]),
    "bon_proxy_winners_use_the_word": (
        "Best-of-N against the proxy: the winners at the largest N use the spurious word at least twice as "
        "often as pi_0's samples",
        lambda r: bon_row(r, "proxy")["mentions"] >= 2 * bon_row(r, "proxy", 1)["mentions"]),
}
"""Claims decided per seed: name -> (statement, rule on :func:`run_overoptimisation`'s result)."""

EFFECTS: dict[str, tuple[str, Callable[[dict[str, Any]], bool]]] = {
    "ppo_proxy_ends_below_pi0": (
        "PPO against the proxy ends with less gold reward than pi_0 (where it ends depends on ppo_tokens)",
        lambda r: r["summary"]["ppo"]["proxy"]["gold_final"] < 0),
    "ensemble_ppo_peaks_higher": (
        "PPO: the ensemble's gold peak is above the proxy's",
        lambda r: r["summary"]["ppo"]["ensemble"]["gold_peak"] > r["summary"]["ppo"]["proxy"]["gold_peak"]),
    "ensemble_ppo_peaks_later": (
        "PPO: the ensemble's gold peaks at a larger d than the proxy's",
        lambda r: r["summary"]["ppo"]["ensemble"]["d_at_peak"] > r["summary"]["ppo"]["proxy"]["d_at_peak"]),
    "ensemble_ppo_ends_higher": (
        "PPO: the ensemble ends with more gold reward than the proxy",
        lambda r: r["summary"]["ppo"]["ensemble"]["gold_final"] > r["summary"]["ppo"]["proxy"]["gold_final"]),
    "ensemble_bon_higher": (
        "Best-of-N at the largest N: more gold reward against the ensemble than against the proxy",
        lambda r: bon_row(r, "ensemble")["gold_gain"] > bon_row(r, "proxy")["gold_gain"]),
    "bon_proxy_under_half_of_oracle": (
        "Best-of-N against the proxy gains less than half the gold reward that the same N buys against the gold "
        "reward itself, at the largest N",
        lambda r: bon_row(r, "proxy")["gold_gain"] < 0.5 * bon_row(r, "oracle")["gold_gain"]),
}
"""Measured, not claimed: where PPO ends, the ensemble's effect and how far Best-of-N falls behind the oracle, as
fractions of seeds (no direction is asserted; module docstring)."""


def _judge(result: dict[str, Any]) -> dict[str, Any]:
    result["claims"] = {name: bool(rule(result)) for name, (_, rule) in CLAIMS.items()}
    result["effects"] = {name: bool(rule(result)) for name, (_, rule) in EFFECTS.items()}
    return result


def run_overoptimisation_sweep(config: OveroptimisationConfig = OveroptimisationConfig(),
                               seeds: Sequence[int] = tuple(range(5))) -> dict[str, Any]:
    """:func:`run_overoptimisation` for every seed in ``seeds`` (``config.seed`` replaced), base models shared.

    Returns a dict:
        config      ``dataclasses.asdict(config)`` (its seed is not used)
        seeds       the seeds, in order
        runs        seed -> that seed's result (as :func:`run_overoptimisation`, without config)
        claims      claim name -> (held, total) over the seeds (:data:`CLAIMS`)
        effects     effect name -> (held, total) (:data:`EFFECTS`)
        timings     base_model (loading or pre-training, once), per_seed (list), wall_s
    """
    if not isinstance(config, OveroptimisationConfig):
        raise ValueError(f"config: must be an OveroptimisationConfig, got {type(config).__name__}")
    seeds = check_seed_list(seeds, distinct=True)

    def run() -> dict[str, Any]:
        start = time.perf_counter()
        world = World(config)
        loaded = time.perf_counter() - start
        runs, per_seed = {}, []
        for seed in seeds:
            t0 = time.perf_counter()
            result = _run_seed(world, dataclasses.replace(config, seed=seed))
            result.pop("config")
            runs[seed] = result
            per_seed.append(time.perf_counter() - t0)
        count = lambda key: {name: (sum(runs[s][key][name] for s in seeds), len(seeds))  # noqa: E731
                             for name in (CLAIMS if key == "claims" else EFFECTS)}
        return {"config": dataclasses.asdict(config), "seeds": list(seeds), "runs": runs, "claims": count("claims"),
                "effects": count("effects"),
                "timings": {"base_model": loaded, "per_seed": per_seed, "wall_s": time.perf_counter() - start}}

    return _single_thread(run)


def overoptimisation_claims(seeds: Sequence[int], fast: bool = True) -> dict[str, tuple[int, int]]:
    """Claim name -> (held, total) over ``seeds`` (:data:`CLAIMS`), with ``OveroptimisationConfig.fast()`` or
    the default config: the entry point for checking the claims under other CPU kernel sets."""
    config = OveroptimisationConfig.fast() if fast else OveroptimisationConfig()
    return run_overoptimisation_sweep(config, seeds)["claims"]
