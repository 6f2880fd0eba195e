"""Dataset lines: the GSM8K and MATH line formats, validated one line at a time (errors name ``file:line``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from llm_cmdp_env.judge.verify import reference_from_solution

__all__ = ["Row", "decode_text", "parse_any_row", "parse_gsm8k_row", "parse_jsonl", "parse_math_row", "read_jsonl"]


class Row(NamedTuple):
    """One validated dataset line: the text shown, the reference final answer and the worked solution."""

    question: str
    answer: str
    solution: str


def _text(row: dict[str, Any], key: str) -> str:
    if key not in row:
        raise ValueError(f"missing field {key!r}")
    value = row[key]
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"field {key!r} is empty")
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
    question, answer = _text(row, "problem"), _text(row, "answer")
    solution = row.get("solution", "")
    if not isinstance(solution, str):
        raise ValueError(f"field 'solution' must be a string, got {type(solution).__name__}")
    return Row(question, answer.strip(), solution)


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
