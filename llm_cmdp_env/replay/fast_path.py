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

from llm_cmdp_env.envs.math_distill import MathDistillEnv
from llm_cmdp_env.episode.rules import ScoredCompletion
from llm_cmdp_env.replay.side_by_side import MIN_SIDE_BY_SIDE, replay_wave, side_by_side_layers, wave_size
from llm_cmdp_env.tasks import Problem

__all__ = ["Episode", "prompt_ids", "replay", "replay_scored", "sample_problems", "score_completions", "solution_ids"]


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
    teacher_logprobs: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the teacher's log-prob of each token
    #: with ``keep_infos``: per step, the entries the wrapper stack added to the base env's (Dict) observation, as
    #: that step returned them (e.g. Sauté's budget state), what a budget-conditioned policy reads
    observations: list[dict[str, np.ndarray]] = field(default_factory=list)


def _base(env: gym.Env) -> MathDistillEnv:
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


def solution_ids(env: gym.Env, problem: Problem) -> list[int]:
    """The problem's reference solution as a completion of the env (tokens then EOS, cut to ``max_new_tokens``)."""
    return _base(env).setup.encode_solution(problem)


def score_completions(
    env: gym.Env,
    problems: Sequence[Problem],
    completions: Sequence[Sequence[int]],
    student_logprobs: Sequence[Any] | None = None,
    student_token_logprobs: Sequence[Any] | None = None,
) -> list[ScoredCompletion]:
    """Per-step ``cost`` and ``teacher_logprob`` arrays for each completion, from one batched forward of
    the teacher (see :meth:`llm_cmdp_env.episode.rules.DistillSetup.score`)."""
    return _base(env).setup.score(problems, completions, student_logprobs, student_token_logprobs)


def replay(
    env: gym.Env,
    problems: Sequence[Problem],
    completions: Sequence[Sequence[int]],
    student_logprobs: Sequence[Any] | None = None,
    student_token_logprobs: Sequence[Any] | None = None,
    keep_infos: bool = False,
    side_by_side: bool = True,
) -> list[Episode]:
    """Score all completions in one batch, then step each episode through ``env``'s wrapper stack.

    A completion the env could not have produced (continuing after EOS, or stopping before EOS and before
    ``max_new_tokens``) is an error (its reward would be undefined). A wrapper that ends the episode early (e.g.
    a budget wrapper with ``terminate_on_violation``) cuts the replay there: ``Episode.tokens`` holds the tokens
    actually stepped. ``keep_infos=True`` also keeps every step's info.

    When the stack is only constraint wrappers (constraints, statistics) over the env, the episodes but the last
    run side by side on arrays in waves of at least ``MIN_SIDE_BY_SIDE`` (:mod:`llm_cmdp_env.replay.side_by_side`: the
    same numbers, about twice as fast per token at 32 episodes); ``side_by_side=False`` (or ``keep_infos=True``) steps
    every episode through the stack.
    """
    setup = _base(env).setup
    tokens = [np.asarray(setup.check_tokens(c), dtype=np.int64) for c in completions]
    for i, t in enumerate(tokens):
        setup.check_completion(t, i)
    scored = setup.score(problems, tokens, student_logprobs, student_token_logprobs)
    return replay_scored(env, problems, scored, keep_infos=keep_infos, side_by_side=side_by_side)


def replay_scored(env: gym.Env, problems: Sequence[Problem], scored: Sequence[ScoredCompletion],
                  keep_infos: bool = False, side_by_side: bool = True) -> list[Episode]:
    """:func:`replay` after the scoring: step the completions scored by :func:`score_completions` (checked by
    it) through ``env``'s wrapper stack."""
    base = _base(env)
    episodes: list[Episode] = []
    layers = side_by_side_layers(env) if side_by_side and not keep_infos else None
    if layers is not None and not all(np.isfinite(pre.cost).all() for pre in scored):
        layers = None  # one by one, so a NaN cost raises the wrappers' own error
    last = len(problems) - 1  # always through the stack: every wrapper then ends in one-by-one's state
    i = 0
    while i < len(problems):
        n = wave_size(layers, last - i) if layers is not None and i < last else 0
        if n >= MIN_SIDE_BY_SIDE:
            fields = replay_wave(env, layers, problems[i: i + n], scored[i: i + n])
            episodes += [Episode(p, **f) for p, f in zip(problems[i: i + n], fields)]
            i += n
        else:
            episodes.append(_step_one(env, base, problems[i], scored[i], keep_infos))
            i += 1
    return episodes


def _step_one(env: gym.Env, base: MathDistillEnv, problem: Problem, pre: ScoredCompletion,
              keep_infos: bool) -> Episode:
    """One episode stepped token by token through ``env``'s wrapper stack."""
    env.reset(options={"problem": problem})
    base.use_scores(pre)
    n = len(pre.tokens)
    rewards, costs, infos, observations = np.zeros(n), np.zeros(n), [], []
    added = _added_keys(env, base) if keep_infos else []
    term = trunc = False
    info: dict[str, Any] = {}
    for t, tok in enumerate(pre.tokens.tolist()):
        obs, r, term, trunc, info = env.step(tok)
        rewards[t], costs[t] = r, info["cost"]
        if keep_infos:
            infos.append(info)
            if added:
                observations.append({k: obs[k] for k in added})
        if term or trunc:  # a wrapper may end the episode early (e.g. terminate_on_violation)
            rewards, costs, n = rewards[: t + 1], costs[: t + 1], t + 1
            break
    return Episode(problem, pre.tokens[:n].tolist(), rewards, costs, term, trunc, info, infos,
                   pre.teacher_logprob[:n].copy(), observations)


def _added_keys(env: gym.Env, base: MathDistillEnv) -> list[str]:
    """The keys the wrapper stack adds to the base env's Dict observation."""
    outer = env.observation_space
    if not isinstance(outer, gym.spaces.Dict):
        return []
    return [k for k in outer.spaces if k not in base.observation_space.spaces]
