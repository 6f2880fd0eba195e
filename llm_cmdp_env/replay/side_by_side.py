"""The fast path's replay run side by side: every episode's step at time t in one call of each rule, on arrays.

:func:`llm_cmdp_env.replay.fast_path.replay` steps each token of each episode through the env's wrapper stack in
Python, ~8 µs a token: on a GPU that is more than the teacher's forward itself (a 0.5B model scores ~200k tokens
a second). When the stack is only constraint wrappers (:class:`~llm_cmdp_env.wrappers.constraint.ConstraintWrapper`
with its own ``reset``/``step``: the constraints and the episode statistics) over ``MathDistillEnv``, with at
most Gymnasium's passive ``OrderEnforcing``/``PassiveEnvChecker`` between them, the same numbers come from
running each rule's ``step`` once per time step on the arrays of all episodes (the form the vector adapter
uses; IEEE arithmetic makes it bit for bit the scalar form), the base env's rewards and step info from the
precomputed scores and the same judge, and each rule's ``finish`` per episode, in episode order. Exactness:

- a rule whose ``finish`` changes how later episodes start (the learned multiplier after each batch of
  ``update_every`` episodes) bounds how many episodes run side by side
  (:meth:`~llm_cmdp_env.wrappers.constraint.Constraint.episodes_until_start_changes`): the batch runs in waves,
  and a wave of fewer than :data:`MIN_SIDE_BY_SIDE` episodes is stepped one by one (faster there);
- rules that draw (Sauté's sampled initial budget) draw from the wrapper's own generator in episode order;
- the caller steps the **last** episode through the real stack, so every wrapper and the env end in the state
  one-by-one stepping leaves (and Gymnasium's checkers see a reset and steps);
- the statistics' wall-clock ``t`` counts from the start of the episode's wave.

``tests/test_side_by_side.py`` checks rewards, costs, end flags and final infos against one-by-one stepping for
every constraint, early termination, waves and the wrappers' state afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker

from llm_cmdp_env.envs.math_distill import MathDistillEnv
from llm_cmdp_env.episode.rules import ScoredCompletion
from llm_cmdp_env.tasks import Problem
from llm_cmdp_env.wrappers.constraint import ConstraintWrapper, InfoView, State, merge_info, state_row, step_rule

__all__ = ["MIN_SIDE_BY_SIDE", "side_by_side_layers", "replay_wave", "wave_size"]

_PASSIVE = (OrderEnforcing, PassiveEnvChecker)


def side_by_side_layers(env: gym.Env) -> list[ConstraintWrapper] | None:
    """The constraint wrappers of ``env`` from the innermost out, or None when the stack holds anything the
    side-by-side replay cannot reproduce (another wrapper, a subclass with its own ``reset``/``step``, an env
    subclass with its own, human rendering)."""
    layers: list[ConstraintWrapper] = []
    w: Any = env
    while isinstance(w, gym.Wrapper):
        if isinstance(w, ConstraintWrapper):
            if type(w).step is not ConstraintWrapper.step or type(w).reset is not ConstraintWrapper.reset:
                return None
            layers.append(w)
        elif not isinstance(w, _PASSIVE):
            return None
        w = w.env
    if not isinstance(w, MathDistillEnv) or w.render_mode == "human" or any(
            getattr(type(w), m) is not getattr(MathDistillEnv, m) for m in ("reset", "step", "use_scores")):
        return None
    return layers[::-1]


MIN_SIDE_BY_SIDE = 8
"""Fewer episodes than this are stepped one by one: side by side, each time step costs ~45 µs of numpy calls
whatever the number of episodes, one-by-one ~7 µs a token (measured crossover: 8-9 episodes, docs/performance.md)."""


def wave_size(layers: list[ConstraintWrapper], limit: int) -> int:
    """How many of the next ``limit`` episodes can run side by side now: up to the first episode end after which
    a rule may start episodes differently (:meth:`Constraint.episodes_until_start_changes`)."""
    sizes = [s for s in (w.constraint.episodes_until_start_changes() for w in layers) if s is not None]
    return max(1, min([limit, *sizes]))


def _row_value(v: Any, row: int) -> Any:
    """Row ``row`` of an info array as the Python scalar the single-env wrapper reports."""
    x = np.asarray(v)[row]
    return x.item() if isinstance(x, np.generic) else x


def replay_wave(env: gym.Env, layers: list[ConstraintWrapper], problems: Sequence[Problem],
                scored: Sequence[ScoredCompletion]) -> list[dict[str, Any]]:
    """One wave of episodes side by side (see the module docstring; at most :func:`wave_size` of them): per
    episode the fields of :class:`~llm_cmdp_env.replay.fast_path.Episode` but ``problem`` and ``infos``."""
    setup = env.unwrapped.setup
    n = len(problems)
    lengths = np.array([len(s.tokens) for s in scored])
    horizon = int(lengths.max())
    costs, teacher_lp = np.zeros((n, horizon)), np.zeros((n, horizon))
    for r, s in enumerate(scored):
        costs[r, : lengths[r]], teacher_lp[r, : lengths[r]] = s.cost, s.teacher_logprob
    states: list[State] = []
    for w in layers:
        st = w.constraint.fresh(n)
        w.constraint.start(st, w.episode_rngs(n))
        states.append(st)
    rewards = np.zeros((n, horizon))
    last_tokens = np.array([s.tokens[-1] for s in scored])
    cut = lengths.copy()  # where each episode stops: its last token, or earlier when a rule ends it
    ended = np.zeros(n, dtype=np.bool_)
    end_flags: list[tuple[bool, bool]] = [(False, False)] * n
    finals: list[dict[str, Any]] = [{} for _ in range(n)]
    snapshots: list[list[State]] = [[] for _ in range(n)]
    rows_all = np.arange(n)
    with np.errstate(all="ignore"):  # rows past their end step on zeros; their values are never read
        for t in range(horizon):
            live = ~ended & (t < cut)
            ends = np.flatnonzero(live & (lengths - 1 == t))  # the episodes whose last token this is
            reward, task = np.zeros(n), np.zeros(n)
            terminated, truncated = np.zeros(n, dtype=np.bool_), np.zeros(n, dtype=np.bool_)
            out = setup.outcome(last_tokens[ends], lengths[ends], costs[ends, t], teacher_lp[ends, t],
                                lambda j, e=ends: (problems[e[j]], scored[e[j]].tokens.tolist()))
            terminated[ends], truncated[ends], reward[ends] = out.terminated, out.truncated, out.reward
            task[ends] = out.info["task_reward"]
            judged = {int(ends[j]): final for j, final in out.finals.items()}
            info: dict[str, Any] = {"cost": costs[:, t], "task_reward": task, "teacher_logprob": teacher_lp[:, t]}
            _add_row_entries(info, judged, n)
            entries: list[tuple[str, Any, bool]] = []  # (key, values, only where true: a rule's end flag)
            for w, st in zip(layers, states):
                rule = w.constraint
                res = step_rule(rule, st, reward, info["cost"], InfoView(info, rows_all, n),
                                terminated | truncated | ~live)
                reward = np.broadcast_to(np.asarray(res.reward, dtype=np.float64), (n,))
                for k, v in res.info.items():
                    info[k] = np.broadcast_to(np.asarray(v), (n,))  # read at this step only: no copy
                    entries.append((k, info[k], False))
                stop = np.asarray(res.stopped, dtype=np.bool_)
                if stop.any():
                    terminated |= stop
                    info[rule.terminated_key] = stop
                    info[f"_{rule.terminated_key}"] = stop
                    entries.append((rule.terminated_key, stop, True))
            rewards[:, t] = reward
            for r in np.flatnonzero(live & (terminated | truncated)):
                ended[r], cut[r] = True, t + 1
                end_flags[r] = (bool(terminated[r]), bool(truncated[r]))
                final = {"cost": np.float64(costs[r, t]), "task_reward": float(task[r]),
                         "teacher_logprob": float(teacher_lp[r, t]), **judged.get(r, {})}
                for k, v, flag in entries:
                    if not flag or v[r]:
                        final[k] = _row_value(v, r)
                finals[r] = final
                snapshots[r] = [state_row(st, r) for st in states]
    episodes = []
    for r in range(n):  # each rule's end of episode, one episode after another, as in one-by-one stepping
        for w, snap in zip(layers, snapshots[r]):
            if w.constraint.has_finish():
                merge_info(finals[r], w.constraint.finish(snap))
        m = int(cut[r])
        episodes.append({"tokens": scored[r].tokens[:m].tolist(), "rewards": rewards[r, :m].copy(),
                         "costs": costs[r, :m].copy(), "terminated": end_flags[r][0],
                         "truncated": end_flags[r][1], "final_info": finals[r],
                         "teacher_logprobs": scored[r].teacher_logprob[:m].copy()})
    return episodes


def _add_row_entries(info: dict[str, Any], judged: dict[int, dict[str, Any]], n: int) -> None:
    """The judge's end-of-episode entries of the rows that ended, as arrays with their ``_key`` masks (what a
    rule reading them sees in the vector form)."""
    keys = {k for d in judged.values() for k in d if k != "task_reward"}
    for k in keys:
        values = np.empty(n, dtype=object)
        mask = np.zeros(n, dtype=np.bool_)
        for r, d in judged.items():
            if k in d:
                values[r], mask[r] = d[k], True
        info[k], info[f"_{k}"] = values, mask
