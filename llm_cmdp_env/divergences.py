"""Per-token costs: how far the student's step is from the frozen teacher.

All functions work on batches: ``teacher_logp`` is ``[B, V]`` (log-softmax of the teacher's next-token
logits), ``actions`` is ``[B]``. Estimator caveats (also in the README):

- ``teacher_nll``  c = -log pT(a|s). Depends only on (s, a): a true CMDP cost, any algorithm may use it.
- ``log_ratio``    c = log pS(a|s) - log pT(a|s). A one-sample estimate of the reverse KL; unbiased in
  expectation over a ~ pS but single values can be negative. Needs log pS(a|s) of the acting policy.
- ``reverse_kl``   c = sum_a pS(a|s) (log pS(a|s) - log pT(a|s)). Exact per-step reverse KL (>= 0); it
  does not depend on the sampled token. Needs the full student distribution.
- ``forward_kl``   c = sum_a pT(a|s) (log pT(a|s) - log pS(a|s)). Exact per-step forward KL (>= 0);
  infinite where the student gives zero mass to a teacher token. Needs the full student distribution.

The student-dependent costs describe the policy that acted: they must come from that policy's own
distribution (attached to the action by the agent, or from the ``student`` model given to the env).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # light to import (the command line lists the names): torch is imported where a cost is computed
    import torch

#: ``cost(teacher_logp [B, V], actions [B], teacher_token_logp [B], student_logp [B, V] | None,
#: student_token_logp [B] | None) -> cost [B]`` (float32 tensors).
CostFn = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor", "torch.Tensor | None", "torch.Tensor | None"],
                  "torch.Tensor"]


@dataclass(frozen=True)
class DivergenceSpec:
    """A per-token cost by name: what it needs from the student (nothing, the acted token's log-prob, or the full
    row), whether it needs the teacher's full row (else only the taken token's log-prob, which a scorer can get
    without writing a ``[tokens, V]`` log-softmax), whether it is never negative (so a negative budget is refused
    at construction), and the function computing it."""

    name: str
    needs_student: bool
    needs_full_student: bool
    cost: CostFn
    needs_teacher_row: bool = True
    nonnegative: bool = False  # every cost >= 0 (an NLL or an exact KL): a budget below 0 can never be met


def _xlogx_diff(p_logp: torch.Tensor, q_logp: torch.Tensor) -> torch.Tensor:
    """sum_a p (log p - log q), treating 0 * anything as 0."""
    import torch

    p = p_logp.exp()
    terms = torch.where(p > 0, p * (p_logp - q_logp), torch.zeros_like(p))
    return terms.sum(-1)


def _teacher_nll(t: torch.Tensor, a: torch.Tensor, t_tok: torch.Tensor, s: Any, s_tok: Any) -> torch.Tensor:
    return -t_tok


def _log_ratio(t: torch.Tensor, a: torch.Tensor, t_tok: torch.Tensor, s: Any, s_tok: Any) -> torch.Tensor:
    if s_tok is None:
        if s is None:
            raise ValueError("divergence 'log_ratio' needs the student's log-probability of the action")
        s_tok = s.gather(-1, a[:, None]).squeeze(-1)
    return s_tok.float().view(-1) - t_tok


def _reverse_kl(t: torch.Tensor, a: torch.Tensor, t_tok: torch.Tensor, s: torch.Tensor, s_tok: Any) -> torch.Tensor:
    return _xlogx_diff(s, t)


def _forward_kl(t: torch.Tensor, a: torch.Tensor, t_tok: torch.Tensor, s: torch.Tensor, s_tok: Any) -> torch.Tensor:
    return _xlogx_diff(t, s)


DIVERGENCES: dict[str, DivergenceSpec] = {
    "teacher_nll": DivergenceSpec("teacher_nll", False, False, _teacher_nll, needs_teacher_row=False,
                                  nonnegative=True),
    "log_ratio": DivergenceSpec("log_ratio", True, False, _log_ratio, needs_teacher_row=False),  # sampled: any sign
    "reverse_kl": DivergenceSpec("reverse_kl", True, True, _reverse_kl, nonnegative=True),
    "forward_kl": DivergenceSpec("forward_kl", True, True, _forward_kl, nonnegative=True),
}


def register_divergence(name: str, cost: CostFn, *, needs_student: bool, needs_full_student: bool = False,
                        needs_teacher_row: bool = True, nonnegative: bool = False) -> None:
    """Make ``cost`` available as ``divergence=name`` (see :data:`CostFn` for its arguments). A student-dependent
    cost reads the acting policy's log-probs, which the env takes from the action or its ``student`` model. A cost
    of the taken token alone (``needs_teacher_row=False``) may receive ``teacher_logp=None``."""
    if needs_full_student and not needs_student:
        raise ValueError("needs_full_student implies needs_student")
    DIVERGENCES[name] = DivergenceSpec(name, needs_student, needs_full_student, cost, needs_teacher_row, nonnegative)


def get_divergence(name: str) -> DivergenceSpec:
    """Look up a divergence by name; unknown names raise ``ValueError`` listing the accepted ones."""
    try:
        return DIVERGENCES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown divergence {name!r}: expected one of {sorted(DIVERGENCES)}") from None


def divergence_cost(
    name: str,
    teacher_logp: torch.Tensor | None,
    actions: torch.Tensor,
    student_logp: torch.Tensor | None = None,
    student_token_logp: torch.Tensor | None = None,
    teacher_token_logp: torch.Tensor | None = None,
) -> torch.Tensor:
    """Compute the per-token cost ``[B]`` in float32.

    Parameters
    ----------
    name : str
        One of :data:`DIVERGENCES`.
    teacher_logp : Tensor [B, V] or None
        Teacher log-probabilities for the next token at each state (may be None, with ``teacher_token_logp``,
        for a divergence that does not need the teacher's row).
    actions : Tensor [B]
        The tokens taken.
    student_logp : Tensor [B, V], optional
        The acting student's log-probabilities (required by ``reverse_kl``/``forward_kl``; ``log_ratio``
        reads the taken token's entry if ``student_token_logp`` is not given).
    student_token_logp : Tensor [B], optional
        log pS(a|s) for the taken tokens (enough for ``log_ratio``).
    teacher_token_logp : Tensor [B], optional
        log pT(a|s) of the taken tokens, when the caller has it (then ``teacher_logp`` is not read for it).
    """
    spec = get_divergence(name)
    a = actions.long().view(-1)
    t = None if teacher_logp is None else teacher_logp.float()
    if t is None and spec.needs_teacher_row:
        raise ValueError(f"divergence {name!r} needs the teacher's full next-token log-probabilities")
    if teacher_token_logp is not None:
        t_tok = teacher_token_logp.float().view(-1)
    elif t is not None:
        t_tok = t.gather(-1, a[:, None]).squeeze(-1)
    else:
        raise ValueError("divergence_cost needs teacher_logp or teacher_token_logp")
    s = None if student_logp is None else student_logp.float()
    if spec.needs_full_student:
        if s is None:
            raise ValueError(f"divergence {name!r} needs the student's full next-token log-probabilities")
        if t is not None and s.shape != t.shape:
            raise ValueError(f"student log-probs have shape {tuple(s.shape)}, teacher's {tuple(t.shape)}")
    return spec.cost(t, a, t_tok, s, student_token_logp)
