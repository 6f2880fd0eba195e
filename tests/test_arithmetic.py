"""The procedural arithmetic task: determinism, disjoint splits, and self-consistent solutions."""

from __future__ import annotations

import ast
import re

import numpy as np
import pytest

from llm_cmdp_env.tasks.arithmetic import (
    MAX_STEPS,
    PLAIN_PROMPT_TEMPLATE,
    SPLIT_MARKER,
    ArithmeticTask,
    question_split,
)
from llm_cmdp_env.tasks.base import Problem

_LINE = re.compile(r"^(?P<text>.*\.)(?: (?P<eq>[0-9 +*/=-]+))?$")
_OPENING = re.compile(r"^[A-Z][a-z]+ has (\d+) [a-z ]+\.$")


def _evaluate(expr: str) -> int:
    """Evaluate ``a op b [op c]`` over non-negative integers (``/`` must be exact)."""
    tree = ast.parse(expr.strip(), mode="eval").body

    def ev(node: ast.expr) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            assert node.value >= 0
            return node.value
        assert isinstance(node, ast.BinOp), ast.dump(node)
        a, b = ev(node.left), ev(node.right)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        assert isinstance(node.op, ast.Div) and b != 0 and a % b == 0, expr
        return a // b

    return ev(tree)


def _check_solution(p: Problem) -> tuple[list[int], set[str]]:
    """Re-check every line of the solution; return the running totals and the operators used.

    Each line restates a sentence of the question and ends with an equation chain ``e1 = e2 = ... = c``
    whose members must all evaluate to ``c`` and whose first operand is the previous total.
    """
    lines = p.solution.split("\n")
    assert lines[-1] == f"#### {p.answer}"
    totals: list[int] = []
    ops: set[str] = set()
    for line in lines[:-1]:
        m = _LINE.match(line)
        assert m, f"malformed line: {line!r}"
        assert m.group("text") in p.question, line
        if m.group("eq") is None:  # the plain opening "Tom has 12 apples."
            opening = _OPENING.match(line)
            assert opening and not totals, line
            totals.append(int(opening.group(1)))
            continue
        parts = m.group("eq").split(" = ")
        assert len(parts) >= 2, line
        value = int(parts[-1])
        assert all(_evaluate(part) == value for part in parts[:-1]), line
        if totals:
            assert int(parts[0].split()[0]) == totals[-1], f"does not continue from {totals[-1]}: {line!r}"
        ops.update(tok for tok in parts[0].split() if tok in "+-*/")
        totals.append(value)
    assert totals and str(totals[-1]) == p.answer
    return totals, ops


def test_generate_is_deterministic_by_split_and_seed() -> None:
    for split in ("train", "test"):
        a, b = ArithmeticTask(split), ArithmeticTask(split)
        for seed in (0, 1, 17, 12345, 2**31 - 2):
            assert a.generate(seed) == b.generate(seed) == a[seed]
    train, test = ArithmeticTask("train"), ArithmeticTask("test")
    assert [train[i].question for i in range(20)] != [test[i].question for i in range(20)]
    assert len({train[i].question for i in range(50)}) > 45  # seeds give varied problems


def test_problem_fields() -> None:
    p = ArithmeticTask("test")[7]
    assert isinstance(p, Problem)
    assert p.source == "arithmetic" and p.index == 7
    assert p.question.endswith("?")
    assert PLAIN_PROMPT_TEMPLATE.format(question=p.question) == f"Question: {p.question}\nAnswer:"


def test_splits_are_disjoint_by_question_text() -> None:
    n = 2000
    qs = {s: {ArithmeticTask(s)[i].question for i in range(n)} for s in ("train", "validation", "test")}
    assert not qs["train"] & qs["test"] and not qs["train"] & qs["validation"] and not qs["validation"] & qs["test"]
    for split, questions in qs.items():
        assert all(question_split(q) == split for q in questions)
    both = {ArithmeticTask("train+validation")[i].question for i in range(n)}
    assert {question_split(q) for q in both} == {"train", "validation"}


def test_train_plus_validation_is_the_shipped_models_train_split() -> None:
    """The zoo models were trained on the train split as it was before validation was carved out of it: the
    same problems for the same seeds (a fingerprint of the first 300 questions, taken from the code before)."""
    import hashlib

    qs = [ArithmeticTask("train+validation")[i].question for i in range(300)]
    digest = hashlib.sha256("\n".join(qs).encode()).hexdigest()
    assert digest == "687038486365350779a2424b3eecb13ce3fa4609cd320c07d491d578a3461060"


def test_the_split_style_changes_only_how_equations_are_written() -> None:
    plain, short = ArithmeticTask("test"), ArithmeticTask("test", solution_style="split")
    n_split = 0
    for i in range(300):
        a, b = plain[i], short[i]
        assert (a.question, a.answer) == (b.question, b.answer)
        lines = b.solution.split("\n")
        assert lines[0] == SPLIT_MARKER and len(lines) == len(a.solution.split("\n")) + 1
        for la, lb in zip(a.solution.split("\n"), lines[1:]):
            assert lb.startswith(la.rpartition(" = ")[0].rpartition(". ")[0] or la[:5])
            if "=" in lb and not lb.startswith("####"):
                chain = [eval(x) for x in lb.rpartition(". ")[2].split("=")]  # every link of the chain is true
                assert len(set(chain)) == 1, lb
                n_split += lb.count("=") > la.count("=")
    assert n_split > 100  # most problems have a two-digit operand to split
    assert short[0].solution.split("\n")[2] == "He sells 22 cards. 23 - 22 = 23 - 20 - 2 = 3 - 2 = 1"
    with pytest.raises(ValueError, match="solution_style"):
        ArithmeticTask("train", solution_style="terse")


def test_question_split_is_stable_hash() -> None:
    # A fixed, Python-hash-independent assignment (roughly one in ten questions is "test").
    qs = [ArithmeticTask("train", 1, 3).generate(i).question + str(i) for i in range(3000)]
    frac = sum(question_split(q) == "test" for q in qs) / len(qs)
    assert 0.07 < frac < 0.13
    assert question_split("Tom has 12 apples. How many apples does Tom have now?") == question_split(
        "Tom has 12 apples. How many apples does Tom have now?"
    )


@pytest.mark.parametrize("split", ["train", "test"])
def test_solutions_are_correct_and_nonnegative(split: str) -> None:
    task = ArithmeticTask(split)
    n_ops = set()
    ops = set()
    for i in range(1500):
        p = task[i]
        totals, used = _check_solution(p)
        assert all(1 <= v < 1000 for v in totals), p.solution
        n_ops.add(p.question.count(".") - p.question.count("Each of the") - 1)  # minus the opening
        ops |= used
    assert ops == {"+", "-", "*", "/"}  # every operation occurs
    assert {1, 2, 3} <= n_ops


def test_step_range_is_respected() -> None:
    task = ArithmeticTask("train", min_steps=2, max_steps=2)
    for i in range(200):
        p = task[i]
        _check_solution(p)
        assert p.question.count(".") - p.question.count("Each of the") == 2 + 1  # opening + 2 steps


def test_longest_stories_are_valid() -> None:
    task = ArithmeticTask("test", min_steps=MAX_STEPS, max_steps=MAX_STEPS)
    for i in range(100):
        totals, _ = _check_solution(task[i])
        assert len(totals) == MAX_STEPS + 1


def test_sample_uses_rng() -> None:
    task = ArithmeticTask("train")
    p1 = task.sample(np.random.default_rng(3))
    p2 = task.sample(np.random.default_rng(3))
    assert p1 == p2
    assert p1 == task.generate(p1.index)
    assert 0 <= p1.index < len(task) == 2**31 - 1


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="train.*test"):
        ArithmeticTask("dev")
    with pytest.raises(ValueError, match="min_steps"):
        ArithmeticTask("train", min_steps=0)
    with pytest.raises(ValueError, match="min_steps"):
        ArithmeticTask("train", min_steps=3, max_steps=2)
    with pytest.raises(ValueError, match="max_steps"):
        ArithmeticTask("train", max_steps=MAX_STEPS + 1)
    with pytest.raises(IndexError):
        ArithmeticTask("train")[-1]


def test_generator_is_pinned() -> None:
    # The shipped zoo models were trained on exactly this generator: changing what a seed produces
    # silently shifts the train/test distributions under them (retrain the zoo if this must change).
    assert ArithmeticTask("train")[0] == Problem(
        question="Ravi has 10 crayons. He gets 5 more crayons from a teacher. How many crayons does Ravi have now?",
        answer="15",
        solution="Ravi has 10 crayons.\nHe gets 5 more crayons from a teacher. 10 + 5 = 15\n#### 15",
        source="arithmetic",
        index=0,
    )
    assert ArithmeticTask("test")[0].solution == (
        "Luke has 23 cards.\nHe sells 22 cards. 23 - 22 = 1\n"
        "Then he buys 2 jars with 5 cards in each. 1 + 2 * 5 = 1 + 10 = 11\n"
        "After that, he buys 14 more cards. 11 + 14 = 25\n#### 25"
    )
