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

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DivergenceSpec:
    """What a divergence needs: nothing from the student, the acted token's log-prob, or the full row."""

    name: str
    needs_student: bool
    needs_full_student: bool


DIVERGENCES: dict[str, DivergenceSpec] = {
    "teacher_nll": DivergenceSpec("teacher_nll", False, False),
    "log_ratio": DivergenceSpec("log_ratio", True, False),
    "reverse_kl": DivergenceSpec("reverse_kl", True, True),
    "forward_kl": DivergenceSpec("forward_kl", True, True),
}


def get_divergence(name: str) -> DivergenceSpec:
    """Look up a divergence by name; unknown names raise ``ValueError`` listing the accepted ones."""
    try:
        return DIVERGENCES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown divergence {name!r}: expected one of {sorted(DIVERGENCES)}") from None


def _xlogx_diff(p_logp: torch.Tensor, q_logp: torch.Tensor) -> torch.Tensor:
    """sum_a p (log p - log q), treating 0 * anything as 0."""
    p = p_logp.exp()
    terms = torch.where(p > 0, p * (p_logp - q_logp), torch.zeros_like(p))
    return terms.sum(-1)


def divergence_cost(
    name: str,
    teacher_logp: torch.Tensor,
    actions: torch.Tensor,
    student_logp: torch.Tensor | None = None,
    student_token_logp: torch.Tensor | None = None,
) -> torch.Tensor:
    """Compute the per-token cost ``[B]`` in float32.

    Parameters
    ----------
    name : str
        One of :data:`DIVERGENCES`.
    teacher_logp : Tensor [B, V]
        Teacher log-probabilities for the next token at each state.
    actions : Tensor [B]
        The tokens taken.
    student_logp : Tensor [B, V], optional
        The acting student's log-probabilities (required by ``reverse_kl``/``forward_kl``; ``log_ratio``
        reads the taken token's entry if ``student_token_logp`` is not given).
    student_token_logp : Tensor [B], optional
        log pS(a|s) for the taken tokens (enough for ``log_ratio``).
    """
    spec = get_divergence(name)
    t = teacher_logp.float()
    a = actions.long().view(-1, 1)
    t_tok = t.gather(-1, a).squeeze(-1)
    if spec.name == "teacher_nll":
        return -t_tok
    if spec.needs_full_student and student_logp is None:
        raise ValueError(f"divergence {name!r} needs the student's full next-token log-probabilities")
    if spec.name == "log_ratio":
        if student_token_logp is None:
            if student_logp is None:
                raise ValueError("divergence 'log_ratio' needs the student's log-probability of the action")
            student_token_logp = student_logp.float().gather(-1, a).squeeze(-1)
        return student_token_logp.float().view(-1) - t_tok
    s = student_logp.float()
    if s.shape != t.shape:
        raise ValueError(f"student log-probs have shape {tuple(s.shape)}, teacher's {tuple(t.shape)}")
    if spec.name == "reverse_kl":
        return _xlogx_diff(s, t)
    return _xlogx_diff(t, s)
