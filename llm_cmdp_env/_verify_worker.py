"""Child process of :mod:`llm_cmdp_env.verify`: reads ``[pred, ref]`` JSON lines, answers a JSON string.

Runs math-verify without its signal-based timeout; the parent enforces the time limit by killing us.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    """Serve requests on stdin until EOF."""
    from math_verify import parse, verify

    for line in sys.stdin:
        pred, ref = json.loads(line)
        try:
            gold = parse(f"${ref}$", parsing_timeout=None)
            target = parse(f"${pred}$", parsing_timeout=None)
            ok = bool(gold) and bool(target) and verify(gold, target, timeout_seconds=None)
            answer = "equal" if ok else "not_equal"
        except Exception:  # noqa: BLE001 - any failure of the symbolic judge counts as "incorrect"
            answer = "error"
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
