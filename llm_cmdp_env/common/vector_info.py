"""Gymnasium's vector-info convention (``infos[key]`` arrays with ``infos["_" + key]`` masks), reset seeds and masks,
and the NEXT_STEP autoreset rules: one copy for the native vector env (:mod:`llm_cmdp_env.envs.vector`) and the vector
wrappers (:class:`~llm_cmdp_env.wrappers.constraint.VectorConstraintWrapper` documents the behaviour).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv


def check_next_step_autoreset(venv: VectorEnv, wrapper: str) -> None:
    """Refuse vector envs whose autoreset mode is not NEXT_STEP (the only one the wrappers model).

    A vector env that does not state its mode in ``metadata["autoreset_mode"]`` is taken to use
    Gymnasium's default, NEXT_STEP.
    """
    mode = venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if isinstance(mode, str):
        mode = AutoresetMode(mode)
    if mode != AutoresetMode.NEXT_STEP:
        raise ValueError(
            f"{wrapper} supports vector envs with autoreset_mode=AutoresetMode.NEXT_STEP only "
            f"(Gymnasium's default), got {mode}"
        )


def seed_list(seed: int | list[int | None] | None, num_envs: int) -> list[int | None]:
    """Per-sub-env seeds with Gymnasium's convention: ``seed`` int gives ``seed + i``; a list gives one per sub-env."""
    if seed is None:
        return [None] * num_envs
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in range(num_envs)]
    seeds = list(seed)
    if len(seeds) != num_envs:
        raise ValueError(f"a list of seeds must have num_envs={num_envs} entries, got {len(seeds)}")
    return seeds


def reset_mask_of(options: dict[str, Any] | None, num_envs: int) -> np.ndarray:
    """The sub-envs a vector ``reset`` resets: ``options["reset_mask"]`` if given, else all."""
    if options is not None and "reset_mask" in options:
        mask = np.asarray(options["reset_mask"])
        if mask.dtype != np.bool_ or mask.shape != (num_envs,):
            raise ValueError(
                f"options['reset_mask'] must be a boolean array of shape ({num_envs},), "
                f"got dtype {mask.dtype} and shape {mask.shape}"
            )
        return mask.copy()
    return np.ones(num_envs, dtype=np.bool_)


def copy_options(options: dict[str, Any] | None) -> dict[str, Any] | None:
    """A shallow copy, because ``SyncVectorEnv.reset`` pops ``reset_mask`` from the dict it is given."""
    return None if options is None else dict(options)


def vector_costs(infos: Mapping[str, Any], stepped: np.ndarray, wrapper: str) -> np.ndarray:
    """Per-sub-env costs of a vector step: ``infos["cost"]`` where ``stepped``, 0 elsewhere.

    ``stepped`` marks the sub-envs that took a real step (not an autoreset step). Each of them must
    report a cost (its ``_cost`` mask entry set).
    """
    n = stepped.shape[0]
    out = np.zeros(n, dtype=np.float64)
    if not stepped.any():
        return out
    if "cost" not in infos:
        raise KeyError(
            f"{wrapper} needs the per-step cost in infos['cost'], but the vector step infos have only the "
            f"keys {sorted(infos)}"
        )
    cost = np.asarray(infos["cost"], dtype=np.float64).reshape(n)
    mask = np.asarray(infos.get("_cost", np.ones(n, dtype=np.bool_)), dtype=np.bool_).reshape(n)
    missing = stepped & ~mask
    if missing.any():
        raise KeyError(
            f"{wrapper}: sub-envs {np.flatnonzero(missing).tolist()} took a step but reported no "
            "infos['cost']"
        )
    out[stepped] = cost[stepped]
    if np.isnan(out).any():
        raise ValueError(f"{wrapper}: sub-envs {np.flatnonzero(np.isnan(out)).tolist()} reported infos['cost'] = nan")
    return out


def set_vector_info(infos: dict[str, Any], key: str, values: np.ndarray, mask: np.ndarray) -> None:
    """Store a per-sub-env value with Gymnasium's vector-info convention (``key`` and ``_key`` mask).

    Nothing is added when ``mask`` is all false (as ``SyncVectorEnv`` adds no key no sub-env reports).
    """
    values = np.asarray(values)
    if not mask.any():
        return
    if key in infos and f"_{key}" in infos:
        old = np.asarray(infos[key])
        old_mask = np.asarray(infos[f"_{key}"], dtype=np.bool_)
        merged = np.array(old, dtype=np.result_type(old, values))
        merged[mask] = values[mask]
        infos[key] = merged
        infos[f"_{key}"] = old_mask | mask
        return
    out = np.zeros_like(values)
    out[mask] = values[mask]
    infos[key] = out
    infos[f"_{key}"] = mask.copy()


def vector_task_rewards(infos: dict[str, Any], rewards: np.ndarray, stepped: np.ndarray) -> None:
    """Vector counterpart of :func:`keep_raw`: fill ``task_reward`` where a stepped sub-env lacks it."""
    n = stepped.shape[0]
    if "task_reward" in infos:
        have = np.asarray(infos.get("_task_reward", np.ones(n, dtype=np.bool_)), dtype=np.bool_)
    else:
        have = np.zeros(n, dtype=np.bool_)
    need = stepped & ~have
    if need.any():
        set_vector_info(infos, "task_reward", np.asarray(rewards, dtype=np.float64), need)


def merge_obs(space: spaces.Space, obs: Any, new_obs: Any, mask: np.ndarray) -> Any:
    """Batched ``obs`` with the sub-envs in ``mask`` taken from ``new_obs`` (Box and Dict spaces)."""
    if isinstance(space, spaces.Dict):
        return {k: merge_obs(space[k], obs[k], new_obs[k], mask) for k in space.spaces}
    if isinstance(space, spaces.Box):
        out = np.array(obs, copy=True)
        out[mask] = np.asarray(new_obs)[mask]
        return out
    raise TypeError(f"cannot merge batched observations of space {space}; only Box and Dict are supported")


def replace_vector_infos(infos: Mapping[str, Any], new_infos: Mapping[str, Any], mask: np.ndarray) -> dict[str, Any]:
    """Vector infos where the sub-envs in ``mask`` carry ``new_infos`` instead of their own entries.

    Keys no sub-env reports any more are dropped, as ``SyncVectorEnv`` would not have added them.
    """
    n = mask.shape[0]
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_") and key[1:] in infos:
            continue
        if f"_{key}" not in infos:  # not following the mask convention: keep as is
            out[key] = value
            continue
        kept = np.asarray(infos[f"_{key}"], dtype=np.bool_) & ~mask
        if not kept.any():
            continue
        out[key] = replace_vector_infos(value, {}, mask) if isinstance(value, dict) else value
        out[f"_{key}"] = kept
    for key, value in new_infos.items():
        if key.startswith("_") and key[1:] in new_infos:
            continue
        added = np.asarray(new_infos.get(f"_{key}", np.ones(n, dtype=np.bool_)), dtype=np.bool_) & mask
        if not added.any():
            continue
        if key not in out:
            out[key] = value
            out[f"_{key}"] = added
        elif isinstance(value, dict):
            out[key] = replace_vector_infos(out[key], value, added)
            out[f"_{key}"] = out[f"_{key}"] | added
        else:
            old, val = np.asarray(out[key]), np.asarray(value)
            merged = old.copy() if old.dtype == object else np.array(old, dtype=np.result_type(old, val))
            merged[added] = val[added]
            out[key] = merged
            out[f"_{key}"] = out[f"_{key}"] | added
    return out


def force_vector_reset(
    venv: VectorEnv, mask: np.ndarray, obs: Any, infos: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """Reset the sub-envs in ``mask`` now, replacing their step results with reset results.

    Used by a wrapper that ends sub-episodes the inner vector env does not know have ended: on the
    step after the wrapper's early termination, the inner env took one more (ignored) step for those
    sub-envs; this resets them with ``options={"reset_mask": mask}`` so that, seen from outside, the
    step is the ordinary NEXT_STEP autoreset step (reset observation and reset info). The inner vector
    env must support ``reset_mask`` (``SyncVectorEnv``/``AsyncVectorEnv`` do).
    """
    try:
        new_obs, new_infos = venv.reset(options={"reset_mask": mask.copy()})
    except TypeError as err:  # pragma: no cover - depends on the inner env
        raise TypeError(
            "ending a sub-episode early needs a vector env whose reset accepts options={'reset_mask': ...}"
        ) from err
    return merge_obs(venv.observation_space, obs, new_obs, mask), replace_vector_infos(infos, new_infos, mask)
