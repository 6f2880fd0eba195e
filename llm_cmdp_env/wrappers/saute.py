r"""Sauté RL (Sootla et al., 2022): the remaining budget as part of the state, reward cut once spent."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

from llm_cmdp_env.wrappers._common import (
    check_next_step_autoreset,
    check_positive_int,
    check_real,
    copy_options,
    keep_raw,
    make_rng,
    reset_mask_of,
    seed_list,
    set_vector_info,
    step_cost,
    vector_costs,
    vector_task_rewards,
)

__all__ = [
    "SauteWrapper",
    "VectorSauteWrapper",
    "saute_normalised_budget",
    "saute_observation_space",
]


def saute_normalised_budget(budget: float, discount: float, max_episode_steps: int | None) -> float:
    r"""The normalised budget :math:`\tilde d` of Sauté RL.

    .. math::

        \tilde d = d \, \frac{1 - \gamma^T}{(1 - \gamma)\, T} \quad (\gamma < 1), \qquad
        \tilde d = d \quad (\gamma = 1),

    as in the reference implementation (huawei-noah/HEBO, ``SAUTE/envs/wrappers/saute_env.py``), which
    also leaves the budget unnormalised when :math:`\gamma = 1`.

    Parameters
    ----------
    budget : float
        The budget :math:`d > 0`.
    discount : float
        The safety discount :math:`\gamma \in (0, 1]`.
    max_episode_steps : int or None
        The horizon :math:`T`; needed only when :math:`\gamma < 1`.
    """
    d = check_real(budget, "budget", positive=True)
    g = check_real(discount, "discount")
    if not 0 < g <= 1:
        raise ValueError(f"discount must be in (0, 1], got {g!r}")
    if g == 1.0:
        return d
    if max_episode_steps is None:
        raise ValueError("max_episode_steps (the horizon T) is required when discount < 1")
    t = check_positive_int(max_episode_steps, "max_episode_steps")
    return d * (1.0 - g**t) / ((1.0 - g) * t)


def saute_observation_space(space: spaces.Space, obs_key: str = "saute_budget") -> spaces.Space:
    """The observation space with the Sauté state appended.

    A ``Dict`` space gains the key ``obs_key``, a ``Box(-inf, inf, (1,), float32)``; a 1-D ``Box`` gains
    one last coordinate with bounds ``(-inf, inf)`` and its dtype promoted to hold it (at least float32,
    so int64 token ids become float64 and stay exact). Other spaces are refused.
    """
    if isinstance(space, spaces.Dict):
        if obs_key in space.spaces:
            raise ValueError(f"the observation space already has a key {obs_key!r}; pass another obs_key")
        return spaces.Dict({**space.spaces, obs_key: spaces.Box(-np.inf, np.inf, (1,), np.float32)})
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        dtype = np.promote_types(space.dtype, np.float32)
        low = np.concatenate([space.low.astype(dtype), np.array([-np.inf], dtype=dtype)])
        high = np.concatenate([space.high.astype(dtype), np.array([np.inf], dtype=dtype)])
        return spaces.Box(low, high, dtype=dtype)
    raise TypeError(
        f"SauteWrapper augments Dict observation spaces and 1-D Box spaces only, got {space}; "
        "wrap the env in gymnasium.wrappers.FlattenObservation first"
    )


def _augment(space: spaces.Space, obs: Any, z: np.ndarray, obs_key: str) -> Any:
    """Append z (shape (1,) for a single obs, (n, 1) for a batch) to the observation of the augmented
    (single) ``space``."""
    if isinstance(space, spaces.Dict):
        return {**obs, obs_key: z.astype(np.float32)}
    assert isinstance(space, spaces.Box)
    return np.concatenate([np.asarray(obs).astype(space.dtype), z.astype(space.dtype)], axis=-1)


class _SauteParams:
    """Validated parameters shared by the single-env and vector wrappers."""

    def __init__(
        self,
        env: Any,
        budget: float,
        discount: float,
        unsafe_reward: float,
        min_rel_budget: float,
        max_rel_budget: float,
        max_episode_steps: int | None,
    ) -> None:
        self.budget = check_real(budget, "budget", positive=True)
        self.discount = check_real(discount, "discount")
        if not 0 < self.discount <= 1:
            raise ValueError(f"discount must be in (0, 1], got {self.discount!r}")
        if self.discount < 1 and max_episode_steps is None:
            max_episode_steps = _horizon_of(env)
        self.max_episode_steps = max_episode_steps
        self.normalised_budget = saute_normalised_budget(self.budget, self.discount, max_episode_steps)
        self.unsafe_reward = check_real(unsafe_reward, "unsafe_reward")
        self.min_rel_budget = check_real(min_rel_budget, "min_rel_budget", positive=True)
        self.max_rel_budget = check_real(max_rel_budget, "max_rel_budget", positive=True)
        if self.min_rel_budget > self.max_rel_budget:
            raise ValueError(
                f"min_rel_budget ({self.min_rel_budget}) must be <= max_rel_budget ({self.max_rel_budget})"
            )

    def next_z(self, z: Any, cost: Any) -> Any:
        r"""The budget state after paying ``cost``: :math:`z_{t+1} = (z_t - c_t / \tilde d) / \gamma` (floats,
        arrays or tensors; the one place the update is written, used by both wrappers and the agent)."""
        return (z - cost / self.normalised_budget) / self.discount

    def initial_z(self, rng: np.random.Generator) -> float:
        if self.min_rel_budget == self.max_rel_budget:
            return self.min_rel_budget
        return float(rng.uniform(self.min_rel_budget, self.max_rel_budget))


def _horizon_of(env: Any) -> int:
    """T for the normalisation: the env spec's ``max_episode_steps``, else the env's ``max_new_tokens``
    (for a vector env: its own, its ``setup``'s, or its first sub-env's)."""
    spec = getattr(env, "spec", None)
    if spec is not None and getattr(spec, "max_episode_steps", None):
        return int(spec.max_episode_steps)
    base = getattr(env, "unwrapped", env)
    horizon = getattr(base, "max_new_tokens", None)
    if horizon is None:  # MathDistill's native vector env keeps it in its shared setup
        horizon = getattr(getattr(base, "setup", None), "max_new_tokens", None)
    if horizon is None:  # a vector env built from single envs: ask the first sub-env
        subs = getattr(base, "envs", None)
        if subs:
            horizon = getattr(subs[0].unwrapped, "max_new_tokens", None)
    if horizon is None:
        raise ValueError(
            "discount < 1 needs the horizon T: pass max_episode_steps= (the env has no "
            "spec.max_episode_steps and no max_new_tokens attribute)"
        )
    return int(horizon)


class SauteWrapper(gym.Wrapper):
    r"""Sauté RL: augment the state with the normalised remaining budget and cut the reward once spent.

    With the normalised budget :math:`\tilde d` (see :func:`saute_normalised_budget`) and the per-step
    cost :math:`c_t` = ``info["cost"]``:

    .. math::

        z_0 = 1 \ \text{(or } z_0 \sim U[\text{min\_rel\_budget}, \text{max\_rel\_budget}]\text{)},\qquad
        z_{t+1} = (z_t - c_t / \tilde d) / \gamma,\qquad
        \tilde r_t = \begin{cases} r_t & z_{t+1} > 0 \\ \text{unsafe\_reward} & z_{t+1} \le 0 \end{cases}

    The reward of step :math:`t` is judged on :math:`z_{t+1}`, the budget left *after* paying
    :math:`c_t` (as in the reference implementation). With :math:`\gamma = 1`,
    :math:`z_{t+1} = z_0 - \sum_{s \le t} c_s / d`, so the reward survives exactly while the running cost
    stays below :math:`z_0 d`. Negative costs (the sampled ``log_ratio`` divergence) raise :math:`z`
    again; the state is not absorbing.

    The observation carries :math:`z_t` (the budget left before the next action): for a ``Dict`` space
    under the key ``obs_key`` (``Box(-inf, inf, (1,), float32)``), for a 1-D ``Box`` as one extra last
    coordinate. ``info`` keeps the raw ``cost`` and ``task_reward`` and adds ``saute_z`` (:math:`z_{t+1}`
    as a float64; also in the reset info, :math:`z_0`) and ``constraint_violated`` (:math:`z_{t+1}\le 0`).

    :math:`z_0` is drawn from the wrapper's own generator, seeded from ``reset(seed=...)`` (so the draw
    neither consumes nor correlates with the env's own randomness); a ``reset()`` without seed continues
    the same stream.

    Parameters
    ----------
    env : gymnasium.Env
        Any env whose step info carries ``"cost"``, with a ``Dict`` or 1-D ``Box`` observation space.
    budget : float
        The episode cost budget :math:`d > 0`.
    discount : float
        The safety discount :math:`\gamma \in (0, 1]` (default 1: the undiscounted budget of the CMDP).
    unsafe_reward : float
        The reward given while :math:`z \le 0` (default 0, as in the reference implementation).
    min_rel_budget, max_rel_budget : float
        Range of :math:`z_0` (default 1 and 1: :math:`z_0 = 1`). Sample a range to train one policy
        across budgets :math:`z_0 d`; evaluate at a chosen budget with ``min = max``.
    max_episode_steps : int, optional
        The horizon :math:`T` for :math:`\gamma < 1`; defaults to the env's ``spec.max_episode_steps``,
        else its ``max_new_tokens``.
    obs_key : str
        Key of :math:`z` in a ``Dict`` observation (default ``"saute_budget"``).
    """

    def __init__(
        self,
        env: gym.Env,
        budget: float,
        discount: float = 1.0,
        unsafe_reward: float = 0.0,
        min_rel_budget: float = 1.0,
        max_rel_budget: float = 1.0,
        max_episode_steps: int | None = None,
        obs_key: str = "saute_budget",
    ) -> None:
        super().__init__(env)
        p = _SauteParams(env, budget, discount, unsafe_reward, min_rel_budget, max_rel_budget,
                         max_episode_steps)
        self._p = p
        self.budget = p.budget
        self.discount = p.discount
        self.normalised_budget = p.normalised_budget
        self.unsafe_reward = p.unsafe_reward
        self.min_rel_budget = p.min_rel_budget
        self.max_rel_budget = p.max_rel_budget
        self.max_episode_steps = p.max_episode_steps
        self.obs_key = obs_key
        self.observation_space = saute_observation_space(env.observation_space, obs_key)
        self._rng: np.random.Generator | None = None
        self.z = 1.0

    def _obs(self, obs: Any) -> Any:
        return _augment(self.observation_space, obs, np.array([self.z]), self.obs_key)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset the env and draw :math:`z_0`."""
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None or self._rng is None:
            self._rng = make_rng(seed)
        self.z = self._p.initial_z(self._rng)
        info["saute_z"] = self.z
        return self._obs(obs), info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env, update :math:`z` and replace the reward once the budget is spent."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        cost = step_cost(info, type(self).__name__)
        keep_raw(info, float(reward))
        self.z = self._p.next_z(self.z, cost)
        unsafe = not self.z > 0
        new_reward = self.unsafe_reward if unsafe else float(reward)
        info["saute_z"] = self.z
        info["constraint_violated"] = unsafe
        return self._obs(obs), new_reward, terminated, truncated, info


class VectorSauteWrapper(VectorWrapper):
    """Vector version of :class:`SauteWrapper` (NEXT_STEP autoreset); same parameters and equations.

    Each sub-env ``i`` has its own :math:`z` and its own generator, seeded ``seed + i`` by
    ``reset(seed=seed)`` like the sub-envs, so the wrapper agrees step by step with ``SyncVectorEnv`` of
    :class:`SauteWrapper`-wrapped envs. On the autoreset step after a sub-episode ends, the sub-env's
    :math:`z` is redrawn (it appears in the reset observation and in ``infos["saute_z"]``), no cost is
    counted and the (zero) reward passes through.
    """

    def __init__(
        self,
        env: VectorEnv,
        budget: float,
        discount: float = 1.0,
        unsafe_reward: float = 0.0,
        min_rel_budget: float = 1.0,
        max_rel_budget: float = 1.0,
        max_episode_steps: int | None = None,
        obs_key: str = "saute_budget",
    ) -> None:
        super().__init__(env)
        check_next_step_autoreset(env, type(self).__name__)
        p = _SauteParams(env, budget, discount, unsafe_reward, min_rel_budget, max_rel_budget,
                         max_episode_steps)
        self._p = p
        self.budget = p.budget
        self.discount = p.discount
        self.normalised_budget = p.normalised_budget
        self.unsafe_reward = p.unsafe_reward
        self.min_rel_budget = p.min_rel_budget
        self.max_rel_budget = p.max_rel_budget
        self.max_episode_steps = p.max_episode_steps
        self.obs_key = obs_key
        self.single_observation_space = saute_observation_space(env.single_observation_space, obs_key)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self.z = np.ones(self.num_envs)
        self._prev_dones = np.zeros(self.num_envs, dtype=np.bool_)

    def _redraw(self, i: int, seed: int | None = None, reseed: bool = False) -> None:
        rng = self._rngs[i]
        if reseed or rng is None:
            rng = self._rngs[i] = make_rng(seed)
        self.z[i] = self._p.initial_z(rng)

    def _obs(self, obs: Any) -> Any:
        return _augment(self.single_observation_space, obs, self.z[:, None], self.obs_key)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset the (masked) sub-envs and draw their :math:`z_0`."""
        mask = reset_mask_of(options, self.num_envs)
        seeds = seed_list(seed, self.num_envs)
        obs, infos = self.env.reset(seed=seed, options=copy_options(options))
        for i in np.flatnonzero(mask):
            self._redraw(int(i), seeds[i], reseed=seeds[i] is not None)
        self._prev_dones[mask] = False
        set_vector_info(infos, "saute_z", self.z.copy(), mask)
        return self._obs(obs), infos

    def step(self, actions: Any):
        """Step all sub-envs, update each :math:`z` and replace rewards once budgets are spent."""
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        autoreset = self._prev_dones
        stepped = ~autoreset
        for i in np.flatnonzero(autoreset):
            self._redraw(int(i))
        costs = vector_costs(infos, stepped, type(self).__name__)
        vector_task_rewards(infos, rewards, stepped)
        self.z[stepped] = self._p.next_z(self.z[stepped], costs[stepped])
        unsafe = stepped & ~(self.z > 0)
        new_rewards = np.where(unsafe, self.unsafe_reward, np.asarray(rewards, dtype=np.float64))
        all_envs = np.ones(self.num_envs, dtype=np.bool_)
        set_vector_info(infos, "saute_z", self.z.copy(), all_envs)
        set_vector_info(infos, "constraint_violated", unsafe, stepped)
        self._prev_dones = np.logical_or(terminations, truncations)
        return self._obs(obs), new_rewards, terminations, truncations, infos
