"""The fast path's scoring in blocks of completions: the same numbers whatever the block size, including for a
150k-token vocabulary (the size of Qwen's), and with the teacher's row written only when a divergence needs it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

import llm_cmdp_env.episode.rules as core
from llm_cmdp_env.envs.math_distill import MathDistillEnv
from llm_cmdp_env.replay.fast_path import replay, sample_problems
from llm_cmdp_env.scoring.logprobs import CompletionLogits, sequence_logprobs
from tests.test_fast_path import _completions


@pytest.mark.parametrize("divergence", ["teacher_nll", "log_ratio", "reverse_kl", "forward_kl"])
def test_block_size_does_not_change_the_numbers(tiny_dir, tiny_env_kwargs, monkeypatch, divergence):
    env = MathDistillEnv(**tiny_env_kwargs, student=str(tiny_dir / "student"), divergence=divergence)
    env.reset(seed=0)
    problems = sample_problems(env, 6)
    completions = _completions(env, 6, np.random.default_rng(3))
    whole = replay(env, problems, completions)
    monkeypatch.setattr(core, "_CHUNK_ELEMENTS", env.vocab_size * 5)  # blocks of one completion (all are > 5)
    blocks = replay(env, problems, completions)
    for a, b in zip(whole, blocks):
        np.testing.assert_allclose(a.costs, b.costs, atol=1e-6)
    # and both equal an independent full forward of each sequence
    student = env.unwrapped.setup.student
    teacher = env.unwrapped.setup.teacher
    for ep, p, c in zip(whole, problems, completions):
        prompt = env.unwrapped.encode_problem(p)
        t = sequence_logprobs(teacher, prompt, c)
        s = sequence_logprobs(student, prompt, c)
        a = torch.tensor(c)
        t_tok, s_tok = t.gather(-1, a[:, None])[:, 0], s.gather(-1, a[:, None])[:, 0]
        ref = {"teacher_nll": -t_tok, "log_ratio": s_tok - t_tok,
               "reverse_kl": (s.exp() * (s - t)).sum(-1), "forward_kl": (t.exp() * (t - s)).sum(-1)}[divergence]
        np.testing.assert_allclose(ep.costs, ref.double().numpy(), atol=1e-4)


def test_blocks_cover_whole_completions_in_order(tiny_dir):
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=64, n_embd=16, n_layer=1, n_head=2)).eval()
    scored = CompletionLogits(model, [[1, 2], [3], [4, 5, 6]], [[7, 8, 9], [10], [11, 12]])
    assert scored.offsets.tolist() == [0, 3, 4, 6]
    assert list(scored.chunks(50 * 4)) == [([0, 1], 0, 4), ([2], 4, 6)]
    assert list(scored.chunks(1)) == [([0], 0, 3), ([1], 3, 4), ([2], 4, 6)]  # a block holds one at least
    assert list(scored.chunks(10**9)) == [([0, 1, 2], 0, 6)]


def test_a_qwen_sized_vocabulary_scores_in_blocks(monkeypatch):
    """A 151,936-token vocabulary (Qwen2.5's) on a tiny trunk: the CPU proxy of the GPU benchmark's shapes."""
    torch.manual_seed(0)
    vocab = 151936
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=64, n_embd=16, n_layer=1, n_head=2)).eval()
    prompts, comps = [[1, 2, 3], [4, 5]], [[100, 150000, 7, 8], [9, 151935]]
    scored = CompletionLogits(model, prompts, comps)
    blocks = list(scored.chunks(vocab * 3))
    assert blocks == [([0], 0, 4), ([1], 4, 6)]  # the first completion alone exceeds 3 rows: one block each
    for (_rows, lo, hi), p, c in zip(blocks, prompts, comps):
        got = torch.log_softmax(scored.logits(lo, hi).float(), -1)
        torch.testing.assert_close(got, sequence_logprobs(model, p, c), atol=1e-5, rtol=0)
