"""The ``llmtrack distill`` run: five ways to distil a task's exact teacher into a tiny LM (docs/equations.md §3, §10).

    sft     BC on N teacher samples, hard labels                     minirl.algos.bc.train_bc
    kd      soft labels on N teacher samples (off-policy KD)         minirl.algos.distillation.train_gkd, lambda = 0, beta = 0
    dagger  hard sampled labels on the student's own generations     minirl.algos.dagger.train_dagger (student roll-in)
    gkd     JSD(beta) with distribution labels, a share lambda of     minirl.algos.distillation.train_gkd
            each round's sequences the student's own
    rkl     sampled-token reverse KL as a per-token reward           minirl.algos.ppo.PPO + distillation.ReverseKLReward

The teacher is the task's exact expert: on markov pi*_beta = ``MarkovTask.optimal_policy(beta)`` (full
support), on sort the deterministic "sort what remains" expert. The student is the cached base model
(:class:`llmtrack.pipelines.base.BaseModel`). Budgets are equal in **labelled sequences** N: every method
has the teacher label N sequences (sft / kd: N teacher samples; dagger / gkd: N sequences over ``rounds``
rounds; rkl: N student samples scored by the teacher). ``teacher_queries`` counts the sequences the
teacher was actually asked about, repeats included. Every label is stored once (hard labels by DAgger,
distributions by ``train_gkd``), so equal labelled sequences are also equal teacher queries: N
sequences read by the teacher for every method. What differs is what one query returns -- a token
(sft, dagger), a whole next-token distribution per step (kd, gkd), a log-probability per step (rkl).
Updates: sft, kd, dagger and gkd take ``updates`` Adam steps in all; rkl takes PPO batches of ``rl_batch``
sequences (the remainder of N a last batch, :func:`rl_batch_sizes`) of 2 epochs x 2 minibatches. Its
advantage is the reward-to-go at ``rl_gamma``: 0 (the default) credits each token with its own log-ratio
alone, 1 with the rest of the sequence's (the exact gradient of the sequence KL, docs/equations.md §10).
rkl's settings were chosen on seeds 100-102, outside the lab's.

On sort the teacher gives probability 0 to every wrong token, so the reverse KL (beta = 1, rkl) is +inf
on any student sample: refused as bad input, before any work.

dagger's options: ``cold_start`` (round 1 rolls in the teacher, DAgger's beta0 = 1, so its sequences are
teacher samples: an SFT start; later rounds the student alone) and ``labels="coach"``
(:mod:`minirl.algos.coaching`: the teacher's action where the student gives it ``coach_threshold``
probability, else the student's most likely action of zero regret under the teacher's completion). The
regret is the task's (``SortTask.regret``), read on the same labelled sequences, so the budget stays N.
Markov supplies none (its teacher is a distribution, its "action" a sample): coach labels are refused there.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from minirl import parallel
from minirl.algos.bc import BCConfig, train_bc
from minirl.algos.coaching import Coach, CoachConfig
from minirl.algos.dagger import DAggerConfig, train_dagger
from minirl.algos.distillation import GKDConfig, ReverseKLReward, train_gkd
from minirl.algos.ppo import PPO, PPOConfig
from minirl.checks import check_int, check_number, check_probability, check_seed
from minirl.data import TrajectoryBatch
from minirl.sources import CallableSource
from llmtrack.pipelines.base import BaseModel
from llmtrack.pipelines.evaluate import EvalConfig, evaluate
from llmtrack.pipelines.imitation import SampledExpert, task_collector
from llmtrack.pipelines.recipe import SFTRunConfig, make_pipeline_task
from llmtrack.models import FAMILIES, PRESETS
from llmtrack.tasks import TASKS

__all__ = ["METHODS", "DistillRunConfig", "CountingTeacher", "run_distill", "rl_batch_sizes"]

METHODS = ("sft", "kd", "dagger", "gkd", "rkl")
LABELS = ("expert", "coach")
"""dagger's labels (module docstring)."""
DEFAULTS: dict[str, dict[str, Any]] = {
    "markov": dict(labelled=1000, updates=300, lr=3e-4, n_eval=1000),
    "sort": dict(labelled=200, updates=600, lr=1e-3, n_eval=1000),
}
"""Per-task defaults of the fields left None."""


@dataclass(frozen=True)
class DistillRunConfig:
    """One ``llmtrack distill`` run; every field checked on construction (before any work)."""

    task: str = "markov"
    """"markov" (teacher pi*_beta, full support) or "sort" (deterministic teacher)."""
    method: str = "gkd"
    """One of ``METHODS`` (module docstring)."""
    beta: float = 0.5
    """GKD's JSD(beta): 0 = forward KL, 1 = reverse KL (gkd only; kd is beta = 0)."""
    lmbda: float = 1.0
    """GKD's on-policy fraction (gkd only; kd is lambda = 0)."""
    labelled: int | None = None
    """N, sequences the teacher labels (None: the task's default in ``DEFAULTS``)."""
    size: str = "nano"
    """Student (and base model) size preset."""
    family: str = "gpt2"
    """Model family."""
    seed: int = 0
    """Seeds the base model, the data, the roll-outs and the minibatches (evaluation prompts stay fixed)."""
    rounds: int = 4
    """Rounds of dagger and gkd (N / rounds sequences each)."""
    updates: int | None = None
    """Adam steps in all for sft, kd, dagger, gkd (None: task default)."""
    batch_size: int = 64
    """Sequences per minibatch."""
    lr: float | None = None
    """Adam learning rate (None: task default)."""
    rl_batch: int = 20
    """Sequences per PPO batch (rkl)."""
    rl_lr: float = 1e-3
    """Adam learning rate of rkl's PPO updates."""
    rl_gamma: float = 0.0
    """rkl's discount in the reward-to-go: 0 = each token's own log-ratio, 1 = the rest of the sequence's."""
    n_eval: int | None = None
    """Own generations and teacher samples per evaluation (None: task default)."""
    cold_start: bool = False
    """dagger: round 1 rolls in the teacher (beta0 = 1, an SFT start), later rounds the student (beta_decay = 0)."""
    labels: str = "expert"
    """dagger's labels, one of ``LABELS``: the teacher's at each visited state, or coached (module docstring)."""
    coach_threshold: float = 0.1
    """coach: teach the teacher's action where the student gives it at least this probability, in [0, 1]."""
    progress: bool = False
    """Progress bars (stderr)."""

    def __post_init__(self) -> None:
        for name, valid in (("task", DEFAULTS), ("method", METHODS), ("size", PRESETS), ("family", FAMILIES)):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in valid:
                raise ValueError(f"{name}: must be one of {sorted(valid)}, got {value!r}")
        check_probability(self.beta, "beta")
        check_probability(self.lmbda, "lmbda")
        for name, value in DEFAULTS[self.task].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        check_int(self.labelled, "labelled", 1, 100_000)
        check_int(self.rounds, "rounds", 1, 100)
        check_int(self.updates, "updates", 1, 100_000)
        check_int(self.batch_size, "batch_size", 1)
        check_int(self.rl_batch, "rl_batch", 2)
        check_number(self.rl_lr, "rl_lr", 0.0, strict_minimum=True)
        check_probability(self.rl_gamma, "rl_gamma")
        check_int(self.n_eval, "n_eval", 2)
        check_seed(self.seed)
        if self.labelled < self.rounds and self.method in ("dagger", "gkd"):
            raise ValueError(f"labelled: {self.method} needs at least one sequence per round ({self.rounds})")
        if self.task == "sort" and (self.method == "rkl" or (self.method == "gkd" and self.beta == 1.0)):
            field = "method" if self.method == "rkl" else "beta"
            raise ValueError(f"{field}: the reverse KL to sort's deterministic teacher is +inf on any student sample "
                             "(the teacher gives wrong tokens probability 0); use beta < 1 or another method")
        if not isinstance(self.cold_start, bool):
            raise ValueError(f"cold_start: must be True or False, got {self.cold_start!r}")
        if not isinstance(self.labels, str) or self.labels not in LABELS:
            raise ValueError(f"labels: must be one of {list(LABELS)}, got {self.labels!r}")
        check_probability(self.coach_threshold, "coach_threshold")
        if self.method != "dagger" and (self.cold_start or self.labels != "expert"):
            field = "cold_start" if self.cold_start else "labels"
            raise ValueError(f"{field}: a dagger option; method {self.method!r} does not take it")
        if self.labels == "coach" and not callable(getattr(TASKS.get(self.task), "regret", None)):
            raise ValueError(f"labels: coach labels need the teacher's regret at every state, which the {self.task} "
                             "task does not supply (its teacher is a distribution: its 'action' is only a sample); "
                             "use labels='expert' or task='sort'")
        self.base_model()  # validates the base-model spec too

    def base_model(self) -> BaseModel:
        """The base model ``llmtrack sft`` starts from for this task, size, family and seed (the same cache entry)."""
        return SFTRunConfig(task=self.task, size=self.size, family=self.family, seed=self.seed).base_model()

    @property
    def effective_beta(self) -> float | None:
        return {"kd": 0.0, "gkd": self.beta}.get(self.method)

    @property
    def effective_lmbda(self) -> float | None:
        return {"kd": 0.0, "gkd": self.lmbda}.get(self.method)


class CountingTeacher(nn.Module):
    """The teacher behind a counter: every row it is asked about (labels, distributions, log-probs) counts
    once per ask; its sampled sequences (demonstrations) are counted by the caller."""

    def __init__(self, teacher: nn.Module):
        super().__init__()
        self.teacher, self.n_actions, self.queries = teacher, teacher.n_actions, 0

    def label_distribution(self, batch: TrajectoryBatch) -> Tensor:
        self.queries += batch.batch_size
        return self.teacher.log_probs_all(batch)

    def log_prob(self, batch: TrajectoryBatch) -> Tensor:
        self.queries += batch.batch_size
        return self.teacher.log_prob(batch)

    def label(self, batch: TrajectoryBatch) -> Tensor:
        self.queries += batch.batch_size
        return self.teacher.label(batch)

    def entropy(self, batch: TrajectoryBatch) -> Tensor:
        return self.teacher.entropy(batch)

    def sample(self, obs: Tensor, generator: torch.Generator | None = None, deterministic: bool = False):
        return self.teacher.sample(obs, generator=generator, deterministic=deterministic)


def _train(config: DistillRunConfig, policy, task, teacher: CountingTeacher) -> dict[str, list[float]]:
    N, seed, c = config.labelled, config.seed, config
    collect = task_collector(task)
    per_round = max(1, c.updates // c.rounds)
    if c.method == "sft":
        demos = task.demonstrations(N, seed=seed)
        teacher.queries += N
        return train_bc(policy, demos, BCConfig(n_updates=c.updates, batch_size=c.batch_size, lr=c.lr, seed=seed,
                                                progress=c.progress))
    if c.method in ("kd", "gkd"):
        gkd = GKDConfig(beta=c.effective_beta, lmbda=c.effective_lmbda, n_iterations=c.rounds,
                        sequences_per_iteration=N // c.rounds, n_updates=per_round, batch_size=c.batch_size,
                        lr=c.lr, seed=seed + 1, progress=c.progress)

        def teacher_samples(_teacher, n: int, s: int) -> TrajectoryBatch:
            # counted once, when train_gkd reads the teacher's distributions along them: sampling a
            # sequence from the teacher and reading its distributions at every step are one pass
            return task.demonstrations(n, seed=s)

        return train_gkd(policy, teacher, collect, gkd, off_policy=teacher_samples)[1]
    if c.method == "dagger":
        labeller = SampledExpert(teacher, seed=seed)  # hard labels: a teacher sample at each state; acts as the teacher
        if c.labels == "coach":  # the teacher's action, or the student's most likely zero-regret one
            labeller = Coach(policy, labeller, task.regret, CoachConfig(threshold=c.coach_threshold))
        dagger = DAggerConfig(n_iterations=c.rounds, episodes_per_iteration=N // c.rounds,
                              beta0=1.0 if c.cold_start else 0.0, beta_decay=0.0,  # beta = 1 (cold start), 0, 0, ...
                              bc=BCConfig(n_updates=per_round, batch_size=c.batch_size, lr=c.lr, seed=seed),
                              seed=seed + 1, progress=c.progress)
        history = train_dagger(policy, labeller, collect, dagger)[1]
        if isinstance(labeller, Coach):
            history["coach/relabelled"] = [labeller.relabelled / max(1, labeller.labelled)]
        return history
    # rkl: minirl's PPO update with reward-to-go advantages on the sampled-token reverse-KL reward
    ppo = PPO(policy, None, PPOConfig(advantage="reward_to_go", gamma=c.rl_gamma, n_epochs=2, n_minibatches=2,
                                      lr=c.rl_lr, anneal_lr=False, max_grad_norm=1.0, seed=seed))
    reward = ReverseKLReward(teacher, policy)
    sizes = rl_batch_sizes(N, c.rl_batch)
    rounds = itertools.count()

    def draw() -> TrajectoryBatch:
        i = next(rounds)
        return collect(policy, sizes[i], parallel.process_seed(seed + 1 + i))  # own samples per process

    source = CallableSource(draw, steps_per_batch=1)  # budgeted in rounds: one batch each
    history: dict[str, list[float]] = {"reward/reverse_kl": []}
    ppo.train(source, len(sizes), reward_fn=reward,
              callback=lambda _: history["reward/reverse_kl"].append(reward.last_stats["reward/reverse_kl"]))
    return history


def rl_batch_sizes(labelled: int, rl_batch: int) -> list[int]:
    """rkl's PPO batches: ``rl_batch`` sequences each, the remainder of N a last, smaller batch (folded into
    the one before when it is a single sequence), so the teacher scores exactly N sequences."""
    sizes = [rl_batch] * (labelled // rl_batch)
    rest = labelled % rl_batch
    if rest >= 2 or not sizes:
        sizes.append(rest)
    elif rest == 1:
        sizes[-1] += 1
    return sizes


def run_distill(config: DistillRunConfig = DistillRunConfig(), cache_dir: str | None = None) -> dict[str, Any]:
    """Run one distillation (module docstring); the CLI's JSON keys, flat (None where a number is infinite)."""
    if not isinstance(config, DistillRunConfig):
        raise ValueError(f"config: must be a DistillRunConfig, got {type(config).__name__}")
    start = time.perf_counter()
    threads = torch.get_num_threads()
    if config.size == "nano":
        torch.set_num_threads(1)  # nano's products are too small to gain from threads (as llmtrack sft)
    try:
        task = make_pipeline_task(config.task)
        policy = config.base_model().build(task, cache_dir)
        teacher = CountingTeacher(task.expert)
        t0 = time.perf_counter()
        history = _train(config, policy, task, teacher)
        train_s = time.perf_counter() - t0
        metrics = evaluate(policy, task, EvalConfig(n_sequences=config.n_eval))
    finally:
        torch.set_num_threads(threads)
    out: dict[str, Any] = {"task": config.task, "method": config.method, "beta": config.effective_beta,
                           "lmbda": config.effective_lmbda,
                           "rl_gamma": config.rl_gamma if config.method == "rkl" else None,
                           "labelled": config.labelled, "size": config.size,
                           "seed": config.seed}
    for key in ("forward_kl", "forward_kl_se", "reverse_kl", "reverse_kl_se", "gold_reward", "gold_reward_se",
                "expert_accuracy", "mistakes_after_first", "slip_rate", "mistakes"):
        value = metrics.get(key)
        out[key] = None if value is None or value != value or value in (float("inf"), float("-inf")) else value
    dagger, coach = config.method == "dagger", config.method == "dagger" and config.labels == "coach"
    out.update(labels=config.labels if dagger else None, cold_start=config.cold_start if dagger else None,
               coach_threshold=config.coach_threshold if coach else None,
               relabelled=history["coach/relabelled"][-1] if coach else None)  # share of labels not the teacher's
    out.update(teacher_queries=teacher.queries, train_s=round(train_s, 3),
               wall_s=round(time.perf_counter() - start, 3))
    return out


