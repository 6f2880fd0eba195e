"""``MathDistill-v0``: token-level generation of a math solution as a constrained MDP.

State: prompt + tokens generated so far. Action: the next token. Reward: at the end of the episode, 1 if
the final answer equals the reference (math-verify), else 0. Cost (``info["cost"]``): a per-token
divergence of the student from a frozen teacher (see :mod:`llm_cmdp_env.divergences`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from llm_cmdp_env.episode.actions import TokenAction, parse_action
from llm_cmdp_env.episode.rules import DistillSetup, ScoredCompletion
from llm_cmdp_env.scoring.logprobs import IncrementalScorer
from llm_cmdp_env.tasks import Problem


class MathDistillEnv(gym.Env):
    """A student writes a solution token by token; reward = correct final answer; cost = divergence.

    Parameters
    ----------
    teacher : str, path or model
        The frozen teacher: ``"zoo:teacher"`` (shipped, default), a Hugging Face id or local path, or a
        loaded ``PreTrainedModel``.
    student : str, path, model or None
        The acting student, needed only when a student-dependent divergence is chosen and the agent does
        not attach its own log-probs to the action (:class:`~llm_cmdp_env.episode.actions.TokenAction`). Must
        share the teacher's vocabulary. Pass the very model your algorithm trains.
    dataset : str, path or task
        ``"arithmetic"`` (procedural, default), ``"gsm8k"``, ``"math500"`` (found by name in the data folder,
        see docs/data.md), a jsonl file or a folder of ``<split>.jsonl`` files, or a task object.
    split : str, optional
        ``"train"`` or ``"test"``; None is the dataset's default (train; MATH-500's only split, test; a
        file path's own data).
    divergence : str
        ``"teacher_nll"`` (default), ``"log_ratio"``, ``"reverse_kl"`` or ``"forward_kl"``.
    max_new_tokens : int
        Episode length limit; reaching it truncates the episode.
    max_prompt_tokens : int
        Longest prompt accepted (observations have length ``max_prompt_tokens + max_new_tokens``). A
        longer prompt is an error, never silently cut. The sum must fit the teacher's (and student's)
        position table: checked at construction.
    device : str
        Torch device for the models (``"cpu"``, ``"cuda"``, ...).
    dtype : str or torch.dtype, optional
        Model dtype when loading by name (e.g. ``"bfloat16"``); scoring is done in this dtype, costs are
        returned in float32.
    prompt_template : str
        ``"auto"`` (chat template for instruct models, ``"Question: ...\\nAnswer:"`` otherwise), ``"chat"``,
        ``"plain"``, or a format string containing ``{question}``.
    tokenizer : tokenizer, optional
        Overrides the tokenizer loaded with the teacher.
    verify_timeout : float
        Seconds the answer check may take before the answer is judged incorrect (finite, in (0, 3600]).
    format_reward : float
        Added to the reward (and reported as ``info["format_reward"]``) when the completion states its
        answer on a ``#### N`` line; 0 by default.
    model_kwargs : dict, optional
        Extra ``from_pretrained`` arguments for teacher, student and tokenizer loaded by name (e.g.
        ``{"gguf_file": "model.Q4_1.gguf"}``).
    vocab_size : int, optional
        Cut the teacher's output layer to its first ``vocab_size`` rows: for a teacher whose rows past the shared
        tokenizer are padding and outnumber the student's (Qwen2.5-Math-7B has 152,064, the 1.5B 151,936). The
        teacher's distribution is then renormalised over the kept rows; rows of real tokens are never cut.
    render_mode : str, optional
        ``"ansi"`` (``render()`` returns the text) or ``"human"`` (prints it).
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 4}

    def __init__(self, *, render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        self.render_mode = render_mode
        self.setup = DistillSetup(**kwargs)  # the keyword arguments above, validated in one place
        su = self.setup
        self.task, self.teacher, self.student, self.tokenizer = su.task, su.teacher, su.student, su.tokenizer
        self.divergence, self.vocab_size, self.eos_ids, self.pad_id = (
            su.divergence, su.vocab_size, su.eos_ids, su.pad_id)
        self.max_new_tokens, self.max_prompt_tokens = su.max_new_tokens, su.max_prompt_tokens
        self.cost_lower_bound = su.cost_lower_bound
        self.max_episode_steps = su.max_new_tokens  # the horizon, declared for the wrappers (Saute's T)
        self.observation_space = su.observation_space
        self.action_space = su.action_space
        length = su.obs_length

        self._teacher_scorer = IncrementalScorer(self.teacher)
        self._student_scorer = IncrementalScorer(self.student) if self.student is not None else None
        self._ids = np.full(length, self.pad_id, dtype=np.int64)
        self._mask = np.zeros(length, dtype=np.int64)
        self.problem: Problem | None = None
        self.prompt_ids: list[int] = []
        self.generated: list[int] = []
        self._done = True
        self._scores: ScoredCompletion | None = None

    # ------------------------------------------------------------------ episode control
    def encode_problem(self, problem: Problem) -> list[int]:
        """Token ids of the prompt for ``problem`` (raises if longer than ``max_prompt_tokens``)."""
        return self.setup.encode_problem(problem)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode on a problem drawn with the seeded RNG.

        ``options={"problem": Problem | int}`` picks a specific problem (an int indexes the dataset).
        """
        super().reset(seed=seed)
        opts = self.setup.reset_options(options, ("problem",))
        self.problem, self.prompt_ids, info = self.setup.start(opts.get("problem"), self.np_random)
        self.generated = []
        self._scores = None
        self._teacher_scorer.reset(self.prompt_ids)
        if self.setup.uses_student_model:
            self._student_scorer.reset(self.prompt_ids)
        p = len(self.prompt_ids)
        self._ids[:] = self.pad_id
        self._mask[:] = 0
        self._ids[:p] = self.prompt_ids
        self._mask[:p] = 1
        self._done = False
        if self.render_mode == "human":
            self.render()
        return self._obs(), info

    def _obs(self) -> dict[str, np.ndarray]:
        return {"input_ids": self._ids.copy(), "attention_mask": self._mask.copy()}

    def preload(
        self,
        completion_ids: Sequence[int],
        student_logprobs: torch.Tensor | np.ndarray | None = None,
        student_token_logprobs: torch.Tensor | np.ndarray | None = None,
    ) -> None:
        """Fast path: score a whole completion in one teacher forward before stepping through it.

        Call right after ``reset``; then ``step`` each token of ``completion_ids`` in order (through any
        wrapper stack). Steps read the precomputed cost and teacher log-prob instead of running the
        teacher per token; the numbers equal stepping without ``preload``. Student-dependent divergences
        take ``student_logprobs`` ``[T, V]`` (or ``student_token_logprobs`` ``[T]`` for ``log_ratio``), or
        the env's ``student`` model.
        """
        self._check_fresh()
        self.use_scores(self.setup.score(
            [self.problem], [completion_ids],
            None if student_logprobs is None else [student_logprobs],
            None if student_token_logprobs is None else [student_token_logprobs],
        )[0])

    def use_scores(self, scores: ScoredCompletion | None) -> None:
        """Step through a completion already scored by :meth:`DistillSetup.score` (the fast path scores a batch
        at once): call right after ``reset``; each ``step`` must then take the next of ``scores.tokens``."""
        self._check_fresh()
        self._scores = scores

    def _check_fresh(self) -> None:
        if self._done or self.generated:
            raise RuntimeError("preload()/use_scores() must be called right after reset(), before any step()")

    def step(self, action: int | TokenAction):
        """Append one token; return ``(obs, reward, terminated, truncated, info)`` with ``info["cost"]``."""
        if self._done:
            raise RuntimeError("step() called after the episode ended (or before reset()); call reset() first")
        act = parse_action(action, self.vocab_size)
        token = act.token
        t = len(self.generated)
        if self._scores is not None:
            pre = self._scores
            if t >= len(pre.tokens) or pre.tokens[t] != token:
                raise ValueError(
                    f"step {t}: action {token} differs from the preloaded completion; "
                    "call reset() and preload() again to change the completion"
                )
            cost, t_tok = float(pre.cost[t]), float(pre.teacher_logprob[t])
        else:
            cost, t_tok = self._score_step(act)

        self.generated.append(token)
        self._teacher_scorer.push(token)
        if self.setup.uses_student_model:
            self._student_scorer.push(token)
        pos = len(self.prompt_ids) + t
        self._ids[pos] = token
        self._mask[pos] = 1

        out = self.setup.outcome(token, t + 1, cost, t_tok, lambda _: (self.problem, self.generated))
        info: dict[str, Any] = out.info
        if out.finals:
            info.update(out.finals[0])
            self._end()
        if self.render_mode == "human":
            self.render()
        return self._obs(), out.reward, out.terminated, out.truncated, info

    def _score_step(self, act: TokenAction) -> tuple[float, float]:
        student = self._student_scorer if self.setup.uses_student_model else None
        cost, t_tok = self.setup.step_costs(
            self._teacher_scorer.logprobs()[None], [act.token], act.logprobs, act.logprob,
            (lambda: student.logprobs()[None]) if student is not None else None,
        )
        return float(cost[0]), float(t_tok[0])

    def _end(self) -> None:
        """End of episode (judged by the step rule): free the caches."""
        self._done = True
        self._teacher_scorer.release()
        if self._student_scorer is not None:
            self._student_scorer.release()

    # ------------------------------------------------------------------ utilities
    def completion_text(self) -> str:
        """The generated text so far (special tokens removed)."""
        return self.tokenizer.decode(self.generated, skip_special_tokens=True)

    def render(self) -> str | None:
        """Prompt and completion as text (``"ansi"``) or printed (``"human"``). With ``render_mode=None`` it
        returns None and warns, as Gymnasium's envs do (make the env with ``render_mode="ansi"`` to get text)."""
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None: nothing rendered; make the env with "
                            "render_mode='ansi' (text) or 'human' (printed)")
            return None
        if self.problem is None:
            return None
        text = self.tokenizer.decode(self.prompt_ids, skip_special_tokens=True) + self.completion_text()
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        """Free the KV caches."""
        self._end()
