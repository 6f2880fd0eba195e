"""The sampler's static-cache and compiled decode give the eager decode's tokens and log-probs."""

from __future__ import annotations

import pytest
import torch

from llm_cmdp_agents.engine.policy import LLMPolicy
from llm_cmdp_agents.engine.sampling import sample
from llm_cmdp_agents.engine.static_decode import LENGTH_BUCKET, decoder_for

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14], [15, 16, 17, 18, 19]]


def _run(policy, decode, greedy, seed=0, prompts=PROMPTS, n_tokens=20, **kw):
    gen = torch.Generator().manual_seed(seed)
    return sample(policy, prompts, n_tokens, eos_ids=[0], pad_id=1, greedy=greedy, generator=gen, decode=decode,
                  **kw)


def _same(a, b, atol=1e-5):
    assert a.completions == b.completions
    for x, y in zip(a.token_logprobs, b.token_logprobs):
        torch.testing.assert_close(x, y, atol=atol, rtol=0)


@pytest.mark.parametrize("greedy", [True, False])
def test_static_cache_decode_equals_eager(tiny_dir, greedy):
    policy = LLMPolicy(str(tiny_dir / "student"), device="cpu", value_head=False)
    eager = _run(policy, "eager", greedy)
    _same(eager, _run(policy, "static", greedy))
    # reused caches: another batch shape, then the first again (reset between uses)
    _run(policy, "static", greedy, prompts=PROMPTS[:2], n_tokens=70)
    _same(eager, _run(policy, "static", greedy))
    assert {length % LENGTH_BUCKET for _, length in decoder_for(policy, "static")._caches} == {0}


def test_static_decode_with_budget_conditioning_and_full_logprobs(tiny_dir):
    policy = LLMPolicy(str(tiny_dir / "student"), device="cpu", value_head=False, conditioning=True)
    with torch.no_grad():
        policy.condition_proj.weight.fill_(0.3)  # make the budget matter

    def step(tok, logp, active):
        return torch.full((len(tok),), 0.5) - 0.01 * tok.float()

    kw = {"condition0": torch.ones(3), "condition_step": step, "full_logprobs": True}
    a, b = _run(policy, "eager", False, **kw), _run(policy, "static", False, **kw)
    _same(a, b)
    for x, y in zip(a.full_logprobs, b.full_logprobs):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)
    for x, y in zip(a.conditions, b.conditions):
        torch.testing.assert_close(x, y)


def test_policy_decode_setting_is_checked(tiny_dir):
    with pytest.raises(ValueError, match="decode must be one of"):
        LLMPolicy(str(tiny_dir / "student"), device="cpu", decode="fast")
    policy = LLMPolicy(str(tiny_dir / "student"), device="cpu", value_head=False)
    with pytest.raises(ValueError, match="decode must be one of"):
        _run(policy, "turbo", True)


def test_compiled_decode_equals_eager(tiny_dir):
    """torch.compile of the static step (CPU: inductor, needs a C compiler; ~10 s for the tiny model): the CPU
    test of the path a GPU would run with CUDA graphs."""
    policy = LLMPolicy(str(tiny_dir / "student"), device="cpu", value_head=False)
    eager = _run(policy, "eager", False)
    _same(eager, _run(policy, "compiled", False))
    _same(eager, _run(policy, "compiled", False))  # second call: the compiled step is reused
