"""Options several algorithms share, declared once: a config class lists the groups it has among its bases
(``class PPOConfig(SurrogateOptions, DistillOptions, TrainConfig)``). Light to import (no torch)."""

from __future__ import annotations

from dataclasses import dataclass

from llm_cmdp_agents.algos.config import boolean, option, real

__all__ = ["DistillOptions", "JSDOptions", "SurrogateOptions"]


@dataclass
class SurrogateOptions:
    """The clipped policy-gradient surrogate's options (PPO, GRPO, MiniLLM)."""

    clip: float = option(0.2, "ratio clip epsilon of the surrogate", real(positive=True))
    normalise_advantages: bool = option(True, "normalise the advantages: PPO and MiniLLM whiten them over the batch's "
                                        "tokens, GRPO divides each group's centred returns by its std (off: centred "
                                        "only, Dr. GRPO)", boolean)


@dataclass
class JSDOptions:
    """The generalised JSD to the teacher (GKD's loss, and the term PPO and GRPO may add)."""

    gkd_beta: float = option(0.5, "the JSD's interpolation: 0 forward KL(teacher || student), 1 reverse KL",
                             real(low=0.0, high=1.0))


@dataclass
class DistillOptions(JSDOptions):
    """A JSD to the teacher added beside a policy-gradient loss (GRPO + GKD)."""

    distill_coef: float = option(0.0, "weight of GKD's JSD to the teacher added to the loss (0: none)",
                                 real(nonnegative=True))
