"""The unit of work every task produces: one math word problem with its reference answer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One word problem.

    Parameters
    ----------
    question : str
        The problem text shown to the model.
    answer : str
        The reference final answer (e.g. ``"18"``), as read from the ``#### N`` line.
    solution : str
        A worked solution ending in ``#### N`` (GSM8K style); empty if unknown.
    source : str
        Where it came from (``"arithmetic"``, ``"gsm8k"``, a file path).
    index : int
        Index in its dataset (or the generator seed for procedural problems).
    """

    question: str
    answer: str
    solution: str = ""
    source: str = ""
    index: int = -1
