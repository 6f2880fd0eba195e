"""One rollout for training and evaluation: sample completions with the policy, replay them through the env's
whole wrapper stack (:func:`llm_cmdp_env.replay.fast_path.replay`), and return what both need.

The trainer and :func:`~llm_cmdp_agents.run.evaluate.evaluate_policy` call :func:`rollout`; what a stack whose rule adds
its state to the observation needs (the value a conditioned policy reads) is handled here,
through :mod:`llm_cmdp_agents.engine.conditioning`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from llm_cmdp_agents.engine.conditioning import condition_tracker, conditions_from_episodes
from llm_cmdp_agents.engine.data_parallel import gathered, lockstep
from llm_cmdp_agents.engine.distributed import World
from llm_cmdp_agents.engine.policy import LLMPolicy
from llm_cmdp_agents.engine.sampling import sample
from llm_cmdp_env.replay.fast_path import Episode, prompt_ids, replay, solution_ids
from llm_cmdp_env.tasks import Problem

__all__ = ["Rollout", "reference_rollout", "rollout"]


@dataclass
class Rollout:
    """One batch of finished episodes.

    Attributes
    ----------
    prompts, completions : list of list of int
        Token ids; ``completions[i]`` holds the tokens actually stepped (a wrapper that ends an episode early
        cuts it).
    old_logprobs : list of Tensor [T_i]
        log pi_old(a_t | s_t) of the sampling policy.
    rewards, costs : list of ndarray [T_i]
        Per-token reward of the wrapper stack (what is optimised) and raw cost ``info["cost"]``.
    episodes : list of Episode
        The replayed episodes (final infos, statistics).
    groups : ndarray [N]
        Group id of each episode (same prompt = same group; GRPO normalises within a group).
    conditions : list of Tensor [T_i] or None
        The observed value before each token, for a conditioned policy.
    offset, global_lengths
        This batch's place in a global batch spread over data-parallel ranks (see
        :mod:`llm_cmdp_agents.engine.distributed`).
    """

    prompts: list[list[int]]
    completions: list[list[int]]
    old_logprobs: list[torch.Tensor]
    rewards: list[np.ndarray]
    costs: list[np.ndarray]
    episodes: list[Episode]
    groups: np.ndarray
    conditions: list[torch.Tensor] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    offset: int = 0  # where these episodes start in the global batch (a rank's share in data-parallel training)
    global_lengths: np.ndarray | None = None  # completion lengths of the whole global batch (None: just these)

    def __len__(self) -> int:
        return len(self.completions)

    @property
    def returns(self) -> np.ndarray:
        """Episode return of the wrapper stack's reward, ``[N]``."""
        return np.array([float(r.sum()) for r in self.rewards])

    @property
    def episode_costs(self) -> np.ndarray:
        """Summed cost of each episode, ``[N]``."""
        return np.array([float(c.sum()) for c in self.costs])

    @property
    def task_rewards(self) -> np.ndarray:
        """Raw task reward of each episode (the env's ``task_reward``, 1 if correct), ``[N]``."""
        return np.array([float(e.final_info.get("task_reward", 0.0)) for e in self.episodes])

    def satisfied(self) -> np.ndarray | None:
        """Per-episode ``constraint_satisfied`` of the stack's statistics, or None when it reports none."""
        sat = [e.final_info.get("episode", {}).get("constraint_satisfied") for e in self.episodes]
        return None if any(s is None for s in sat) else np.array(sat, dtype=bool)

    def stats(self, world: World | None = None) -> dict[str, float]:
        """Batch means over the episodes of every rank: reward (the penalised return the learner optimises),
        task reward (the raw return, format reward included), cost, accuracy (final task reward), length,
        constraint satisfaction and the Lagrange multiplier (when reported)."""
        world = world or World()
        eps = self.episodes
        table = {
            "reward": self.returns.tolist(),
            "task_reward": [float(e.final_info.get("episode", {}).get("task_r", e.final_info.get("task_reward", 0.0)))
                            for e in eps],
            "cost": self.episode_costs.tolist(),
            "accuracy": self.task_rewards.tolist(),
            "length": [float(len(c)) for c in self.completions],
        }
        sat = self.satisfied()
        if sat is not None:
            table["constraint_satisfaction"] = sat.astype(float).tolist()
        lam = [e.final_info.get("lagrange_multiplier") for e in eps]
        if lam and all(x is not None for x in lam):
            table["lambda"] = [float(x) for x in lam]
        merged = {k: world.concat(v) for k, v in table.items()}
        out = {k: float(np.mean(v)) for k, v in merged.items() if k != "lambda"}
        if "lambda" in merged:
            out["lambda"] = merged["lambda"][-1]
        return out


def rollout(
    policy: LLMPolicy,
    env: gym.Env,
    problems: Sequence[Problem],
    *,
    groups: np.ndarray | None = None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    greedy: bool = False,
    generator: torch.Generator | None = None,
    rows: tuple[int, int] | None = None,
    stop_together: Callable[[bool], bool] | None = None,
) -> Rollout:
    """Sample one completion per problem and replay it through ``env``'s wrapper stack.

    The completions come from :func:`~llm_cmdp_agents.engine.sampling.sample` with the log-probs attached (so the env's
    student-dependent divergences read the policy that acted), the rewards and costs from the env itself
    (:func:`~llm_cmdp_env.replay.fast_path.replay`): the numbers any other algorithm stepping the same env would see.
    A conditioned policy samples under the value the stack's rule will compute.
    ``rows``/``stop_together``: these problems are a rank's share of a global batch (see
    :func:`~llm_cmdp_agents.engine.sampling.sample`).
    """
    base = env.unwrapped
    prompts = [prompt_ids(env, p) for p in problems]
    tracker = condition_tracker(policy, env)
    z0 = tracker.initial(len(prompts)) if tracker is not None else None
    condition_kwargs: dict[str, Any] = {}
    if tracker is not None:
        assert z0 is not None
        condition_kwargs = {"condition0": tracker.start(prompts, z0), "condition_step": tracker.step}
    with gathered(policy):  # an FSDP-sharded policy samples in lockstep with the other ranks
        samples = sample(policy, prompts, base.max_new_tokens, base.eos_ids, base.pad_id, temperature=temperature,
                         top_p=top_p, greedy=greedy, generator=generator, rows=rows,
                         stop_together=stop_together or lockstep(policy),
                         full_logprobs=base.divergence.needs_full_student, decode=policy.decode, **condition_kwargs)
    # the env's core picks what its divergence needs from what the sampler attached
    episodes = replay(env, problems, samples.completions, student_logprobs=samples.full_logprobs,
                      student_token_logprobs=samples.token_logprobs, keep_infos=tracker is not None)
    conditions = conditions_from_episodes(z0, episodes, tracker.rule.obs_key) if tracker is not None else None
    return _from_episodes(prompts, episodes, samples.token_logprobs, groups, conditions)


def reference_rollout(
    policy: LLMPolicy,
    env: gym.Env,
    problems: Sequence[Problem],
    *,
    groups: np.ndarray | None = None,
    temperature: float = 1.0,
    chunk: int = 16,
) -> Rollout:
    """The problems' reference solutions as a batch, replayed through ``env``'s wrapper stack like samples: the
    off-policy data of GKD (``gkd_lambda < 1``). ``old_logprobs`` are the policy's log-probs of the solution
    tokens (what the env's student-dependent divergences read)."""
    if condition_tracker(policy, env) is not None:
        raise ValueError("reference solutions carry no observed state: a conditioned policy cannot train on them")
    base = env.unwrapped
    prompts = [prompt_ids(env, p) for p in problems]
    completions = [solution_ids(env, p) for p in problems]
    full = base.divergence.needs_full_student
    token_lp: list[torch.Tensor] = []
    full_lp: list[torch.Tensor] = []
    with torch.no_grad(), gathered(policy):
        for s in range(0, len(prompts), chunk):
            comps = completions[s: s + chunk]
            ev = policy.evaluate_actions(prompts[s: s + chunk], comps, temperature, full=full)
            for i, c in enumerate(comps):
                token_lp.append(ev.logprobs[i, : len(c)].float().cpu())
                if full:
                    assert ev.full_logprobs is not None
                    full_lp.append(ev.full_logprobs[i, : len(c)].float().cpu())
    episodes = replay(env, problems, completions, student_logprobs=full_lp if full else None,
                      student_token_logprobs=token_lp)
    return _from_episodes(prompts, episodes, token_lp, groups)


def _from_episodes(prompts: list[list[int]], episodes: list[Episode], token_logprobs: Sequence[torch.Tensor],
                   groups: np.ndarray | None, conditions: list[torch.Tensor] | None = None) -> Rollout:
    """The batch of replayed ``episodes``: their tokens as the env took them, the acting policy's log-probs of
    those tokens, the env's rewards and costs; one group per episode unless ``groups`` is given."""
    completions = [ep.tokens for ep in episodes]
    old = [lp[: len(c)] for lp, c in zip(token_logprobs, completions)]
    return Rollout(prompts, completions, old, [ep.rewards for ep in episodes], [ep.costs for ep in episodes],
                   episodes, np.arange(len(episodes)) if groups is None else np.asarray(groups), conditions)
