"""What a text says its final answer is: one rule for a ``#### ...`` line, applied alike to a dataset's reference
solutions (at load and ``llm-cmdp data import``), to TRL's reference columns and to completions.

The answer of a ``#### ...`` line (:func:`read_answer_line`):

1. Surface forms are cleaned: currency and percent signs, the minus sign ``−``, a leading ``+``, trailing dots;
   digit groups are joined, with commas (``1,080``) or spaces (``1 000 000``).
2. With an ``=`` on the line, the answer is what follows the last one (``5 * 3 = 15`` -> ``15``).
3. A number is the answer: an integer, a decimal, a fraction ``a/b``, or a mixed number (``1 1/2`` -> ``3/2``).
4. A number followed by words is that number (``18 apples``, ``18, approx 20``, ``18 (about 20)`` -> ``18``),
   unless the words join it to another number (``18 or 20``, ``18 to 20 apples``, ``18 and 2``): ambiguous.
5. Anything else is the whole cleaned text, parsed as math (``\\frac{1}{2}``, ``2 \\sqrt{5}``, ``5 * 3``) or, with
   no digit at all, taken as a word answer (``Monday``); except what reads two ways: several numbers with
   nothing between them (``5 3``, ``-2, 1``), a range or a difference (``18-20``), a number with a lone letter
   (``18 m``: a unit or a variable?), or words around numbers that do not lead (``about 18``): ambiguous.

An ambiguous reference is refused where it is read (the error names the line and why); an ambiguous completion is
judged incorrect (``Verdict.reason == "ambiguous"``). A reference longer than :data:`MAX_ANSWER_CHARS` is refused
too: no completion's answer could equal it (longer extracted answers are judged ``"too_long"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["MAX_ANSWER_CHARS", "LineAnswer", "clean", "extract_answer", "find_answer", "read_answer_line",
           "reference_from_solution"]

MAX_ANSWER_CHARS = 128
"""Answers longer than this are never compared: an extracted answer is judged incorrect (``reason="too_long"``)
without parsing, and a reference that long is refused where it is read."""

_NUM = r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?|[-+−]?\.\d+"
NUM_RE = re.compile(_NUM)
_HASH_RE = re.compile(r"####\s*([^\n]*)")
_ANSWER_IS_RE = re.compile(r"answer\s*(?:is|:|=)\s*:?\s*([^\n]*)", re.IGNORECASE)
_GROUPS_RE = re.compile(r"(?<![\d.,])(\d{1,3})((?:[ \u00a0\u2009\u202f]\d{3})+)(?![\d/.,])")
_MIXED_RE = re.compile(r"^(-?)(\d+)\s+(\d+)\s*/\s*(\d+)$")
_NUMBER_RE = re.compile(r"^(?:" + _NUM + r")$")
_RANGE_RE = re.compile(r"^-?\d+(?:\.\d+)?\s*[-–]\s*\d+(?:\.\d+)?$")
_CONNECTOR_RE = re.compile(r"(?:\b(?:or|and|to|plus|minus|times)\b|[-–/~])\s*[-+]?\d", re.IGNORECASE)
_LATEX_RE = re.compile(r"\\(?:begin|end)\{[^}]*\}|\\[A-Za-z]+")
_WORD_RE = re.compile(r"[A-Za-z]{2,}")


@dataclass(frozen=True)
class LineAnswer:
    """What a text says its answer is: ``answer``, or (``answer`` None) why it is ambiguous (``problem``); ``text``
    is what it was read from (a ``####`` line's text, a boxed expression)."""

    answer: str | None
    problem: str | None = None
    text: str = ""


def clean(answer: str) -> str:
    """Normalise surface forms: currency and percent signs, thousands separators (outside brackets and LaTeX),
    trailing dots."""
    a = answer.strip().replace("−", "-")
    a = a.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    a = a.replace("\\!", "").replace("\\,", "")
    if not re.search(r"[([{\\]", a):  # a tuple, an interval or LaTeX keeps its commas: (12,102) is two numbers
        a = re.sub(r"(?<=\d),(?=\d{3}\b)", "", a)
    a = a.strip().rstrip(".").strip()
    a = a.removeprefix("+")
    return a


def _words(text: str) -> list[str]:
    """The words of ``text`` outside LaTeX commands (``\\frac``, ``\\sqrt`` are not words)."""
    return _WORD_RE.findall(_LATEX_RE.sub(" ", text))


def read_answer_line(line: str) -> LineAnswer:
    """The answer a ``#### ...`` line states, by the rule of the module docstring."""
    read = _read_line(line)
    return LineAnswer(read.answer, read.problem, line.strip())


def _read_line(line: str) -> LineAnswer:
    s = clean(line)
    if not re.search(r"[([{\\]", s):
        s = _GROUPS_RE.sub(lambda m: m.group(1) + re.sub(r"\D", "", m.group(2)), s)
    if "=" in s:
        s = clean(s.rsplit("=", 1)[1])
        if not s:
            return LineAnswer(None, "nothing follows its last '='")
    if not s:
        return LineAnswer(None, "it is empty")
    mixed = _MIXED_RE.match(s)
    if mixed:
        sign, whole, num, den = mixed.groups()
        if int(den) == 0 or int(num) >= int(den):
            return LineAnswer(None, f"{s!r} is neither a mixed number nor one number")
        value = (int(whole) + Fraction(int(num), int(den))) * (-1 if sign else 1)
        return LineAnswer(str(value))
    if _NUMBER_RE.match(s):
        return LineAnswer(clean(s))
    if _RANGE_RE.match(s):
        return LineAnswer(None, f"{s!r} reads as a range or as a difference")
    lead = NUM_RE.match(s)
    if lead:
        rest = s[lead.end():]
        if rest[:1].isspace() or rest[:1] in ",;:(":
            words = _words(rest)
            if words:
                if _CONNECTOR_RE.search(rest):
                    return LineAnswer(None, f"{s!r} joins its number to another one")
                return LineAnswer(clean(lead.group(0)))
            if re.fullmatch(r"[\s,;:]*[A-Za-z][\s.]*", rest):
                return LineAnswer(None, f"{s!r}: a number and a lone letter (a unit or a variable?)")
    numbers = NUM_RE.findall(s)
    if len(numbers) > 1 and re.fullmatch(r"(?:\s*(?:" + _NUM + r")\s*[,;]?)+", s):
        return LineAnswer(None, f"{s!r} holds several numbers")
    if numbers and _words(s):
        return LineAnswer(None, f"{s!r} mixes words and numbers and does not start with its number")
    return LineAnswer(s)


def reference_from_solution(solution: str) -> str:
    """The reference answer of a GSM8K-style solution: its last ``#### ...`` line, read by
    :func:`read_answer_line`.

    Raises
    ------
    ValueError
        If the solution has no ``####`` line, if that line is ambiguous (the message says why), or if its answer
        is longer than :data:`MAX_ANSWER_CHARS`.
    """
    hashes = _HASH_RE.findall(solution)
    if not hashes or not hashes[-1].strip():
        raise ValueError("solution has no '#### <answer>' line")
    read = read_answer_line(hashes[-1])
    if read.answer is None:
        raise ValueError(f"its '####' line is ambiguous: {read.problem}; write the one answer it means")
    if len(read.answer) > MAX_ANSWER_CHARS:
        raise ValueError(f"its answer is {len(read.answer):,} characters long, over MAX_ANSWER_CHARS = "
                         f"{MAX_ANSWER_CHARS}: no completion's answer could equal it")
    return read.answer


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def find_answer(completion: str) -> LineAnswer | None:
    """The final answer written in ``completion`` (None when it states none).

    Order of precedence: the last ``#### ...`` line (:func:`read_answer_line`; an ambiguous one is returned as
    such), the last ``\\boxed{X}``, the last "answer is X" (its first number), and finally the last number anywhere
    in the text.
    """
    hashes = _HASH_RE.findall(completion)
    if hashes and hashes[-1].strip():
        return read_answer_line(hashes[-1])
    boxed = _last_boxed(completion)
    if boxed is not None and boxed.strip():
        return LineAnswer(clean(boxed))
    said = _ANSWER_IS_RE.findall(completion)
    if said:
        m = NUM_RE.search(said[-1])
        if m is not None:
            return LineAnswer(clean(m.group(0)))
    nums = NUM_RE.findall(completion)
    if nums:
        return LineAnswer(clean(nums[-1]))
    return None


def extract_answer(completion: str) -> str | None:
    """The final answer written in ``completion`` as a string (:func:`find_answer`), or None when it states none or
    states it ambiguously."""
    found = find_answer(completion)
    return None if found is None else found.answer
