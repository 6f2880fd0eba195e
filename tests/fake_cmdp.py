"""A tiny deterministic CMDP with MathDistill's contract, for hand-computed wrapper tests.

Observation: ``Dict(input_ids, attention_mask)`` (right-padded prompt + generated tokens), or with
``obs_type="box"`` a 1-D int64 ``Box`` of the token ids. Action: ``Discrete(vocab_size)``. Every step's
``info`` has ``"cost"`` and ``"task_reward"``; the reset info has no cost.

Two modes:

* **scripted** (``script=[episode, ...]``): episode ``k`` (the ``k``-th since construction, cycling) has
  the given per-step costs and rewards whatever the actions, and ends with ``"terminated"`` or
  ``"truncated"`` after its last step. For hand computations.
* **token** (no script): the cost of token ``a`` is ``cost_table[a]``; token ``eos_token`` ends the
  episode (terminated), ``max_steps`` tokens truncate it; the task reward at the end is 1 if the
  completion contains the prompt's first token (the "answer"), else 0. For learning smoke tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


@dataclass(frozen=True)
class Episode:
    """A scripted episode: per-step costs and rewards, and how it ends."""

    costs: Sequence[float]
    rewards: Sequence[float] | None = None
    end: str = "terminated"

    def reward(self, t: int) -> float:
        if self.rewards is None:
            return 1.0 if t == len(self.costs) - 1 else 0.0
        return float(self.rewards[t])


class FakeCMDP(gym.Env):
    """Deterministic fake of MathDistill-v0 (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        script: Sequence[Episode | Sequence[float]] | None = None,
        *,
        vocab_size: int = 5,
        prompt_len: int = 2,
        max_steps: int = 4,
        obs_type: str = "dict",
        cost_table: Sequence[float] | None = None,
        eos_token: int = 0,
    ) -> None:
        self.script = None if script is None else [e if isinstance(e, Episode) else Episode(e) for e in script]
        if self.script is not None:
            max_steps = max(len(e.costs) for e in self.script)
        self.vocab_size = vocab_size
        self.prompt_len = prompt_len
        self.max_new_tokens = max_steps
        self.max_episode_steps = max_steps  # the declared horizon, as MathDistill-v0 declares it (Saute's T)
        self.eos_token = eos_token
        self.cost_table = (np.linspace(0.0, 2.0, vocab_size) if cost_table is None
                           else np.asarray(cost_table, dtype=np.float64))
        length = prompt_len + max_steps
        ids = spaces.Box(0, vocab_size - 1, (length,), np.int64)
        if obs_type == "dict":
            mask = spaces.Box(0, 1, (length,), np.int64)
            self.observation_space = spaces.Dict({"input_ids": ids, "attention_mask": mask})
        elif obs_type == "box":
            self.observation_space = ids
        else:
            raise ValueError(f"obs_type must be 'dict' or 'box', got {obs_type!r}")
        self.obs_type = obs_type
        self.action_space = spaces.Discrete(vocab_size)
        self._episode_index = -1
        self._ids = np.zeros(length, dtype=np.int64)
        self._mask = np.zeros(length, dtype=np.int64)
        self._t = 0
        self._done = True

    def _obs(self) -> Any:
        if self.obs_type == "dict":
            return {"input_ids": self._ids.copy(), "attention_mask": self._mask.copy()}
        return self._ids.copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._episode_index += 1
        self._ids[:] = 0
        self._mask[:] = 0
        self._ids[: self.prompt_len] = self.np_random.integers(1, self.vocab_size, self.prompt_len)
        self._mask[: self.prompt_len] = 1
        self._t = 0
        self._done = False
        return self._obs(), {"prompt": self._ids[: self.prompt_len].tolist()}

    def step(self, action: Any):
        if self._done:
            raise RuntimeError("step() after the episode ended; call reset()")
        a = int(action)
        if not self.action_space.contains(a):
            raise ValueError(f"action {a} out of range")
        pos = self.prompt_len + self._t
        self._ids[pos] = a
        self._mask[pos] = 1
        t = self._t
        self._t += 1
        if self.script is not None:
            ep = self.script[self._episode_index % len(self.script)]
            cost, reward = float(ep.costs[t]), ep.reward(t)
            last = self._t == len(ep.costs)
            terminated, truncated = last and ep.end == "terminated", last and ep.end == "truncated"
        else:
            cost = float(self.cost_table[a])
            terminated = a == self.eos_token
            truncated = not terminated and self._t >= self.max_new_tokens
            reward = 0.0
            if terminated or truncated:
                generated = self._ids[self.prompt_len: pos + 1]
                reward = 1.0 if int(self._ids[0]) in generated.tolist() else 0.0
        self._done = terminated or truncated
        return self._obs(), reward, terminated, truncated, {"cost": cost, "task_reward": reward}


def make_fake(*args: Any, **kwargs: Any):
    """A thunk for ``SyncVectorEnv``."""
    return lambda: FakeCMDP(*args, **kwargs)


def run_episode(env: gym.Env, actions: Sequence[int] | None = None, seed: int | None = None):
    """Reset and step until the end; returns the lists of rewards and infos (and the last step's flags)."""
    env.reset(seed=seed)
    rewards, infos = [], []
    t = 0
    while True:
        a = 1 if actions is None else actions[t]
        _, r, term, trunc, info = env.step(a)
        rewards.append(float(r))
        infos.append(info)
        t += 1
        if term or trunc:
            return rewards, infos, term, trunc


def assert_obs_equal(a: Any, b: Any) -> None:
    """Observations (arrays or dicts of arrays) are equal, dtype included."""
    if isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            assert_obs_equal(a[k], b[k])
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    np.testing.assert_array_equal(a, b)


def assert_vector_infos_equal(a: dict[str, Any], b: dict[str, Any], ignore: tuple[str, ...] = ("t",)) -> None:
    """Vector infos carry the same keys and masks, and equal values wherever the mask is set."""
    keys_a = {k for k in a if k not in ignore and f"_{k}" not in ignore}
    keys_b = {k for k in b if k not in ignore and f"_{k}" not in ignore}
    assert keys_a == keys_b, (sorted(keys_a ^ keys_b))
    for k in keys_a:
        if k.startswith("_") and k[1:] in a:
            continue
        mask = np.asarray(a.get(f"_{k}", True))
        np.testing.assert_array_equal(mask, np.asarray(b.get(f"_{k}", True)), err_msg=k)
        if isinstance(a[k], dict):
            assert_vector_infos_equal(a[k], b[k], ignore)
            continue
        va, vb = np.asarray(a[k]), np.asarray(b[k])
        sel = np.broadcast_to(mask, va.shape[:1]) if va.ndim else mask
        if va.dtype == object or vb.dtype == object:
            assert list(va[sel]) == list(vb[sel]), k
        else:
            np.testing.assert_array_equal(va[sel], vb[sel], err_msg=k)
