"""The vector env on a fixed-size KV cache (decode="static"/"compiled") gives the eager env's numbers, across
autoresets, prompts of different lengths and the in-place compactions of the cache."""

import numpy as np
import pytest
import torch

from llm_cmdp_env.envs.vector import MathDistillVectorEnv
from llm_cmdp_env.scoring.decode_modes import check_decode
from llm_cmdp_env.scoring.static import StaticBatchedScorer


def _kwargs(tiny_dir, divergence):
    return dict(teacher=str(tiny_dir / "teacher"), student=str(tiny_dir / "student"), divergence=divergence,
                max_new_tokens=6, max_prompt_tokens=160)


def _same_run(a, b, steps, seed=0, n=4):
    a.reset(seed=3)
    b.reset(seed=3)
    eos = a.tokenizer.eos_token_id
    rng = np.random.default_rng(seed)
    resets = 0
    for _ in range(steps):
        act = rng.integers(0, 400, size=n)
        act[rng.random(n) < 0.3] = eos
        ra, rb = a.step(act), b.step(act)
        np.testing.assert_array_equal(ra[0]["input_ids"], rb[0]["input_ids"])
        for k in (1, 2, 3):
            np.testing.assert_array_equal(ra[k], rb[k])
        np.testing.assert_allclose(rb[4]["cost"], ra[4]["cost"], atol=1e-5)
        np.testing.assert_allclose(rb[4]["teacher_logprob"], ra[4]["teacher_logprob"], atol=1e-5)
        resets += int(np.sum(ra[2] | ra[3]))
    return resets


@pytest.mark.parametrize("divergence", ["teacher_nll", "reverse_kl"])
def test_static_env_equals_eager_across_autoresets(tiny_dir, divergence):
    eager = MathDistillVectorEnv(4, **_kwargs(tiny_dir, divergence))
    static = MathDistillVectorEnv(4, decode="static", **_kwargs(tiny_dir, divergence))
    assert isinstance(static._teacher, StaticBatchedScorer)
    assert (static._student is None) == (divergence == "teacher_nll")  # the other divergences run the student too
    assert static._student is None or isinstance(static._student, StaticBatchedScorer)
    assert _same_run(eager, static, 40) >= 6


def test_static_scorer_equals_eager_through_many_compactions(tiny_dir):
    """Episodes of random lengths in 3 rows, releases and resets, on a cache that fills and compacts."""
    from transformers import AutoModelForCausalLM

    from llm_cmdp_env.scoring.batched import BatchedScorer

    model = AutoModelForCausalLM.from_pretrained(tiny_dir / "teacher")
    n, rng = 3, np.random.default_rng(0)
    eager, static = BatchedScorer(model, n), StaticBatchedScorer(model, n, episode_length=12 + 8, slack=2)

    def prompt():
        return rng.integers(1, 400, size=int(rng.integers(3, 12))).tolist()

    first = [prompt() for _ in range(n)]
    eager.reset_rows(range(n), first)
    static.reset_rows(range(n), first)
    left = rng.integers(1, 8, size=n)
    for _ in range(120):
        tokens = torch.as_tensor(rng.integers(1, 400, size=n))
        active = torch.ones(n, dtype=torch.bool)
        eager.step(tokens, active)
        static.step(tokens, active)
        torch.testing.assert_close(static.logp, eager.logp, atol=1e-5, rtol=0)
        left -= 1
        done = [i for i in range(n) if left[i] == 0]
        if done:
            eager.release_rows(done)
            static.release_rows(done)
            new = [prompt() for _ in done]
            eager.reset_rows(done, new)
            static.reset_rows(done, new)
            torch.testing.assert_close(static.logp, eager.logp, atol=1e-5, rtol=0)
            left[done] = rng.integers(1, 8, size=len(done))
    assert static.compactions >= 2 and static.col <= static.capacity  # 66 columns: one compaction per ~45 steps


def test_static_scorer_shifts_right_for_a_longer_prompt_and_refuses_an_overlong_one(tiny_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_dir / "teacher")
    scorer = StaticBatchedScorer(model, 2, episode_length=40, slack=8)
    scorer.reset_rows([0, 1], [[5, 6, 7], [8, 9]])
    scorer.step(torch.tensor([3, 4]), torch.tensor([True, True]))
    col = scorer.col
    scorer.reset_rows([1], [list(range(10, 30))])  # longer than the columns used so far: shift right
    assert scorer.col == 20 and col < 20
    # row 0's sequence is intact: its next-token log-probs equal a fresh scorer's on the same tokens
    ref = StaticBatchedScorer(model, 1, episode_length=40)
    ref.reset_rows([0], [[5, 6, 7]])
    ref.step(torch.tensor([3]), torch.tensor([True]))
    scorer.step(torch.tensor([11, 12]), torch.tensor([True, True]))
    ref.step(torch.tensor([11]), torch.tensor([True]))
    torch.testing.assert_close(scorer.logp[0], ref.logp[0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="does not fit"):
        scorer.reset_rows([0], [list(range(5, 5 + scorer.capacity + 1))])


def test_decode_reaches_the_env_through_make_vec_and_unknown_modes_are_refused(tiny_dir):
    import gymnasium as gym

    import llm_cmdp_env  # noqa: F401  (registers the env)

    venv = gym.make_vec("MathDistill-v0", num_envs=2, decode="static", **_kwargs(tiny_dir, "teacher_nll"))
    assert isinstance(venv.unwrapped._teacher, StaticBatchedScorer)
    with pytest.raises(ValueError, match="decode must be one of"):
        check_decode("graphs")
    with pytest.raises(ValueError, match="decode must be one of"):
        MathDistillVectorEnv(2, decode="graphs", **_kwargs(tiny_dir, "teacher_nll"))


def test_compiled_env_equals_eager(tiny_dir):
    """torch.compile on the CPU (inductor: needs a C compiler); the same step a GPU would capture as a graph."""
    eager = MathDistillVectorEnv(4, **_kwargs(tiny_dir, "teacher_nll"))
    compiled = MathDistillVectorEnv(4, decode="compiled", **_kwargs(tiny_dir, "teacher_nll"))
    assert _same_run(eager, compiled, 25) >= 3
