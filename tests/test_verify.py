"""The answer judge: extraction forms, equivalence, and bounded outcomes for hostile answers."""

import time

import pytest

from llm_cmdp_env.judge.answers import MAX_ANSWER_CHARS, extract_answer, reference_from_solution
from llm_cmdp_env.judge.verify import check_answer, is_equivalent


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("12 + 7 = 19\n#### 1,000", "1000"),
        ("The answer is $18.", "18"),
        ("so we get \\boxed{18}", "18"),
        ("-3", "-3"),
        ("3/4", "3/4"),
        ("#### 18 apples", "18"),
        ("She has 5 left. Then 7.", "7"),
        ("Final answer: 42", "42"),
        ("\\boxed{\\frac{3}{4}}", "\\frac{3}{4}"),
        ("no digits at all", None),
    ],
)
def test_extract_answer(completion, expected):
    assert extract_answer(completion) == expected


@pytest.mark.parametrize(
    "completion, reference, correct",
    [
        ("#### 1,000", "1000", True),
        ("The answer is $18.", "18", True),
        ("\\boxed{18}", "18", True),
        ("-3", "-3", True),
        ("3/4", "0.75", True),
        ("#### 18.0", "18", True),
        ("#### 17", "18", False),
        ("\\boxed{\\frac{3}{4}}", "3/4", True),
        ("\\boxed{\\sqrt{4}}", "2", True),
        ("\\boxed{\\frac{1}{3}}", "0.5", False),
        ("nothing", "3", False),
    ],
)
def test_check_answer(completion, reference, correct):
    assert check_answer(completion, reference).correct is correct


def test_reference_from_gsm8k_solution():
    assert reference_from_solution("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18") == "18"
    assert reference_from_solution("#### 1,234") == "1234"
    with pytest.raises(ValueError, match="####"):
        reference_from_solution("no answer line")


def test_hostile_answer_is_bounded():
    start = time.monotonic()
    verdict = check_answer("\\boxed{9^{9^{9^{9}}}}", "3", timeout=1.0)
    assert verdict.correct is False
    assert verdict.reason == "timeout"
    # first call may include starting the worker process (imports sympy), generously bounded
    assert time.monotonic() - start < 90
    # the judge still works afterwards
    assert check_answer("\\boxed{\\frac{1}{2}}", "0.5", timeout=5).correct


def test_too_long_answer_is_rejected_without_parsing():
    verdict = check_answer("#### " + "x+" * MAX_ANSWER_CHARS + "1", "1")
    assert (verdict.correct, verdict.reason) == (False, "too_long")


def test_works_off_the_main_thread():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(check_answer, "\\boxed{\\frac{6}{8}}", "3/4").result().correct


def test_bad_timeout():
    with pytest.raises(ValueError, match="timeout"):
        is_equivalent("1", "1", timeout=0)
