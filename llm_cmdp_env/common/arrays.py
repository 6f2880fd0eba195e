"""Helpers that let one function serve a Python scalar (one env) and a numpy array (a batch of envs).

A rule written with ``+ - * /``, comparisons, ``&``/``|`` and these helpers runs on Python floats in a single env
(no numpy overhead on the per-token hot path) and on arrays in a vector env; IEEE float64 arithmetic gives both
the same numbers bit for bit. Used by the env core's episode-end rule and by the constraint rules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["maximum", "not_", "where"]


def where(cond: Any, a: Any, b: Any) -> Any:
    """``np.where(cond, a, b)`` for arrays, ``a if cond else b`` for a Python scalar condition."""
    if isinstance(cond, np.ndarray):
        return np.where(cond, a, b)
    return a if cond else b


def maximum(a: Any, b: Any) -> Any:
    """Element-wise maximum (``np.maximum`` for arrays, a comparison for scalars)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.maximum(a, b)
    return a if a >= b else b


def not_(x: Any) -> Any:
    """Logical not (``np.logical_not`` for arrays, ``not`` for scalars, where ``~True`` would be ``-2``)."""
    if isinstance(x, np.ndarray):
        return np.logical_not(x)
    return not x
