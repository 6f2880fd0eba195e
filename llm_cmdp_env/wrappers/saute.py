r"""Sauté RL (Sootla et al., 2022): the remaining budget as part of the state, reward cut once spent."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from llm_cmdp_env.common.validation import check_positive_int, check_real
from llm_cmdp_env.wrappers.constraint import Constraint, State, env_attribute, named_wrappers, not_, where

__all__ = ["Saute", "saute_normalised_budget"]


def _check_discount(discount: float) -> float:
    g = check_real(discount, "discount")
    if not 0 < g <= 1:
        raise ValueError(f"discount must be in (0, 1], got {g!r}")
    return g


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
    g = _check_discount(discount)
    if g == 1.0:
        return d
    if max_episode_steps is None:
        raise ValueError("max_episode_steps (the horizon T) is required when discount < 1")
    t = check_positive_int(max_episode_steps, "max_episode_steps")
    return d * (1.0 - g**t) / ((1.0 - g) * t)


@dataclass
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
        else the base env's ``max_episode_steps`` (``MathDistill-v0``: its ``max_new_tokens``).
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
    observed_field: ClassVar[str] = "z"

    def __post_init__(self) -> None:
        self.budget = check_real(self.budget, "budget", positive=True)
        self.discount = _check_discount(self.discount)
        self.unsafe_reward = check_real(self.unsafe_reward, "unsafe_reward")
        self.min_rel_budget = check_real(self.min_rel_budget, "min_rel_budget", positive=True)
        self.max_rel_budget = check_real(self.max_rel_budget, "max_rel_budget", positive=True)
        if self.min_rel_budget > self.max_rel_budget:
            raise ValueError(
                f"min_rel_budget ({self.min_rel_budget}) must be <= max_rel_budget ({self.max_rel_budget})"
            )
        if self.max_episode_steps is not None:
            self.max_episode_steps = check_positive_int(self.max_episode_steps, "max_episode_steps")
        if self.discount == 1.0 or self.max_episode_steps is not None:  # else bind() fills the horizon in
            self.normalised_budget = saute_normalised_budget(self.budget, self.discount, self.max_episode_steps)

    def draws_at_start(self) -> bool:
        """Whether ``z0`` is drawn (``min_rel_budget < max_rel_budget``) rather than fixed."""
        return self.min_rel_budget != self.max_rel_budget

    def bind(self, env: Any) -> Saute:
        r"""Fill the horizon :math:`T` in from the env when :math:`\gamma < 1` and it was not given."""
        if self.discount < 1 and self.max_episode_steps is None:
            return dataclasses.replace(self, max_episode_steps=_horizon_of(env))
        return self

    def next_z(self, z: Any, cost: Any) -> Any:
        r"""The budget state after paying ``cost``: :math:`z_{t+1} = (z_t - c_t / \tilde d) / \gamma` (floats,
        arrays or tensors; the one place the update is written, used by the wrappers and the agent)."""
        return (z - cost / self.normalised_budget) / self.discount

    def start(self, state: State, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
        lo, hi = self.min_rel_budget, self.max_rel_budget  # z_0: one draw per new episode unless constant
        state.z = np.full(len(state.z), lo) if lo == hi else np.array([rng.uniform(lo, hi) for rng in rngs])
        return {"saute_z": state.z.copy()}

    def step(self, state: State, reward: Any, cost: Any, info: Any) -> tuple:
        z = state.z = self.next_z(state.z, cost)
        unsafe = not_(z > 0)
        return where(unsafe, self.unsafe_reward, reward), {"saute_z": z, "constraint_violated": unsafe}


def _horizon_of(env: Any) -> int:
    """T for the normalisation: the env spec's ``max_episode_steps``, else the base env's declared one."""
    spec = getattr(env, "spec", None)
    horizon = getattr(spec, "max_episode_steps", None) or env_attribute(env, "max_episode_steps")
    if horizon is None:
        raise ValueError("discount < 1 needs the horizon T: pass max_episode_steps= (the env has no "
                         "spec.max_episode_steps and declares no max_episode_steps)")
    return int(horizon)


SauteWrapper, VectorSauteWrapper = named_wrappers(Saute, "SauteWrapper")
