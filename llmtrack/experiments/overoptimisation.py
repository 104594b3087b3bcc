"""Reward over-optimisation on a language model: Best-of-N and PPO against a proxy, watched with the gold reward.

Seed §4.5 and Fig. 2 after Gao et al. (2023); EQUATIONS.md §8. A policy is optimised against a *proxy*
reward model fitted to a few noisy preferences, and a held-out *gold* reward (the task's, never seen by
the learner) is measured along the way, against d = sqrt(KL(pi || pi_0)):

    Best-of-N   R_gold(d) - R_gold(0) ≈ d (alpha - beta d)          fit_gao(form="bon")
    RL (PPO)    R_gold(d) - R_gold(0) ≈ d (alpha - beta log d)      fit_gao(form="rl")

The world (the pipelines' markov task, ``make_pipeline_task("markov")``: 20 words, T = 10, beta = 1):

    pi_0      the nano GPT-2 base model pre-trained on pi_ref's corpus (``pretrain_base``, cached) -- the
              policy Best-of-N samples from, PPO starts from, and every KL is measured against
              (as Gao et al. measure KL to the initial policy)
    proxy     r(x, y) = w . [sum_t h_t(x, y), 1] on the frozen base model's hidden states
              (:func:`~llmtrack.reward_model.frozen_linear_reward_model`), Bradley-Terry on ``n_pairs``
              pairs from pi_ref ordered by the gold reward, each label flipped with probability ``noise``
    ensemble  ``ensemble_size`` such heads on the same pairs, member m on the frozen features of a base
              model pre-trained like pi_0 but with seed ``base_seed + m`` (member 0 is the proxy), scored by
              :class:`~llmtrack.alignment.overoptimisation.EnsembleScorer`: mean - k std (Coste et al. 2024,
              whose members differ in pretraining seed). ``ensemble_members = "bootstrap"`` gives the
              earlier design: heads on pi_0's features, each on a bootstrap resample of the pairs
    BoN       :func:`~llmtrack.alignment.overoptimisation.best_of_n_curve` from pi_0: KL = log N - (N - 1)/N
    PPO       :func:`~llmtrack.pipelines.rlhf.train_rlhf` from pi_0 against the proxy (or the ensemble) with a
              small per-token KL coefficient ``ppo_beta`` to pi_0, so the policy can run far; every
              ``eval_every`` PPO iterations ``n_eval`` fresh samples (the same prompts and sampling seed
              at every checkpoint) give the proxy and gold means and KL(pi || pi_0) from exact log-probs
              of both (:func:`~llmtrack.alignment.answer_key.sampled_kl`)

Why this proxy. A transformer reward model (``LMRewardModel``) on 100-400 noisy pairs reached a
held-out accuracy of only 0.50-0.60 in our trials, and PPO against it collapses onto two- or
three-word answers ("wonderful wonderful [EOS]"), so KL stops near 6-9 nats (d ≈ 2.5-3) within a
few thousand tokens and any later fall of the gold reward happens at a fixed d. The linear head is
additive over the response, so its maximiser is a ten-word answer and KL keeps growing along training
(to ~25 nats), which is what a curve against d needs. With 100 pairs and 30% flips its 65 weights fit
the flips: for some preference seeds the best-scoring single word is a neutral one or "not" (a linear
head cannot learn that "not" flips the next word's sentiment), and then the proxy's maximiser is
gold-poor although the proxy still ranks good above bad words near pi_0. Scoring ten-word repeats of
each word with the proxies of seeds 0-23 found such a maximiser for about one seed in five (8: "the",
17: "service" and "food", 20: "not"); the others put a positive word on top. The default ``seed = 17`` is one
that over-optimises; most seeds do not (table below).

Why members that differ in their base model. The proxy's confident errors come from the flipped
labels *read through pi_0's features*: with seed 17 ten-word repeats of "service" and "food" score
15.4 and 14.9 and "excellent" 11.0. Bootstrap resamples keep pi_0's features and (on average) the same
flips, so all members share the error and their std cannot see it: bootstraps put "food" on top
(mean - 1 std 17.1, std 5.3). Heads on other base models read the same pairs through other hidden
states, so how a word the pairs say little about is extrapolated differs between members, while what
the pairs pin down is shared: mean - 1 std is 7.4 for "service" (std 2.8), 5.6 for "excellent" and 3.0
for "food" (std 4.1) -- "service" still on top of the repeats, but by 1.8 instead of 4.4. The
ensemble sees no more data than the proxy (the same 100 pairs, the same flips); it costs
``ensemble_size - 1`` more base models (pre-trained once, ~20 s each on one thread, then cached) and
``ensemble_size`` feature passes per scored batch.

Measured (default config, seed 17; one CPU thread; 108 s with the base models cached: Best-of-N 21 s
against the proxy and 34 s against the ensemble, PPO 24 s per run):

    reward models  proxy: held-out accuracy 0.605, gold correlation 0.223 (38 of 100 labels flipped);
                   ensemble (base seeds 0-4, mean - 1 std): 0.641 / 0.289, members 0.579-0.618
    BoN, proxy     proxy gain rises to +7.29 at N = 256 (d = 2.13); gold gain +0.18 (N = 2), +0.41 (16),
                   +0.52 ± 0.14 (128), +0.47 ± 0.24 (256): it flattens, but the last point is within noise
                   of the peak. Fit d (alpha - beta d): alpha 0.435, beta 0.095, R^2 0.992, fitted peak at
                   d = 2.29 -- just beyond N = 256
    BoN, ensemble  gold gain +0.56 (N = 16), +0.88 ± 0.12 (128), +1.18 ± 0.23 (256), still rising; alpha
                   0.320, beta -0.079 (no fitted peak), R^2 0.949
    PPO, proxy     gold gain +0.21 (d 0.50), peak +0.58 ± 0.06 at d 2.57 (3.3k tokens), -0.07 at d 3.99, -0.66
                   at d 4.75, -0.53 at the end (d 4.92), while the proxy gain rises from +5.4 at the peak to
                   +15.2; the policy ends writing ten neutral words ("food food ...", gold -0.1 a token).
                   Fit d (alpha - beta log d): alpha 0.596, beta 0.456, R^2 0.893 (fitted peak d = 1.36)
    PPO, ensemble  the peak comes later and higher: +0.77 (d 1.63), +1.63 (d 2.91), peak +2.17 ± 0.09 at
                   d 4.30 (7.1k tokens), then +0.93 .. +1.93 and +1.44 ± 0.06 at the end (d 5.45), while its
                   score rises from +6.6 at the peak to +8.6. Fit: alpha 0.913, beta 0.381, R^2 0.666
                   (fitted peak d = 4.04). The bootstrap ensemble ("bootstrap") peaked sooner instead: +0.37 at
                   d 0.95, -0.89 at the end (d 4.92); BoN +0.55 ± 0.21 at N = 256

The default settings (20 000 PPO tokens) for other preference seeds (gold gain: peak (d) -> end (d), "F"
where the end is more than 2 standard errors below the peak, "=" where the peak is the end; BoN gold
gain at N = 256):

    seed  accuracy       PPO vs proxy                PPO vs ensemble (base seeds)   BoN proxy / ensemble
          proxy / ens.
    17    0.605 / 0.641  +0.58 (2.57) -> -0.53 (4.92) F  +2.17 (4.30) -> +1.44 (5.45) F  +0.47 / +1.18
    20    0.571 / 0.634  +0.07 (0.54) -> -0.91 (5.21) F  +3.66 (4.88) =                  +0.29 / +0.47
     8    0.574 / 0.597  +3.64 (4.97) -> +2.64 (5.36) F  +8.63 (5.45) =                  +1.45 / +1.56
     3    0.569 / 0.612  +0.56 (1.46) -> -0.95 (5.07) F  +2.14 (2.43) -> -0.99 (4.73) F  +0.64 / +1.44
     0    0.625 / 0.648  +4.26 (5.19) =                  +5.35 (4.79) =                  +1.57 / +2.07
     1    0.640 / 0.773  +9.02 (6.31) =                  +8.92 (5.54) =                  +2.13 / +3.29
     2    0.585 / 0.616  +9.05 (5.69) =                  +8.95 (5.56) =                  +1.61 / +1.92
     4    0.619 / 0.639  +8.90 (5.85) -> +8.85 (5.83)    +6.84 (5.06) -> +6.83 (5.09)    +1.53 / +1.81
     5    0.585 / 0.662  +8.62 (5.73) =                  +8.80 (5.73) =                  +1.62 / +2.49
     6    0.644 / 0.683  +8.70 (5.96) =                  +8.93 (5.46) =                  +2.18 / +2.19
     7    0.559 / 0.559  +9.01 (5.63) =                  +8.04 (4.95) =                  +0.69 / +1.16

So: the proxy over-optimises (falls by more than 2 se) for 4 of these 11 seeds (17, 20, 8, 3); on all 4 the
ensemble peaks later (d 4.30 vs 2.57, 4.88 vs 0.54, 5.45 vs 4.97, 2.43 vs 1.46) and higher, and ends
higher on 3 (+1.44 vs -0.53, +3.66 vs -0.91, +8.63 vs +2.64; seed 3: -0.99 vs -0.95). Where the proxy
does not over-optimise neither does the ensemble; its more conservative score then ends within 0.1
of the proxy's gold gain on seeds 1 and 2, above it on 0, 5, 6 and below it on 4 (-2.02) and 7 (-0.97).
Best-of-N against the ensemble is at least as good as against the proxy for all 11 seeds. Ablations
with PPO on the over-optimising seeds (peak (d) -> end (d)): the plain mean of the same members (k = 0)
gives +1.84 (5.48) = for 17, +9.01 (5.88) = for 8, but still falls for 20 (+0.72 (1.25) -> -0.86) and 3
(+1.60 (2.20) -> -1.01): the std penalty matters. Other members tried with seed 17: bootstraps with k = 2
on base seeds 0-4 +1.93 (3.86) -> +1.24 F; the 100 pairs split into 5 disjoint sets of 20, +1.26 (2.46)
-> +0.22 F; a Laplace posterior of the proxy's head (20 draws from N(w, (H + I)^-1), H the BT Hessian at
w) +5.73 (5.08) = for 17 but no help for 20 (+0.80 (2.73) -> -1.42 F), 8 or 3. Heads on 5 independent
sets of 100 pairs reach +8.02 (5.07) for 17, but so does one head on the pooled 500 pairs (+7.83
(5.03)): that is more data, not the ensemble.

Best-of-N up to N = 256 reaches d = 2.13 only, short of where PPO's gold reward turns (d ≈ 2.5-5), and
shows an interior peak for no seed beyond the noise. Past ~20 000 tokens KL stops growing (the policy
is nearly deterministic: d ≈ 5) and PPO moves between answers the proxy scores alike: with seed 17 and
30 000 tokens the proxy's gold gain jumps from -0.58 back to +0.06 .. +0.25 after 24 600 tokens at
d ≈ 5.0; with seed 8 (lr 1e-4, 60 000 tokens) it fell from +2.03 (d 3.11) to +1.32 and rose again to
+2.77 (d 5.29). Hence the default stops at 20 000 tokens, where the curve against d ends.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from minirl.algos.bc import BCConfig
from minirl.algos.reward_model import LinearRewardModel, RewardModelConfig, train_reward_model
from minirl.data import Preferences
from llmtrack.alignment.answer_key import sampled_kl
from llmtrack.alignment.overoptimisation import EnsembleScorer, GaoFit, best_of_n_curve, fit_gao
from llmtrack.models import FAMILIES, PRESETS
from llmtrack.pipelines.base import pretrain_base
from llmtrack.pipelines.recipe import make_pipeline_task
from llmtrack.pipelines.rlhf import RLHFConfig, lm_ppo_config, train_rlhf
from llmtrack.policy import LMPolicy, frozen_reference
from llmtrack.reward_model import FrozenLMFeatures, gold_accuracy, gold_correlation, score_batch
from llmtrack.tasks.base import check_count

__all__ = ["OveroptimisationConfig", "run_overoptimisation", "overoptimisation_table", "fitted_peak", "SCORERS",
           "METHODS", "ENSEMBLE_MEMBERS", "ensemble_members"]

SCORERS = ("proxy", "ensemble")
"""What is optimised: the single proxy, or the ensemble's mean - k std."""
ENSEMBLE_MEMBERS = ("base_seeds", "bootstrap")
"""How the ensemble's members differ: their base model's pretraining seed, or a bootstrap of the pairs."""
METHODS = ("bon", "ppo")
"""How: Best-of-N (Gao's "bon" form) or PPO (Gao's "rl" form)."""
GAO_FORM = {"bon": "bon", "ppo": "rl"}

# keep every stage's randomness apart from the others' (and from the base model's corpus, seed base_seed)
_PREF_SEED, _BOOT_SEED, _HELD_SEED, _BON_SEED, _EVAL_SEED = 1000, 50_000, 20_000, 30_000, 40_000


def _positive(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class OveroptimisationConfig:
    """Settings of the over-optimisation experiment (module docstring); a bad field is a ValueError naming it.

    ``OveroptimisationConfig.fast()`` gives the small budgets of the tests and the notebook.
    """

    seed: int = 17
    """Seeds the preferences and their flips, the bootstrap resamples, Best-of-N, PPO and the evaluation
    samples. 17 is a seed whose proxy over-optimises (module docstring); most seeds' proxies do not."""
    base_seed: int = 0
    """Seed of the base model pi_0 (its corpus, initial weights and pre-training minibatches)."""
    n_pairs: int = 100
    """Preference pairs the proxy (and each ensemble member's bootstrap resample) is fitted to."""
    noise: float = 0.3
    """Probability of flipping each pair's label (the gold order), in [0, 0.5)."""
    rm: RewardModelConfig = RewardModelConfig(n_updates=300, lr=5e-2)
    """Training of each linear head: full-batch Adam, Bradley-Terry (its seed is unused: full-batch)."""
    ensemble_size: int = 5
    """Members of the ensemble (module docstring)."""
    ensemble_members: str = "base_seeds"
    """How the members differ (``ENSEMBLE_MEMBERS``): "base_seeds" -- each a linear head on the frozen
    features of its own base model, pre-trained as pi_0 but with seed ``base_seed + m`` (m = 0 is pi_0
    itself, so member 0 is the proxy), all fitted to the proxy's pairs (Coste et al.'s members differ in
    pretraining seed); "bootstrap" -- heads on pi_0's features, each on a bootstrap resample of the pairs."""
    ensemble_k: float = 1.0
    """The ensemble scores mean - k std over members (k = 0: the plain mean)."""
    bon_ns: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    """N of Best-of-N (at least three values, for the fit)."""
    bon_prompts: int = 64
    """Prompts of the Best-of-N pool; each has max(bon_ns) samples of pi_0."""
    ppo_beta: float = 0.05
    """PPO's KL coefficient: small, so the policy can run far from pi_0."""
    ppo_lr: float = 3e-4
    """PPO's Adam learning rate (the alignment pipeline's)."""
    ppo_tokens: int = 20_000
    """Response tokens PPO samples in all (per run: one against the proxy, one against the ensemble). By
    ~20 000 the policy is nearly deterministic and KL stops growing (d ≈ 5; module docstring)."""
    ppo_prompts: int = 64
    """Prompts (one response each) per PPO iteration."""
    eval_every: int = 3
    """Measure the policy every this many PPO iterations (and before the first and after the last)."""
    n_eval: int = 500
    """Samples per checkpoint (the same prompts and sampling seed at every checkpoint)."""
    n_eval_pairs: int = 1000
    """Held-out noiseless pairs for the reward models' accuracy (and samples of pi_0 for their correlation)."""
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
        check_count(self.seed, "seed", 0)
        check_count(self.base_seed, "base_seed", 0)
        check_count(self.n_pairs, "n_pairs", 1)
        if isinstance(self.noise, bool) or not isinstance(self.noise, (int, float)) or not 0.0 <= self.noise < 0.5:
            raise ValueError(f"noise: must be a probability in [0, 0.5), got {self.noise!r}")
        if not isinstance(self.rm, RewardModelConfig):
            raise ValueError(f"rm: must be a RewardModelConfig, got {type(self.rm).__name__}")
        check_count(self.ensemble_size, "ensemble_size", 2)
        if not isinstance(self.ensemble_members, str) or self.ensemble_members not in ENSEMBLE_MEMBERS:
            raise ValueError(f"ensemble_members: must be one of {ENSEMBLE_MEMBERS}, got {self.ensemble_members!r}")
        if (isinstance(self.ensemble_k, bool) or not isinstance(self.ensemble_k, (int, float))
                or not math.isfinite(self.ensemble_k) or self.ensemble_k < 0):
            raise ValueError(f"ensemble_k: must be a finite number >= 0, got {self.ensemble_k!r}")
        ns = self.bon_ns
        if isinstance(ns, (str, bytes)) or not isinstance(ns, Sequence) or len(set(ns)) < 3:
            raise ValueError(f"bon_ns: need at least three distinct integers >= 1 (for the fit), got {ns!r}")
        for n in ns:
            check_count(n, "bon_ns", 1)
        object.__setattr__(self, "bon_ns", tuple(sorted({int(n) for n in ns})))
        check_count(self.bon_prompts, "bon_prompts", 2)
        _positive(self.ppo_beta, "ppo_beta")
        _positive(self.ppo_lr, "ppo_lr")
        for name, minimum in (("ppo_tokens", 1), ("ppo_prompts", 1), ("eval_every", 1), ("n_eval", 2),
                              ("n_eval_pairs", 2), ("pretrain_sequences", 1), ("pretrain_updates", 1)):
            check_count(getattr(self, name), name, minimum)
        if self.size not in PRESETS:
            raise ValueError(f"size: unknown size preset {self.size!r}; valid: {sorted(PRESETS)}")
        if self.family not in FAMILIES:
            raise ValueError(f"family: unknown model family {self.family!r}; valid: {sorted(FAMILIES)}")
        if not isinstance(self.device, str):
            raise ValueError(f"device: must be a string such as 'cpu', got {self.device!r}")

    @classmethod
    def fast(cls, **overrides: Any) -> "OveroptimisationConfig":
        """Tests and notebooks: the same base model and proxy, small budgets (about 30 s on one CPU core).

        3 ensemble members, Best-of-N up to N = 32 on 16 prompts, 6000 PPO tokens measured on 200 samples
        every 2 iterations, 300 held-out pairs. PPO against the proxy trains exactly as in the default run
        (same proxy, seed and settings), so the fast run is the start of the default curve.
        """
        small = dict(ensemble_size=3, bon_ns=(1, 2, 4, 8, 16, 32), bon_prompts=16, ppo_tokens=6000, eval_every=2,
                     n_eval=200, n_eval_pairs=300)
        return cls(**{**small, **overrides})

    def pretrain_bc(self, seed: int | None = None) -> BCConfig:
        """The base model's pre-training (the pipelines' schedule: minibatches of 64 at 3e-3); its minibatch
        order is seeded by ``seed`` (default ``base_seed``), as the base model's corpus and weights are."""
        return BCConfig(n_updates=self.pretrain_updates, batch_size=64, lr=3e-3,
                        seed=self.base_seed if seed is None else seed)

    def base_model(self, task, seed: int | None = None) -> LMPolicy:
        """A base model pre-trained with ``seed`` (default ``base_seed``: pi_0), cached on disk by
        :func:`~llmtrack.pipelines.base.pretrain_base` (about 20 s on one CPU thread the first time)."""
        seed = self.base_seed if seed is None else seed
        return pretrain_base(task, self.size, self.family, seed, self.pretrain_sequences, self.pretrain_bc(seed),
                             cache_dir=self.cache_dir, device=self.device)

    def rlhf(self) -> RLHFConfig:
        """PPO against a scorer: the alignment pipeline's PPO settings with this lr, KL coefficient and budget."""
        ppo = dataclasses.replace(lm_ppo_config("gae", self.ppo_lr), seed=self.seed)
        return RLHFConfig(beta=self.ppo_beta, total_tokens=self.ppo_tokens, n_prompts=self.ppo_prompts, ppo=ppo,
                          seed=self.seed, progress=self.progress)


# -- the reward models ----------------------------------------------------------------------------------

def _linear_head(features: FrozenLMFeatures, prefs: Preferences, config: RewardModelConfig) -> LinearRewardModel:
    model = LinearRewardModel(features, features.dim)
    train_reward_model(model, prefs, config)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _bootstrap(prefs: Preferences, seed: int) -> Preferences:
    idx = torch.randint(len(prefs), (len(prefs),), generator=torch.Generator().manual_seed(seed))
    return Preferences(chosen=prefs.chosen[idx], rejected=prefs.rejected[idx])


def ensemble_members(config: OveroptimisationConfig, task, prefs: Preferences,
                     features: FrozenLMFeatures) -> list[LinearRewardModel]:
    """The ensemble's ``config.ensemble_size`` linear heads (``config.ensemble_members``; module docstring).

    ``features`` are pi_0's (the proxy's). "base_seeds": member m reads the features of the base model
    pre-trained with seed ``base_seed + m`` (member 0: ``features`` itself, so it is the proxy) and is fitted
    to ``prefs``, the proxy's pairs, flips included. "bootstrap": member m reads ``features`` and is fitted
    to a bootstrap resample of ``prefs``.
    """
    if config.ensemble_members == "bootstrap":
        return [_linear_head(features, _bootstrap(prefs, _BOOT_SEED + 100 * config.seed + m), config.rm)
                for m in range(config.ensemble_size)]
    members = [_linear_head(features, prefs, config.rm)]
    for m in range(1, config.ensemble_size):
        base = config.base_model(task, config.base_seed + m)
        members.append(_linear_head(FrozenLMFeatures(base, device=config.device), prefs, config.rm))
    return members


# -- PPO measured along training --------------------------------------------------------------------------

def _measure(policy: LMPolicy, reference: LMPolicy, task, scorer, n: int, seed: int) -> dict[str, float]:
    """Proxy and gold means and KL(pi || pi_0) on ``n`` fresh samples of ``policy`` (exact log-probs of both)."""
    y = task.rollout(policy, n, seed=seed)
    kl = sampled_kl(policy, reference, y)
    proxy, gold = score_batch(scorer, y), task.gold_reward(y).double()
    se = lambda x: float(x.std() / math.sqrt(len(x)))  # noqa: E731
    return {"kl": kl.value, "kl_se": kl.se, "d": math.sqrt(max(kl.value, 0.0)), "proxy": float(proxy.mean()),
            "proxy_se": se(proxy), "gold": float(gold.mean()), "gold_se": se(gold),
            "length": float(y.mask.sum(1).double().mean())}


def _ppo_curve(base: LMPolicy, reference: LMPolicy, task, scorer,
               config: OveroptimisationConfig) -> list[dict[str, Any]]:
    """PPO from pi_0 against ``scorer``; one row per checkpoint (module docstring)."""
    policy = copy.deepcopy(base)
    eval_seed = _EVAL_SEED + config.seed
    rows = [{"iteration": 0, "tokens": 0, **_measure(policy, reference, task, scorer, config.n_eval, eval_seed)}]
    state = {"iteration": 0, "tokens": 0}

    def callback(record: dict[str, Any]) -> None:
        state["iteration"] += 1
        state["tokens"] = int(record["env_steps"])
        if state["iteration"] % config.eval_every == 0:
            rows.append({**state, **_measure(policy, reference, task, scorer, config.n_eval, eval_seed)})

    train_rlhf(policy, task, scorer, config.rlhf(), reference=reference, callback=callback)
    if rows[-1]["iteration"] != state["iteration"]:
        rows.append({**state, **_measure(policy, reference, task, scorer, config.n_eval, eval_seed)})
    for row in rows:
        row["gold_gain"] = row["gold"] - rows[0]["gold"]
        row["proxy_gain"] = row["proxy"] - rows[0]["proxy"]
    return rows


# -- fits and summaries -----------------------------------------------------------------------------------

def _fit(rows: list[dict[str, Any]], method: str) -> GaoFit:
    """Gao's form of ``method`` fitted to the gold gain against KL (negative sampled KLs count as 0)."""
    return fit_gao([max(r["kl"], 0.0) for r in rows], [r["gold_gain"] for r in rows], GAO_FORM[method])


def fitted_peak(fit: GaoFit) -> float:
    """d at which the fitted gold curve peaks: alpha / (2 beta) ("bon"), exp(alpha / beta - 1) ("rl");
    inf if the fit does not turn down (beta <= 0)."""
    if fit.beta <= 0:
        return math.inf
    if fit.form == "bon":
        return fit.alpha / (2 * fit.beta)
    return math.exp(min(fit.alpha / fit.beta - 1.0, 700.0))


def _summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    gain = np.array([r["gold_gain"] for r in rows])
    peak = int(gain.argmax())
    last = rows[-1]
    return {"gold_peak": float(gain[peak]), "d_at_peak": rows[peak]["d"], "gold_final": float(gain[-1]),
            "d_final": last["d"], "fall": float(gain[peak] - gain[-1]), "proxy_final": last["proxy_gain"],
            "proxy_at_peak": rows[peak]["proxy_gain"], "interior_peak": bool(0 < peak < len(rows) - 1)}


def run_overoptimisation(config: OveroptimisationConfig = OveroptimisationConfig()) -> dict[str, Any]:
    """Run the experiment (module docstring); deterministic on the CPU given the config.

    Returns a dict:
        config          ``dataclasses.asdict(config)``
        reward_models   {"proxy": {accuracy, correlation}, "ensemble": {accuracy, correlation,
                        member_accuracy}, "flipped": share of training labels flipped}: held-out accuracy
                        against the noiseless gold order, Pearson correlation with the gold reward on pi_0's
                        samples (llmtrack.reward_model)
        curves          curves[method][scorer] -> rows, method in ("bon", "ppo"), scorer in ("proxy",
                        "ensemble"). Every row has kl, d = sqrt(max(kl, 0)), proxy, gold (means), proxy_gain,
                        gold_gain (minus pi_0's value) and standard errors; BoN rows (``best_of_n_curve``)
                        add n; PPO rows add iteration, tokens, kl_se and length (mean response tokens).
                        "proxy" is the score of what was optimised (the ensemble's mean - k std for "ensemble").
        fits            fits[method][scorer] -> GaoFit of the gold gain (form "bon" for BoN, "rl" for PPO)
        fitted_peak_d   d where each fitted curve peaks (:func:`fitted_peak`)
        summary         summary[method][scorer] -> {gold_peak, d_at_peak, gold_final, d_final, fall,
                        proxy_final, proxy_at_peak, interior_peak}: the measured (not fitted) curve
        timings         seconds per stage; wall_s in all
    """
    if not isinstance(config, OveroptimisationConfig):
        raise ValueError(f"config: must be an OveroptimisationConfig, got {type(config).__name__}")
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # nano models; base models are cached per thread count (llmtrack.pipelines.base)
    try:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        task = make_pipeline_task("markov")
        base = config.base_model(task)
        reference = frozen_reference(base)
        timings["base_model"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        prefs = task.preferences(config.n_pairs, noise=config.noise, seed=_PREF_SEED + config.seed)
        features = FrozenLMFeatures(base, device=config.device)  # shared: each batch's features computed once
        proxy = _linear_head(features, prefs, config.rm)
        members = ensemble_members(config, task, prefs, features)  # "base_seeds": pre-trains the other bases once
        scorers = {"proxy": proxy, "ensemble": EnsembleScorer(members, config.ensemble_k)}
        held_out = task.preferences(config.n_eval_pairs, noise=0.0, seed=_HELD_SEED + config.seed)
        samples = task.rollout(base, config.n_eval_pairs, seed=_HELD_SEED + config.seed + 1)
        reward_models: dict[str, Any] = {
            name: {"accuracy": gold_accuracy(s, held_out, task.gold_reward),
                   "correlation": gold_correlation(s, samples, task.gold_reward)} for name, s in scorers.items()}
        reward_models["ensemble"]["member_accuracy"] = [gold_accuracy(m, held_out, task.gold_reward) for m in members]
        reward_models["flipped"] = float(prefs.chosen.info["flipped"].float().mean())
        timings["reward_models"] = time.perf_counter() - t0

        curves: dict[str, dict[str, list[dict[str, Any]]]] = {"bon": {}, "ppo": {}}
        for name, scorer in scorers.items():
            t0 = time.perf_counter()
            curves["bon"][name] = best_of_n_curve(base, task, scorer, config.bon_ns, n_prompts=config.bon_prompts,
                                                  seed=_BON_SEED + config.seed)
            timings[f"bon_{name}"] = time.perf_counter() - t0
        for name, scorer in scorers.items():
            t0 = time.perf_counter()
            curves["ppo"][name] = _ppo_curve(base, reference, task, scorer, config)
            timings[f"ppo_{name}"] = time.perf_counter() - t0

        fits = {m: {s: _fit(curves[m][s], m) for s in SCORERS} for m in METHODS}
        return {"config": dataclasses.asdict(config), "reward_models": reward_models, "curves": curves,
                "fits": fits, "fitted_peak_d": {m: {s: fitted_peak(fits[m][s]) for s in SCORERS} for m in METHODS},
                "summary": {m: {s: _summary(curves[m][s]) for s in SCORERS} for m in METHODS},
                "timings": timings, "wall_s": time.perf_counter() - start}
    finally:
        torch.set_num_threads(threads)


def overoptimisation_table(result: dict[str, Any]) -> str:
    """Plain text: the reward models, each curve's rows (d, proxy gain, gold gain) and the Gao fits."""
    c, rm = result["config"], result["reward_models"]
    proxy, ens = rm["proxy"], rm["ensemble"]
    members = ", ".join(f"{a:.3f}" for a in ens["member_accuracy"])
    kind = c.get("ensemble_members", "bootstrap")
    members_of = ("bootstraps" if kind == "bootstrap" else
                  f"heads on base models of seeds {c['base_seed']}-{c['base_seed'] + c['ensemble_size'] - 1}")
    lines = [f"Reward over-optimisation, markov task, seed {c['seed']}: linear proxy on {c['n_pairs']} pairs, "
             f"{rm['flipped']:.0%} of labels flipped; ensemble of {c['ensemble_size']} {members_of}, mean - "
             f"{c['ensemble_k']:g} std",
             f"proxy    held-out accuracy {proxy['accuracy']:.3f}, gold correlation {proxy['correlation']:.3f}",
             f"ensemble held-out accuracy {ens['accuracy']:.3f}, gold correlation {ens['correlation']:.3f} "
             f"(members {members})"]
    for method in METHODS:
        for scorer in SCORERS:
            rows, fit = result["curves"][method][scorer], result["fits"][method][scorer]
            s = result["summary"][method][scorer]
            lines.append(f"\n{method} vs {scorer}: gold gain peaks at {s['gold_peak']:+.3f} "
                         f"(d = {s['d_at_peak']:.2f}), ends at {s['gold_final']:+.3f} (d = {s['d_final']:.2f}); "
                         f"proxy gain {s['proxy_at_peak']:+.2f} at the peak, {s['proxy_final']:+.2f} at the end")
            lines.append(f"  Gao fit ({fit.form}): alpha = {fit.alpha:.3f}, beta = {fit.beta:.3f}, "
                         f"R^2 = {fit.r2:.3f}, fitted peak at d = {result['fitted_peak_d'][method][scorer]:.2f}")
            key = "n" if method == "bon" else "tokens"
            lines.append(f"  {key:>7} {'d':>5} {'proxy gain':>10} {'gold gain':>15}")
            for r in rows:
                se = r.get("gold_gain_se", r["gold_se"])
                lines.append(f"  {r[key]:>7} {r['d']:>5.2f} {r['proxy_gain']:>+10.3f} "
                             f"{r['gold_gain']:>+8.3f} ± {se:.3f}")
    lines.append("\ntimings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result["timings"].items())
                 + f"; wall {result['wall_s']:.1f}")
    return "\n".join(lines)
