"""The one rule for what a ``#### ...`` line says its answer is (llm_cmdp_env/judge/answers.py), as the env, ``llm-cmdp
data import``, the TRL reward functions and the judge of completions apply it: a table of reference lines in
GSM8K's and MATH-500's real answer styles, the ambiguous lines refused (naming file:line), and the same line read
alike everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_cmdp_env.judge.answers import MAX_ANSWER_CHARS, read_answer_line, reference_from_solution
from llm_cmdp_env.judge.verify import check_answer

TABLE = [
    # GSM8K's styles: integers, digit groups with commas, currency, percent, decimals
    ("72", "72"), ("1,080", "1080"), ("109,200,000", "109200000"), ("-5", "-5"), ("+7", "7"), ("−3", "-3"),
    ("$18.00", "18.00"), ("$1,234.50", "1234.50"), ("15%", "15"), ("7.", "7"), ("3.14159", "3.14159"),
    (".75", ".75"), ("0.5", "0.5"), ("3/4", "3/4"),
    # the lines that were cut to their first number: mixed numbers, digit groups with spaces, an equation
    ("1 1/2", "3/2"), ("-2 3/4", "-11/4"), ("1 000 000", "1000000"), ("12 345", "12345"),
    ("5 * 3 = 15", "15"), ("x = 5", "5"),
    # a number with words after it: the number
    ("18 apples", "18"), ("18, approx 20", "18"), ("18 (approx 20)", "18"), ("18 dollars.", "18"),
    ("18.5 km", "18.5"), ("9,000 ft", "9000"), ("1/2 cup", "1/2"),
    # MATH-500's styles: LaTeX parsed as math, word answers as they are
    ("\\frac{1}{2}", "\\frac{1}{2}"), ("\\dfrac{11}{2}", "\\dfrac{11}{2}"), ("2 \\sqrt{5}", "2 \\sqrt{5}"),
    ("76^\\circ", "76^\\circ"), ("6+9i", "6+9i"), ("10^{10}", "10^{10}"), ("2516_8", "2516_8"),
    ("(2,12) \\cup (12,102)", "(2,12) \\cup (12,102)"), ("(1,234)", "(1,234)"), ("\\text{(C)}", "\\text{(C)}"),
    ("\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}"),
    ("Monday", "Monday"),
]

AMBIGUOUS = [
    ("18 or 20", "joins its number to another"), ("18 to 20 apples", "joins its number to another"),
    ("3 apples and 2 pears", "joins its number to another"), ("18-20", "range or as a difference"),
    ("5 3", "several numbers"), ("-2, 1", "several numbers"), ("about 18", "does not start with its number"),
    ("between 18 and 20", "does not start with its number"), ("18 m", "lone letter"),
    ("5 =", "nothing follows"), ("5 7/3", "neither a mixed number"),
]


@pytest.mark.parametrize("line, answer", TABLE)
def test_a_reference_line_states_one_answer(line, answer):
    assert read_answer_line(line).answer == answer
    assert reference_from_solution(f"Step one.\nStep two.\n#### {line}") == answer


@pytest.mark.parametrize("line, why", AMBIGUOUS)
def test_an_ambiguous_reference_line_is_refused_and_an_ambiguous_completion_scores_nothing(line, why):
    read = read_answer_line(line)
    assert read.answer is None and why in read.problem
    with pytest.raises(ValueError, match="ambiguous"):
        reference_from_solution(f"#### {line}")
    verdict = check_answer(f"so\n#### {line}", "18")
    assert not verdict.correct and verdict.reason == "ambiguous" and verdict.extracted == line


@pytest.mark.parametrize("reference_line, right, wrong", [
    ("1 1/2", "#### 3/2", "#### 1"), ("1 000 000", "#### 1000000", "#### 1"), ("5 * 3 = 15", "#### 15", "#### 5"),
    ("18, approx 20", "#### 18", "#### 20"), ("1,080", "#### 1 080", "#### 1"),
])
def test_the_right_completion_scores_and_the_wrong_one_does_not(reference_line, right, wrong):
    ref = reference_from_solution(f"#### {reference_line}")
    assert check_answer(right, ref).correct and not check_answer(wrong, ref).correct


def test_every_real_gsm8k_reference_reads_as_one_number():
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"
    if not data.is_dir():
        pytest.skip(f"GSM8K is not at {data}")
    import re

    for split in ("train", "test"):
        for i, line in enumerate((data / f"{split}.jsonl").read_text().splitlines(), 1):
            answer = reference_from_solution(json.loads(line)["answer"])
            assert re.fullmatch(r"-?\d+(\.\d+)?", answer), (split, i, answer)


def test_a_reference_longer_than_any_answer_is_refused():
    with pytest.raises(ValueError, match="MAX_ANSWER_CHARS"):
        reference_from_solution("#### " + "1" * (MAX_ANSWER_CHARS + 1))


def test_the_env_data_import_and_trl_read_a_line_alike(tmp_path, monkeypatch):
    from llm_cmdp_env import data
    from llm_cmdp_env.interop.trl_rewards import AnswerReward
    from llm_cmdp_env.tasks import load_task

    monkeypatch.setenv("LLM_CMDP_DATA_DIR", str(tmp_path / "data"))
    rows = [{"question": "Q1?", "answer": "Half and one.\n#### 1 1/2"},
            {"question": "Q2?", "answer": "Five threes.\n#### 5 * 3 = 15"}]
    src = tmp_path / "test.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = load_task(str(src))
    assert [task[i].answer for i in range(2)] == ["3/2", "15"]
    data.import_dataset("mine", src)
    assert [load_task("mine", "test")[i].answer for i in range(2)] == ["3/2", "15"]
    reward = AnswerReward(reference_format="solution")
    got = reward(prompts=["Q1?", "Q2?", "Q1?", "Q2?"], completions=["#### 3/2", "#### 15", "#### 1", "#### 5"],
                 answer=[r["answer"] for r in rows] * 2)
    assert got == [1.0, 1.0, 0.0, 0.0]


def test_an_ambiguous_or_oversized_line_is_refused_at_load_and_import_naming_file_and_line(tmp_path, monkeypatch):
    from llm_cmdp_env import data
    from llm_cmdp_env.tasks import load_task

    monkeypatch.setenv("LLM_CMDP_DATA_DIR", str(tmp_path / "data"))
    for answer in ("#### 18 or 20", "#### " + "9" * 200):
        src = tmp_path / "test.jsonl"
        src.write_text(json.dumps({"question": "fine?", "answer": "#### 3"}) + "\n"
                       + json.dumps({"question": "bad?", "answer": answer}) + "\n")
        with pytest.raises(ValueError, match=r"test\.jsonl:2"):
            load_task(str(src))
        with pytest.raises(ValueError, match=r"test\.jsonl:2"):
            data.import_dataset("mine", src)
        assert not (tmp_path / "data" / "mine").exists()  # nothing written
