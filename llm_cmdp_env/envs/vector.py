"""``gym.make_vec("MathDistill-v0", num_envs=N)``: N episodes stepped with one batched teacher forward.

Same numbers as N single envs seeded ``seed + i`` (Gymnasium's convention), same NEXT_STEP autoreset
semantics as :class:`gymnasium.vector.SyncVectorEnv`: the step after sub-env i ends ignores its action,
resets it, and returns the reset observation with reward 0, ``terminated = truncated = False`` and the
reset info (no ``cost``: ``infos["_cost"][i]`` is False, ``infos["cost"][i]`` is 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from llm_cmdp_env.common.validation import check_positive_int
from llm_cmdp_env.common.vector_info import reset_mask_of, seed_list
from llm_cmdp_env.episode.actions import parse_vector_action
from llm_cmdp_env.episode.rules import DistillSetup
from llm_cmdp_env.scoring.decode_modes import check_decode
from llm_cmdp_env.scoring.static import make_scorer
from llm_cmdp_env.tasks import Problem


class MathDistillVectorEnv(VectorEnv):
    """Native batched version of :class:`~llm_cmdp_env.envs.math_distill.MathDistillEnv`.

    Parameters
    ----------
    num_envs : int
        Number of parallel episodes (rows of the batched forward).
    **kwargs
        The single env's keyword arguments (``teacher``, ``student``, ``dataset``, ``divergence``, ...).

    Actions are an int array ``[N]`` or a :class:`~llm_cmdp_env.episode.actions.VectorTokenAction` carrying the
    policy's log-probs. ``reset(options={"problems": [...]})`` sets each row's problem (Problem or index);
    ``options={"reset_mask": mask}`` resets only the masked rows.
    decode : str
        How the teacher's (and a student model's) incremental forward runs: ``"eager"`` (default, a growing
        cache), ``"static"`` (a fixed-size cache), ``"compiled"`` (the same step through ``torch.compile``:
        CUDA graphs on a GPU) or ``"cudagraph"`` (the same step replayed from a CUDA graph, no compiling; CUDA
        only); same costs to float tolerance (see :mod:`llm_cmdp_env.scoring.static`).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": ["ansi"]}

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, decode: str = "eager",
                 **kwargs: Any) -> None:
        num_envs = check_positive_int(num_envs, "num_envs")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be 'ansi' or None for the vector env, got {render_mode!r}")
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        check_decode(decode)  # the name, before any model loads
        self.setup = su = DistillSetup(**kwargs)
        self.tokenizer = su.tokenizer
        self.max_new_tokens = su.max_new_tokens
        self.max_prompt_tokens = su.max_prompt_tokens
        self.cost_lower_bound = su.cost_lower_bound
        self.max_episode_steps = su.max_new_tokens  # the horizon, declared for the wrappers (Saute's T)
        self.single_observation_space = su.observation_space
        self.single_action_space = su.action_space
        self.observation_space = batch_space(su.observation_space, self.num_envs)
        self.action_space = batch_space(su.action_space, self.num_envs)
        n, length = self.num_envs, su.obs_length
        self.decode = check_decode(decode, su.device)
        episode = su.max_prompt_tokens + su.max_new_tokens
        self._teacher = make_scorer(su.teacher, n, su.pad_id, decode, episode)
        self._student = make_scorer(su.student, n, su.pad_id, decode, episode) if su.uses_student_model else None
        self._ids = np.full((n, length), su.pad_id, dtype=np.int64)
        self._mask = np.zeros((n, length), dtype=np.int64)
        self._rngs: list[np.random.Generator | None] = [None] * n
        self.problems: list[Problem | None] = [None] * n
        self.prompt_ids: list[list[int]] = [[] for _ in range(n)]
        self.generated: list[list[int]] = [[] for _ in range(n)]
        self._prompt_len = np.zeros(n, dtype=np.int64)  # len(prompt_ids[i]) / len(generated[i]) as arrays,
        self._gen_len = np.zeros(n, dtype=np.int64)  # so a step's bookkeeping is vectorised over rows
        self._autoreset = np.zeros(n, dtype=bool)
        self._started = False

    # ------------------------------------------------------------------ reset
    def _rng(self, i: int) -> np.random.Generator:
        if self._rngs[i] is None:
            self._rngs[i], _ = seeding.np_random(None)
        return self._rngs[i]

    def _start_rows(self, rows: list[int], problem_opts: list[Any], infos: dict[str, Any]) -> dict[str, Any]:
        """New episodes in ``rows``; adds their reset infos to ``infos`` (gymnasium's batching)."""
        su = self.setup
        prompts = []
        for i, opt in zip(rows, problem_opts):
            problem, ids, info = su.start(opt, self._rng(i))
            self.problems[i], self.prompt_ids[i], self.generated[i] = problem, ids, []
            self._prompt_len[i], self._gen_len[i] = len(ids), 0
            prompts.append(ids)
            self._ids[i] = su.pad_id
            self._mask[i] = 0
            self._ids[i, : len(ids)] = ids
            self._mask[i, : len(ids)] = 1
            infos = self._add_info(infos, info, i)
        self._teacher.reset_rows(rows, prompts)
        if self._student is not None:
            self._student.reset_rows(rows, prompts)
        return infos

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset all rows (or those in ``options["reset_mask"]``); row i is seeded ``seed + i``."""
        super().reset(seed=seed)  # seeds self.np_random, as VectorEnv does
        n = self.num_envs
        options = self.setup.reset_options(options, ("problems", "reset_mask"))
        mask = reset_mask_of(options, n)
        options.pop("reset_mask", None)
        if not self._started and not mask.all():
            raise ValueError("the first reset must reset every sub-env")
        seeds = seed_list(seed, n)
        for i in range(n):
            if mask[i] and seeds[i] is not None:
                self._rngs[i], _ = seeding.np_random(seeds[i])
        problems = options.pop("problems", None)
        if problems is not None and len(problems) != n:
            raise ValueError(f"options['problems'] must have {n} entries (Problem, index or None)")
        rows = [i for i in range(n) if mask[i]]
        if self._started:
            self._release([i for i in rows if not self._autoreset[i]])
        infos = self._start_rows(rows, [problems[i] if problems is not None else None for i in rows], {})
        self._autoreset[rows] = False
        self._started = True
        return self._obs(), infos

    def _obs(self) -> dict[str, np.ndarray]:
        return {"input_ids": self._ids.copy(), "attention_mask": self._mask.copy()}

    def _release(self, rows: list[int]) -> None:
        self._teacher.release_rows(rows)
        if self._student is not None:
            self._student.release_rows(rows)

    # ------------------------------------------------------------------ step
    def _costs(self, rows: np.ndarray, tokens: np.ndarray, logprobs: Any, logprob: Any) -> tuple[np.ndarray, ...]:
        assert self._teacher.logp is not None
        idx = torch.as_tensor(rows, device=self._teacher.logp.device)
        student = self._student
        return self.setup.step_costs(
            self._teacher.logp[idx], tokens[rows], logprobs, logprob,
            (lambda: student.logp[idx]) if student is not None else None, select=(idx, self.num_envs),
        )

    def step(self, actions: Any):
        """Advance every row by one token (rows that ended last step are reset instead)."""
        if not self._started:
            raise RuntimeError("step() called before reset()")
        su, n = self.setup, self.num_envs
        tokens, logprobs, logprob = parse_vector_action(actions, n, su.vocab_size)
        resetting = self._autoreset.copy()
        active = ~resetting
        rows = np.nonzero(active)[0]
        rewards = np.zeros(n, dtype=np.float64)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        cost = np.zeros(n, dtype=np.float64)
        t_tok = np.zeros(n, dtype=np.float64)
        finals: dict[int, dict[str, Any]] = {}
        if len(rows):
            cost[rows], t_tok[rows] = self._costs(rows, tokens, logprobs, logprob)
            pos = self._prompt_len[rows] + self._gen_len[rows]
            self._ids[rows, pos] = tokens[rows]
            self._mask[rows, pos] = 1
            self._gen_len[rows] += 1
            for i in rows.tolist():
                self.generated[i].append(int(tokens[i]))
            out = su.outcome(tokens[rows], self._gen_len[rows], cost[rows], t_tok[rows],
                             lambda j: (self.problems[rows[j]], self.generated[rows[j]]))
            terminated[rows], truncated[rows], rewards[rows] = out.terminated, out.truncated, out.reward
            finals = {int(rows[j]): final for j, final in out.finals.items()}
        done = terminated | truncated
        continuing = torch.as_tensor(active & ~done)
        tok_t = torch.as_tensor(tokens)
        self._teacher.step(tok_t, continuing)
        if self._student is not None:
            self._student.step(tok_t, continuing)

        infos: dict[str, Any] = {
            "cost": cost, "_cost": active.copy(),
            "task_reward": np.zeros(n, dtype=np.float64), "_task_reward": active.copy(),
            "teacher_logprob": t_tok, "_teacher_logprob": active.copy(),
        }
        self._release(list(finals))
        for i, final in finals.items():
            infos = self._add_info(infos, final, i)
        obs_reset_rows = [int(i) for i in np.nonzero(resetting)[0]]
        if obs_reset_rows:
            infos = self._start_rows(obs_reset_rows, [None] * len(obs_reset_rows), infos)
        self._autoreset = done
        return self._obs(), rewards, terminated, truncated, infos

    def render(self) -> list[str] | None:
        """Each row's prompt and completion as text (``render_mode="ansi"``)."""
        if self.render_mode != "ansi":
            return None
        dec = self.tokenizer.decode
        return [dec(p, skip_special_tokens=True) + dec(g, skip_special_tokens=True)
                for p, g in zip(self.prompt_ids, self.generated)]

    def close_extras(self, **kwargs: Any) -> None:
        """Free the caches."""
        for scorer in (self._teacher, self._student):
            if scorer is not None:
                scorer.cache, scorer.logp = None, None
        self._started = False
