"""Answer extraction and equivalence checking (the task reward's judge).

A completion is reduced to one final-answer string by :func:`extract_answer` (``#### N`` line, then
``\\boxed{...}``, then "the answer is ...", then the last number), and compared with the reference by
:func:`is_equivalent`: exact rational arithmetic when both sides are plain numbers (the common case, no
sympy), otherwise math-verify (symbolic equivalence) in a separate worker process that is killed after
``timeout`` seconds. A process, not math-verify's own signal alarm, because a hostile answer such as
``9^{9^{9^9}}`` blocks inside C code where no signal handler runs, and because signals only work in the
main thread. An answer that times out, or is longer than :data:`MAX_ANSWER_CHARS`, is judged incorrect and
the :class:`Verdict` says why.
"""

from __future__ import annotations

import atexit
import json
import re
import select
import subprocess
import sys
import threading
from dataclasses import dataclass
from fractions import Fraction

MAX_ANSWER_CHARS = 128
"""Extracted answers longer than this are judged incorrect (``reason="too_long"``) without parsing."""

DEFAULT_TIMEOUT = 5.0

_NUM = r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?|[-+−]?\.\d+"
_NUM_RE = re.compile(_NUM)
_PLAIN_NUMBER_RE = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:/\d+)?$")
_HASH_RE = re.compile(r"####\s*([^\n]*)")
_ANSWER_IS_RE = re.compile(r"answer\s*(?:is|:|=)\s*:?\s*([^\n]*)", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    """The judge's decision on one completion.

    Attributes
    ----------
    correct : bool
        True if the extracted answer equals the reference.
    extracted : str or None
        The final answer found in the completion (None if none was found).
    reason : str
        ``"equal"``, ``"not_equal"``, ``"no_answer"``, ``"too_long"``, ``"timeout"`` or ``"error"``.
    """

    correct: bool
    extracted: str | None
    reason: str


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


def _first_number(segment: str) -> str | None:
    m = _NUM_RE.search(segment)
    return m.group(0) if m else None


def _clean(answer: str) -> str:
    """Normalise surface forms: currency and percent signs, thousands separators, trailing dots."""
    a = answer.strip().replace("−", "-")
    a = a.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    a = a.replace("\\!", "").replace("\\,", "")
    a = re.sub(r"(?<=\d),(?=\d{3}\b)", "", a)
    a = a.strip().rstrip(".").strip()
    a = a.removeprefix("+")
    return a


def extract_answer(completion: str) -> str | None:
    """Return the final answer written in ``completion``, or None.

    Order of precedence: the last ``#### X`` line, the last ``\\boxed{X}``, the last "answer is X"
    (its first number), and finally the last number anywhere in the text.
    """
    hashes = _HASH_RE.findall(completion)
    if hashes and hashes[-1].strip():
        seg = _clean(hashes[-1])
        m = _NUM_RE.match(seg)
        if m and (m.end() == len(seg) or seg[m.end()].isspace()):  # "18" or "18 apples"
            return _clean(m.group(0))
        return seg
    boxed = _last_boxed(completion)
    if boxed is not None and boxed.strip():
        return _clean(boxed)
    said = _ANSWER_IS_RE.findall(completion)
    if said:
        num = _first_number(said[-1])
        if num is not None:
            return _clean(num)
    nums = _NUM_RE.findall(completion)
    if nums:
        return _clean(nums[-1])
    return None


def reference_from_solution(solution: str) -> str:
    """Read the reference answer from a GSM8K-style solution's ``#### N`` line.

    Raises
    ------
    ValueError
        If the solution has no ``####`` line.
    """
    hashes = _HASH_RE.findall(solution)
    if not hashes or not hashes[-1].strip():
        raise ValueError("solution has no '#### <answer>' line")
    return _clean(hashes[-1])


def _as_fraction(s: str) -> Fraction | None:
    s = s.replace(" ", "")
    if not _PLAIN_NUMBER_RE.match(s):
        return None
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


# --- math-verify in a killable worker process -------------------------------------------------------


class _VerifyWorker:
    """One long-lived ``python -m llm_cmdp_env._verify_worker`` child; killed and restarted on timeout.

    A plain subprocess (not multiprocessing) so that nothing re-imports the user's ``__main__``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    def _start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "llm_cmdp_env._verify_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def close(self) -> None:
        """Stop the child (at interpreter exit)."""
        if self._proc is not None and self._proc.poll() is None:
            try:
                if self._proc.stdin:
                    self._proc.stdin.close()
                self._proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
            if self._proc.stdout:
                self._proc.stdout.close()
        self._proc = None

    def check(self, pred: str, ref: str, timeout: float, startup_grace: float = 60.0) -> str:
        """Return "equal", "not_equal", "timeout" or "error"."""
        with self._lock:
            fresh = self._proc is None or self._proc.poll() is not None
            if fresh:
                self._kill()
                self._start()
            assert self._proc is not None and self._proc.stdin and self._proc.stdout
            try:
                self._proc.stdin.write(json.dumps([pred, ref]) + "\n")
                self._proc.stdin.flush()
            except OSError:
                self._kill()
                return "error"
            # The first call also pays for importing sympy in the child.
            wait = timeout + (startup_grace if fresh else 0.0)
            ready, _, _ = select.select([self._proc.stdout], [], [], wait)
            if not ready:
                self._kill()
                return "timeout"
            line = self._proc.stdout.readline()
            if not line:
                self._kill()
                return "error"
            return str(json.loads(line))


_WORKER = _VerifyWorker()
atexit.register(_WORKER.close)


def is_equivalent(prediction: str, reference: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[bool, str]:
    """Decide whether two answer strings are mathematically equal.

    Returns ``(equal, reason)``. Plain numbers (integers, decimals, ``a/b``) are compared exactly;
    anything else goes to math-verify with a hard ``timeout`` in seconds (then ``(False, "timeout")``).
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    pred, ref = _clean(prediction), _clean(reference)
    if len(pred) > MAX_ANSWER_CHARS:
        return False, "too_long"
    fp, fr = _as_fraction(pred), _as_fraction(ref)
    if fp is not None and fr is not None:
        return (fp == fr), ("equal" if fp == fr else "not_equal")
    if pred == ref:
        return True, "equal"
    reason = _WORKER.check(pred, ref, timeout)
    return reason == "equal", reason


def check_answer(completion: str, reference: str, timeout: float = DEFAULT_TIMEOUT) -> Verdict:
    """Extract the final answer from ``completion`` and compare it with ``reference``."""
    extracted = extract_answer(completion)
    if extracted is None:
        return Verdict(False, None, "no_answer")
    if len(extracted) > MAX_ANSWER_CHARS:
        return Verdict(False, extracted, "too_long")
    ok, reason = is_equivalent(extracted, reference, timeout=timeout)
    return Verdict(ok, extracted, reason)
