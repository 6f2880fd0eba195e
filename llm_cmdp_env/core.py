"""What the single and the vector env share: models, tokenizer, task, spaces, prompts and the final judge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from llm_cmdp_env.divergences import get_divergence
from llm_cmdp_env.models import check_same_vocab, eos_token_ids, load_model, load_tokenizer, vocab_size
from llm_cmdp_env.prompts import PromptFormatter
from llm_cmdp_env.tasks import Problem, load_task
from llm_cmdp_env.verify import DEFAULT_TIMEOUT, check_answer

_PROMPT_CACHE_SIZE = 4096  # prompts kept encoded per env (an arithmetic prompt is ~100 ids)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class DistillSetup:
    """Validated configuration and loaded models of a MathDistill environment.

    Takes the env's keyword arguments (see :class:`~llm_cmdp_env.envs.math_distill.MathDistillEnv`).
    """

    def __init__(
        self,
        teacher: Any = "zoo:teacher",
        student: Any = None,
        dataset: Any = "arithmetic",
        split: str = "train",
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
    ) -> None:
        self.divergence = get_divergence(divergence)
        self.max_new_tokens = _positive_int("max_new_tokens", max_new_tokens)
        self.max_prompt_tokens = _positive_int("max_prompt_tokens", max_prompt_tokens)
        if not verify_timeout > 0:
            raise ValueError(f"verify_timeout must be > 0 seconds, got {verify_timeout!r}")
        self.verify_timeout = float(verify_timeout)
        self.format_reward = float(format_reward)
        self.device = torch.device(device)

        self.task = load_task(dataset, split)
        mk = dict(model_kwargs or {})
        self.teacher = load_model(teacher, self.device, dtype, **mk)
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(teacher, **mk)
        self.student = load_model(student, self.device, dtype, **mk) if student is not None else None
        self.vocab_size = vocab_size(self.teacher)
        if self.student is not None:
            check_same_vocab(self.teacher, self.student)
        if len(self.tokenizer) > self.vocab_size:
            raise ValueError(
                f"tokenizer has {len(self.tokenizer)} tokens but the teacher's vocabulary has {self.vocab_size}"
            )
        self.eos_ids = eos_token_ids(self.teacher, self.tokenizer)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else min(self.eos_ids))
        self.prompts = PromptFormatter(self.tokenizer, prompt_template)
        # question -> prompt ids: the fast path encodes each prompt to score it and again in reset()
        self._prompt_cache: dict[str, list[int]] = {}
        self.obs_length = self.max_prompt_tokens + self.max_new_tokens
        self.observation_space = spaces.Dict(
            {
                "input_ids": spaces.Box(0, self.vocab_size - 1, (self.obs_length,), np.int64),
                "attention_mask": spaces.Box(0, 1, (self.obs_length,), np.int64),
            }
        )
        self.action_space = spaces.Discrete(self.vocab_size)

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
        full: Any = None,
        token: Any = None,
        from_model: Callable[[], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The acting policy's log-probs for the divergence, as ``(full rows, taken-token log-probs)``.

        Sources in order: ``full`` rows attached by the agent, ``token`` log-probs attached (enough only
        for ``log_ratio``), the env's own student model (``from_model``, called lazily). None of them for a
        student-dependent divergence is an error, never a fallback to another model. ``(None, None)`` when
        the divergence does not depend on the student.
        """
        if not self.divergence.needs_student:
            return None, None
        if full is not None:
            return torch.as_tensor(full, device=device).float(), None
        if token is not None and not self.divergence.needs_full_student:
            return None, torch.as_tensor(token, device=device).float()
        if from_model is not None:
            return from_model(), None
        raise ValueError(self.missing_student_message())

    def encode_problem(self, problem: Problem) -> list[int]:
        """Token ids of the prompt for ``problem`` (raises if longer than ``max_prompt_tokens``)."""
        ids = self._prompt_cache.get(problem.question)
        if ids is None:
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
        return ids

    def pick_problem(self, option: Any, rng: np.random.Generator) -> Problem:
        """The problem for a reset: ``option`` (a Problem or an index) or one drawn with ``rng``."""
        if option is None:
            return self.task.sample(rng)
        if isinstance(option, (int, np.integer)) and not isinstance(option, bool):
            return self.task[int(option)]
        if isinstance(option, Problem):
            return option
        raise TypeError(f"options['problem'] must be a Problem or an int index, got {type(option).__name__}")

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
