"""Actions: a token id, optionally carrying the acting policy's log-probs (so the env needs no second
student forward for student-dependent divergences)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class TokenAction:
    """A token chosen by a policy, with what the policy computed when choosing it.

    Parameters
    ----------
    token : int
        The token id.
    logprobs : array or Tensor [V], optional
        The policy's full next-token log-probabilities at this state (needed by ``reverse_kl`` and
        ``forward_kl``; also enough for ``log_ratio``).
    logprob : float, optional
        log pS(token | state): enough for ``log_ratio``.
    """

    token: int
    logprobs: Any = None
    logprob: float | None = None


def _as_int(x: Any) -> int | None:
    if isinstance(x, (bool, np.bool_)):
        return None
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, np.ndarray) and x.size == 1 and np.issubdtype(x.dtype, np.integer):
        return int(x.reshape(()))
    if isinstance(x, torch.Tensor) and x.numel() == 1 and not x.is_floating_point() and x.dtype != torch.bool:
        return int(x.reshape(()).item())
    return None


def parse_action(action: Any, vocab_size: int) -> TokenAction:
    """Validate ``action`` (int-like token id or :class:`TokenAction`) and return a :class:`TokenAction`.

    Raises
    ------
    TypeError
        If the action is not an integer token id (floats, bools, strings, arrays of several values).
    ValueError
        If the token id is outside ``[0, vocab_size)``.
    """
    if isinstance(action, TokenAction):
        token = _as_int(action.token)
        base = action
    else:
        token = _as_int(action)
        base = None
    if token is None:
        shown = action.token if isinstance(action, TokenAction) else action
        raise TypeError(
            f"action must be an integer token id in [0, {vocab_size}) or a TokenAction, "
            f"got {type(shown).__name__} {shown!r:.60}"
        )
    if not 0 <= token < vocab_size:
        raise ValueError(f"action {token} is out of range: token ids are in [0, {vocab_size})")
    if base is None:
        return TokenAction(token)
    return TokenAction(token, base.logprobs, base.logprob)


@dataclass(frozen=True)
class VectorTokenAction:
    """Tokens for all N sub-envs of the native vector env, with the policy's log-probs.

    Parameters
    ----------
    tokens : array [N]
        Token ids.
    logprobs : array or Tensor [N, V], optional
        Full next-token log-probabilities of the acting policy, one row per sub-env.
    logprob : array or Tensor [N], optional
        log pS(token | state) per sub-env (enough for ``log_ratio``).
    """

    tokens: Any
    logprobs: Any = None
    logprob: Any = None


def parse_vector_action(action: Any, num_envs: int, vocab_size: int) -> tuple[np.ndarray, Any, Any]:
    """Validate a batch of tokens; return ``(tokens int64 [N], logprobs or None, logprob or None)``."""
    logprobs = logprob = None
    if isinstance(action, VectorTokenAction):
        action, logprobs, logprob = action.tokens, action.logprobs, action.logprob
    if isinstance(action, torch.Tensor):
        action = action.detach().cpu().numpy()
    arr = np.asarray(action)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        raise TypeError(
            f"actions must be integer token ids (an int array of shape ({num_envs},)), got dtype {arr.dtype}"
        )
    if arr.shape != (num_envs,):
        raise ValueError(f"actions must have shape ({num_envs},), got {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        bad = int(arr[(arr < 0) | (arr >= vocab_size)][0])
        raise ValueError(f"action {bad} is out of range: token ids are in [0, {vocab_size})")
    return arr.astype(np.int64), logprobs, logprob
