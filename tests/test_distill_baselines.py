"""The paper's distillation baselines: GKD's loss is TRL's ``GKDTrainer`` loss, MiniLLM's advantages are the
length-normalised future log-ratios, and the trainer runs GKD (on- and off-policy), MiniLLM and GRPO + GKD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llm_cmdp_agents.algos.distill import generalized_jsd, teacher_logprobs
from llm_cmdp_agents.algos.losses import masked_mean
from llm_cmdp_agents.algos.minillm import minillm_advantages
from llm_cmdp_agents.engine.policy import LLMPolicy
from llm_cmdp_agents.run.config import TrainConfig
from llm_cmdp_agents.run.trainer import Trainer
from llm_cmdp_env.replay.fast_path import prompt_ids, sample_problems, solution_ids
from tests.test_agent_helpers import tiny_env

pytestmark = pytest.mark.usefixtures("one_thread")


def trl_generalized_jsd_loss(student_logits, teacher_logits, labels, beta, temperature):
    """TRL's ``GKDTrainer.generalized_jsd_loss`` (reduction "batchmean"), written out from its documentation:
    PyTorch's ``kl_div(input, target)`` is KL(target || input), so beta = 0 is KL(teacher || student)."""
    s = F.log_softmax(student_logits / temperature, dim=-1)
    t = F.log_softmax(teacher_logits / temperature, dim=-1)
    if beta == 0:
        jsd = F.kl_div(s, t, reduction="none", log_target=True)
    elif beta == 1:
        jsd = F.kl_div(t, s, reduction="none", log_target=True)
    else:
        b = torch.tensor(beta, dtype=s.dtype)
        m = torch.logsumexp(torch.stack([s + torch.log(1 - b), t + torch.log(b)]), dim=0)
        jsd = beta * F.kl_div(m, t, reduction="none", log_target=True) + \
            (1 - beta) * F.kl_div(m, s, reduction="none", log_target=True)
    mask = labels != -100
    return jsd[mask].sum() / mask.sum()


def _batch(seed=0, b=3, t=6, v=17):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(b, t, v, generator=g, dtype=torch.float64) * 2
    teacher = torch.randn(b, t, v, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[0, 4:] = -100
    labels[2, 1:] = -100
    return student, teacher, labels


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_gkd_loss_equals_trl_gkdtrainer_loss_on_a_fixed_batch(beta, temperature):
    student, teacher, labels = _batch()
    student.requires_grad_(True)
    ours = masked_mean(generalized_jsd(F.log_softmax(student / temperature, -1),
                                       F.log_softmax(teacher / temperature, -1), beta), (labels != -100).double())
    trl = trl_generalized_jsd_loss(student, teacher, labels, beta, temperature)
    torch.testing.assert_close(ours, trl, rtol=1e-10, atol=1e-12)
    g_ours, = torch.autograd.grad(ours, student)
    g_trl, = torch.autograd.grad(trl_generalized_jsd_loss(student, teacher, labels, beta, temperature), student)
    torch.testing.assert_close(g_ours, g_trl, rtol=1e-9, atol=1e-12)


def test_gkd_loss_equals_installed_trl_when_available():
    gkd = pytest.importorskip("trl.experimental.gkd.gkd_trainer", reason="TRL is optional")
    student, teacher, labels = _batch(seed=3)
    for beta in (0.0, 0.5, 1.0):
        ours = masked_mean(generalized_jsd(F.log_softmax(student, -1), F.log_softmax(teacher, -1), beta),
                           (labels != -100).double())
        torch.testing.assert_close(ours, gkd.GKDTrainer.generalized_jsd_loss(student, teacher, labels, beta=beta))


def test_jsd_limits_and_bad_beta():
    student, teacher, _ = _batch(seed=1)
    s, t = F.log_softmax(student, -1), F.log_softmax(teacher, -1)
    fwd, rev = (t.exp() * (t - s)).sum(-1), (s.exp() * (s - t)).sum(-1)
    torch.testing.assert_close(generalized_jsd(s, t, 0.0), fwd)
    torch.testing.assert_close(generalized_jsd(s, t, 1.0), rev)
    # the interior formula tends to the limits (continuity at both ends)
    torch.testing.assert_close(generalized_jsd(s, t, 1e-7) / 1e-7, fwd, rtol=1e-4, atol=1e-6)
    assert (generalized_jsd(s, t, 0.5) >= 0).all() and (generalized_jsd(s, s, 0.5).abs() < 1e-12).all()
    with pytest.raises(ValueError, match="beta"):
        generalized_jsd(s, t, 1.5)


def test_minillm_advantages_are_length_normalised_future_log_ratios():
    teacher = np.log([0.5, 0.25, 0.5, 0.125])
    student = np.log([0.25, 0.25, 0.5, 0.5])
    r = teacher - student  # [log 2, 0, 0, -log 4]
    np.testing.assert_allclose(minillm_advantages(teacher, student),
                               [(r[1] + r[2] + r[3]) / 3, (r[2] + r[3]) / 2, r[3], 0.0])
    np.testing.assert_allclose(minillm_advantages([-1.0], [-2.0]), [0.0])


def test_teacher_logprobs_are_the_teachers_next_token_distribution(tiny_dir, tiny_env_kwargs):
    env = tiny_env(tiny_env_kwargs)
    teacher = env.unwrapped.setup.teacher
    problems = sample_problems(env, 2)
    prompts = [prompt_ids(env, p) for p in problems]
    comps = [[5, 9, 11], [7]]
    rows = teacher_logprobs(teacher, prompts, comps, env.unwrapped.pad_id)
    assert rows.shape == (2, 3, teacher.config.vocab_size)
    with torch.no_grad():
        for p, c, r in zip(prompts, comps, rows):
            logits = teacher(torch.tensor([p + c])).logits[0, len(p) - 1: len(p) - 1 + len(c)]
            torch.testing.assert_close(r[: len(c)], torch.log_softmax(logits.float(), -1), atol=1e-5, rtol=1e-5)


def test_reference_solutions_are_the_problems_worked_solutions(tiny_env_kwargs):
    env = tiny_env({**tiny_env_kwargs, "max_new_tokens": 400})
    setup = env.unwrapped.setup
    problem = sample_problems(env, 1)[0]
    ids = solution_ids(env, problem)
    assert ids[-1] == setup.tokenizer.eos_token_id
    assert setup.tokenizer.decode(ids[:-1]).strip() == problem.solution.strip()
    short = tiny_env({**tiny_env_kwargs, "max_new_tokens": 5})
    assert solution_ids(short, problem) == ids[:5]  # cut at the limit, like a truncated episode


def _trainer(tiny_dir, tiny_env_kwargs, **train):
    env = tiny_env(tiny_env_kwargs)
    policy = LLMPolicy(str(tiny_dir / "student"), device="cpu")
    cfg = TrainConfig(prompts_per_update=4, minibatch_size=4, epochs=1, lr=1e-2, checkpoint_every=0, seed=3, **train)
    return Trainer(env, policy, cfg, progress=False)


def test_gkd_off_policy_trains_on_reference_solutions_and_moves_towards_the_teacher(tiny_dir, tiny_env_kwargs):
    tr = _trainer(tiny_dir, tiny_env_kwargs, algo="gkd", gkd_lambda=0.0, updates=6)
    problems = sample_problems(tiny_env(tiny_env_kwargs), 8)
    env = tr.env
    prompts = [prompt_ids(env, p) for p in problems]
    comps = [solution_ids(env, p) for p in problems]
    t_rows = teacher_logprobs(tr.base.setup.teacher, prompts, comps, tr.base.pad_id)

    def jsd() -> float:
        with torch.no_grad():
            ev = tr.policy.evaluate_actions(prompts, comps, full=True)
            return float(masked_mean(generalized_jsd(ev.full_logprobs, t_rows[:, : ev.mask.shape[1]], 0.5), ev.mask))

    before = jsd()
    batch = tr.collect()
    assert not tr.on_policy
    assert batch.completions == [solution_ids(env, ep.problem) for ep in batch.episodes]
    hist = tr.train()
    assert [h["on_policy"] for h in hist] == [0.0] * 6
    assert all("policy_loss" not in h and h["distill_loss"] > 0 for h in hist)  # its own loss: no surrogate
    assert jsd() < 0.8 * before, (before, jsd())


def test_gkd_lambda_one_is_fully_on_policy(tiny_dir, tiny_env_kwargs):
    hist = _trainer(tiny_dir, tiny_env_kwargs, algo="gkd", gkd_lambda=1.0, updates=2).train()
    assert [h["on_policy"] for h in hist] == [1.0, 1.0]


def test_minillm_and_grpo_plus_gkd_run_and_log_their_terms(tiny_dir, tiny_env_kwargs):
    hist = _trainer(tiny_dir, tiny_env_kwargs, algo="minillm", updates=2).train()
    assert all(np.isfinite(h["distill_loss"]) and np.isfinite(h["sampled_reverse_kl"]) for h in hist)
    hist = _trainer(tiny_dir, tiny_env_kwargs, algo="grpo", group_size=2, distill_coef=0.5, updates=2).train()
    assert all(h["distill_loss"] > 0 for h in hist)
    assert "distill_loss" not in _trainer(tiny_dir, tiny_env_kwargs, algo="grpo", group_size=2, updates=1).train()[0]


def test_grpo_divides_by_the_group_std_only_with_normalise_advantages(tiny_dir, tiny_env_kwargs, monkeypatch):
    import llm_cmdp_agents.algos.grpo as grpo

    seen = []
    real = grpo.group_advantages
    monkeypatch.setattr(grpo, "group_advantages", lambda *a, **k: seen.append(k["scale"]) or real(*a, **k))
    for flag in (True, False):
        _trainer(tiny_dir, tiny_env_kwargs, algo="grpo", group_size=2, normalise_advantages=flag, updates=1).train()
    assert seen == [True, False]


def test_distillation_settings_are_checked():
    with pytest.raises(ValueError, match="gkd_beta"):
        TrainConfig(algo="gkd", gkd_beta=1.5)
    with pytest.raises(ValueError, match="gkd_lambda"):
        TrainConfig(algo="gkd", gkd_lambda=-0.1)
    with pytest.raises(ValueError, match="distill_coef"):
        TrainConfig(algo="gkd", distill_coef=1.0)
    assert TrainConfig(algo="gkd").group_size == 1 and TrainConfig(algo="minillm").group_size == 1
