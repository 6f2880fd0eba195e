"""The whole-sequence fast path: an agent that generated whole completions itself gets every step's
reward, cost and info through the env's full wrapper stack, with one teacher forward per batch.

Usage (``env`` is any stack of single-env wrappers over ``MathDistill-v0``)::

    problems = sample_problems(env, 8)                        # or your own Problem objects
    prompts = [prompt_ids(env, p) for p in problems]          # what the agent conditions on
    completions = my_sampler(prompts)                          # lists of token ids, EOS included
    episodes = replay(env, problems, completions)              # one teacher forward, then cheap steps
    episodes[0].rewards, episodes[0].costs, episodes[0].final_info

Each episode is replayed with ``reset(options={"problem": p})`` followed by ``step`` per token, so every
wrapper (budget rewards, learned multipliers, statistics) sees exactly what a stepping user's would;
only the teacher scoring is precomputed. The numbers equal plain stepping (to float tolerance).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from llm_cmdp_env.divergences import divergence_cost
from llm_cmdp_env.scoring import batch_completion_logprobs
from llm_cmdp_env.tasks import Problem


@dataclass
class Episode:
    """What one replayed episode produced, as seen at the outermost wrapper."""

    problem: Problem
    tokens: list[int]
    rewards: np.ndarray
    costs: np.ndarray
    terminated: bool
    truncated: bool
    final_info: dict[str, Any]
    infos: list[dict[str, Any]] = field(default_factory=list)


def _base(env: gym.Env):
    from llm_cmdp_env.envs.math_distill import MathDistillEnv

    base = env.unwrapped
    if not isinstance(base, MathDistillEnv):
        raise TypeError(f"the fast path needs a MathDistillEnv underneath, got {type(base).__name__}")
    return base


def sample_problems(env: gym.Env, n: int) -> list[Problem]:
    """Draw ``n`` problems with the env's own seeded RNG (seed it with ``env.reset(seed=...)`` first)."""
    base = _base(env)
    return [base.setup.task.sample(base.np_random) for _ in range(n)]


def prompt_ids(env: gym.Env, problem: Problem) -> list[int]:
    """The prompt token ids the env will show for ``problem``."""
    return _base(env).setup.encode_problem(problem)


def _token_list(base: Any, completion: Sequence[Any]) -> list[int]:
    """``completion`` as validated token ids: one vectorised range check for an integer sequence, the
    env's per-token check (with its precise error) for anything else."""
    if isinstance(completion, (np.ndarray, torch.Tensor)):
        arr = completion.cpu().numpy() if isinstance(completion, torch.Tensor) else completion
        ok = arr.ndim == 1 and arr.dtype != np.bool_ and np.issubdtype(arr.dtype, np.integer)
        ids = arr.tolist() if ok else None
    else:  # plain ints only (a bool or a float in a list must get the per-token error, not be converted)
        ids = list(completion) if all(type(x) is int for x in completion) else None
    if ids is not None and (not ids or (min(ids) >= 0 and max(ids) < base.vocab_size)):
        return ids
    return [base._check_token(x) for x in completion]


def score_completions(
    env: gym.Env,
    problems: Sequence[Problem],
    completions: Sequence[Sequence[int]],
    student_logprobs: Sequence[Any] | None = None,
    student_token_logprobs: Sequence[Any] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Per-step ``cost`` and ``teacher_logprob`` arrays for each completion, from one batched forward of
    the teacher (and of the env's student model, when a student-dependent divergence needs it and no
    log-probs are given). ``student_logprobs[i]`` is ``[T_i, V]``; ``student_token_logprobs[i]`` is ``[T_i]``."""
    base = _base(env)
    su = base.setup
    if len(problems) != len(completions):
        raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
    tokens = []
    for c in completions:
        t = _token_list(base, c)
        if not 1 <= len(t) <= su.max_new_tokens:
            raise ValueError(f"each completion must have 1..{su.max_new_tokens} tokens, got {len(t)}")
        tokens.append(t)
    prompts = [su.encode_problem(p) for p in problems]
    need_student_model = su.divergence.needs_student and student_logprobs is None and not (
        student_token_logprobs is not None and not su.divergence.needs_full_student
    )
    if need_student_model and su.student is None:
        raise ValueError(su.missing_student_message())
    student_rows = (
        batch_completion_logprobs(su.student, prompts, tokens, su.pad_id) if need_student_model else None
    )
    out = []
    for i, t_logp in enumerate(batch_completion_logprobs(su.teacher, prompts, tokens, su.pad_id)):
        acts = torch.tensor(tokens[i], device=t_logp.device)
        s_full, s_tok = su.student_logprobs(
            t_logp.device,
            None if student_logprobs is None else student_logprobs[i],
            None if student_token_logprobs is None else student_token_logprobs[i],
            (lambda: next(student_rows)) if student_rows is not None else None,
        )
        cost = divergence_cost(su.divergence.name, t_logp, acts, s_full, s_tok)
        out.append({
            "tokens": np.asarray(tokens[i], dtype=np.int64),
            "cost": cost.double().cpu().numpy(),
            "teacher_logprob": t_logp.gather(-1, acts[:, None])[:, 0].double().cpu().numpy(),
        })
    return out


def replay(
    env: gym.Env,
    problems: Sequence[Problem],
    completions: Sequence[Sequence[int]],
    student_logprobs: Sequence[Any] | None = None,
    student_token_logprobs: Sequence[Any] | None = None,
    keep_infos: bool = False,
) -> list[Episode]:
    """Score all completions in one batch, then step each episode through ``env``'s wrapper stack.

    A completion that stops before EOS and before ``max_new_tokens`` leaves its episode unfinished: that
    is an error (its reward would be undefined). A wrapper that ends the episode early (e.g. a budget
    wrapper with ``terminate_on_violation``) cuts the replay there: ``Episode.tokens`` holds the tokens
    actually stepped. ``keep_infos=True`` also keeps every step's info.
    """
    base = _base(env)
    for i, c in enumerate(completions):
        if not 1 <= len(c) <= base.max_new_tokens:
            raise ValueError(f"each completion must have 1..{base.max_new_tokens} tokens, completion {i} has {len(c)}")
        ends = [t for t, tok in enumerate(c) if int(tok) in base.eos_ids]
        if ends and ends[0] != len(c) - 1:
            raise ValueError(f"completion {i} continues after the episode ended at token {ends[0]} (EOS inside)")
        if not ends and len(c) != base.max_new_tokens:
            raise ValueError(
                f"completion {i} of {len(c)} tokens ends without EOS before max_new_tokens={base.max_new_tokens}"
            )
    scored = score_completions(env, problems, completions, student_logprobs, student_token_logprobs)
    episodes = []
    for problem, pre in zip(problems, scored):
        env.reset(options={"problem": problem})
        base._preloaded = pre
        n = len(pre["tokens"])
        rewards, costs, infos = np.zeros(n), np.zeros(n), []
        term = trunc = False
        info: dict[str, Any] = {}
        for t, tok in enumerate(pre["tokens"]):
            _, r, term, trunc, info = env.step(int(tok))
            rewards[t], costs[t] = r, info["cost"]
            if keep_infos:
                infos.append(info)
            if term or trunc:  # a wrapper may end the episode early (e.g. terminate_on_violation)
                rewards, costs, n = rewards[: t + 1], costs[: t + 1], t + 1
                break
        episodes.append(Episode(problem, pre["tokens"][:n].tolist(), rewards, costs, term, trunc, info, infos))
    return episodes
