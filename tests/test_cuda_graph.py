"""decode="cudagraph" on a CPU: the graph's buffer discipline through :class:`RerunBackend` (a replay re-runs the
captured step on the captured buffers, as a CUDA graph re-runs its kernels on their addresses), so a missing
input copy, an overwritten output or a cache column advanced twice shows up here. tests/test_cuda.py checks the
real graphs on a GPU."""

from __future__ import annotations

import pytest
import torch

from llm_cmdp_env.envs.vector import MathDistillVectorEnv
from llm_cmdp_env.scoring import cuda_graph, decode_modes
from llm_cmdp_env.scoring.cuda_graph import GraphedStep, RerunBackend
from tests.test_static_decode import _run, _same
from tests.test_static_scoring import _kwargs, _same_run


@pytest.fixture
def graphs_on_cpu(monkeypatch):
    """Let decode="cudagraph" run on a CPU, replaying through RerunBackend."""
    monkeypatch.setattr(decode_modes, "check_graph_device", lambda device: torch.device(device))
    monkeypatch.setattr(cuda_graph, "backend_for", lambda device: RerunBackend())


class _Layer:
    def __init__(self) -> None:
        self.cumulative_length = torch.tensor(0)


class _Cache:
    """A cache whose step writes at ``cumulative_length`` and advances it, like transformers' static layers."""

    def __init__(self) -> None:
        self.layers = [_Layer()]
        self.store = torch.zeros(8)


def _write_step(inputs, mask, positions, cache_position, cache):
    layer = cache.layers[0]
    cache.store.index_copy_(0, layer.cumulative_length.reshape(1), inputs.float().sum().reshape(1))
    layer.cumulative_length.add_(1)
    return inputs.float() * 2 + mask.float().sum() + positions + cache_position


def _args(x):
    return torch.tensor([[x]]), torch.ones(1, 4), torch.tensor([[x + 1]]), torch.tensor([x])


def test_graphed_step_replays_new_inputs_and_advances_the_cache_once_per_call():
    step, cache = GraphedStep(_write_step, torch.device("cpu"), backend=RerunBackend()), _Cache()
    first = step(*_args(3), cache).clone()
    torch.testing.assert_close(first, _write_step(*_args(3), _Cache()))
    assert int(cache.layers[0].cumulative_length) == 1 and cache.store[0] == 3  # warm-up and capture undone
    out = step(*_args(5), cache)
    torch.testing.assert_close(out, _write_step(*_args(5), _Cache()))  # the new inputs, not the captured ones
    assert int(cache.layers[0].cumulative_length) == 2 and cache.store[1] == 5
    assert step(*_args(7), cache) is out  # one output buffer, overwritten by each replay: callers copy it
    assert step.captures == 1
    step(torch.tensor([[1, 2]]), torch.ones(1, 4), torch.tensor([[1, 1]]), torch.tensor([4]), cache)
    step(*_args(1), _Cache())
    assert step.captures == 3  # another shape, another cache: a graph each


def test_cudagraph_needs_cuda(tiny_dir):
    with pytest.raises(ValueError, match="needs a CUDA device"):
        MathDistillVectorEnv(2, decode="cudagraph", **_kwargs(tiny_dir, "teacher_nll"))
    from llm_cmdp_agents.engine.policy import LLMPolicy

    with pytest.raises(ValueError, match="needs a CUDA device"):
        LLMPolicy(str(tiny_dir / "student"), device="cpu", decode="cudagraph")


@pytest.mark.usefixtures("graphs_on_cpu", "one_thread")
@pytest.mark.parametrize("divergence", ["teacher_nll", "reverse_kl"])
def test_cudagraph_env_equals_eager_across_autoresets(tiny_dir, divergence):
    eager = MathDistillVectorEnv(4, **_kwargs(tiny_dir, divergence))
    graphed = MathDistillVectorEnv(4, decode="cudagraph", **_kwargs(tiny_dir, divergence))
    assert _same_run(eager, graphed, 40) >= 6
    assert graphed._teacher._step.captures == 1  # one cache, one shape, whatever the resets and compactions


@pytest.mark.usefixtures("graphs_on_cpu", "one_thread")
def test_cudagraph_sampler_equals_eager(tiny_dir):
    from llm_cmdp_agents.engine.policy import LLMPolicy
    from llm_cmdp_agents.engine.static_decode import decoder_for

    policy = LLMPolicy(str(tiny_dir / "student"), device="cpu", value_head=False, decode="cudagraph",
                       conditioning=True)
    with torch.no_grad():
        policy.condition_proj.weight.fill_(0.3)

    def step(tok, logp, active):
        return torch.full((len(tok),), 0.5) - 0.01 * tok.float()

    kw = {"condition0": torch.ones(3), "condition_step": step, "full_logprobs": True}
    for greedy in (True, False):
        eager = _run(policy, "eager", greedy, **kw)
        _same(eager, _run(policy, "cudagraph", greedy, **kw))
        _same(eager, _run(policy, "cudagraph", greedy, **kw))  # the captured graph, replayed on a reset cache
    assert decoder_for(policy, "cudagraph")._step.captures == 1


@pytest.fixture(scope="module")
def tiny_qwen2_teacher(tiny_dir, tmp_path_factory):
    """A random 2-layer Qwen2 on the tiny vocabulary: grouped-query attention and rotary positions, the
    architecture of the Qwen2.5 shapes the GPU benchmark runs."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_dir / "teacher")
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
                                         max_position_embeddings=512, tie_word_embeddings=True,
                                         eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id))
    path = tmp_path_factory.mktemp("tiny_qwen2")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.usefixtures("graphs_on_cpu", "one_thread")
@pytest.mark.parametrize("mode", ["static", "cudagraph"])
def test_qwen2_teacher_in_static_modes_equals_eager(tiny_dir, tiny_qwen2_teacher, mode):
    kw = {**_kwargs(tiny_dir, "reverse_kl"), "teacher": str(tiny_qwen2_teacher)}
    eager, other = MathDistillVectorEnv(4, **kw), MathDistillVectorEnv(4, decode=mode, **kw)
    assert _same_run(eager, other, 30) >= 4
