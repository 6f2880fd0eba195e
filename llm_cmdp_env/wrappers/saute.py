r"""Sauté RL (Sootla et al., 2022): the remaining budget as part of the state, reward cut once spent."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from llm_cmdp_env.validation import check_positive_int, check_real
from llm_cmdp_env.wrappers.constraint import (
    Constraint,
    ConstraintWrapper,
    State,
    VectorConstraintWrapper,
    not_,
    where,
)

__all__ = [
    "Saute",
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


def _augment(obs: Any, z: Any, obs_key: str) -> Any:
    """Append z (a float for a single obs, an array [n] for a batch) to the observation, as
    :func:`saute_observation_space` describes: a float32 ``obs_key`` entry of a dict, or the last coordinate
    of a 1-D Box (dtype promoted to hold it)."""
    z = np.asarray(z, dtype=np.float64)
    z = z.reshape(z.shape + (1,))
    if isinstance(obs, dict):
        return {**obs, obs_key: z.astype(np.float32)}
    obs = np.asarray(obs)
    dtype = np.promote_types(obs.dtype, np.float32)
    return np.concatenate([obs.astype(dtype), z.astype(dtype)], axis=-1)


@dataclass(frozen=True)
class Saute(Constraint):
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
    the same stream. In a vector env each sub-env has its own generator, seeded ``seed + i``.

    Parameters
    ----------
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

    budget: float
    discount: float = 1.0
    unsafe_reward: float = 0.0
    min_rel_budget: float = 1.0
    max_rel_budget: float = 1.0
    max_episode_steps: int | None = None
    obs_key: str = "saute_budget"
    normalised_budget: float = field(init=False, default=float("nan"))

    state_fields: ClassVar[dict[str, float | bool | int]] = {"z": 1.0}
    uses_rng: ClassVar[bool] = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "budget", check_real(self.budget, "budget", positive=True))
        g = check_real(self.discount, "discount")
        if not 0 < g <= 1:
            raise ValueError(f"discount must be in (0, 1], got {g!r}")
        set_(self, "discount", g)
        set_(self, "unsafe_reward", check_real(self.unsafe_reward, "unsafe_reward"))
        set_(self, "min_rel_budget", check_real(self.min_rel_budget, "min_rel_budget", positive=True))
        set_(self, "max_rel_budget", check_real(self.max_rel_budget, "max_rel_budget", positive=True))
        if self.min_rel_budget > self.max_rel_budget:
            raise ValueError(
                f"min_rel_budget ({self.min_rel_budget}) must be <= max_rel_budget ({self.max_rel_budget})"
            )
        if self.max_episode_steps is not None:
            set_(self, "max_episode_steps", check_positive_int(self.max_episode_steps, "max_episode_steps"))
        if g == 1.0 or self.max_episode_steps is not None:  # else bind() fills the horizon in from the env
            set_(self, "normalised_budget", saute_normalised_budget(self.budget, g, self.max_episode_steps))

    def bind(self, env: Any) -> Saute:
        r"""Fill the horizon :math:`T` in from the env when :math:`\gamma < 1` and it was not given."""
        if self.discount < 1 and self.max_episode_steps is None:
            return dataclasses.replace(self, max_episode_steps=_horizon_of(env))
        return self

    def next_z(self, z: Any, cost: Any) -> Any:
        r"""The budget state after paying ``cost``: :math:`z_{t+1} = (z_t - c_t / \tilde d) / \gamma` (floats,
        arrays or tensors; the one place the update is written, used by the wrappers and the agent)."""
        return (z - cost / self.normalised_budget) / self.discount

    def initial_z(self, rngs: list[np.random.Generator]) -> np.ndarray:
        """:math:`z_0` for one new episode per generator (constant when ``min_rel_budget == max_rel_budget``)."""
        if self.min_rel_budget == self.max_rel_budget:
            return np.full(len(rngs), self.min_rel_budget)
        return np.array([rng.uniform(self.min_rel_budget, self.max_rel_budget) for rng in rngs])

    def observation_space(self, space: spaces.Space) -> spaces.Space:
        return saute_observation_space(space, self.obs_key)

    def observe(self, obs: Any, state: State) -> Any:
        return _augment(obs, state.z, self.obs_key)

    def start(self, state: State, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
        state.z = self.initial_z(rngs)
        return {"saute_z": state.z.copy()}

    def step(self, state: State, reward: Any, cost: Any, info: Any) -> tuple:
        z = state.z = self.next_z(state.z, cost)
        unsafe = not_(z > 0)
        return where(unsafe, self.unsafe_reward, reward), {"saute_z": z, "constraint_violated": unsafe}


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


class SauteWrapper(ConstraintWrapper):
    """Single-env wrapper of :class:`Saute` (its parameters after ``env``)."""

    rule = Saute

    def initial_budgets(self, n: int) -> np.ndarray:
        """The :math:`z_0` the next ``n`` resets without a seed will draw, in order (read from a copy of the
        wrapper's generator, which is left untouched). Needs a seeded reset first when :math:`z_0` is random."""
        rule = self.constraint
        if rule.min_rel_budget == rule.max_rel_budget:
            return np.full(n, rule.min_rel_budget)
        if self.rng is None:
            raise RuntimeError("reset the env with a seed first: sampled Sauté budgets need the wrapper's generator")
        rng = copy.deepcopy(self.rng)
        return rule.initial_z([rng] * n)


class VectorSauteWrapper(VectorConstraintWrapper):
    """Vector-env wrapper of :class:`Saute` (its parameters after ``env``; NEXT_STEP autoreset). On the
    autoreset step the sub-env's :math:`z` is redrawn and appears in the reset observation and
    ``infos["saute_z"]``."""

    rule = Saute
