"""The LLM policy: batched KV-cached sampling with attached log-probs, the training forward, saving, LoRA and
the Sauté budget tracking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llm_cmdp_agents.engine.conditioning import conditions_from_episodes
from llm_cmdp_agents.engine.policy import LLMPolicy
from llm_cmdp_agents.engine.sampling import sample
from llm_cmdp_env.replay.fast_path import prompt_ids, replay, sample_problems
from tests.test_agent_helpers import conditioned_problems, tiny_env


@pytest.fixture()
def setup(tiny_dir, tiny_env_kwargs):
    torch.manual_seed(0)
    env = tiny_env(tiny_env_kwargs)
    env.reset(seed=3)
    problems = sample_problems(env, 5)
    prompts = [prompt_ids(env, p) for p in problems]
    policy = LLMPolicy(str(tiny_dir / "student"), device="cpu")
    return env, problems, prompts, policy


def test_sampling_logprobs_match_the_training_forward(setup):
    env, problems, prompts, policy = setup
    base = env.unwrapped
    g = torch.Generator().manual_seed(0)
    s = sample(policy, prompts, base.max_new_tokens, base.eos_ids, base.pad_id, temperature=0.7, generator=g,
               full_logprobs=True)
    assert len({len(p) for p in prompts}) > 1  # different prompt lengths: padding is exercised
    for c in s.completions:
        assert (c[-1] in base.eos_ids) or len(c) == base.max_new_tokens
        assert not any(t in base.eos_ids for t in c[:-1])
    ev = policy.evaluate_actions(prompts, s.completions, temperature=0.7)
    for i, c in enumerate(s.completions):
        torch.testing.assert_close(ev.logprobs[i, : len(c)], s.token_logprobs[i], atol=1e-5, rtol=0)
        assert ev.mask[i].sum() == len(c)
        torch.testing.assert_close(s.full_logprobs[i].gather(-1, torch.tensor(c)[:, None])[:, 0], s.token_logprobs[i])
        torch.testing.assert_close(s.full_logprobs[i].exp().sum(-1), torch.ones(len(c)))
    assert ev.values is not None and torch.all(ev.values == 0)  # zero-initialised value head


def test_sampling_is_seeded_and_greedy_is_deterministic(setup):
    env, _, prompts, policy = setup
    base = env.unwrapped
    args = (policy, prompts, base.max_new_tokens, base.eos_ids, base.pad_id)
    a = sample(*args, generator=torch.Generator().manual_seed(1)).completions
    b = sample(*args, generator=torch.Generator().manual_seed(1)).completions
    c = sample(*args, generator=torch.Generator().manual_seed(2)).completions
    assert a == b and a != c
    g1 = sample(*args, greedy=True).completions
    assert g1 == sample(*args, greedy=True).completions
    # greedy batched equals greedy one prompt at a time (padding does not change the logits)
    assert g1 == [sample(policy, [p], *args[2:], greedy=True).completions[0] for p in prompts]


def test_bad_sampling_arguments(setup):
    env, _, prompts, policy = setup
    base = env.unwrapped
    with pytest.raises(ValueError, match="temperature"):
        sample(policy, prompts, 4, base.eos_ids, base.pad_id, temperature=0.0)
    with pytest.raises(ValueError, match="top_p"):
        sample(policy, prompts, 4, base.eos_ids, base.pad_id, top_p=0.0)
    with pytest.raises(ValueError, match="conditioning"):
        sample(policy, prompts, 4, base.eos_ids, base.pad_id, condition0=torch.ones(len(prompts)),
               condition_step=lambda *a: torch.ones(len(prompts)))


def test_save_and_load_round_trip(setup, tmp_path):
    env, _, prompts, policy = setup
    base = env.unwrapped
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    s = sample(policy, prompts, base.max_new_tokens, base.eos_ids, base.pad_id, greedy=True)
    ev = policy.evaluate_actions(prompts, s.completions)
    policy.save_pretrained(tmp_path / "p", tokenizer=base.tokenizer)
    again = LLMPolicy.from_pretrained(tmp_path / "p", device="cpu")
    ev2 = again.evaluate_actions(prompts, s.completions)
    torch.testing.assert_close(ev.logprobs, ev2.logprobs)
    torch.testing.assert_close(ev.values, ev2.values)
    # the folder is also a plain Hugging Face model the env accepts as its student
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "p") is not None


def test_lora_trains_adapters_only(tiny_dir, setup, tmp_path):
    pytest.importorskip("peft")
    env, _, prompts, _ = setup
    base = env.unwrapped
    policy = LLMPolicy(str(tiny_dir / "student"), device="cpu", lora={"r": 4, "alpha": 8, "target_modules": ["c_attn"]},
                       gradient_checkpointing=True)
    names = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or n.startswith("value_head") for n in names)
    g = torch.Generator().manual_seed(0)
    s = sample(policy, prompts, base.max_new_tokens, base.eos_ids, base.pad_id, generator=g)
    policy.train()
    ev = policy.evaluate_actions(prompts, s.completions)
    (-(ev.logprobs.sum()) + ev.values.sum()).backward()
    grads = [p.grad for p in policy.trainable_parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    policy.save_pretrained(tmp_path / "lora")   # merged into a plain model
    merged = LLMPolicy.from_pretrained(tmp_path / "lora", device="cpu")
    policy.eval()
    torch.testing.assert_close(merged.evaluate_actions(prompts, s.completions).logprobs,
                               policy.evaluate_actions(prompts, s.completions).logprobs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("divergence", ["teacher_nll", "log_ratio"])
def test_saute_tracker_matches_the_wrapper(tiny_dir, tiny_env_kwargs, divergence):
    env = tiny_env({**tiny_env_kwargs, "divergence": divergence}, "saute", budget=30.0,
                   min_rel_budget=0.5, max_rel_budget=1.5)
    policy, problems, prompts, tracker = conditioned_problems(env, str(tiny_dir / "student"), 4)
    base = env.unwrapped
    z0 = tracker.initial(4)
    assert len(set(z0.tolist())) == 4  # sampled budgets, predicted without consuming the wrapper's generator
    g = torch.Generator().manual_seed(0)
    s = sample(policy, prompts, base.max_new_tokens, base.eos_ids, base.pad_id, generator=g, full_logprobs=True,
               condition0=tracker.start(prompts, z0), condition_step=tracker.step)
    eps = replay(env, problems, s.completions, student_logprobs=s.full_logprobs, keep_infos=True)
    budgets = conditions_from_episodes(z0, eps)
    for b, zs in zip(budgets, s.conditions):
        np.testing.assert_allclose(b.numpy(), zs.numpy(), rtol=1e-4, atol=1e-4)
    ev = policy.evaluate_actions(prompts, s.completions, conditions=budgets)
    for i, c in enumerate(s.completions):
        torch.testing.assert_close(ev.logprobs[i, : len(c)], s.token_logprobs[i], atol=1e-4, rtol=0)


def test_evaluate_policy_counts_what_the_env_reports(tiny_dir, tiny_env_kwargs):
    from llm_cmdp_agents.run.evaluate import evaluate_policy

    policy = LLMPolicy(str(tiny_dir / "student"), device="cpu")
    env = tiny_env({**tiny_env_kwargs, "split": "test"}, "none", budget=68.0)
    res = evaluate_policy(policy, env, n=6, batch_size=4)
    # by hand: greedy completions of test problems 0..5, replayed, summed cost <= 68
    base = env.unwrapped
    problems = [base.setup.task[i] for i in range(6)]
    prompts = [prompt_ids(env, p) for p in problems]
    s = sample(policy, prompts, base.max_new_tokens, base.eos_ids, base.pad_id, greedy=True)
    eps = replay(env, problems, s.completions)
    costs = np.array([e.costs.sum() for e in eps])
    assert res["n"] == 6
    assert res["mean_cost"] == pytest.approx(costs.mean(), rel=1e-6)
    assert res["constraint_satisfaction"] == pytest.approx(np.mean(costs <= 68.0))
    assert 0 < res["constraint_satisfaction"] < 1  # the budget splits these episodes: the count is exercised
    assert res["mean_length"] == pytest.approx(np.mean([len(e.tokens) for e in eps]))
    assert res["accuracy"] == pytest.approx(np.mean([e.final_info["task_reward"] for e in eps]))
    with pytest.raises(ValueError, match="n must be"):
        evaluate_policy(policy, env, n=0)


def test_device_auto_selection():
    from llm_cmdp_agents.engine.device import resolve_device

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")
