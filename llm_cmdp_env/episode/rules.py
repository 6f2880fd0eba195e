"""The env core: the one place the episode rules live, batched over ``n`` episodes.

:class:`DistillSetup` holds the validated configuration and the loaded models of a MathDistill env and
implements its rules once, for the single env (``n = 1``), the native vector env, the fast path and the agent:

- :meth:`~DistillSetup.start`: the problem, prompt ids and reset info of a new episode;
- :meth:`~DistillSetup.step_costs`: the per-token cost and teacher log-prob from the teacher's next-token
  log-probs and the acting policy's (attached log-probs are validated here, once for every caller);
- :meth:`~DistillSetup.is_done`: when an episode terminates (EOS) or is truncated (``max_new_tokens``);
- :meth:`~DistillSetup.judge`: the final reward and info of a finished completion;
- :meth:`~DistillSetup.outcome`: a step's end flags, reward and info from its costs (``is_done`` + ``judge``),
  the step rule the single env, the vector env and the side-by-side replay share;
- :meth:`~DistillSetup.score`: per-token costs of whole completions from one batched teacher forward.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces

from llm_cmdp_env.common.arrays import not_
from llm_cmdp_env.common.validation import check_positive_int, check_real
from llm_cmdp_env.divergences import divergence_cost, get_divergence
from llm_cmdp_env.episode.actions import parse_action
from llm_cmdp_env.judge.verify import DEFAULT_TIMEOUT, check_answer, prewarm, validate_timeout
from llm_cmdp_env.models.loading import (
    check_same_vocab,
    cut_output_vocab,
    eos_token_ids,
    load_model,
    load_tokenizer,
    max_positions,
)
from llm_cmdp_env.models.loading import vocab_size as model_vocab_size
from llm_cmdp_env.models.prompts import PromptFormatter
from llm_cmdp_env.scoring.logprobs import CompletionLogits
from llm_cmdp_env.tasks import Problem, load_task

__all__ = ["LOGPROB_MAX", "NORMALISATION_TOL", "DistillSetup", "ScoredCompletion", "StepOutcome"]

_PROMPT_CACHE_SIZE = 4096  # prompts kept encoded per env (an arithmetic prompt is ~100 ids)

LOGPROB_MAX = 1e-4
"""Largest attached log-probability accepted: log-probs are <= 0, up to float rounding."""

NORMALISATION_TOL = 1e-3
"""A full attached row must satisfy ``|logsumexp(row)| <= NORMALISATION_TOL`` (probabilities summing to 1 within
~0.1%). Rows computed in float32 by ``log_softmax`` are normalised to ~1e-6; compute bf16 rows in float32."""


#: Elements of one ``[tokens, V]`` float32 block the fast path's scoring writes at a time (256 MiB): a block of
#: whole completions whose tokens x vocabulary stays under this (at least one completion).
_CHUNK_ELEMENTS = 1 << 26


def _cat(parts: list[Any]) -> torch.Tensor:
    """Rows attached per completion, as one block (validated by the caller)."""
    return torch.cat([torch.as_tensor(p) for p in parts])


@dataclass
class ScoredCompletion:
    """Per-token ``cost`` and ``teacher_logprob`` of one completion (float64 arrays ``[T]``) and its ``tokens``."""

    tokens: np.ndarray
    cost: np.ndarray
    teacher_logprob: np.ndarray

    def __getitem__(self, key: str) -> np.ndarray:  # ``scored["cost"]`` reads like a dict of the arrays
        return getattr(self, key)


class StepOutcome(NamedTuple):
    """A step of the env after its costs: Python scalars for one env, arrays ``[n]`` for a batch of rows."""

    reward: Any  #: the judged reward (task + format reward) at an episode end, 0 elsewhere
    terminated: Any
    truncated: Any
    info: dict[str, Any]  #: ``cost``, ``task_reward`` and ``teacher_logprob``
    finals: dict[int, dict[str, Any]]  #: the judge's end-of-episode entries of the rows that ended, by row


class DistillSetup:
    """Validated configuration, loaded models and the episode rules of a MathDistill environment.

    Takes the env's keyword arguments (see :class:`~llm_cmdp_env.envs.math_distill.MathDistillEnv`).
    """

    def __init__(
        self,
        teacher: Any = "zoo:teacher",
        student: Any = None,
        dataset: Any = "arithmetic",
        split: str | None = None,
        divergence: str = "teacher_nll",
        max_new_tokens: int = 128,
        max_prompt_tokens: int = 512,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype | None = None,
        prompt_template: str = "auto",
        tokenizer: Any = None,
        verify_timeout: float = DEFAULT_TIMEOUT,
        format_reward: float = 0.0,
        model_kwargs: dict[str, Any] | None = None,
        vocab_size: int | None = None,
    ) -> None:
        self.divergence = get_divergence(divergence)
        self.max_new_tokens = check_positive_int(max_new_tokens, "max_new_tokens")
        self.max_prompt_tokens = check_positive_int(max_prompt_tokens, "max_prompt_tokens")
        self.verify_timeout = validate_timeout(verify_timeout, "verify_timeout")
        self.format_reward = check_real(format_reward, "format_reward")
        self.device = torch.device(device)

        self.task = load_task(dataset, split)
        mk = dict(model_kwargs or {})
        self.teacher = load_model(teacher, self.device, dtype, **mk)
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(teacher, **mk)
        self.student = load_model(student, self.device, dtype, **mk) if student is not None else None
        if vocab_size is not None:  # a teacher with padding rows past the shared tokenizer: keep the student's size
            n = check_positive_int(vocab_size, "vocab_size")
            if len(self.tokenizer) > n:
                raise ValueError(f"vocab_size={n} is smaller than the tokenizer ({len(self.tokenizer)} tokens): "
                                 "rows of real tokens cannot be cut")
            cut_output_vocab(self.teacher, n)
        self.vocab_size = model_vocab_size(self.teacher)
        if self.student is not None:
            check_same_vocab(self.teacher, self.student)
        if len(self.tokenizer) > self.vocab_size:
            raise ValueError(
                f"tokenizer has {len(self.tokenizer)} tokens but the teacher's vocabulary has {self.vocab_size}"
            )
        self.obs_length = self.max_prompt_tokens + self.max_new_tokens
        for role, model in (("teacher", self.teacher), ("student", self.student)):
            self._check_positions(role, model)
        self.eos_ids = eos_token_ids(self.teacher, self.tokenizer)
        self._eos_array = np.array(sorted(self.eos_ids), dtype=np.int64)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else min(self.eos_ids))
        self.prompts = PromptFormatter(self.tokenizer, prompt_template)
        # question -> prompt ids: the fast path encodes each prompt to score it and again in reset()
        self._prompt_cache: dict[str, list[int]] = {}
        self.observation_space = spaces.Dict(
            {
                "input_ids": spaces.Box(0, self.vocab_size - 1, (self.obs_length,), np.int64),
                "attention_mask": spaces.Box(0, 1, (self.obs_length,), np.int64),
            }
        )
        self.action_space = spaces.Discrete(self.vocab_size)
        prewarm()  # start the answer checker now, so the first episode's end does not wait for its start-up

    def _check_positions(self, role: str, model: Any) -> None:
        """Refuse, at construction, episodes longer than the model's position table (they would fail mid-episode)."""
        if model is None:
            return
        limit = max_positions(model)
        if limit is not None and self.obs_length > limit:
            raise ValueError(
                f"max_prompt_tokens + max_new_tokens = {self.max_prompt_tokens} + {self.max_new_tokens} = "
                f"{self.obs_length} exceeds the {role}'s {limit} positions; lower max_new_tokens or max_prompt_tokens"
            )

    @property
    def cost_lower_bound(self) -> float:
        """The least per-token cost the divergence can give: 0 for the non-negative ones (``teacher_nll``, the
        exact KLs), ``-inf`` for the sampled ``log_ratio``. Constraint factories refuse a budget below it
        (every episode would violate it)."""
        return 0.0 if self.divergence.nonnegative else float("-inf")

    # ------------------------------------------------------------------ the acting policy's log-probs
    @property
    def uses_student_model(self) -> bool:
        """True when the env itself runs the student (a student-dependent divergence and a student model)."""
        return self.student is not None and self.divergence.needs_student

    def missing_student_message(self) -> str:
        return (
            f"divergence {self.divergence.name!r} needs the acting student's distribution: pass "
            "student=<the model your policy is> to the env, or step with "
            "TokenAction(token, logprobs=...) carrying the policy's log-probs"
        )

    def student_logprobs(
        self,
        device: torch.device,
        rows: int,
        full: Any = None,
        token: Any = None,
        from_model: Callable[[], torch.Tensor] | None = None,
        select: tuple[torch.Tensor, int] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The acting policy's log-probs for the divergence, as ``(full rows [rows, V], taken-token [rows])``.

        Sources in order: ``full`` rows attached by the agent, ``token`` log-probs attached (enough only
        for ``log_ratio``), the env's own student model (``from_model``, called lazily). None of them for a
        student-dependent divergence is an error, never a fallback to another model. ``(None, None)`` when
        the divergence does not depend on the student. ``select = (index, total)``: the attached arrays hold
        ``total`` rows (every sub-env) and ``index`` picks those that stepped. Attached values are validated
        (:meth:`check_attached`).
        """
        if not self.divergence.needs_student:
            return None, None
        if full is not None:
            x = torch.as_tensor(full, device=device).float()
            if select is None:
                return self.check_attached(x.reshape(-1, x.shape[-1]) if x.ndim == 1 else x, rows, True), None
            return self.check_attached(self._shape(x, (select[1], self.vocab_size))[select[0]], rows, True), None
        if token is not None and not self.divergence.needs_full_student:
            x = torch.as_tensor(token, device=device).float()
            if select is None:
                return None, self.check_attached(x.reshape(-1) if x.ndim == 0 else x, rows, False)
            return None, self.check_attached(self._shape(x, (select[1],))[select[0]], rows, False)
        if from_model is not None:
            return from_model(), None
        raise ValueError(self.missing_student_message())

    @staticmethod
    def _shape(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        if tuple(x.shape) != shape:
            raise ValueError(f"attached log-probs must have shape {shape} (one per sub-env), got {tuple(x.shape)}")
        return x

    def check_attached(self, x: torch.Tensor, rows: int, full: bool) -> torch.Tensor:
        """Validate log-probs attached by the agent: ``[rows, V]`` rows (``full``) or ``[rows]`` taken-token values.

        Each value must be a log-probability: not NaN, not +inf, at most :data:`LOGPROB_MAX`; a taken token's
        log-prob must also be finite (the policy chose it). A full row may hold ``-inf`` (tokens the policy never
        picks) but must be normalised: ``|logsumexp(row)| <= NORMALISATION_TOL``. One vectorised pass, no
        per-row Python. Raises ``ValueError`` naming the first bad row and what is wrong with it.
        """
        what = "TokenAction.logprobs (full next-token log-probs)" if full else "the attached logprob of the action"
        shape = (rows, self.vocab_size) if full else (rows,)
        if tuple(x.shape) != shape:
            raise ValueError(f"{what} must have shape {shape}, got {tuple(x.shape)}")
        bad = torch.isnan(x) | (x > LOGPROB_MAX)
        if not full:
            bad |= torch.isinf(x)
        else:
            lse = torch.logsumexp(x, dim=-1)
            bad_rows = (lse - 0.0).abs() > NORMALISATION_TOL  # also NaN-safe: nan > tol is False, isnan caught
        if bool(bad.any()) or (full and bool(bad_rows.any())):
            raise ValueError(self._attached_error(x, what, full))
        return x

    @staticmethod
    def _attached_error(x: torch.Tensor, what: str, full: bool) -> str:
        rows = x.reshape(x.shape[0], -1)
        for i, r in enumerate(rows):
            problems = []
            if torch.isnan(r).any():
                problems.append(f"{int(torch.isnan(r).sum())} NaN")
            if (r == float("inf")).any():
                problems.append("+inf")
            if not full and (r == float("-inf")).any():
                problems.append("-inf (a token the policy could not have chosen)")
            over = r[r.isfinite() & (r > LOGPROB_MAX)]
            if over.numel():
                problems.append(f"positive values up to {float(over.max()):.4g} (logits, not log-probs?)")
            if full and not problems:
                lse = float(torch.logsumexp(r, -1))
                if abs(lse) > NORMALISATION_TOL:
                    problems.append(f"probabilities summing to exp({lse:.4g}) instead of 1 "
                                    f"(|logsumexp| > {NORMALISATION_TOL}; pass log_softmax of the logits)")
            if problems:
                return f"{what}, row {i}: " + ", ".join(problems)
        return f"{what}: invalid values"

    # ------------------------------------------------------------------ the episode rules
    def step_costs(
        self,
        teacher_logp: torch.Tensor | None,
        tokens: Sequence[int] | np.ndarray | torch.Tensor,
        full: Any = None,
        token: Any = None,
        from_model: Callable[[], torch.Tensor] | None = None,
        select: tuple[torch.Tensor, int] | None = None,
        teacher_token_logp: torch.Tensor | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-step ``(cost, teacher log-prob of the token)`` as float64 arrays ``[n]``.

        ``teacher_logp`` is ``[n, V]`` (the teacher's next-token log-probs at each state), ``tokens`` ``[n]`` the
        tokens taken; the acting policy's log-probs come from ``full``/``token``/``from_model`` as in
        :meth:`student_logprobs` (``select``: rows out of attached arrays given for every sub-env). A divergence
        that needs only the taken token's teacher log-prob may get ``teacher_token_logp`` instead of the rows.
        """
        given = teacher_logp if teacher_logp is not None else teacher_token_logp
        assert given is not None
        dev = given.device
        acts = torch.as_tensor(tokens, device=dev).long().reshape(-1)
        if teacher_token_logp is None:
            assert teacher_logp is not None
            teacher_token_logp = teacher_logp.gather(-1, acts[:, None])[:, 0].float()
        s_full, s_tok = self.student_logprobs(dev, len(acts), full, token, from_model, select)
        cost = divergence_cost(self.divergence.name, teacher_logp, acts, s_full, s_tok, teacher_token_logp)
        both = torch.stack([cost.double(), teacher_token_logp.double()]).cpu().numpy()  # one device-to-host copy
        return both[0], both[1]

    def is_done(self, token: Any, length: Any) -> tuple[Any, Any]:
        """``(terminated, truncated)`` after appending ``token`` as the ``length``-th generated token: terminated
        on an EOS id, truncated at ``max_new_tokens`` otherwise. Python ints (one env) or int arrays (a batch)."""
        terminated = np.isin(token, self._eos_array) if isinstance(token, np.ndarray) else token in self.eos_ids
        return terminated, not_(terminated) & (length >= self.max_new_tokens)

    def outcome(self, token: Any, length: Any, cost: Any, teacher_logprob: Any,
                completion: Callable[[int], tuple[Problem, list[int]]]) -> StepOutcome:
        """The step rule after the costs: ``token`` was appended as the ``length``-th generated token (Python
        scalars for one env, arrays for rows of a batch); an episode that ends is judged on ``completion(row)``,
        its problem and generated ids (row 0 for one env)."""
        terminated, truncated = self.is_done(token, length)
        batch = isinstance(token, np.ndarray)
        reward: Any = np.zeros(len(token)) if batch else 0.0
        task: Any = np.zeros(len(token)) if batch else 0.0
        ended = np.flatnonzero(terminated | truncated).tolist() if batch else [0] * bool(terminated or truncated)
        finals: dict[int, dict[str, Any]] = {}
        for r in ended:
            r_reward, finals[r] = self.judge(*completion(r))
            if batch:
                reward[r], task[r] = r_reward, finals[r]["task_reward"]
            else:
                reward, task = r_reward, finals[r]["task_reward"]
        # one env's cost is a numpy float64 (a float, and a numpy scalar: what torchrl's info readers take)
        info = {"cost": cost if batch else np.float64(cost), "task_reward": task, "teacher_logprob": teacher_logprob}
        return StepOutcome(reward, terminated, truncated, info, finals)

    def start(self, option: Any, rng: np.random.Generator) -> tuple[Problem, list[int], dict[str, Any]]:
        """A new episode: its problem (``option``: a Problem, an index, or None to draw with ``rng``), prompt ids
        and reset info."""
        problem = self.pick_problem(option, rng)
        ids = self.encode_problem(problem)
        info = {"question": problem.question, "reference": problem.answer,
                "problem_index": problem.index, "prompt_length": len(ids)}
        return problem, ids, info

    def encode_problem(self, problem: Problem) -> list[int]:
        """Token ids of the prompt for ``problem`` (raises if longer than ``max_prompt_tokens``)."""
        ids = self._prompt_cache.get(problem.question)
        if ids is None:
            if not isinstance(problem.question, str):
                raise TypeError(f"question of problem {problem.index} ({problem.source}) must be a string, got "
                                f"{type(problem.question).__name__}")
            chars, per_token = len(problem.question), self.prompts.max_token_chars
            if chars > self.max_prompt_tokens * per_token:  # checked before tokenising: time and memory stay bounded
                raise ValueError(
                    f"question of problem {problem.index} ({problem.source}) has {chars:,} characters: more than "
                    f"max_prompt_tokens={self.max_prompt_tokens} tokens of at most {per_token} characters each can "
                    "hold; shorten it or raise max_prompt_tokens")
            try:
                problem.question.encode("utf-8")
            except UnicodeEncodeError as e:
                raise ValueError(f"question of problem {problem.index} ({problem.source}) is not valid Unicode text "
                                 f"({problem.question[e.start]!r} at character {e.start}: a lone surrogate)") from None
            ids = self.prompts.encode(problem.question)
            if len(self._prompt_cache) >= _PROMPT_CACHE_SIZE:
                self._prompt_cache.pop(next(iter(self._prompt_cache)))  # oldest first
            self._prompt_cache[problem.question] = ids
        ids = list(ids)  # callers may append to their copy
        if len(ids) > self.max_prompt_tokens:
            raise ValueError(
                f"prompt of problem {problem.index} ({problem.source}) has {len(ids)} tokens, more than "
                f"max_prompt_tokens={self.max_prompt_tokens}; raise max_prompt_tokens"
            )
        if not ids:
            raise ValueError(f"prompt of problem {problem.index} ({problem.source}) encodes to no tokens")
        return ids

    def encode_solution(self, problem: Problem) -> list[int]:
        """The problem's reference solution as a completion the env accepts: its tokens then EOS, cut to
        ``max_new_tokens`` (a cut one ends at the limit, like a truncated episode). The off-policy data of
        distillation baselines (GKD's ``lmbda < 1``); raises when the problem has no solution."""
        if not problem.solution:
            raise ValueError(f"problem {problem.index} ({problem.source}) has no reference solution")
        eos = self.tokenizer.eos_token_id
        ids = self.prompts.encode_solution(problem.solution) + [int(eos if eos is not None else min(self.eos_ids))]
        return ids[: self.max_new_tokens]

    def pick_problem(self, option: Any, rng: np.random.Generator) -> Problem:
        """The problem for a reset: ``option`` (a Problem or an index in ``[0, len(task))``) or one drawn with
        ``rng``."""
        if option is None:
            return self.task.sample(rng)
        if isinstance(option, (int, np.integer)) and not isinstance(option, (bool, np.bool_)):
            n = len(self.task)
            if not 0 <= option < n:
                raise IndexError(f"problem index {int(option)} is out of range: the dataset has {n} problems "
                                 f"(indices 0..{n - 1})")
            return self.task[int(option)]
        if isinstance(option, Problem):
            return option
        raise TypeError(f"options['problem'] must be a Problem or an int index, got {type(option).__name__}")

    @staticmethod
    def reset_options(options: Any, accepted: tuple[str, ...]) -> dict[str, Any]:
        """``options`` of a reset as a dict, after checking it is a mapping with only ``accepted`` keys."""
        if options is None:
            return {}
        if not isinstance(options, Mapping):
            raise TypeError(f"reset options must be a dict (keys {list(accepted)}), got {type(options).__name__}")
        unknown = set(options) - set(accepted)
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; accepted: {list(accepted)}")
        return dict(options)

    def judge(self, problem: Problem, generated: list[int]) -> tuple[float, dict[str, Any]]:
        """Final reward and the end-of-episode info entries for a finished completion."""
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        verdict = check_answer(text, problem.answer, timeout=self.verify_timeout)
        task_reward = 1.0 if verdict.correct else 0.0
        fmt = self.format_reward if (self.format_reward and "####" in text) else 0.0
        info = {
            "task_reward": task_reward,
            "format_reward": fmt,
            "correct": verdict.correct,
            "extracted_answer": verdict.extracted,
            "reference": problem.answer,
            "verdict": verdict.reason,
            "completion": text,
            "length": len(generated),
        }
        return task_reward + fmt, info

    # ------------------------------------------------------------------ whole completions
    def check_tokens(self, completion: Sequence[Any] | np.ndarray | torch.Tensor) -> list[int]:
        """``completion`` as validated token ids: one vectorised range check for an integer sequence, the
        action check (with its precise error) token by token for anything else."""
        if isinstance(completion, (np.ndarray, torch.Tensor)):
            arr = completion.cpu().numpy() if isinstance(completion, torch.Tensor) else completion
            ok = arr.ndim == 1 and arr.dtype != np.bool_ and np.issubdtype(arr.dtype, np.integer)
            ids = arr.tolist() if ok else None
        else:  # plain ints only (a bool or a float in a list must get the per-token error, not be converted)
            ids = list(completion) if all(type(x) is int for x in completion) else None
        if ids is not None and (not ids or (min(ids) >= 0 and max(ids) < self.vocab_size)):
            return ids
        return [parse_action(x, self.vocab_size).token for x in completion]

    def check_completion(self, tokens: Sequence[int], index: int = 0) -> None:
        """Refuse a completion the episode rules could not have produced: empty, longer than
        ``max_new_tokens``, continuing after an EOS, or stopping before EOS and the length limit."""
        n = len(tokens)
        if not 1 <= n <= self.max_new_tokens:
            raise ValueError(f"each completion must have 1..{self.max_new_tokens} tokens, completion {index} has {n}")
        ends = np.flatnonzero(np.isin(np.asarray(tokens, dtype=np.int64), self._eos_array))
        if len(ends) and ends[0] != n - 1:
            raise ValueError(f"completion {index} continues after the episode ended at token {ends[0]} (EOS inside)")
        if not len(ends) and n != self.max_new_tokens:
            raise ValueError(f"completion {index} of {n} tokens ends without EOS before "
                             f"max_new_tokens={self.max_new_tokens}")

    def score(
        self,
        problems: Sequence[Problem],
        completions: Sequence[Sequence[int]],
        student_logprobs: Sequence[Any] | None = None,
        student_token_logprobs: Sequence[Any] | None = None,
    ) -> list[ScoredCompletion]:
        """Per-token costs and teacher log-probs of each completion, from one batched forward of the teacher (and
        of the env's student model, when a student-dependent divergence needs it and no log-probs are given).
        ``student_logprobs[i]`` is ``[T_i, V]``; ``student_token_logprobs[i]`` is ``[T_i]``."""
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        for name, given in (("student_logprobs", student_logprobs), ("student_token_logprobs", student_token_logprobs)):
            if given is not None and len(given) != len(completions):
                raise ValueError(f"{name} has {len(given)} entries for {len(completions)} completions")
        tokens = []
        for i, c in enumerate(completions):
            t = self.check_tokens(c)
            if not 1 <= len(t) <= self.max_new_tokens:
                raise ValueError(f"each completion must have 1..{self.max_new_tokens} tokens, completion {i} "
                                 f"has {len(t)}")
            tokens.append(t)
        prompts = [self.encode_problem(p) for p in problems]
        need_model = self.divergence.needs_student and student_logprobs is None and not (
            student_token_logprobs is not None and not self.divergence.needs_full_student
        )
        if need_model and self.student is None:
            raise ValueError(self.missing_student_message())
        teacher = CompletionLogits(self.teacher, prompts, tokens, self.pad_id)
        student = CompletionLogits(self.student, prompts, tokens, self.pad_id) if need_model else None
        acts = torch.as_tensor([t for row in tokens for t in row], dtype=torch.long, device=teacher.device)
        rows_needed = self.divergence.needs_teacher_row
        costs, t_toks = [], []
        for rows, lo, hi in teacher.chunks(_CHUNK_ELEMENTS):
            logits = teacher.logits(lo, hi)
            if rows_needed:
                t_logp, t_tok = torch.log_softmax(logits.float(), dim=-1), None
            else:  # the taken token's log-prob only: no [tokens, V] log-softmax is written
                t_logp = None
                t_tok = logits.gather(-1, acts[lo:hi, None])[:, 0].float() - torch.logsumexp(logits.float(), dim=-1)
            cost, tt = self.step_costs(
                t_logp, acts[lo:hi],
                None if student_logprobs is None else _cat([student_logprobs[i] for i in rows]),
                None if student_token_logprobs is None else _cat([student_token_logprobs[i] for i in rows]),
                (lambda lo=lo, hi=hi: torch.log_softmax(student.logits(lo, hi).float(), dim=-1))
                if student is not None else None,
                teacher_token_logp=t_tok,
            )
            costs.append(cost)
            t_toks.append(tt)
        cuts = np.cumsum([len(t) for t in tokens])[:-1]
        return [ScoredCompletion(np.asarray(t, dtype=np.int64), c, tt) for t, c, tt in
                zip(tokens, np.split(np.concatenate(costs), cuts), np.split(np.concatenate(t_toks), cuts))]
