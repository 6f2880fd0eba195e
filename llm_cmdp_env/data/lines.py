"""Dataset lines: the GSM8K and MATH line formats, validated one line at a time (errors name ``file:line``).

A line is refused, never guessed at, when a field is missing, not a string, empty, longer than its limit
(:data:`MAX_TEXT_CHARS` for a question or a solution, ``MAX_ANSWER_CHARS`` for a final answer: no completion's
answer could equal a longer one) or not valid Unicode (a lone surrogate such as ``"\\ud800"``, which JSON allows and
no tokenizer encodes), and when a GSM8K solution's ``####`` line is ambiguous (:mod:`llm_cmdp_env.judge.answers`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from llm_cmdp_env.judge.answers import MAX_ANSWER_CHARS, reference_from_solution

__all__ = ["MAX_TEXT_CHARS", "Row", "decode_text", "parse_any_row", "parse_gsm8k_row", "parse_jsonl", "parse_math_row",
           "read_jsonl"]


MAX_TEXT_CHARS = 50_000
"""The longest question or solution a dataset line may hold (GSM8K's longest is ~1,200 characters, MATH-500's
~3,400): a longer one is refused at load and import instead of failing, or stalling, later."""


class Row(NamedTuple):
    """One validated dataset line: the text shown, the reference final answer and the worked solution."""

    question: str
    answer: str
    solution: str


def _text(row: dict[str, Any], key: str, limit: int = MAX_TEXT_CHARS, required: bool = True) -> str:
    if key not in row and not required:
        return ""
    if key not in row:
        raise ValueError(f"missing field {key!r}")
    value = row[key]
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise ValueError(f"field {key!r} is empty")
    if len(value) > limit:
        raise ValueError(f"field {key!r} is {len(value):,} characters long, over the limit of {limit:,}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"field {key!r} is not valid Unicode text ({value[e.start]!r} at character {e.start}: a "
                         "lone surrogate)") from None
    return value


def parse_gsm8k_row(row: dict[str, Any]) -> Row:
    """GSM8K format: ``question`` and ``answer``, a worked solution whose last ``#### N`` line is the answer."""
    question, solution = _text(row, "question"), _text(row, "answer")
    try:
        answer = reference_from_solution(solution)
    except ValueError as e:
        raise ValueError(f"field 'answer' must end in a '#### <final answer>' line (GSM8K format): {e}") from e
    return Row(question, answer, solution)


def parse_math_row(row: dict[str, Any]) -> Row:
    """MATH format: ``problem``, ``answer`` (the final answer, LaTeX) and an optional ``solution``."""
    question, answer = _text(row, "problem"), _text(row, "answer", MAX_ANSWER_CHARS)
    return Row(question, answer.strip(), _text(row, "solution", required=False))


def parse_any_row(row: dict[str, Any]) -> Row:
    """A custom file's line: GSM8K format when it has ``question``, MATH format when it has ``problem``."""
    if "question" in row:
        return parse_gsm8k_row(row)
    if "problem" in row:
        return parse_math_row(row)
    raise ValueError("expected fields 'question' + 'answer' (GSM8K format) or 'problem' + 'answer' (MATH format)")


def parse_jsonl(text: str, parse: Callable[[dict[str, Any]], Row], where: str) -> list[Row]:
    """Validate and parse every non-blank line of ``text``.

    Raises
    ------
    ValueError
        On the first malformed line, as ``"<where>:<line>: ..."`` (1-based), or when there is no line at all.
    """
    rows: list[Row] = []
    for lineno, line in enumerate(text.split("\n"), start=1):  # not splitlines(): JSON may hold U+2028
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
            rows.append(parse(obj))
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            raise ValueError(f"{where}:{lineno}: malformed dataset line ({e})") from e
    if not rows:
        raise ValueError(f"{where}: no problems in file")
    return rows


def decode_text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: not UTF-8 text ({e})") from e


def read_jsonl(path: str | os.PathLike, parse: Callable[[dict[str, Any]], Row] = parse_any_row) -> list[Row]:
    """Read and validate a jsonl dataset file (errors name ``file:line``; see :func:`parse_jsonl`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    return parse_jsonl(decode_text(path.read_bytes(), str(path)), parse, str(path))
