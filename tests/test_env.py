"""The core env on tiny random models: API checks, seeding, scoring exactness, divergences, bad input."""

import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from transformers import AutoModelForCausalLM

import llm_cmdp_env  # noqa: F401  (registers MathDistill-v0)
from llm_cmdp_env import TokenAction
from llm_cmdp_env.envs.math_distill import MathDistillEnv
from llm_cmdp_env.scoring.logprobs import IncrementalScorer, sequence_logprobs

DIVERGENCES = ["teacher_nll", "log_ratio", "reverse_kl", "forward_kl"]


def rollout(env, seed, actions_seed=0, n=None):
    """Run one episode with a fixed random action sequence; return (prompt ids, actions, costs, infos)."""
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(actions_seed)
    actions, costs, infos = [], [], []
    done = False
    while not done:
        a = int(rng.integers(env.action_space.n))
        obs, _r, term, trunc, inf = env.step(a)
        actions.append(a)
        costs.append(inf["cost"])
        infos.append(inf)
        done = term or trunc
    prompt = list(obs["input_ids"][: info["prompt_length"]])
    return prompt, actions, np.array(costs), infos


def test_env_checkers_accept_the_env(tiny_env_kwargs):
    env = MathDistillEnv(**tiny_env_kwargs)
    gym_check_env(env)
    sb3_check_env(MathDistillEnv(**tiny_env_kwargs))


def test_make_by_module_path_without_prior_import(tiny_dir):
    code = (
        "import gymnasium as gym\n"
        f"env = gym.make('llm_cmdp_env:MathDistill-v0', teacher={str(tiny_dir / 'teacher')!r}, "
        "max_new_tokens=3, max_prompt_tokens=160)\n"
        "obs, info = env.reset(seed=0)\n"
        "print(env.action_space.n, obs['input_ids'].shape)\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] == "400"


def test_spaces_and_episode_end(tiny_env_kwargs):
    env = gym.make("MathDistill-v0", **tiny_env_kwargs)
    assert isinstance(env.action_space, gym.spaces.Discrete)
    assert env.observation_space["input_ids"].shape == (160 + 12,)
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    p = info["prompt_length"]
    assert obs["attention_mask"].sum() == p
    eos = env.unwrapped.tokenizer.eos_token_id
    obs, r, term, trunc, info = env.step(5)
    assert obs["input_ids"][p] == 5 and obs["attention_mask"].sum() == p + 1
    assert set(info) >= {"cost", "task_reward", "teacher_logprob"}
    obs, r, term, trunc, info = env.step(eos)
    assert term and not trunc
    assert set(info) >= {"correct", "extracted_answer", "reference", "completion"}
    assert r == info["task_reward"] == 0.0
    # truncation at max_new_tokens
    env.reset(seed=1)
    for _ in range(12):
        _, _, term, trunc, _ = env.step(7)
    assert trunc and not term


def test_correct_answer_is_rewarded(tiny_env_kwargs):
    env = MathDistillEnv(**{**tiny_env_kwargs, "max_new_tokens": 64})
    _, info = env.reset(seed=5)
    tok = env.tokenizer
    ids = tok(" so #### " + info["reference"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    for t in ids:
        _, r, term, _trunc, inf = env.step(t)
    assert term and r == 1.0 and inf["correct"] and inf["extracted_answer"] == info["reference"]


def test_seeding_reproduces_prompt_and_costs(tiny_env_kwargs):
    env = MathDistillEnv(**tiny_env_kwargs)
    p1, a1, c1, _ = rollout(env, seed=42)
    p2, a2, c2, _ = rollout(env, seed=42)
    p3, _, _, _ = rollout(env, seed=43)
    assert p1 == p2 and a1 == a2
    np.testing.assert_array_equal(c1, c2)
    assert p1 != p3


def test_incremental_scoring_equals_full_forward(tiny_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_dir / "teacher")
    prompt = [3, 17, 42, 9, 100]
    completion = [int(x) for x in np.random.default_rng(0).integers(0, 400, size=40)]
    full = sequence_logprobs(model, prompt, completion)
    scorer = IncrementalScorer(model)
    scorer.reset(prompt)
    rows = []
    for t in completion:
        rows.append(scorer.logprobs().clone())
        scorer.push(t)
    torch.testing.assert_close(torch.stack(rows), full, atol=1e-5, rtol=0)


def _hand_costs(tiny_dir, prompt, actions, name):
    """Costs from first principles: float64 softmax of full forwards, explicit sums."""
    t = AutoModelForCausalLM.from_pretrained(tiny_dir / "teacher").double()
    s = AutoModelForCausalLM.from_pretrained(tiny_dir / "student").double()
    ids = torch.tensor([prompt + actions])
    p = len(prompt)
    with torch.no_grad():
        lt = torch.log_softmax(t(ids).logits[0, p - 1 : -1], -1).numpy()
        ls = torch.log_softmax(s(ids).logits[0, p - 1 : -1], -1).numpy()
    out = []
    for i, a in enumerate(actions):
        pt, ps = np.exp(lt[i]), np.exp(ls[i])
        if name == "teacher_nll":
            out.append(-lt[i, a])
        elif name == "log_ratio":
            out.append(ls[i, a] - lt[i, a])
        elif name == "reverse_kl":
            out.append(sum(ps[v] * (ls[i, v] - lt[i, v]) for v in range(len(ps))))
        else:
            out.append(sum(pt[v] * (lt[i, v] - ls[i, v]) for v in range(len(pt))))
    return np.array(out)


@pytest.mark.parametrize("name", DIVERGENCES)
def test_divergences_match_hand_computation(tiny_dir, tiny_env_kwargs, name):
    env = MathDistillEnv(**tiny_env_kwargs, student=str(tiny_dir / "student"), divergence=name)
    prompt, actions, costs, _ = rollout(env, seed=7)
    expected = _hand_costs(tiny_dir, prompt, actions, name)
    np.testing.assert_allclose(costs, expected, atol=1e-5, rtol=1e-5)
    if name in ("reverse_kl", "forward_kl", "teacher_nll"):
        assert (costs >= -1e-6).all()


@pytest.mark.parametrize("name", ["log_ratio", "reverse_kl", "forward_kl"])
def test_attached_logprobs_equal_student_model(tiny_dir, tiny_env_kwargs, name):
    with_model = MathDistillEnv(**tiny_env_kwargs, student=str(tiny_dir / "student"), divergence=name)
    prompt, actions, costs_model, _ = rollout(with_model, seed=11)
    student = AutoModelForCausalLM.from_pretrained(tiny_dir / "student")
    rows = sequence_logprobs(student, prompt, actions)
    attached = MathDistillEnv(**tiny_env_kwargs, divergence=name)  # no student model in the env
    attached.reset(seed=11)
    costs = []
    for i, a in enumerate(actions):
        if name == "log_ratio":
            act = TokenAction(a, logprob=float(rows[i, a]))
        else:
            act = TokenAction(a, logprobs=rows[i].numpy())
        costs.append(attached.step(act)[4]["cost"])
    np.testing.assert_allclose(costs, costs_model, atol=1e-5)


@pytest.mark.parametrize("name", DIVERGENCES)
def test_preloaded_fast_path_equals_stepping(tiny_dir, tiny_env_kwargs, name):
    env = MathDistillEnv(**tiny_env_kwargs, student=str(tiny_dir / "student"), divergence=name)
    _, actions, costs, infos = rollout(env, seed=3)
    env.reset(seed=3)
    env.preload(actions)
    fast = [env.step(a) for a in actions]
    np.testing.assert_allclose([f[4]["cost"] for f in fast], costs, atol=1e-5)
    np.testing.assert_allclose(
        [f[4]["teacher_logprob"] for f in fast], [i["teacher_logprob"] for i in infos], atol=1e-5
    )
    assert fast[-1][1] == infos[-1]["task_reward"]
    env.reset(seed=3)
    env.preload(actions)
    with pytest.raises(ValueError, match="preloaded"):
        env.step((actions[0] + 1) % 400)


def test_student_divergence_without_student_is_an_error(tiny_env_kwargs):
    env = MathDistillEnv(**tiny_env_kwargs, divergence="reverse_kl")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="student"):
        env.step(3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="student"):
        env.step(TokenAction(3, logprob=-1.0))  # a single log-prob is not enough for an exact KL


def test_bad_actions(tiny_env_kwargs):
    env = MathDistillEnv(**tiny_env_kwargs)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(1)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"out of range.*\[0, 400\)"):
        env.step(400)
    with pytest.raises(ValueError, match="out of range"):
        env.step(-1)
    for bad in (1.5, "a", True, np.array([1, 2]), None):
        with pytest.raises(TypeError, match="integer token id"):
            env.step(bad)
    env.step(np.int64(3))
    env.step(np.array(4))
    env.step(torch.tensor(5))
    assert env.generated == [3, 4, 5]
    env.step(env.tokenizer.eos_token_id)
    with pytest.raises(RuntimeError, match="episode ended"):
        env.step(1)


def test_bad_construction(tiny_dir, tiny_env_kwargs, tmp_path):
    with pytest.raises(ValueError, match="unknown divergence 'kl'.*forward_kl"):
        MathDistillEnv(**tiny_env_kwargs, divergence="kl")
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        MathDistillEnv(**tiny_env_kwargs, dataset=str(tmp_path / "missing.jsonl"))
    with pytest.raises(ValueError, match="max_new_tokens"):
        MathDistillEnv(teacher=str(tiny_dir / "teacher"), max_new_tokens=0)
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        MathDistillEnv(teacher=str(tiny_dir / "teacher"), max_prompt_tokens=4).reset(seed=0)
    with pytest.raises(ValueError, match="prompt_template"):
        MathDistillEnv(**tiny_env_kwargs, prompt_template="no placeholder")


def test_vocabulary_mismatch_names_both_sizes(tiny_dir, tiny_env_kwargs):
    from tests.conftest import tiny_gpt2

    other = tiny_gpt2(vocab=300, layers=1, dim=16, seed=0, eos_id=0)
    with pytest.raises(ValueError, match=r"teacher has 400 tokens, student has 300"):
        MathDistillEnv(**tiny_env_kwargs, student=other)


def test_custom_jsonl_and_template(tiny_env_kwargs, tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"question": "What is 2 + 3?", "answer": "2 + 3 = 5\n#### 5"}) + "\n")
    env = MathDistillEnv(**tiny_env_kwargs, dataset=str(path), prompt_template="Q: {question}\nA:")
    _, info = env.reset(seed=0)
    assert info["reference"] == "5"
    ansi = MathDistillEnv(**tiny_env_kwargs, dataset=str(path), prompt_template="Q: {question}\nA:",
                          render_mode="ansi")
    ansi.reset(seed=0)
    assert ansi.render().startswith("Q: What is 2 + 3?\nA:")


def test_a_teacher_with_padding_rows_is_cut_to_the_students_vocabulary(tiny_dir, tmp_path):
    """Qwen2.5-7B has 152,064 output rows, the 1.5B 151,936 (same tokenizer): vocab_size= cuts the teacher."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir / "teacher")
    big = AutoModelForCausalLM.from_pretrained(tiny_dir / "teacher")
    n = big.get_output_embeddings().weight.shape[0]
    big.resize_token_embeddings(n + 8)  # padding rows past the tokenizer
    big.save_pretrained(tmp_path / "padded")
    tok.save_pretrained(tmp_path / "padded")
    kw = {"teacher": str(tmp_path / "padded"), "max_new_tokens": 6, "max_prompt_tokens": 160}
    with pytest.raises(ValueError, match="vocab_size"):
        MathDistillEnv(**kw, student=str(tiny_dir / "student"), divergence="reverse_kl")
    env = MathDistillEnv(**kw, student=str(tiny_dir / "student"), divergence="reverse_kl", vocab_size=n)
    assert env.action_space.n == n and env.observation_space["input_ids"].high.max() == n - 1
    obs, _ = env.reset(seed=0)
    _, _, _, _, info = env.step(5)
    prompt = [int(t) for t, m in zip(obs["input_ids"], obs["attention_mask"]) if m]
    with torch.no_grad():
        logits = AutoModelForCausalLM.from_pretrained(tmp_path / "padded")(torch.tensor([prompt])).logits[0, -1]
    expected = torch.log_softmax(logits[:n].float(), -1)[5]  # renormalised over the kept rows
    assert info["teacher_logprob"] == pytest.approx(float(expected), abs=1e-5)
    with pytest.raises(ValueError, match="tokenizer"):
        MathDistillEnv(**kw, vocab_size=len(tok) - 1)
