"""Procedural arithmetic word problems with GSM8K-style worked solutions.

The generator is the embedded default task of the environment: it needs no data files, is fully
deterministic in ``(split, seed)``, and is simple enough that the small teacher/student pair shipped in
:mod:`llm_cmdp_env.zoo` can learn it on a CPU. Every solution restates the story one sentence per line,
each followed by its equation, and ends in a ``#### N`` line (GSM8K's final-answer format)::

    Maya has 23 shells.
    She gives 17 shells to a teacher. 23 - 17 = 6
    Then she buys 2 bags with 5 shells in each. 6 + 2 * 5 = 6 + 10 = 16
    #### 16

Restating makes every operand local to its line, so a 4-layer model only has to learn copying and
two-digit arithmetic, not to point back into the question. Operations: addition, subtraction, "g
containers of k" products, "twice / three times as many", exact division; every number given is >= 2
and every intermediate result is in [1, 99]. Sentence k of a story always opens with the same connector
("Then", "After that,", ...).

Splits are disjoint by question text without storing any list: a stable hash (BLAKE2b) of the question text
mod 10 puts it in the test split (0), the validation split (1: for choosing hyper-parameters without looking
at the test split) or the train split (2-9). ``generate(seed)`` for a split retries with derived sub-seeds
until the drawn question falls in that split's buckets. ``"train+validation"`` is buckets 1-9, the train
split as it was before the validation split was carved out of it: the shipped zoo models were trained on it.

Solution styles (``solution_style``): ``"restate"`` (above, the teacher's) and ``"split"``, the mental-arithmetic
shortcut of the second testbed (docs/zoo.md): a first line ``Split.``, then the same lines with every
addition and subtraction done tens first, then the ones bridged through ten, and two-digit factors split into
tens and ones, e.g. ``42 - 35 = 42 - 30 - 5 = 12 - 5 = 12 - 2 - 3 = 10 - 3 = 7`` and ``24 * 3 = 20 * 3 + 4 * 3
= 60 + 12 = 72``: every step is a one-digit fact or a change of the tens digit. Same questions and answers; the
shipped teacher never writes it.
"""

from __future__ import annotations

import hashlib

import numpy as np

from llm_cmdp_env.models.prompts import PLAIN_PROMPT_TEMPLATE  # re-exported: the shipped models' prompt format
from llm_cmdp_env.tasks.base import Problem

__all__ = ["MAX_STEPS", "PLAIN_PROMPT_TEMPLATE", "SOLUTION_STYLES", "SPLITS", "SPLIT_MARKER", "ArithmeticTask",
           "question_split"]

SPLITS = ("train", "test", "validation", "train+validation")
_TEST_BUCKETS = 10  # 1 in 10 question texts belongs to the test split, 1 in 10 to validation
# the hash buckets (mod _TEST_BUCKETS) of each split, and the tag of its sub-seeds ("train+validation" draws the
# sub-seeds of the train split as it was before validation existed, so the shipped models' data is unchanged)
_BUCKETS = {"train": frozenset(range(2, 10)), "test": frozenset({0}), "validation": frozenset({1}),
            "train+validation": frozenset(range(1, 10))}
_SPLIT_TAG = {"train": 0, "test": 1, "validation": 2, "train+validation": 0}
SOLUTION_STYLES = ("restate", "split")
SPLIT_MARKER = "Split."
"""First line of a ``"split"``-style solution."""

# fmt: off
_PEOPLE: tuple[tuple[str, str], ...] = (  # (name, subject pronoun)
    ("Tom", "he"), ("Anna", "she"), ("Ben", "he"), ("Lily", "she"), ("Sam", "he"), ("Mia", "she"),
    ("Jack", "he"), ("Emma", "she"), ("Leo", "he"), ("Zoe", "she"), ("Max", "he"), ("Ella", "she"),
    ("Noah", "he"), ("Ava", "she"), ("Luke", "he"), ("Ruby", "she"), ("Omar", "he"), ("Nina", "she"),
    ("Carlos", "he"), ("Grace", "she"), ("Ravi", "he"), ("Maya", "she"), ("Paul", "he"), ("Sara", "she"),
)
_OBJECTS: tuple[str, ...] = (
    "apples", "pencils", "marbles", "stickers", "cookies", "books", "coins", "cards", "shells",
    "balloons", "stamps", "candies", "crayons", "buttons", "beads", "flowers", "eggs", "oranges",
    "rocks", "toy cars",
)
_CONTAINERS: tuple[str, ...] = ("boxes", "bags", "packs", "jars", "baskets")
_FRIENDS: tuple[str, ...] = ("a friend", "a classmate", "a neighbor", "a cousin", "a teacher")
# Sentence k (k >= 1) of a story always opens with the k-th connector, so a solution line can be
# found again in the question by its first words (what makes the task learnable by a tiny model).
_CONNECTORS: tuple[str, ...] = ("", "Then", "After that,", "Next,", "Later,", "After a while,")
# fmt: on
MAX_STEPS = len(_CONNECTORS)

# Difficulty knobs. Every number given in a question is >= 2 (plural nouns read right) and every
# intermediate result is in [1, _MAX_VALUE], so all numbers have at most two digits.
_MAX_START = 30
_MAX_ADD = 20
_MAX_VALUE = 99
_MAX_FACTOR = 6  # "g containers of k objects": g, k in 2.._MAX_FACTOR
_MUL_WORDS = {2: "twice", 3: "three times"}  # "ends up with twice as many"
_MAX_DIV = 5  # "splits into d equal groups": d in 2.._MAX_DIV
_OPS = ("add", "sub", "group", "mul", "div")
_OP_WEIGHTS = np.array([3.0, 3.0, 1.5, 1.0, 1.0])


def _bucket(question: str) -> int:
    digest = hashlib.blake2b(question.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _TEST_BUCKETS


def question_split(question: str) -> str:
    """Return the split (``"train"``, ``"validation"`` or ``"test"``) a question text belongs to.

    Uses a stable BLAKE2b hash (not Python's salted ``hash``), so the assignment is identical across
    processes, machines and Python versions.
    """
    b = _bucket(question)
    return "test" if b == 0 else "validation" if b == 1 else "train"


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _units_add(a: int, u: int) -> str:
    """``a + u`` (``u`` one digit) by bridging through the next ten: ``37 + 5 = 37 + 3 + 2 = 40 + 2 = 42``."""
    c = 10 - a % 10
    if a % 10 and u > c:
        return f"{a} + {u} = {a} + {c} + {u - c} = {a + c} + {u - c} = {a + u}"
    return f"{a} + {u} = {a + u}"


def _units_sub(b: int, u: int) -> str:
    """``b - u`` (``u`` one digit) by bridging down to the ten: ``12 - 5 = 12 - 2 - 3 = 10 - 3 = 7``."""
    r = b % 10
    if r and u > r:
        return f"{b} - {u} = {b} - {r} - {u - r} = {b - r} - {u - r} = {b - u}"
    return f"{b} - {u} = {b - u}"


def _add_sub(x: int, op: str, k: int, style: str) -> str:
    """The chain after ``"x + k = "`` or ``"x - k = "`` (``op``): the result, or (``"split"``) tens first, then
    the ones bridged through the ten (up for a sum, down for a difference)."""
    sign, units = (1, _units_add) if op == "+" else (-1, _units_sub)
    if style != "split":
        return f"{x + sign * k}"
    t, u = k - k % 10, k % 10
    if t and u:
        return f"{x} {op} {t} {op} {u} = " + units(x + sign * t, u)
    if u:  # one-digit k: "x op k = " is already written, continue after its "="
        return units(x, u).partition(" = ")[2]
    return f"{x + sign * k}"


def _mul(x: int, k: int, style: str) -> str:
    """The chain after ``"x * k = "`` (``k`` one digit): tens and ones of a two-digit ``x`` times ``k``."""
    if style == "split" and x >= 10 and x % 10:
        t, u = x - x % 10, x % 10
        return f"{t} * {k} + {u} * {k} = {t * k} + {u * k} = {x * k}"
    return f"{x * k}"


def _draw(rng: np.random.Generator, min_steps: int, max_steps: int, style: str = "restate") -> tuple[str, str, int]:
    """Draw one problem from ``rng``: return ``(question, solution, answer)``.

    The solution restates each sentence of the story and appends its equation, e.g.
    ``"She sells 4 shells. 10 - 4 = 6"``, then ends with ``"#### 6"``. ``style`` changes how the equations are
    written (see the module docstring), never what is drawn: the question and answer do not depend on it.
    """
    name, subj = _PEOPLE[int(rng.integers(len(_PEOPLE)))]
    thing = _pick(rng, _OBJECTS)
    sentences: list[str] = []
    lines: list[str] = []

    # Opening: a plain count, or a product "g containers with k things in each" (at most one product
    # per story keeps solutions under ~120 tokens).
    grouped = bool(rng.random() < 0.25)
    if grouped:
        g, k = (int(v) for v in rng.integers(2, _MAX_FACTOR + 1, size=2))
        cont = _pick(rng, _CONTAINERS)
        x = g * k
        text = f"{name} has {g} {cont} of {thing}. Each of the {cont} holds {k} {thing}."
        sentences.append(text)
        lines.append(f"{text} {g} * {k} = {x}")
    else:
        x = int(rng.integers(2, _MAX_START + 1))
        text = f"{name} has {x} {thing}."
        sentences.append(text)
        lines.append(text)

    n_steps = int(rng.integers(min_steps, max_steps + 1))
    for step in range(n_steps):
        divisors = [d for d in range(2, _MAX_DIV + 1) if x % d == 0 and x // d >= 2]
        feasible = np.array(
            [
                x + 2 <= _MAX_VALUE,  # add
                x >= 3,  # sub (leaves at least 1)
                x + 4 <= _MAX_VALUE and not grouped,  # group
                2 * x <= _MAX_VALUE,  # mul
                bool(divisors),  # div
            ]
        )
        weights = _OP_WEIGHTS * feasible
        op = _OPS[int(rng.choice(len(_OPS), p=weights / weights.sum()))]
        lead = subj.capitalize() if step == 0 else f"{_CONNECTORS[step]} {subj}"
        if op == "add":
            k = int(rng.integers(2, min(_MAX_ADD, _MAX_VALUE - x) + 1))
            other = _PEOPLE[int(rng.integers(len(_PEOPLE)))][0]
            verb = int(rng.integers(4))
            if verb == 0:
                text = f"{lead} buys {k} more {thing}."
            elif verb == 1:
                text = f"{lead} finds {k} more {thing}."
            elif verb == 2 or other == name:
                text = f"{lead} gets {k} more {thing} from {_pick(rng, _FRIENDS)}."
            else:
                text = f"{lead} gets {k} {thing} from {other}."
            y = x + k
            eq = f"{x} + {k} = {_add_sub(x, '+', k, style)}"
        elif op == "sub":
            k = int(rng.integers(2, x))  # 2 <= k <= x - 1
            verb = int(rng.integers(4))
            if verb == 0:
                text = f"{lead} gives {k} {thing} to {_pick(rng, _FRIENDS)}."
            elif verb == 1:
                text = f"{lead} loses {k} {thing}."
            elif verb == 2:
                text = f"{lead} sells {k} {thing}."
            else:
                text = f"{lead} gives away {k} {thing}."
            y = x - k
            eq = f"{x} - {k} = {_add_sub(x, '-', k, style)}"
        elif op == "group":
            cont = _pick(rng, _CONTAINERS)
            while True:
                g, k = (int(v) for v in rng.integers(2, _MAX_FACTOR + 1, size=2))
                if x + g * k <= _MAX_VALUE:
                    break
            text = f"{lead} buys {g} {cont} with {k} {thing} in each."
            m = g * k
            y = x + m
            grouped = True
            eq = f"{x} + {g} * {k} = {x} + {m} = {_add_sub(x, '+', m, style)}"
        elif op == "mul":
            k = max(f for f in _MUL_WORDS if f * x <= _MAX_VALUE and (f == 2 or rng.random() < 0.5))
            text = f"{lead} ends up with {_MUL_WORDS[k]} as many {thing}."
            y = x * k
            eq = f"{x} * {k} = {_mul(x, k, style)}"
        else:  # div
            k = divisors[int(rng.integers(len(divisors)))]
            text = f"{lead} splits the {thing} into {k} equal groups and keeps one group."
            y = x // k
            eq = f"{x} / {k} = {y}"
        sentences.append(text)
        lines.append(f"{text} {eq}")
        x = y

    sentences.append(f"How many {thing} does {name} have now?")
    lines.append(f"#### {x}")
    if style == "split":
        lines.insert(0, SPLIT_MARKER)
    return " ".join(sentences), "\n".join(lines), x


class ArithmeticTask:
    """Seeded generator of arithmetic word problems with worked solutions.

    Parameters
    ----------
    split : str
        ``"train"``, ``"validation"`` or ``"test"``, disjoint by question text (see :func:`question_split`), or
        ``"train+validation"`` (the shipped zoo models' training data).
    min_steps, max_steps : int
        Range (inclusive) of operations applied after the opening sentence, at most :data:`MAX_STEPS`.
        The shipped zoo models were trained on the default 1 to 3.
    solution_style : str
        ``"restate"`` (the teacher's worked solutions) or ``"split"`` (the shortcut style of the second testbed);
        questions and answers are the same in both.

    Notes
    -----
    ``generate(seed)`` is a pure function of ``(split, min_steps, max_steps, seed)``. Indexing is an alias
    for it, and ``len`` is a large nominal size so the task can stand in for a dataset.
    """

    def __init__(self, split: str = "train", min_steps: int = 1, max_steps: int = 3,
                 solution_style: str = "restate") -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if solution_style not in SOLUTION_STYLES:
            raise ValueError(f"solution_style must be one of {SOLUTION_STYLES}, got {solution_style!r}")
        if not (isinstance(min_steps, int) and isinstance(max_steps, int) and 1 <= min_steps <= max_steps <= MAX_STEPS):
            raise ValueError(
                f"need integers 1 <= min_steps <= max_steps <= {MAX_STEPS}, "
                f"got min_steps={min_steps!r}, max_steps={max_steps!r}"
            )
        self.split = split
        self.min_steps = min_steps
        self.max_steps = max_steps
        self.solution_style = solution_style

    def generate(self, seed: int) -> Problem:
        """Return the problem for ``seed`` in this split (deterministic).

        Sub-seeds ``(seed, attempt, split)`` are tried in order until the question hashes into this split
        (about 1.25 tries for "train", 10 for "test" and "validation").
        """
        seed = int(seed)
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        split_tag, buckets = _SPLIT_TAG[self.split], _BUCKETS[self.split]
        attempt = 0
        while True:
            rng = np.random.default_rng([seed, attempt, split_tag])
            question, solution, answer = _draw(rng, self.min_steps, self.max_steps, self.solution_style)
            if _bucket(question) in buckets:
                return Problem(
                    question=question, answer=str(answer), solution=solution, source="arithmetic", index=seed
                )
            attempt += 1

    def sample(self, rng: np.random.Generator) -> Problem:
        """Draw a seed from ``rng`` and return :meth:`generate` of it."""
        return self.generate(int(rng.integers(0, len(self))))

    def __getitem__(self, i: int) -> Problem:
        if not 0 <= int(i) < len(self):
            raise IndexError(f"index must be in [0, {len(self)}), got {i}")
        return self.generate(int(i))

    def __len__(self) -> int:
        return 2**31 - 1

    def __repr__(self) -> str:
        style = "" if self.solution_style == "restate" else f", solution_style={self.solution_style!r}"
        return f"ArithmeticTask(split={self.split!r}, min_steps={self.min_steps}, max_steps={self.max_steps}{style})"
