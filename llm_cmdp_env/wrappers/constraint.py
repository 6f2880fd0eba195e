"""One constraint rule, two generic adapters.

A constraint is a small params object (a :class:`Constraint` subclass, a dataclass) whose methods say what happens
to the (reward, cost) stream of ``n`` episodes at once:

- ``start(state, rngs)``: new episodes begin in these rows (their state fields are already at their initial
  values); returns reset-info entries (arrays over the rows);
- ``step(state, reward, cost, info)``: one step of the rows that stepped; updates ``state`` in place and returns
  ``(new_reward, info_entries)``, or ``(new_reward, info_entries, terminate)`` for a rule that can end an
  episode (a plain tuple: this runs once per token on the fast path);
- ``finish(state)``: one episode ended (optional; called per episode, in sub-env order);
- ``observed_field`` / ``obs_key``: a rule that adds a state field to the observation (Sauté's ``z``), or its own
  ``observation_space`` / ``observe``.

``step`` is written once and serves both adapters: :class:`ConstraintWrapper` runs it on Python floats (one
env, no numpy overhead on the hot path of the fast path), :class:`VectorConstraintWrapper` on arrays of the
sub-envs that stepped. Write it with ``+ - * /``, comparisons, ``&``/``|`` and the helpers ``where``,
``maximum`` and ``not_`` of :mod:`llm_cmdp_env.common.arrays` (re-exported here), which pick the scalar or the
array form; IEEE float64 arithmetic makes both forms give the same numbers bit for bit (tested: vector
wrapper == ``SyncVectorEnv`` of single wrappers).

The vector adapter owns, once for every rule, what NEXT_STEP autoreset needs: which sub-envs stepped, the
autoreset step (no cost counted, the zero reward passes through, the rule's start info is reported),
``reset(options={"reset_mask": ...})``, per-sub-env generators seeded ``seed + i``, and the forced reset of a
sub-env the rule ended early (``terminate_on_violation``). Adding a constraint is one subclass of
:class:`Constraint` and one line in :data:`llm_cmdp_env.wrappers.factory.REGISTRY` (docs/architecture.md).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

from llm_cmdp_env.common.arrays import maximum, not_, where
from llm_cmdp_env.common.vector_info import (
    check_next_step_autoreset,
    copy_options,
    force_vector_reset,
    reset_mask_of,
    seed_list,
    set_vector_info,
    vector_costs,
    vector_task_rewards,
)

__all__ = ["Constraint", "ConstraintWrapper", "RuleStep", "State", "VectorConstraintWrapper", "check_budget",
           "check_budget_reachable",
           "env_attribute", "make_rng", "maximum", "merge_info", "named_wrappers", "not_", "state_row", "step_cost",
           "step_rule", "where"]

#: Salt mixed into the seed of a wrapper's own random generator, so that its draws are not
#: correlated with those of the wrapped env seeded with the same number.
_RNG_SALT = 0x5A07E


def make_rng(seed: int | None) -> np.random.Generator:
    """A generator for a wrapper's own draws, seeded from the reset seed (fresh entropy when None)."""
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng(np.random.SeedSequence([int(seed), _RNG_SALT]))


def step_cost(info: Mapping[str, Any], wrapper: str) -> float:
    """The per-step cost ``info["cost"]`` as a float, with a clear error when the env gives none (or NaN)."""
    try:
        cost = float(info["cost"])
    except KeyError:
        raise KeyError(
            f"{wrapper} needs the per-step cost in info['cost'], but the step info has only the keys "
            f"{sorted(info)}; wrap an env that reports its cost (e.g. MathDistill-v0), or convert a "
            "Safety-Gymnasium 6-tuple env with CostInfoWrapper"
        ) from None
    if math.isnan(cost):
        raise ValueError(f"{wrapper}: the env reported info['cost'] = nan")
    return cost


# --------------------------------------------------------------------------------------------- the rule


class State(SimpleNamespace):
    """Per-episode state of a rule: one attribute per field of :attr:`Constraint.state_fields` (Python scalars
    in a single env, arrays over the sub-envs in a vector env)."""


class InfoView:
    """Read access to the inner env's step info for the rows that stepped: ``get(key) -> (values, present)``,
    or ``(None, False)`` when no row reports the key."""

    __slots__ = ("_info", "_rows", "_n")

    def __init__(self, info: Mapping[str, Any], rows: np.ndarray | None = None, n: int = 1) -> None:
        self._info, self._rows, self._n = info, rows, n

    def view(self, info: Mapping[str, Any]) -> InfoView:
        """Point this (single-env) view at ``info``, a new step's info; returns itself."""
        self._info = info
        return self

    def get(self, key: str) -> tuple[Any, Any]:
        if key not in self._info:
            return None, False
        if self._rows is None:  # single env
            return self._info[key], True
        values = np.asarray(self._info[key])[self._rows]
        mask = np.asarray(self._info.get(f"_{key}", np.ones(self._n, dtype=np.bool_)), dtype=np.bool_)[self._rows]
        return values, mask


class Constraint:
    """Base of the constraint rules (see the module docstring). Subclasses are dataclasses of their params.

    Class attributes a rule sets: :attr:`state_fields` (per-episode state and its initial values),
    :attr:`terminated_key` (the info key reported when the rule ends an episode itself), :attr:`shapes_reward`
    (the rule changes the reward, so the raw one is kept in ``info["task_reward"]``), :attr:`uses_rng` (the
    rule draws random numbers in :meth:`start`), :attr:`observed_field` (the state field the rule appends to the
    observation, under :attr:`obs_key` of a ``Dict`` observation or as the last coordinate of a 1-D ``Box``: a
    budget-conditioned policy reads it), :attr:`learns_from_episodes` (the rule learns from finished episodes in
    batches of its ``update_every`` option, which a trainer sets to its episodes per update; ``auto_update=False``
    leaves the feeding to the caller, as evaluations and data-parallel training need).
    """

    state_fields: ClassVar[dict[str, float | bool | int]] = {}
    terminated_key: ClassVar[str | None] = None
    shapes_reward: ClassVar[bool] = True
    uses_rng: ClassVar[bool] = False
    observed_field: ClassVar[str | None] = None
    learns_from_episodes: ClassVar[bool] = False
    obs_key: str | None = None  # a dataclass field of a rule that observes (so a caller can rename the key)

    def bind(self, env: gym.Env | VectorEnv) -> Constraint:
        """The rule with parameters that depend on the env filled in (e.g. Sauté's horizon); default: itself."""
        return self

    def observation_space(self, space: spaces.Space) -> spaces.Space:
        """The (single-env) observation space seen outside the wrapper: with :attr:`observed_field` appended."""
        return space if self.observed_field is None else augmented_space(space, self.obs_key, type(self).__name__)

    def observe(self, obs: Any, state: State) -> Any:
        """The observation seen outside (single obs with scalar state, or a batch with array state)."""
        return obs if self.observed_field is None else augment(obs, getattr(state, self.observed_field), self.obs_key)

    def adds_observation(self) -> bool:
        """Whether the rule changes the observation."""
        return self.observed_field is not None or type(self).observe is not Constraint.observe

    def draws_at_start(self) -> bool:
        """Whether this rule's episodes may start differently from one another (random draws in :meth:`start`);
        default :attr:`uses_rng`. A rule whose draws are degenerate for its parameters says False."""
        return self.uses_rng

    def start(self, state: State, rngs: Sequence[np.random.Generator]) -> dict[str, np.ndarray]:
        """New episodes start in the rows of ``state`` (arrays, initial values set); returns reset-info entries."""
        return {}

    def step(self, state: State, reward: Any, cost: Any, info: InfoView) -> tuple:
        """One step of the rows that stepped (scalars or arrays, see the module docstring): returns
        ``(new_reward, info_entries)`` or ``(new_reward, info_entries, terminate)``."""
        raise NotImplementedError

    def finish(self, state: State) -> dict[str, Any]:
        """One episode ended (``state`` holds its row as Python scalars); returns final-info entries."""
        return {}

    @classmethod
    def has_finish(cls) -> bool:
        """Whether the rule does something at episode ends (then the vector adapter handles starts and ends
        row by row, in sub-env order, as ``SyncVectorEnv`` of single wrappers would)."""
        return cls.finish is not Constraint.finish

    def episodes_until_start_changes(self) -> int | None:
        """How many more episode ends may pass before :meth:`start` can begin an episode differently (None:
        never). Episodes that start before that many end can be run side by side with the same numbers as one
        after another (the side-by-side replay, :mod:`llm_cmdp_env.replay.side_by_side`). Default: never for a rule
        without :meth:`finish`, else 1 (safe for any rule); a rule whose ``finish`` leaves ``start`` alone says None."""
        return 1 if self.has_finish() else None

    def fresh(self, n: int) -> State:
        """State arrays for ``n`` new episodes, at their initial values."""
        return State(**{k: np.full(n, v) for k, v in self.state_fields.items()})


def augmented_space(space: spaces.Space, key: str | None, rule: str = "the rule") -> spaces.Space:
    """``space`` with one float appended: a ``Dict`` space gains ``key``, a ``Box(-inf, inf, (1,), float32)``; a 1-D
    ``Box`` gains a last coordinate with bounds ``(-inf, inf)``, its dtype promoted to hold it (at least float32, so
    int64 token ids become float64 and stay exact). Other spaces are refused."""
    if isinstance(space, spaces.Dict):
        if key in space.spaces:
            raise ValueError(f"the observation space already has a key {key!r}; pass another obs_key")
        return spaces.Dict({**space.spaces, key: spaces.Box(-np.inf, np.inf, (1,), np.float32)})
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        dtype = np.promote_types(space.dtype, np.float32)
        low = np.concatenate([space.low.astype(dtype), np.array([-np.inf], dtype=dtype)])
        high = np.concatenate([space.high.astype(dtype), np.array([np.inf], dtype=dtype)])
        return spaces.Box(low, high, dtype=dtype)
    raise TypeError(f"{rule} augments Dict observation spaces and 1-D Box spaces only, got {space}; wrap the env in "
                    "gymnasium.wrappers.FlattenObservation first")


def augment(obs: Any, value: Any, key: str | None) -> Any:
    """Append ``value`` (a float for a single obs, an array [n] for a batch) to the observation, as
    :func:`augmented_space` describes."""
    value = np.asarray(value, dtype=np.float64)
    value = value.reshape(value.shape + (1,))
    if isinstance(obs, dict):
        return {**obs, key: value.astype(np.float32)}
    obs = np.asarray(obs)
    dtype = np.promote_types(obs.dtype, np.float32)
    return np.concatenate([obs.astype(dtype), value.astype(dtype)], axis=-1)


class RuleStep(NamedTuple):
    """One step of a rule over its rows (Python scalars for one env, arrays over the rows for a batch)."""

    reward: Any  #: the new rewards
    info: dict[str, Any]  #: the rule's info entries
    stopped: Any  #: where the rule ends an episode the env had not ended (report ``terminated_key`` there)


def step_rule(rule: Constraint, state: State, reward: Any, cost: Any, info: InfoView, done: Any) -> RuleStep:
    """Apply ``rule`` to one step of its rows: the one runner of the rule protocol, used by the single-env adapter
    (a batch of one, on scalars), the vector adapter and the side-by-side replay. ``done``: the rows whose episode
    has ended already (the env ended it at this step, or the row is not running), where the rule cannot end it."""
    out = rule.step(state, reward, cost, info)
    if len(out) == 2:
        return RuleStep(out[0], out[1], False)
    return RuleStep(out[0], out[1], out[2] & not_(done))


def _gather(state: State, rows: np.ndarray) -> State:
    return State(**{k: v[rows] for k, v in vars(state).items()})


def _scatter(state: State, rows: Any, part: State) -> None:
    for k, v in vars(part).items():
        getattr(state, k)[rows] = v


def state_row(state: State, row: int = 0) -> State:
    """Row ``row`` of array state as Python scalars (the single-env form)."""
    return State(**{k: v[row].item() for k, v in vars(state).items()})


def merge_info(info: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Add final-info entries; a dict entry extends a dict already there (e.g. SB3 Monitor's ``episode``)."""
    for k, v in extra.items():
        prior = info.get(k)
        info[k] = {**prior, **v} if isinstance(v, dict) and isinstance(prior, dict) else v


def _build_rule(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Constraint:
    """The rule of an adapter: built from the arguments by a named subclass, or passed ready-made."""
    if cls.rule is not None:
        if len(args) == 1 and not kwargs and isinstance(args[0], cls.rule):
            return args[0]  # a ready rule of this wrapper's kind
        return cls.rule(*args, **kwargs)
    if len(args) + len(kwargs) != 1 or (kwargs and "constraint" not in kwargs):
        raise TypeError(f"{cls.__name__}(env, constraint) takes one Constraint after env")
    rule = args[0] if args else kwargs["constraint"]
    if not isinstance(rule, Constraint):
        raise TypeError(f"constraint must be a Constraint, got {type(rule).__name__}")
    return rule


def env_attribute(env: Any, name: str) -> Any:
    """An optional attribute a base env declares for the wrappers (``cost_lower_bound``, ``max_episode_steps``,
    ``divergence``): read on ``env.unwrapped``, or on a vector env's first sub-env; None when not declared. The one
    place a generic wrapper looks past the Gymnasium API."""
    base = getattr(env, "unwrapped", env)
    value = getattr(base, name, None)
    if value is None and hasattr(base, "get_attr"):  # SyncVectorEnv / AsyncVectorEnv of single envs
        try:
            value = base.get_attr(name)[0]
        except AttributeError:
            return None
    return value


def check_budget_reachable(name: str, budget: float | None, env: Any) -> None:
    """Refuse a budget that is not a finite number, or that no episode can meet: below the env's
    ``cost_lower_bound`` (:func:`env_attribute`; ``MathDistill-v0`` sets 0 for its non-negative divergences), since
    every step costs at least that."""
    divergence = getattr(env_attribute(env, "divergence"), "name", None) if env is not None else None
    check_budget(name, budget, env_attribute(env, "cost_lower_bound") if env is not None else None, divergence)


def check_budget(name: str, budget: float | None, floor: float | None, divergence: str | None = None) -> None:
    """The one check of a constraint's budget: None, or a finite real number at or above ``floor`` (the lowest cost
    a step can have, None when unbounded), else a ValueError saying which."""
    if budget is None:
        return
    if isinstance(budget, bool) or not isinstance(budget, int | float | np.integer | np.floating):
        raise TypeError(f"constraint {name!r}: budget must be a number, got {type(budget).__name__} {budget!r}")
    if not math.isfinite(budget):
        raise ValueError(f"constraint {name!r}: budget must be a finite number, got {budget!r}")
    if floor is None or budget >= floor:
        return
    cost = f"divergence {divergence!r}" if divergence else "this env's cost"
    raise ValueError(f"constraint {name!r}: budget={budget} can never be met: {cost} is never below {floor} per "
                     f"token, so every episode would violate it; use budget >= {floor} (or a divergence that can "
                     "be negative, e.g. log_ratio)")


class _Adapter:
    """Attribute access shared by the two adapters: the rule's parameters and the episode state read as
    attributes of the wrapper (``wrapper.budget``, ``wrapper.episode_cost``, ``wrapper.z``, ...)."""

    constraint: Constraint
    state: State | None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        d = self.__dict__
        state, rule = d.get("state"), d.get("constraint")
        if state is not None and name in vars(state):
            return getattr(state, name)
        if rule is not None and hasattr(rule, name):
            return getattr(rule, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------- adapters


class ConstraintWrapper(_Adapter, gym.Wrapper):
    """Run a :class:`Constraint` on a single env (its step rule on Python floats).

    ``info`` keeps the raw ``cost`` (and ``task_reward``, filled in from the incoming reward when the env does
    not report it) and gains the rule's entries. The rule's parameters and the episode state are readable as
    attributes of the wrapper. The wrapper's own generator (for rules that draw, e.g. Sauté's initial budget)
    is seeded from ``reset(seed=...)``; a reset without seed continues its stream.
    """

    #: The rule a named subclass runs (``BudgetRewardWrapper.rule = BudgetReward``): its arguments after ``env``
    #: build the rule. ``None`` here: pass a built rule, ``ConstraintWrapper(env, BudgetReward(2.0))``.
    rule: ClassVar[type[Constraint] | None] = None

    def __init__(self, env: gym.Env, *args: Any, **kwargs: Any) -> None:
        super().__init__(env)
        self.constraint = _build_rule(type(self), args, kwargs).bind(env)
        check_budget_reachable(type(self).__name__, getattr(self.constraint, "budget", None), env)
        self.observation_space = self.constraint.observation_space(env.observation_space)
        self.state: State | None = state_row(self.constraint.fresh(1))
        self.rng: np.random.Generator | None = None
        self._name = type(self).__name__
        self._finishes = self.constraint.has_finish()
        self._observes = self.constraint.adds_observation()
        self._info = InfoView({})  # re-pointed at each step's info (no allocation on the hot path)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset the env and start the rule's episode."""
        obs, info = self.env.reset(seed=seed, options=options)
        rule = self.constraint
        rows = rule.fresh(1)
        extra = rule.start(rows, self.episode_rngs(1, seed))
        self.state = state_row(rows)
        for k, v in extra.items():
            info[k] = np.asarray(v)[0].item()
        return rule.observe(obs, self.state), info

    def episode_rngs(self, n: int, seed: int | None = None) -> list[np.random.Generator]:
        """The generators for ``n`` episodes starting one after another: the wrapper's own, ``n`` times (seeded
        from ``seed``, or created on first use, a reset without seed continuing its stream); none for a rule
        that draws nothing."""
        if not self.constraint.uses_rng:
            return []
        if seed is not None or self.rng is None:
            self.rng = make_rng(seed)
        return [self.rng] * n

    def upcoming_starts(self, n: int) -> State:
        """The state (arrays over ``n`` rows) the next ``n`` resets without a seed will start their episodes in,
        drawn from a copy of the wrapper's generator (left untouched): what a policy conditioning on the rule's
        observation sees first. A rule that draws needs a reset first (it creates the generator)."""
        rule = self.constraint
        if rule.uses_rng and self.rng is None:
            raise RuntimeError(f"{self._name}: reset the env first: the next episodes' draws need the wrapper's "
                               "generator")
        state = rule.fresh(n)
        rule.start(state, [copy.deepcopy(self.rng)] * n if rule.uses_rng else [])
        return state

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """Step the env and apply the rule to its reward and cost."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.state is None:
            raise RuntimeError(f"{self._name}: step() before reset()")
        rule = self.constraint
        cost = step_cost(info, self._name)
        reward = float(reward)
        if rule.shapes_reward:
            info.setdefault("task_reward", reward)
        res = step_rule(rule, self.state, reward, cost, self._info.view(info), terminated or truncated)
        if res.info:
            info.update(res.info)
        if res.stopped:
            terminated = True
            info[rule.terminated_key] = True
        if self._finishes and (terminated or truncated):
            merge_info(info, rule.finish(self.state))
        if self._observes:
            obs = rule.observe(obs, self.state)
        return obs, res.reward, terminated, truncated, info


class VectorConstraintWrapper(_Adapter, VectorWrapper):
    """Run a :class:`Constraint` on a vector env with NEXT_STEP autoreset (its step rule on arrays).

    Each sub-env has its own state and generator (seeded ``seed + i`` by ``reset(seed=seed)`` like the
    sub-envs), so the wrapper agrees step by step with ``SyncVectorEnv`` of :class:`ConstraintWrapper` s. On the
    autoreset step after a sub-episode ends, no cost is counted, the zero reward passes through and the rule's
    start info (and observation) for the new episode is reported. When the rule ends a sub-episode the inner
    vector env does not know has ended, the inner env takes one more, ignored, step for it and is then reset
    with ``reset(options={"reset_mask": ...})``: seen from outside that step is the usual autoreset step. The
    inner vector env must accept ``reset_mask`` (``SyncVectorEnv`` and ``AsyncVectorEnv`` do).
    """

    #: As :attr:`ConstraintWrapper.rule`.
    rule: ClassVar[type[Constraint] | None] = None

    def __init__(self, env: VectorEnv, *args: Any, **kwargs: Any) -> None:
        super().__init__(env)
        self._name = type(self).__name__
        check_next_step_autoreset(env, self._name)
        self.constraint = _build_rule(type(self), args, kwargs).bind(env)
        check_budget_reachable(self._name, getattr(self.constraint, "budget", None), env)
        single = self.constraint.observation_space(env.single_observation_space)
        if single is not env.single_observation_space:
            self.single_observation_space = single
            self.observation_space = batch_space(single, self.num_envs)
        n = self.num_envs
        self.state: State | None = self.constraint.fresh(n)
        self.rngs: list[np.random.Generator | None] = [None] * n
        self._prev_dones = np.zeros(n, dtype=np.bool_)
        self._forced = np.zeros(n, dtype=np.bool_)
        self._finishes = self.constraint.has_finish()
        #: the per-sub-env costs of the last step (0 for sub-envs on their autoreset step)
        self.last_costs = np.zeros(n)

    def _rng(self, i: int) -> np.random.Generator:
        rng = self.rngs[i]
        if rng is None:
            rng = self.rngs[i] = make_rng(None)
        return rng

    def _start(self, rows: np.ndarray, infos: dict[str, Any]) -> None:
        """Start new episodes in ``rows`` and report the rule's start info for them."""
        rule = self.constraint
        part = rule.fresh(len(rows))
        extra = rule.start(part, [self._rng(int(i)) for i in rows] if rule.uses_rng else [])
        assert self.state is not None
        _scatter(self.state, rows, part)
        if extra:
            mask = np.zeros(self.num_envs, dtype=np.bool_)
            mask[rows] = True
            for k, v in extra.items():
                v = np.asarray(v)
                full = np.zeros(self.num_envs, dtype=v.dtype)
                full[rows] = v
                set_vector_info(infos, k, full, mask)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset the (masked) sub-envs and start their episodes."""
        mask = reset_mask_of(options, self.num_envs)
        seeds = seed_list(seed, self.num_envs)
        obs, infos = self.env.reset(seed=seed, options=copy_options(options))
        rows = np.flatnonzero(mask)
        if self.constraint.uses_rng:
            for i in rows:
                if seeds[i] is not None:
                    self.rngs[i] = make_rng(seeds[i])
        self._start(rows, infos)
        self._prev_dones[mask] = False
        self._forced[mask] = False
        return self.constraint.observe(obs, self.state), infos

    def step(self, actions: Any):
        """Step all sub-envs and apply the rule to the rewards and costs of those that stepped."""
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        rule, n = self.constraint, self.num_envs
        rewards = np.array(rewards, dtype=np.float64)
        terminations = np.array(terminations, dtype=np.bool_)
        truncations = np.array(truncations, dtype=np.bool_)
        if self._forced.any():
            obs, infos = force_vector_reset(self.env, self._forced, obs, infos)
            rewards[self._forced] = 0.0
            terminations[self._forced] = False
            truncations[self._forced] = False
        autoreset = self._prev_dones
        stepped = ~autoreset
        costs = self.last_costs = vector_costs(infos, stepped, self._name)
        if rule.shapes_reward:
            vector_task_rewards(infos, rewards, stepped)
        rows = np.flatnonzero(stepped)
        new_rewards = rewards.copy()
        forced = np.zeros(n, dtype=np.bool_)
        assert self.state is not None
        if len(rows):
            part = self.state if len(rows) == n else _gather(self.state, rows)
            res = step_rule(rule, part, rewards[rows], costs[rows], InfoView(infos, rows, n),
                            terminations[rows] | truncations[rows])
            if part is not self.state:
                _scatter(self.state, rows, part)
            new_rewards[rows] = res.reward
            for k, v in res.info.items():
                v = np.broadcast_to(np.asarray(v), (len(rows),))
                full = np.zeros(n, dtype=v.dtype)
                full[rows] = v
                set_vector_info(infos, k, full, stepped)
            forced[rows] = res.stopped
            if forced.any():
                terminations = terminations | forced
                set_vector_info(infos, rule.terminated_key, forced, forced)
        dones = terminations | truncations
        self._episode_events(autoreset, dones, infos)
        self._forced = forced
        self._prev_dones = dones
        return rule.observe(obs, self.state), new_rewards, terminations, truncations, infos

    def _episode_events(self, starts: np.ndarray, ends: np.ndarray, infos: dict[str, Any]) -> None:
        """Start the autoreset sub-envs' episodes and finish the ended ones (row by row, in sub-env order, when
        the rule does something at episode ends: a later sub-env's start then sees an earlier one's end, as in
        ``SyncVectorEnv``)."""
        if not self._finishes:
            rows = np.flatnonzero(starts)
            if len(rows):
                self._start(rows, infos)
            return
        assert self.state is not None
        for i in np.flatnonzero(starts | ends):
            if starts[i]:
                self._start(np.array([i]), infos)
            else:
                for k, v in self.constraint.finish(state_row(self.state, int(i))).items():
                    self._add_info(infos, {k: v}, int(i))


_NAMED: dict[type[Constraint], tuple[type[ConstraintWrapper], type[VectorConstraintWrapper]]] = {}


def named_wrappers(rule: type[Constraint], name: str) -> tuple[type[ConstraintWrapper], type[VectorConstraintWrapper]]:
    """The single- and vector-env wrapper classes of a built-in rule, ``name`` and ``"Vector" + name`` (e.g.
    ``BudgetRewardWrapper(env, budget=2.0)``; its arguments after ``env`` build the rule). :func:`apply_constraint`
    wraps a rule in them, so ``isinstance`` checks on a stack work."""
    if rule not in _NAMED:
        doc = f"{{}}-env wrapper of :class:`{rule.__name__}` (its parameters after ``env``)."
        _NAMED[rule] = tuple(  # type: ignore[assignment]
            type(n, (base,), {"rule": rule, "__doc__": doc.format(kind), "__module__": rule.__module__,
                              "__qualname__": n})
            for n, base, kind in ((name, ConstraintWrapper, "Single"), (f"Vector{name}", VectorConstraintWrapper,
                                                                           "Vector")))
    return _NAMED[rule]


def wrapper_class(adapter: type, rule: Constraint) -> type:
    """The named wrapper class of a built-in rule (:func:`named_wrappers`), else the generic ``adapter``."""
    named = _NAMED.get(type(rule))
    return adapter if named is None else named[adapter is VectorConstraintWrapper]
