"""GPU checks (skipped without CUDA): scoring on the device, in bf16, matches the CPU within tolerance."""

import numpy as np
import pytest
import torch

from llm_cmdp_env.envs.math_distill import MathDistillEnv
from llm_cmdp_env.envs.vector import MathDistillVectorEnv

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _costs(env, actions):
    env.reset(seed=0)
    return [env.step(a)[4]["cost"] for a in actions]


def test_single_env_on_cuda_matches_cpu(tiny_env_kwargs):
    actions = [5, 17, 33, 2]
    cpu = _costs(MathDistillEnv(**tiny_env_kwargs), actions)
    gpu = _costs(MathDistillEnv(**tiny_env_kwargs, device="cuda"), actions)
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)
    bf16 = _costs(MathDistillEnv(**tiny_env_kwargs, device="cuda", dtype="bfloat16"), actions)
    np.testing.assert_allclose(bf16, cpu, atol=0.1, rtol=0.05)


def test_vector_env_on_cuda_matches_cpu(tiny_env_kwargs):
    kw = {**tiny_env_kwargs, "max_new_tokens": 4}
    a = np.array([5, 6, 7])
    cpu, gpu = MathDistillVectorEnv(3, **kw), MathDistillVectorEnv(3, device="cuda", **kw)
    cpu.reset(seed=1)
    gpu.reset(seed=1)
    for _ in range(6):
        np.testing.assert_allclose(gpu.step(a)[4]["cost"], cpu.step(a)[4]["cost"], atol=1e-4)


def _sample_runs(policy, modes):
    from llm_cmdp_agents.engine.sampling import sample

    prompts = [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14], [15, 16, 17, 18, 19]]
    runs = []
    for decode in modes:
        gen = torch.Generator(device="cuda").manual_seed(0)
        runs.append(sample(policy, prompts, 24, eos_ids=[0], pad_id=1, generator=gen, decode=decode))
    return runs


@pytest.mark.parametrize("mode", ["compiled", "cudagraph"])
def test_graph_sampler_on_cuda_matches_eager(tiny_dir, mode):
    """The compiled decode (torch.compile + CUDA graphs) and the directly captured graph against eager decoding,
    fp32 so they can agree exactly; twice, so the second run replays the captured graph on a reset cache."""
    from llm_cmdp_agents.engine.policy import LLMPolicy

    policy = LLMPolicy(str(tiny_dir / "student"), device="cuda", value_head=False, bf16_autocast=False)
    runs = _sample_runs(policy, ("eager", mode, mode))
    for other in runs[1:]:
        assert other.completions == runs[0].completions
        for a, b in zip(runs[0].token_logprobs, other.token_logprobs):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_cudagraph_sampler_under_bf16_autocast_matches_the_static_step(tiny_dir):
    """Under bf16 autocast (captured without the autocast weight cache) the graph replays the static step."""
    from llm_cmdp_agents.engine.policy import LLMPolicy

    policy = LLMPolicy(str(tiny_dir / "student"), device="cuda", value_head=False)
    static, graphed, again = _sample_runs(policy, ("static", "cudagraph", "cudagraph"))
    for other in (graphed, again):
        assert other.completions == static.completions
        for a, b in zip(static.token_logprobs, other.token_logprobs):
            torch.testing.assert_close(a, b, atol=1e-3, rtol=0)


@pytest.mark.parametrize("mode", ["compiled", "cudagraph"])
def test_graph_vector_env_on_cuda_matches_eager(tiny_env_kwargs, mode):
    """The env's teacher step on a static cache, compiled or captured, against the eager one, across autoresets;
    bf16 within its tolerance."""
    for dtype, atol, rtol in ((None, 1e-4, 0), ("bfloat16", 0.1, 0.05)):
        kw = {**tiny_env_kwargs, "max_new_tokens": 4, "device": "cuda", **({"dtype": dtype} if dtype else {})}
        eager, graphed = MathDistillVectorEnv(3, **kw), MathDistillVectorEnv(3, decode=mode, **kw)
        eager.reset(seed=1)
        graphed.reset(seed=1)
        rng = np.random.default_rng(0)
        for _ in range(12):  # episodes of 4 tokens: every row restarts twice
            a = rng.integers(3, 300, size=3)
            np.testing.assert_allclose(graphed.step(a)[4]["cost"], eager.step(a)[4]["cost"], atol=atol, rtol=rtol)
