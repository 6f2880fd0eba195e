"""Checks for the numbers that come in through the public API (kwargs, budgets, rates, counts).

One module below ``envs/``, ``wrappers/`` and the agent, so every parameter gets the same clear error: the
parameter's name, what is accepted, and what was given. Nothing here clamps or guesses.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["check_bool", "check_positive_int", "check_real"]


def check_real(
    value: Any,
    name: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    allow_inf: bool = False,
    low: float | None = None,
    high: float | None = None,
) -> float:
    """Return ``value`` as a float after checking it is a finite real number in the required range.

    Parameters
    ----------
    value : Any
        The number to check (Python or numpy int/float; bools are refused).
    name : str
        The parameter's name, used in the error message.
    positive, nonnegative : bool
        Require ``value > 0`` / ``value >= 0``.
    allow_inf : bool
        Accept +-inf (NaN never).
    low, high : float, optional
        Inclusive bounds.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If it is NaN, infinite (unless ``allow_inf``), or out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r:.60}")
    out = float(value)
    if math.isnan(out) or (math.isinf(out) and not allow_inf):
        raise ValueError(f"{name} must be a finite number, got {out!r}")
    if positive and not out > 0:
        raise ValueError(f"{name} must be > 0, got {out!r}")
    if nonnegative and not out >= 0:
        raise ValueError(f"{name} must be >= 0, got {out!r}")
    if low is not None and out < low:
        raise ValueError(f"{name} must be >= {low}, got {out!r}")
    if high is not None and out > high:
        raise ValueError(f"{name} must be <= {high}, got {out!r}")
    return out


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int after checking it is an integer (not a bool) ``>= minimum`` (default 1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r:.60}")
    return int(value)


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` as a bool after checking it is one (Python or numpy); ints and strings are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r:.60}")
    return bool(value)
