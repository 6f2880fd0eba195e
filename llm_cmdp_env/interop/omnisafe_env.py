"""MathDistill as an OmniSafe environment (``omnisafe.envs.core.CMDP``), registered as ``"MathDistill-v0"``.

OmniSafe 0.5.0 works in torch tensors and a 6-tuple ``step -> (obs, reward, cost, terminated, truncated, info)``;
the numbers are the Gymnasium env's own (the cost is ``info["cost"]`` read through
:class:`~llm_cmdp_env.wrappers.SafetyGymnasiumStepWrapper`), nothing is recomputed here.

Two encodings make the token MDP fit OmniSafe, whose on-policy pipeline (buffer, ``ActionScale`` wrapper, actor
builder) accepts only ``Box`` spaces:

- observation: ``Box(-1, vocab - 1, (max_prompt_tokens + max_new_tokens,), float32)``, the prompt and generated
  token ids with ``-1`` at the empty positions (:func:`obs_to_ids` decodes it);
- action: ``Box(-1, 1, (1,), float32)``, token ``k`` encoded as ``2 k / (vocab - 1) - 1``
  (:func:`token_to_action` / :func:`action_to_token`). An action off that grid is an error, never rounded
  silently: OmniSafe's Gaussian actors do not fit a token space, use
  :class:`llm_cmdp_agents.interop.omnisafe_actor.CategoricalLMActor` (docs/interop.md).

Importing this module imports OmniSafe (``pip install -e ".[omnisafe]" && pip install --no-deps omnisafe==0.5.0``).
OmniSafe imports ``safety_gymnasium`` at import time but only calls it to build Safety-Gymnasium's own tasks;
that package pins ``gymnasium==0.28.1`` and cannot be installed beside this project, so when it is absent OmniSafe's
import (and nothing else) is given a placeholder whose every use raises (:func:`safety_gymnasium_placeholder`);
afterwards ``safety_gymnasium`` is absent again for anyone who probes for it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
import types
from collections.abc import Iterator
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

__all__ = [
    "ENV_ID",
    "MathDistillCMDP",
    "action_to_token",
    "safety_gymnasium_placeholder",
    "obs_to_ids",
    "token_to_action",
]

#: The OmniSafe env id (the same name as the Gymnasium one).
ENV_ID = "MathDistill-v0"
_OFF_GRID = 0.25  # an action must decode to within this many token steps of an integer id


class _Placeholder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``safety_gymnasium`` (and only it) as an empty module whose every attribute raises, for as long as it is
    on ``sys.meta_path``: after every other finder, so a real install is always found first."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(name, self) if name == "safety_gymnasium" else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        mod = types.ModuleType(spec.name)
        mod.__doc__ = "Placeholder seen by OmniSafe's import only: the real safety-gymnasium is not installed."

        def missing(attr: str) -> Any:
            if attr.startswith("__"):
                raise AttributeError(attr)
            raise ImportError(f"safety_gymnasium.{attr}: safety-gymnasium is not installed (OmniSafe imported a "
                              "placeholder; its Safety-Gymnasium tasks need the real package, which pins "
                              "gymnasium==0.28.1)")

        mod.__getattr__ = missing  # type: ignore[method-assign]
        return mod

    def exec_module(self, module: types.ModuleType) -> None:
        pass


@contextlib.contextmanager
def safety_gymnasium_placeholder() -> Iterator[bool]:
    """Within: ``import safety_gymnasium`` gives the placeholder when the real package is not installed (yields
    whether it does). After: the finder is gone and so is the placeholder from ``sys.modules``, so a later probe
    (``import safety_gymnasium``, ``importlib.util.find_spec``) sees the package as absent, as it is; only the
    modules imported within keep their reference to it."""
    if "safety_gymnasium" in sys.modules or importlib.util.find_spec("safety_gymnasium") is not None:
        yield False
        return
    finder = _Placeholder()
    sys.meta_path.append(finder)
    try:
        yield True
    finally:
        sys.meta_path.remove(finder)
        mod = sys.modules.get("safety_gymnasium")
        if mod is not None and isinstance(getattr(mod, "__loader__", None), _Placeholder):
            del sys.modules["safety_gymnasium"]


try:
    with safety_gymnasium_placeholder():
        import omnisafe  # noqa: F401  (the whole package, within: its modules import safety_gymnasium at import)
        from omnisafe.envs.core import CMDP, env_register
except ImportError as e:  # pragma: no cover - depends on the environment
    # not installed: ModuleNotFoundError (what pytest.importorskip skips on); installed but broken: ImportError
    kind = ModuleNotFoundError if isinstance(e, ModuleNotFoundError) else ImportError
    raise kind('llm_cmdp_env.interop.omnisafe_env needs OmniSafe: pip install -e ".[omnisafe]" && '
               f"pip install --no-deps omnisafe==0.5.0 (docs/interop.md); import failed: {e}") from e

from llm_cmdp_env.wrappers.safety_gym import SafetyGymnasiumStepWrapper  # noqa: E402


def _check_vocab(vocab_size: int) -> int:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < 2:
        raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}")
    return int(vocab_size)


def token_to_action(tokens: torch.Tensor | np.ndarray | int, vocab_size: int) -> torch.Tensor:
    """Encode token ids as OmniSafe actions in [-1, 1] (``2 k / (vocab - 1) - 1``, a trailing dim of 1)."""
    v = _check_vocab(vocab_size)
    t = torch.as_tensor(tokens)
    if t.is_floating_point() or bool(((t < 0) | (t >= v)).any()):
        raise ValueError(f"tokens must be integer ids in [0, {v - 1}], got {t}")
    return (t.to(torch.float32) * (2.0 / (v - 1)) - 1.0).unsqueeze(-1)


def action_to_token(action: torch.Tensor | np.ndarray, vocab_size: int) -> torch.Tensor:
    """Decode OmniSafe actions (trailing dim 1) to int64 token ids; an action off the token grid is an error."""
    v = _check_vocab(vocab_size)
    a = torch.as_tensor(action, dtype=torch.float64)
    if a.ndim == 0 or a.shape[-1] != 1:
        raise ValueError(f"action must have a trailing dimension of 1 (the encoded token), got shape {tuple(a.shape)}")
    x = (a[..., 0] + 1.0) * ((v - 1) / 2.0)
    k = torch.round(x)
    bad = ~torch.isfinite(x) | (k < 0) | (k > v - 1) | ((x - k).abs() > _OFF_GRID)
    if bool(bad.any()):
        raise ValueError(
            f"action {a[..., 0][bad].tolist()} is not an encoded token id of a {v}-token vocabulary "
            "(2 k / (vocab - 1) - 1): OmniSafe's Gaussian actors do not fit a token space, use "
            "model_cfgs.actor_type='categorical_lm' with llm_cmdp_agents.interop.omnisafe_actor (docs/interop.md)")
    return k.to(torch.int64)


def obs_to_ids(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split an observation (token ids, ``-1`` where empty) into int64 ``input_ids`` (pad 0) and ``attention_mask``."""
    obs = torch.as_tensor(obs)
    mask = obs >= 0
    return torch.where(mask, obs, torch.zeros_like(obs)).round().to(torch.int64), mask.to(torch.int64)


@env_register
class MathDistillCMDP(CMDP):
    """``gym.make("MathDistill-v0", **env_kwargs)`` as an OmniSafe ``CMDP`` (one env; OmniSafe adds auto-reset).

    Parameters
    ----------
    env_id : str
        ``"MathDistill-v0"``.
    num_envs : int
        Must be 1 (set ``train_cfgs.vector_env_nums=1``).
    device : str or torch.device
        Where the returned tensors live (OmniSafe passes ``train_cfgs.device``).
    episode_log : str, optional
        A jsonl file that gets one line per finished episode, in the env's own numbers: ``return`` (summed reward),
        ``cost`` (summed ``info["cost"]``), ``length`` and ``steps`` (the env steps of this CMDP so far, to place it
        in an epoch). OmniSafe's ``Metrics/EpCost`` is a running mean over its last ``logger_cfgs.window_lens``
        episodes; this file holds every episode (``examples/omnisafe_ppolag.py`` prints each epoch's own).
    **env_kwargs
        ``env_cfgs`` of the OmniSafe config: keyword arguments of ``MathDistill-v0`` (``divergence``,
        ``max_new_tokens``, ``teacher``, ``dataset``, ...). A ``constraint`` is refused: OmniSafe's algorithms
        handle the constraint from the raw cost.
    """

    need_auto_reset_wrapper: bool = True
    need_time_limit_wrapper: bool = False  # the env truncates at max_new_tokens itself
    _support_envs: ClassVar[list[str]] = [ENV_ID]

    def __init__(self, env_id: str, num_envs: int = 1, device: str | torch.device = "cpu",
                 episode_log: str | None = None, **env_kwargs: Any) -> None:
        super().__init__(env_id)
        if num_envs != 1:
            raise ValueError(f"MathDistillCMDP runs one env (num_envs=1, train_cfgs.vector_env_nums=1), got {num_envs}")
        if env_kwargs.get("constraint") not in (None, "none"):
            raise ValueError("MathDistillCMDP takes no 'constraint': OmniSafe's algorithm handles the raw cost")
        import llm_cmdp_env  # noqa: F401  (registers MathDistill-v0)

        self._num_envs = 1
        self._device = torch.device(device)
        self.env = SafetyGymnasiumStepWrapper(gym.make(ENV_ID, **env_kwargs))
        base = self.env.unwrapped
        self.vocab_size = int(base.action_space.n)
        length = int(base.observation_space["input_ids"].shape[0])
        self._observation_space = gym.spaces.Box(-1.0, float(self.vocab_size - 1), (length,), np.float32)
        self._action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._metadata = {}
        self._seed: int | None = None
        self.episode_log = episode_log
        self.steps = 0
        self._episode = [0.0, 0.0, 0]  # return, cost, length of the episode in progress

    def _obs(self, obs: dict[str, np.ndarray]) -> torch.Tensor:
        ids = np.where(obs["attention_mask"] > 0, obs["input_ids"], -1).astype(np.float32)
        return torch.as_tensor(ids, device=self._device)

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                  torch.Tensor, dict[str, Any]]:
        """Step one token (``action`` encodes it, see :func:`action_to_token`); returns tensors and the env's info."""
        token = int(action_to_token(torch.as_tensor(action).detach().cpu().reshape(1), self.vocab_size))
        obs, reward, cost, terminated, truncated, info = self.env.step(token)
        self.steps += 1
        ep = self._episode
        ep[0], ep[1], ep[2] = ep[0] + float(reward), ep[1] + float(info["cost"]), ep[2] + 1
        if (terminated or truncated) and self.episode_log is not None:
            with open(self.episode_log, "a") as f:
                f.write(json.dumps({"return": ep[0], "cost": ep[1], "length": ep[2], "steps": self.steps}) + "\n")
        t = lambda x, dt=torch.float32: torch.as_tensor(x, dtype=dt, device=self._device)  # noqa: E731
        return self._obs(obs), t(reward), t(cost), t(terminated, torch.bool), t(truncated, torch.bool), info

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict]:
        """Start an episode (the first reset after :meth:`set_seed` uses that seed)."""
        if seed is None and self._seed is not None:
            seed, self._seed = self._seed, None
        obs, info = self.env.reset(seed=seed, options=options)
        self._episode = [0.0, 0.0, 0]
        return self._obs(obs), info

    def set_seed(self, seed: int) -> None:
        """Seed the next reset (Gymnasium seeding: the episodes after it follow the seeded RNG)."""
        self._seed = int(seed)

    @property
    def max_episode_steps(self) -> int:
        """``max_new_tokens`` of the env."""
        return int(self.env.unwrapped.max_new_tokens)

    def render(self) -> Any:
        """The episode's text so far."""
        return self.env.unwrapped.render()

    def close(self) -> None:
        """Close the Gymnasium env."""
        self.env.close()
