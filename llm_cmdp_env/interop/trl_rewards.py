"""TRL interop: the answer check and the env's reward and cost as ``reward_funcs`` of ``trl.GRPOTrainer``.

TRL calls each reward function once per generation batch as
``f(prompts=..., completions=..., completion_ids=..., **columns)`` and expects one float per completion.
``columns`` are the dataset's other columns (``question``, ``answer``, ...), one value per completion, plus
the trainer's extras (``trainer_state``, ``log_extra``, ``log_metric``); ``completions`` are strings, or
for a conversational dataset lists of messages ``[{"role": "assistant", "content": ...}]``;
``completion_ids`` (recent TRL versions) are the generated token ids, up to and including the first EOS.

Two reward functions, plain callables that work (and are tested) without TRL installed:

- :class:`AnswerReward` (and the ready instance :data:`answer_reward`): 1.0 / 0.0 from
  :func:`llm_cmdp_env.judge.verify.check_answer` against the reference column (default ``answer``).
- :class:`EnvReward`: the numbers of a ``MathDistill-v0`` wrapper stack, so a TRL run is scored by exactly
  the env every other algorithm sees (the project's one-source-of-truth rule). Each completion becomes a
  :class:`~llm_cmdp_env.tasks.Problem` (question and reference from the dataset columns) and a list of
  token ids, and the batch goes through :func:`llm_cmdp_env.replay.fast_path.replay` (one teacher forward, then
  ``reset(options={"problem": p})`` and one ``step`` per token through the whole stack). The value is the
  episode return of the stack (``component="return"``), minus the episode cost (``"cost"``, so higher is
  better), or the raw task reward (``"task"``).

Which token ids :class:`EnvReward` replays
------------------------------------------
With ``token_source="auto"`` (default), TRL's ``completion_ids[i]`` are used when TRL passes them, every id
is inside the env's vocabulary, and decoding them with the env's tokenizer (``skip_special_tokens=True``)
gives back the completion text exactly (so they come from a tokenizer that agrees with the env's);
otherwise the completion text is tokenised with the env's tokenizer (``add_special_tokens=False``).
``"ids"`` requires usable ``completion_ids`` (an error otherwise); ``"text"`` always tokenises the text.
The ids are then made into a finished episode the way the env itself would end it:

1. everything after the first EOS id of the env is dropped (the episode terminates there);
2. ids beyond the env's ``max_new_tokens`` are dropped (the episode is truncated there);
3. a completion that ends neither way (TRL's ``max_completion_length`` cut it shorter than the env's
   ``max_new_tokens``, or the text was decoded without its EOS) gets the env's EOS appended
   (``unfinished="eos"``; its cost is counted like any other token's), or is an error
   (``unfinished="error"``). Set ``GRPOConfig(max_completion_length=<env max_new_tokens>)`` and let TRL
   pass ``completion_ids`` for episodes identical to what the policy generated.

The env conditions on its own prompt, :func:`llm_cmdp_env.replay.fast_path.prompt_ids` of the problem; the TRL
prompt is not re-encoded. The question comes from the dataset's question column (default ``question``),
which the dataset must therefore carry next to its ``prompt`` column. With ``check_prompts=True`` a string
prompt whose tokenisation (env tokenizer, special tokens added as TRL does) differs from the env's prompt
ids gets one warning: the policy then wrote its completion for a different prompt than the one the env
scores.

Caveats
-------
- Re-tokenised text can differ from the ids the policy generated (BPE merges, a leading space, special
  tokens removed by decoding), and so can its costs; prefer TRL's ``completion_ids``
  (``EnvReward.last_token_sources`` says which source each completion used).
- Student-dependent divergences (``log_ratio``, ``reverse_kl``, ``forward_kl``) need the acting policy's
  log-probs, which TRL does not pass to reward functions: they work only when the env was built with
  ``student=<the very model TRL trains>``; otherwise :func:`~llm_cmdp_env.replay.fast_path.replay` raises. Use
  ``divergence="teacher_nll"`` (a policy-independent cost) otherwise.
- A stateful stack (a learned Lagrange multiplier, episode statistics) advances with every replayed
  episode, as it would for a stepping user. :class:`EnvReward` objects built on the same env share one
  replay per batch: the first to see a batch replays it, the others reuse those episodes, so each
  completion is one episode of the stack and all components describe the same episodes. The same
  :class:`EnvReward` called again replays again.
- :class:`EnvReward` holds the env and its models and refuses to be pickled (a copy would score with a
  copied, diverging wrapper state): reward paths that ship reward functions to another process (TRL's
  experimental async rollout worker) are not supported.
"""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from llm_cmdp_env.judge.answers import MAX_ANSWER_CHARS, reference_from_solution
from llm_cmdp_env.judge.verify import DEFAULT_TIMEOUT, check_answer
from llm_cmdp_env.replay.fast_path import Episode, prompt_ids, replay
from llm_cmdp_env.tasks import Problem

__all__ = [
    "COMPONENTS",
    "REFERENCE_FORMATS",
    "TOKEN_SOURCES",
    "UNFINISHED",
    "AnswerReward",
    "EnvReward",
    "answer_reward",
    "completion_text",
]

COMPONENTS: tuple[str, ...] = ("return", "cost", "task")
"""What :class:`EnvReward` returns: the stack's episode return, minus the episode cost, the raw task reward."""

TOKEN_SOURCES: tuple[str, ...] = ("auto", "ids", "text")
"""Where :class:`EnvReward` takes the token ids from (see the module docstring)."""

UNFINISHED: tuple[str, ...] = ("eos", "error")
"""What :class:`EnvReward` does with a completion that ends before EOS and before ``max_new_tokens``."""

REFERENCE_FORMATS: tuple[str, ...] = ("answer", "solution")
"""How the reference column is read: a final answer (``"18"``), or a GSM8K solution ending in ``#### 18``."""

# keyword arguments GRPOTrainer adds besides the dataset columns (not columns; left out of error messages)
_TRL_EXTRAS = frozenset({"trainer_state", "log_extra", "log_metric", "environments", "completion_ids"})


def _choice(name: str, value: Any, accepted: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in accepted:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, accepted))}, got {value!r}")
    return value


def _name(value: Any, param: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{param} must be a non-empty string, got {value!r}")
    return value


def completion_text(completion: Any, index: int = 0) -> str:
    """The text of one TRL completion.

    A string is returned as is. A conversational completion (a list of message dicts, e.g.
    ``[{"role": "assistant", "content": "..."}]``) gives the content of its last assistant message
    (messages without a ``role`` count as assistant ones, as in TRL's own examples); a content given as a
    list of parts keeps the ``"text"`` of its text parts. ``index`` only labels error messages.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and all(isinstance(m, Mapping) for m in completion):
        for message in reversed(completion):
            if message.get("role", "assistant") != "assistant":
                continue
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, Sequence) and all(isinstance(p, Mapping) for p in content):
                return "".join(str(p.get("text", "")) for p in content if p.get("type", "text") == "text")
            raise TypeError(f"completion {index}: the assistant message's content must be a string or a list of "
                            f"parts, got {type(content).__name__}")
        raise ValueError(f"completion {index} has no assistant message: roles "
                         f"{[m.get('role') for m in completion]}")
    raise TypeError(
        f"completion {index} must be a string or a list of chat messages [{{'role': 'assistant', 'content': ...}}], "
        f"got {type(completion).__name__}"
    )


def _check_len(what: str, values: Sequence[Any], n: int) -> None:
    if len(values) != n:
        raise ValueError(f"{what} has {len(values)} entries but there are {n} completions (one per completion)")


def _column(kwargs: Mapping[str, Any], column: str, param: str, n: int) -> Sequence[Any]:
    """The dataset column ``column`` from TRL's keyword arguments, one value per completion."""
    if column not in kwargs:
        have = sorted(k for k in kwargs if k not in _TRL_EXTRAS)
        raise ValueError(
            f"the reward function got no {column!r} column ({param}={column!r}); dataset columns passed: {have}. "
            f"Set {param}= to the dataset column that holds it (GRPOTrainer passes every dataset column besides "
            "'prompt' as a keyword argument; keep GRPOConfig(remove_unused_columns=False))"
        )
    values = kwargs[column]
    if isinstance(values, np.ndarray) and values.ndim == 1:
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"column {column!r} must be a list with one value per completion, got {type(values).__name__}")
    _check_len(f"column {column!r}", values, n)
    return values


def _reference(value: Any, column: str, fmt: str, i: int) -> str:
    """Row ``i`` of the reference column as the answer string the env's judge compares with."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"column {column!r} row {i}: a reference answer must be a string or a number, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise ValueError(f"column {column!r} row {i}: reference answer {value!r} is not finite")
        return repr(float(value))
    if not isinstance(value, str):
        raise TypeError(f"column {column!r} row {i}: a reference answer must be a string or a number, "
                        f"got {type(value).__name__}")
    if fmt == "solution":
        try:
            return reference_from_solution(value)
        except ValueError as e:
            raise ValueError(f"column {column!r} row {i} (reference_format='solution'): {e}") from None
    if "####" in value:
        raise ValueError(
            f"column {column!r} row {i} holds a worked solution ('#### ' line), not a final answer: pass "
            "reference_format='solution' to read the answer from its '#### N' line (GSM8K's 'answer' column)"
        )
    if len(value) > MAX_ANSWER_CHARS:
        raise ValueError(f"column {column!r} row {i}: the reference answer is {len(value):,} characters long, over "
                         f"MAX_ANSWER_CHARS = {MAX_ANSWER_CHARS}: no completion's answer could equal it")
    return value


class AnswerReward:
    """TRL reward function: 1.0 if the completion's final answer equals the reference, else 0.0.

    Uses the env's own judge, :func:`llm_cmdp_env.judge.verify.check_answer` (last ``#### X`` line, then
    ``\\boxed{}``, "the answer is", the last number; exact for plain numbers, math-verify with a hard timeout
    otherwise), so the score is the env's ``info["task_reward"]`` for the same text.

    Parameters
    ----------
    reference_column : str
        Dataset column holding the reference (default ``"answer"``).
    reference_format : str
        ``"answer"`` (the column holds the final answer, e.g. ``"18"`` or ``18``) or ``"solution"`` (a
        GSM8K-style worked solution ending in ``#### 18``, as in GSM8K's own ``answer`` column).
    timeout : float
        Seconds the answer check may take (then the answer is judged wrong), as the env's
        ``verify_timeout``.
    name : str
        The ``__name__`` TRL logs the reward under (``rewards/<name>/mean``).

    Examples
    --------
    >>> AnswerReward()(["Q1"], ["3 + 4 = 7\\n#### 7"], answer=["7"])
    [1.0]
    """

    def __init__(
        self,
        reference_column: str = "answer",
        *,
        reference_format: str = "answer",
        timeout: float = DEFAULT_TIMEOUT,
        name: str = "answer_correct",
    ) -> None:
        self.reference_column = _name(reference_column, "reference_column")
        self.reference_format = _choice("reference_format", reference_format, REFERENCE_FORMATS)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        self.timeout = float(timeout)
        self.__name__ = _name(name, "name")

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        """Score a batch: one float per completion (TRL passes the dataset columns as ``kwargs``)."""
        n = len(completions)
        _check_len("prompts", prompts, n)
        refs = _column(kwargs, self.reference_column, "reference_column", n)
        out = []
        for i, (c, ref) in enumerate(zip(completions, refs)):
            reference = _reference(ref, self.reference_column, self.reference_format, i)
            out.append(1.0 if check_answer(completion_text(c, i), reference, timeout=self.timeout).correct else 0.0)
        return out

    def __repr__(self) -> str:
        return (f"AnswerReward(reference_column={self.reference_column!r}, "
                f"reference_format={self.reference_format!r}, timeout={self.timeout}, name={self.__name__!r})")


answer_reward = AnswerReward()
"""The default :class:`AnswerReward`: reference column ``answer``, logged as ``answer_correct``."""


class _SharedReplay:
    """The last batch replayed on one env and which :class:`EnvReward` objects have read it."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.episodes: list[Episode] = []
        self.readers: weakref.WeakSet[EnvReward] = weakref.WeakSet()


_SHARED: weakref.WeakKeyDictionary[gym.Env, _SharedReplay] = weakref.WeakKeyDictionary()


class EnvReward:
    """TRL reward function scored by a ``MathDistill-v0`` wrapper stack: the env's numbers, exactly.

    Parameters
    ----------
    env : gymnasium.Env
        ``MathDistill-v0`` with any stack of single-env wrappers (e.g.
        ``gym.make("MathDistill-v0", constraint="budget", budget=5.0)``). Its tokenizer, EOS ids,
        ``max_new_tokens`` and prompt template define the episodes.
    component : str
        ``"return"``: the episode return of the whole stack (sum of its rewards); ``"cost"``: minus the
        episode cost (sum of ``info["cost"]``), so higher is better; ``"task"``: the raw task reward
        (``info["task_reward"]`` at the end: 1.0 if correct; 0.0 if a wrapper ended the episode early).
    question_column, reference_column : str
        Dataset columns holding the question and the reference (defaults ``"question"``, ``"answer"``).
    reference_format : str
        ``"answer"`` or ``"solution"`` (see :class:`AnswerReward`).
    token_source : str
        ``"auto"``, ``"ids"`` or ``"text"``: where the token ids come from (module docstring).
    unfinished : str
        ``"eos"`` (append the env's EOS to a completion that ends before EOS and ``max_new_tokens``) or
        ``"error"``.
    check_prompts : bool
        Warn once if a string prompt does not tokenise to the env's own prompt for its question.
    name : str, optional
        The ``__name__`` TRL logs the reward under; default ``"env_<component>"``.

    Attributes
    ----------
    last_episodes : list of Episode
        The replayed episodes of the last call (rewards, costs, final info of every completion).
    last_token_sources : list of str
        ``"ids"`` or ``"text"`` for each completion of the last call.

    Notes
    -----
    When TRL passes ``log_metric`` (recent TRL versions), the batch means of the episode cost, the task reward, the
    constraint satisfaction (when the stack reports ``info["episode"]["constraint_satisfied"]``) and the
    fraction of re-tokenised completions are logged as ``<name>/episode_cost``, ``<name>/task_reward``,
    ``<name>/constraint_satisfied`` and ``<name>/retokenised``.
    """

    def __init__(
        self,
        env: gym.Env,
        component: str = "return",
        *,
        question_column: str = "question",
        reference_column: str = "answer",
        reference_format: str = "answer",
        token_source: str = "auto",
        unfinished: str = "eos",
        check_prompts: bool = True,
        name: str | None = None,
    ) -> None:
        from llm_cmdp_env.envs.math_distill import MathDistillEnv

        if not isinstance(env, gym.Env) or not isinstance(env.unwrapped, MathDistillEnv):
            raise TypeError(
                "env must be a MathDistill-v0 env (any stack of single-env wrappers over MathDistillEnv), "
                f"got {type(env).__name__}"
            )
        self.env = env
        self.component = _choice("component", component, COMPONENTS)
        self.question_column = _name(question_column, "question_column")
        self.reference_column = _name(reference_column, "reference_column")
        self.reference_format = _choice("reference_format", reference_format, REFERENCE_FORMATS)
        self.token_source = _choice("token_source", token_source, TOKEN_SOURCES)
        self.unfinished = _choice("unfinished", unfinished, UNFINISHED)
        if not isinstance(check_prompts, (bool, np.bool_)):
            raise TypeError(f"check_prompts must be a bool, got {check_prompts!r}")
        self.check_prompts = bool(check_prompts)
        self.__name__ = _name(f"env_{component}" if name is None else name, "name")

        base = env.unwrapped
        self.tokenizer = base.tokenizer
        self.eos_ids = frozenset(int(e) for e in base.eos_ids)
        self.max_new_tokens = int(base.max_new_tokens)
        self.vocab_size = int(base.vocab_size)
        tok_eos = self.tokenizer.eos_token_id
        self.eos_id = int(tok_eos) if tok_eos is not None and int(tok_eos) in self.eos_ids else min(self.eos_ids)
        self.last_episodes: list[Episode] = []
        self.last_token_sources: list[str] = []
        self._warned_prompt = False

    # ------------------------------------------------------------------ inputs -> problems and token ids
    def _usable_ids(self, ids: Any) -> list[int] | None:
        """``ids`` as a list of ints if it is a 1-D integer sequence inside the env's vocabulary, else None."""
        if isinstance(ids, torch.Tensor):
            ids = ids.detach().cpu().numpy()
        try:
            arr = np.asarray(ids)
        except (TypeError, ValueError):
            return None
        if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
            return None
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            return None
        return [int(x) for x in arr]

    def _tokens(self, text: str, ids: Any, i: int) -> tuple[list[int], str]:
        """The token ids to replay for completion ``i`` and their source (``"ids"`` or ``"text"``)."""
        source = "text"
        toks: list[int] | None = None
        if self.token_source != "text" and ids is not None:
            toks = self._usable_ids(ids)
            if toks is None and self.token_source == "ids":
                raise ValueError(
                    f"completion_ids[{i}] must be a 1-D list of token ids in [0, {self.vocab_size}) (the env's "
                    f"vocabulary), got {ids!r:.200}; use token_source='auto' or 'text' to tokenise the text instead"
                )
            if (toks is not None and self.token_source == "auto"
                    and self.tokenizer.decode(toks, skip_special_tokens=True) != text):
                toks = None  # ids of another tokenizer (or of text TRL changed after decoding): use the text
            source = "ids" if toks is not None else "text"
        elif self.token_source == "ids":
            raise ValueError(
                "token_source='ids' but the reward function got no completion_ids (older TRL versions do not pass "
                "them); use token_source='auto' or 'text'"
            )
        if toks is None:
            toks = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        for t, tok in enumerate(toks):
            if tok in self.eos_ids:  # the env's episode terminates at the first EOS
                toks = toks[: t + 1]
                break
        toks = toks[: self.max_new_tokens]  # ... and is truncated after max_new_tokens
        if len(toks) < self.max_new_tokens and (not toks or toks[-1] not in self.eos_ids):
            if self.unfinished == "error":
                raise ValueError(
                    f"completion {i} ({source}) has {len(toks)} tokens, no EOS and fewer than the env's "
                    f"max_new_tokens={self.max_new_tokens}, so its episode is unfinished; set "
                    "GRPOConfig(max_completion_length) to the env's max_new_tokens, or unfinished='eos' to end it "
                    "with an EOS"
                )
            toks = [*toks, self.eos_id]
        return toks, source

    def _warn_prompt(self, prompts: Sequence[Any], problems: Sequence[Problem]) -> None:
        for i, (prompt, problem) in enumerate(zip(prompts, problems)):
            if not isinstance(prompt, str):
                continue  # conversational prompts: not checked (the env applies its own chat template)
            if list(self.tokenizer(prompt)["input_ids"]) != prompt_ids(self.env, problem):
                self._warned_prompt = True
                warnings.warn(
                    f"{self.__name__}: prompt {i} ({prompt!r:.80}) does not tokenise to the env's prompt for its "
                    "question (llm_cmdp_env.replay.fast_path.prompt_ids); the env scores the completion after its own "
                    "prompt, not the one the policy saw. Build the dataset's prompt column with the env's template "
                    "(e.g. PLAIN_PROMPT_TEMPLATE.format(question=q) for prompt_template='plain'), or pass "
                    "check_prompts=False. (Warned once.)",
                    UserWarning,
                    stacklevel=3,
                )
                return

    def _replay(self, problems: list[Problem], tokens: list[list[int]]) -> list[Episode]:
        """Replay the batch through the env's stack, or reuse the episodes another EnvReward on the same env
        just replayed for this very batch (so a stateful stack sees each completion once)."""
        shared = _SHARED.get(self.env)
        if shared is None:
            shared = _SHARED[self.env] = _SharedReplay()
        key = tuple((p.question, p.answer, tuple(t)) for p, t in zip(problems, tokens))
        if shared.key == key and self not in shared.readers:
            shared.readers.add(self)
            return shared.episodes
        episodes = replay(self.env, problems, tokens)
        shared.key, shared.episodes = key, episodes
        shared.readers = weakref.WeakSet([self])
        return episodes

    # ------------------------------------------------------------------ the reward function
    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        """Score a batch: one float per completion (TRL passes the dataset columns as ``kwargs``)."""
        n = len(completions)
        _check_len("prompts", prompts, n)
        if completion_ids is not None:
            _check_len("completion_ids", completion_ids, n)
        questions = _column(kwargs, self.question_column, "question_column", n)
        refs = _column(kwargs, self.reference_column, "reference_column", n)
        problems = []
        for i, (q, ref) in enumerate(zip(questions, refs)):
            if not isinstance(q, str):
                raise TypeError(f"column {self.question_column!r} row {i}: a question must be a string, "
                                f"got {type(q).__name__}")
            problems.append(Problem(q, _reference(ref, self.reference_column, self.reference_format, i), source="trl"))
        tokens, sources = [], []
        for i, c in enumerate(completions):
            toks, src = self._tokens(completion_text(c, i), None if completion_ids is None else completion_ids[i], i)
            tokens.append(toks)
            sources.append(src)
        if self.check_prompts and not self._warned_prompt:
            self._warn_prompt(prompts, problems)

        episodes = self._replay(problems, tokens)
        self.last_episodes, self.last_token_sources = episodes, sources
        if self.component == "return":
            values = [float(ep.rewards.sum()) for ep in episodes]
        elif self.component == "cost":
            values = [-float(ep.costs.sum()) for ep in episodes]
        else:
            values = [float(ep.final_info.get("task_reward", 0.0)) for ep in episodes]

        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and episodes:
            self._log(log_metric, episodes, sources)
        return values

    def _log(self, log_metric: Callable[[str, float], None], episodes: list[Episode], sources: list[str]) -> None:
        log_metric(f"{self.__name__}/episode_cost", float(np.mean([ep.costs.sum() for ep in episodes])))
        log_metric(f"{self.__name__}/task_reward",
                   float(np.mean([ep.final_info.get("task_reward", 0.0) for ep in episodes])))
        sat = [ep.final_info.get("episode", {}).get("constraint_satisfied") for ep in episodes]
        if all(s is not None for s in sat):
            log_metric(f"{self.__name__}/constraint_satisfied", float(np.mean(sat)))
        log_metric(f"{self.__name__}/retokenised", float(np.mean([s == "text" for s in sources])))

    def __getstate__(self) -> Any:
        raise TypeError(
            "EnvReward holds the env, its models and its wrapper state and cannot be pickled or copied: a copy "
            "would score with a diverging copy of the stack. Run it in the training process (TRL's experimental "
            "async rollout worker, which ships reward functions to another process, is not supported)"
        )

    def __repr__(self) -> str:
        return (f"EnvReward(component={self.component!r}, question_column={self.question_column!r}, "
                f"reference_column={self.reference_column!r}, token_source={self.token_source!r}, "
                f"name={self.__name__!r})")
