"""Distillation with distribution labels: soft-label BC, GKD's JSD(beta), sampled-token reverse KL (docs/equations.md §10).

A teacher pi_T that can answer with its whole next-action distribution at any state
(:func:`minirl.policies.distribution_labels`) gives more than an action to imitate. Per state s,
with p = pi_T(. | s) and q = pi_theta(. | s):

    forward KL   KL(p || q) = sum_a p(a) (log p(a) - log q(a))   soft-label BC: cross-entropy to p, minus H(p)
    reverse KL   KL(q || p) = sum_a q(a) (log q(a) - log p(a))   mode seeking
    JSD(beta)    beta KL(p || m) + (1 - beta) KL(q || m),  m = beta p + (1 - beta) q     (Agarwal et al. 2024, GKD)

GKD's JSD(beta) vanishes at *both* ends (m = q at beta = 0, m = p at beta = 1): used raw, beta = 0 or
1 silently trains nothing. Near the ends it is beta KL(p || q) + O(beta^2) and (1 - beta) KL(q || p) +
O((1 - beta)^2), so

    D_beta = JSD(beta) / (beta (1 - beta))     with D_0 = KL(p || q), D_1 = KL(q || p)

is continuous in beta with the two KLs as its exact endpoints. Design decision: the loss is D_beta
(the endpoints are the limits, computed by their closed forms, not special cases that change the
loss's scale); :func:`generalised_jsd` is GKD's raw quantity, kept for the oracle tests.

GKD's on-policy fraction lambda: of the M sequences labelled each round, round(lambda M) are the
student's own samples and the rest come from a fixed source (teacher samples, demonstrations). With
lambda = 0, beta = 0 this is off-policy knowledge distillation (soft-label SFT); with lambda = 1,
beta = 0 it is DAgger with distribution labels; beta = 1 gives on-policy reverse KL with the exact
per-state expectation. Rounds aggregate (as DAgger does) and the student is refit on all of it.

The sampled-token alternative (Thinking Machines' on-policy distillation, MiniLLM with gamma = 0) is
not a loss but a reward, r_t = log pi_T(a_t | s_t) - log pi_old(a_t | s_t) (:class:`ReverseKLReward`),
given to minirl's PPO / REINFORCE update: its summed return is -log d^pi/d^T of the whole sequence,
so the expected policy gradient is exactly -grad KL(d^pi || d^T) (docs/equations.md §10).

Shapes: distributions (B, T, A) log-probabilities; per-state divergences and masks (B, T).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from minirl.algos.bc import BCConfig
from minirl.algos.minibatch import minibatch_training, trainable_parameters
from minirl.checks import check_int, check_minibatch_training, check_probability
from minirl.data import TrajectoryBatch
from minirl.policies import Policy, check_same_actions, distribution_labels

__all__ = ["forward_kl", "reverse_kl", "generalised_jsd", "gkd_divergence", "soft_bc_loss", "gkd_loss",
           "GKDConfig", "train_gkd", "ReverseKLReward"]

Collector = Callable[[Policy, int, int], TrajectoryBatch]


def _plogp_ratio(logp: Tensor, logq: Tensor) -> Tensor:
    """sum_a p(a) (log p(a) - log q(a)) over the last axis, with 0 log 0 = 0 (and +inf where q = 0 < p).

    Where p = 0 both inputs are replaced by 0 *before* the arithmetic, so that no -inf - (-inf) = NaN is
    formed: a NaN masked out by ``torch.where`` in the forward pass still poisons the backward pass.
    """
    zero = logp == -math.inf
    logp, logq = torch.where(zero, 0.0, logp), torch.where(zero, 0.0, logq)
    return torch.where(zero, 0.0, logp.exp() * (logp - logq)).sum(-1)


def _on_support(teacher_logp: Tensor, student_logp: Tensor) -> tuple[Tensor, Tensor]:
    """Both log-probabilities with -1e4 (e^-1e4 = 0 in floating point) in place of -inf where *both* are -inf
    (actions neither can take, e.g. a language model's never-emitted special tokens): they add nothing, and
    a log-sum-exp of two -inf has a NaN gradient."""
    both = (teacher_logp == -math.inf) & (student_logp == -math.inf)
    return torch.where(both, -1e4, teacher_logp), torch.where(both, -1e4, student_logp)


def forward_kl(teacher_logp: Tensor, student_logp: Tensor) -> Tensor:
    """KL(p_T || q_theta) per state, (...,) from (..., A) log-probabilities (docs/equations.md §10)."""
    return _plogp_ratio(teacher_logp, student_logp)


def reverse_kl(teacher_logp: Tensor, student_logp: Tensor) -> Tensor:
    """KL(q_theta || p_T) per state, (...,) from (..., A) log-probabilities (docs/equations.md §10)."""
    return _plogp_ratio(student_logp, teacher_logp)


def generalised_jsd(teacher_logp: Tensor, student_logp: Tensor, beta: float) -> Tensor:
    """GKD's raw JSD(beta) = beta KL(p || m) + (1 - beta) KL(q || m), m = beta p + (1 - beta) q, (...,).

    The mixture is of *probabilities* (a log-sum-exp of the log-probabilities shifted by log beta,
    log(1 - beta)), not of log-probabilities. Zero at beta = 0 and beta = 1 (module docstring).
    """
    beta = check_probability(beta, "beta")
    if beta in (0.0, 1.0):
        return torch.zeros(teacher_logp.shape[:-1], dtype=teacher_logp.dtype)
    teacher_logp, student_logp = _on_support(teacher_logp, student_logp)
    log_m = torch.logaddexp(teacher_logp + math.log(beta), student_logp + math.log(1 - beta))  # (..., A)
    return beta * _plogp_ratio(teacher_logp, log_m) + (1 - beta) * _plogp_ratio(student_logp, log_m)


def gkd_divergence(teacher_logp: Tensor, student_logp: Tensor, beta: float) -> Tensor:
    """D_beta = JSD(beta) / (beta (1 - beta)), D_0 = forward KL, D_1 = reverse KL, per state (docs/equations.md §10)."""
    beta = check_probability(beta, "beta")
    if beta == 0.0:
        return forward_kl(teacher_logp, student_logp)
    if beta == 1.0:
        return reverse_kl(teacher_logp, student_logp)
    return generalised_jsd(teacher_logp, student_logp, beta) / (beta * (1 - beta))


def gkd_loss(student: Policy, teacher: object, batch: TrajectoryBatch, beta: float,
             teacher_logp: Tensor | None = None) -> Tensor:
    """Masked mean over real steps of D_beta(pi_T(.|s_t), pi_theta(.|s_t)) (docs/equations.md §10).

    ``teacher_logp`` (B, T, A): the teacher's distributions at the batch's states, if already read
    (``train_gkd`` labels each sequence once); None reads them from ``teacher`` now.
    """
    if teacher_logp is None:
        with torch.no_grad():
            teacher_logp = distribution_labels(teacher, batch, "teacher").float()  # (B, T, A), fixed target
    student_logp = distribution_labels(student, batch, "student")  # (B, T, A), with its graph
    if teacher_logp.shape != student_logp.shape:
        raise ValueError(f"teacher: gives {teacher_logp.shape[-1]} actions per state, the student "
                         f"{student_logp.shape[-1]}; both must act over the same vocabulary")
    mask = batch.mask.to(student_logp.device)  # real steps only: padding may be +inf, and inf * 0 = NaN
    d = gkd_divergence(teacher_logp.to(student_logp.device)[mask], student_logp[mask], beta)  # (N_real,)
    return d.mean() if len(d) else student_logp.sum() * 0.0


def soft_bc_loss(student: Policy, teacher: object, batch: TrajectoryBatch) -> Tensor:
    """Soft-label BC: mean over real steps of KL(pi_T(.|s_t) || pi_theta(.|s_t)) = gkd_loss at beta = 0."""
    return gkd_loss(student, teacher, batch, 0.0)


@torch.no_grad()
def _read_labels(teacher: object, batch: TrajectoryBatch, horizon: int) -> Tensor:
    """The teacher's distributions on ``batch``, (B, horizon, A) float32, right-padded along T like
    ``TrajectoryBatch.cat`` pads the steps (padded steps are masked out by ``gkd_loss``)."""
    logp = distribution_labels(teacher, batch, "teacher").float()  # (B, T, A)
    return torch.nn.functional.pad(logp, (0, 0, 0, horizon - logp.shape[1]))


@dataclass(frozen=True)
class GKDConfig:
    """Hyperparameters of GKD / distillation with distribution labels (module docstring)."""

    beta: float = 0.5
    """JSD(beta) interpolation: 0 = forward KL(teacher || student), 1 = reverse KL(student || teacher)."""
    lmbda: float = 1.0
    """On-policy fraction: share of each round's sequences that are the student's own samples."""
    n_iterations: int = 4
    """Rounds of sample / label / aggregate / refit."""
    sequences_per_iteration: int = 40
    """Sequences labelled by the teacher each round (M)."""
    n_updates: int = 150
    """Adam steps of the refit each round (warm-started)."""
    batch_size: int | None = 64
    """Sequences per minibatch (None: the whole aggregate)."""
    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 0.0
    """Adam (L2) weight decay."""
    seed: int = 0
    """Seeds the roll-outs (round i: seed + i) and the minibatches."""
    progress: bool = False
    """Show a tqdm progress bar over rounds."""

    def __post_init__(self) -> None:
        check_probability(self.beta, "beta")
        check_probability(self.lmbda, "lmbda")
        check_int(self.n_iterations, "n_iterations", 1)
        check_int(self.sequences_per_iteration, "sequences_per_iteration", 1)
        check_minibatch_training(self)

    @property
    def labelled_sequences(self) -> int:
        """N: sequences the teacher labels in all (each labelled once, on every one of its steps)."""
        return self.n_iterations * self.sequences_per_iteration


def train_gkd(student: Policy, teacher: object, collect: Collector, config: GKDConfig = GKDConfig(),
              off_policy: Collector | None = None,
              on_iteration: Callable[[int, Policy, TrajectoryBatch], dict[str, float]] | None = None,
              ) -> tuple[TrajectoryBatch, dict[str, list[float]]]:
    """Distil ``teacher`` into ``student`` (in place) with distribution labels (module docstring).

    Args:
        collect: ``collect(policy, n, seed) -> TrajectoryBatch``, n sequences acted by ``policy``.
        off_policy: where the (1 - lambda) share comes from, same signature, called with the teacher;
            default ``collect`` acting the teacher (teacher samples: off-policy KD).
        on_iteration: optional ``f(i, student, dataset) -> metrics`` after each refit.
    Returns:
        (dataset, history): the aggregated sequences and per-round ``data/sequences``, ``data/on_policy``,
        ``loss/gkd``.

    Each sequence is labelled once, when it joins the aggregate: the teacher's distributions at its
    states, (B, T, A) float32, are stored beside it and read by every later minibatch (a fixed teacher's
    label at a fixed state never changes). So the teacher is asked about exactly N = n_iterations x
    sequences_per_iteration sequences, the same number SFT asks it to sample, at the memory cost of
    N x T x A floats (a small vocabulary here; a large one would want only the top-k of each label).
    """
    if not isinstance(config, GKDConfig):
        raise ValueError(f"config: must be a GKDConfig, got {type(config).__name__}")
    check_same_actions(student, teacher, "student", "teacher")
    if getattr(teacher, "label_distribution", None) is None and getattr(teacher, "log_probs_all", None) is None:
        raise ValueError(f"teacher: gives no action distribution ({type(teacher).__name__} has no "
                         "label_distribution(batch)); soft labels need one -- use DAgger's hard labels instead")
    params = trainable_parameters(student, "student")  # type: ignore[arg-type]
    off_policy = collect if off_policy is None else off_policy
    M = config.sequences_per_iteration
    n_on = int(round(config.lmbda * M))
    dataset: TrajectoryBatch | None = None
    labels: Tensor | None = None  # (B, T, A): the teacher's distributions, aligned with dataset's rows
    history: dict[str, list[float]] = {"data/sequences": [], "data/on_policy": [], "loss/gkd": []}
    for i in tqdm(range(config.n_iterations), desc="GKD", disable=not config.progress):
        parts = []
        if n_on:
            parts.append(collect(student, n_on, config.seed + i))  # the student's own states
        if M - n_on:
            parts.append(off_policy(teacher, M - n_on, config.seed + i))  # type: ignore[arg-type]
        fresh = [p.replace(log_probs=None, rewards=None, values=None) for p in parts]
        dataset = TrajectoryBatch.cat(fresh if dataset is None else [dataset, *fresh])
        T = dataset.horizon
        old = [] if labels is None else [torch.nn.functional.pad(labels, (0, 0, 0, T - labels.shape[1]))]
        labels = torch.cat(old + [_read_labels(teacher, p, T) for p in fresh])  # each sequence labelled once
        data, targets = dataset, labels

        def loss_fn(index: Tensor | None) -> tuple[Tensor, float]:
            if index is None:
                loss = gkd_loss(student, teacher, data, config.beta, targets)  # §10
            else:
                loss = gkd_loss(student, teacher, data[index], config.beta, targets[index.to(targets.device)])
            return loss, loss.item()

        refit = BCConfig(n_updates=config.n_updates, batch_size=config.batch_size, lr=config.lr,
                         weight_decay=config.weight_decay, seed=(config.seed + 7919 * (i + 1)) % 2**32)
        losses = minibatch_training(params, data.batch_size, refit, loss_fn)
        history["data/sequences"].append(float(dataset.batch_size))
        history["data/on_policy"].append(float(n_on))
        history["loss/gkd"].append(losses[-1])
        if on_iteration is not None:
            for key, value in on_iteration(i, student, dataset).items():
                history.setdefault(key, []).append(float(value))
    assert dataset is not None
    return dataset, history


class ReverseKLReward:
    """PPO's ``reward_fn`` for sampled-token reverse-KL distillation: r_t = log pi_T(a_t|s_t) - log pi_old(a_t|s_t).

    A stop-gradient reward (computed from the batch's sampling log-probs and the frozen teacher), 0 on
    padding. Summed over a sequence it is log d^T(tau) - log d^pi(tau), so REINFORCE / PPO on it at
    gamma = 1 follows -grad KL(d^pi || d^T) in expectation (docs/equations.md §10). ``last_stats``
    keeps the batch mean of the sequence log-ratio (a Monte-Carlo estimate of that reverse KL).
    """

    def __init__(self, teacher: Policy, student: Policy | None = None):
        if student is not None:
            check_same_actions(student, teacher, "student", "teacher")
        if not callable(getattr(teacher, "log_prob", None)):
            raise ValueError(f"teacher: must give log_prob(batch), got {type(teacher).__name__}")
        self.teacher = teacher
        self.last_stats: dict[str, float] = {}

    @torch.no_grad()
    def __call__(self, batch: TrajectoryBatch) -> Tensor:
        if batch.log_probs is None:
            raise ValueError("batch: needs the sampling policy's log_probs")
        teacher_logp = self.teacher.log_prob(batch).float().cpu()  # (B, T)
        rewards = torch.where(batch.mask, teacher_logp - batch.log_probs.float(), torch.zeros(batch.mask.shape))
        self.last_stats = {"reward/reverse_kl": float(-batch.masked_sum(rewards).mean())}
        return rewards  # (B, T); docs/equations.md §10
