"""The native vector env: identical to N single envs (SyncVectorEnv) seeded seed+i, across autoresets."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

import llm_cmdp_env  # noqa: F401
from llm_cmdp_env.envs.vector import MathDistillVectorEnv
from llm_cmdp_env.episode.actions import VectorTokenAction
from llm_cmdp_env.scoring.logprobs import sequence_logprobs

DIVERGENCES = ["teacher_nll", "log_ratio", "reverse_kl", "forward_kl"]


def _kwargs(tiny_dir, divergence):
    return dict(teacher=str(tiny_dir / "teacher"), student=str(tiny_dir / "student"), divergence=divergence,
                max_new_tokens=6, max_prompt_tokens=160)


def _actions(rng, n, eos):
    a = rng.integers(0, 400, size=n)
    a[rng.random(n) < 0.25] = eos
    return a


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_native_vector_equals_sync_of_single_envs(tiny_dir, divergence):
    n = 4
    native = gym.make_vec("MathDistill-v0", num_envs=n, **_kwargs(tiny_dir, divergence))
    sync = gym.make_vec("MathDistill-v0", num_envs=n, vectorization_mode="sync", **_kwargs(tiny_dir, divergence))
    assert isinstance(native, MathDistillVectorEnv)
    assert native.metadata["autoreset_mode"] == sync.metadata["autoreset_mode"]
    o1, i1 = native.reset(seed=5)
    o2, i2 = sync.reset(seed=5)
    np.testing.assert_array_equal(o1["input_ids"], o2["input_ids"])
    assert len(set(i1["prompt_length"])) > 1  # prompts of different lengths are batched
    eos = native.unwrapped.tokenizer.eos_token_id
    rng = np.random.default_rng(0)
    autoresets = 0
    for _ in range(30):
        a = _actions(rng, n, eos)
        r1, r2 = native.step(a), sync.step(a)
        for key in ("input_ids", "attention_mask"):
            np.testing.assert_array_equal(r1[0][key], r2[0][key])
        for k in (1, 2, 3):
            np.testing.assert_array_equal(r1[k], r2[k])
        np.testing.assert_array_equal(r1[4]["_cost"], r2[4]["_cost"])
        np.testing.assert_allclose(r1[4]["cost"], r2[4]["cost"], atol=1e-5)
        np.testing.assert_allclose(r1[4]["teacher_logprob"], r2[4]["teacher_logprob"], atol=1e-5)
        if "prompt_length" in r2[4]:
            np.testing.assert_array_equal(r1[4]["_prompt_length"], r2[4]["_prompt_length"])
            np.testing.assert_array_equal(r1[4]["prompt_length"], r2[4]["prompt_length"])
            autoresets += int(r2[4]["_prompt_length"].sum())
        if "correct" in r2[4]:
            np.testing.assert_array_equal(r1[4]["_correct"], r2[4]["_correct"])
    assert autoresets >= 4


@pytest.mark.parametrize("divergence", ["log_ratio", "reverse_kl"])
def test_attached_logprobs_equal_student_model(tiny_dir, divergence):
    n = 3
    with_model = MathDistillVectorEnv(n, **_kwargs(tiny_dir, divergence))
    kw = _kwargs(tiny_dir, divergence)
    kw.pop("student")
    attached = MathDistillVectorEnv(n, **kw)
    student = AutoModelForCausalLM.from_pretrained(tiny_dir / "student")
    with_model.reset(seed=1)
    attached.reset(seed=1)
    rng = np.random.default_rng(1)
    for _ in range(5):  # no EOS: stays within the first episodes
        a = rng.integers(0, 300, size=n)
        rows = torch.stack([
            sequence_logprobs(student, attached.prompt_ids[i] + attached.generated[i], [0])[0] for i in range(n)
        ])
        c1 = with_model.step(a)[4]["cost"]
        c2 = attached.step(VectorTokenAction(a, logprobs=rows.numpy()))[4]["cost"]
        np.testing.assert_allclose(c1, c2, atol=1e-5)
    with pytest.raises(ValueError, match="student"):
        attached.step(np.zeros(n, dtype=np.int64))


def test_cache_memory_follows_live_episodes(tiny_dir):
    venv = MathDistillVectorEnv(3, **_kwargs(tiny_dir, "teacher_nll"))
    venv.reset(seed=0)
    eos = venv.tokenizer.eos_token_id
    rng = np.random.default_rng(0)
    lengths = []
    for _ in range(200):
        venv.step(_actions(rng, 3, eos))
        lengths.append(venv._teacher.cache_length)
    # episodes are <= 6 tokens and prompts < 160, so a cache that never trims would reach ~360
    assert max(lengths) < 160 + 6 + 40


def test_partial_reset_and_bad_input(tiny_dir):
    venv = MathDistillVectorEnv(2, **_kwargs(tiny_dir, "teacher_nll"))
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.array([1, 2]))
    obs, _ = venv.reset(seed=3)
    venv.step(np.array([5, 6]))
    obs2, info = venv.reset(options={"reset_mask": np.array([False, True])})
    np.testing.assert_array_equal(obs2["input_ids"][0], venv._ids[0])
    assert obs2["attention_mask"][0].sum() == obs["attention_mask"][0].sum() + 1
    assert list(info["_prompt_length"]) == [False, True]
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        venv.step(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="out of range"):
        venv.step(np.array([1, 400]))
    with pytest.raises(TypeError, match="integer token ids"):
        venv.step(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="num_envs"):
        MathDistillVectorEnv(0, **_kwargs(tiny_dir, "teacher_nll"))
