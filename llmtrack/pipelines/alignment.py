"""The alignment pipeline: base -> SFT -> reward model -> {DPO, PPO, GRPO, AfD, best-of-N}, scored
against the Markov task's exact optimum (survey §3-4; docs/equations.md §5-7).

The answer key is pi*_beta = pi_ref exp(r / beta) / Z at the task's beta (exact, from soft value
iteration). Every method is measured the same way on its own samples
(:func:`llmtrack.tasks.answer_key.sampled_point`): gold reward, KL(pi || pi_ref) to the task's
exact bigram pi_ref, and KL(pi || pi*_beta).

    base  pre-trained on pi_ref's corpus (cached): where SFT and AfD start
    sft   minirl BC on demonstrations of a gentler demonstrator pi*_{demo_beta} (demo_beta > beta):
          good behaviour, but not the optimum at beta -- the usual starting point of RLHF
    rm    a transformer reward model (LMRewardModel, a copy of the base) trained by Bradley-Terry
          on preference pairs sampled from pi_ref and labelled by the gold reward (BT, noise optional)
    dpo   minirl DPO on the same pairs at beta, from SFT: its optimum is pi_ref exp(r / beta) / Z
    ppo   minirl PPO on RM score - beta * per-token KL to pi_ref (llmtrack.pipelines.rlhf), from SFT
    grpo  the same update with group-normalised Monte-Carlo advantages (G responses per prompt)
    afd   minirl's adversarial trainer with a sequence discriminator, on SFT's demonstrations, from the
          base: reverse KL to the demonstrator, where SFT is forward KL (survey §4.3)
    bon   best-of-N sampling from SFT with the RM as the selector

The reference. The optimum of the beta-regularised objective is pi_ref exp(r / beta) / Z for the
*reference* in its KL term, whatever the initialisation. DPO, PPO and GRPO therefore take the task's
exact bigram pi_ref (``task.base``, the language the base model was pre-trained to imitate) as their
frozen reference, so that their optimum *is* the answer key pi*_beta -- "the right objective at the
right beta" -- and what separates them from it is their own error: the reward model's, the
optimiser's, the model's. A real pipeline has only a trained model to use as reference; with this
pipeline's nano base model (itself about 0.4 nats from pi_ref) the target would move by that much, which
no method can remove. The measured comparison over seeds, and the runs behind these decisions (the
reference, the reward model's within-prompt slope ``gold_slope``), are in docs/results/alignment.md.

SFT and AfD aim at their demonstrator pi*_{demo_beta}, and best-of-N at a quantile-shaped tilt of
SFT. SFT and AfD also get forward and reverse KL to their demonstrator and diversity (distinct
bigrams, per-token entropy): mass-covering vs mode-seeking, as in minirl's f-divergence demo.

Best-of-N's KL uses the exact formula pi_BoN(y|x) = F(y)^N - F(y-)^N with F(y-) = P_SFT(score <
score(y) | x) read off a pool of SFT samples per prompt and F(y) - F(y-) = pi_SFT(y|x) exact (RM
scores do not tie across responses; :func:`llmtrack.pipelines.best_of_n.best_of_n_point`).

Each stage is also its own command (``llmtrack rm|dpo|ppo|grpo|afd|bon``): the same function with
``methods`` cut to that stage and what it needs (the RM for ppo, grpo and bon; SFT for dpo, ppo,
grpo and bon, which start from it).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from minirl.algos.bc import BCConfig, train_bc
from minirl.algos.dpo import DPOConfig, train_dpo
from minirl.algos.reward_model import RewardModelConfig, train_reward_model
from minirl.data import TrajectoryBatch
from llmtrack.models import FAMILIES, PRESETS
from llmtrack.pipelines.afd import AfDConfig, afd_adversarial, train_afd
from llmtrack.pipelines.base import BaseModel
from llmtrack.pipelines.best_of_n import best_of_n_point
from llmtrack.pipelines.recipe import TASK_TRAINING, TokenCounter, make_pipeline_task
from llmtrack.pipelines.rlhf import RLHFConfig, lm_ppo_config, train_rlhf
from llmtrack.policy import LMPolicy
from llmtrack.reward_model import LMRewardModel, gold_accuracy, gold_correlation, gold_slope
from llmtrack.tasks.answer_key import exact_kl, expected_gold_reward, optimal_frontier, sampled_kl, sampled_point

__all__ = ["METHODS", "STAGES", "PipelineConfig", "PipelineResult", "run_pipeline", "best_of_n_point", "diversity"]

METHODS = ("sft", "dpo", "ppo", "grpo", "afd", "bon")
STAGES = ("rm",) + METHODS
NEEDS_RM = ("ppo", "grpo", "bon")
FROM_SFT = ("dpo", "ppo", "grpo", "bon")


@dataclass(frozen=True)
class PipelineConfig:
    """One ``llmtrack pipeline`` run; validated on construction (a bad field is a ValueError naming it)."""

    task: str = "markov"
    """Only "markov": the task with an exact optimum (``TASK_SETTINGS["markov"]``)."""
    size: str = "nano"
    """Model size preset (``llmtrack.models.PRESETS``)."""
    family: str = "gpt2"
    """Model family: "gpt2" or "llama"."""
    methods: tuple[str, ...] = METHODS
    """Stages to run, any of ``STAGES``; "rm" is added when ppo, grpo or bon need it."""
    seed: int = 0
    """Seeds the base model, data, every method and the evaluation samples."""
    demo_beta: float = 3.0
    """The demonstrator of SFT and AfD: pi*_{demo_beta}, gentler than the target beta (module docstring)."""
    n_demos: int = 4000
    """Demonstrations of the demonstrator for SFT and AfD."""
    sft_updates: int = 300
    """BC updates of SFT (minibatches of 64 at 3e-4: TASK_TRAINING["markov"])."""
    n_preferences: int = 16_000
    """Preference pairs (from pi_ref, Bradley-Terry labels from the gold reward) for the RM and DPO."""
    preference_noise: float = 0.0
    """Probability of flipping each label."""
    rm_updates: int = 1500
    """Reward-model Adam steps (64 pairs each; 6 epochs of 16 000 pairs). 600 steps leave the RM too flat
    (``gold_slope`` 0.68 / 0.39 for seeds 0 / 1); 1500 give 0.84 / 0.74 / 0.57 for seeds 0 / 1 / 2 (held-out
    accuracy 0.868 / 0.897 / 0.855; two threads, the runs of the module docstring's table)."""
    dpo_updates: int = 300
    """DPO Adam steps (64 pairs each)."""
    rl_tokens: int = 24_000
    """Response tokens PPO and GRPO each sample."""
    group_size: int = 4
    """GRPO's responses per prompt."""
    afd_tokens: int = 24_000
    """Response tokens AfD samples."""
    afd_demos: int = 2000
    """Demonstrations AfD's discriminator sees (the first of SFT's)."""
    bon_n: int = 16
    """N of best-of-N."""
    bon_pool: int = 512
    """Base samples per prompt for best-of-N's CDF (its KL estimate)."""
    n_eval: int = 1000
    """Own samples per method for gold reward and the KLs."""
    device: str = "cpu"
    """"cpu" (bit-reproducible), "cuda" or "auto"."""
    cache_dir: str | None = None
    """Cache root for base models (default $LLMTRACK_CACHE or ~/.cache/llmtrack)."""
    progress: bool = False

    def __post_init__(self) -> None:
        from minirl.checks import check_device, check_int, check_number, check_seed

        if self.task != "markov":
            raise ValueError(f"task: the alignment pipeline needs a task with an exact optimum; valid: ['markov'], "
                             f"got {self.task!r}")
        if not isinstance(self.size, str) or self.size not in PRESETS:
            raise ValueError(f"size: unknown size preset {self.size!r}; valid: {sorted(PRESETS)}")
        if not isinstance(self.family, str) or self.family not in FAMILIES:
            raise ValueError(f"family: unknown model family {self.family!r}; valid: {sorted(FAMILIES)}")
        if isinstance(self.methods, str) or not hasattr(self.methods, "__iter__"):  # "dpo" is not ("d", "p", "o")
            raise ValueError(f"methods: must be a sequence of stage names, got {self.methods!r}; valid: {list(STAGES)}")
        methods = tuple(self.methods)
        bad = [m for m in methods if not isinstance(m, str) or m not in STAGES]
        if bad or not methods:
            raise ValueError(f"methods: unknown or empty {list(methods)!r}; valid: {list(STAGES)}")
        object.__setattr__(self, "methods", methods)
        check_seed(self.seed)
        for name in ("n_demos", "sft_updates", "n_preferences", "rm_updates", "dpo_updates", "rl_tokens", "afd_tokens",
                     "afd_demos", "bon_n", "bon_pool"):
            check_int(getattr(self, name), name, 1)
        check_int(self.n_eval, "n_eval", 2)
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 2:
            raise ValueError(f"group_size: GRPO needs an integer >= 2 responses per prompt, got {self.group_size!r}")
        check_number(self.demo_beta, "demo_beta", 0.0, strict_minimum=True)
        if not 0.0 <= check_number(self.preference_noise, "preference_noise") < 0.5:
            raise ValueError(f"preference_noise: must be in [0, 0.5), got {self.preference_noise!r}")
        check_device(self.device, "device")  # a device this machine has, before any work

    @classmethod
    def fast(cls, **overrides: Any) -> "PipelineConfig":
        """Small budgets for tests and notebooks (the numbers move less; the plumbing is the same)."""
        small = dict(n_demos=1000, sft_updates=150, n_preferences=1000, rm_updates=150, dpo_updates=150,
                     rl_tokens=3000, afd_tokens=3000, afd_demos=500, bon_pool=128, n_eval=400)
        return cls(**{**small, **overrides})


@dataclass
class PipelineResult:
    """What a pipeline run measured; ``summary()`` is the CLI's JSON."""

    config: PipelineConfig
    methods: dict[str, dict[str, Any]]
    reward_model: dict[str, Any] | None
    base: dict[str, Any]
    optimum: dict[str, Any]
    frontier: list[dict[str, float]]
    histories: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    policies: dict[str, LMPolicy] = field(default_factory=dict)
    """The trained models, in memory: "base", "sft" (when run or needed) and each method's (not best-of-N,
    which is a sampling procedure over "sft"); for notebooks and follow-up experiments."""
    reward_model_object: LMRewardModel | None = None
    """The trained (frozen) reward model, if one was trained."""

    def summary(self) -> dict[str, Any]:
        c = self.config
        return {"task": c.task, "size": c.size, "family": c.family, "seed": c.seed, "beta": self.optimum["beta"],
                "methods": self.methods, "reward_model": self.reward_model, "base": self.base,
                "optimum": self.optimum, "frontier": self.frontier, "wall_s": round(self.wall_s, 3)}

    def table(self) -> str:
        """Rows: the base, each method, the exact optimum."""
        lines = [f"llmtrack pipeline: task={self.config.task} size={self.config.size} seed={self.config.seed} "
                 f"beta={self.optimum['beta']:g}",
                 f"{'method':8} {'gold reward':>16} {'KL(pi||pi_ref)':>16} {'KL(pi||pi*)':>16} {'wall s':>7}"]

        def cell(row: dict[str, Any], key: str) -> str:
            v, se = row.get(key), row.get(f"{key}_se")
            if v is None:
                return f"{'-':>16}"
            return f"{v:>8.3f} ± {se:<5.3f}" if se is not None else f"{v:>16.3f}"

        for name, row in [("base", self.base), *self.methods.items(), ("optimum", self.optimum)]:
            wall = f"{row['wall_s']:>7.1f}" if "wall_s" in row else f"{'':>7}"
            lines.append(f"{name:8} {cell(row, 'gold_reward')} {cell(row, 'kl_to_ref')} {cell(row, 'kl_to_optimum')} "
                         f"{wall}")
        o = self.optimum
        lines.append(f"demonstrator pi*_{{{o['demo_beta']:g}}} (SFT, AfD): gold {o['demonstrator_gold_reward']:.3f}, "
                     f"KL to pi_ref {o['demonstrator_kl_to_ref']:.3f}, KL to pi* {o['demonstrator_kl_to_optimum']:.3f}")
        for name in ("base", "sft", "afd"):
            row = self.base if name == "base" else self.methods.get(name)
            if row is not None and "forward_kl_to_demonstrator" in row:
                fwd, rev = row["forward_kl_to_demonstrator"], row["reverse_kl_to_demonstrator"]
                lines.append(f"  {name:5} forward KL(demo||pi) {fwd if fwd is not None else float('inf'):.3f}   "
                             f"reverse KL(pi||demo) {rev if rev is not None else float('inf'):.3f}   "
                             f"distinct-2 {row['distinct_2']:.3f}   entropy/token {row['entropy_per_token']:.3f}")
        if self.reward_model is not None:
            rm = self.reward_model
            lines.append(f"reward model: held-out accuracy {rm['accuracy']:.3f} (vs gold order), gold correlation "
                         f"{rm['gold_correlation']:.3f}, slope on gold within prompts {rm['gold_slope']:.3f} "
                         f"(PPO on it aims at about pi*_{{beta/slope}}), {rm['wall_s']:.1f} s")
        if "bon" in self.methods:
            lines.append(f"best-of-{self.config.bon_n}: KL bound log N - (N-1)/N = {self.methods['bon']['kl_bound']:.3f} "
                         "(to the SFT model it samples from, not pi_ref)")
        lines.append(f"wall time {self.wall_s:.1f} s")
        return "\n".join(lines)


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else
                (None if isinstance(v, float) else v)) for k, v in d.items()}


def diversity(policy: LMPolicy, samples: TrajectoryBatch) -> dict[str, float]:
    """distinct_2 = unique response bigrams / all response bigrams; entropy_per_token = mean over real
    steps of H(pi(.|s_t)) (exact per step) on the policy's own samples."""
    rows = [r[m].tolist() for r, m in zip(samples.actions, samples.mask)]
    bigrams = [(x, y) for r in rows for x, y in zip(r, r[1:])]
    unique = len(set(bigrams))
    with torch.no_grad():
        h = policy.entropy(samples).cpu()
    return {"distinct_2": unique / max(len(bigrams), 1),
            "entropy_per_token": float(h[samples.mask].mean())}


def run_pipeline(config: PipelineConfig = PipelineConfig()) -> PipelineResult:
    """Run the stages in ``config.methods`` (module docstring). Deterministic on the CPU given the config."""
    start = time.perf_counter()
    task = make_pipeline_task(config.task)
    training = TASK_TRAINING[config.task]
    pre_bc = BCConfig(n_updates=training["pretrain_updates"], batch_size=64, lr=3e-3, seed=config.seed,
                      progress=config.progress)
    spec = BaseModel(config.size, config.family, config.seed, training["pretrain_sequences"], pre_bc, config.device)
    base = spec.build(task, config.cache_dir)
    reference = task.base  # exact pi_ref: the optimum of DPO, PPO and GRPO is then pi*_beta (module docstring)
    demonstrator = task.optimal_policy(config.demo_beta)
    eval_seed = 10_000 + config.seed
    seed = config.seed
    wanted = set(config.methods)
    needs_sft = "sft" in wanted or bool(wanted & set(FROM_SFT))
    methods: dict[str, dict[str, Any]] = {}
    histories: dict[str, Any] = {}

    demos = task.rollout(demonstrator, config.n_demos, seed=seed + 1) if needs_sft or "afd" in wanted else None
    prefs = None
    if wanted & {"rm", "dpo", *NEEDS_RM}:
        prefs = task.preferences(config.n_preferences, noise=config.preference_noise, seed=seed + 2, temperature=1.0)

    rm, rm_row = None, None
    if wanted & {"rm", *NEEDS_RM}:
        t0 = time.perf_counter()
        rm = LMRewardModel.from_policy(base, seed=seed)
        losses = train_reward_model(rm, prefs, RewardModelConfig(objective="bt", n_updates=config.rm_updates, lr=1e-3,
                                                                 batch_size=64, seed=seed))
        for p in rm.parameters():
            p.requires_grad_(False)
        held_out = task.preferences(1000, seed=seed + 3)
        samples = task.rollout(base, 1000, seed=seed + 4)
        rm_row = {"accuracy": gold_accuracy(rm, held_out), "gold_correlation": gold_correlation(rm, samples),
                  "gold_slope": gold_slope(rm, samples),
                  "final_loss": losses[-1], "n_preferences": config.n_preferences,
                  "noise": config.preference_noise, "wall_s": time.perf_counter() - t0}
        histories["rm"] = losses

    def measure(policy: LMPolicy, name: str) -> dict[str, Any]:
        samples = task.rollout(policy, config.n_eval, seed=eval_seed)
        row = sampled_point(policy, task, samples=samples)
        if name in ("sft", "afd", "base"):  # the imitation pair: against their own demonstrator
            row["reverse_kl_to_demonstrator"] = sampled_kl(policy, demonstrator, samples).value
            held = task.rollout(demonstrator, config.n_eval, seed=eval_seed + 1)
            row["forward_kl_to_demonstrator"] = sampled_kl(demonstrator, policy, held).value
        row.update(diversity(policy, samples))
        return row

    sft_policy = None
    policies: dict[str, LMPolicy] = {"base": base}
    for name in METHODS:
        if name not in wanted and not (name == "sft" and needs_sft):
            continue
        t0 = time.perf_counter()
        policy = copy.deepcopy(sft_policy if name in FROM_SFT else base)
        counter = TokenCounter(policy)
        if policy.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(policy.device)
        if name == "sft":
            bc = BCConfig(n_updates=config.sft_updates, batch_size=64, lr=training["lr"], seed=seed,
                          progress=config.progress)
            histories[name] = train_bc(policy, demos, bc)
        elif name == "dpo":
            histories[name] = train_dpo(policy, reference, prefs,
                                        DPOConfig(beta=task.beta, n_updates=config.dpo_updates, batch_size=64,
                                                  lr=3e-4, seed=seed, progress=config.progress))
        elif name in ("ppo", "grpo"):
            G = 1 if name == "ppo" else config.group_size
            rl = RLHFConfig(beta=task.beta, total_tokens=config.rl_tokens, n_prompts=64 // G, group_size=G,
                            ppo=lm_ppo_config("gae" if name == "ppo" else "grpo"), seed=seed, progress=config.progress)
            histories[name] = train_rlhf(policy, task, rm, rl, reference=reference)
        elif name == "afd":
            # The policy 10x slower than PPO-RLHF's and 4 discriminator passes at 1e-3: the discriminator must
            # keep up, or PPO chases noise. Measured (seed 0, 24k tokens, demonstrator pi*_3): reverse / forward
            # KL to the demonstrator 0.55 / 0.57 (base) -> 0.42 / 0.51; with policy lr 1e-4 and disc lr 3e-4
            # they rose to 0.89 / 0.92.
            adversarial = afd_adversarial(lr=1e-3, disc_epochs=4, ppo=lm_ppo_config("gae", 3e-5), seed=seed)
            afd = AfDConfig(total_tokens=config.afd_tokens, adversarial=adversarial, seed=seed, progress=config.progress)
            _, histories[name] = train_afd(policy, task, demos[torch.arange(min(config.afd_demos, demos.batch_size))],
                                           afd)
        train_s = time.perf_counter() - t0
        counter.close()
        if name == "sft":
            sft_policy = policy
        if name != "bon":
            policies[name] = policy
        if name not in wanted:
            continue
        if name == "bon":
            row = best_of_n_point(sft_policy, task, rm, config.bon_n, config.n_eval, config.bon_pool, seed=eval_seed)
        else:
            row = measure(policy, name)
        row["train_s"] = train_s
        row["train_tokens"] = counter.tokens  # real tokens through the policy's forward passes with gradients
        row["train_tokens_per_s"] = counter.tokens / max(train_s, 1e-9)
        if policy.device.type == "cuda":
            row["peak_memory_mb"] = torch.cuda.max_memory_allocated(policy.device) / 2**20
        row["wall_s"] = time.perf_counter() - t0
        methods[name] = _rounded(row)

    base_row = _rounded(measure(base, "base"))
    beta = task.beta
    optimum = {"beta": beta, "gold_reward": expected_gold_reward(task, task.expert),
               "kl_to_ref": exact_kl(task, task.expert), "kl_to_optimum": 0.0, "demo_beta": config.demo_beta,
               "demonstrator_gold_reward": expected_gold_reward(task, demonstrator),
               "demonstrator_kl_to_ref": exact_kl(task, demonstrator),
               "demonstrator_kl_to_optimum": exact_kl(task, demonstrator, task.expert)}
    frontier = optimal_frontier(task, [beta * f for f in (0.5, 0.75, 1.0, 1.5, 2.0, 4.0)])
    return PipelineResult(config=config, methods=methods, reward_model=None if rm_row is None else _rounded(rm_row),
                          base=base_row, optimum=_rounded(optimum), frontier=frontier, histories=histories,
                          wall_s=time.perf_counter() - start, policies=policies, reward_model_object=rm)
